"""The command line, ``python -m lablib.bench attention [options]``, and its grid presets.

``main(argv)`` parses the options (``_parser``), makes the ``Config`` (``_config``: a preset's
value for every option not given), optionally counts the Triton compiles first
(``lablib.bench_compile``), runs the grid and writes the report. ``--estimate`` writes
compile_estimate.{md,csv} (``lablib.bench_compile``: every kernel the grid will compile, counted
without compiling) before running; ``--estimate-only`` stops there.

The GPU run to commit (every op, bf16, T from 1024 to 32768, D in {64, 128}; TRITON_INTERPRET
unset)::

    python -m lablib.bench attention --out benchmarks/h200 --no-progress

then commit ``benchmarks/<device>/attention.{md,csv,png}`` (the .html inlines vega, about 1 MB).
On a fresh machine its length is dominated by compilation, not timing: 480 cases, most a few
hundred ms of timed calls, but ``--estimate-only`` counts ~1,800 cold Triton compiles for it,
34 of ours (bf16, a few seconds each) and ~1,750 of fla's, whose autotuners compile and time
every config (48 per kernel for its state recurrence) of every kernel for each new key, per op
and D: ~20 minutes at the CI machine's compile rate (see ``lablib.bench_compile``).

The time limits for a device lent by the minute (``--budget-s``, ``--case-timeout``, ``--fla-last``,
``--autotune-rep-ms``) are described in ``lablib.bench.runner``, which enforces them.

``--grid gpu`` is the first GPU run, what ``benchmarks/gpu_run.sh`` runs (FULL's sizes, all five
ops): the reference only up to T = 4096 (``--ref-max-chunks 64``), 1 s of timed calls per case,
``--budget-s 330 --case-timeout 150 --fla-last --autotune-rep-ms 20``. It gets our kernels, SDPA
and the reference at every size (the reference to T = 4096), and fla for as many ops as the
budget leaves (the estimate at the CI machine's compile rate: ~2 minutes of compiles for all of
ours, ~1-4 minutes per op and D for fla); see benchmarks/README.md.

``--smoke``: CPU, fp32, tokens 128, T in {64, 128}, 1 head, D = 16, chunk 32, 3 repeats; with
``TRITON_INTERPRET=1`` the Triton kernels run in the interpreter and all five ops take under a
minute on two CPU cores (GLA's interpreted kernel most of it; ``--op`` narrows it). Without the
interpreter, on the CPU our rows are "n/a (no CUDA; set TRITON_INTERPRET=1)". Explicit size flags
override the smoke (and full) defaults.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import pandas as pd
import torch

from lablib.bench.registry import DTYPES, OPS, _reason
from lablib.bench.report import _header, _sections, _write_text, write_outputs
from lablib.bench.runner import Config, run_attention


# Grid presets (``--grid``; ``--smoke`` = ``--grid smoke``). The run settings after the sizes: seconds of timed
# calls per case (``budget``), the reference's chunk limit, the whole grid's wall-clock budget, the cap on one
# case (compilation included), fla last, and fla's autotuning time per config (None: Triton's default).
RUN_DEFAULTS = dict(budget=5.0, ref_max_chunks=256, budget_s=None, case_timeout=None, fla_last=False,
                    autotune_rep_ms=None)
FULL = dict(tokens=32768, lengths=[1024, 2048, 4096, 8192, 16384, 32768], heads=16, dims=[64, 128],
            dtype="bf16", chunk_size=64, warmup=5, repeats=20, **RUN_DEFAULTS)
# smoke: every op and path end to end under the Triton interpreter, kept small (2 and 4 chunks per sequence)
SMOKE = dict(tokens=64, lengths=[32, 64], heads=1, dims=[16], dtype="fp32", chunk_size=16, warmup=1, repeats=3,
             **RUN_DEFAULTS)
# The first GPU run (benchmarks/gpu_run.sh): FULL's sizes inside about 6 minutes of device time, compilation
# included. Our kernels, SDPA and the reference (T <= 4096) first; fla after them, cheapest autotuning first
# (FLA_ORDER), each config timed for 20 ms instead of Triton's 100; the grid stops at 330 s and no case
# (one implementation at one size, both passes) may take more than 150 s. See benchmarks/README.md.
GPU = dict(FULL, budget=1.0, ref_max_chunks=64, budget_s=330.0, case_timeout=150.0, fla_last=True,
           autotune_rep_ms=20.0)
GRIDS = {"full": FULL, "gpu": GPU, "smoke": SMOKE}


def _ints(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _ops(text: str) -> list[str]:
    """``all`` or a comma-separated list of ops, returned in OPS order without repeats."""
    names = [x.strip() for x in text.split(",") if x.strip()]
    if names == ["all"]:
        return list(OPS)
    unknown = [x for x in names if x not in OPS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"expected 'all' or comma-separated ops from {', '.join(OPS)}; got {text!r}")
    return [o for o in OPS if o in names]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lablib.bench", description="lablib benchmarks")
    sub = p.add_subparsers(dest="bench", required=True)
    a = sub.add_parser(
        "attention",
        help="the linear-attention kernel family (lablib reference, Triton, fla) and SDPA, fwd and fwd+bwd",
    )
    a.add_argument("--op", type=_ops, default=list(OPS), metavar="OPS",
                   help=f"'all' (default) or comma-separated ops from: {', '.join(OPS)}")
    a.add_argument("--grid", choices=list(GRIDS),
                   help="preset sizes and run settings: full (default), gpu (the first GPU run: full sizes inside about "
                        "6 minutes of device time; see benchmarks/README.md), smoke (= --smoke); explicit flags override it")
    a.add_argument("--device", choices=["cuda", "cpu"], help="default: cuda when available (cpu with --smoke)")
    a.add_argument("--dtype", choices=list(DTYPES), help=f"default {FULL['dtype']} ({SMOKE['dtype']} with --smoke)")
    a.add_argument("--tokens", type=int, help=f"B*T, fixed across lengths (default {FULL['tokens']})")
    a.add_argument("--lengths", type=_ints, help="comma-separated T values (default 1024,...,32768)")
    a.add_argument("--heads", type=int, help=f"H (default {FULL['heads']})")
    a.add_argument("--dims", type=_ints, help="comma-separated head dims D = D_k = D_v (default 64,128)")
    a.add_argument("--chunk-size", type=int, help=f"chunk C of the reference and Triton kernels (default {FULL['chunk_size']})")
    a.add_argument("--warmup", type=int, help=f"warm-up calls per case (default {FULL['warmup']})")
    a.add_argument("--repeats", type=int, help=f"timed calls per case, median reported (default {FULL['repeats']})")
    a.add_argument("--budget", type=float,
                   help=f"seconds of timed calls per case; fewer repeats (>= 3) when slow (default {FULL['budget']:g}, "
                        f"gpu grid {GPU['budget']:g})")
    a.add_argument("--ref-max-chunks", type=int,
                   help=f"skip the PyTorch reference when T / C exceeds this (default {FULL['ref_max_chunks']}, "
                        f"gpu grid {GPU['ref_max_chunks']})")
    a.add_argument("--budget-s", type=float,
                   help="wall-clock seconds for the whole grid, compilation included: the cases left then get rows "
                        f"'n/a (not run: ...)' and the outputs are written (default none, gpu grid {GPU['budget_s']:g})")
    a.add_argument("--case-timeout", type=float,
                   help="seconds one case (an implementation at one size, check and both passes, compilation and "
                        f"autotuning included) may take; then 'n/a (timed out ...)' (default none, gpu grid "
                        f"{GPU['case_timeout']:g})")
    a.add_argument("--fla-last", action=argparse.BooleanOptionalAction, default=None,
                   help="time fla after all the other implementations, op by op in FLA_ORDER (gpu grid: on)")
    a.add_argument("--autotune-rep-ms", type=float,
                   help="fla's Triton autotuners time each config for this many ms (default: Triton's 100; gpu grid "
                        f"{GPU['autotune_rep_ms']:g})")
    a.add_argument("--estimate", action="store_true",
                   help="first count the Triton kernels the grid will compile (compile_estimate.{md,csv}), then run it")
    a.add_argument("--estimate-only", action="store_true", help="only count them; run nothing")
    a.add_argument("--out", type=Path, default=Path("bench_out"), help="directory for attention.{csv,md,html,png}")
    a.add_argument("--smoke", action="store_true", help="tiny CPU fp32 sizes that run in about a minute (TRITON_INTERPRET=1)")
    a.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _config(args: argparse.Namespace) -> Config:
    grid = "smoke" if args.smoke else (getattr(args, "grid", None) or "full")
    defaults = GRIDS[grid]
    pick = lambda name: getattr(args, name, None) if getattr(args, name, None) is not None else defaults[name]  # noqa: E731
    if args.device is not None:
        device = args.device
    else:
        device = "cpu" if grid == "smoke" or not torch.cuda.is_available() else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch.cuda.is_available() is False here")
    cfg = Config(
        device=torch.device(device), dtype=DTYPES[pick("dtype")], tokens=pick("tokens"), lengths=pick("lengths"),
        heads=pick("heads"), dims=pick("dims"), chunk_size=pick("chunk_size"), warmup=max(1, pick("warmup")),
        repeats=max(1, pick("repeats")), budget=pick("budget"), ref_max_chunks=pick("ref_max_chunks"),
        progress=not args.no_progress, ops=list(args.op), budget_s=pick("budget_s"), case_timeout=pick("case_timeout"),
        fla_last=bool(pick("fla_last")), autotune_rep_ms=pick("autotune_rep_ms"),
    )
    if cfg.chunk_size < 16 or cfg.chunk_size & (cfg.chunk_size - 1):
        raise SystemExit(f"--chunk-size must be a power of two >= 16 (the Triton kernels' tile); got {cfg.chunk_size}")
    for name in ("budget_s", "case_timeout", "autotune_rep_ms"):
        if getattr(cfg, name) is not None and getattr(cfg, name) <= 0:
            raise SystemExit(f"--{name.replace('_', '-')} must be positive; got {getattr(cfg, name):g}")
    return cfg


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(None if argv is None else [str(a) for a in argv])
    cfg = _config(args)
    out = Path(args.out)
    if args.estimate or args.estimate_only:
        from lablib import bench_compile

        try:
            written = bench_compile.write_estimate(bench_compile.estimate(cfg), cfg, out)
            print((out / "compile_estimate.md").read_text())
            print("wrote " + ", ".join(str(p) for p in written.values()))
        except Exception as e:  # an estimate that fails (another Triton's internals) must not stop the run
            if args.estimate_only:
                raise
            out.mkdir(parents=True, exist_ok=True)
            _write_text(out / "compile_estimate.md", f"# Triton kernels this grid compiles\n\nestimate failed: {_reason(e)}\n")
            print(f"[bench] compile estimate failed: {_reason(e)}", file=sys.stderr)
        if args.estimate_only:
            return 0
    header = _header(cfg)
    df = run_attention(cfg, checkpoint=lambda partial: write_outputs(partial, header, out, chart=False))
    written = write_outputs(df, header, out)
    print("\n".join(header))
    with pd.option_context("display.max_colwidth", 80, "display.width", 250):
        for heading, table in _sections(df):
            print()
            print(heading)
            print(table.to_string(index=False))
    print()
    print("wrote " + ", ".join(str(p) for p in written.values()))
    return 0
