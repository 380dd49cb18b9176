"""What every token mixer shares: the (B, T, d_model) interface, head reshapes, short convolutions, state bytes.

A token mixer maps x (B, T, d_model) to y (B, T, d_model), mixing information across time only
causally, and carries a *state* between calls so that a sequence can be fed in pieces:

    y, state = mixer(x)                  # a whole sequence; state: everything needed to continue
    y2, state = mixer(x2, state)         # the continuation, as if x and x2 had been one sequence
    y_t, state = mixer.step(x_t, state)  # one token (B, d_model), the decoding path

A state is a plain dict of tensors (nested dicts and named tuples allowed), e.g.
{"attn": S (B, H, D_k, D_v), "conv": {"q": (B, K-1, H*D), ...}}. ``state_nbytes`` adds up the
bytes of whatever tensors it holds, so a layer's memory is measured, never computed from a formula.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["state_nbytes", "state_tensors", "ShortConvolution", "TokenMixer"]


def state_tensors(state) -> list[torch.Tensor]:
    """Every tensor in a (nested) state: dicts, lists, tuples (named tuples too); None is skipped."""
    if state is None:
        return []
    if isinstance(state, torch.Tensor):
        return [state]
    if isinstance(state, dict):
        return [t for value in state.values() for t in state_tensors(value)]
    if isinstance(state, (list, tuple)):
        return [t for value in state for t in state_tensors(value)]
    raise TypeError(f"a state holds tensors in dicts, lists and tuples; got {type(state).__name__}")


def state_nbytes(state) -> int:
    """Bytes held by a state: sum of t.numel() * t.element_size() over its tensors."""
    return sum(t.numel() * t.element_size() for t in state_tensors(state))


class ShortConvolution(nn.Module):
    """A short causal depthwise convolution over time, then SiLU (as in H3, Based, DeltaNet).

        y_t = silu(b + sum_{s=0}^{K-1} w_s * x_{t-s})        per channel, x_{t<0} = 0 (or the cache)

    Input x (B, T, channels); cache None or (B, K-1, channels), the last K-1 inputs seen before x.
    Returns (y (B, T, channels), new cache (B, K-1, channels)): feeding a sequence in pieces, or one
    token at a time, with the cache gives exactly the output of one call on the whole sequence.
    """

    def __init__(self, channels: int, kernel_size: int = 4):
        super().__init__()
        if kernel_size < 1:
            raise ValueError(f"kernel_size must be >= 1; got {kernel_size}")
        self.kernel_size = kernel_size
        self.conv = nn.Conv1d(channels, channels, kernel_size, groups=channels)  # no padding: the cache pads

    def forward(self, x: torch.Tensor, cache: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        B, T, channels = x.shape
        past = self.kernel_size - 1
        if cache is None:
            cache = x.new_zeros(B, past, channels)
        elif tuple(cache.shape) != (B, past, channels):
            raise ValueError(f"conv cache must have shape (B, K-1, channels) = {(B, past, channels)}; got {tuple(cache.shape)}")
        full = torch.cat([cache.to(x.dtype), x], dim=1)  # (B, K-1+T, channels)
        y = F.silu(self.conv(full.transpose(1, 2))).transpose(1, 2)
        return y, full[:, full.shape[1] - past:]


class TokenMixer(nn.Module):
    """Base class: input checks, head reshapes, optional short convolutions on q, k, v, and ``step``.

    Subclasses implement ``_forward(x, state, backend) -> (y, state)``. ``backend`` goes to the op
    (``lablib.ops``): the layer's own for ``forward``, "recurrent" for ``step`` (one token: nothing to
    chunk). ``last_backend`` records the backend the op reported on the latest call.
    """

    def __init__(self, d_model: int, n_heads: int, *, conv_size: int = 0, backend: str = "auto", chunk_size: int = 64):
        super().__init__()
        if d_model < 1 or n_heads < 1 or d_model % n_heads:
            raise ValueError(f"d_model must be a positive multiple of n_heads; got d_model={d_model}, n_heads={n_heads}")
        if conv_size < 0:
            raise ValueError(f"conv_size must be 0 (no convolution) or a kernel size >= 1; got {conv_size}")
        self.d_model, self.n_heads, self.head_dim = d_model, n_heads, d_model // n_heads
        self.conv_size, self.backend, self.chunk_size = conv_size, backend, chunk_size
        self.convs = nn.ModuleDict({name: ShortConvolution(d_model, conv_size) for name in "qkv"}) if conv_size else None
        self.last_backend: str | None = None

    # ----------------------------------------------------------------- interface
    def forward(self, x: torch.Tensor, state: dict | None = None) -> tuple[torch.Tensor, dict]:
        """x (B, T, d_model) -> (y (B, T, d_model), state after the last token)."""
        self._check(x, state)
        return self._forward(x, state, self.backend)

    def step(self, x_t: torch.Tensor, state: dict | None = None) -> tuple[torch.Tensor, dict]:
        """One token: x_t (B, d_model) -> (y_t (B, d_model), new state). Equals ``forward`` token by token."""
        if not isinstance(x_t, torch.Tensor) or x_t.ndim != 2:
            raise ValueError(f"step takes one token, x_t of shape (B, d_model); got {tuple(getattr(x_t, 'shape', ()))}")
        self._check(x_t.unsqueeze(1), state)
        y, state = self._forward(x_t.unsqueeze(1), state, "recurrent")
        return y.squeeze(1), state

    def state_nbytes(self, state: dict) -> int:
        """Bytes of decoding state, summed over the state's tensors (see ``state_nbytes``)."""
        return state_nbytes(state)

    def _forward(self, x: torch.Tensor, state: dict | None, backend: str) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError

    # ----------------------------------------------------------------- helpers
    def _check(self, x, state) -> None:
        if not isinstance(x, torch.Tensor) or x.ndim != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"x must have shape (B, T, d_model={self.d_model}); got {tuple(getattr(x, 'shape', ()))}")
        if not x.is_floating_point():
            raise ValueError(f"x must be a floating-point tensor; got dtype {x.dtype}")
        if state is not None and not isinstance(state, dict):
            raise TypeError(f"state must be None or the dict a previous call returned; got {type(state).__name__}")

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, H * D) -> (B, H, T, D)."""
        B, T, _ = x.shape
        return x.reshape(B, T, self.n_heads, -1).transpose(1, 2)

    @staticmethod
    def _merge(x: torch.Tensor) -> torch.Tensor:
        """(B, H, T, D) -> (B, T, H * D)."""
        B, H, T, D = x.shape
        return x.transpose(1, 2).reshape(B, T, H * D)

    def _convolve(self, q, k, v, state: dict | None):
        """Short convolutions on q, k, v (B, T, d_model) with their caches; identity without ``conv_size``."""
        if self.convs is None:
            return q, k, v, {}
        caches = {} if state is None else state.get("conv", {})
        out, new = [], {}
        for name, x in zip("qkv", (q, k, v)):
            y, new[name] = self.convs[name](x, caches.get(name))
            out.append(y)
        return *out, {"conv": new}
