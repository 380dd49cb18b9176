"""Othello (Reversi) on a small square board, fast enough to generate 100k random games in a minute.

The board is 6x6 by default (``SIZE``). Square ``s = 6 * row + col`` (row 0 at the top, col 0 on the
left) and is named ``"a1"`` .. ``"f6"`` (column letter, row number). The game starts with the
four centre squares filled, as in standard Othello: white on c3 and d4, black on d3 and c4, and
black moves first.

Rules implemented:

* a move places a disc on an empty square that brackets, along at least one of the 8 directions,
  a contiguous run of opponent discs ending at one of the mover's discs; every bracketed run flips;
* a player with no legal move passes (the turn goes back to the opponent);
* the game ends when neither player can move (board full or blocked).

Positions are stored as two bitboards (Python ints, bit ``s`` set when square ``s`` holds a disc),
which makes move generation a handful of shifts instead of a loop over squares.

Tokens (``data.py``) follow Li et al. 2023, "Emergent World Representations": a game is the
sequence of squares played; passes are implicit (the next move belongs to whoever can move).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

SIZE = 6
N_SQUARES = SIZE * SIZE
FULL = (1 << N_SQUARES) - 1

BLACK = 0
WHITE = 1
PLAYER_NAMES = ("black", "white")

# (d_row, d_col) for the 8 directions.
DIRECTIONS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))

_COL_MASKS = [sum(1 << (r * SIZE + c) for r in range(SIZE)) for c in range(SIZE)]
_NOT_FIRST_COL = FULL & ~_COL_MASKS[0]
_NOT_LAST_COL = FULL & ~_COL_MASKS[SIZE - 1]


def _shift(bb: int, dr: int, dc: int) -> int:
    """Move every disc of bitboard ``bb`` one step in direction (dr, dc); discs leaving the board vanish."""
    k = dr * SIZE + dc
    bb = (bb << k) if k > 0 else (bb >> -k)
    if dc == 1:  # landed in column 0 means it wrapped from the last column
        bb &= _NOT_FIRST_COL
    elif dc == -1:
        bb &= _NOT_LAST_COL
    return bb & FULL


def square(row: int, col: int) -> int:
    return row * SIZE + col


def square_name(s: int) -> str:
    r, c = divmod(s, SIZE)
    return f"{chr(ord('a') + c)}{r + 1}"


def parse_square(name: str) -> int:
    c = ord(name[0].lower()) - ord("a")
    r = int(name[1:]) - 1
    if not (0 <= r < SIZE and 0 <= c < SIZE):
        raise ValueError(f"{name!r} is not a square of a {SIZE}x{SIZE} board")
    return square(r, c)


_C = SIZE // 2
CENTER = (square(_C - 1, _C - 1), square(_C - 1, _C), square(_C, _C - 1), square(_C, _C))
START_WHITE = (1 << square(_C - 1, _C - 1)) | (1 << square(_C, _C))
START_BLACK = (1 << square(_C - 1, _C)) | (1 << square(_C, _C - 1))

#: The squares that can ever be played (all but the 4 centre squares): 32 on 6x6.
PLAYABLE = tuple(s for s in range(N_SQUARES) if s not in CENTER)


def legal_moves_bb(me: int, opp: int) -> int:
    """Bitboard of the squares where the player owning ``me`` may play against ``opp``."""
    empty = FULL & ~(me | opp)
    moves = 0
    for dr, dc in DIRECTIONS:
        run = _shift(me, dr, dc) & opp
        for _ in range(SIZE - 3):  # a run of opponent discs is at most SIZE - 2 long
            run |= _shift(run, dr, dc) & opp
        moves |= _shift(run, dr, dc) & empty
    return moves


def flips_bb(me: int, opp: int, s: int) -> int:
    """Bitboard of the opponent discs flipped when ``me`` plays on square ``s`` (0 if illegal)."""
    m = 1 << s
    if (me | opp) & m:
        return 0
    flips = 0
    for dr, dc in DIRECTIONS:
        run = 0
        x = _shift(m, dr, dc)
        while x & opp:
            run |= x
            x = _shift(x, dr, dc)
        if x & me:
            flips |= run
    return flips


def bits(bb: int) -> list[int]:
    """The squares set in a bitboard, in increasing order."""
    out = []
    while bb:
        low = bb & -bb
        out.append(low.bit_length() - 1)
        bb ^= low
    return out


@dataclass(frozen=True)
class OthelloState:
    """An immutable position: the two bitboards and whose turn it is.

    ``to_move`` is the player who moves next, already accounting for passes: if the player whose
    turn it would be has no legal move, ``play`` hands the turn back (``passed`` records that).
    """

    black: int = START_BLACK
    white: int = START_WHITE
    to_move: int = BLACK
    passed: bool = False  # the opponent of ``to_move`` had to pass just before this position

    # -- views ---------------------------------------------------------------------------------
    def discs(self, player: int) -> int:
        return self.black if player == BLACK else self.white

    def legal_moves_bb(self) -> int:
        me, opp = self.discs(self.to_move), self.discs(1 - self.to_move)
        return legal_moves_bb(me, opp)

    def legal_moves(self) -> list[int]:
        return bits(self.legal_moves_bb())

    @property
    def is_over(self) -> bool:
        return self.legal_moves_bb() == 0

    def board(self) -> np.ndarray:
        """(SIZE, SIZE) int8 array: +1 black, -1 white, 0 empty."""
        out = np.zeros(N_SQUARES, dtype=np.int8)
        out[bits(self.black)] = 1
        out[bits(self.white)] = -1
        return out.reshape(SIZE, SIZE)

    def count(self) -> tuple[int, int]:
        return self.black.bit_count(), self.white.bit_count()

    def winner(self) -> int | None:
        """BLACK, WHITE, or None for a draw (only meaningful once ``is_over``)."""
        b, w = self.count()
        return None if b == w else (BLACK if b > w else WHITE)

    def __str__(self) -> str:
        chars = {1: "X", -1: "O", 0: "."}
        rows = ["  " + " ".join(chr(ord("a") + c) for c in range(SIZE))]
        for r, line in enumerate(self.board()):
            rows.append(f"{r + 1} " + " ".join(chars[int(v)] for v in line))
        rows.append(f"{PLAYER_NAMES[self.to_move]} to move (X = black, O = white)")
        return "\n".join(rows)

    # -- moves ---------------------------------------------------------------------------------
    def play(self, s: int | str) -> OthelloState:
        """The position after ``to_move`` plays square ``s``; raises ValueError if illegal.

        If the opponent then has no legal move but the mover does, the opponent passes and the
        mover keeps the turn (``passed=True``). If neither can move the game is over
        (``is_over``) and ``to_move`` is the opponent of the last mover.
        """
        if isinstance(s, str):
            s = parse_square(s)
        me, opp = self.discs(self.to_move), self.discs(1 - self.to_move)
        f = flips_bb(me, opp, s)
        if not f:
            raise ValueError(f"{square_name(s)} is not legal for {PLAYER_NAMES[self.to_move]}\n{self}")
        me |= f | (1 << s)
        opp &= ~f
        nxt, passed = 1 - self.to_move, False
        if legal_moves_bb(opp, me) == 0 and legal_moves_bb(me, opp) != 0:
            nxt, passed = self.to_move, True
        black, white = (me, opp) if self.to_move == BLACK else (opp, me)
        return OthelloState(black, white, nxt, passed)

    @classmethod
    def from_board(cls, board, to_move: int = BLACK) -> OthelloState:
        """Build a position from a (SIZE, SIZE) array (+1 black, -1 white, 0 empty) or strings of
        ``X``/``O``/``.`` (one per row)."""
        if isinstance(board, (list, tuple)) and board and isinstance(board[0], str):
            board = [[{"X": 1, "O": -1, ".": 0}[ch] for ch in row.replace(" ", "")] for row in board]
        arr = np.asarray(board).reshape(-1)
        assert arr.shape == (N_SQUARES,)
        black = sum(1 << int(s) for s in np.flatnonzero(arr == 1))
        white = sum(1 << int(s) for s in np.flatnonzero(arr == -1))
        return cls(black, white, to_move)


def replay(moves) -> list[OthelloState]:
    """The positions of a game: ``[start, after move 1, ..., after move n]`` (checks legality)."""
    states = [OthelloState()]
    for s in moves:
        states.append(states[-1].play(s))
    return states


def random_game(rng: random.Random) -> list[int]:
    """A game of uniformly random legal moves, played to the end; returns the squares played."""
    me, opp, player = START_BLACK, START_WHITE, BLACK
    moves: list[int] = []
    while True:
        legal = legal_moves_bb(me, opp)
        if not legal:
            me, opp, player = opp, me, 1 - player  # pass
            legal = legal_moves_bb(me, opp)
            if not legal:
                return moves
        s = rng.choice(bits(legal))
        f = flips_bb(me, opp, s)
        me |= f | (1 << s)
        opp &= ~f
        moves.append(s)
        me, opp, player = opp, me, 1 - player


def random_games(n: int, seed: int = 0) -> list[list[int]]:
    """``n`` random legal games from ``random.Random(seed)`` (same seed, same games)."""
    rng = random.Random(seed)
    return [random_game(rng) for _ in range(n)]
