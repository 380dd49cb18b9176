"""The Triton delta-rule kernel (DeltaNet, Gated DeltaNet) agrees with lablib's PyTorch forms.

Without a GPU the kernels run under the Triton interpreter on CPU tensors; Triton chooses
interpreted or compiled when the kernels are defined, so the variable must be set before
lablib.kernels is imported. With TRITON_INTERPRET=0 on a GPU machine the same tests run the
compiled kernels on CUDA tensors, and so does the long-sequence class at the end.
"""

import os

os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import lablib.kernels._base as base_module  # noqa: E402
from lablib.attention import random_qkv  # noqa: E402
from lablib.attention.delta import delta_rule_chunkwise, delta_rule_recurrent  # noqa: E402
from lablib.kernels.delta_rule import INTERPRETED, chunk_delta_rule  # noqa: E402
from lablib.testing import assert_agree, max_scaled_error  # noqa: E402

DEVICE = "cpu" if INTERPRETED else "cuda"
pytestmark = pytest.mark.skipif(
    not INTERPRETED and not torch.cuda.is_available(),
    reason="TRITON_INTERPRET=0 and no CUDA device: nothing can run the kernels",
)

LENGTHS = [1, 7, 16, 17, 40]  # one token, under one chunk, exactly one, one more, ragged last chunk
HEAD_DIMS = [(16, 24), (24, 16)]  # (D_k, D_v): 24 is not a power of two
CHUNK = 16


def make_inputs(T, d_k, d_v, B=2, H=2, seed=0, gated=True, log_gate=None, beta_max=2.0, device=DEVICE):
    """q, k, v, beta, log_decay (None unless ``gated``), an initial state, and cotangents for o and S_T.

    beta is uniform on [0, beta_max] (beta > 1: transitions with a negative eigenvalue). Log gates
    are log(sigmoid(2 x + 3)), mostly mild decay (a ~ 0.95) with some strong steps, as in
    tests/test_gated_delta.py; ``log_gate`` replaces them: a number fills every step with it,
    "mixed" makes every 10th step -1e3 (a near-total reset).
    """
    q, k, v = random_qkv(T, B=B, H=H, d_k=d_k, d_v=d_v, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    beta = beta_max * torch.rand(B, H, T, generator=g)
    log_decay = F.logsigmoid(2 * torch.randn(B, H, T, generator=g) + 3)
    if log_gate == "mixed":
        log_decay[:, :, ::10] = -1e3
    elif log_gate is not None:
        log_decay = torch.full((B, H, T), float(log_gate))
    h0, probe_o, probe_s = (torch.randn(*shape, generator=g) for shape in
                            [(B, H, d_k, d_v), (B, H, T, d_v), (B, H, d_k, d_v)])
    tensors = [q, k, v, beta, log_decay if gated else None, h0, probe_o, probe_s]
    return [None if t is None else t.to(device) for t in tensors]


def kernel_attention(scale, chunk_size=CHUNK, normalize_keys=True):
    def attn(q, k, v, beta, log_decay, h0):
        return chunk_delta_rule(
            q, k, v, beta, log_decay=log_decay, scale=scale, initial_state=h0, output_final_state=True,
            chunk_size=chunk_size, normalize_keys=normalize_keys,
        )
    return attn


def torch_attention(scale, form=delta_rule_recurrent, normalize_keys=True, **kw):
    def attn(q, k, v, beta, log_decay, h0):
        return form(q, k, v, beta, log_decay=log_decay, scale=scale, initial_state=h0, return_state=True,
                    normalize_keys=normalize_keys, **kw)
    return attn


def run(attn, q, k, v, beta, log_decay, h0, probe_o, probe_s, dtype, state_dtype=torch.float32):
    """attn on copies cast to dtype (the state to state_dtype); returns {name: tensor} with o, the final
    state and the gradients of q, k, v, beta, log_decay (if given) and h0 (if given; None: no initial
    state). The loss reaches both outputs, so the gradients include the path through the final state."""
    names = ["dq", "dk", "dv", "d beta"] + (["d log_decay"] if log_decay is not None else [])
    given = (q, k, v, beta) + ((log_decay,) if log_decay is not None else ())
    leaves = [t.detach().to(dtype).requires_grad_() for t in given]
    if h0 is not None:
        names.append("d initial state")
        leaves.append(h0.detach().to(state_dtype).requires_grad_())
    o, final = attn(*leaves[:4], leaves[4] if log_decay is not None else None, leaves[-1] if h0 is not None else None)
    loss = (o * probe_o.to(o.dtype)).sum() + (final * probe_s.to(final.dtype)).sum()
    return {"o": o, "final state": final, **dict(zip(names, torch.autograd.grad(loss, leaves)))}


def assert_all_agree(got, truth, tol=1e-5):
    assert got.keys() == truth.keys()
    for name in got:
        assert_agree(got[name], truth[name], tol, name)


@pytest.mark.parametrize("gated", [False, True], ids=["delta", "gated"])
@pytest.mark.parametrize("d_k,d_v", HEAD_DIMS)
@pytest.mark.parametrize("T", LENGTHS)
def test_fp32_matches_recurrent_form_forward_and_grads(T, d_k, d_v, gated):
    """fp32 kernel = the recurrence evaluated in float64 (the truth), to 1e-5 scaled error, for the
    outputs, the final state and the gradients of q, k, v, beta, log_decay and the initial state.
    (Measured: every quantity within 4e-7.) beta is uniform on [0, 2]."""
    inputs = make_inputs(T, d_k, d_v, gated=gated)
    scale = d_k**-0.5
    got = run(kernel_attention(scale), *inputs, torch.float32)
    truth = run(torch_attention(scale), *inputs, torch.float64, torch.float64)
    assert got["o"].dtype == torch.float32 and got["o"].shape == (2, 2, T, d_v)
    assert got["final state"].dtype == torch.float32 and got["final state"].shape == (2, 2, d_k, d_v)
    assert got["d beta"].dtype == torch.float32 and got["d beta"].shape == (2, 2, T)
    assert_all_agree(got, truth)


@pytest.mark.parametrize("gated", [False, True], ids=["delta", "gated"])
def test_beta_in_unit_interval_and_at_its_edges(gated):
    """beta in [0, 1] (no negative eigenvalues), and beta exactly 0, 1 and 2 at some steps: beta = 0
    is a step that writes nothing, yet its gradient must come out right (the kernel differentiates
    through (I + L)^{-1} diag(beta), not through a division by beta)."""
    q, k, v, beta, log_decay, h0, probe_o, probe_s = make_inputs(40, 16, 24, gated=gated, beta_max=1.0, seed=3)
    beta[:, :, ::5] = 0.0
    beta[:, :, 1::9] = 1.0
    beta[:, :, 2::7] = 2.0
    inputs = q, k, v, beta, log_decay, h0, probe_o, probe_s
    got = run(kernel_attention(1.0), *inputs, torch.float32)
    truth = run(torch_attention(1.0), *inputs, torch.float64, torch.float64)
    assert_all_agree(got, truth)


@pytest.mark.parametrize("gated", [False, True], ids=["delta", "gated"])
@pytest.mark.parametrize("T", [1, 17])
def test_unnormalized_keys(T, gated):
    """normalize_keys=False uses k as given: small keys (|k| ~ 0.9) and beta in [0, 1] keep
    beta |k|^2 < 2, so the state stays bounded; D_k = 24 is not a power of two."""
    q, k, v, beta, log_decay, h0, probe_o, probe_s = make_inputs(T, 24, 16, gated=gated, beta_max=1.0)
    k = 0.9 * k / 24**0.5
    inputs = q, k, v, beta, log_decay, h0, probe_o, probe_s
    got = run(kernel_attention(1.0, normalize_keys=False), *inputs, torch.float32)
    truth = run(torch_attention(1.0, normalize_keys=False), *inputs, torch.float64, torch.float64)
    assert_all_agree(got, truth)


# (D_k, D_v) wider than one key tile of 128: two key blocks (and two value blocks), four key blocks.
WIDE_KEYS = [(256, 80), (512, 16)]


@pytest.mark.parametrize("with_state", [True, False], ids=["initial state", "no initial state"])
@pytest.mark.parametrize("d_k,d_v", WIDE_KEYS)
def test_wide_keys_forward_and_grads(d_k, d_v, with_state):
    """D_k = 256 and 512 (Gated DeltaNet): each program loops over key blocks of 128, with the state
    (and dS) in the global-memory slots it walks through. fp32 = the float64 recurrence to 1e-5, o,
    S_T and every gradient (q, k, v, beta, log_decay, and S_0 when given)."""
    q, k, v, beta, log_decay, h0, probe_o, probe_s = make_inputs(20, d_k, d_v, B=1, H=1, seed=d_k)
    inputs = q, k, v, beta, log_decay, h0 if with_state else None, probe_o, probe_s
    got = run(kernel_attention(d_k**-0.5), *inputs, torch.float32)
    truth = run(torch_attention(d_k**-0.5), *inputs, torch.float64, torch.float64)
    assert ("d initial state" in got) == with_state and "d log_decay" in got
    assert_all_agree(got, truth)


@pytest.mark.parametrize("d_k,d_v", [(8, 80), (128, 16)])
def test_head_dims_outside_one_small_tile(d_k, d_v):
    """D_k < 16 is padded up to a tl.dot tile; D_v = 80 takes two value blocks, each recomputing the
    chunk's triangular solve, whose partial sums of dq, dk, d beta and d log_decay the host adds;
    D_k = 128 is the largest key tile."""
    inputs = make_inputs(17, d_k, d_v, B=1, log_gate="mixed")
    got = run(kernel_attention(1.0), *inputs, torch.float32)
    truth = run(torch_attention(1.0), *inputs, torch.float64, torch.float64)
    assert_all_agree(got, truth)


@pytest.mark.parametrize("log_gate", [-20.0, -1e3, "mixed"])
def test_strong_decay_stays_finite_and_matches(log_gate):
    """log gates of -20 (or -1e3) per step, or a -1e3 reset every 10 steps: every decay is formed from
    segment sums in log space and exponentiated only when <= 0, so everything stays finite and
    agrees with the recurrence, gradients of the gates included."""
    inputs = make_inputs(40, 16, 16, log_gate=log_gate)
    got = run(kernel_attention(1.0), *inputs, torch.float32)
    truth = run(torch_attention(1.0), *inputs, torch.float64, torch.float64)
    for name, x in got.items():
        assert torch.isfinite(x).all(), f"{name} is not finite"
    assert_all_agree(got, truth)
    if log_gate == -1e3:
        # exp(-1e3) is 0: only the current write survives, S_t = beta_t k_t v_t^T, o_t = beta_t (q_t . k_t) v_t.
        q, k, v, beta = inputs[:4]
        k = F.normalize(k, dim=-1)
        current_write = beta[..., None] * (q * k).sum(-1, keepdim=True) * v
        assert_agree(got["o"], current_write, 1e-5, "outputs vs the current write")


def test_unit_beta_and_unit_keys_recall_the_last_value():
    """With beta = 1 and unit keys, each step overwrites what the memory returns for k_t by v_t, so
    reading with q_t = k_t (scale 1) returns v_t exactly, whatever was stored before."""
    q, k, v, beta, _, h0, _, _ = make_inputs(40, 16, 24, gated=False)
    k = F.normalize(k, dim=-1)
    o = chunk_delta_rule(k, k, v, torch.ones_like(beta), initial_state=h0, chunk_size=CHUNK)
    assert_agree(o, v, 1e-5, "recalled values")


def test_log_decay_zero_is_the_ungated_delta_rule():
    """log_decay = 0 (every gate 1) gives the ungated kernel's results, gradients included, and
    finite log-decay gradients."""
    q, k, v, beta, _, h0, probe_o, probe_s = make_inputs(40, 16, 24, gated=False)
    zeros = torch.zeros_like(beta)
    got = run(kernel_attention(0.5), q, k, v, beta, zeros, h0, probe_o, probe_s, torch.float32)
    ungated = run(kernel_attention(0.5), q, k, v, beta, None, h0, probe_o, probe_s, torch.float32)
    assert torch.isfinite(got.pop("d log_decay")).all()
    assert_all_agree(got, ungated)


def test_defaults_no_state_in_or_out():
    """Without states the call returns o alone, with scale 1, and q, k, v, beta, log_decay get gradients."""
    q, k, v, beta, log_decay, _, probe_o, _ = make_inputs(23, 16, 16)
    leaves = [t.requires_grad_() for t in (q, k, v, beta, log_decay)]
    o = chunk_delta_rule(*leaves[:4], log_decay=leaves[4], chunk_size=CHUNK)
    assert isinstance(o, torch.Tensor) and o.shape == v.shape
    grads = torch.autograd.grad((o * probe_o).sum(), leaves)
    leaves64 = [t.detach().double().requires_grad_() for t in leaves]
    ref = delta_rule_recurrent(*leaves64[:4], log_decay=leaves64[4])
    grads_ref = torch.autograd.grad((ref * probe_o.double()).sum(), leaves64)
    assert_agree(o, ref, 1e-5, "o")
    for name, g, g_ref in zip(["dq", "dk", "dv", "d beta", "d log_decay"], grads, grads_ref):
        assert_agree(g, g_ref, 1e-5, name)


@pytest.mark.parametrize("chunk_size", [16, 32, 64])
def test_chunk_size_does_not_change_the_result(chunk_size):
    q, k, v, beta, log_decay, h0, _, _ = make_inputs(40, 16, 24, log_gate="mixed")
    ref, ref_final = torch_attention(1.0)(*(t.double() for t in (q, k, v, beta, log_decay, h0)))
    o, final = kernel_attention(1.0, chunk_size)(q, k, v, beta, log_decay, h0)
    assert_agree(o, ref, 1e-5, "o")
    assert_agree(final, ref_final, 1e-5, "final state")


def test_state_carries_across_calls():
    """Two calls chained through the state equal one call over the whole sequence."""
    q, k, v, beta, log_decay, h0, _, _ = make_inputs(40, 16, 24)
    full, final = kernel_attention(1.0)(q, k, v, beta, log_decay, h0)
    first, mid = kernel_attention(1.0)(*(t[:, :, :21] for t in (q, k, v, beta, log_decay)), h0)
    second, final2 = kernel_attention(1.0)(*(t[:, :, 21:] for t in (q, k, v, beta, log_decay)), mid)
    assert_agree(torch.cat([first, second], 2), full, 1e-5, "o")
    assert_agree(final2, final, 1e-5, "final state")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_error_within_twice_pytorchs(dtype):
    """fp16/bf16 inputs (beta and log gates too): each result's error against the truth is at most
    twice that of PyTorch run in the same dtype, plus a floor of 1e-6.

    Inputs and cotangents are rounded to dtype first, so the truth (float64 on the very same
    values) differs from both only by arithmetic. On the CPU the same-dtype PyTorch form is the
    recurrence (torch.linalg.solve_triangular, which the chunkwise form needs, has no fp16/bf16
    CPU kernel); the GPU class below compares with the chunkwise form.
    """
    inputs = [t.to(dtype).float() for t in make_inputs(40, 24, 32)]
    got = run(kernel_attention(1.0), *inputs, dtype)
    same_dtype = run(torch_attention(1.0), *inputs, dtype, dtype)
    truth = run(torch_attention(1.0), *inputs, torch.float64, torch.float64)
    assert got["o"].dtype == dtype and got["final state"].dtype == torch.float32
    assert got["d beta"].dtype == dtype and got["d log_decay"].dtype == dtype
    for name in got:
        err, err_torch = max_scaled_error(got[name], truth[name]), max_scaled_error(same_dtype[name], truth[name])
        assert err <= 2 * err_torch + 1e-6, f"{name}: kernel error {err:.3g} > 2 x PyTorch {dtype} error {err_torch:.3g}"


def _qkv_beta(T=8, d=16):
    q, k, v = (torch.randn(2, 2, T, d, device=DEVICE) for _ in range(3))
    return q, k, v, torch.rand(2, 2, T, device=DEVICE)


@pytest.mark.parametrize("bad", [-0.1, 2.5, float("nan"), float("inf")])
def test_beta_outside_0_2_raises_value_error(bad):
    q, k, v, beta = _qkv_beta()
    beta[1, 0, 3] = bad
    with pytest.raises(ValueError, match=r"beta must lie in \[0, 2\]"):
        chunk_delta_rule(q, k, v, beta)


@pytest.mark.parametrize("bad", [0.5, float("inf"), float("nan"), float("-inf")])
def test_positive_or_nonfinite_log_decay_raises_value_error(bad):
    q, k, v, beta = _qkv_beta()
    log_decay = -torch.rand(2, 2, 8, device=DEVICE)
    log_decay[1, 0, 3] = bad
    with pytest.raises(ValueError, match=r"log_decay must be finite and <= 0"):
        chunk_delta_rule(q, k, v, beta, log_decay=log_decay)


def test_bad_shapes_dtypes_and_chunk_size():
    q, k, v, beta = _qkv_beta()
    with pytest.raises(ValueError, match=r"beta must have shape \(B, H, T\) = \(2, 2, 8\).*got shape \(2, 2, 9\)"):
        chunk_delta_rule(q, k, v, torch.rand(2, 2, 9, device=DEVICE))
    with pytest.raises(ValueError, match=r"beta must have shape \(B, H, T\).*got shape \(2, 2, 8, 1\)"):
        chunk_delta_rule(q, k, v, beta[..., None])
    with pytest.raises(ValueError, match="beta must be fp32, fp16 or bf16"):
        chunk_delta_rule(q, k, v, beta.double())
    with pytest.raises(ValueError, match=r"log_decay must have shape \(B, H, T\).*got shape \(2, 8\)"):
        chunk_delta_rule(q, k, v, beta, log_decay=-torch.rand(2, 8, device=DEVICE))
    with pytest.raises(ValueError, match=r"share the length T.*\(2, 2, 9, 16\)"):
        chunk_delta_rule(q, k, torch.randn(2, 2, 9, 16, device=DEVICE), beta)
    with pytest.raises(ValueError, match=r"initial_state must have shape.*\(2, 2, 16, 16\).*\(2, 2, 16, 15\)"):
        chunk_delta_rule(q, k, v, beta, initial_state=torch.zeros(2, 2, 16, 15, device=DEVICE))
    with pytest.raises(ValueError, match=r"chunk_size must be a power of two >= 16.*got 24"):
        chunk_delta_rule(q, k, v, beta, chunk_size=24)
    big = torch.randn(2, 2, 8, 513, device=DEVICE)
    with pytest.raises(ValueError, match=r"D_k must be at most 512.*\(2, 2, 8, 513\)"):
        chunk_delta_rule(big, big, v, beta)


def test_cpu_tensors_without_the_interpreter_raise(monkeypatch):
    # The check is shared by every kernel module and reads lablib.kernels._base's flag.
    monkeypatch.setattr(base_module, "INTERPRETED", False)
    q, k, v = (torch.randn(1, 1, 4, 16) for _ in range(3))
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1.*lablib.attention"):
        chunk_delta_rule(q, k, v, torch.ones(1, 1, 4))


# Under TRITON_INTERPRET=1 these would run interpreted (slowly) and test nothing compiled.
@pytest.mark.skipif(INTERPRETED, reason="kernels are interpreted in this run; TRITON_INTERPRET=0 checks them compiled")
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: compiled kernels are checked on a GPU machine")
class TestCompiledOnCuda:
    """Long sequences and realistic head dims, compiled. The truth is PyTorch's chunkwise form in
    float64 on the GPU (the recurrent form would take T Python steps)."""

    @pytest.mark.parametrize("log_gate", [None, "mixed"])
    @pytest.mark.parametrize("gated", [False, True], ids=["delta", "gated"])
    @pytest.mark.parametrize("d", [64, 128])
    def test_fp32_long_sequence_matches_float64(self, d, gated, log_gate):
        inputs = make_inputs(1000, d, d, gated=gated, log_gate=log_gate, device="cuda")
        scale = d**-0.5
        reference = torch_attention(scale, form=delta_rule_chunkwise, chunk_size=64)
        # chunks of 64 fit sm_90's shared memory only up to D_k = 64; the kernel's default picks 32 above
        got = run(kernel_attention(scale, None), *inputs, torch.float32)
        truth = run(reference, *inputs, torch.float64, torch.float64)
        assert_all_agree(got, truth)

    @pytest.mark.parametrize("gated", [False, True], ids=["delta", "gated"])
    @pytest.mark.parametrize("d", [64, 128])
    def test_bf16_error_within_twice_pytorchs(self, d, gated):
        bf16 = torch.bfloat16
        inputs = [None if t is None else t.to(bf16).float()
                  for t in make_inputs(1000, d, d, H=4, gated=gated, device="cuda")]
        reference = torch_attention(d**-0.5, form=delta_rule_chunkwise, chunk_size=64)
        got = run(kernel_attention(d**-0.5, None), *inputs, bf16)
        same = run(reference, *inputs, bf16, bf16)
        truth = run(reference, *inputs, torch.float64, torch.float64)
        for name in got:
            err, err_torch = max_scaled_error(got[name], truth[name]), max_scaled_error(same[name], truth[name])
            assert err <= 2 * err_torch + 1e-6, f"{name}: kernel error {err:.3g} > 2 x PyTorch bf16 error {err_torch:.3g}"


def test_default_chunk_size_depends_on_key_width_and_cuda_rejects_too_large_chunks(monkeypatch):
    """Default chunks: 64 up to D_k = 64, 32 above (the sm_90 shared-memory limit of the backward,
    found by tests/test_kernels_compile.py). Explicit chunks of 64 at D_k > 64 run under the
    interpreter but are refused for CUDA tensors."""
    q, k, v = (torch.randn(1, 1, 5, 80, device=DEVICE) for _ in range(3))
    beta = torch.rand(1, 1, 5, device=DEVICE)
    default = chunk_delta_rule(q, k, v, beta)
    explicit = chunk_delta_rule(q, k, v, beta, chunk_size=32)
    assert_agree(default, explicit, 1e-6, "default vs chunk 32")
    monkeypatch.setattr(torch.Tensor, "is_cuda", property(lambda self: True))
    with pytest.raises(ValueError, match=r"chunk_size 64 with D_k = 80 > 64.*shared memory"):
        chunk_delta_rule(q, k, v, beta, chunk_size=64)
