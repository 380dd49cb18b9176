"""DLinear's series decomposition (Zeng et al. 2023, after Autoformer): trend = moving average, remainder = x - trend.

The moving average has an odd ``kernel`` k (25 in the paper, on every dataset) and pads the window
at both ends by repeating its first and last values (k - 1) / 2 times, so the trend has the
window's length L:

    trend_t = (1 / k) * sum_{j = -(k-1)/2 .. (k-1)/2} x_clip(t + j, 0, L - 1).

It is a linear map of the window: ``trend = A x`` with the (L, L) matrix of
:func:`moving_average_matrix`, and the remainder is ``(I - A) x``.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["decompose", "moving_average", "moving_average_matrix"]


def _check_kernel(kernel: int) -> None:
    if not (isinstance(kernel, (int, np.integer)) and kernel >= 1 and kernel % 2 == 1):
        raise ValueError(f"kernel must be an odd integer >= 1 (the window is centred); got {kernel!r}")


def moving_average_matrix(length: int, kernel: int = 25) -> np.ndarray:
    """A (length, length) float64 with ``A @ x`` the replicate-padded moving average of a window x (length,)."""
    _check_kernel(kernel)
    if length < 1:
        raise ValueError(f"length must be >= 1; got {length}")
    half = (kernel - 1) // 2
    A = np.zeros((length, length))
    for t in range(length):
        for j in range(t - half, t + half + 1):
            A[t, min(max(j, 0), length - 1)] += 1.0 / kernel
    return A


def moving_average(x, kernel: int = 25):
    """Replicate-padded moving average along the last axis: (..., L) -> (..., L), numpy or torch alike."""
    _check_kernel(kernel)
    half = (kernel - 1) // 2
    if isinstance(x, torch.Tensor):
        if x.ndim < 1 or x.shape[-1] < 1:
            raise ValueError(f"x must have a time axis last, (..., L); got shape {tuple(x.shape)}")
        padded = torch.cat([x[..., :1].expand(*x.shape[:-1], half), x, x[..., -1:].expand(*x.shape[:-1], half)], dim=-1)
        return padded.unfold(-1, kernel, 1).mean(dim=-1)
    x = np.asarray(x, dtype=np.float64)
    if x.ndim < 1 or x.shape[-1] < 1:
        raise ValueError(f"x must have a time axis last, (..., L); got shape {x.shape}")
    padded = np.concatenate([np.repeat(x[..., :1], half, axis=-1), x, np.repeat(x[..., -1:], half, axis=-1)], axis=-1)
    return np.lib.stride_tricks.sliding_window_view(padded, kernel, axis=-1).mean(axis=-1)


def decompose(x, kernel: int = 25):
    """(trend, remainder) of windows x (..., L): trend the moving average, remainder = x - trend."""
    trend = moving_average(x, kernel)
    return trend, x - trend
