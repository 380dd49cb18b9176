"""The Triton diagonal-recurrence kernel (lablib.kernels.scan) agrees with lablib's PyTorch loop.

The truth is ``diagonal_recurrence_loop`` evaluated in float64 (complex128) on the very same
inputs, values and gradients (through autograd). Without a GPU the kernels run under the Triton
interpreter on CPU tensors; Triton chooses interpreted or compiled when the kernels are defined,
so the variable must be set before lablib.kernels is imported. With TRITON_INTERPRET=0 on a GPU
machine the same tests run the compiled kernels on CUDA tensors, and so does the class at the end.
"""

import os

os.environ.setdefault("TRITON_INTERPRET", "1")

import math  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

import lablib.kernels._base as base_module  # noqa: E402
from lablib.kernels.scan import INTERPRETED, diagonal_scan  # noqa: E402
from lablib.koopman.recurrence import diagonal_recurrence_loop, diagonal_recurrence_scan  # noqa: E402
from lablib.testing import assert_agree, max_scaled_error  # noqa: E402

# Interpreted kernels take CPU tensors; compiled ones take CUDA tensors.
DEVICE = "cpu" if INTERPRETED else "cuda"
pytestmark = pytest.mark.skipif(
    not INTERPRETED and not torch.cuda.is_available(),
    reason="TRITON_INTERPRET=0 and no CUDA device: nothing can run the kernels",
)

LENGTHS = [1, 7, 16, 17, 100]  # one step, under one chunk, exactly one, one more, several + ragged
CHUNK = 16
N = 5  # not a power of two: one channel block, padded to 8
NAMES = ["h", "final", "dlambda", "dx", "dh0"]


def make_lambda(shape, magnitude, complex_=False, generator=None):
    """Random eigenvalues: "near1" |lambda| in [0.97, 0.999] (slow modes, long memory), "small"
    |lambda| <= 0.2 (fast decay), "mixed" |lambda| <= 0.95. Real ones take random signs; complex
    ones random phases."""
    lo, hi = {"near1": (0.97, 0.999), "small": (0.0, 0.2), "mixed": (0.0, 0.95)}[magnitude]
    r = lo + (hi - lo) * torch.rand(shape, generator=generator)
    if complex_:
        return torch.polar(r, (2 * torch.rand(shape, generator=generator) - 1) * math.pi)
    return r * torch.where(torch.rand(shape, generator=generator) < 0.5, -1.0, 1.0)


def make_inputs(T, n=N, lead=(2,), per_step=False, magnitude="mixed", complex_=False, seed=0, device=DEVICE):
    """lambda, x, h0 (fp32 or complex64) and random cotangents for h and the final state."""
    g = torch.Generator().manual_seed(seed)
    dtype = torch.complex64 if complex_ else torch.float32
    lam = make_lambda(lead + (T, n) if per_step else (n,), magnitude, complex_, g).to(dtype)
    x, h0, probe, probe_final = (torch.randn(*shape, generator=g, dtype=dtype)
                                 for shape in [lead + (T, n), lead + (n,), lead + (T, n), lead + (n,)])
    return [t.to(device) for t in (lam, x, h0, probe, probe_final)]


def kernel_scan(chunk_size=CHUNK):
    def scan(lam, x, h0):
        return diagonal_scan(lam, x, h0=h0, return_final=True, chunk_size=chunk_size)
    return scan


def torch_loop(lam, x, h0):
    h = diagonal_recurrence_loop(lam, x, h0)
    return h, h[..., -1, :]


def dot(a, b):
    """Re sum(a conj(b)): a real loss whose gradient with respect to a is b (also for complex)."""
    if a.is_complex():
        return (torch.view_as_real(a) * torch.view_as_real(b.to(a.dtype))).sum()
    return (a * b.to(a.dtype)).sum()


def run(scan, lam, x, h0, probe, probe_final, dtype, h0_dtype=None):
    """scan on copies cast to dtype (h0 to h0_dtype): h, final state, grads of lambda, x, h0.

    The loss reaches both outputs, so the gradients include the path through the final state.
    """
    leaves = [t.detach().to(dtype).requires_grad_() for t in (lam, x)]
    leaves.append(h0.detach().to(h0_dtype or dtype).requires_grad_())
    h, final = scan(*leaves)
    loss = dot(h, probe) + dot(final, probe_final)
    return [h, final, *torch.autograd.grad(loss, leaves)]


def truth_dtype(t):
    return torch.complex128 if t.is_complex() else torch.float64


def as_real(t):
    """Complex tensors as (re, im) pairs: lablib.testing's helpers cast to float64, which would
    silently drop the imaginary parts."""
    return torch.view_as_real(t) if t.is_complex() else t


def assert_all_agree(got, truth, tol):
    for name, a, b in zip(NAMES, got, truth):
        assert_agree(as_real(a), as_real(b), tol, name)


def assert_within_twice_pytorch(got, same_dtype, truth, dtype):
    """Each result errs from the truth by at most 2x the same-dtype PyTorch's (+1e-6)."""
    for name, a, b, t in zip(NAMES, got, same_dtype, truth):
        err, err_torch = max_scaled_error(a, t), max_scaled_error(b, t)
        assert err <= 2 * err_torch + 1e-6, f"{name}: kernel error {err:.3g} > 2 x PyTorch {dtype} error {err_torch:.3g}"


@pytest.mark.parametrize("per_step", [False, True], ids=["lambda_N", "lambda_per_step"])
@pytest.mark.parametrize("T", LENGTHS)
def test_fp32_matches_float64_loop_values_and_grads(T, per_step):
    inputs = make_inputs(T, per_step=per_step)
    got = run(kernel_scan(), *inputs, torch.float32)
    truth = run(torch_loop, *inputs, torch.float64)
    h, final = got[:2]
    assert h.dtype == torch.float32 and h.shape == (2, T, N)
    assert final.dtype == torch.float32 and final.shape == (2, N)
    assert got[2].shape == inputs[0].shape
    assert_all_agree(got, truth, 1e-5)


@pytest.mark.parametrize("magnitude", ["near1", "small"])
@pytest.mark.parametrize("per_step", [False, True], ids=["lambda_N", "lambda_per_step"])
def test_eigenvalue_magnitudes_near_one_and_small(per_step, magnitude):
    """|lambda| near 1 keeps a long memory (h grows to ~1/(1-|lambda|), errors accumulate over
    the whole sequence); small |lambda| forgets within a few steps (products underflow-prone)."""
    inputs = make_inputs(100, per_step=per_step, magnitude=magnitude, seed=1)
    got = run(kernel_scan(), *inputs, torch.float32)
    truth = run(torch_loop, *inputs, torch.float64)
    assert_all_agree(got, truth, 1e-5)


def test_several_channel_blocks_and_leading_dims():
    """N = 40 takes two channel blocks (32 + 8 padded to 32); leading dims (2, 3) are flattened."""
    inputs = make_inputs(17, n=40, lead=(2, 3), per_step=True, seed=2)
    got = run(kernel_scan(), *inputs, torch.float32)
    truth = run(torch_loop, *inputs, torch.float64)
    assert got[0].shape == (2, 3, 17, 40) and got[1].shape == (2, 3, 40)
    assert_all_agree(got, truth, 1e-5)


def test_defaults_no_h0_no_final():
    """Without h0 the state starts at zero; without return_final the call returns h alone, and
    lambda (N,) and x still get gradients (dlambda summed over rows and time)."""
    lam, x, _, probe, _ = make_inputs(23, lead=(3,))
    lam, x = lam.requires_grad_(), x.requires_grad_()
    h = diagonal_scan(lam, x, chunk_size=CHUNK)
    assert isinstance(h, torch.Tensor) and h.shape == x.shape
    grads = torch.autograd.grad(dot(h, probe), (lam, x))
    lam64, x64 = (t.detach().double().requires_grad_() for t in (lam, x))
    ref = diagonal_recurrence_loop(lam64, x64)
    grads_ref = torch.autograd.grad(dot(ref, probe), (lam64, x64))
    assert_agree(h, ref, 1e-5, "h")
    for name, g, g_ref in zip(["dlambda", "dx"], grads, grads_ref):
        assert_agree(g, g_ref, 1e-5, name)


def test_gradient_through_the_final_state_alone():
    """Only the final state feeds the loss: dh is all zeros and g starts from d(final)."""
    lam, x, h0, _, probe_final = make_inputs(20, per_step=True, seed=3)
    leaves = [t.requires_grad_() for t in (lam, x, h0)]
    _, final = diagonal_scan(*leaves[:2], h0=leaves[2], return_final=True, chunk_size=CHUNK)
    grads = torch.autograd.grad(dot(final, probe_final), leaves)
    leaves64 = [t.detach().double().requires_grad_() for t in leaves]
    ref = diagonal_recurrence_loop(*leaves64)[..., -1, :]
    grads_ref = torch.autograd.grad(dot(ref, probe_final), leaves64)
    assert_agree(final, ref, 1e-5, "final")
    for name, g, g_ref in zip(["dlambda", "dx", "dh0"], grads, grads_ref):
        assert_agree(g, g_ref, 1e-5, name)


@pytest.mark.parametrize("chunk_size", [1, 2, 64])
def test_chunk_size_does_not_change_the_result(chunk_size):
    """chunk 1 is the plain sequential loop; 64 > T is one padded chunk."""
    inputs = make_inputs(20, per_step=True, seed=4)
    got = run(kernel_scan(chunk_size), *inputs, torch.float32)
    truth = run(torch_loop, *inputs, torch.float64)
    assert_all_agree(got, truth, 1e-5)


def test_state_carries_across_calls():
    """Two calls chained through the final state equal one call over the whole sequence."""
    lam, x, h0, _, _ = make_inputs(40, per_step=True, seed=5)
    full, final = kernel_scan()(lam, x, h0)
    first, mid = kernel_scan()(lam[:, :21], x[:, :21], h0)
    second, final2 = kernel_scan()(lam[:, 21:], x[:, 21:], mid)
    assert_agree(torch.cat([first, second], 1), full, 1e-6, "h")
    assert_agree(final2, final, 1e-6, "final")


@pytest.mark.parametrize("per_step", [False, True], ids=["lambda_N", "lambda_per_step"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
def test_half_precision_error_within_twice_pytorchs(dtype, per_step):
    """fp16/bf16 inputs: each result's error against the float64 truth is at most twice the error
    of the PyTorch loop run in the same dtype, plus 1e-6.

    Inputs and cotangents are rounded to dtype first, so the truth (float64 on the very same
    values) differs from both only by arithmetic. The kernel carries h in fp32 and rounds each
    output once; the loop rounds h at every step. |lambda| near 1 over 100 steps, where rounding
    errors accumulate. (The kernel's final state is fp32; the loop's is h_{T-1} in dtype.)
    """
    inputs = [t.to(dtype).float() for t in make_inputs(100, per_step=per_step, magnitude="near1", seed=6)]
    got = run(kernel_scan(), *inputs, dtype)
    same_dtype = run(torch_loop, *inputs, dtype)
    truth = run(torch_loop, *inputs, torch.float64)
    assert got[0].dtype == dtype and got[1].dtype == torch.float32
    assert got[2].dtype == dtype and got[3].dtype == dtype and got[4].dtype == dtype
    assert_within_twice_pytorch(got, same_dtype, truth, dtype)


@pytest.mark.parametrize("magnitude", ["near1", "mixed"])
@pytest.mark.parametrize("per_step", [False, True], ids=["lambda_N", "lambda_per_step"])
def test_complex64_matches_complex128_loop(per_step, magnitude):
    """Complex eigenvalues (rotations times decay, as DMD finds them): values and the complex
    gradients, PyTorch's convention dL/dRe + i dL/dIm, i.e. the conjugate recurrence backwards."""
    inputs = make_inputs(37, per_step=per_step, magnitude=magnitude, complex_=True, seed=7)
    got = run(kernel_scan(), *inputs, torch.complex64)
    truth = run(torch_loop, *inputs, torch.complex128)
    assert got[0].dtype == torch.complex64 and got[1].dtype == torch.complex64
    assert all(g.dtype == torch.complex64 for g in got[2:])
    assert_all_agree(got, truth, 1e-5)


def test_real_lambda_with_complex_input_and_mixed_real_dtypes():
    """Dtypes promote as in PyTorch: real lambda with complex x runs complex (dlambda comes back
    real); fp32 lambda with bf16 x runs (and returns) fp32."""
    lam, x, h0, probe, probe_final = make_inputs(9, per_step=False, complex_=True, seed=8)
    lam = lam.abs()  # real fp32
    got = run(kernel_scan(), lam, x, h0, probe, probe_final, None)
    truth = run(torch_loop, lam.double(), x.cdouble(), h0.cdouble(), probe, probe_final, None)
    assert got[0].dtype == torch.complex64 and got[2].dtype == torch.float32
    assert_all_agree(got, truth, 1e-5)

    lam, x, h0, probe, probe_final = make_inputs(9, seed=9)
    x = x.bfloat16()
    h = diagonal_scan(lam, x, h0=h0)
    assert h.dtype == torch.float32
    assert_agree(h, diagonal_recurrence_loop(lam.double(), x.double(), h0.double()), 1e-5, "h")


def test_agrees_with_the_pytorch_parallel_scan():
    """The kernel, the loop and lablib's Blelloch scan are one computation."""
    lam, x, h0, _, _ = make_inputs(33, per_step=True, seed=10)
    ref = diagonal_recurrence_scan(lam.double(), x.double(), h0.double(), method="blelloch")
    assert_agree(diagonal_scan(lam, x, h0=h0, chunk_size=CHUNK), ref, 1e-5, "h")


def _good():
    return torch.rand(5, device=DEVICE), torch.randn(2, 7, 5, device=DEVICE)


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda lam, x: (lam, x[0, 0]), r"x must have shape \(\.\.\., T, N\).*\(5,\)"),
        (lambda lam, x: (lam[:4], x), r"lmbda must have shape \(N,\) = \(5,\).*\(2, 7, 5\); got \(4,\)"),
        (lambda lam, x: (lam.expand(7, 5), x), r"lmbda must have shape.*got \(7, 5\)"),
        (lambda lam, x: (lam, x[:, :0]), r"at least one row, time step and channel.*\(2, 0, 5\)"),
        (lambda lam, x: (lam, x.double()), r"x must be float32, float16, bfloat16 or complex64; got torch.float64"),
        (lambda lam, x: (lam.to(torch.complex128), x), r"lmbda must be .*complex64; got torch.complex128"),
        (lambda lam, x: (lam, x.int()), r"x must be .*; got torch.int32"),
        (lambda lam, x: (lam.tolist(), x), r"lmbda must be a torch.Tensor; got list"),
    ],
)
def test_bad_inputs_raise_value_error(make, match):
    lam, x = make(*_good())
    with pytest.raises(ValueError, match=match):
        diagonal_scan(lam, x)


def test_bad_h0_and_chunk_size():
    lam, x = _good()
    with pytest.raises(ValueError, match=r"h0 must have shape \(\.\.\., N\) = \(2, 5\); got \(5,\)"):
        diagonal_scan(lam, x, h0=torch.zeros(5, device=DEVICE))
    with pytest.raises(ValueError, match="h0 must be float32.*got torch.float64"):
        diagonal_scan(lam, x, h0=torch.zeros(2, 5, dtype=torch.float64, device=DEVICE))
    for bad in (24, 0, 2048, 16.0):
        with pytest.raises(ValueError, match=r"chunk_size must be a power of two from 1 to 1024"):
            diagonal_scan(lam, x, chunk_size=bad)


def test_cpu_tensors_without_the_interpreter_raise(monkeypatch):
    monkeypatch.setattr(base_module, "INTERPRETED", False)  # the flag every kernel module's checks read
    lam, x = torch.rand(5), torch.randn(1, 4, 5)
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1.*lablib.koopman.recurrence"):
        diagonal_scan(lam, x)


# Under TRITON_INTERPRET=1 these would run interpreted (slowly) and test nothing compiled.
@pytest.mark.skipif(INTERPRETED, reason="kernels are interpreted in this run; TRITON_INTERPRET=0 checks them compiled")
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: compiled kernels are checked on a GPU machine")
class TestCompiledOnCuda:
    """Long sequences and many channels, compiled, default chunk 64. The truth is lablib's
    Hillis-Steele scan in float64 on the GPU (the loop would take T Python steps)."""

    @staticmethod
    def truth(lam, x, h0):
        h = diagonal_recurrence_scan(lam, x, h0)
        return h, h[..., -1, :]

    @pytest.mark.parametrize("complex_", [False, True], ids=["real", "complex"])
    @pytest.mark.parametrize("per_step", [False, True], ids=["lambda_N", "lambda_per_step"])
    def test_long_sequence_matches_float64(self, per_step, complex_):
        inputs = make_inputs(4096, n=300, lead=(4,), per_step=per_step, magnitude="near1",
                             complex_=complex_, device="cuda")
        dtype = torch.complex64 if complex_ else torch.float32
        got = run(kernel_scan(64), *inputs, dtype)
        truth = run(self.truth, *inputs, truth_dtype(got[0]))
        assert_all_agree(got, truth, 1e-4)  # |h| up to ~1/(1-0.999); 4096 steps of fp32 rounding

    @pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
    def test_half_precision_beats_a_same_dtype_scan(self, dtype):
        """The kernel (fp32 state) errs at most twice as much as PyTorch's scan in dtype."""
        inputs = [t.to(dtype).float() for t in make_inputs(2048, n=256, lead=(2,), per_step=True,
                                                            magnitude="near1", device="cuda")]
        got = run(kernel_scan(64), *inputs, dtype)
        same_dtype = run(self.truth, *inputs, dtype)
        truth = run(self.truth, *inputs, torch.float64)
        assert_within_twice_pytorch(got, same_dtype, truth, dtype)
