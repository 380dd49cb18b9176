"""Chapter t1_04's shipped parity models are the ones lablib.attention.parity defines, and retraining reproduces them."""

from __future__ import annotations

import pytest
import torch

from lablib.attention import parity
from lablib.attention.parity import RUNS, SHIPPED, load_parity, parity_accuracy, train_run, training_seconds


def test_every_run_is_shipped_with_the_code_s_definition():
    stored = torch.load(SHIPPED, weights_only=True)
    assert set(stored["runs"]) == set(RUNS), f"shipped runs {sorted(stored['runs'])} differ from RUNS {sorted(RUNS)}"
    for name in RUNS:
        model = load_parity(name)  # raises if the stored definition differs from the code's
        assert all(torch.isfinite(p).all() for p in model.parameters()), f"{name}: non-finite shipped weights"
    seconds = training_seconds()
    assert set(seconds) == set(RUNS) and all(s > 0 for s in seconds.values()), f"training seconds {seconds}"


@pytest.mark.slow  # seconds each: trains a model
@pytest.mark.parametrize("name", ["written/beta2/seed0", "layer/beta2/seed1"])
def test_retraining_reproduces_the_shipped_weights(name):
    shipped, retrained = load_parity(name), train_run(name)
    for (key, a), b in zip(shipped.state_dict().items(), retrained.state_dict().values()):
        error = ((a - b).norm() / a.norm()).item()
        assert error < 1e-4, f"{name}: retrained {key} differs from the shipped one by {error:.1e} (relative)"
    beta_max = RUNS[name][1]
    lengths = (32, 256)
    assert parity_accuracy(retrained, beta_max, 0, lengths) == parity_accuracy(shipped, beta_max, 0, lengths)


def test_a_changed_definition_an_unknown_run_and_a_missing_file_are_refused(monkeypatch, tmp_path):
    monkeypatch.setitem(parity.TRAIN, "steps", 399)
    with pytest.raises(ValueError, match="rebuild it with"):
        load_parity("written/beta1/seed0")
    with pytest.raises(KeyError, match="unknown parity run"):
        load_parity("written/beta3/seed0")
    with pytest.raises(FileNotFoundError, match="rebuild it with"):
        load_parity("written/beta1/seed0", path=tmp_path / "none.pt")
