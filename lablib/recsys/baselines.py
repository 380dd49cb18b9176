"""Two baselines any recommender must beat: item popularity and item-kNN with cosine similarity."""

from __future__ import annotations

import numpy as np

from lablib.recsys._checks import as_dense

__all__ = ["ItemKNN", "Popularity"]


class Popularity:
    """Everyone gets the same ranking: items by their number of training users."""

    def fit(self, X) -> "Popularity":
        """X (n_users, n_items), binary."""
        self.counts = as_dense(X).sum(axis=0)
        return self

    def score(self, X_in) -> np.ndarray:
        """(n_users, n_items) -> (n_users, n_items): the popularity counts, repeated per user."""
        X_in = as_dense(X_in, "X_in", self.counts.shape[0])
        return np.broadcast_to(self.counts, X_in.shape).copy()


class ItemKNN:
    """Item-based k nearest neighbours (Sarwar et al. 2001; Deshpande and Karypis 2004).

    S_ij = cos(x_i, x_j) between item columns of the training matrix, zero diagonal; if ``k`` is
    given, each column keeps only its k largest similarities (the item's k neighbours). A user's
    score for item j is the sum of similarities between j and the user's items: scores = x S.
    """

    def __init__(self, k: int | None = None):
        if k is not None and k < 1:
            raise ValueError(f"k must be >= 1 or None (all neighbours); got {k}")
        self.k = k

    def fit(self, X) -> "ItemKNN":
        X = as_dense(X)
        norms = np.sqrt((X * X).sum(axis=0))
        norms[norms == 0] = 1.0
        S = (X.T @ X) / norms[:, None] / norms[None, :]
        np.fill_diagonal(S, 0.0)
        if self.k is not None and self.k < S.shape[0]:
            drop = np.argpartition(-S, self.k, axis=0)[self.k:]  # per column, all but the k largest
            np.put_along_axis(S, drop, 0.0, axis=0)
        self.S = S
        return self

    def score(self, X_in) -> np.ndarray:
        """(n_users, n_items) fed-in rows -> (n_users, n_items) scores."""
        return as_dense(X_in, "X_in", self.S.shape[0]) @ self.S
