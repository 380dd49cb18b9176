"""A small language model that takes any token mixer: pre-norm blocks, tied embeddings (nanoGPT-sized).

    model = LanguageModel(mixer="gated_deltanet", vocab=16, d_model=64, n_layers=2, n_heads=2)
    logits, state = model(tokens)                 # tokens (B, T) int64 -> logits (B, T, vocab)
    logits_t, state = model.step(token, state)    # one token (B,) -> (B, vocab): decoding
    model.state_nbytes(state)                     # the decoding memory, measured
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from lablib.layers.common import state_nbytes
from lablib.layers.delta import DeltaNet, GatedDeltaNet
from lablib.layers.gated import GatedLinearAttention
from lablib.layers.linear import LinearAttention
from lablib.layers.memories import MixtureOfMemories
from lablib.layers.softmax import SoftmaxAttention

__all__ = ["MIXERS", "LMConfig", "LanguageModel"]

MIXERS: dict[str, Callable[..., nn.Module]] = {
    "softmax": SoftmaxAttention,
    "linear": LinearAttention,
    "based": partial(LinearAttention, feature_map="taylor", qk_dim=16),
    "gla": partial(GatedLinearAttention, gate="vector"),
    "scalar_gated": partial(GatedLinearAttention, gate="scalar"),
    "deltanet": DeltaNet,
    "gated_deltanet": GatedDeltaNet,
    "mom": MixtureOfMemories,
}


@dataclass
class LMConfig:
    """Everything that defines a ``LanguageModel``.

    mixer: a name in ``MIXERS`` or a factory ``f(d_model, n_heads) -> nn.Module`` whose module has
    ``forward(x, state) -> (y, state)`` and ``step(x_t, state) -> (y_t, state)`` like lablib.layers'.
    mixer_kwargs go to a named mixer (e.g. {"conv_size": 4}, {"feature_map": "relu"}).
    max_len: learned absolute position embeddings for positions < max_len (None: none, the
    default; a recurrent mixer knows order from its recurrence, softmax attention does not).
    """

    vocab: int
    mixer: str | Callable[[int, int], nn.Module] = "gated_deltanet"
    n_layers: int = 2
    d_model: int = 64
    n_heads: int = 2
    mlp: bool = True
    mlp_ratio: int = 4
    mixer_kwargs: dict = field(default_factory=dict)
    max_len: int | None = None


class Block(nn.Module):
    """x + mixer(norm(x)), then x + mlp(norm(x)) (GELU MLP, ``mlp_ratio`` wide) unless mlp=False."""

    def __init__(self, cfg: LMConfig):
        super().__init__()
        self.norm1 = nn.RMSNorm(cfg.d_model, eps=1e-5)
        if callable(cfg.mixer):
            self.mixer = cfg.mixer(cfg.d_model, cfg.n_heads)
        else:
            self.mixer = MIXERS[cfg.mixer](cfg.d_model, cfg.n_heads, **cfg.mixer_kwargs)
        self.mlp = None
        if cfg.mlp:
            hidden = cfg.mlp_ratio * cfg.d_model
            self.norm2 = nn.RMSNorm(cfg.d_model, eps=1e-5)
            self.mlp = nn.Sequential(nn.Linear(cfg.d_model, hidden), nn.GELU(), nn.Linear(hidden, cfg.d_model))

    def _mlp(self, x):
        return x if self.mlp is None else x + self.mlp(self.norm2(x))

    def forward(self, x, state=None):
        y, state = self.mixer(self.norm1(x), state)
        return self._mlp(x + y), state

    def step(self, x_t, state=None):
        y, state = self.mixer.step(self.norm1(x_t), state)
        return self._mlp(x_t + y), state


class LanguageModel(nn.Module):
    """Token embedding -> n_layers pre-norm blocks (mixer [+ MLP]) -> RMSNorm -> tied output head.

    Keywords as in ``LMConfig`` (``LanguageModel(mixer="gla", vocab=16)``, or ``LanguageModel(config=cfg)``).
    ``forward(tokens (B, T) int64, state=None) -> (logits (B, T, vocab), state)`` where state is a
    list of per-layer states; pass it back to continue the sequence. ``step(tokens (B,), state)``
    decodes one token; a sequence stepped through token by token gives the same logits as forward.
    """

    def __init__(self, config: LMConfig | None = None, **kwargs):
        super().__init__()
        if config is None:
            config = LMConfig(**kwargs)
        elif kwargs:
            raise TypeError(f"pass either config or keywords, not both; got config and {sorted(kwargs)}")
        if not callable(config.mixer) and config.mixer not in MIXERS:
            raise ValueError(f"unknown mixer {config.mixer!r}; choose one of {sorted(MIXERS)} or pass a factory")
        if min(config.vocab, config.n_layers, config.d_model, config.n_heads) < 1:
            raise ValueError(f"vocab, n_layers, d_model and n_heads must be positive; got {config}")
        self.config = config
        self.embed = nn.Embedding(config.vocab, config.d_model)
        self.pos = None if config.max_len is None else nn.Embedding(config.max_len, config.d_model)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.norm = nn.RMSNorm(config.d_model, eps=1e-5)
        self.head = nn.Linear(config.d_model, config.vocab, bias=False)
        self.apply(self._init)
        self.head.weight = self.embed.weight  # tied, as in GPT-2 / nanoGPT

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)

    def _check_tokens(self, tokens: torch.Tensor, ndim: int, shape: str) -> None:
        if not isinstance(tokens, torch.Tensor) or tokens.ndim != ndim or tokens.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"tokens must be an integer tensor of shape {shape}; got "
                             f"{tuple(getattr(tokens, 'shape', ()))} {getattr(tokens, 'dtype', type(tokens).__name__)}")

    def _check_state(self, state) -> list:
        if state is None:
            return [None] * len(self.blocks)
        if not isinstance(state, list) or len(state) != len(self.blocks):
            raise ValueError(f"state must be the list of {len(self.blocks)} layer states a previous call returned")
        return state

    def _embed(self, tokens: torch.Tensor, state: list) -> torch.Tensor:
        """Token embeddings, plus position embeddings (continuing after the tokens a state has seen)."""
        x = self.embed(tokens)
        if self.pos is None:
            return x
        past = 0 if state[0] is None else int(state[0]["position"])
        T = tokens.shape[-1] if tokens.ndim == 2 else 1
        if past + T > self.config.max_len:
            raise ValueError(f"position {past + T - 1} is beyond max_len={self.config.max_len}")
        positions = self.pos(torch.arange(past, past + T, device=tokens.device))
        return x + (positions if tokens.ndim == 2 else positions[0])

    def _with_position(self, new_state: list, state: list, T: int) -> list:
        if self.pos is None:
            return new_state
        past = 0 if state[0] is None else int(state[0]["position"])
        new_state[0] = {**new_state[0], "position": torch.tensor(past + T)}
        return new_state

    def forward(self, tokens: torch.Tensor, state: list | None = None) -> tuple[torch.Tensor, list]:
        hidden, state = self.hidden(tokens, state)
        return self.head(hidden), state

    def hidden(self, tokens: torch.Tensor, state: list | None = None) -> tuple[torch.Tensor, list]:
        """The final normed hidden states (B, T, d_model) that the head reads, and the state.

        ``forward`` is ``head(hidden)``; a loss needed at a few positions only (MQAR's queries) can
        apply the head there and skip the (B, T, vocab) logits.
        """
        self._check_tokens(tokens, 2, "(B, T)")
        state = self._check_state(state)
        x, new_state = self._embed(tokens, state), []
        for block, s in zip(self.blocks, state):
            x, s = block(x, s)
            new_state.append(s)
        return self.norm(x), self._with_position(new_state, state, tokens.shape[1])

    def step(self, tokens: torch.Tensor, state: list | None = None) -> tuple[torch.Tensor, list]:
        """One token per sequence: tokens (B,) -> (logits (B, vocab), new state)."""
        self._check_tokens(tokens, 1, "(B,)")
        state = self._check_state(state)
        x, new_state = self._embed(tokens, state), []
        for block, s in zip(self.blocks, state):
            x, s = block.step(x, s)
            new_state.append(s)
        return self.head(self.norm(x)), self._with_position(new_state, state, 1)

    def loss(self, tokens: torch.Tensor, targets: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
        """Mean cross-entropy of next-token logits against targets (B, T); ``ignore_index`` masks positions."""
        if targets.shape != tokens.shape:
            raise ValueError(f"targets must have the tokens' shape {tuple(tokens.shape)}; got {tuple(targets.shape)}")
        hidden, _ = self.hidden(tokens)
        keep = targets != ignore_index  # the head runs only where there is a target
        return F.cross_entropy(self.head(hidden[keep]), targets[keep])

    @staticmethod
    def state_nbytes(state: list) -> int:
        """Bytes of decoding state over all layers, summed over the state tensors."""
        return state_nbytes(state)
