"""MQAR as Zoology defines it, and the harness that trains lablib.layers models on it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lablib.layers import LMConfig
from lablib.recall import IGNORE, MQARTask, decoding_state_bytes, mqar, recall_accuracy, sweep_lr, train_recall
from lablib.recall.experiment import MODELS, RESULTS, lm_config

V, L, D = 128, 32, 6


@pytest.fixture(scope="module")
def data():
    return mqar(500, vocab=V, seq_len=L, n_pairs=D, seed=3)


def test_shapes_and_seeding(data):
    assert data.inputs.shape == data.labels.shape == (500, L) and data.inputs.dtype == torch.int64
    again = mqar(500, vocab=V, seq_len=L, n_pairs=D, seed=3)
    assert torch.equal(again.inputs, data.inputs) and torch.equal(again.labels, data.labels)
    other = mqar(500, vocab=V, seq_len=L, n_pairs=D, seed=4)
    assert not torch.equal(other.inputs, data.inputs)


def test_keys_and_values_come_from_disjoint_halves(data):
    keys, values = data.inputs[:, 0:2 * D:2], data.inputs[:, 1:2 * D:2]
    assert keys.min() >= 1 and keys.max() < V // 2, "keys must come from [1, V/2)"
    assert values.min() >= V // 2 and values.max() < V, "values must come from [V/2, V)"
    for row in keys:
        assert len(set(row.tolist())) == D, "keys within a sequence are distinct"


def test_each_key_is_queried_once_and_labelled_with_its_value(data):
    for inp, lab in zip(data.inputs, data.labels):
        pairs = dict(zip(inp[0:2 * D:2].tolist(), inp[1:2 * D:2].tolist()))
        where = (lab != IGNORE).nonzero().flatten()
        assert len(where) == D, "exactly one labelled position per key"
        assert (where >= 2 * D).all() and (where % 2 == 0).all(), "queries sit at even slots of the query region"
        queried = inp[where].tolist()
        assert sorted(queried) == sorted(pairs), "every key is queried once"
        assert lab[where].tolist() == [pairs[k] for k in queried], "the label at a query is its key's value"


def test_no_labels_outside_queries_and_noise_only_with_random_non_queries():
    quiet = mqar(200, vocab=V, seq_len=L, n_pairs=D, random_non_queries=False, seed=1)
    mask = quiet.labels != IGNORE
    assert (quiet.labels[:, :2 * D] == IGNORE).all(), "no labels in the context"
    assert (quiet.inputs[:, 2 * D:][~mask[:, 2 * D:]] == 0).all(), "non-query positions are 0 without noise"


def test_gaps_follow_a_power_law_favouring_short_gaps():
    big = mqar(4000, vocab=V, seq_len=64, n_pairs=4, seed=0)
    slot = ((big.labels != IGNORE).nonzero()[:, 1] - 8) // 2  # (n_queries,) slot index 0 .. 27
    counts = np.bincount(slot.numpy(), minlength=28)
    assert counts[0] > counts[5] > counts[27], f"expected fewer queries at longer gaps; counts {counts.tolist()}"


@pytest.mark.parametrize("kwargs, match", [
    (dict(seq_len=31), "even"), (dict(seq_len=16, n_pairs=5), "4 \\* n_pairs"),
    (dict(vocab=20, seq_len=32), "vocab"), (dict(power_a=0.0), "power_a"),
])
def test_bad_arguments_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        mqar(10, **{**dict(vocab=V, seq_len=L, n_pairs=4), **kwargs})


def test_recall_accuracy_counts_only_queries():
    labels = torch.tensor([[IGNORE, 5, IGNORE, 7]])
    logits = torch.zeros(1, 4, 8)
    logits[0, 1, 5] = logits[0, 3, 2] = 1.0  # right at position 1, wrong at 3; the rest is ignored
    assert recall_accuracy(logits, labels) == 0.5
    with pytest.raises(ValueError, match="no query"):
        recall_accuracy(logits, torch.full((1, 4), IGNORE))


def test_training_beats_chance_tenfold_and_the_sweep_stops_at_target():
    """Within 150 steps softmax attention learns which tokens are values (loss ~ ln 2 between the two
    in context, accuracy ~0.5 against chance 1/32); the sweep stops at the first lr reaching the target.
    (Learning *which* value goes with the key takes a few hundred steps more: the shipped results.)"""
    task = MQARTask(vocab=64, seq_len=16, n_pairs=2, n_train=4000, n_test=200)
    cfg = LMConfig(vocab=64, mixer="softmax", d_model=32, n_heads=1, mlp=False, max_len=16)
    best, runs = sweep_lr(cfg, task, [1e-2, 3e-3], max_steps=150, eval_every=50, target=0.3, progress=False)
    chance = 1 / 32
    assert best.best_accuracy >= 10 * chance, f"expected accuracy >= {10 * chance:.2f}; history {best.history}"
    assert len(runs) == 1 and best.steps < 150, "the sweep stops at the first learning rate that reaches the target"
    assert best.history[-1][2] < np.log(64) - 1, f"the loss should fall well below ln(vocab) = 4.16; history {best.history}"


def test_decoding_state_bytes_are_measured():
    kv = decoding_state_bytes(__import__("lablib.layers", fromlist=["LanguageModel"]).LanguageModel(
        lm_config("softmax", 16)), 64)
    assert kv == 2 * 2 * 64 * 16 * 4, "softmax: keys and values of 64 tokens, 2 layers, fp32"
    delta = decoding_state_bytes(__import__("lablib.layers", fromlist=["LanguageModel"]).LanguageModel(
        lm_config("deltanet", 16)), 64)
    assert delta == 2 * 16 * 16 * 4, "DeltaNet without conv: one 16 x 16 state per layer"


def test_shipped_results_cover_every_model_with_its_record():
    results = json.loads(RESULTS.read_text())
    assert {"rebuild", "task", "train", "lrs", "commit"} <= set(results)
    for row in results["rows"]:
        assert row["model"] in MODELS
        assert 0 <= row["accuracy"] <= 1 and row["state_bytes"] > 0
        assert row["accuracy"] == max(r["best_accuracy"] for r in row["runs"])


def test_bad_training_arguments_are_refused():
    cfg = LMConfig(vocab=64, mixer="linear", d_model=16, n_heads=1, mlp=False)
    with pytest.raises(ValueError, match="vocab"):
        train_recall(cfg, MQARTask(vocab=128, seq_len=16, n_pairs=2, n_train=10, n_test=10), lr=1e-3)
    with pytest.raises(ValueError, match="positive"):
        train_recall(cfg, MQARTask(vocab=64, seq_len=16, n_pairs=2, n_train=10, n_test=10), lr=0.0)
