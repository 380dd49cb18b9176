"""The Triton chunkwise linear-attention kernel agrees with lablib's PyTorch forms.

Without a GPU the kernels run under the Triton interpreter on CPU tensors; Triton chooses
interpreted or compiled when the kernels are defined, so the variable must be set before
lablib.kernels is imported. With TRITON_INTERPRET=0 on a GPU machine the same tests run the
compiled kernels on CUDA tensors, and so does the long-sequence class at the end.
"""

import os

os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

import lablib.kernels._base as base_module  # noqa: E402
from lablib.attention import (  # noqa: E402
    LinearAttentionState,
    linear_attention_chunkwise,
    linear_attention_recurrent,
    random_qkv,
)
from lablib.kernels.linear_attention import INTERPRETED, chunk_linear_attention, fused_recurrent_step  # noqa: E402
from lablib.testing import assert_agree, max_scaled_error  # noqa: E402

# Interpreted kernels take CPU tensors; compiled ones take CUDA tensors.
DEVICE = "cpu" if INTERPRETED else "cuda"
pytestmark = pytest.mark.skipif(
    not INTERPRETED and not torch.cuda.is_available(),
    reason="TRITON_INTERPRET=0 and no CUDA device: nothing can run the kernels",
)

LENGTHS = [1, 7, 16, 17, 40]  # one token, under one chunk, exactly one, one more, ragged last chunk
HEAD_DIMS = [(16, 24), (24, 32), (32, 16)]  # (D_k, D_v): 24 is not a power of two
CHUNK = 16


def make_inputs(T, d_k, d_v, B=2, H=2, seed=0, device=DEVICE):
    """q, k, v (fp32), an initial state, and random cotangents for o and the final state."""
    q, k, v = random_qkv(T, B=B, H=H, d_k=d_k, d_v=d_v, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    h0, probe_o, probe_s = (torch.randn(*shape, generator=g) for shape in
                            [(B, H, d_k, d_v), (B, H, T, d_v), (B, H, d_k, d_v)])
    return [t.to(device) for t in (q, k, v, h0, probe_o, probe_s)]


def kernel_attention(scale, chunk_size=CHUNK):
    def attn(q, k, v, h0):
        return chunk_linear_attention(
            q, k, v, scale=scale, initial_state=h0, output_final_state=True, chunk_size=chunk_size
        )
    return attn


def torch_attention(scale, form=linear_attention_recurrent, **kw):
    """lablib's PyTorch form with the kernel's conventions: identity map, unnormalized, q scaled."""
    def attn(q, k, v, h0):
        state = None if h0 is None else LinearAttentionState(h0, h0.new_zeros(h0.shape[:3]))  # k_sum unused
        o, final = form(q * scale, k, v, feature_map="identity", normalize=False,
                        initial_state=state, return_state=True, **kw)
        return o, final.kv
    return attn


def run(attn, q, k, v, h0, probe_o, probe_s, dtype, state_dtype=torch.float32):
    """attn on copies cast to dtype (state to state_dtype): o, final state, grads of q, k, v, h0
    (h0 None: no initial state, and no gradient for it).

    The loss reaches both outputs, so the gradients include the path through the final state.
    """
    leaves = [t.detach().to(dtype).requires_grad_() for t in (q, k, v)]
    if h0 is not None:
        leaves.append(h0.detach().to(state_dtype).requires_grad_())
    o, final = attn(*leaves[:3], leaves[3] if h0 is not None else None)
    loss = (o * probe_o.to(o.dtype)).sum() + (final * probe_s.to(final.dtype)).sum()
    return o, final, torch.autograd.grad(loss, leaves)


NAMES = ["o", "final state", "dq", "dk", "dv", "d initial state"]


def flat(o, final, grads):
    return [o, final, *grads]


def assert_within_twice_pytorch(got, same_dtype, truth, dtype):
    """Each of the kernel's results errs from the truth by at most 2x PyTorch's in dtype (+1e-6)."""
    for name, a, b, t in zip(NAMES, flat(*got), flat(*same_dtype), flat(*truth)):
        err, err_torch = max_scaled_error(a, t), max_scaled_error(b, t)
        assert err <= 2 * err_torch + 1e-6, f"{name}: kernel error {err:.3g} > 2 x PyTorch {dtype} error {err_torch:.3g}"


@pytest.mark.parametrize("d_k,d_v", HEAD_DIMS)
@pytest.mark.parametrize("T", LENGTHS)
def test_fp32_matches_recurrent_form_forward_and_grads(T, d_k, d_v):
    """fp32 kernel = the recurrent form evaluated in float64 (the truth), to 1e-5 scaled error."""
    q, k, v, h0, probe_o, probe_s = make_inputs(T, d_k, d_v)
    scale = d_k**-0.5
    got = run(kernel_attention(scale), q, k, v, h0, probe_o, probe_s, torch.float32)
    truth = run(torch_attention(scale), q, k, v, h0, probe_o, probe_s, torch.float64, torch.float64)
    o, final, _ = got
    assert o.dtype == torch.float32 and o.shape == (2, 2, T, d_v)
    assert final.dtype == torch.float32 and final.shape == (2, 2, d_k, d_v)
    for name, a, b in zip(NAMES, flat(*got), flat(*truth)):
        assert_agree(a, b, 1e-5, name)


# (D_k, D_v) wider than one key tile of 128: two key blocks (and two value blocks), four key blocks.
WIDE_KEYS = [(256, 80), (512, 16)]


@pytest.mark.parametrize("with_state", [True, False], ids=["initial state", "no initial state"])
@pytest.mark.parametrize("d_k,d_v", WIDE_KEYS)
def test_wide_keys_forward_and_grads(d_k, d_v, with_state):
    """D_k = 256 and 512: key blocks of 128 are programs of their own, and the host adds their shares
    of o and dv. fp32 = the float64 recurrence to 1e-5, o, S_T and every gradient."""
    q, k, v, h0, probe_o, probe_s = make_inputs(20, d_k, d_v, B=1, H=1, seed=d_k)
    h0 = h0 if with_state else None
    got = run(kernel_attention(d_k**-0.5), q, k, v, h0, probe_o, probe_s, torch.float32)
    truth = run(torch_attention(d_k**-0.5), q, k, v, h0, probe_o, probe_s, torch.float64, torch.float64)
    assert len(got[2]) == (4 if with_state else 3)
    for name, a, b in zip(NAMES, flat(*got), flat(*truth)):
        assert_agree(a, b, 1e-5, name)


@pytest.mark.parametrize("d_k,d_v", [(8, 80), (128, 16)])
def test_head_dims_outside_one_small_tile(d_k, d_v):
    """D_k < 16 is padded up to a tl.dot tile; D_v = 80 takes two value blocks, whose partial
    sums of dq and dk the host adds; D_k = 128 is the largest key tile."""
    q, k, v, h0, probe_o, probe_s = make_inputs(17, d_k, d_v, B=1)
    got = run(kernel_attention(1.0), q, k, v, h0, probe_o, probe_s, torch.float32)
    truth = run(torch_attention(1.0), q, k, v, h0, probe_o, probe_s, torch.float64, torch.float64)
    for name, a, b in zip(NAMES, flat(*got), flat(*truth)):
        assert_agree(a, b, 1e-5, name)


def test_defaults_no_state_in_or_out():
    """Without states the call returns o alone, with scale 1, and q, k, v still get gradients."""
    q, k, v, _, probe_o, _ = make_inputs(23, 16, 16)
    q, k, v = (t.requires_grad_() for t in (q, k, v))
    o = chunk_linear_attention(q, k, v, chunk_size=CHUNK)
    assert isinstance(o, torch.Tensor) and o.shape == v.shape
    grads = torch.autograd.grad((o * probe_o).sum(), (q, k, v))
    q64, k64, v64 = (t.detach().double().requires_grad_() for t in (q, k, v))
    ref = linear_attention_recurrent(q64, k64, v64, feature_map="identity", normalize=False)
    grads_ref = torch.autograd.grad((ref * probe_o.double()).sum(), (q64, k64, v64))
    assert_agree(o, ref, 1e-5, "o")
    for name, g, g_ref in zip(["dq", "dk", "dv"], grads, grads_ref):
        assert_agree(g, g_ref, 1e-5, name)


@pytest.mark.parametrize("chunk_size", [16, 32, 64])
def test_chunk_size_does_not_change_the_result(chunk_size):
    q, k, v, h0, _, _ = make_inputs(40, 16, 24)
    ref, ref_final = torch_attention(1.0)(*(t.double() for t in (q, k, v, h0)))
    o, final = kernel_attention(1.0, chunk_size)(q, k, v, h0)
    assert_agree(o, ref, 1e-5, "o")
    assert_agree(final, ref_final, 1e-5, "final state")


def test_state_carries_across_calls():
    """Two calls chained through the state equal one call over the whole sequence."""
    q, k, v, h0, _, _ = make_inputs(40, 16, 24)
    full, final = kernel_attention(1.0)(q, k, v, h0)
    first, mid = kernel_attention(1.0)(q[:, :, :21], k[:, :, :21], v[:, :, :21], h0)
    second, final2 = kernel_attention(1.0)(q[:, :, 21:], k[:, :, 21:], v[:, :, 21:], mid)
    assert_agree(torch.cat([first, second], 2), full, 1e-5, "o")
    assert_agree(final2, final, 1e-5, "final state")


@pytest.mark.parametrize("T", [17, 40])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_error_within_twice_pytorchs(dtype, T):
    """fp16/bf16 inputs: the kernel's error against the truth is at most twice the error of
    PyTorch's chunkwise form run in the same dtype, plus a tiny floor.

    Inputs and cotangents are rounded to dtype first, so the truth (float64 on the very same
    values) differs from both only by arithmetic, not by input rounding. The kernel accumulates
    in fp32 and rounds its outputs once; PyTorch rounds every intermediate to dtype. (The Triton
    interpreter rounds fp32 -> bf16 toward zero, not to nearest as a GPU does, which doubles that
    one rounding: interpreted bf16 errors sit closer to the 2x bound than compiled ones.)
    """
    q, k, v, h0, probe_o, probe_s = (t.to(dtype).float() for t in make_inputs(T, 24, 32))
    got = run(kernel_attention(1.0), q, k, v, h0, probe_o, probe_s, dtype)
    same_dtype = run(torch_attention(1.0, linear_attention_chunkwise, chunk_size=CHUNK),
                     q, k, v, h0, probe_o, probe_s, dtype, dtype)
    truth = run(torch_attention(1.0), q, k, v, h0, probe_o, probe_s, torch.float64, torch.float64)
    assert got[0].dtype == dtype and got[1].dtype == torch.float32
    assert_within_twice_pytorch(got, same_dtype, truth, dtype)


@pytest.mark.parametrize(
    "shapes,match",
    [
        (((2, 16), (2, 2, 8, 16), (2, 2, 8, 16)), r"q must have shape \(B, H, T, D\); got shape \(2, 16\)"),
        (((2, 2, 8, 16), (2, 2, 8, 24), (2, 2, 8, 16)), r"share the key dim.*\(2, 2, 8, 16\).*\(2, 2, 8, 24\)"),
        (((2, 2, 8, 16), (2, 2, 8, 16), (2, 2, 9, 16)), r"share the length T.*\(2, 2, 9, 16\)"),
        (((2, 2, 8, 16), (2, 3, 8, 16), (2, 3, 8, 16)), r"batch and head.*\(2, 3, 8, 16\)"),
        (((2, 2, 5, 16), (2, 2, 8, 16), (2, 2, 8, 16)), r"as many queries.*\(2, 2, 5, 16\)"),
        (((1, 1, 8, 520), (1, 1, 8, 520), (1, 1, 8, 16)), r"at most 512.*\(1, 1, 8, 520\)"),
    ],
)
def test_bad_shapes_raise_value_error_naming_the_shape(shapes, match):
    q, k, v = (torch.randn(*s, device=DEVICE) for s in shapes)
    with pytest.raises(ValueError, match=match):
        chunk_linear_attention(q, k, v)


def test_bad_state_dtype_and_chunk_size():
    q, k, v = (torch.randn(2, 2, 8, 16, device=DEVICE) for _ in range(3))
    with pytest.raises(ValueError, match=r"initial_state must have shape.*\(2, 2, 16, 16\).*\(2, 2, 16, 15\)"):
        chunk_linear_attention(q, k, v, initial_state=torch.zeros(2, 2, 16, 15, device=DEVICE))
    with pytest.raises(ValueError, match=r"chunk_size must be a power of two >= 16.*got 24"):
        chunk_linear_attention(q, k, v, chunk_size=24)
    with pytest.raises(ValueError, match="share a dtype"):
        chunk_linear_attention(q, k.half(), v)
    with pytest.raises(ValueError, match="share a dtype"):
        chunk_linear_attention(q.double(), k.double(), v.double())


def test_cpu_tensors_without_the_interpreter_raise(monkeypatch):
    monkeypatch.setattr(base_module, "INTERPRETED", False)  # the flag the host checks read
    q, k, v = (torch.randn(1, 1, 4, 16) for _ in range(3))
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1.*lablib.attention"):
        chunk_linear_attention(q, k, v)


@pytest.mark.parametrize("d_k", [24, 512])
def test_fused_step_matches_recurrent_form(d_k):
    """Five single-token steps from a random state = the recurrent form over those five tokens.
    D_v = 80: two value blocks; D_k = 512: four key blocks, whose shares of o_t the host adds."""
    T, d_v, scale, B = 5, 80, 0.5, (2 if d_k <= 128 else 1)
    q, k, v, h0, _, _ = make_inputs(T, d_k, d_v, B=B)
    ref, ref_final = torch_attention(scale)(*(t.double() for t in (q, k, v, h0)))
    state, outs = h0, []
    for t in range(T):
        o_t, new_state = fused_recurrent_step(q[:, :, t:t + 1], k[:, :, t:t + 1], v[:, :, t:t + 1], state, scale=scale)
        assert o_t.shape == (B, 2, 1, d_v) and new_state.dtype == torch.float32
        assert new_state is not state
        state = new_state
        outs.append(o_t)
    assert_agree(torch.cat(outs, 2), ref, 1e-5, "outputs")
    assert_agree(state, ref_final, 1e-5, "state")


def test_prefill_then_decode():
    """A chunkwise prefill's final state carries straight into fused decoding steps."""
    q, k, v, _, _, _ = make_inputs(20, 16, 16, B=1)
    full = chunk_linear_attention(q, k, v, chunk_size=CHUNK)
    prefix, state = chunk_linear_attention(q[:, :, :17], k[:, :, :17], v[:, :, :17], output_final_state=True,
                                           chunk_size=CHUNK)
    outs = [prefix]
    for t in range(17, 20):
        o_t, state = fused_recurrent_step(q[:, :, t:t + 1], k[:, :, t:t + 1], v[:, :, t:t + 1], state)
        outs.append(o_t)
    assert_agree(torch.cat(outs, 2), full, 1e-5, "outputs")


def test_fused_step_bad_shapes():
    q, k, v = (torch.randn(2, 2, 3, 16, device=DEVICE) for _ in range(3))
    state = torch.zeros(2, 2, 16, 16, device=DEVICE)
    with pytest.raises(ValueError, match=r"one token.*\(2, 2, 3, 16\)"):
        fused_recurrent_step(q, k, v, state)
    with pytest.raises(ValueError, match=r"state must have shape.*\(2, 2, 16, 16\).*\(2, 16, 16\)"):
        fused_recurrent_step(q[:, :, :1], k[:, :, :1], v[:, :, :1], state[0])


# Under TRITON_INTERPRET=1 these would run interpreted (slowly) and test nothing compiled.
@pytest.mark.skipif(INTERPRETED, reason="kernels are interpreted in this run; TRITON_INTERPRET=0 checks them compiled")
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: compiled kernels are checked on a GPU machine")
class TestCompiledOnCuda:
    """Long sequences and realistic head dims, compiled. The truth is PyTorch's chunkwise form in
    float64 on the GPU (the recurrent form would take T Python steps)."""

    @pytest.mark.parametrize("d", [64, 128])
    @pytest.mark.parametrize("T", [1000, 4096])
    def test_bf16_error_within_twice_pytorchs(self, T, d):
        bf16 = torch.bfloat16
        inputs = [t.to(bf16).float() for t in make_inputs(T, d, d, H=4, device="cuda")]
        reference = torch_attention(d**-0.5, form=linear_attention_chunkwise, chunk_size=64)
        got = run(kernel_attention(d**-0.5, 64), *inputs, bf16)
        same = run(reference, *inputs, bf16, bf16)
        truth = run(reference, *inputs, torch.float64, torch.float64)
        assert_within_twice_pytorch(got, same, truth, bf16)

    @pytest.mark.parametrize("d", [64, 128])
    def test_fp32_long_sequence_matches_float64(self, d):
        q, k, v, h0, probe_o, probe_s = make_inputs(1000, d, d, device="cuda")
        scale = d**-0.5
        chunkwise = dict(form=linear_attention_chunkwise, chunk_size=64)
        got = run(kernel_attention(scale, 64), q, k, v, h0, probe_o, probe_s, torch.float32)
        truth = run(torch_attention(scale, **chunkwise), q, k, v, h0, probe_o, probe_s, torch.float64, torch.float64)
        for name, a, b in zip(NAMES, flat(*got), flat(*truth)):
            assert_agree(a, b, 1e-5, name)

    def test_fused_step_on_cuda(self):
        q, k, v, h0, _, _ = make_inputs(3, 64, 64, device="cuda")
        ref, ref_final = torch_attention(1.0)(*(t.double() for t in (q, k, v, h0)))
        state, outs = h0, []
        for t in range(3):
            o_t, state = fused_recurrent_step(q[:, :, t:t + 1], k[:, :, t:t + 1], v[:, :, t:t + 1], state)
            outs.append(o_t)
        assert_agree(torch.cat(outs, 2), ref, 1e-5, "outputs")
        assert_agree(state, ref_final, 1e-5, "state")
