"""Input checks shared by the recsys modules."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def as_dense(X, name: str = "X", n_items: int | None = None) -> np.ndarray:
    """A 2-D float64 array from a dense array or a scipy sparse matrix; ValueError on a bad shape."""
    A = X.toarray() if sp.issparse(X) else np.asarray(X, dtype=np.float64)
    A = A.astype(np.float64, copy=False)
    if A.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_users, n_items); got shape {A.shape}")
    if n_items is not None and A.shape[1] != n_items:
        raise ValueError(f"{name} must have {n_items} item columns (as in training); got shape {A.shape}")
    return A
