"""The transformers that chapters t4_01 and t4_02 train, shipped trained so the chapters run in seconds.

Training them all takes minutes on a 2-core CPU (about half of track 4's execution time), so the
weights and loss histories are stored in ``results/trained_lsa.pt`` (a few hundred KB) and the
chapters load them with :func:`load_trained`. Rebuild the file with

    OPENBLAS_NUM_THREADS=1 python -m lablib.icl.trained --out lablib/icl/results/trained_lsa.pt

Every run is defined once in ``RUNS`` (model, task, training arguments); the file records each
run's definition next to its weights, and ``load_trained`` refuses a file whose definition differs
from the code's, so a shipped model is always the one the chapter describes. ``retrain=True`` (or
``load_trained(..., retrain=True)``) trains from scratch instead, with the same seeds:
``tests/test_icl_trained.py`` retrains a run and checks it reproduces the shipped weights.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from lablib.icl.lsa import LinearTransformer, SoftmaxTransformer
from lablib.icl.tasks import RegressionTask, random_covariance
from lablib.icl.train import train_lsa
from lablib.provenance import read_run, save_runs

__all__ = ["RUNS", "TRAINED", "REBUILD", "build_model", "build_task", "train_run", "load_trained", "train_all"]

TRAINED = Path(__file__).parent / "results" / "trained_lsa.pt"
REBUILD = "OPENBLAS_NUM_THREADS=1 python -m lablib.icl.trained --out lablib/icl/results/trained_lsa.pt"

# name -> definition. model: (kind, d, n_layers, restricted); task: RegressionTask's arguments, with
# "condition" (and seed 0) standing for random_covariance(d, condition); train: train_lsa's arguments.
RUNS: dict[str, dict] = {
    "t4_01/one_layer": dict(model=("linear", 10, 1, False), task=dict(d=10, N=40), train=dict(steps=1000, lr=0.01)),
    "t4_01/skewed": dict(model=("linear", 10, 1, False), task=dict(d=10, N=40, condition=5.0),
                         train=dict(steps=2000, lr=0.02)),
    **{f"t4_02/restricted_{k}": dict(model=("linear", 5, k, True), task=dict(d=5, N=20), train=dict(steps=1500, lr=0.01))
       for k in (1, 2, 3)},
    **{f"t4_02/full_{k}": dict(model=("linear", 5, k, False), task=dict(d=5, N=20), train=dict(steps=1500, lr=0.01))
       for k in (1, 2, 3)},
    "t4_02/softmax_1": dict(model=("softmax", 5, 1, False), task=dict(d=5, N=20), train=dict(steps=1000, lr=0.01)),
    "t4_02/linear_1": dict(model=("linear", 5, 1, False), task=dict(d=5, N=20), train=dict(steps=1000, lr=0.01)),
}
COMMON_TRAIN = dict(batch=256, seed=0)
INIT = dict(init_std=0.1, seed=0)


def build_model(name: str):
    """The untrained model of run ``name`` (its seeded initialization)."""
    kind, d, n_layers, restricted = _run(name)["model"]
    cls = {"linear": LinearTransformer, "softmax": SoftmaxTransformer}[kind]
    return cls(d, n_layers, restricted=restricted, **INIT)


def build_task(name: str) -> RegressionTask:
    """The prompt distribution run ``name`` trains on."""
    task = dict(_run(name)["task"])
    condition = task.pop("condition", None)
    if condition is not None:
        task["covariance"] = random_covariance(task["d"], condition=condition, seed=0)
    return RegressionTask(**task)


def train_run(name: str, progress: bool = False):
    """Train run ``name`` from scratch: (model, loss history (steps,))."""
    model = build_model(name)
    history = train_lsa(model, build_task(name), **_run(name)["train"], **COMMON_TRAIN, progress=progress)
    return model, history


def load_trained(name: str, path: str | Path = TRAINED, retrain: bool = False):
    """(trained model, loss history) of run ``name``: loaded from the shipped file, or retrained."""
    _run(name)  # an unknown name fails here, before the file is read
    if retrain:
        return train_run(name)
    entry = read_run(path, name, _definition(name), REBUILD)
    model = build_model(name)
    model.load_state_dict(entry["state_dict"])
    return model, entry["history"]


def train_all(out: str | Path = TRAINED, names=None, progress: bool = True) -> Path:
    """Train every run (or ``names``) and write them, with their definitions and the commit, to ``out``."""
    runs = {}
    for name in names or RUNS:
        model, history = train_run(name, progress=progress)
        runs[name] = {"definition": _definition(name), "state_dict": model.state_dict(), "history": history}
    return save_runs(out, runs, __file__, REBUILD)


def _run(name: str) -> dict:
    if name not in RUNS:
        raise KeyError(f"unknown run {name!r}; choose one of {sorted(RUNS)}")
    return RUNS[name]


def _definition(name: str) -> str:
    run = _run(name)
    return repr({"model": run["model"], "task": run["task"], "train": {**run["train"], **COMMON_TRAIN}, "init": INIT})


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="train track 4's transformers and ship them")
    parser.add_argument("--out", type=Path, default=TRAINED)
    parser.add_argument("--runs", nargs="*", default=None, choices=list(RUNS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"wrote {train_all(args.out, args.runs)}")
