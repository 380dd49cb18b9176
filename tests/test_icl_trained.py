"""The trained transformers shipped for track 4 are the ones the code defines, and retraining reproduces them."""

from __future__ import annotations

import pytest
import torch

from lablib.icl import evaluate
from lablib.icl.trained import RUNS, TRAINED, build_task, load_trained, train_run


def test_every_run_is_shipped_with_the_code_s_definition():
    stored = torch.load(TRAINED, weights_only=True)
    assert set(stored["runs"]) == set(RUNS), f"shipped runs {sorted(stored['runs'])} differ from RUNS {sorted(RUNS)}"
    for name in RUNS:
        model, history = load_trained(name)  # raises if the stored definition differs from RUNS[name]
        assert history.shape == (RUNS[name]["train"]["steps"],)
        assert torch.isfinite(history).all()


def test_retraining_reproduces_the_shipped_weights():
    name = "t4_02/restricted_1"  # the cheapest run: seconds
    shipped, shipped_history = load_trained(name)
    retrained, history = train_run(name)
    for (key, a), b in zip(shipped.state_dict().items(), retrained.state_dict().values()):
        error = ((a - b).norm() / a.norm()).item()
        assert error < 1e-3, f"{name}: retrained {key} differs from the shipped one by {error:.1e} (relative)"
    prompts = build_task(name).sample(2000, torch.Generator().manual_seed(5), dtype=torch.float64)
    ratio = evaluate(retrained, prompts) / evaluate(shipped, prompts)
    assert abs(ratio - 1) < 0.01, f"{name}: retrained loss / shipped loss = {ratio:.4f}, expected within 1%"


def test_a_changed_definition_is_refused(monkeypatch):
    changed = {**RUNS["t4_02/linear_1"], "train": dict(steps=999, lr=0.01)}
    monkeypatch.setitem(RUNS, "t4_02/linear_1", changed)
    with pytest.raises(ValueError, match="rebuild it with"):
        load_trained("t4_02/linear_1")
    with pytest.raises(KeyError, match="unknown run"):
        load_trained("t4_02/nope")
