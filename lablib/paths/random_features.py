"""Random-features ridge regression: the linear model in its purest form.

Freeze a random first layer and fit only the readout: features phi(x) = relu(W x / sqrt(d) * sigma_w
+ sigma_b b) / sqrt(p) for W (p, d), b (p,) ~ N(0, 1) (the first layer of an NTK-parameterized MLP at
initialization), and the readout in closed form,

    beta = argmin ||Phi beta - Y||^2 + lam ||beta||^2 = (Phi^T Phi + lam I)^{-1} Phi^T Y
                                                     = Phi^T (Phi Phi^T + lam I)^{-1} Y,

the primal form when p <= N (a p x p solve), the dual form otherwise (an N x N solve). Gradient
descent on the readout alone, from zero, converges to the lam -> 0 limit (the minimum-norm fit).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["RandomFeaturesRidge", "relu_features", "ridge", "ridge_direct"]


def _as_2d(A, name: str) -> np.ndarray:
    A = np.asarray(A, dtype=np.float64)
    if A.ndim != 2:
        raise ValueError(f"{name} must be 2-D; got shape {A.shape}")
    return A


def relu_features(X, W, b, sigma_w: float = math.sqrt(2.0), sigma_b: float = 0.1) -> np.ndarray:
    """Phi (N, p) = relu(sigma_w / sqrt(d) X W^T + sigma_b b) / sqrt(p) for X (N, d), W (p, d), b (p,)."""
    X, W = _as_2d(X, "X"), _as_2d(W, "W")
    b = np.asarray(b, dtype=np.float64)
    if W.shape[1] != X.shape[1] or b.shape != (W.shape[0],):
        raise ValueError(f"need X (N, d), W (p, d), b (p,); got {X.shape}, {W.shape}, {b.shape}")
    return np.maximum(sigma_w / math.sqrt(X.shape[1]) * X @ W.T + sigma_b * b, 0.0) / math.sqrt(W.shape[0])


def ridge(Phi, Y, lam: float) -> np.ndarray:
    """beta (p, k) minimizing ||Phi beta - Y||^2 + lam ||beta||^2, for Phi (N, p), Y (N, k); lam > 0."""
    Phi, Y = _as_2d(Phi, "Phi"), _as_2d(Y, "Y")
    if Y.shape[0] != Phi.shape[0]:
        raise ValueError(f"Phi (N, p) and Y (N, k) must share N; got {Phi.shape} and {Y.shape}")
    if not lam > 0:
        raise ValueError(f"lam must be > 0; got {lam}")
    n, p = Phi.shape
    if p <= n:
        return np.linalg.solve(Phi.T @ Phi + lam * np.eye(p), Phi.T @ Y)
    return Phi.T @ np.linalg.solve(Phi @ Phi.T + lam * np.eye(n), Y)


def ridge_direct(Phi, Y, lam: float) -> np.ndarray:
    """The same beta by least squares on the stacked system [Phi; sqrt(lam) I] beta = [Y; 0] (the reference)."""
    Phi, Y = _as_2d(Phi, "Phi"), _as_2d(Y, "Y")
    if not lam > 0:
        raise ValueError(f"lam must be > 0; got {lam}")
    p = Phi.shape[1]
    A = np.vstack([Phi, math.sqrt(lam) * np.eye(p)])
    return np.linalg.lstsq(A, np.vstack([Y, np.zeros((p, Y.shape[1]))]), rcond=None)[0]


class RandomFeaturesRidge:
    """``RandomFeaturesRidge(n_features, lam, seed).fit(X, Y).predict(X_new)``: (N, k) predictions."""

    def __init__(self, n_features: int, lam: float = 1e-3, seed: int = 0, sigma_w: float = math.sqrt(2.0),
                 sigma_b: float = 0.1):
        if n_features < 1 or not lam > 0:
            raise ValueError(f"need n_features >= 1 and lam > 0; got {n_features}, {lam}")
        self.n_features, self.lam, self.seed, self.sigma_w, self.sigma_b = int(n_features), float(lam), int(seed), sigma_w, sigma_b

    def features(self, X) -> np.ndarray:
        return relu_features(X, self.W, self.b, self.sigma_w, self.sigma_b)

    def fit(self, X, Y) -> "RandomFeaturesRidge":
        X = _as_2d(X, "X")
        rng = np.random.default_rng(self.seed)
        self.W = rng.standard_normal((self.n_features, X.shape[1]))
        self.b = rng.standard_normal(self.n_features)
        self.beta = ridge(self.features(X), Y, self.lam)
        return self

    def predict(self, X) -> np.ndarray:
        return self.features(X) @ self.beta
