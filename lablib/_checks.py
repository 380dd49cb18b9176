"""Input checks shared by every public function.

Each check raises ``ValueError`` (or ``TypeError`` for non-tensors) with the offending
shape or dtype in the message, so a mistake is caught at the call that made it rather
than ten matmuls later as a broadcasting error.
"""

from __future__ import annotations

import torch

__all__ = ["check_sequence_tensor", "check_qkv", "check_finite", "check_frame"]


def check_sequence_tensor(x: torch.Tensor, name: str) -> None:
    """Check that ``x`` is a floating-point tensor of shape (B, H, T, D)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (B, H, T, D); got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{name} must have shape (B, H, T, D); got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor; got dtype {x.dtype}")


def check_finite(x: torch.Tensor, name: str) -> None:
    """Raise if ``x`` holds NaN or Inf (a silent NaN would poison every later step of a recurrence)."""
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or Inf values (shape {tuple(x.shape)})")


def check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, causal: bool, check_values: bool = True) -> None:
    """Check queries (B, H, T_q, D_k), keys (B, H, T, D_k) and values (B, H, T, D_v).

    Causal attention needs T_q == T (query t attends to keys 0..t). ``check_values=False`` skips
    the NaN/Inf scan, for fast paths where a full read of the inputs (and a GPU sync) would cost
    more than the kernel itself.
    """
    for name, x in (("q", q), ("k", k), ("v", v)):
        check_sequence_tensor(x, name)
        if check_values:
            check_finite(x, name)
    if q.shape[:2] != k.shape[:2] or v.shape[:2] != k.shape[:2]:
        raise ValueError(
            "q, k, v must share batch and head sizes (B, H); got shapes "
            f"q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}"
        )
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q and k must share the key dim D_k; got q {tuple(q.shape)} and k {tuple(k.shape)}")
    if k.shape[2] != v.shape[2]:
        raise ValueError(f"k and v must share the length T; got k {tuple(k.shape)} and v {tuple(v.shape)}")
    if causal and q.shape[2] != k.shape[2]:
        raise ValueError(
            f"causal attention needs as many queries as keys; got q {tuple(q.shape)} and k {tuple(k.shape)}"
        )
    if not (q.dtype == k.dtype == v.dtype):
        raise ValueError(f"q, k, v must share a dtype; got {q.dtype}, {k.dtype}, {v.dtype}")


def check_frame(df, columns: list[str], name: str) -> None:
    """Check that ``df`` is a non-empty pandas DataFrame with ``columns`` (what a chart function reads)."""
    import pandas as pd  # here, not at the top: the tensor checks above must not import pandas

    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{name} takes a pandas DataFrame with columns {columns}; got {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{name} needs columns {columns}; missing {missing} (got {list(df.columns)})")
    if df.empty:
        raise ValueError(f"{name} got an empty DataFrame")
