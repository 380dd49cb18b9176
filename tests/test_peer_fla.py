"""A third peer: flash-linear-attention's naive PyTorch references (the ``fla-core`` package).

lablib's recurrences (``lablib.attention``) and every Triton kernel of ``lablib.kernels`` are
compared, outputs and final states, with and without an initial state, against the plain-PyTorch
``naive`` references that ship inside fla-core (``fla/ops/<op>/naive.py``), written by other
people from the same papers:

    ours                                         fla-core (pinned in pyproject.toml's dev extra)
    linear_attention_* / chunk_linear_attention  linear_attn.naive_recurrent_linear_attn
    scalar_gated_* / chunk_scalar_gated_attn.    simple_gla.naive_recurrent_simple_gla (+ naive_chunk_)
    gla_* / chunk_gla                            gla.naive_recurrent_gla
    delta_rule_* / chunk_delta_rule              delta_rule.delta_rule_recurrence
      ... with log_decay (Gated DeltaNet)        gated_delta_rule.naive_recurrent_gated_delta_rule
    diagonal_scan (and lablib.koopman's loop)    hgrn.naive_recurrent_hgrn

Their conventions differ from ours, which is the point of checking against them:

* layout: (B, T, H, D) for all but ``delta_rule_recurrence``, which takes our (B, H, T, D);
* scale: theirs defaults to D_k^-1/2 (``gla`` and ``delta_rule`` cannot change it), ours to 1;
* keys: their delta rules use k as given, ours L2-normalize it by default;
* gates: log space in both (g = log a <= 0), per head and step (B, T, H), or per key dim for GLA;
* dtype: they compute in float32 whatever they get, so the references here run in float64 and
  agreement is judged at fp32 level (1e-5, scaled by the output's size; measured 4e-8 to 3e-7).

How fla is imported: ``lablib.peers.fla_naive`` loads each naive module from its file, without
running fla's package ``__init__`` (which imports every Triton kernel and transformers).
"""

import os

os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from conftest import require_peer  # noqa: E402

from lablib.attention import (  # noqa: E402
    LinearAttentionState,
    delta_rule_chunkwise,
    delta_rule_recurrent,
    gla_chunkwise,
    gla_recurrent,
    linear_attention_chunkwise,
    linear_attention_parallel,
    linear_attention_recurrent,
    linear_attention_reference,
    scalar_gated_chunkwise,
    scalar_gated_recurrent,
)
from lablib.kernels.delta_rule import chunk_delta_rule  # noqa: E402
from lablib.kernels.gated_linear_attention import chunk_scalar_gated_attention  # noqa: E402
from lablib.kernels.gla import chunk_gla  # noqa: E402
from lablib.kernels.linear_attention import INTERPRETED, chunk_linear_attention, fused_recurrent_step  # noqa: E402
from lablib.kernels.scan import diagonal_scan  # noqa: E402
from lablib.koopman.recurrence import diagonal_recurrence_loop, diagonal_recurrence_scan  # noqa: E402
from lablib.peers import fla_naive  # noqa: E402
from lablib.testing import assert_agree  # noqa: E402

TOL = 1e-5  # fla's naive references compute in float32
B, H, T, D_K, D_V = 2, 3, 37, 12, 20  # B != H != T and D_k != D_v, so a layout mix-up cannot pass; T ragged


def _load_naive(op: str):
    """fla/ops/<op>/naive.py as a module (lablib.peers.fla_naive); a missing peer fails the test."""
    require_peer("einops")  # what the naive modules import besides torch (fla-core depends on it)
    try:
        return fla_naive(op)
    except (ImportError, FileNotFoundError) as err:
        pytest.fail(f"peer fla-core: {err}", pytrace=False)


@pytest.fixture(scope="module")
def fla():
    """The naive modules by op name: fla["gla"].naive_recurrent_gla, ..."""
    ops = ["linear_attn", "simple_gla", "gla", "delta_rule", "gated_delta_rule", "hgrn"]
    return {op: _load_naive(op) for op in ops}


def bthd(x):
    """Our (B, H, T, ...) as fla's (B, T, H, ...), in float32 (what fla computes in anyway)."""
    return x.transpose(1, 2).float()


def bhtd(x):
    """fla's (B, T, H, ...) back to our (B, H, T, ...)."""
    return x.transpose(1, 2)


def make(seed=0, *, dtype=torch.float64, device="cpu", T=T, d_k=D_K, d_v=D_V):
    """q, k, v, an initial state S_0, a scalar log gate (B, H, T), a per-key log gate (B, H, T, D_k), beta (B, H, T)."""
    g = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    q, k, v = randn(B, H, T, d_k), randn(B, H, T, d_k), randn(B, H, T, d_v)
    s0 = randn(B, H, d_k, d_v)
    log_decay = F.logsigmoid(randn(B, H, T) + 2)  # decays mostly in (0.5, 1)
    log_alpha = F.logsigmoid(randn(B, H, T, d_k) + 2)
    beta = 2 * torch.sigmoid(randn(B, H, T))  # in (0, 2): negative eigenvalues too
    return [t.to(dtype=dtype, device=device) for t in (q, k, v, s0, log_decay, log_alpha, beta)]


# ----------------------------------------------------------------------------- the PyTorch references


@pytest.mark.parametrize("with_state", [False, True], ids=["zero_state", "initial_state"])
def test_linear_attention_matches_fla(fla, with_state):
    """Unnormalized, identity map: o_t = S_t^T (q_t / sqrt(D_k)); fla's default scale, applied to q on our side."""
    q, k, v, s0, *_ = make()
    scale = D_K**-0.5
    o_t, s_t = fla["linear_attn"].naive_recurrent_linear_attn(
        bthd(q), bthd(k), bthd(v), initial_state=s0.float() if with_state else None, output_final_state=True
    )
    o_t = bhtd(o_t)
    state = LinearAttentionState(s0, s0.new_zeros(B, H, D_K)) if with_state else None
    kw = dict(feature_map="identity", normalize=False, initial_state=state, return_state=True)
    for form in (linear_attention_recurrent, linear_attention_chunkwise):
        extra = dict(chunk_size=16) if form is linear_attention_chunkwise else {}
        o, s = form(q * scale, k, v, **kw, **extra)
        assert_agree(o, o_t, TOL, f"{form.__name__} output vs fla")
        assert_agree(s.kv, s_t, TOL, f"{form.__name__} final state vs fla")
    if not with_state:
        for form in (linear_attention_reference, linear_attention_parallel):
            o = form(q * scale, k, v, feature_map="identity", normalize=False)
            assert_agree(o, o_t, TOL, f"{form.__name__} vs fla")


@pytest.mark.parametrize("with_state", [False, True], ids=["zero_state", "initial_state"])
def test_normalized_linear_attention_matches_fla(fla, with_state):
    """Normalized, o_t = phi(q_t)^T S_t / phi(q_t)^T z_t with phi = elu + 1 (fla has no feature map:
    it gets phi(q), phi(k)); both eps set to 1e-10. The normalizer's running sum z is a state too."""
    q, k, v, s0, *_ = make(1)
    phi_q, phi_k = F.elu(q) + 1, F.elu(k) + 1
    z0 = (F.elu(torch.randn(B, H, D_K, generator=torch.Generator().manual_seed(5), dtype=torch.float64)) + 1) * 3
    s0 = s0.abs()  # a state some positive keys could have written: the normalizer stays away from 0
    init = (s0.float(), bhtd(z0.unsqueeze(2)).float()) if with_state else None  # fla's z: (B, 1, H, D_k)
    o_t, (s_t, z_t) = fla["linear_attn"].naive_recurrent_linear_attn(
        bthd(phi_q), bthd(phi_k), bthd(v), scale=1.0, initial_state=init, output_final_state=True, normalize=True
    )
    o_t, z_t = bhtd(o_t), z_t[:, 0]
    state = LinearAttentionState(s0, z0) if with_state else None
    for form in (linear_attention_recurrent, linear_attention_chunkwise):
        o, s = form(q, k, v, feature_map="elu+1", normalize=True, eps=1e-10, initial_state=state, return_state=True)
        assert_agree(o, o_t, TOL, f"{form.__name__} output vs fla")
        assert_agree(s.kv, s_t, TOL, f"{form.__name__} final state vs fla")
        assert_agree(s.k_sum, z_t, TOL, f"{form.__name__} normalizer state vs fla")
    if not with_state:
        assert_agree(linear_attention_reference(q, k, v, eps=1e-10), o_t, TOL, "reference vs fla")


@pytest.mark.parametrize("with_state", [False, True], ids=["zero_state", "initial_state"])
def test_scalar_gate_matches_fla_simple_gla(fla, with_state):
    """S_t = exp(g_t) S_{t-1} + k_t v_t^T with fla's default scale D_k^-1/2 (ours is 1: passed explicitly).
    Also against fla's own chunked naive form (chunks of 16, T = 37 padded)."""
    q, k, v, s0, log_decay, _, _ = make(2)
    s_in = s0 if with_state else None
    naive = fla["simple_gla"]
    o_t, s_t = naive.naive_recurrent_simple_gla(
        bthd(q), bthd(k), bthd(v), bthd(log_decay), initial_state=s0.float() if with_state else None,
        output_final_state=True,
    )
    o_c, s_c = naive.naive_chunk_simple_gla(
        bthd(q), bthd(k), bthd(v), bthd(log_decay), initial_state=s0.float() if with_state else None,
        output_final_state=True, chunk_size=16,
    )
    assert_agree(o_c, o_t, TOL, "fla's chunked vs fla's recurrent (a sanity check of the peer)")
    o_t = bhtd(o_t)
    for form, extra in ((scalar_gated_recurrent, {}), (scalar_gated_chunkwise, dict(chunk_size=16))):
        o, s = form(q, k, v, log_decay, initial_state=s_in, return_state=True, scale=D_K**-0.5, **extra)
        assert_agree(o, o_t, TOL, f"{form.__name__} output vs fla")
        assert_agree(s, s_t, TOL, f"{form.__name__} final state vs fla")


@pytest.mark.parametrize("with_state", [False, True], ids=["zero_state", "initial_state"])
def test_gla_matches_fla(fla, with_state):
    """S_t = diag(exp(g_t)) S_{t-1} + k_t v_t^T, a log gate per key dim; fla's scale is fixed at D_k^-1/2."""
    q, k, v, s0, _, log_alpha, _ = make(3)
    o_t, s_t = fla["gla"].naive_recurrent_gla(
        bthd(q), bthd(k), bthd(v), bthd(log_alpha), initial_state=s0.float() if with_state else None,
        output_final_state=True,
    )
    o_t = bhtd(o_t)
    for form, extra in ((gla_recurrent, {}), (gla_chunkwise, dict(chunk_size=16))):
        o, s = form(q, k, v, log_alpha, initial_state=s0 if with_state else None, return_state=True,
                    scale=D_K**-0.5, **extra)
        assert_agree(o, o_t, TOL, f"{form.__name__} output vs fla")
        assert_agree(s, s_t, TOL, f"{form.__name__} final state vs fla")


@pytest.mark.parametrize("with_state", [False, True], ids=["zero_state", "initial_state"])
def test_delta_rule_matches_fla(fla, with_state):
    """DeltaNet. fla's delta_rule_recurrence takes (B, H, T, D), uses k as given and scales q by
    D_k^-1/2: it gets unit keys; ours gets the raw keys and normalizes them (its default)."""
    q, k, v, s0, _, _, beta = make(4)
    s0 = 0.3 * s0
    o_t, s_t = fla["delta_rule"].delta_rule_recurrence(
        q.float(), F.normalize(k, dim=-1).float(), v.float(), beta.float(),
        initial_state=s0.float() if with_state else None, output_final_state=True,
    )
    for form, extra in ((delta_rule_recurrent, {}), (delta_rule_chunkwise, dict(chunk_size=16))):
        o, s = form(q, k, v, beta, initial_state=s0 if with_state else None, return_state=True,
                    scale=D_K**-0.5, **extra)
        assert_agree(o, o_t, TOL, f"{form.__name__} output vs fla")
        assert_agree(s, s_t, TOL, f"{form.__name__} final state vs fla")


@pytest.mark.parametrize("with_state", [False, True], ids=["zero_state", "initial_state"])
def test_gated_delta_rule_matches_fla(fla, with_state):
    """Gated DeltaNet: S_t = a_t (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T, log gate per head and step;
    fla's default scale D_k^-1/2, unit keys given to fla. Also against fla's chunked naive form."""
    q, k, v, s0, log_decay, _, beta = make(5)
    s0 = 0.3 * s0
    naive = fla["gated_delta_rule"]
    args = (bthd(q), bthd(F.normalize(k, dim=-1)), bthd(v))
    init = s0.float() if with_state else None
    o_t, s_t = naive.naive_recurrent_gated_delta_rule(
        *args, bthd(beta), bthd(log_decay), initial_state=init, output_final_state=True
    )
    o_c, s_c = naive.naive_chunk_gated_delta_rule(
        *args, bthd(log_decay), bthd(beta), chunk_size=16, initial_state=init, output_final_state=True
    )
    assert_agree(o_c, o_t, TOL, "fla's chunked vs fla's recurrent (a sanity check of the peer)")
    o_t = bhtd(o_t)
    for form, extra in ((delta_rule_recurrent, {}), (delta_rule_chunkwise, dict(chunk_size=16))):
        o, s = form(q, k, v, beta, log_decay=log_decay, initial_state=s0 if with_state else None,
                    return_state=True, scale=D_K**-0.5, **extra)
        assert_agree(o, o_t, TOL, f"{form.__name__} output vs fla")
        assert_agree(s, s_t, TOL, f"{form.__name__} final state vs fla")


@pytest.mark.parametrize("with_state", [False, True], ids=["zero_state", "initial_state"])
def test_diagonal_recurrence_matches_fla_hgrn(fla, with_state):
    """h_t = exp(g_t) * h_{t-1} + x_t (HGRN's recurrence, fla layout (B, T, D)) is lablib.koopman's
    diagonal recurrence with a per-step lambda = exp(g)."""
    g = torch.Generator().manual_seed(6)
    x = torch.randn(B, T, D_V, generator=g, dtype=torch.float64)
    log_lam = F.logsigmoid(torch.randn(B, T, D_V, generator=g, dtype=torch.float64) + 2)
    h0 = torch.randn(B, D_V, generator=g, dtype=torch.float64)
    h_t, final_t = fla["hgrn"].naive_recurrent_hgrn(
        x.float(), log_lam.float(), initial_state=h0.float() if with_state else None, output_final_state=True
    )
    for form in (diagonal_recurrence_loop, diagonal_recurrence_scan):
        h = form(log_lam.exp(), x, h0 if with_state else None)
        assert_agree(h, h_t, TOL, f"{form.__name__} vs fla")
        assert_agree(h[:, -1], final_t, TOL, f"{form.__name__} final state vs fla")


# ----------------------------------------------------------------------------- the Triton kernels


DEVICE = "cpu" if INTERPRETED else "cuda"
needs_a_kernel_runner = pytest.mark.skipif(
    not INTERPRETED and not torch.cuda.is_available(),
    reason="TRITON_INTERPRET=0 and no CUDA device: nothing can run the kernels",
)
T_KERNEL = 21  # one full chunk of 16 and a ragged one


def kernel_inputs(seed):
    return make(seed, dtype=torch.float32, device=DEVICE, T=T_KERNEL, d_k=D_K, d_v=D_V)


def on_cpu(*tensors):
    return [t.cpu() for t in tensors]


@needs_a_kernel_runner
@pytest.mark.parametrize("with_state", [False, True], ids=["zero_state", "initial_state"])
def test_kernel_linear_attention_matches_fla(fla, with_state):
    """chunk_linear_attention (scale D_k^-1/2, chunks of 16), and fused_recurrent_step continuing from its state."""
    q, k, v, s0, *_ = kernel_inputs(10)
    scale = D_K**-0.5
    init = s0 if with_state else None
    o_t, s_t = fla["linear_attn"].naive_recurrent_linear_attn(
        *(bthd(t) for t in on_cpu(q, k, v)), initial_state=None if init is None else init.cpu(), output_final_state=True
    )
    o, s = chunk_linear_attention(q, k, v, scale=scale, initial_state=init, output_final_state=True, chunk_size=16)
    assert_agree(o.cpu(), bhtd(o_t), TOL, "kernel output vs fla")
    assert_agree(s.cpu(), s_t, TOL, "kernel final state vs fla")
    # one decoding step from the kernel's final state = fla run over T + 1 tokens
    q1, k1, v1 = (t[:, :, :1] for t in kernel_inputs(11)[:3])
    o1, s1 = fused_recurrent_step(q1, k1, v1, s, scale=scale)
    o_t1, s_t1 = fla["linear_attn"].naive_recurrent_linear_attn(
        *(bthd(t) for t in on_cpu(q1, k1, v1)), initial_state=s_t, output_final_state=True
    )
    assert_agree(o1.cpu(), bhtd(o_t1), TOL, "decoding step output vs fla")
    assert_agree(s1.cpu(), s_t1, TOL, "decoding step state vs fla")


@needs_a_kernel_runner
@pytest.mark.parametrize("with_state", [False, True], ids=["zero_state", "initial_state"])
def test_kernel_scalar_gate_matches_fla_simple_gla(fla, with_state):
    q, k, v, s0, log_decay, _, _ = kernel_inputs(12)
    init = s0 if with_state else None
    o_t, s_t = fla["simple_gla"].naive_recurrent_simple_gla(
        *(bthd(t) for t in on_cpu(q, k, v, log_decay)), initial_state=None if init is None else init.cpu(),
        output_final_state=True,
    )
    o, s = chunk_scalar_gated_attention(q, k, v, log_decay, scale=D_K**-0.5, initial_state=init,
                                        output_final_state=True, chunk_size=16)
    assert_agree(o.cpu(), bhtd(o_t), TOL, "kernel output vs fla")
    assert_agree(s.cpu(), s_t, TOL, "kernel final state vs fla")


@needs_a_kernel_runner
@pytest.mark.parametrize("with_state", [False, True], ids=["zero_state", "initial_state"])
def test_kernel_gla_matches_fla(fla, with_state):
    q, k, v, s0, _, log_alpha, _ = kernel_inputs(13)
    init = s0 if with_state else None
    o_t, s_t = fla["gla"].naive_recurrent_gla(
        *(bthd(t) for t in on_cpu(q, k, v, log_alpha)), initial_state=None if init is None else init.cpu(),
        output_final_state=True,
    )
    o, s = chunk_gla(q, k, v, log_alpha, scale=D_K**-0.5, initial_state=init, output_final_state=True, chunk_size=16)
    assert_agree(o.cpu(), bhtd(o_t), TOL, "kernel output vs fla")
    assert_agree(s.cpu(), s_t, TOL, "kernel final state vs fla")


@needs_a_kernel_runner
@pytest.mark.parametrize("gated", [False, True], ids=["deltanet", "gated_deltanet"])
@pytest.mark.parametrize("with_state", [False, True], ids=["zero_state", "initial_state"])
def test_kernel_delta_rule_matches_fla(fla, with_state, gated):
    """chunk_delta_rule normalizes the keys itself (its default); fla gets unit keys."""
    q, k, v, s0, log_decay, _, beta = kernel_inputs(14)
    init = 0.3 * s0 if with_state else None
    qc, kc, vc, bc, gc = on_cpu(q, F.normalize(k, dim=-1), v, beta, log_decay)
    init_c = None if init is None else init.cpu()
    if gated:
        o_t, s_t = fla["gated_delta_rule"].naive_recurrent_gated_delta_rule(
            bthd(qc), bthd(kc), bthd(vc), bthd(bc), bthd(gc), initial_state=init_c, output_final_state=True
        )
        o_t = bhtd(o_t)
    else:
        o_t, s_t = fla["delta_rule"].delta_rule_recurrence(qc, kc, vc, bc, initial_state=init_c, output_final_state=True)
    o, s = chunk_delta_rule(q, k, v, beta, log_decay=log_decay if gated else None, scale=D_K**-0.5,
                            initial_state=init, output_final_state=True, chunk_size=16)
    assert_agree(o.cpu(), o_t, TOL, "kernel output vs fla")
    assert_agree(s.cpu(), s_t, TOL, "kernel final state vs fla")


@needs_a_kernel_runner
@pytest.mark.parametrize("with_state", [False, True], ids=["zero_state", "initial_state"])
def test_kernel_diagonal_scan_matches_fla_hgrn(fla, with_state):
    """diagonal_scan with a per-step lambda = exp(g) (chunks of 16 steps, T = 21) is HGRN's recurrence."""
    g = torch.Generator().manual_seed(15)
    x = torch.randn(B, T_KERNEL, D_V, generator=g)
    log_lam = F.logsigmoid(torch.randn(B, T_KERNEL, D_V, generator=g) + 2)
    h0 = torch.randn(B, D_V, generator=g)
    h_t, final_t = fla["hgrn"].naive_recurrent_hgrn(
        x, log_lam, initial_state=h0 if with_state else None, output_final_state=True
    )
    h, final = diagonal_scan(log_lam.exp().to(DEVICE), x.to(DEVICE), h0=h0.to(DEVICE) if with_state else None,
                             return_final=True, chunk_size=16)
    assert_agree(h.cpu(), h_t, TOL, "kernel vs fla")
    assert_agree(final.cpu(), final_t, TOL, "kernel final state vs fla")
