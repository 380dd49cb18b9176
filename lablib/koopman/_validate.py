"""Input checks for the Koopman subpackage (NumPy side).

Each check raises ``ValueError`` naming the argument and its shape, so a bad call fails where
it was made instead of as a broadcasting error ten lines later (same policy as ``lablib._checks``).
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["as_array", "check_rank", "check_positive_int"]


def as_array(x, name: str, *, ndim: int | tuple[int, ...], dtype=None, finite: bool = True) -> np.ndarray:
    """``x`` as a NumPy array with ``ndim`` dimensions (an int or a tuple of allowed ones), finite by default.

    Torch tensors are detached and moved to the CPU; real integer input becomes float64 so that
    no least-squares fit silently runs in integer arithmetic.
    """
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor, without importing torch here
        x = x.detach().cpu().numpy()
    try:
        arr = np.asarray(x, dtype=dtype)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be array-like of numbers; got {type(x).__name__} ({err})") from None
    allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
    if arr.ndim not in allowed:
        want = " or ".join(f"{d}-D" for d in allowed)
        raise ValueError(f"{name} must be {want}; got shape {arr.shape}")
    if arr.dtype.kind in "biu":
        arr = arr.astype(np.float64)
    if arr.dtype.kind not in "fc":
        raise ValueError(f"{name} must hold real or complex numbers; got dtype {arr.dtype}")
    if finite and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or Inf values (shape {arr.shape})")
    return arr


def check_positive_int(value, name: str, *, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum`` (bools are refused: ``True`` is not a step count)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return int(value)


def check_rank(rank, singular_values: np.ndarray, name: str = "rank", *, rtol: float | None = None) -> int:
    """Resolve a truncation rank against the singular values ``s`` (descending) of a data matrix.

    ``rank=None`` keeps the numerical rank: singular values above ``rtol * s[0]`` with the usual
    ``rtol = max(shape) * eps`` (what ``numpy.linalg.matrix_rank`` uses). An explicit integer rank
    must not exceed ``len(s) = min(n, m)`` nor the numerical rank: dividing by a singular value
    that is rounding noise would amplify that noise by 1e16 and the fit would be garbage.
    """
    s = np.asarray(singular_values)
    if s.size == 0 or s[0] == 0:
        raise ValueError("the data matrix is zero; there is nothing to fit")
    if rtol is None:
        rtol = np.finfo(s.dtype).eps * max(s.size, 1) * 10
    numerical = int(np.sum(s > rtol * s[0]))
    if rank is None:
        return numerical
    r = check_positive_int(rank, name)
    if r > s.size:
        raise ValueError(
            f"{name}={r} is beyond the data: the snapshot matrix has only min(n_features, m) = {s.size} singular values"
        )
    if r > numerical:
        raise ValueError(
            f"{name}={r} is beyond the data: the snapshot matrix has numerical rank {numerical} "
            f"(singular values {s[: r + 1]!r}); use rank <= {numerical}"
        )
    return r
