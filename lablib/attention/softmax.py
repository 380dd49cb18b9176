"""Softmax attention, the reference everything else in track 1 is compared with."""

from __future__ import annotations

import math

import torch

from lablib._checks import check_qkv

__all__ = ["softmax_attention"]


def softmax_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, causal: bool = False, scale: float | None = None
) -> torch.Tensor:
    """Scaled dot-product attention, softmax(q k^T * scale) v.

    Args:
        q: queries (B, H, T_q, D_k); k: keys (B, H, T, D_k); v: values (B, H, T, D_v).
        causal: query t sees keys 0..t only (needs T_q == T).
        scale: logit scale, 1/sqrt(D_k) by default.

    Returns:
        (B, H, T_q, D_v), in the dtype of the inputs. Cost: O(T_q * T) time and memory.
    """
    check_qkv(q, k, v, causal=causal)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    logits = (q @ k.transpose(-1, -2)) * scale  # (B, H, T_q, T)
    if causal:
        T = q.shape[2]
        future = torch.ones(T, T, dtype=torch.bool, device=q.device).triu(1)
        logits = logits.masked_fill(future, float("-inf"))
    return torch.softmax(logits, dim=-1) @ v
