"""Track 3, linear representations: a world model trained here (Othello-GPT on a 6x6 board).

A small GPT trained only to predict the next legal move of random Othello games ends up
representing the board in its residual stream, and linearly so once the board is expressed as
"mine / theirs / empty" relative to the player to move rather than "black / white / empty"
(Li et al. 2023, "Emergent World Representations"; Nanda et al. 2023, "Emergent Linear
Representations in World Models of Self-Supervised Sequence Models").

Modules:

* ``othello``: the 6x6 engine (bitboards): ``OthelloState`` (``legal_moves``, ``play``,
  ``board``, ``is_over``, passes resolved), ``replay``, ``random_game`` / ``random_games(n, seed)``.
* ``data``: move tokens (32 squares + ``PAD``), ``games_to_tokens``, ``label_games`` (legal moves,
  player to move, board as black/white/empty and mine/theirs/empty after every move),
  ``make_games`` / ``heldout_games``.
* ``model``: ``GPT`` / ``GPTConfig``; ``model(tokens, return_residuals=True)`` also returns the
  residual stream after every layer.
* ``train``: ``train.train`` (the function), ``legal_move_metrics``, ``save_checkpoint`` / ``load_checkpoint``; the CLI
  ``python -m lablib.world.train``. The shipped model: ``load_checkpoint()``.
* ``activations``: ``probe_dataset`` (cached residuals + labels per position), ``linear_probe``,
  ``probe_accuracy``, ``probe_all_layers``.
"""

from lablib.world.activations import (
    ProbeData,
    cache_residuals,
    linear_probe,
    probe_accuracy,
    probe_all_layers,
    probe_dataset,
)
from lablib.world.data import (
    BLACK_SQ,
    EMPTY,
    MAX_LEN,
    MINE,
    N_MOVES,
    PAD,
    THEIRS,
    VOCAB_SIZE,
    WHITE_SQ,
    GameLabels,
    decode,
    encode,
    games_to_tokens,
    heldout_games,
    label_games,
    make_games,
)
from lablib.world.model import GPT, GPTConfig
from lablib.world.othello import BLACK, WHITE, OthelloState, random_game, random_games, replay

# From ``train``, imported lazily so that ``python -m lablib.world.train`` does not find its module
# already imported. (The function ``train`` itself: ``from lablib.world.train import train``;
# the package attribute ``lablib.world.train`` is the module.)
_TRAIN_NAMES = ("DEFAULT_CHECKPOINT", "legal_move_metrics", "load_checkpoint", "save_checkpoint")


def __getattr__(name):
    if name in _TRAIN_NAMES:
        import importlib

        return getattr(importlib.import_module("lablib.world.train"), name)
    raise AttributeError(f"module 'lablib.world' has no attribute {name!r}")
