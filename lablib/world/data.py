"""Games as token sequences, and per-position labels: legal moves and board state.

Tokens follow Li et al. 2023 ("Emergent World Representations", Othello-GPT): one token per
playable square (``N_MOVES = 32`` on 6x6, numbered in board order skipping the centre), passes
implicit, and ``PAD = 32`` after the end of a game. A batch of games is a (N, MAX_LEN) int64
tensor; the model reads moves ``0 .. T-1`` and at position ``t`` predicts move ``t + 1``.

Labels for position ``t`` (the position *after* move ``t``, 0-based) of each game:

* ``legal``: the legal moves of the player to move next (passes already resolved);
* ``board_bw``: each square empty / black / white (classes ``EMPTY, BLACK_SQ, WHITE_SQ``);
* ``board_mt``: each square empty / mine / theirs, relative to the player to move next
  (classes ``EMPTY, MINE, THEIRS``). The player to move comes from the engine, so a pass is
  handled correctly (Nanda et al. use move parity; passes are rare, so this barely differs).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lablib.world import othello
from lablib.world.othello import BLACK, N_SQUARES, PLAYABLE, bits, flips_bb, legal_moves_bb

N_MOVES = len(PLAYABLE)  # 32 on 6x6
PAD = N_MOVES
VOCAB_SIZE = N_MOVES + 1
MAX_LEN = N_SQUARES - 4  # longest game: every playable square filled

SQUARE_TO_TOKEN = {s: i for i, s in enumerate(PLAYABLE)}
TOKEN_TO_SQUARE = np.array(PLAYABLE + (-1,))  # PAD -> -1

# board-state classes
EMPTY, BLACK_SQ, WHITE_SQ = 0, 1, 2
MINE, THEIRS = 1, 2


def encode(moves) -> list[int]:
    return [SQUARE_TO_TOKEN[s] for s in moves]


def decode(tokens) -> list[int]:
    return [int(TOKEN_TO_SQUARE[t]) for t in tokens if t != PAD]


def games_to_tokens(games: list[list[int]], max_len: int = MAX_LEN) -> torch.Tensor:
    """(N, max_len) int64 tensor of move tokens, padded with PAD."""
    out = torch.full((len(games), max_len), PAD, dtype=torch.long)
    for i, g in enumerate(games):
        out[i, : len(g)] = torch.tensor(encode(g), dtype=torch.long)
    return out


@dataclass
class GameLabels:
    """Per-position labels of N games, padded to MAX_LEN positions (position t = after move t).

    ``valid[n, t]``: move t exists. ``has_next[n, t]``: move t + 1 exists (a prediction target).
    """

    tokens: torch.Tensor  # (N, L) int64
    lengths: torch.Tensor  # (N,) int64
    valid: torch.Tensor  # (N, L) bool
    has_next: torch.Tensor  # (N, L) bool
    legal: torch.Tensor  # (N, L, N_MOVES) bool
    to_move: torch.Tensor  # (N, L) int64 (BLACK = 0, WHITE = 1)
    board_bw: torch.Tensor  # (N, L, N_SQUARES) int64 in {EMPTY, BLACK_SQ, WHITE_SQ}
    board_mt: torch.Tensor  # (N, L, N_SQUARES) int64 in {EMPTY, MINE, THEIRS}


_BIT = 1 << np.arange(N_SQUARES, dtype=np.int64)
_PLAYABLE_IDX = np.array(PLAYABLE)


def _bb_to_array(bb: int) -> np.ndarray:
    return (np.int64(bb) & _BIT) != 0


def label_games(games: list[list[int]], max_len: int = MAX_LEN) -> GameLabels:
    """Replay each game and record legal moves, player to move and board after every move."""
    N, L = len(games), max_len
    legal = np.zeros((N, L, N_MOVES), dtype=bool)
    to_move = np.zeros((N, L), dtype=np.int64)
    black = np.zeros((N, L, N_SQUARES), dtype=bool)
    white = np.zeros((N, L, N_SQUARES), dtype=bool)
    lengths = np.array([len(g) for g in games], dtype=np.int64)
    for n, g in enumerate(games):
        me, opp, player = othello.START_BLACK, othello.START_WHITE, BLACK
        for t, s in enumerate(g):
            f = flips_bb(me, opp, s)
            if not f:
                raise ValueError(f"game {n}: move {t} ({othello.square_name(s)}) is illegal")
            me |= f | (1 << s)
            opp &= ~f
            me, opp, player = opp, me, 1 - player
            moves = legal_moves_bb(me, opp)
            if not moves and legal_moves_bb(opp, me):  # pass
                me, opp, player = opp, me, 1 - player
                moves = legal_moves_bb(me, opp)
            to_move[n, t] = player
            legal[n, t] = _bb_to_array(moves)[_PLAYABLE_IDX]
            b, w = (me, opp) if player == BLACK else (opp, me)
            black[n, t] = _bb_to_array(b)
            white[n, t] = _bb_to_array(w)
    valid = np.arange(L)[None, :] < lengths[:, None]
    has_next = np.arange(L)[None, :] < lengths[:, None] - 1
    board_bw = np.where(black, BLACK_SQ, np.where(white, WHITE_SQ, EMPTY))
    mine = np.where(to_move[..., None] == BLACK, black, white)
    theirs = np.where(to_move[..., None] == BLACK, white, black)
    board_mt = np.where(mine, MINE, np.where(theirs, THEIRS, EMPTY))
    t = torch.from_numpy
    return GameLabels(
        tokens=games_to_tokens(games, L),
        lengths=t(lengths),
        valid=t(valid),
        has_next=t(has_next),
        legal=t(legal),
        to_move=t(to_move),
        board_bw=t(board_bw).long(),
        board_mt=t(board_mt).long(),
    )


def make_games(n: int, seed: int) -> list[list[int]]:
    """``n`` random legal games (uniform over legal moves each turn), reproducible from ``seed``."""
    return othello.random_games(n, seed)


# Seeds of the standard splits; held-out games never share a seed with training games.
TRAIN_SEED_OFFSET = 0
HELDOUT_SEED = 10_000_019


def heldout_games(n: int = 1000, seed: int = HELDOUT_SEED) -> list[list[int]]:
    return make_games(n, seed)
