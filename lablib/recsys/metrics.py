"""Ranking metrics of the Mult-VAE / EASE line of work (Liang et al. 2018), on held-out users.

For each user: rank all items by score, *excluding the items fed in* (they are known already),
breaking ties by lower item index (a stable sort, so a result never depends on chance). Then with
``T`` the user's held-out items and ``top_K`` the first K ranked items:

* ``Recall@K = |top_K ∩ T| / min(K, |T|)``: normalized so that 1 is reachable even when |T| < K;
* ``NDCG@K = DCG@K / IDCG@K``, ``DCG@K = sum_{r=1..K} [item at rank r in T] / log2(r + 1)``,
  IDCG@K the DCG of a perfect ranking (all of T first, min(K, |T|) of them).

Users with no held-out item are not allowed (ValueError): they have no defined recall.
"""

from __future__ import annotations

import numpy as np

from lablib.recsys._checks import as_dense

__all__ = ["evaluate", "ndcg_at_k", "rank_items", "recall_at_k"]


def rank_items(scores, seen=None, k: int | None = None) -> np.ndarray:
    """Item indices (n_users, min(k, n_items)) in ranked order, seen items placed last, ties to lower index.

    ``scores`` (n_users, n_items); ``seen`` (n_users, n_items) binary or None. ``k`` defaults to all;
    a k above n_items ranks all items.
    """
    S = as_dense(scores, "scores").copy()
    if seen is not None:
        seen = as_dense(seen, "seen", S.shape[1])
        if seen.shape != S.shape:
            raise ValueError(f"seen must have the shape of scores {S.shape}; got {seen.shape}")
        S[seen > 0] = -np.inf
    if np.isnan(S).any():
        raise ValueError("scores contain NaN")
    k = S.shape[1] if k is None else k
    if k < 1:
        raise ValueError(f"k must be >= 1; got {k}")
    return np.argsort(-S, axis=1, kind="stable")[:, :k]


def _hits(scores, heldout, seen, k):
    T = as_dense(heldout, "heldout")
    if T.shape != np.shape(scores):
        raise ValueError(f"heldout must have the shape of scores {np.shape(scores)}; got {T.shape}")
    n_true = (T > 0).sum(axis=1)
    if (n_true == 0).any():
        raise ValueError(f"{int((n_true == 0).sum())} users have no held-out item")
    top = rank_items(scores, seen, k)
    return (np.take_along_axis(T, top, axis=1) > 0).astype(np.float64), n_true


def recall_at_k(scores, heldout, k: int, seen=None) -> np.ndarray:
    """Recall@K per user (n_users,), normalized by min(K, |T|). Arrays (n_users, n_items)."""
    hits, n_true = _hits(scores, heldout, seen, k)
    return hits.sum(axis=1) / np.minimum(k, n_true)


def ndcg_at_k(scores, heldout, k: int, seen=None) -> np.ndarray:
    """NDCG@K per user (n_users,). Arrays (n_users, n_items)."""
    hits, n_true = _hits(scores, heldout, seen, k)
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    idcg = np.array([discount[:min(k, n)].sum() for n in n_true])
    return (hits * discount[: hits.shape[1]]).sum(axis=1) / idcg


def evaluate(scores, heldout, seen) -> dict[str, float]:
    """Mean Recall@20, Recall@50 and NDCG@100 over users (the paper's three numbers)."""
    return {
        "Recall@20": float(recall_at_k(scores, heldout, 20, seen).mean()),
        "Recall@50": float(recall_at_k(scores, heldout, 50, seen).mean()),
        "NDCG@100": float(ndcg_at_k(scores, heldout, 100, seen).mean()),
    }
