"""The GRU that repeats a sequence: one ``torch.nn.GRU`` reads the input, then writes it out again.

Input phase: the GRU reads ``x_1 .. x_L`` (embedded) starting from a zero state; its state after
the last input token is ``h`` of shape ``(B, hidden)``, the only thing the output phase sees and
the state every probe and intervention in :mod:`lablib.onion.analysis` looks at.

Output phase (autoregressive, same GRU weights): from ``h`` the model is fed ``SOS`` and must
emit ``x_1``; then it is fed its previous output and must emit the next token, and finally
``EOS``. Training uses teacher forcing (the true previous token is fed); :func:`generate` feeds
back the model's own greedy choices.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from lablib.onion.task import DEFAULT_MAX_LEN, DEFAULT_VOCAB, check_tokens, decoder_targets, sos_id

__all__ = ["RepeatConfig", "RepeatGRU", "check_hidden", "repeat_accuracy"]


@dataclass(frozen=True)
class RepeatConfig:
    """Sizes of a :class:`RepeatGRU`: ``vocab`` content tokens, sequences up to ``max_len``,
    token embeddings of width ``emb``, GRU state of width ``hidden``."""

    vocab: int = DEFAULT_VOCAB
    max_len: int = DEFAULT_MAX_LEN
    emb: int = 32
    hidden: int = 64

    def __post_init__(self):
        for name in ("vocab", "max_len", "emb", "hidden"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"RepeatConfig.{name} must be a positive int; got {v!r}")

    def to_dict(self) -> dict:
        return asdict(self)


def check_hidden(h, hidden: int, name: str = "h") -> torch.Tensor:
    """Check that ``h`` is a finite float tensor of shape ``(B, hidden)``."""
    if not isinstance(h, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (B, {hidden}); got {type(h).__name__}")
    if h.ndim != 2 or h.shape[1] != hidden:
        raise ValueError(f"{name} must have shape (B, {hidden}); got shape {tuple(h.shape)}")
    if not h.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor; got dtype {h.dtype}")
    if not torch.isfinite(h).all():
        raise ValueError(f"{name} contains NaN or Inf values")
    return h


class RepeatGRU(nn.Module):
    """Embedding -> single-layer GRU -> linear read-out over ``vocab + 2`` ids (content, SOS, EOS).

    Methods (all take ``tokens`` ``(B, T)`` int64 and optional ``lengths`` ``(B,)``):

    * :meth:`encode` -> ``h`` ``(B, hidden)``: the state after the input phase.
    * :meth:`decode_logits` ``(h, dec_in)`` -> logits ``(B, S, vocab + 2)`` (teacher forcing).
    * :meth:`loss` -> mean cross-entropy over the output phase (sequence + EOS).
    * :meth:`generate` ``(h, steps)`` -> greedy output ids ``(B, steps)``.
    * :meth:`repeat` -> greedy output ids ``(B, T + 1)`` for the whole task.
    """

    def __init__(self, cfg: RepeatConfig | None = None):
        super().__init__()
        self.cfg = cfg or RepeatConfig()
        V = self.cfg.vocab
        self.embed = nn.Embedding(V + 3, self.cfg.emb)  # content, SOS, EOS, PAD
        self.gru = nn.GRU(self.cfg.emb, self.cfg.hidden, batch_first=True)
        self.head = nn.Linear(self.cfg.hidden, V + 2)  # content tokens, (SOS never a target), EOS

    # -- input phase -------------------------------------------------------------------------
    def encode(self, tokens: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """State after reading each sequence: ``(B, hidden)`` (the GRU's state after token ``L``)."""
        tokens, lengths = check_tokens(tokens, lengths, vocab=self.cfg.vocab)
        if tokens.shape[1] > self.cfg.max_len:
            raise ValueError(f"tokens has {tokens.shape[1]} positions; this model was trained up to max_len={self.cfg.max_len}")
        x = self.embed(tokens.clamp(0, self.cfg.vocab + 2))
        if bool((lengths == tokens.shape[1]).all()):
            _, h = self.gru(x)
        else:
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            _, h = self.gru(packed)
        return h[0]

    # -- output phase ------------------------------------------------------------------------
    def decode_logits(self, h: torch.Tensor, dec_in: torch.Tensor) -> torch.Tensor:
        """Teacher-forced output phase from state ``h`` ``(B, hidden)`` with inputs ``dec_in``
        ``(B, S)`` (``SOS`` first). Returns logits ``(B, S, vocab + 2)``."""
        check_hidden(h, self.cfg.hidden)
        if not isinstance(dec_in, torch.Tensor) or dec_in.ndim != 2 or dec_in.shape[0] != h.shape[0]:
            raise ValueError(f"dec_in must be an int tensor of shape ({h.shape[0]}, S)")
        out, _ = self.gru(self.embed(dec_in), h[None].contiguous())
        return self.head(out)

    def loss(self, tokens: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Mean cross-entropy of the output phase (every target token of the sequence and its EOS)."""
        tokens, lengths = check_tokens(tokens, lengths, vocab=self.cfg.vocab)
        h = self.encode(tokens, lengths)
        dec_in, target, mask = decoder_targets(tokens, lengths, self.cfg.vocab)
        logits = self.decode_logits(h, dec_in)
        return F.cross_entropy(logits[mask], target[mask])

    @torch.no_grad()
    def generate(self, h: torch.Tensor, steps: int) -> torch.Tensor:
        """Greedy output phase from state ``h`` ``(B, hidden)``: feed SOS, then each argmax back.

        Returns ``int64`` ids ``(B, steps)`` (content tokens ``0..vocab-1`` or ``EOS = vocab + 1``).
        """
        check_hidden(h, self.cfg.hidden)
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be a positive int; got {steps!r}")
        state = h[None].contiguous()
        inp = torch.full((h.shape[0], 1), sos_id(self.cfg.vocab), dtype=torch.long, device=h.device)
        outs = []
        for _ in range(steps):
            o, state = self.gru(self.embed(inp), state)
            nxt = self.head(o[:, -1]).argmax(-1)
            outs.append(nxt)
            inp = nxt[:, None]
        return torch.stack(outs, 1)

    @torch.no_grad()
    def repeat(self, tokens: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Run the whole task greedily: ids ``(B, T + 1)`` (ideally ``x_1..x_L, EOS, ...``)."""
        tokens, lengths = check_tokens(tokens, lengths, vocab=self.cfg.vocab)
        return self.generate(self.encode(tokens, lengths), tokens.shape[1] + 1)


@torch.no_grad()
def repeat_accuracy(model: RepeatGRU, tokens: torch.Tensor, lengths: torch.Tensor | None = None) -> dict:
    """Greedy repeat accuracy: ``sequence`` (every token and the EOS right) and ``token``
    (fraction of the ``L + 1`` target slots right), both floats in [0, 1]."""
    tokens, lengths = check_tokens(tokens, lengths, vocab=model.cfg.vocab)
    out = model.repeat(tokens, lengths)
    _, target, mask = decoder_targets(tokens, lengths, model.cfg.vocab)
    right = (out == target) | ~mask
    return {
        "sequence": right.all(1).float().mean().item(),
        "token": ((out == target) & mask).sum().item() / mask.sum().item(),
    }

