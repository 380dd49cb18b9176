"""Forecasts that need no training: the seasonal naive forecast, and metrics to score any forecast."""

from __future__ import annotations

import numpy as np

__all__ = ["mae", "mse", "seasonal_naive"]


def seasonal_naive(X, horizon: int, period: int) -> np.ndarray:
    """Repeat the last ``period`` points of each window: forecast_h = x_{L - period + (h mod period)}.

    ``X`` (N, L) windows with L >= period -> (N, horizon). Exact on a series of that period.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must be (N, lookback); got shape {X.shape}")
    if period < 1 or horizon < 1:
        raise ValueError(f"period and horizon must be >= 1; got {period}, {horizon}")
    if X.shape[1] < period:
        raise ValueError(f"the lookback {X.shape[1]} is shorter than the period {period}; no full season to repeat")
    last = X[:, X.shape[1] - period:]
    return last[:, np.arange(horizon) % period]


def _check(pred, true) -> tuple[np.ndarray, np.ndarray]:
    pred, true = np.asarray(pred, dtype=np.float64), np.asarray(true, dtype=np.float64)
    if pred.shape != true.shape or pred.size == 0:
        raise ValueError(f"forecasts and targets must have one (non-empty) shape; got {pred.shape} and {true.shape}")
    return pred, true


def mse(pred, true) -> float:
    """Mean squared error over all windows and steps (arrays of one shape, e.g. (N, H))."""
    pred, true = _check(pred, true)
    return float(np.mean((pred - true) ** 2))


def mae(pred, true) -> float:
    """Mean absolute error over all windows and steps."""
    pred, true = _check(pred, true)
    return float(np.mean(np.abs(pred - true)))
