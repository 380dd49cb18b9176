"""Linear attention as a token mixer: a feature map, then either the normalizer or an output norm."""

from __future__ import annotations

import torch
import torch.nn as nn

from lablib import ops
from lablib.attention.feature_maps import FeatureMap, resolve_feature_map
from lablib.layers.common import ShortConvolution, TokenMixer

__all__ = ["LinearAttention"]

NORMS = ("normalizer", "rmsnorm")


class LinearAttention(TokenMixer):
    """Multi-head causal linear attention (Katharopoulos et al., 2020; TransNormer's variant).

    Data flow: q, k, v projections -> optional short convolutions -> heads -> phi(q), phi(k) ->
    ``ops.linear_attention`` -> readout -> output projection. ``feature_map``: a name from
    ``lablib.attention.FEATURE_MAPS`` or a callable (an ``nn.Module`` is registered, so a learned
    map such as Hedgehog's trains with the layer); it may change the key dim to F.

    ``norm``:
    * "normalizer": o_t = phi(q_t)^T S_t / phi(q_t)^T z_t, the original form; state
      ``LinearAttentionState(kv (B, H, F, D), k_sum (B, H, F))``.
    * "rmsnorm": TransNormer's NormAttention (Qin et al., 2022): drop the denominator (it can be
      near 0 and destabilize training) and RMS-normalize each head's output instead; state
      S (B, H, F, D).

    A feature map with an ``at(offset)`` method (cosFormer's, whose features depend on absolute
    positions) is called at the right offset, and the state carries ``position``, the number of
    tokens seen, so that ``step`` and continued calls match one call on the whole sequence.

    ``qk_dim``: the per-head width of q and k before the feature map (default: the head dim).
    Based (Arora et al., 2024) projects them to 16 and expands with the Taylor map to 273.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        *,
        feature_map: str | FeatureMap = "elu+1",
        norm: str = "normalizer",
        conv_size: int = 0,
        qk_dim: int | None = None,
        **kwargs,
    ):
        super().__init__(d_model, n_heads, conv_size=conv_size, **kwargs)
        if qk_dim is not None and qk_dim < 1:
            raise ValueError(f"qk_dim must be None or a positive width per head; got {qk_dim}")
        self.qk_dim = self.head_dim if qk_dim is None else qk_dim
        qk_width = n_heads * self.qk_dim
        if self.convs is not None and qk_width != d_model:  # q and k are narrower (or wider) than v
            self.convs = nn.ModuleDict({"q": ShortConvolution(qk_width, conv_size),
                                        "k": ShortConvolution(qk_width, conv_size),
                                        "v": ShortConvolution(d_model, conv_size)})
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}; got {norm!r}")
        self.norm = norm
        self.feature_map = feature_map if isinstance(feature_map, nn.Module) else resolve_feature_map(feature_map)
        self.q_proj = nn.Linear(d_model, qk_width, bias=False)
        self.k_proj = nn.Linear(d_model, qk_width, bias=False)
        self.v_proj = nn.Linear(d_model, d_model, bias=False)
        self.o_norm = nn.RMSNorm(self.head_dim, eps=1e-5) if norm == "rmsnorm" else None
        self.o_proj = nn.Linear(d_model, d_model, bias=False)

    def _forward(self, x, state, backend):
        q, k, v, conv_state = self._convolve(self.q_proj(x), self.k_proj(x), self.v_proj(x), state)
        q, k, v = self._heads(q), self._heads(k), self._heads(v)  # (B, H, T, D)
        feature_map, position = self.feature_map, None
        if hasattr(feature_map, "at"):  # a map of absolute positions (cosFormer): continue where the state stopped
            position = 0 if state is None or "position" not in state else int(state["position"])
            feature_map = feature_map.at(position)
        r = ops.linear_attention(
            q, k, v, feature_map=feature_map, normalize=self.norm == "normalizer",
            initial_state=None if state is None else state["attn"], output_final_state=True,
            chunk_size=self.chunk_size, backend=backend,
        )
        self.last_backend = r.backend
        o = r.out if self.o_norm is None else self.o_norm(r.out)
        new_state = {"attn": r.final_state, **conv_state}
        if position is not None:
            new_state["position"] = torch.tensor(position + x.shape[1])
        return self.o_proj(self._merge(o)), new_state
