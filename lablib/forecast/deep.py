"""Two deep forecasters to set against the linear ones: an MLP and a small Transformer.

Both map windows x (B, L) to forecasts (B, H).

* :class:`MLP`: L -> hidden -> hidden -> H with GELU and dropout.
* :class:`Transformer`: the encoder-decoder Transformer of the LTSF papers (Informer, Autoformer,
  and the baseline "Transformer" in Zeng et al.), small, over *patch* tokens: the window is cut into
  patches of ``patch`` points (8), each embedded by a linear map plus a sinusoidal position code on
  one clock for the whole window; the encoder reads the L / p lookback patches; the decoder reads
  the last ``label_len`` lookback values followed by H zero placeholders (Informer's "start token"),
  with causal self-attention and cross-attention to the encoder, and a linear read-out turns each
  placeholder patch into p forecast steps, all H at once. Post-norm layers, GELU, dropout 0.05 on
  the residual branches. The LTSF papers' Transformers make every time step a token; on this
  project's 2 CPU cores that model took 0.4 s per batch and was still far from converged after the
  10-epoch protocol (validation MSE 0.26 on Taylor at H = 96, against 0.05 for the MLP), so we
  patch as PatchTST (Nie et al. 2023) does, which cuts attention's cost by p^2.
  With ``subtract_last=True`` the window's last value is subtracted first and added back to the
  forecast: NLinear's normalization put around the whole network.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lablib.forecast.models import _Forecaster, check_windows

__all__ = ["MLP", "Attention", "Block", "Transformer", "sinusoidal_positions"]


class MLP(_Forecaster):
    """L -> hidden -> hidden -> H, GELU, dropout."""

    def __init__(self, lookback: int, horizon: int, hidden: int = 256, dropout: float = 0.1):
        super().__init__(lookback, horizon)
        self.net = nn.Sequential(nn.Linear(lookback, hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, horizon))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_windows(x, self.lookback)
        return self.net(x)


def sinusoidal_positions(length: int, d_model: int) -> torch.Tensor:
    """(length, d_model) sine/cosine position codes of Vaswani et al."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    codes = torch.zeros(length, d_model)
    codes[:, 0::2] = torch.sin(position * freq)
    codes[:, 1::2] = torch.cos(position * freq[: d_model // 2])
    return codes


class Attention(nn.Module):
    """Multi-head attention: queries from x (B, T, d), keys and values from ``context`` (B, S, d) (x if None)."""

    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        self.n_heads = n_heads
        self.q, self.kv, self.out = nn.Linear(d_model, d_model), nn.Linear(d_model, 2 * d_model), nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None, causal: bool = False) -> torch.Tensor:
        B, T, d = x.shape
        context = x if context is None else context
        heads = lambda t: t.view(B, t.shape[1], self.n_heads, d // self.n_heads).transpose(1, 2)  # (B, heads, T, d_head)
        k, v = self.kv(context).chunk(2, dim=-1)
        y = nn.functional.scaled_dot_product_attention(heads(self.q(x)), heads(k), heads(v), is_causal=causal)
        return self.out(y.transpose(1, 2).reshape(B, T, d))


class Block(nn.Module):
    """A post-norm Transformer layer: self-attention, cross-attention (decoder only), feed-forward."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float, cross: bool):
        super().__init__()
        self.self_attn = Attention(d_model, n_heads)
        self.cross_attn = Attention(d_model, n_heads) if cross else None
        self.ff = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Linear(d_ff, d_model))
        self.norms = nn.ModuleList(nn.LayerNorm(d_model) for _ in range(3 if cross else 2))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, memory: torch.Tensor | None = None) -> torch.Tensor:
        x = self.norms[0](x + self.drop(self.self_attn(x, causal=self.cross_attn is not None)))
        if self.cross_attn is not None:
            x = self.norms[1](x + self.drop(self.cross_attn(x, memory)))
        return self.norms[-1](x + self.drop(self.ff(x)))


class Transformer(_Forecaster):
    """Encoder-decoder Transformer over patch tokens with a start-token decoder (see the module docstring)."""

    def __init__(self, lookback: int, horizon: int, label_len: int = 48, patch: int = 8, d_model: int = 64,
                 n_heads: int = 4, e_layers: int = 2, d_layers: int = 1, d_ff: int = 128, dropout: float = 0.05,
                 subtract_last: bool = False):
        super().__init__(lookback, horizon)
        if not 0 <= label_len <= lookback:
            raise ValueError(f"label_len must be in [0, lookback = {lookback}]; got {label_len}")
        if lookback % patch or horizon % patch or label_len % patch:
            raise ValueError(f"lookback, horizon and label_len must be multiples of the patch {patch}; "
                             f"got {lookback}, {horizon}, {label_len}")
        if d_model % n_heads or d_model % 2:
            raise ValueError(f"d_model must be even and divisible by n_heads; got {d_model}, {n_heads}")
        self.label_len, self.patch, self.subtract_last = label_len, patch, subtract_last
        self.enc_embed, self.dec_embed = nn.Linear(patch, d_model), nn.Linear(patch, d_model)
        # one clock for the whole window, in patches: the decoder's first token sits at patch (L - label_len) / p
        clock = sinusoidal_positions((lookback + horizon) // patch, d_model)
        self.register_buffer("enc_pos", clock[: lookback // patch], persistent=False)
        self.register_buffer("dec_pos", clock[(lookback - label_len) // patch:], persistent=False)
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.ModuleList(Block(d_model, n_heads, d_ff, dropout, cross=False) for _ in range(e_layers))
        self.decoder = nn.ModuleList(Block(d_model, n_heads, d_ff, dropout, cross=True) for _ in range(d_layers))
        self.enc_norm, self.dec_norm = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_windows(x, self.lookback)
        B, p = x.shape[0], self.patch
        last = x[:, -1:].detach() if self.subtract_last else None
        if last is not None:  # NLinear's normalization around the whole network
            x = x - last
        memory = self.drop(self.enc_embed(x.view(B, -1, p)) + self.enc_pos)  # (B, L / p, d)
        for block in self.encoder:
            memory = block(memory)
        memory = self.enc_norm(memory)
        # decoder input: the last label_len known values, then zero placeholders for the H steps to forecast
        h = torch.cat([x[:, x.shape[1] - self.label_len:], x.new_zeros(B, self.horizon)], dim=1)
        h = self.drop(self.dec_embed(h.view(B, -1, p)) + self.dec_pos)  # (B, (label_len + H) / p, d)
        for block in self.decoder:
            h = block(h, memory)
        y = self.head(self.dec_norm(h)[:, self.label_len // p:]).reshape(B, self.horizon)  # (B, H)
        return y if last is None else y + last
