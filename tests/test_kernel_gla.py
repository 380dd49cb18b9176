"""The Triton GLA kernel (a decay per key dim) agrees with lablib's PyTorch forms.

Without a GPU the kernels run under the Triton interpreter on CPU tensors; Triton chooses
interpreted or compiled when the kernels are defined, so the variable must be set before
lablib.kernels is imported. With TRITON_INTERPRET=0 on a GPU machine the same tests run the
compiled kernels on CUDA tensors, and so does the long-sequence class at the end.

Most tests use chunks of 32 tokens, two sub-chunks of 16: with chunks of 16 the kernel's
off-diagonal sub-chunk blocks (the secondary chunking) would never run. Chunks of 64 (three
sub-chunks, so a gap of whole sub-chunks between a query block and a key block) are checked,
gradients included, in the chunk-size test.
"""

import os

os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import lablib.kernels._base as base_module  # noqa: E402
from lablib.attention import gla_chunkwise, gla_recurrent, random_qkv  # noqa: E402
from lablib.kernels.gated_linear_attention import chunk_scalar_gated_attention  # noqa: E402
from lablib.kernels.gla import INTERPRETED, chunk_gla  # noqa: E402
from lablib.kernels.linear_attention import chunk_linear_attention  # noqa: E402
from lablib.testing import assert_agree, max_scaled_error  # noqa: E402

# Interpreted kernels take CPU tensors; compiled ones take CUDA tensors.
DEVICE = "cpu" if INTERPRETED else "cuda"
pytestmark = pytest.mark.skipif(
    not INTERPRETED and not torch.cuda.is_available(),
    reason="TRITON_INTERPRET=0 and no CUDA device: nothing can run the kernels",
)

LENGTHS = [1, 7, 16, 17, 40]  # one token, under one sub-chunk, exactly one, one more, ragged last chunk
HEAD_DIMS = [(16, 24), (24, 16)]  # (D_k, D_v): 24 is not a power of two
CHUNK = 32


def make_inputs(T, d_k, d_v, B=2, H=2, seed=0, log_gate=None, device=DEVICE):
    """q, k, v, log_alpha (B, H, T, D_k) fp32, an initial state, and cotangents for o and the final state.

    Log gates are log(sigmoid(2 x + 3)) for standard-normal x, one per step and key dim: mostly
    mild decay (alpha ~ 0.95) with some strong entries. ``log_gate`` replaces them: a number fills
    every entry; "mixed" keeps the random gates but makes every 10th step -1e3 (a near-reset).
    """
    q, k, v = random_qkv(T, B=B, H=H, d_k=d_k, d_v=d_v, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    log_alpha = F.logsigmoid(2 * torch.randn(B, H, T, d_k, generator=g) + 3)
    if log_gate == "mixed":
        log_alpha[:, :, ::10] = -1e3
    elif log_gate is not None:
        log_alpha = torch.full((B, H, T, d_k), float(log_gate))
    h0, probe_o, probe_s = (torch.randn(*shape, generator=g) for shape in
                            [(B, H, d_k, d_v), (B, H, T, d_v), (B, H, d_k, d_v)])
    return [t.to(device) for t in (q, k, v, log_alpha, h0, probe_o, probe_s)]


def kernel_attention(scale, chunk_size=CHUNK):
    def attn(q, k, v, log_alpha, h0):
        return chunk_gla(q, k, v, log_alpha, scale=scale, initial_state=h0, output_final_state=True,
                         chunk_size=chunk_size)
    return attn


def torch_attention(scale, form=gla_recurrent, **kw):
    def attn(q, k, v, log_alpha, h0):
        return form(q, k, v, log_alpha, scale=scale, initial_state=h0, return_state=True, **kw)
    return attn


def run(attn, q, k, v, log_alpha, h0, probe_o, probe_s, dtype, state_dtype=torch.float32):
    """attn on copies cast to dtype (the state to state_dtype): [o, final state, and the grads of
    q, k, v, log_alpha, h0]. The loss reaches both outputs, so the gradients include the path
    through the final state."""
    leaves = [t.detach().to(dtype).requires_grad_() for t in (q, k, v, log_alpha)]
    if h0 is not None:  # None: no initial state (and no gradient for it)
        leaves.append(h0.detach().to(state_dtype).requires_grad_())
    o, final = attn(*leaves[:4], leaves[4] if h0 is not None else None)
    loss = (o * probe_o.to(o.dtype)).sum() + (final * probe_s.to(final.dtype)).sum()
    return [o, final, *torch.autograd.grad(loss, leaves)]


NAMES = ["o", "final state", "dq", "dk", "dv", "d log_alpha", "d initial state"]


def assert_all_agree(got, truth, tol=1e-5):
    for name, a, b in zip(NAMES, got, truth):
        assert_agree(a, b, tol, name)


def truth_of(inputs, scale=1.0):
    """The recurrence in float64 on the same values: the truth."""
    return run(torch_attention(scale), *inputs, torch.float64, torch.float64)


@pytest.mark.parametrize("d_k,d_v", HEAD_DIMS)
@pytest.mark.parametrize("T", LENGTHS)
def test_fp32_matches_recurrent_form_forward_and_grads(T, d_k, d_v):
    """fp32 kernel = the recurrence evaluated in float64 (the truth), to 1e-5 scaled error, for
    the outputs, the final state and the gradients of q, k, v, log_alpha and the initial state."""
    inputs = make_inputs(T, d_k, d_v)
    scale = d_k**-0.5
    got = run(kernel_attention(scale), *inputs, torch.float32)
    o, final, _, _, _, d_log_alpha, _ = got
    assert o.dtype == torch.float32 and o.shape == (2, 2, T, d_v)
    assert final.dtype == torch.float32 and final.shape == (2, 2, d_k, d_v)
    assert d_log_alpha.dtype == torch.float32 and d_log_alpha.shape == (2, 2, T, d_k)
    assert_all_agree(got, truth_of(inputs, scale))


# (D_k, D_v) wider than one key tile of 128: two key blocks (and two value blocks), four key blocks.
WIDE_KEYS = [(256, 80), (512, 16)]


@pytest.mark.parametrize("with_state", [True, False], ids=["initial state", "no initial state"])
@pytest.mark.parametrize("d_k,d_v", WIDE_KEYS)
def test_wide_keys_forward_and_grads(d_k, d_v, with_state):
    """D_k = 256 and 512: key blocks of 128 are programs of their own in every kernel; each builds
    its share of the scores A, and the host adds the shares of o and dv. fp32 = the float64
    recurrence to 1e-5, o, S_T and every gradient. T = 40 at D_k = 256: two chunks of 32, three
    sub-chunks; T = 20 at D_k = 512 (one chunk of two sub-chunks: the interpreter is slow there)."""
    T = 40 if d_k <= 256 else 20
    q, k, v, log_alpha, h0, probe_o, probe_s = make_inputs(T, d_k, d_v, B=1, H=1, seed=d_k)
    inputs = q, k, v, log_alpha, h0 if with_state else None, probe_o, probe_s
    got = run(kernel_attention(d_k**-0.5), *inputs, torch.float32)
    truth = run(torch_attention(d_k**-0.5), *inputs, torch.float64, torch.float64)
    assert len(got) == (7 if with_state else 6)
    assert_all_agree(got, truth)


@pytest.mark.parametrize("d_k,d_v", [(8, 80), (128, 16)])
def test_head_dims_outside_one_small_tile(d_k, d_v):
    """D_k < 16 is padded up to a tl.dot tile; D_v = 80 takes two value blocks, whose partial sums
    of dq, dk the host adds (and over which the intra-chunk gradient kernel loops for dO V^T);
    D_k = 128 is the largest key tile."""
    inputs = make_inputs(17, d_k, d_v, B=1, log_gate="mixed")
    assert_all_agree(run(kernel_attention(1.0), *inputs, torch.float32), truth_of(inputs))


@pytest.mark.parametrize("log_gate", [-20.0, -1e3, "mixed"])
def test_strong_decay_stays_finite_and_matches(log_gate):
    """log gates of -20 (or -1e3) per step: exp(-b_j) would be exp(+800) = inf by step 40.

    Every exponent the kernel forms is a sum of log gates (<= 0), so every factor lies in [0, 1]
    and the results stay finite and agree with the recurrence. "mixed" (mild gates, a -1e3 step
    every 10 steps) catches log ratios formed as differences of cumulative sums b_i - b_j, which
    cancel in fp32 after the strong step; the kernel sums only the gates between the two positions.
    """
    inputs = make_inputs(40, 16, 16, log_gate=log_gate)
    got = run(kernel_attention(1.0), *inputs, torch.float32)
    for name, x in zip(NAMES, got):
        assert torch.isfinite(x).all(), f"{name} is not finite"
    assert_all_agree(got, truth_of(inputs))
    if log_gate == -1e3:
        # exp(-1e3) is 0 in any float type: only the current token is remembered, o_t = (q_t . k_t) v_t.
        q, k, v = inputs[:3]
        assert_agree(got[0], (q * k).sum(-1, keepdim=True) * v, 1e-5, "outputs vs the current token alone")


def test_gates_differ_per_key_dim():
    """Half the key dims never forget (log alpha = 0), the other half reset every step (-1e3): the
    output is the ungated attention over the first half plus the current token over the second."""
    q, k, v, log_alpha, _, _, _ = make_inputs(40, 16, 24, B=1)
    log_alpha = torch.zeros_like(log_alpha)
    log_alpha[..., 8:] = -1e3
    o = chunk_gla(q, k, v, log_alpha, chunk_size=CHUNK)
    remembered = chunk_linear_attention(q[..., :8].contiguous(), k[..., :8].contiguous(), v, chunk_size=CHUNK)
    current = (q[..., 8:] * k[..., 8:]).sum(-1, keepdim=True) * v
    assert_agree(o, remembered + current, 1e-5, "o")


def test_log_alpha_zero_is_plain_linear_attention():
    """With every gate 1 (log_alpha = 0) the kernel equals the ungated kernel, gradients included;
    d log_alpha (which the ungated kernel has not) agrees with the recurrence."""
    q, k, v, log_alpha, h0, probe_o, probe_s = make_inputs(40, 16, 24)
    inputs = [q, k, v, torch.zeros_like(log_alpha), h0, probe_o, probe_s]
    got = run(kernel_attention(0.5), *inputs, torch.float32)

    leaves = [t.detach().clone().requires_grad_() for t in (q, k, v, h0)]
    o, final = chunk_linear_attention(*leaves[:3], scale=0.5, initial_state=leaves[3], output_final_state=True,
                                      chunk_size=CHUNK)
    grads = torch.autograd.grad((o * probe_o).sum() + (final * probe_s).sum(), leaves)
    for name, a, b in zip(["o", "final state", "dq", "dk", "dv", "d initial state"],
                          [*got[:5], got[6]], [o, final, *grads]):
        assert_agree(a, b, 1e-5, name)
    assert_agree(got[5], truth_of(inputs, 0.5)[5], 1e-5, "d log_alpha")


def test_equal_gates_across_key_dims_is_the_scalar_gated_kernel():
    """With alpha_td = a_t for every d, GLA is scalar-gated attention: same outputs, states and
    gradients, and d log_decay_t = sum_d d log_alpha_td."""
    q, k, v, log_alpha, h0, probe_o, probe_s = make_inputs(40, 16, 24)
    log_decay = log_alpha[..., 0]
    got = run(kernel_attention(0.5), q, k, v, log_decay[..., None].expand_as(q), h0, probe_o, probe_s, torch.float32)

    def scalar(q, k, v, log_decay, h0):
        return chunk_scalar_gated_attention(q, k, v, log_decay, scale=0.5, initial_state=h0,
                                            output_final_state=True, chunk_size=CHUNK)

    ref = run(scalar, q, k, v, log_decay, h0, probe_o, probe_s, torch.float32)
    got[5] = got[5].sum(-1)
    assert_all_agree(got, ref)


def test_defaults_no_state_in_or_out():
    """Without states the call returns o alone, with scale 1 and chunks of 64, and q, k, v,
    log_alpha get gradients."""
    q, k, v, log_alpha, _, probe_o, _ = make_inputs(23, 16, 16, B=1)
    leaves = [t.requires_grad_() for t in (q, k, v, log_alpha)]
    o = chunk_gla(*leaves)
    assert isinstance(o, torch.Tensor) and o.shape == v.shape
    grads = torch.autograd.grad((o * probe_o).sum(), leaves)
    leaves64 = [t.detach().double().requires_grad_() for t in leaves]
    ref = gla_recurrent(*leaves64)
    grads_ref = torch.autograd.grad((ref * probe_o.double()).sum(), leaves64)
    assert_agree(o, ref, 1e-5, "o")
    for name, g, g_ref in zip(["dq", "dk", "dv", "d log_alpha"], grads, grads_ref):
        assert_agree(g, g_ref, 1e-5, name)


@pytest.mark.parametrize("chunk_size", [16, 64])
def test_chunk_size_does_not_change_the_result(chunk_size):
    """Chunks of 16 (the diagonal sub-chunk alone) and of 64 (three sub-chunks at T = 40: query
    sub-chunk 2 reaches key sub-chunk 0 across the whole of sub-chunk 1), gradients included."""
    inputs = make_inputs(40, 16, 24, B=1, log_gate="mixed")
    assert_all_agree(run(kernel_attention(1.0, chunk_size), *inputs, torch.float32), truth_of(inputs))


def test_state_carries_across_calls():
    """Two calls chained through the state equal one call over the whole sequence."""
    q, k, v, log_alpha, h0, _, _ = make_inputs(40, 16, 24, B=1)
    full, final = kernel_attention(1.0)(q, k, v, log_alpha, h0)
    first, mid = kernel_attention(1.0)(q[:, :, :21], k[:, :, :21], v[:, :, :21], log_alpha[:, :, :21], h0)
    second, final2 = kernel_attention(1.0)(q[:, :, 21:], k[:, :, 21:], v[:, :, 21:], log_alpha[:, :, 21:], mid)
    assert_agree(torch.cat([first, second], 2), full, 1e-5, "o")
    assert_agree(final2, final, 1e-5, "final state")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_error_within_twice_pytorchs(dtype):
    """fp16/bf16 inputs (log gates too): each result's error against the truth is at most twice
    that of PyTorch's chunkwise form run in the same dtype, plus a floor of 1e-6.

    Inputs and cotangents are rounded to dtype first, so the truth (float64 on the very same
    values) differs from both only by arithmetic, not by input rounding. The kernel accumulates
    in fp32 and rounds its outputs once; PyTorch rounds every intermediate to dtype.
    """
    inputs = [t.to(dtype).float() for t in make_inputs(40, 24, 32, B=1)]
    got = run(kernel_attention(1.0), *inputs, dtype)
    same_dtype = run(torch_attention(1.0, gla_chunkwise, chunk_size=CHUNK), *inputs, dtype, dtype)
    truth = truth_of(inputs)
    assert got[0].dtype == dtype and got[1].dtype == torch.float32 and got[5].dtype == dtype
    for name, a, b, t in zip(NAMES, got, same_dtype, truth):
        err, err_torch = max_scaled_error(a, t), max_scaled_error(b, t)
        assert err <= 2 * err_torch + 1e-6, f"{name}: kernel error {err:.3g} > 2 x PyTorch {dtype} error {err_torch:.3g}"


@pytest.mark.parametrize(
    "log_alpha_shape,match",
    [
        ((2, 2, 8), r"log_alpha must have shape \(B, H, T, D_k\) = \(2, 2, 8, 16\).*got shape \(2, 2, 8\)"),
        ((2, 2, 8, 1), r"log_alpha must have shape \(B, H, T, D_k\).*got shape \(2, 2, 8, 1\)"),
        ((2, 2, 9, 16), r"log_alpha must have shape \(B, H, T, D_k\).*got shape \(2, 2, 9, 16\)"),
    ],
)
def test_bad_log_alpha_shape_raises_value_error(log_alpha_shape, match):
    q, k, v = (torch.randn(2, 2, 8, 16, device=DEVICE) for _ in range(3))
    with pytest.raises(ValueError, match=match):
        chunk_gla(q, k, v, -torch.rand(*log_alpha_shape, device=DEVICE))


@pytest.mark.parametrize("bad", [0.5, float("inf"), float("nan"), float("-inf")])
def test_positive_or_nonfinite_log_alpha_raises_value_error(bad):
    q, k, v = (torch.randn(2, 2, 8, 16, device=DEVICE) for _ in range(3))
    log_alpha = -torch.rand(2, 2, 8, 16, device=DEVICE)
    log_alpha[1, 0, 3, 5] = bad
    with pytest.raises(ValueError, match=r"log_alpha must be finite and <= 0"):
        chunk_gla(q, k, v, log_alpha)


def test_bad_qkv_state_and_chunk_size():
    q, k, v = (torch.randn(2, 2, 8, 16, device=DEVICE) for _ in range(3))
    log_alpha = -torch.rand(2, 2, 8, 16, device=DEVICE)
    with pytest.raises(ValueError, match=r"share the length T.*\(2, 2, 9, 16\)"):
        chunk_gla(q, k, torch.randn(2, 2, 9, 16, device=DEVICE), log_alpha)
    with pytest.raises(ValueError, match=r"q must have shape \(B, H, T, D\); got shape \(8, 16\)"):
        chunk_gla(q[0, 0], k, v, log_alpha)
    with pytest.raises(ValueError, match=r"D_k must be at most 512.*\(1, 1, 4, 520\)"):
        wide = torch.randn(1, 1, 4, 520, device=DEVICE)
        chunk_gla(wide, wide, v[:1, :1, :4], -torch.rand(1, 1, 4, 520, device=DEVICE))
    with pytest.raises(ValueError, match=r"initial_state must have shape.*\(2, 2, 16, 16\).*\(2, 2, 16, 15\)"):
        chunk_gla(q, k, v, log_alpha, initial_state=torch.zeros(2, 2, 16, 15, device=DEVICE))
    with pytest.raises(ValueError, match=r"chunk_size must be a power of two >= 16.*got 24"):
        chunk_gla(q, k, v, log_alpha, chunk_size=24)
    with pytest.raises(ValueError, match="log_alpha must be fp32, fp16 or bf16"):
        chunk_gla(q, k, v, log_alpha.double())


def test_cpu_tensors_without_the_interpreter_raise(monkeypatch):
    # The check is shared by every kernel module and reads lablib.kernels._base's flag.
    monkeypatch.setattr(base_module, "INTERPRETED", False)
    q, k, v = (torch.randn(1, 1, 4, 16) for _ in range(3))
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1.*lablib.attention"):
        chunk_gla(q, k, v, torch.zeros(1, 1, 4, 16))


# Under TRITON_INTERPRET=1 these would run interpreted (slowly) and test nothing compiled.
@pytest.mark.skipif(INTERPRETED, reason="kernels are interpreted in this run; TRITON_INTERPRET=0 checks them compiled")
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: compiled kernels are checked on a GPU machine")
class TestCompiledOnCuda:
    """Long sequences and realistic head dims, compiled. The truth is PyTorch's chunkwise form in
    float64 on the GPU (the recurrent form would take T Python steps)."""

    @pytest.mark.parametrize("log_gate", [None, "mixed"])
    @pytest.mark.parametrize("d", [64, 128])
    def test_fp32_long_sequence_matches_float64(self, d, log_gate):
        inputs = make_inputs(1000, d, d, log_gate=log_gate, device="cuda")
        scale = d**-0.5
        reference = torch_attention(scale, form=gla_chunkwise, chunk_size=64)
        got = run(kernel_attention(scale, 64), *inputs, torch.float32)
        truth = run(reference, *inputs, torch.float64, torch.float64)
        assert_all_agree(got, truth)

    @pytest.mark.parametrize("d", [64, 128])
    def test_bf16_error_within_twice_pytorchs(self, d):
        bf16 = torch.bfloat16
        inputs = [t.to(bf16).float() for t in make_inputs(1000, d, d, H=4, device="cuda")]
        reference = torch_attention(d**-0.5, form=gla_chunkwise, chunk_size=64)
        got = run(kernel_attention(d**-0.5, 64), *inputs, bf16)
        same = run(reference, *inputs, bf16, bf16)
        truth = run(reference, *inputs, torch.float64, torch.float64)
        for name, a, b, t in zip(NAMES, got, same, truth):
            err, err_torch = max_scaled_error(a, t), max_scaled_error(b, t)
            assert err <= 2 * err_torch + 1e-6, f"{name}: kernel error {err:.3g} > 2 x PyTorch bf16 error {err_torch:.3g}"
