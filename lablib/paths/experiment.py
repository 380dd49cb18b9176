"""The chapter's three sweeps, too slow for the chapter itself (minutes on one shared CPU thread).

* ``rebasin``:   pairs of independently trained MLPs (3 hidden layers) at widths 16..512; the loss and
  error along the straight line between them, before and after weight matching;
* ``spawn``:     the spawn test: two copies of one network trained from a shared checkpoint after k
  steps with different data orders, barrier against k, for Adam and for SGD with momentum;
* ``linearize``: an NTK-parameterized one-hidden-layer MLP and its linearization trained side by side
  by full-batch gradient descent, widths 32..4096.

Each writes one JSON file with its config, seeds, the git commit, torch's version and the command::

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python -m lablib.paths.experiment rebasin --out lablib/paths/results/rebasin_width.json
    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python -m lablib.paths.experiment spawn --out lablib/paths/results/spawn.json
    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python -m lablib.paths.experiment linearize --out lablib/paths/results/linearize_width.json

Seeds: for experiment seed s, network A starts from ``init(2s)`` and sees data order ``2s``, network B
from ``init(2s + 1)`` with order ``2s + 1``; a spawn trunk is A's run, its two children continue with
data orders ``100 + 2s`` and ``101 + 2s``.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from lablib.paths.data import N_TEST, SPLIT_SEED, Digits, load_digits_split
from lablib.paths.interpolate import ALPHAS, barrier, path_metrics
from lablib.paths.linearize import targets, train_side_by_side
from lablib.paths.mlp import MLP, Params, evaluate
from lablib.paths.rebasin import permute, weight_matching
from lablib.paths.train import TrainConfig, start, train, train_steps
from lablib.provenance import git_commit, read_results

__all__ = ["ADAM", "LINEARIZE", "REBASIN", "RESULTS", "SGD", "SPAWN", "independent_pair", "load_results", "mlp",
           "pair_paths", "run_linearize", "run_rebasin", "run_spawn", "spawn_pairs"]

RESULTS = Path(__file__).parent / "results"
DEPTH = 3  # hidden layers, as the Git Re-Basin MNIST MLP (3 x 512)
ADAM = TrainConfig(optimizer="adam", lr=1e-3, batch_size=64, epochs=20)  # 400 steps
SGD = TrainConfig(optimizer="sgd", lr=0.02, momentum=0.9, batch_size=32, epochs=15)  # 600 steps
REBASIN = {"widths": (16, 32, 64, 128, 256, 512), "depth": DEPTH, "seeds": (0, 1, 2), "train": ADAM}
SPAWN = {"width": 64, "depth": DEPTH, "ks": (0, 2, 5, 10, 20, 50, 100, 200), "seeds": (0, 1, 2),
         "train": {"adam": ADAM, "sgd": SGD}}
LINEARIZE = {"widths": (32, 64, 128, 256, 512, 1024, 2048, 4096), "depth": 1, "sigma_w": 1.0, "sigma_b": 0.1,
             "lr": 4.0, "steps": 250, "record": (10, 30, 100), "seeds": (0, 1, 2)}
FILES = {"rebasin": "rebasin_width.json", "spawn": "spawn.json", "linearize": "linearize_width.json"}


def mlp(width: int, depth: int = DEPTH, **kwargs) -> MLP:
    """The digits MLP: 64 pixels -> ``depth`` hidden ReLU layers of ``width`` -> 10 logits."""
    return MLP((64,) + (int(width),) * depth + (10,), **kwargs)


def independent_pair(net: MLP, data: Digits, config: TrainConfig, seed: int) -> tuple[Params, Params]:
    """Networks A and B of experiment seed ``seed``: different inits and data orders (see the module docstring)."""
    a = train(net, 2 * seed, 2 * seed, data.X_train, data.y_train, config)
    b = train(net, 2 * seed + 1, 2 * seed + 1, data.X_train, data.y_train, config)
    return a, b


def spawn_pairs(net: MLP, data: Digits, config: TrainConfig, seed: int, ks) -> dict[int, tuple[Params, Params]]:
    """For each spawn step k: two children of A's run (A's init and first k steps), trained to the end apart.

    Child j continues from step k with data order ``100 + 2 seed + j``; k = 0 gives two networks that share
    only their initialization.
    """
    ks = sorted(int(k) for k in ks)
    total = config.total_steps(data.X_train.shape[0])
    if ks[0] < 0 or ks[-1] > total:
        raise ValueError(f"spawn steps must lie in [0, {total}]; got {ks}")
    state, done, out = start(net, net.init(2 * seed)), 0, {}
    for k in ks:
        state = train_steps(net, state, data.X_train, data.y_train, config, k - done, order_seed=2 * seed)
        done = k
        children = [train_steps(net, state, data.X_train, data.y_train, config, total - k, order_seed=100 + 2 * seed + j)
                    for j in (0, 1)]
        out[k] = (children[0].params, children[1].params)
    return out


def _barriers(paths: dict, tag: str) -> dict:
    out = {}
    for split in ("train", "test"):
        for metric in ("loss", "error"):
            out[f"{split}_{metric}_barrier_{tag}"] = barrier(paths[split][metric], ALPHAS)
    out[f"test_error_barrier_mean_{tag}"] = barrier(paths["test"]["error"], ALPHAS, reference="mean")
    return out


def pair_paths(net: MLP, a: Params, b: Params, data: Digits) -> dict:
    """Train and test loss and error along the line from a to b (25 alphas): {"train": {...}, "test": {...}}."""
    return {"train": path_metrics(net, a, b, data.X_train, data.y_train, ALPHAS),
            "test": path_metrics(net, a, b, data.X_test, data.y_test, ALPHAS)}


def _lists(paths: dict, tag: str) -> dict:
    return {f"{split}_{metric}_path_{tag}": [round(float(v), 6) for v in paths[split][metric]]
            for split in ("train", "test") for metric in ("loss", "error")}


def _header(what: str, name: str, config: dict) -> dict:
    commit = git_commit(__file__)
    return {"what": what,
            "rebuild": f"OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python -m lablib.paths.experiment {name} "
                       f"--out lablib/paths/results/{FILES[name]}",
            "data": {"dataset": "sklearn.datasets.load_digits", "n_test": N_TEST, "split_seed": SPLIT_SEED,
                     "standardized": "per pixel, training mean and sd"},
            "config": json.loads(json.dumps(config, default=lambda o: asdict(o))), "commit": commit,
            "torch": torch.__version__, "alphas": [float(a) for a in ALPHAS]}


def run_rebasin(config: dict = REBASIN, progress: bool = True) -> dict:
    """Barriers before and after weight matching, for every width and seed."""
    torch.set_num_threads(1)
    data, rows = load_digits_split(), []
    for width in config["widths"]:
        net = mlp(width, config["depth"])
        for seed in config["seeds"]:
            start_time = time.perf_counter()
            a, b = independent_pair(net, data, config["train"], seed)
            train_seconds = time.perf_counter() - start_time
            start_time = time.perf_counter()
            perms = weight_matching(net, a, b, seed=seed)
            match_seconds = time.perf_counter() - start_time
            b_matched = permute(net, b, perms)
            naive, matched = pair_paths(net, a, b, data), pair_paths(net, a, b_matched, data)
            row = {"width": width, "seed": seed, "sweeps": perms.sweeps,
                   "test_error_a": evaluate(net, a, data.X_test, data.y_test)[1],
                   "test_error_b": evaluate(net, b, data.X_test, data.y_test)[1],
                   "function_change": float((net(b_matched, data.X_test) - net(b, data.X_test)).abs().max()),
                   **_barriers(naive, "naive"), **_barriers(matched, "matched"),
                   **_lists(naive, "naive"), **_lists(matched, "matched"),
                   "train_seconds": round(train_seconds, 1), "match_seconds": round(match_seconds, 2)}
            rows.append(row)
            if progress:
                print(f"width {width} seed {seed}: test error barrier {row['test_error_barrier_naive']:.3f} -> "
                      f"{row['test_error_barrier_matched']:.3f}, loss barrier {row['test_loss_barrier_naive']:.3f} -> "
                      f"{row['test_loss_barrier_matched']:.3f} ({row['sweeps']} sweeps, {train_seconds:.0f} s)", flush=True)
    return {**_header("Git Re-Basin weight matching on digits MLPs (3 hidden layers), barrier vs width", "rebasin", config),
            "rows": rows}


def run_spawn(config: dict = SPAWN, progress: bool = True) -> dict:
    """The spawn test (barrier against the spawn step k) and the independent pair, per optimizer and seed."""
    torch.set_num_threads(1)
    data, rows = load_digits_split(), []
    net = mlp(config["width"], config["depth"])
    for name, train_config in config["train"].items():
        for seed in config["seeds"]:
            start_time = time.perf_counter()
            pairs = {"independent": independent_pair(net, data, train_config, seed),
                     **spawn_pairs(net, data, train_config, seed, config["ks"])}
            for k, (a, b) in pairs.items():
                paths = pair_paths(net, a, b, data)
                rows.append({"optimizer": name, "seed": seed, "k": k,
                             "test_error_a": evaluate(net, a, data.X_test, data.y_test)[1],
                             "test_error_b": evaluate(net, b, data.X_test, data.y_test)[1],
                             **_barriers(paths, "naive"), "test_error_path": [round(float(v), 6) for v in paths["test"]["error"]]})
            if progress:
                got = {r["k"]: round(r["test_error_barrier_naive"], 4) for r in rows[-len(pairs):]}
                print(f"{name} seed {seed}: test error barrier {got} ({time.perf_counter() - start_time:.0f} s)", flush=True)
    return {**_header("The spawn test (Frankle et al. 2020) on a digits MLP (3 x 64)", "spawn", config),
            "steps_total": {n: c.total_steps(data.X_train.shape[0]) for n, c in config["train"].items()}, "rows": rows}


def run_linearize(config: dict = LINEARIZE, progress: bool = True) -> dict:
    """The network and its linearization trained side by side, every width and seed."""
    torch.set_num_threads(1)
    data, rows = load_digits_split(), []
    Y = targets(data.y_train)
    for width in config["widths"]:
        net = mlp(width, config["depth"], parameterization="ntk", sigma_w=config["sigma_w"], sigma_b=config["sigma_b"])
        for seed in config["seeds"]:
            start_time = time.perf_counter()
            run = train_side_by_side(net, net.init(seed), data.X_train, Y, config["lr"], config["steps"],
                                     data.X_test, data.y_test, record=tuple(config["record"]))
            rows.append({"width": width, "seed": seed, "history": [{k: float(v) for k, v in h.items()} for h in run.history],
                         "seconds": round(time.perf_counter() - start_time, 1)})
            if progress:
                end = run.history[-1]
                print(f"width {width} seed {seed}: rms gap {end['rms_gap']:.4f}, test error {end['error']:.3f} vs "
                      f"{end['error_lin']:.3f} linearized ({rows[-1]['seconds']} s)", flush=True)
    return {**_header("A network and its linearization around init (Lee et al. 2019), NTK parameterization, "
                      "full-batch GD on MSE", "linearize", config), "rows": rows}


def load_results(name: str, path: str | Path | None = None) -> dict:
    """A shipped results file: ``name`` in "rebasin", "spawn", "linearize" (the module docstring rebuilds them)."""
    if name not in FILES:
        raise ValueError(f"name must be one of {sorted(FILES)}; got {name!r}")
    path = Path(path) if path is not None else RESULTS / FILES[name]
    return read_results(path, f"python -m lablib.paths.experiment {name} --out {path}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=sorted(FILES))
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    args = parser.parse_args(argv)
    config = {"rebasin": REBASIN, "spawn": SPAWN, "linearize": LINEARIZE}[args.what]
    if args.seeds is not None:
        config = {**config, "seeds": tuple(args.seeds)}
    start_time = time.perf_counter()
    results = {"rebasin": run_rebasin, "spawn": run_spawn, "linearize": run_linearize}[args.what](config)
    results["seconds"] = round(time.perf_counter() - start_time, 1)
    out = args.out or RESULTS / FILES[args.what]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {out} in {results['seconds']:.0f} s")


if __name__ == "__main__":
    main()
