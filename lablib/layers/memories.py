"""Mixture of Memories (Du et al., 2025, "MoM: Linear Sequence Modeling with Mixture-of-Memories").

One fixed-size state must hold every key-value pair a sequence has shown it; pairs interfere.
MoM keeps M separate states (memories) and a router that sends each token to its top-k of them:
only the chosen memories are written, so each holds fewer pairs, and the readout mixes the
chosen memories' answers with the router's weights.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from lablib import ops
from lablib.layers.common import TokenMixer

__all__ = ["MixtureOfMemories"]


class MixtureOfMemories(TokenMixer):
    """DeltaNet memories behind a top-k router: M states of (H, D, D) each.

    For token t: router weights r_t = softmax(W_r x_t) (M,), kept on the top-k memories and
    renormalized (g_t, zero elsewhere). Memory m has its own key and value projections and writes
    with the delta rule only where it was chosen, beta_t,m = sigmoid(w_m . x_t) * [g_t,m > 0]:

        S^m_t = (I - beta_t,m k^m_t k^m_t^T) S^m_{t-1} + beta_t,m k^m_t v^m_t^T     (unchanged if not chosen)
        o_t = sum_m g_t,m (S^m_t)^T q_t                                              (q shared by all memories)

    The M memories run as M * H heads of one ``ops.delta_rule`` call. Short convolutions (on q and
    on every memory's k and v) as in ``DeltaNet``. State: {"attn": (B, M * H, D, D)} (+ conv caches):
    M times a DeltaNet's of the same d_model. Differences from the paper: no shared always-on memory,
    no load-balancing loss, delta-rule memories without decay.
    """

    def __init__(self, d_model: int, n_heads: int, *, n_memories: int = 4, top_k: int = 2, conv_size: int = 4, **kwargs):
        super().__init__(d_model, n_heads, conv_size=0, **kwargs)
        if n_memories < 1 or not 1 <= top_k <= n_memories:
            raise ValueError(f"need n_memories >= 1 and 1 <= top_k <= n_memories; got {n_memories}, {top_k}")
        self.n_memories, self.top_k, self.conv_size = n_memories, top_k, conv_size
        if conv_size:
            from lablib.layers.common import ShortConvolution

            self.convs = nn.ModuleDict({"q": ShortConvolution(d_model, conv_size),
                                        "k": ShortConvolution(n_memories * d_model, conv_size),
                                        "v": ShortConvolution(n_memories * d_model, conv_size)})
        self.q_proj = nn.Linear(d_model, d_model, bias=False)
        self.k_proj = nn.Linear(d_model, n_memories * d_model, bias=False)
        self.v_proj = nn.Linear(d_model, n_memories * d_model, bias=False)
        self.b_proj = nn.Linear(d_model, n_memories * n_heads)
        self.router = nn.Linear(d_model, n_memories, bias=False)
        self.o_norm = nn.RMSNorm(self.head_dim, eps=1e-5)
        self.o_proj = nn.Linear(d_model, d_model, bias=False)

    def routing(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, d_model) -> g (B, T, M): router weights on the top-k memories (summing to 1), 0 elsewhere."""
        probs = self.router(x).softmax(-1)
        top = probs.topk(self.top_k, dim=-1)
        g = torch.zeros_like(probs).scatter(-1, top.indices, top.values)
        return g / g.sum(-1, keepdim=True)

    def _forward(self, x, state, backend):
        B, T, _ = x.shape
        M, H, D = self.n_memories, self.n_heads, self.head_dim
        q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
        if self.convs is None:
            q, k, v, conv_state = F.silu(q), F.silu(k), F.silu(v), {}
        else:
            q, k, v, conv_state = self._convolve(q, k, v, state)
        g = self.routing(x)  # (B, T, M)
        q = self._heads(q).repeat(1, M, 1, 1)  # (B, M*H, T, D): memory-major, like k and v
        k, v = (t.reshape(B, T, M * H, D).transpose(1, 2) for t in (k, v))  # (B, M*H, T, D), memory-major
        q, k = F.normalize(q, dim=-1, eps=1e-6), F.normalize(k, dim=-1, eps=1e-6)
        chosen = (g > 0).to(x.dtype).repeat_interleave(H, dim=-1)  # (B, T, M*H)
        beta = (torch.sigmoid(self.b_proj(x)) * chosen).transpose(1, 2)  # (B, M*H, T)
        r = ops.delta_rule(q, k, v, beta, normalize_keys=False, scale=D ** -0.5,
                           initial_state=None if state is None else state["attn"], output_final_state=True,
                           chunk_size=self.chunk_size, backend=backend)
        self.last_backend = r.backend
        o = r.out.reshape(B, M, H, T, D)
        o = (o * g.permute(0, 2, 1)[:, :, None, :, None]).sum(1)  # (B, H, T, D): router-weighted readout
        return self.o_proj(self._merge(self.o_norm(o))), {"attn": r.final_state, **conv_state}
