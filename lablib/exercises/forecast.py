"""Exercise checks for track 5, chapter t5_02 (DLinear): each takes the learner's function and compares it with lablib's."""

from __future__ import annotations

import numpy as np

from lablib.forecast.baselines import seasonal_naive
from lablib.forecast.decomposition import moving_average, moving_average_matrix

__all__ = ["check_dlinear_as_linear", "check_moving_average", "check_seasonal_naive"]


def check_moving_average(fn) -> str:
    """``fn(X, kernel) -> trend``: DLinear's moving average of windows X (N, L), padded at both ends by
    repeating the first and last values (kernel - 1) / 2 times; same shape out. Compared with
    :func:`lablib.forecast.moving_average` to 1e-10, on kernels shorter and longer than the window."""
    n = 0
    for seed, (N, L, kernel) in enumerate([(3, 10, 3), (4, 30, 25), (2, 7, 11)]):
        X = np.random.default_rng(seed).standard_normal((N, L)).cumsum(axis=1)
        got = np.asarray(fn(X.copy(), kernel), dtype=float)
        want = moving_average(X, kernel)
        if got.shape != want.shape:
            raise AssertionError(f"moving average: expected shape {want.shape} (the window's length), got {got.shape}")
        err = np.abs(got - want).max()
        if not err <= 1e-10:
            t = int(np.unravel_index(np.argmax(np.abs(got - want)), got.shape)[1])
            raise AssertionError(f"moving average (kernel {kernel}, L = {L}): off by {err:.3g}, worst at t = {t}; "
                                 "pad with copies of the end values, not zeros, and keep the window centred")
        n += 1
    return f"✓ moving average: correct on {n} cases (one with the kernel longer than the window)"


def check_dlinear_as_linear(fn) -> str:
    """``fn(W_trend, W_season, kernel) -> W``: the one (H, L) matrix with W x = W_t trend(x) + W_s (x - trend(x)).

    Compared with W_t A + W_s (I - A) (A :func:`lablib.forecast.moving_average_matrix`) to 1e-10, and
    checked on windows: W x must equal DLinear's forecast."""
    n = 0
    for seed, (H, L, kernel) in enumerate([(2, 9, 3), (5, 40, 25), (3, 12, 5)]):
        rng = np.random.default_rng(10 + seed)
        W_t, W_s = rng.standard_normal((H, L)), rng.standard_normal((H, L))
        got = np.asarray(fn(W_t.copy(), W_s.copy(), kernel), dtype=float)
        A = moving_average_matrix(L, kernel)
        want = W_t @ A + W_s @ (np.eye(L) - A)
        if got.shape != want.shape:
            raise AssertionError(f"DLinear as Linear: W should be (H, L) = {want.shape}; got {got.shape}")
        x = rng.standard_normal((4, L))
        trend = moving_average(x, kernel)
        forecast = trend @ W_t.T + (x - trend) @ W_s.T
        err = np.abs(x @ got.T - forecast).max()
        if not err <= 1e-10:
            raise AssertionError(f"DLinear as Linear (L = {L}, kernel {kernel}): W x differs from DLinear's forecast by "
                                 f"{err:.3g}; the trend of x is A x, so W_t acts on A x (W_t A, not A W_t)")
        n += 1
    return f"✓ DLinear as one linear map: correct on {n} random cases"


def check_seasonal_naive(fn) -> str:
    """``fn(X, horizon, period) -> forecast (N, horizon)``: repeat the last ``period`` values of each window.

    Compared with :func:`lablib.forecast.seasonal_naive` exactly, with horizons shorter and longer than the period."""
    n = 0
    for seed, (N, L, horizon, period) in enumerate([(3, 24, 5, 12), (2, 30, 25, 7), (4, 10, 10, 10)]):
        X = np.random.default_rng(20 + seed).standard_normal((N, L))
        got = np.asarray(fn(X.copy(), horizon, period), dtype=float)
        want = seasonal_naive(X, horizon, period)
        if got.shape != want.shape:
            raise AssertionError(f"seasonal naive: expected shape {want.shape}, got {got.shape}")
        if not np.array_equal(got, want):
            h = int(np.argmax(np.abs(got - want).max(axis=0)))
            raise AssertionError(f"seasonal naive (period {period}, horizon {horizon}): step {h} should be "
                                 f"x[L - {period} + ({h} mod {period})]")
        n += 1
    return f"✓ seasonal naive: correct on {n} cases"
