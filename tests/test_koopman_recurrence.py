"""The diagonal linear recurrence h_t = lambda h_{t-1} + v_t: parallel scans equal the loop, values and gradients."""

import numpy as np
import pytest
import torch

from lablib.koopman import diagonal_recurrence_loop, diagonal_recurrence_scan, discretize_diagonal

METHODS = ["hillis_steele", "blelloch"]


def _inputs(T, complex_, time_varying, seed=0, batch=2, N=5):
    g = torch.Generator().manual_seed(seed)
    dtype = torch.complex128 if complex_ else torch.float64
    shape = (batch, T, N) if time_varying else (N,)
    if complex_:
        # |lambda| < 1, random phase: decaying rotations, as in S4D / LRU
        lam = torch.polar(torch.rand(shape, generator=g, dtype=torch.float64) * 0.9 + 0.05,
                          torch.rand(shape, generator=g, dtype=torch.float64) * 2 * np.pi)
    else:
        lam = torch.rand(shape, generator=g, dtype=torch.float64) * 1.8 - 0.9
    v = torch.randn(batch, T, N, generator=g, dtype=dtype)
    h0 = torch.randn(batch, N, generator=g, dtype=dtype)
    return lam, v, h0


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("T", [1, 2, 7, 16, 33])
@pytest.mark.parametrize("complex_", [False, True], ids=["real", "complex"])
@pytest.mark.parametrize("time_varying", [False, True], ids=["fixed", "varying"])
def test_scan_equals_loop(method, T, complex_, time_varying):
    """Values to 1e-12 in float64 (measured <= 2e-15), with and without h0, odd and power-of-two lengths."""
    lam, v, h0 = _inputs(T, complex_, time_varying)
    for h_init in (None, h0):
        ref = diagonal_recurrence_loop(lam, v, h_init)
        out = diagonal_recurrence_scan(lam, v, h_init, method=method)
        assert out.shape == v.shape and out.dtype == ref.dtype
        torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_any_leading_dims(method):
    """Track 1's (B, H, T, D) layout works as is: the scan runs over axis -2, heads are just another batch dim."""
    g = torch.Generator().manual_seed(4)
    lam = torch.rand(2, 3, 11, 4, generator=g, dtype=torch.float64)
    v = torch.randn(2, 3, 11, 4, generator=g, dtype=torch.float64)
    h0 = torch.randn(2, 3, 4, generator=g, dtype=torch.float64)
    ref = diagonal_recurrence_loop(lam, v, h0)
    torch.testing.assert_close(diagonal_recurrence_scan(lam, v, h0, method=method), ref, rtol=0, atol=1e-12)
    flat = diagonal_recurrence_loop(lam.reshape(6, 11, 4), v.reshape(6, 11, 4), h0.reshape(6, 4))
    torch.testing.assert_close(ref.reshape(6, 11, 4), flat, rtol=0, atol=0)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("complex_", [False, True], ids=["real", "complex"])
def test_scan_gradients_equal_loop(method, complex_):
    """Autograd through the scan gives the loop's gradients for lambda, v and h0 (1e-10, float64)."""
    lam, v, h0 = _inputs(13, complex_, time_varying=True, seed=1)
    w = torch.randn(v.shape, dtype=v.dtype, generator=torch.Generator().manual_seed(2))

    def grads(fn):
        leaves = [t.detach().clone().requires_grad_() for t in (lam, v, h0)]
        h = fn(*leaves)
        loss = (h * w).real.sum() if complex_ else (h * w).sum()  # a real scalar of a complex output
        return torch.autograd.grad(loss, leaves)

    ref = grads(diagonal_recurrence_loop)
    out = grads(lambda a, b, c: diagonal_recurrence_scan(a, b, c, method=method))
    for r, o in zip(ref, out):
        torch.testing.assert_close(o, r, rtol=0, atol=1e-10)


def test_scan_gradcheck():
    """Finite differences agree with the scan's analytic gradient (real, small)."""
    lam, v, _ = _inputs(6, complex_=False, time_varying=True, batch=1, N=2)
    assert torch.autograd.gradcheck(lambda a, b: diagonal_recurrence_scan(a, b), (lam.requires_grad_(), v.requires_grad_()))


def test_discretize_diagonal_is_exact_for_held_inputs():
    """ZOH: the diagonal recurrence with (lambda, B_bar) samples the ODE h' = omega h + B u exactly for piecewise-constant u."""
    omega = torch.tensor([-0.5 + 2.0j, -0.1 - 1.0j, -1.0 + 0.0j, 0.0 + 0.0j], dtype=torch.complex128)
    B = torch.tensor([[1.0], [0.5], [2.0], [1.0]], dtype=torch.complex128)
    dt, T = 0.1, 20
    lam, Bbar = discretize_diagonal(omega, B, dt)
    u = torch.randn(1, T, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    h = diagonal_recurrence_scan(lam, u.to(torch.complex128) @ Bbar.T)
    # exact solution of h' = omega h + B u_k over each step, by the matrix exponential of the augmented system
    exact = torch.zeros(4, dtype=torch.complex128)
    for k in range(T):
        for i in range(4):
            M = torch.tensor([[omega[i], B[i, 0] * u[0, k, 0]], [0.0, 0.0]], dtype=torch.complex128)
            exact[i] = (torch.linalg.matrix_exp(M * dt) @ torch.stack([exact[i], torch.ones((), dtype=torch.complex128)]))[0]
        torch.testing.assert_close(h[0, k], exact, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: diagonal_recurrence_loop(torch.ones(3), torch.ones(5)), r"\(\.\.\., T, N\)"),
        (lambda: diagonal_recurrence_loop(torch.ones(3), torch.ones(2, 0, 3)), "at least one time step"),
        (lambda: diagonal_recurrence_scan(torch.ones(4), torch.ones(2, 5, 3)), "lmbda must have shape"),
        (lambda: diagonal_recurrence_scan(torch.ones(3), torch.ones(2, 5, 3), torch.ones(3)), "h0 must be"),
        (lambda: diagonal_recurrence_scan(torch.ones(3), torch.full((2, 5, 3), float("nan"))), "NaN or Inf"),
        (lambda: diagonal_recurrence_scan(torch.ones(3), torch.ones(2, 5, 3), method="sklansky"), "method"),
        (lambda: diagonal_recurrence_loop(np.ones(3), torch.ones(2, 5, 3)), "torch.Tensor"),
        (lambda: diagonal_recurrence_loop(torch.ones(3, dtype=torch.long), torch.ones(2, 5, 3)), "floating"),
        (lambda: discretize_diagonal(torch.ones(3), torch.ones(2, 1), 0.1), "B must be"),
    ],
)
def test_bad_inputs_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()
