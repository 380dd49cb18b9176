"""The chapter's experiment: EASE, popularity, item-kNN (and Mult-VAE) on strong-generalization splits.

For each seed: one :func:`~lablib.recsys.split.strong_generalization_split`; every hyperparameter
(EASE's lambda, kNN's k, Mult-VAE's epoch) is chosen on the validation users by NDCG@100 and the
chosen model is scored once on the test users. Mult-VAE takes minutes for five seeds on a 2-core
CPU, so its results ship in ``results/multvae_ml100k.json``; rebuild it with

    OPENBLAS_NUM_THREADS=1 python -m lablib.recsys.experiment multvae --out lablib/recsys/results/multvae_ml100k.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from lablib.memo import session_memo
from lablib.recsys.baselines import ItemKNN, Popularity
from lablib.recsys.data import load_movielens_100k
from lablib.recsys.ease import EASE, ease_path
from lablib.recsys.metrics import evaluate
from lablib.recsys.split import UserSplit, strong_generalization_split

__all__ = ["LAMBDAS", "KNN_KS", "MULTVAE_RESULTS", "SPLIT", "linear_methods", "load_multvae_results", "make_split", "run_multvae"]

LAMBDAS = (10.0, 30.0, 100.0, 200.0, 300.0, 500.0, 1000.0, 3000.0)
KNN_KS = (20, 50, 100, 200)
SPLIT = {"n_val": 120, "n_test": 120, "fraction": 0.2}
MULTVAE_RESULTS = Path(__file__).parent / "results" / "multvae_ml100k.json"
SELECT_BY = "NDCG@100"


def make_split(X, seed: int) -> UserSplit:
    """The chapter's split of X: 120 validation and 120 test users, 20% of their items held out."""
    return strong_generalization_split(X, SPLIT["n_val"], SPLIT["n_test"], fraction=SPLIT["fraction"], seed=seed)


@session_memo
def linear_methods(split: UserSplit, lambdas=LAMBDAS, ks=KNN_KS) -> tuple[list[dict], list[dict]]:
    """EASE over ``lambdas``, item-kNN over ``ks``, popularity: (validation rows, test rows of the chosen models).

    Each validation row: method, hyperparameter, the three metrics on validation users. Each test row:
    method, chosen hyperparameter, the three metrics on test users.
    """
    val_rows, test_rows = [], []
    ease_val = []
    for lam, B in ease_path(split.train, lambdas):
        model = EASE.from_weights(B, lam)
        metrics = evaluate(model.score(split.val_in), split.val_out, split.val_in)
        ease_val.append((metrics[SELECT_BY], lam, model))
        val_rows.append({"method": "EASE", "hyper": lam, **metrics})
    _, lam, model = max(ease_val, key=lambda t: t[0])
    test_rows.append({"method": "EASE", "hyper": lam, **evaluate(model.score(split.test_in), split.test_out, split.test_in)})
    knn_val = []
    for k in ks:
        model = ItemKNN(k).fit(split.train)
        metrics = evaluate(model.score(split.val_in), split.val_out, split.val_in)
        knn_val.append((metrics[SELECT_BY], k, model))
        val_rows.append({"method": "item-kNN", "hyper": k, **metrics})
    _, k, model = max(knn_val, key=lambda t: t[0])
    test_rows.append({"method": "item-kNN", "hyper": k, **evaluate(model.score(split.test_in), split.test_out, split.test_in)})
    pop = Popularity().fit(split.train)
    test_rows.append({"method": "popularity", "hyper": None, **evaluate(pop.score(split.test_in), split.test_out, split.test_in)})
    return val_rows, test_rows


def run_multvae(seeds, config_kwargs: dict | None = None, progress: bool = True) -> dict:
    """Train and test Mult-VAE on each seed's split; a JSON-ready dict with the config and per-seed rows."""
    import torch

    from lablib.recsys.multvae import MultVAEConfig, train_multvae

    torch.set_num_threads(1)
    X = load_movielens_100k().X
    rows = []
    for seed in seeds:
        config = MultVAEConfig(**{**(config_kwargs or {}), "seed": seed})
        split = make_split(X, seed)
        start = time.perf_counter()
        model, history = train_multvae(split.train, split.val_in, split.val_out, config, progress=progress)
        best = max(history, key=lambda h: h["val NDCG@100"])
        test = evaluate(model.score(split.test_in), split.test_out, split.test_in)
        rows.append({"seed": seed, "best_epoch": best["epoch"], "val NDCG@100": best["val NDCG@100"], "test": test,
                     "test_users": split.test_users.tolist(), "train_seconds": round(time.perf_counter() - start, 1)})
        print(f"seed {seed}: best epoch {best['epoch']}, test {test}", flush=True)
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent).stdout.strip()
    except OSError:
        commit = ""
    return {"what": "Mult-VAE on MovieLens-100K (ratings >= 4, users >= 5), strong generalization",
            "rebuild": "OPENBLAS_NUM_THREADS=1 python -m lablib.recsys.experiment multvae --out lablib/recsys/results/multvae_ml100k.json",
            "split": SPLIT, "config": asdict(MultVAEConfig(**(config_kwargs or {}))), "select_by": f"validation {SELECT_BY}",
            "commit": commit, "torch": torch.__version__, "rows": rows}


def load_multvae_results(path: str | Path = MULTVAE_RESULTS) -> dict:
    """The shipped Mult-VAE results (see the module docstring for the command that rebuilds them)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; rebuild it: python -m lablib.recsys.experiment multvae --out {path}")
    return json.loads(path.read_text())


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["multvae"])
    parser.add_argument("--out", type=Path, default=MULTVAE_RESULTS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--epochs", type=int, default=None)
    args = parser.parse_args(argv)
    kwargs = {} if args.epochs is None else {"epochs": args.epochs}
    results = run_multvae(args.seeds, kwargs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
