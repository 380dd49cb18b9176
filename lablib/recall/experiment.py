"""The recall-versus-state experiment of chapter t1_06: MQAR accuracy for each mixer at several widths.

Each run trains a 2-layer ``LanguageModel`` (no MLPs, as in Zoology's MQAR models) on MQAR with a
learning-rate sweep, and records the best test accuracy and the decoding state it needed, measured
in bytes. Runs go to worker processes (one thread each) and are appended to the results file as
they finish, so an interrupted rebuild resumes where it stopped:

    OPENBLAS_NUM_THREADS=1 python -m lablib.recall.experiment --out lablib/recall/results/mqar.json --workers 2

Runs made by separate processes (``--models ... --d-models ... --out part.json``) are folded in
with ``--merge part.json`` (``--d-models`` with no value: merge only, train nothing).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

from lablib.provenance import git_commit, read_results

RESULTS = Path(__file__).parent / "results" / "mqar.json"
REBUILD = "OPENBLAS_NUM_THREADS=1 python -m lablib.recall.experiment --out lablib/recall/results/mqar.json --workers 2"

TASK = dict(vocab=1024, seq_len=64, n_pairs=4, n_train=20_000, n_test=1_000, power_a=0.01, seed=0)
TRAIN = dict(max_steps=2000, batch_size=64, weight_decay=0.1, warmup=100, eval_every=100, target=0.99, seed=0)
LRS = (3e-3, 1e-2)
D_MODELS = (64, 32)

# name -> (LMConfig mixer, mixer kwargs, learned positions?). Softmax attention gets positions
# (Zoology gives them to attention only); every recurrent mixer knows order from its recurrence.
MODELS: dict[str, tuple[str, dict, bool]] = {
    "softmax": ("softmax", {}, True),
    "linear elu+1": ("linear", {}, False),
    "linear elu+1 + conv": ("linear", {"conv_size": 4}, False),
    "based (taylor) + conv": ("based", {"conv_size": 4}, False),
    "gla + conv": ("gla", {"conv_size": 4}, False),
    "deltanet": ("deltanet", {"conv_size": 0}, False),
    "deltanet + conv": ("deltanet", {"conv_size": 4}, False),
    "gated deltanet + conv": ("gated_deltanet", {"conv_size": 4}, False),
    # Mixture of Memories: 4 DeltaNet memories, each token written to its top 2 (4x the state of a
    # DeltaNet of the same width: compare it with DeltaNet at twice the width, the same bytes)
    "mom 4 memories + conv": ("mom", {"n_memories": 4, "top_k": 2, "conv_size": 4}, False),
}


def lm_config(model: str, d_model: int, task: dict = TASK):
    from lablib.layers import LMConfig

    mixer, kwargs, positions = MODELS[model]
    return LMConfig(vocab=task["vocab"], mixer=mixer, d_model=d_model, n_layers=2, n_heads=1, mlp=False,
                    mixer_kwargs=dict(kwargs), max_len=task["seq_len"] if positions else None)


def run_one(job: tuple[str, int]) -> dict:
    """Train one (model, d_model) with the learning-rate sweep; a JSON-ready row."""
    import torch

    from lablib.recall.train import MQARTask, sweep_lr

    torch.set_num_threads(1)
    model, d_model = job
    best, runs = sweep_lr(lm_config(model, d_model), MQARTask(**TASK), LRS, progress=False,
                          **{k: v for k, v in TRAIN.items() if k != "target"}, target=TRAIN["target"])
    return {"model": model, "d_model": d_model, "accuracy": best.best_accuracy, "lr": best.lr,
            "state_bytes": best.state_bytes, "n_params": best.n_params,
            "runs": [r.as_dict() for r in runs]}


def load_results(path: Path = RESULTS) -> dict:
    """The shipped results: {"task", "train", "lrs", "rows": [...], "commit", "rebuild", ...}."""
    return read_results(path, REBUILD)


def main(argv=None) -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--d-models", nargs="*", type=int, default=list(D_MODELS))
    parser.add_argument("--merge", nargs="*", type=Path, default=[],
                        help="add the rows of other results files (runs made in parallel processes) first")
    args = parser.parse_args(argv)
    done = {}
    for path in ([args.out] if args.out.exists() else []) + args.merge:
        previous = load_results(path)
        if (previous["task"], previous["train"], previous["lrs"]) != (TASK, TRAIN, list(LRS)):
            raise SystemExit(f"{path} was made with another task, training or lrs than this code's; not merged")
        done.update({(r["model"], r["d_model"]): r for r in previous["rows"]})
    jobs = [(m, d) for d in args.d_models for m in args.models if (m, d) not in done]
    header = {"what": "MQAR recall accuracy against decoding state bytes (2 layers, no MLP)",
              "rebuild": REBUILD, "task": TASK, "train": TRAIN, "lrs": list(LRS),
              "optimizer": "AdamW(betas=(0.9, 0.98)), warmup then cosine, grad clip 1.0",
              "commit": git_commit(__file__), "torch": torch.__version__, "python": sys.version.split()[0]}

    def save():
        rows = sorted(done.values(), key=lambda r: (list(MODELS).index(r["model"]), r["d_model"]))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({**header, "rows": rows}, indent=1) + "\n")

    if args.out.exists():  # the commit the runs were trained at, not this invocation's
        header["commit"] = load_results(args.out).get("commit", header["commit"])
    if args.merge:
        header["merged"] = [str(p) for p in args.merge]
        save()
    print(f"{len(jobs)} runs to do, {len(done)} already in {args.out}", flush=True)
    start = time.perf_counter()

    def record(row):  # keep a finished run, write the file at once (resumable), log one line
        done[(row["model"], row["d_model"])] = row
        save()
        print(f"[{time.perf_counter() - start:7.0f}s] {row['model']:24s} d={row['d_model']:3d} "
              f"acc={row['accuracy']:.3f} lr={row['lr']:.0e} state={row['state_bytes']} B", flush=True)

    if args.workers > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(args.workers) as pool:
            for row in pool.imap_unordered(run_one, jobs):
                record(row)
    else:
        for job in jobs:
            record(run_one(job))


if __name__ == "__main__":
    main()
