"""Strong generalization (Liang et al. 2018, Mult-VAE): held-out *users*, not held-out ratings.

The users are split into training, validation and test users. A model is fitted on the training
users' full rows only. Each held-out user's items are split once more: a random 80% are fed to the
model (``*_in``), the other 20% are the targets it must rank (``*_out``). The item universe is the
set of items with at least one training interaction (a model cannot score an item it never saw),
so held-out users' other items are dropped before their 80/20 split, as in Liang et al.'s code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

__all__ = ["UserSplit", "n_heldout", "strong_generalization_split"]


@dataclass(frozen=True)
class UserSplit:
    """One strong-generalization split. All matrices are scipy CSR over the same ``n_items`` columns.

    ``train`` (n_train, n_items); ``val_in``, ``val_out`` (n_val, n_items); ``test_in``, ``test_out``
    (n_test, n_items). ``*_users``: row indices into the original matrix; ``items``: column indices
    into the original matrix of the kept item universe.
    """

    train: sp.csr_matrix
    val_in: sp.csr_matrix
    val_out: sp.csr_matrix
    test_in: sp.csr_matrix
    test_out: sp.csr_matrix
    train_users: np.ndarray
    val_users: np.ndarray
    test_users: np.ndarray
    items: np.ndarray
    seed: int


def n_heldout(n_items: int, fraction: float = 0.2) -> int:
    """How many of a user's ``n_items`` (>= 2) are held out: ``round(fraction * n)``, at least 1 and at most n - 1."""
    if n_items < 2:
        raise ValueError(f"a held-out user needs at least 2 items (one fed in, one scored); got {n_items}")
    return int(min(max(1, round(fraction * n_items)), n_items - 1))


def _fold_in_out(X: sp.csr_matrix, fraction: float, rng: np.random.Generator) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    rows_in, cols_in, rows_out, cols_out = [], [], [], []
    for u in range(X.shape[0]):
        items = X.indices[X.indptr[u]:X.indptr[u + 1]]
        out = rng.choice(len(items), size=n_heldout(len(items), fraction), replace=False)
        mask = np.zeros(len(items), dtype=bool)
        mask[out] = True
        rows_out += [u] * int(mask.sum())
        cols_out += list(items[mask])
        rows_in += [u] * int((~mask).sum())
        cols_in += list(items[~mask])
    make = lambda r, c: sp.csr_matrix((np.ones(len(r)), (r, c)), shape=X.shape)
    return make(rows_in, cols_in), make(rows_out, cols_out)


def strong_generalization_split(X, n_val: int, n_test: int, *, fraction: float = 0.2, seed: int = 0) -> UserSplit:
    """Split the users of ``X`` (n_users, n_items), binary, scipy sparse or dense, into train/val/test.

    ``n_val`` and ``n_test`` users are drawn at random (seeded by ``seed``); the rest train. Items with
    no training interaction are dropped from every matrix. Each held-out user keeps
    ``n_heldout(n, fraction)`` of their ``n`` remaining items as targets (``*_out``) and the rest as
    input (``*_in``); held-out users left with fewer than 2 items are moved to the training users.
    """
    X = sp.csr_matrix(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must be (n_users, n_items); got shape {X.shape}")
    n_users = X.shape[0]
    if n_val < 1 or n_test < 1 or n_val + n_test >= n_users:
        raise ValueError(f"need 1 <= n_val, n_test and n_val + n_test < n_users = {n_users}; got {n_val}, {n_test}")
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1); got {fraction}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(n_users)
    val_users, test_users, train_users = order[:n_val], order[n_val:n_val + n_test], order[n_val + n_test:]
    items = np.flatnonzero(np.asarray((X[train_users] != 0).sum(axis=0)).ravel() > 0)
    Xi = (X[:, items] != 0).astype(np.float64).tocsr()
    too_few = lambda users: users[np.asarray(Xi[users].sum(axis=1)).ravel() < 2]
    moved = np.concatenate([too_few(val_users), too_few(test_users)])
    if moved.size:
        val_users, test_users = np.setdiff1d(val_users, moved, True), np.setdiff1d(test_users, moved, True)
        train_users = np.concatenate([train_users, moved])
    val_in, val_out = _fold_in_out(Xi[val_users], fraction, rng)
    test_in, test_out = _fold_in_out(Xi[test_users], fraction, rng)
    return UserSplit(train=Xi[train_users], val_in=val_in, val_out=val_out, test_in=test_in, test_out=test_out,
                     train_users=train_users, val_users=val_users, test_users=test_users, items=items, seed=seed)
