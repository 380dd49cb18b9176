"""Forecast errors, shared by all models so that comparisons use one definition."""

from __future__ import annotations

import numpy as np

from lablib.koopman._validate import as_array

__all__ = ["forecast_rmse"]


def forecast_rmse(pred, truth) -> np.ndarray:
    """Root-mean-square error per forecast step: pred, truth (n_traj, steps + 1, n_state) -> (steps + 1,).

    The mean is over trajectories and state coordinates; entry k is the error k steps ahead.
    A forecast that blew up (NaN/Inf) scores inf at and after the step it did, rather than raising.
    """
    pred = as_array(pred, "pred", ndim=(2, 3), finite=False)
    truth = as_array(truth, "truth", ndim=(2, 3))
    if pred.shape != truth.shape:
        raise ValueError(f"pred and truth must have the same shape; got {pred.shape} and {truth.shape}")
    if pred.ndim == 2:
        pred, truth = pred[None], truth[None]
    err = (pred - truth) ** 2
    err = np.where(np.isfinite(err), err, np.inf)
    return np.sqrt(err.mean(axis=(0, 2)))
