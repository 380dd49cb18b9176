"""DeltaNet and Gated DeltaNet as token mixers."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from lablib import ops
from lablib.layers.common import TokenMixer

__all__ = ["DeltaNet", "GatedDeltaNet"]


class DeltaNet(TokenMixer):
    """Multi-head DeltaNet (Schlag et al., 2021; Yang et al., 2024): linear attention that overwrites.

    Data flow (as in flash-linear-attention's layer): q, k, v projections -> short causal
    convolutions with SiLU (``conv_size``, 4 by default; 0: SiLU only) -> heads -> L2-normalized
    q and k -> beta_t = sigmoid(w_h . x_t), times 2 with ``allow_neg_eigval`` (beta in (0, 2): the
    transition I - beta k k^T may have a negative eigenvalue, which lets the state track parity;
    Grazzi et al., 2025) -> ``ops.delta_rule`` (scale D^-1/2) -> per-head RMSNorm [-> output gate]
    -> output projection. State: {"attn": S (B, H, D, D), "conv": {"q", "k", "v": (B, K-1, d_model)}}.
    """

    gated = False

    def __init__(self, d_model: int, n_heads: int, *, conv_size: int = 4, allow_neg_eigval: bool = False, **kwargs):
        super().__init__(d_model, n_heads, conv_size=conv_size, **kwargs)
        self.allow_neg_eigval = allow_neg_eigval
        self.q_proj = nn.Linear(d_model, d_model, bias=False)
        self.k_proj = nn.Linear(d_model, d_model, bias=False)
        self.v_proj = nn.Linear(d_model, d_model, bias=False)
        self.b_proj = nn.Linear(d_model, n_heads)
        self.o_norm = nn.RMSNorm(self.head_dim, eps=1e-5)
        self.o_proj = nn.Linear(d_model, d_model, bias=False)

    def _log_decay(self, x: torch.Tensor) -> torch.Tensor | None:
        return None  # DeltaNet does not forget; GatedDeltaNet overrides this

    def _output(self, o: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self._merge(self.o_norm(o))

    def _forward(self, x, state, backend):
        q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
        if self.convs is None:
            q, k, v, conv_state = F.silu(q), F.silu(k), F.silu(v), {}
        else:
            q, k, v, conv_state = self._convolve(q, k, v, state)  # SiLU inside
        q, k, v = self._heads(q), self._heads(k), self._heads(v)  # (B, H, T, D)
        q, k = F.normalize(q, dim=-1, eps=1e-6), F.normalize(k, dim=-1, eps=1e-6)
        beta = torch.sigmoid(self.b_proj(x)).transpose(1, 2)  # (B, H, T) in (0, 1)
        if self.allow_neg_eigval:
            beta = 2 * beta
        r = ops.delta_rule(
            q, k, v, beta, log_decay=self._log_decay(x), normalize_keys=False, scale=self.head_dim ** -0.5,
            initial_state=None if state is None else state["attn"], output_final_state=True,
            chunk_size=self.chunk_size, backend=backend,
        )
        self.last_backend = r.backend
        return self.o_proj(self._output(r.out, x)), {"attn": r.final_state, **conv_state}


class GatedDeltaNet(DeltaNet):
    """Gated DeltaNet (Yang, Kautz & Hatamizadeh, 2024): DeltaNet whose state also decays, S <- a_t (...).

    The gate is Mamba-2's: log a_t = -exp(A_log_h) * softplus(w_h . x_t + dt_bias_h) <= 0, with
    A = exp(A_log) drawn from U(1, 16) and dt = softplus(dt_bias) log-uniform on [1e-3, 1e-1] at
    initialization; and the output is gated, RMSNorm(o) * silu(W_g x), before the projection.
    Everything else, the state included, is ``DeltaNet``'s.
    """

    gated = True

    def __init__(self, d_model: int, n_heads: int, **kwargs):
        super().__init__(d_model, n_heads, **kwargs)
        self.a_proj = nn.Linear(d_model, n_heads, bias=False)
        self.A_log = nn.Parameter(torch.empty(n_heads).uniform_(1.0, 16.0).log())
        dt = torch.empty(n_heads).uniform_(math.log(1e-3), math.log(1e-1)).exp()
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))  # softplus^{-1}(dt)
        self.g_proj = nn.Linear(d_model, d_model, bias=False)

    def _log_decay(self, x: torch.Tensor) -> torch.Tensor:
        log_a = -self.A_log.exp() * F.softplus(self.a_proj(x) + self.dt_bias)  # (B, T, H)
        return log_a.transpose(1, 2)

    def _output(self, o: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self._merge(self.o_norm(o)) * F.silu(self.g_proj(x))
