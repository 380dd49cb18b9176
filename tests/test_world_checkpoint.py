"""The shipped Othello-GPT checkpoint (lablib/world/checkpoints/othello_gpt.pt): it loads, it
plays legal moves on held-out games, and its residual stream encodes the board linearly, far
better as mine/theirs than as black/white. Bars are set from measurements with margin (the
measured values are in the docstrings and in the checkpoint's JSON)."""

import pytest

from lablib.world import (
    DEFAULT_CHECKPOINT,
    MAX_LEN,
    N_MOVES,
    heldout_games,
    label_games,
    legal_move_metrics,
    linear_probe,
    load_checkpoint,
    probe_accuracy,
    probe_dataset,
)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def shipped():
    return load_checkpoint()


def test_checkpoint_files_are_small_and_documented(shipped):
    model, info = shipped
    assert DEFAULT_CHECKPOINT.stat().st_size < 5_000_000
    assert info["command"].startswith("python -m lablib.world.train")
    assert info["n_params"] == model.n_params()
    assert info["seed"] == 0 and info["wall_seconds"] > 0
    assert info["heldout_metrics"]["top1_legal"] > 0.97


def test_shipped_model_plays_legal_moves(shipped):
    """Recomputed from the checkpoint (not read from its JSON) on the 1,000 held-out games (30,960
    positions). Measured: top-1 legal 0.976, top-k exact 0.731 (Li et al.'s criterion: the k most
    likely moves are the k legal ones), legal mass 0.888. The retraining issue's targets (0.99 and
    0.9) are not reached: the learning curve in the JSON was still rising at its last step."""
    model, info = shipped
    m = legal_move_metrics(model, label_games(heldout_games(1000)))
    assert m["positions"] == 30960
    assert m["top1_legal"] > 0.97, f"top-1 legal {m['top1_legal']:.4f}, measured 0.976 when shipped"
    assert m["topk_exact"] > 0.72, f"exact legal set {m['topk_exact']:.4f}, measured 0.731 when shipped"
    assert abs(m["top1_legal"] - info["heldout_metrics"]["top1_legal"]) < 1e-6, "the JSON's metrics are not this checkpoint's"


def test_shipped_model_probes_mine_theirs_better_than_black_white(shipped):
    """A linear probe (150 full-batch Adam steps) on the residual stream after block 3, trained on
    225 held-out games and tested on 75 others, scored on occupied squares. Bars with margin under
    the values measured on the shipped checkpoint: mine/theirs 0.826, black/white 0.566 (chance for
    two classes 0.5). About 10 s."""
    model, _ = shipped
    data = probe_dataset(model, heldout_games(300))
    assert data.acts.shape[0] == model.cfg.n_layer + 1 and data.acts.shape[2] == model.cfg.d_model
    assert data.legal.shape[1] == N_MOVES and data.position.max() < MAX_LEN
    train, test = data.split(0.75)
    acc = {}
    for enc in ("bw", "mt"):
        probe = linear_probe(train.acts[3], train.labels(enc), steps=150)
        acc[enc] = probe_accuracy(probe, test.acts[3], test.labels(enc), nonempty_only=True)
    assert acc["mt"] > 0.78, acc
    assert acc["bw"] < acc["mt"] - 0.2, acc
