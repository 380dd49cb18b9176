"""EASE (Steck 2019, "Embarrassingly Shallow Autoencoders for Sparse Data"): a closed-form item-item model.

Given the binary user x item matrix X (n_users, n_items), EASE solves

    min_B ||X - X B||_F^2 + lam ||B||_F^2   subject to   diag(B) = 0,

(the constraint stops the trivial B = I: an item may not predict itself). With the Lagrangian
||X - XB||^2 + lam ||B||^2 + 2 gamma^T diag(B), setting the gradient to zero gives
(G + lam I) B = G - diagMat(gamma), G = X^T X, so B = I - P diagMat(gamma + lam) with
P = (G + lam I)^-1; diag(B) = 0 fixes gamma + lam = 1 / diag(P):

    B = I - P diagMat(1 / diag(P)),   i.e.   B_ij = -P_ij / P_jj (i != j),  B_jj = 0.

A user's scores are x B (their row times B): (n_items,) -> (n_items,).
"""

from __future__ import annotations

import numpy as np

from lablib.recsys._checks import as_dense

__all__ = ["EASE", "ease_constrained_lstsq", "ease_path", "ease_weights"]


def ease_weights(X, lam: float) -> np.ndarray:
    """The EASE item-item matrix B (n_items, n_items), float64, zero diagonal, for X (n_users, n_items)."""
    X = as_dense(X)
    if not lam > 0:
        raise ValueError(f"lam must be > 0 (it makes X^T X + lam I invertible); got {lam}")
    G = X.T @ X
    G[np.diag_indices_from(G)] += lam
    P = np.linalg.inv(G)
    B = -P / np.diag(P)  # column j divided by P_jj
    B[np.diag_indices_from(B)] = 0.0
    return B


def ease_path(X, lambdas):
    """B for each lam in ``lambdas``, from one eigendecomposition X^T X = V diag(w) V^T.

    Then P = (X^T X + lam I)^-1 = V diag(1 / (w + lam)) V^T costs one matrix product per lam instead of
    an inverse. Yields ``(lam, B)`` pairs, B (n_items, n_items) float64 as in :func:`ease_weights`.
    """
    X = as_dense(X)
    lambdas = [float(lam) for lam in lambdas]
    if not lambdas or min(lambdas) <= 0:
        raise ValueError(f"lambdas must be a non-empty list of values > 0; got {lambdas}")
    w, V = np.linalg.eigh(X.T @ X)
    for lam in lambdas:
        P = (V / (w + lam)) @ V.T
        B = -P / np.diag(P)
        B[np.diag_indices_from(B)] = 0.0
        yield lam, B


def ease_constrained_lstsq(X, lam: float) -> np.ndarray:
    """The same B solved directly, one column at a time (a reference for small problems).

    With diag(B) = 0, column j of B only uses the other items: b_j[-j] = argmin ||X[:, j] - X[:, -j] b||^2
    + lam ||b||^2, a ridge regression of item j on all other items, solved by its normal equations.
    Costs n_items solves of size n_items - 1: use it on small X only.
    """
    X = as_dense(X)
    if not lam > 0:
        raise ValueError(f"lam must be > 0; got {lam}")
    n = X.shape[1]
    B = np.zeros((n, n))
    for j in range(n):
        others = np.arange(n) != j
        A = X[:, others]
        B[others, j] = np.linalg.solve(A.T @ A + lam * np.eye(n - 1), A.T @ X[:, j])
    return B


class EASE:
    """EASE recommender: ``EASE(lam).fit(X_train)``, then ``.score(X_in)`` (n_users, n_items) -> scores."""

    def __init__(self, lam: float = 100.0):
        if not lam > 0:
            raise ValueError(f"lam must be > 0; got {lam}")
        self.lam = float(lam)
        self.B: np.ndarray | None = None

    def fit(self, X) -> "EASE":
        """X (n_users, n_items), binary, dense or scipy sparse."""
        self.B = ease_weights(X, self.lam)
        return self

    @classmethod
    def from_weights(cls, B: np.ndarray, lam: float) -> "EASE":
        """An EASE model with given weights B (n_items, n_items), e.g. from :func:`ease_path`."""
        B = np.asarray(B, dtype=np.float64)
        if B.ndim != 2 or B.shape[0] != B.shape[1]:
            raise ValueError(f"B must be square (n_items, n_items); got shape {B.shape}")
        model = cls(lam)
        model.B = B
        return model

    def score(self, X_in) -> np.ndarray:
        """Scores (n_users, n_items) for users given by their fed-in rows X_in (n_users, n_items)."""
        if self.B is None:
            raise ValueError("EASE.score called before fit")
        return as_dense(X_in, "X_in", self.B.shape[0]) @ self.B
