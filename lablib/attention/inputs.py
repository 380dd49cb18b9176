"""Seeded random inputs, so chapters and tests get the same tensors whatever order cells run in."""

from __future__ import annotations

import torch

__all__ = ["random_qkv"]


def random_qkv(
    T: int, *, B: int = 1, H: int = 1, d_k: int = 16, d_v: int | None = None, seed: int = 0,
    dtype: torch.dtype = torch.float32, requires_grad: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Standard-normal q, k (B, H, T, d_k) and v (B, H, T, d_v) from a private generator seeded with ``seed``."""
    if T < 0 or min(B, H, d_k) < 1:
        raise ValueError(f"need T >= 0 and B, H, d_k >= 1; got T={T}, B={B}, H={H}, d_k={d_k}")
    d_v = d_k if d_v is None else d_v
    g = torch.Generator().manual_seed(seed)
    return tuple(
        torch.randn(B, H, T, d, generator=g, dtype=dtype).requires_grad_(requires_grad) for d in (d_k, d_k, d_v)
    )
