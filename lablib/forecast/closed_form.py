"""Linear, DLinear and NLinear fitted in closed form (least squares), in float64 NumPy.

All three map a window x (L,) to a forecast (H,). Each is fitted by minimizing the mean squared
error over training windows, with an unpenalized bias and an optional ridge penalty
``ridge * ||weights||_F^2`` (``ridge = 0``: the minimum-norm least-squares solution).

* **Linear**: ``y = W x + b``.
* **DLinear**: ``y = W_t (A x) + W_s ((I - A) x) + b``, A the moving average of
  :mod:`lablib.forecast.decomposition`. Its features ``[A x, (I - A) x]`` span exactly the space of
  x (they add up to x), so DLinear is the linear map ``W = W_t A + W_s (I - A)``: unregularized
  least squares gives it *the same forecasts as Linear* (:func:`fit_dlinear` fits the 2L
  parameters directly, so this is a check, not an assumption). A ridge penalty on (W_t, W_s) is a
  different penalty on W, so with ``ridge > 0`` the two differ.
* **NLinear**: ``y = W (x - x_L 1) + b + x_L 1``, x_L the window's last value. As a map of x this is
  ``W~ = W (I - 1 e_L^T) + 1 e_L^T``, whose rows sum to one: NLinear is Linear *constrained* so that
  adding a constant to the window adds it to the forecast. Not the same forecasts as Linear.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lablib.forecast.decomposition import moving_average_matrix

__all__ = ["ClosedForm", "fit_dlinear", "fit_linear", "fit_nlinear", "gd_preconditioner", "ridge_lstsq"]


def _pair(X, Y) -> tuple[np.ndarray, np.ndarray]:
    X, Y = np.asarray(X, dtype=np.float64), np.asarray(Y, dtype=np.float64)
    if X.ndim != 2 or Y.ndim != 2 or X.shape[0] != Y.shape[0]:
        raise ValueError(f"X must be (N, lookback) and Y (N, horizon) with the same N; got {X.shape} and {Y.shape}")
    if X.shape[0] < 2:
        raise ValueError(f"need at least 2 windows to fit; got {X.shape[0]}")
    return X, Y


def ridge_lstsq(F, Y, ridge: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(W (H, P), b (H,)) minimizing ||Y - F W^T - b||^2 + ridge ||W||^2 for features F (N, P), targets Y (N, H).

    The bias is not penalized (the problem is solved on centred F and Y). ``ridge = 0``: the
    minimum-norm solution (SVD-based ``np.linalg.lstsq``), which is well defined when F has
    dependent columns, as DLinear's do.
    """
    F, Y = _pair(F, Y)
    if ridge < 0:
        raise ValueError(f"ridge must be >= 0; got {ridge}")
    f_mean, y_mean = F.mean(axis=0), Y.mean(axis=0)
    Fc, Yc = F - f_mean, Y - y_mean
    if ridge == 0:
        Wt = np.linalg.lstsq(Fc, Yc, rcond=None)[0]
    else:
        Wt = np.linalg.solve(Fc.T @ Fc + ridge * np.eye(F.shape[1]), Fc.T @ Yc)
    W = Wt.T
    return W, y_mean - W @ f_mean


@dataclass(frozen=True)
class ClosedForm:
    """A fitted linear forecaster. ``kind``: "Linear", "DLinear" or "NLinear".

    ``weights``: the fitted parameters, ``{"W": (H, L)}`` for Linear and NLinear,
    ``{"W_trend": (H, L), "W_season": (H, L)}`` for DLinear; ``b`` (H,); ``kernel`` DLinear's
    moving-average kernel. :meth:`predict` uses these parameters as the model does;
    :meth:`effective` gives the one (H, L) matrix and bias with ``forecast = W x + b``.
    """

    kind: str
    weights: dict
    b: np.ndarray
    kernel: int | None = None

    @property
    def lookback(self) -> int:
        return next(iter(self.weights.values())).shape[1]

    def _X(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.lookback:
            raise ValueError(f"X must be (N, {self.lookback}); got shape {X.shape}")
        return X

    def predict(self, X) -> np.ndarray:
        """Windows X (N, L) -> forecasts (N, H)."""
        X = self._X(X)
        if self.kind == "Linear":
            return X @ self.weights["W"].T + self.b
        if self.kind == "NLinear":
            last = X[:, -1:]
            return (X - last) @ self.weights["W"].T + self.b + last
        A = moving_average_matrix(X.shape[1], self.kernel)
        trend = X @ A.T
        return trend @ self.weights["W_trend"].T + (X - trend) @ self.weights["W_season"].T + self.b

    def effective(self) -> tuple[np.ndarray, np.ndarray]:
        """(W (H, L), b (H,)) with ``predict(X) == X @ W.T + b``."""
        if self.kind == "Linear":
            return self.weights["W"], self.b
        L = self.lookback
        if self.kind == "NLinear":
            W = self.weights["W"]
            last = np.zeros(L)
            last[-1] = 1.0
            return W - np.outer(W.sum(axis=1), last) + np.outer(np.ones(W.shape[0]), last), self.b
        A = moving_average_matrix(L, self.kernel)
        return self.weights["W_trend"] @ A + self.weights["W_season"] @ (np.eye(L) - A), self.b


def fit_linear(X, Y, ridge: float = 0.0) -> ClosedForm:
    """Linear: least squares of Y (N, H) on windows X (N, L)."""
    X, Y = _pair(X, Y)
    W, b = ridge_lstsq(X, Y, ridge)
    return ClosedForm("Linear", {"W": W}, b)


def fit_dlinear(X, Y, kernel: int = 25, ridge: float = 0.0) -> ClosedForm:
    """DLinear: least squares on the 2L features [trend, remainder] of each window (both halves fitted)."""
    X, Y = _pair(X, Y)
    L = X.shape[1]
    trend = X @ moving_average_matrix(L, kernel).T
    W, b = ridge_lstsq(np.concatenate([trend, X - trend], axis=1), Y, ridge)
    return ClosedForm("DLinear", {"W_trend": W[:, :L], "W_season": W[:, L:]}, b, kernel)


def fit_nlinear(X, Y, ridge: float = 0.0) -> ClosedForm:
    """NLinear: least squares of (Y - x_L) on (X - x_L), x_L each window's last value."""
    X, Y = _pair(X, Y)
    last = X[:, -1:]
    W, b = ridge_lstsq(X - last, Y - last, ridge)
    return ClosedForm("NLinear", {"W": W}, b)


def gd_preconditioner(length: int, kernel: int = 25) -> np.ndarray:
    """P = A^T A + (I - A)^T (I - A), (length, length).

    A gradient step of size lr on DLinear's (W_t, W_s) moves its effective W = W_t A + W_s (I - A)
    by ``-lr * G @ P``, G the gradient of the loss in W: plain gradient descent on DLinear is
    gradient descent on Linear preconditioned by P (and with the bias step doubled, since both
    halves carry a bias).
    """
    A = moving_average_matrix(length, kernel)
    R = np.eye(length) - A
    return A.T @ A + R.T @ R
