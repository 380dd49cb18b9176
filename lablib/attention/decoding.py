"""Token-by-token decoding: linear attention's constant-size state against softmax's growing KV cache.

A softmax decoder must keep every past key and value (memory grows with T); a linear-attention
decoder keeps only the RNN state (S, z), whose size depends on D_k and D_v alone. Both classes
take one token at a time as (B, H, 1, D) tensors and return the output (B, H, 1, D_v).
"""

from __future__ import annotations

import torch

from lablib._checks import check_sequence_tensor
from lablib.attention.feature_maps import FeatureMap, resolve_feature_map
from lablib.attention.linear import (
    DEFAULT_EPS,
    LinearAttentionState,
    linear_attention_chunkwise,
    linear_attention_recurrent,
)
from lablib.attention.softmax import softmax_attention

__all__ = ["LinearAttentionDecoder", "SoftmaxKVCacheDecoder"]


def _check_one_token(x: torch.Tensor, name: str) -> None:
    check_sequence_tensor(x, name)
    if x.shape[2] != 1:
        raise ValueError(f"{name} must hold one token, shape (B, H, 1, D); got shape {tuple(x.shape)}")


class LinearAttentionDecoder:
    """Causal linear attention as an RNN that carries its state between calls.

    >>> dec = LinearAttentionDecoder(B=1, H=2, d_k=8, d_v=8)
    >>> o = dec.prefill(q, k, v)        # (1, 2, T, 8): absorb a prompt, chunkwise
    >>> o_next = dec.step(q1, k1, v1)   # (1, 2, 1, 8): one more token
    >>> dec.nbytes                      # the same whatever T was
    """

    def __init__(
        self,
        B: int,
        H: int,
        d_k: int,
        d_v: int,
        *,
        feature_map: str | FeatureMap = "elu+1",
        normalize: bool = True,
        eps: float = DEFAULT_EPS,
        dtype: torch.dtype = torch.float32,
        device=None,
    ):
        self.feature_map = resolve_feature_map(feature_map)
        self.normalize, self.eps = normalize, eps
        # The state's key dim is phi's output dim, which may differ from d_k: probe it once.
        d_feature = self.feature_map(torch.zeros(1, d_k, dtype=dtype, device=device)).shape[-1]
        self.state = LinearAttentionState.zeros(B, H, d_feature, d_v, dtype=dtype, device=device)
        self.tokens_seen = 0

    def _run(self, fn, q, k, v, **kwargs) -> torch.Tensor:
        out, self.state = fn(
            q, k, v, feature_map=self.feature_map, causal=True, normalize=self.normalize, eps=self.eps,
            initial_state=self.state, return_state=True, **kwargs,
        )
        self.tokens_seen += k.shape[2]
        return out

    def prefill(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, chunk_size: int = 64) -> torch.Tensor:
        """Absorb a whole prompt (B, H, T, D) in chunkwise form; returns its outputs (B, H, T, D_v)."""
        return self._run(linear_attention_chunkwise, q, k, v, chunk_size=chunk_size)

    def step(self, q_t: torch.Tensor, k_t: torch.Tensor, v_t: torch.Tensor) -> torch.Tensor:
        """One token (B, H, 1, D) in, its output (B, H, 1, D_v) out; the state is updated in place."""
        for x, name in ((q_t, "q_t"), (k_t, "k_t"), (v_t, "v_t")):
            _check_one_token(x, name)
        return self._run(linear_attention_recurrent, q_t, k_t, v_t)

    @property
    def nbytes(self) -> int:
        """Bytes of decoding state: B * H * (D_k * D_v + D_k) * itemsize, independent of tokens_seen."""
        return self.state.nbytes


class SoftmaxKVCacheDecoder:
    """Causal softmax attention decoded with a KV cache: the baseline whose memory grows with T."""

    def __init__(self, *, scale: float | None = None):
        self.scale = scale
        self.keys: torch.Tensor | None = None
        self.values: torch.Tensor | None = None

    def step(self, q_t: torch.Tensor, k_t: torch.Tensor, v_t: torch.Tensor) -> torch.Tensor:
        """Append (k_t, v_t) to the cache and attend from q_t over everything cached; (B, H, 1, D_v)."""
        for x, name in ((q_t, "q_t"), (k_t, "k_t"), (v_t, "v_t")):
            _check_one_token(x, name)
        self.keys = k_t if self.keys is None else torch.cat([self.keys, k_t], dim=2)
        self.values = v_t if self.values is None else torch.cat([self.values, v_t], dim=2)
        return softmax_attention(q_t, self.keys, self.values, causal=False, scale=self.scale)

    @property
    def tokens_seen(self) -> int:
        return 0 if self.keys is None else self.keys.shape[2]

    @property
    def nbytes(self) -> int:
        """Bytes of the cache: 2 * B * H * T * D * itemsize, growing linearly with tokens_seen."""
        if self.keys is None:
            return 0
        return sum(x.numel() * x.element_size() for x in (self.keys, self.values))
