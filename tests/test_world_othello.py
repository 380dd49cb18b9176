"""lablib.world.othello: the 6x6 Othello engine (bitboards) against known positions, hand-built
flips in all 8 directions, passes, game ends, and a naive array-based reference engine."""

import collections
import random

import numpy as np
import pytest

from lablib.world.othello import (
    BLACK,
    DIRECTIONS,
    N_SQUARES,
    PLAYABLE,
    SIZE,
    WHITE,
    OthelloState,
    parse_square,
    random_game,
    random_games,
    replay,
    square,
    square_name,
)


# -- a deliberately naive reference engine on a (SIZE, SIZE) array: +1 black, -1 white ---------
def ref_flips(board, player, r, c):
    """Squares flipped when ``player`` (+1/-1) plays (r, c), by walking each direction."""
    if board[r, c] != 0:
        return []
    flips = []
    for dr, dc in DIRECTIONS:
        run, rr, cc = [], r + dr, c + dc
        while 0 <= rr < SIZE and 0 <= cc < SIZE and board[rr, cc] == -player:
            run.append((rr, cc))
            rr, cc = rr + dr, cc + dc
        if run and 0 <= rr < SIZE and 0 <= cc < SIZE and board[rr, cc] == player:
            flips += run
    return flips


def ref_legal(board, player):
    return sorted(square(r, c) for r in range(SIZE) for c in range(SIZE) if ref_flips(board, player, r, c))


def sign(player):
    return 1 if player == BLACK else -1


def test_start_position():
    s = OthelloState()
    assert s.to_move == BLACK and not s.is_over and s.count() == (2, 2)
    assert str(s).splitlines()[3:5] == ["3 . . O X . .", "4 . . X O . ."]
    assert sorted(square_name(m) for m in s.legal_moves()) == ["b3", "c2", "d5", "e4"]
    assert len(PLAYABLE) == 32 and N_SQUARES == 36


def test_square_names_roundtrip():
    assert square_name(0) == "a1" and square_name(35) == "f6" and square_name(square(2, 3)) == "d3"
    assert all(parse_square(square_name(s)) == s for s in range(N_SQUARES))
    with pytest.raises(ValueError):
        parse_square("g1")


def test_first_move_flips_and_turn():
    s = OthelloState().play("c2")  # flips c3
    assert s.to_move == WHITE and s.count() == (4, 1)
    assert s.board()[1, 2] == 1 and s.board()[2, 2] == 1
    assert sorted(square_name(m) for m in s.legal_moves()) == ["b2", "b4", "d2"]


def test_illegal_moves_raise():
    s = OthelloState()
    for name in ("a1", "c3", "b2", "f6"):
        with pytest.raises(ValueError):
            s.play(name)


# A ring of white discs at distance 1 and black discs at distance 2 around c3 (row 2, col 2):
RING = [
    "X.X.X.",
    ".OOO..",
    "XO.OX.",
    ".OOO..",
    "X.X.X.",
    "......",
]


def test_flips_in_all_eight_directions_at_once():
    s = OthelloState.from_board(RING, BLACK)
    assert parse_square("c3") in s.legal_moves()
    after = s.play("c3")
    assert after.count() == (8 + 8 + 1, 0)
    assert (after.board() >= 0).all()


@pytest.mark.parametrize("d", DIRECTIONS)
@pytest.mark.parametrize("run_length", [1, 2, 3])
def test_flips_one_direction(d, run_length):
    """Black plays at an end of a straight line; exactly the run of white in that line flips."""
    dr, dc = d
    # start so that the whole line (move, run, anchor) fits on the board
    r0 = 0 if dr >= 0 else SIZE - 1
    c0 = 0 if dc >= 0 else SIZE - 1
    board = np.zeros((SIZE, SIZE), dtype=int)
    run = [(r0 + k * dr, c0 + k * dc) for k in range(1, run_length + 1)]
    for rc in run:
        board[rc] = -1
    anchor = (r0 + (run_length + 1) * dr, c0 + (run_length + 1) * dc)
    board[anchor] = 1
    s = OthelloState.from_board(board, BLACK)
    assert s.legal_moves() == [square(r0, c0)]
    after = s.play(square(r0, c0))
    expected = board.copy()
    expected[r0, c0] = 1
    for rc in run:
        expected[rc] = 1
    np.testing.assert_array_equal(after.board(), expected)


@pytest.mark.parametrize("d", DIRECTIONS)
def test_unbracketed_runs_do_not_flip(d):
    """A white run ending at the edge or at an empty square is not a capture."""
    dr, dc = d
    r0 = 0 if dr >= 0 else SIZE - 1
    c0 = 0 if dc >= 0 else SIZE - 1
    board = np.zeros((SIZE, SIZE), dtype=int)
    board[r0 + dr, c0 + dc] = -1
    board[r0 + 2 * dr, c0 + 2 * dc] = -1  # then an empty square, then black beyond it
    board[r0 + 4 * dr, c0 + 4 * dc] = 1
    s = OthelloState.from_board(board, BLACK)
    assert square(r0, c0) not in s.legal_moves()


def test_no_wraparound_between_rows():
    # f1 black, a2 white, b2 empty: in bit order a2 sits right after f1, but they are not neighbours
    s = OthelloState.from_board([".....X", "O.....", "......", "......", "......", "......"], BLACK)
    assert s.legal_moves() == []
    s = OthelloState.from_board(["X.....", ".....O", "......", "......", "......", "......"], BLACK)
    assert s.legal_moves() == []  # e2 would 'capture' f2 towards a3 if columns wrapped
    s = OthelloState.from_board(["......", "X....O", "......", "......", "......", "......"], BLACK)
    assert s.legal_moves() == []


def test_pass_and_game_end():
    board = [
        "XO....",
        "......",
        "......",
        "......",
        "......",
        "XOO...",
    ]
    s = OthelloState.from_board(board, BLACK)
    assert sorted(square_name(m) for m in s.legal_moves()) == ["c1", "d6"]
    s = s.play("c1")
    # white still has b6, c6 but cannot bracket anything: white passes, black moves again
    assert s.to_move == BLACK and s.passed and not s.is_over
    assert s.legal_moves() == [parse_square("d6")]
    s = s.play("d6")
    assert s.is_over and s.count() == (7, 0) and s.winner() == BLACK


def test_game_over_when_board_full():
    game = random_game(random.Random(3))
    final = replay(game)[-1]
    assert final.is_over
    assert sum(final.count()) == 4 + len(game)


def test_bitboard_engine_matches_reference_on_random_games():
    rng = random.Random(1)
    n_checked = 0
    for _ in range(60):
        game = random_game(rng)
        states = replay(game)
        for st, move in zip(states, game + [None]):
            board = st.board()
            player = sign(st.to_move)
            legal = ref_legal(board, player)
            assert st.legal_moves() == legal
            if not legal:  # only at the end: neither player can move
                assert move is None and ref_legal(board, -player) == []
                continue
            # every legal move flips exactly the reference's squares
            for m in legal:
                r, c = divmod(m, SIZE)
                expected = board.copy()
                expected[r, c] = player
                for rc in ref_flips(board, player, r, c):
                    expected[rc] = player
                after = st.play(m)
                np.testing.assert_array_equal(after.board(), expected)
                n_checked += 1
    assert n_checked > 5000


def test_passes_follow_the_rules_in_random_games():
    """Across many games: whose turn it is always matches 'opponent unless they cannot move'."""
    n_passes = 0
    for game in random_games(400, seed=5):
        states = replay(game)
        for prev, st in zip(states, states[1:]):
            mover = prev.to_move
            opp_can = bool(ref_legal(st.board(), -sign(mover)))
            if opp_can:
                assert st.to_move == 1 - mover and not st.passed
            elif ref_legal(st.board(), sign(mover)):  # opponent passes
                assert st.to_move == mover and st.passed
                n_passes += 1
            else:  # nobody can move: game over, turn nominally with the opponent
                assert st.is_over and st.to_move == 1 - mover and not st.passed
                assert st is states[-1]
    assert n_passes > 0  # passes do happen in random 6x6 games


def test_random_games_lengths_and_reproducibility():
    games = random_games(500, seed=0)
    assert games == random_games(500, seed=0)
    assert games != random_games(500, seed=1)
    lengths = collections.Counter(len(g) for g in games)
    assert max(lengths) <= 32 and min(lengths) >= 9  # random games rarely end early
    assert lengths[32] / len(games) > 0.9  # most random games fill the board
    for g in games[:50]:
        assert len(set(g)) == len(g) and set(g) <= set(PLAYABLE)
        assert replay(g)[-1].is_over
