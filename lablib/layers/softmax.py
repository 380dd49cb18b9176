"""Causal softmax attention as a token mixer; its state is the KV cache, which grows with every token."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from lablib.layers.common import TokenMixer

__all__ = ["SoftmaxAttention"]


class SoftmaxAttention(TokenMixer):
    """Multi-head causal softmax attention (``scaled_dot_product_attention``), the baseline.

    x (B, T, d_model) -> y (B, T, d_model). State: {"k": (B, H, P, D), "v": (B, H, P, D)}, the keys
    and values of all P tokens so far (plus the conv caches with ``conv_size``): O(P) memory, the
    cost a linear-attention layer's fixed-size state avoids. A continuation's T new queries attend
    to the P cached keys and causally to their own.
    """

    def __init__(self, d_model: int, n_heads: int, *, conv_size: int = 0, **kwargs):
        super().__init__(d_model, n_heads, conv_size=conv_size, **kwargs)
        self.q_proj = nn.Linear(d_model, d_model, bias=False)
        self.k_proj = nn.Linear(d_model, d_model, bias=False)
        self.v_proj = nn.Linear(d_model, d_model, bias=False)
        self.o_proj = nn.Linear(d_model, d_model, bias=False)

    def _forward(self, x, state, backend):
        q, k, v, conv_state = self._convolve(self.q_proj(x), self.k_proj(x), self.v_proj(x), state)
        q, k, v = self._heads(q), self._heads(k), self._heads(v)  # (B, H, T, D)
        if state is not None and "k" in state:
            k = torch.cat([state["k"], k], dim=2)
            v = torch.cat([state["v"], v], dim=2)
        T, past = q.shape[2], k.shape[2] - q.shape[2]
        if past == 0:
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:  # query i sits at position past + i and sees keys 0 .. past + i
            mask = torch.ones(T, past + T, dtype=torch.bool, device=x.device).tril(past)
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        self.last_backend = "sdpa"
        return self.o_proj(self._merge(o)), {"k": k, "v": v, **conv_state}
