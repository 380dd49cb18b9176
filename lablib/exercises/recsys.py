"""Exercise checks for track 5, chapter t5_01 (EASE): each takes the learner's function and compares it with lablib's."""

from __future__ import annotations

import numpy as np

from lablib.recsys.ease import ease_weights
from lablib.recsys.metrics import recall_at_k

__all__ = ["check_ease_weights", "check_recall_at_k"]


def check_ease_weights(fn) -> str:
    """``fn(X, lam) -> B``: EASE's B (n_items, n_items) for a binary X (n_users, n_items) ndarray.

    Compared with :func:`lablib.recsys.ease_weights` to 1e-8 on three random problems.
    """
    n = 0
    for seed, (users, items, lam) in enumerate([(30, 6, 1.0), (80, 15, 10.0), (50, 25, 200.0)]):
        X = (np.random.default_rng(seed).random((users, items)) < 0.3).astype(float)
        B = np.asarray(fn(X.copy(), lam), dtype=float)
        want = ease_weights(X, lam)
        if B.shape != want.shape:
            raise AssertionError(f"EASE: B should be {want.shape}; got {B.shape}")
        if np.abs(np.diag(B)).max() > 1e-10:
            raise AssertionError(f"EASE: diag(B) must be zero; largest |B_jj| = {np.abs(np.diag(B)).max():.2g}")
        err = np.abs(B - want).max()
        if not err <= 1e-8:
            raise AssertionError(f"EASE: B is off by {err:.2g} on case {n} (lam = {lam}); B_ij = -P_ij / P_jj")
        n += 1
    return f"✓ EASE weights: correct on {n} random problems"


def check_recall_at_k(fn) -> str:
    """``fn(scores, heldout, seen, k) -> recall (n_users,)``: Recall@K normalized by min(K, |heldout|).

    Arrays (n_users, n_items) dense; seen items must not take ranking slots; ties go to the lower
    item index. Compared with :func:`lablib.recsys.recall_at_k` on random cases with many ties.
    """
    n = 0
    for seed, k in enumerate([1, 3, 10]):
        rng = np.random.default_rng(100 + seed)
        scores = rng.integers(0, 4, size=(20, 12)).astype(float)  # integers: plenty of ties
        seen = (rng.random((20, 12)) < 0.3).astype(float)
        heldout = ((rng.random((20, 12)) < 0.3) & (seen == 0)).astype(float)
        heldout[np.arange(20), np.argmin(seen, axis=1)] = 1  # every user holds out an unseen item
        got = np.asarray(fn(scores, heldout, seen, k), dtype=float).reshape(-1)
        want = recall_at_k(scores, heldout, k, seen)
        if got.shape != want.shape:
            raise AssertionError(f"Recall@K: expected one value per user, shape {want.shape}; got {got.shape}")
        err = np.abs(got - want).max()
        if not err <= 1e-12:
            user = int(np.argmax(np.abs(got - want)))
            raise AssertionError(f"Recall@{k}: user {user} gets {got[user]:.4f}, expected {want[user]:.4f}")
        n += 1
    return f"✓ Recall@K: correct on {n} random cases with ties"
