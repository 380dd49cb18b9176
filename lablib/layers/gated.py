"""Gated linear attention as a token mixer: a scalar gate per head (RetNet / Mamba-2 style) or GLA's vector gate."""

from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F

from lablib import ops
from lablib.layers.common import TokenMixer

__all__ = ["GatedLinearAttention"]

GATES = ("vector", "scalar")


class GatedLinearAttention(TokenMixer):
    """Multi-head gated linear attention (Yang et al., 2024, "Gated Linear Attention Transformers").

    Data flow: q, k, v projections -> optional short convolutions -> heads -> log gates ->
    the op (``ops.gla`` or ``ops.scalar_gated_attention``, scale D^-1/2) -> per-head RMSNorm ->
    output gate silu(W_g x) -> output projection. State: {"attn": S (B, H, D, D)} (+ conv caches).

    ``gate``:
    * "vector" (GLA): log alpha_t = logsigmoid(W_2 W_1 x_t) / tau, a decay per key dim, with a
      low-rank (``gate_rank``, 16 in the paper) projection and temperature ``tau`` (16): alpha
      stays near 1, i.e. long memory, at initialization.
    * "scalar": log a_t = logsigmoid(w_h . x_t) / tau, one decay per head and step.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        *,
        gate: str = "vector",
        gate_rank: int = 16,
        tau: float = 16.0,
        conv_size: int = 0,
        **kwargs,
    ):
        super().__init__(d_model, n_heads, conv_size=conv_size, **kwargs)
        if gate not in GATES:
            raise ValueError(f"gate must be one of {GATES}; got {gate!r}")
        if not tau > 0:
            raise ValueError(f"tau must be positive; got {tau}")
        self.gate, self.tau = gate, tau
        self.q_proj = nn.Linear(d_model, d_model, bias=False)
        self.k_proj = nn.Linear(d_model, d_model, bias=False)
        self.v_proj = nn.Linear(d_model, d_model, bias=False)
        if gate == "vector":
            self.gate_proj = nn.Sequential(nn.Linear(d_model, gate_rank, bias=False), nn.Linear(gate_rank, d_model))
        else:
            self.gate_proj = nn.Linear(d_model, n_heads)
        self.o_norm = nn.RMSNorm(self.head_dim, eps=1e-5)
        self.g_proj = nn.Linear(d_model, d_model, bias=False)
        self.o_proj = nn.Linear(d_model, d_model, bias=False)

    def _forward(self, x, state, backend):
        q, k, v, conv_state = self._convolve(self.q_proj(x), self.k_proj(x), self.v_proj(x), state)
        q, k, v = self._heads(q), self._heads(k), self._heads(v)  # (B, H, T, D)
        log_gate = F.logsigmoid(self.gate_proj(x)) / self.tau  # (B, T, H * D) or (B, T, H), <= 0
        common = dict(scale=self.head_dim ** -0.5, initial_state=None if state is None else state["attn"],
                      output_final_state=True, chunk_size=self.chunk_size, backend=backend)
        if self.gate == "vector":
            r = ops.gla(q, k, v, self._heads(log_gate), **common)
        else:
            r = ops.scalar_gated_attention(q, k, v, log_gate.transpose(1, 2), **common)
        self.last_backend = r.backend
        o = self._merge(self.o_norm(r.out)) * F.silu(self.g_proj(x))
        return self.o_proj(o), {"attn": r.final_state, **conv_state}
