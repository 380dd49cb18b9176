"""The timing runner: the grid of cases, how each is checked and timed, and its time limits.

``run_attention(cfg)`` takes the cases of ``jobs(cfg)`` (op by op, T by T, D by D, the four
implementations in turn) and returns every (op, implementation, T, D, pass) as one row of a
DataFrame: its time, FLOP and byte counts (``lablib.bench.costs``), rates, correctness
(``lablib.bench.inputs``) and status. ``Config`` holds one grid's sizes and run settings (the
command line makes it, ``lablib.bench.cli``).

Timing. CUDA: CUDA events around each call, after warm-up calls, the device synchronized after
each repeat; CPU: ``time.perf_counter``. ``ms`` is the median of the repeats (``ms_min`` the
fastest); slow cases get fewer repeats (at least 3) so one case stays within ``--budget``
seconds. Forward runs under ``torch.no_grad``; forward+backward is ``fn(q, k, v, ...).backward(do)``
on leaf inputs, grads reset to ``None`` each call.

Skips. The PyTorch reference is skipped when T / chunk_size > ``--ref-max-chunks`` (default 256,
i.e. T > 16384 at C = 64): it issues many small kernels per chunk from Python, so beyond that its
time is launch overhead and each repeat takes seconds. The others are tried at every size; an
out-of-memory error becomes "n/a (out of memory)" (and the CUDA cache is emptied).

Time limits, for a device lent by the minute. ``--budget-s S`` stops the grid after S seconds of
wall time (compilation included): the case running then is cut, and every case left gets rows
"n/a (not run: --budget-s S s used up)", and the outputs are written as usual. ``--case-timeout
S`` caps one case (an implementation at one (op, T, D): its check and both passes, first-call
compilation and autotuning included) at S seconds: its unfinished passes become "n/a (timed out
...)" and the grid goes on (a later size of the same kernel resumes where the compile cache left
off). Both use SIGALRM, which interrupts Python between bytecodes, so a cap can overrun by one
call into C (one compile pass, one kernel). A SIGTERM (``timeout``) stops the grid the same way.
While the grid runs, attention.csv and attention.md are rewritten every 15 s with the rows so far
(written beside, then renamed), so a run killed from outside keeps them. ``--fla-last`` times fla
after everything else, op by op in FLA_ORDER (fewest autotuning configs first), so a grid cut
short loses fla's slowest ops, not our kernels. ``--autotune-rep-ms M`` makes fla's autotuners
time each config for M ms (after M/4 of warm-up) instead of Triton's 100 (25): every config is
still compiled and timed, and the fastest kept.
"""

from __future__ import annotations

import contextlib
import math
import signal
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import pandas as pd
import torch

from lablib.bench.costs import device_name, flops, nbytes, peak_for
from lablib.bench.inputs import (
    CHECK_TOL, _errors, _from_layout, _impl_gates, _inputs, _references, _seed, _to_layout,
)
from lablib.bench.registry import (
    DTYPES, FLA_CHUNK, FLA_NAMES, FLA_ORDER, OPS, PASSES, REF, REF_FUNCTIONS, SDPA, Impl, _build, _reason,
    implementations,
)


@dataclass
class Config:
    """One grid: its sizes and run settings (``lablib.bench.cli`` makes one from the options)."""

    device: torch.device
    dtype: torch.dtype
    tokens: int
    lengths: list[int]
    heads: int
    dims: list[int]
    chunk_size: int
    warmup: int
    repeats: int
    budget: float
    ref_max_chunks: int
    progress: bool = True
    ops: list[str] = field(default_factory=lambda: list(OPS))
    budget_s: float | None = None  # wall-clock seconds for the whole grid; cases after it are "not run"
    case_timeout: float | None = None  # seconds for one case (an implementation at one size, both passes)
    fla_last: bool = False  # time fla after every other implementation (its autotuning is the slow part)
    autotune_rep_ms: float | None = None  # fla's autotuner times each config this long (None: Triton's 100 ms)


def _timer(device: torch.device) -> Callable[[Callable[[], object]], float]:
    """Seconds of one call: CUDA events on a GPU (then a synchronize), perf_counter on the CPU."""
    if device.type == "cuda":

        def once(fn):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3

    else:

        def once(fn):
            start = time.perf_counter()
            fn()
            return time.perf_counter() - start

    return once


def time_call(fn: Callable[[], object], device: torch.device, *, warmup: int, repeats: int, budget: float) -> list[float]:
    """Seconds of each of the timed repeats of ``fn`` after ``warmup`` calls (at least one).

    The fastest warm-up call (not the first, which may include a JIT compile) sets how many
    repeats fit in ``budget`` seconds (3 at least).
    """
    once = _timer(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    estimate = min(once(fn) for _ in range(max(1, warmup)))
    n = max(3, min(repeats, int(budget / max(estimate, 1e-9))))
    return [once(fn) for _ in range(n)]


def _free(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


def jobs(cfg: Config) -> list[tuple[str, int, int, str]]:
    """Every (op, T, D, implementation) case of the grid, in the order the run takes them.

    Op by op, T by T, D by D, the four implementations in turn; with ``cfg.fla_last`` the fla
    cases come after all the others, op by op in FLA_ORDER (fla's autotuning compiles hundreds of
    configs per op and D, so a grid cut short by ``budget_s`` loses fla's slowest ops first).
    """
    cases = [(op, T, D, name) for op in cfg.ops for T in cfg.lengths for D in cfg.dims for name in implementations(op)]
    if not cfg.fla_last:
        return cases
    fla = [c for c in cases if c[3] == FLA_NAMES[c[0]]]
    return [c for c in cases if c[3] != FLA_NAMES[c[0]]] + sorted(fla, key=lambda c: FLA_ORDER.index(c[0]))


class _TimeUp(BaseException):
    """A case's time cap ran out. A BaseException, so the case's own ``except Exception`` lets it through."""


class _Stopped(BaseException):
    """SIGTERM (e.g. from ``timeout``) during the grid: the run stops and keeps what it measured."""


@contextlib.contextmanager
def _time_cap(seconds: float | None, reason: str):
    """Raise _TimeUp(reason) in this (main) thread after ``seconds`` of wall time; no cap when None.

    SIGALRM interrupts Python code only between bytecodes: a long call into C (a Triton compile
    pass, a CUDA synchronize) finishes first, so the cap may overrun by that call's length.
    """
    if seconds is None or not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def alarm(signum, frame):
        raise _TimeUp(reason)

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 1e-3))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def _stop_on_sigterm():
    """Turn SIGTERM into _Stopped while the grid runs (main thread only), so the outputs still get written."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise _Stopped()

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def shorten_autotuning(rep_ms: float, package: str = "fla") -> tuple[int, int]:
    """Make the Triton autotuners of ``package`` (its modules already imported) time each config for
    ``rep_ms`` ms after ``rep_ms / 4`` ms of warm-up, instead of Triton's 100 and 25.

    The configs are still all compiled and timed, and the fastest kept; only the timing of each is
    shorter (fla's kernels take microseconds to a millisecond here, so 20 ms is still tens to
    thousands of calls). Returns (autotuners changed, autotuners found).
    """
    import triton.testing
    from triton.runtime.autotuner import Autotuner, Heuristics

    def do_bench(kernel_call, quantiles=None, **_):
        return triton.testing.do_bench(kernel_call, warmup=max(1.0, rep_ms / 4), rep=rep_ms, quantiles=quantiles)

    found: dict[int, object] = {}
    for name, module in list(sys.modules.items()):
        if module is None or not (name == package or name.startswith(package + ".")):
            continue
        for obj in list(vars(module).values()):
            while isinstance(obj, Heuristics):
                obj = obj.fn
            if isinstance(obj, Autotuner):
                found[id(obj)] = obj
    changed = 0
    for tuner in found.values():
        try:
            tuner.__dict__["do_bench"] = do_bench  # do_bench is a cached_property (or a plain attribute)
        except Exception:  # noqa: BLE001 - a Triton whose Autotuner has no instance dict: leave it
            continue
        changed += getattr(tuner, "do_bench", None) is do_bench
    return changed, len(found)


class _NoProgress:
    """tqdm's interface, as far as run_attention uses it, doing nothing."""

    def __init__(self, iterable, **_):
        self.iterable = iterable

    def __iter__(self):
        return iter(self.iterable)

    def set_postfix_str(self, *_):
        pass

    def close(self):
        pass


def _frame(rows: list[dict]) -> pd.DataFrame:
    columns = [
        "op", "implementation", "pass", "device", "dtype", "B", "T", "H", "D", "chunk", "layout", "ms", "ms_min",
        "repeats", "flops", "bytes", "tflops", "gbps", "tflops_pct_peak", "gbps_pct_peak", "max_err", "max_abs_err",
        "check_ref", "peak_mem_gib", "status", "note",
    ]
    return pd.DataFrame(rows, columns=columns).astype({"chunk": "Int64"})


def run_attention(cfg: Config, checkpoint: Callable[[pd.DataFrame], None] | None = None,
                  checkpoint_every_s: float = 15.0) -> pd.DataFrame:
    """Every (op, implementation, T, D, pass) as one row of a DataFrame; see the module docstring.

    ``checkpoint(df)`` is called with the rows so far at most every ``checkpoint_every_s`` seconds
    (the command line writes the CSV and table with it, so a run killed from outside keeps them).
    Cases left when ``cfg.budget_s`` is used up, or after a SIGTERM, get rows "n/a (not run: ...)";
    a case stopped by its time cap gets "n/a (timed out ...)" for the passes it had not finished.
    """
    try:
        from tqdm.auto import tqdm
    except ImportError:  # a bare GPU machine's Python: no progress bar
        tqdm = _NoProgress

    dev, dtype = cfg.device, cfg.dtype
    itemsize = torch.empty((), dtype=dtype).element_size()
    dtype_name = {v: k for k, v in DTYPES.items()}[dtype]
    peak = peak_for(device_name(dev)) if dev.type == "cuda" else None
    tol = CHECK_TOL[dtype]

    impls: dict[tuple[str, str], Impl | str] = {}
    for op in cfg.ops:
        for name in implementations(op):
            try:
                impls[op, name] = _build(name, cfg, op)
            except Exception as e:  # not installed, no CUDA, ...: every row of it is n/a
                impls[op, name] = _reason(e)
    if cfg.autotune_rep_ms and dev.type == "cuda" and any(isinstance(impls[o, FLA_NAMES[o]], Impl) for o in cfg.ops):
        changed, found = shorten_autotuning(cfg.autotune_rep_ms)
        print(f"[bench] fla autotuning: {changed} of {found} autotuners time each config for "
              f"{cfg.autotune_rep_ms:g} ms", file=sys.stderr)

    start = time.monotonic()  # the budget counts the grid, not the imports above
    rows: list[dict] = []
    bar = tqdm(jobs(cfg), desc="attention", unit="case", disable=not cfg.progress, file=sys.stderr)
    state: dict = {"key": None}  # the current (op, T, D)'s inputs and float64 references, shared by its cases
    stopped: str | None = None
    last_checkpoint = start

    with _stop_on_sigterm():
        for op, T, D, name in bar:
            bar.set_postfix_str(f"{op} T={T} D={D} {name.split(' (')[0]}")
            first_row = len(rows)
            try:
                stopped = _grid_case(cfg, op, T, D, name, impls[op, name], rows, state, stopped, start, peak, itemsize,
                                     dtype_name, tol)
            except _Stopped:
                stopped = "not run: stopped by SIGTERM"
                _fill(cfg, op, T, D, name, impls[op, name], rows, first_row, "n/a (stopped by SIGTERM)", peak,
                      itemsize, dtype_name)
                state.clear()
                state["key"] = None
            if checkpoint is not None and time.monotonic() - last_checkpoint >= checkpoint_every_s:
                checkpoint(_frame(rows))
                last_checkpoint = time.monotonic()
    bar.close()
    state.clear()
    return _frame(rows)


def _row_maker(cfg: Config, op: str, T: int, D: int, name: str, impl: Impl | str, rows: list[dict], peak,
               itemsize: int, dtype_name: str):
    """``add(pass_, status, **values)``: appends one row of this case, with its FLOP and byte counts."""
    dev = cfg.device
    B = max(1, cfg.tokens // T)
    is_fla = name == FLA_NAMES[op]
    kind = impl.kind if isinstance(impl, Impl) else ("softmax" if name == SDPA else op)
    chunk = impl.chunk if isinstance(impl, Impl) else (None if name == SDPA else FLA_CHUNK if is_fla else cfg.chunk_size)
    base = dict(
        op=op, implementation=name, device=device_name(dev), dtype=dtype_name, B=B, T=T, H=cfg.heads, D=D,
        chunk=chunk, layout=impl.layout if isinstance(impl, Impl) else "",
    )
    hint = "pip install flash-linear-attention" if is_fla and impl == "not installed" else ""
    blank = dict(ms=math.nan, ms_min=math.nan, repeats=0, max_err=math.nan, max_abs_err=math.nan,
                 check_ref="", peak_mem_gib=math.nan, note=impl.note if isinstance(impl, Impl) else hint)

    def add(pass_, status, **values):
        fl = flops(kind, pass_, B, cfg.heads, T, D, D, chunk or cfg.chunk_size)
        by = nbytes(pass_, B, cfg.heads, T, D, D, itemsize, op if kind != "softmax" else "linear")
        row = {**base, "pass": pass_, **blank, **values, "flops": fl, "bytes": by, "status": status}
        ms = row["ms"]
        row["tflops"] = fl / (ms * 1e-3) / 1e12 if ms == ms else math.nan
        row["gbps"] = by / (ms * 1e-3) / 1e9 if ms == ms else math.nan
        row["tflops_pct_peak"] = 100 * row["tflops"] / peak[1] if peak and ms == ms else math.nan
        row["gbps_pct_peak"] = 100 * row["gbps"] / peak[2] if peak and ms == ms else math.nan
        rows.append(row)

    return add


def _fill(cfg, op, T, D, name, impl, rows, first_row, status, peak, itemsize, dtype_name) -> None:
    """Rows with ``status`` for the passes of this case that have no row since ``first_row``."""
    add = _row_maker(cfg, op, T, D, name, impl, rows, peak, itemsize, dtype_name)
    done = {r["pass"] for r in rows[first_row:]}
    for p in PASSES:
        if p not in done:
            add(p, status)


def _grid_case(cfg, op, T, D, name, impl, rows, state, stopped, start, peak, itemsize, dtype_name, tol):
    """One case of the grid under the budget and the time cap; returns the (new) reason the rest is not run."""
    add = _row_maker(cfg, op, T, D, name, impl, rows, peak, itemsize, dtype_name)
    elapsed = time.monotonic() - start
    if stopped is None and cfg.budget_s is not None and elapsed >= cfg.budget_s:
        stopped = f"not run: --budget-s {cfg.budget_s:g} s used up"
    if stopped is not None:
        for p in PASSES:
            add(p, f"n/a ({stopped})")
        return stopped
    caps = []
    if cfg.case_timeout is not None:
        caps.append((cfg.case_timeout, f"timed out after {cfg.case_timeout:g} s (--case-timeout)"))
    if cfg.budget_s is not None:
        caps.append((cfg.budget_s - elapsed, f"timed out: --budget-s {cfg.budget_s:g} s used up"))
    cap, why = min(caps) if caps else (None, "")
    first_row = len(rows)
    try:
        with _time_cap(cap, why):
            _run_case(cfg, op, T, D, name, impl, max(1, cfg.tokens // T), add, state, tol, dtype_name)
    except _TimeUp as e:
        _fill(cfg, op, T, D, name, impl, rows, first_row, f"n/a ({e})", peak, itemsize, dtype_name)
        state.clear()
        state["key"] = None
        _free(cfg.device)
    return stopped


def _run_case(cfg: Config, op: str, T: int, D: int, name: str, impl: Impl | str, B: int, add, state: dict,
              tol: float, dtype_name: str) -> None:
    """One implementation at one (op, T, D): check it, then time both passes, each result a row via ``add``."""
    dev, dtype = cfg.device, cfg.dtype
    if not isinstance(impl, Impl):
        for p in PASSES:
            add(p, f"n/a ({impl})")
        return
    if name == REF and T / cfg.chunk_size > cfg.ref_max_chunks:
        for p in PASSES:
            add(p, f"n/a (skipped: T/C = {T // cfg.chunk_size} chunks > --ref-max-chunks {cfg.ref_max_chunks})")
        return

    try:
        if state.get("key") != (op, T, D):  # new shape: new inputs, and the float64 references for the checks
            state.clear()
            state["key"] = None
            _free(dev)
            q, k, v, gates = _inputs(B, cfg.heads, T, D, dtype, dev, seed=_seed(op, T, D), op=op)
            refs = _references(q, k, v, cfg.chunk_size, op, gates)
            state.update(q=q, k=k, v=v, gates=gates, refs=refs, key=(op, T, D))
        q, k, v, gates, refs = (state[n] for n in ("q", "k", "v", "gates", "refs"))
        qi, ki, vi = (_to_layout(x, impl.layout) for x in (q, k, v))
        gi = _impl_gates(impl, op, gates, dtype)
        # 1. correctness of the forward on this shape, before any timing
        with torch.no_grad():
            out = _from_layout(impl.fn(qi, ki, vi, *gi), impl.layout)
        ref, nrows = refs[impl.kind]
        err, abs_err = _errors(out, ref, nrows)
        check_fn = REF_FUNCTIONS[op] if impl.kind != "softmax" else "softmax_attention"
        check = f"{check_fn} fp64, b=0, rows<{nrows}"
        ok = "ok" if err <= tol else f"inaccurate (max_err {err:.1e} > tol {tol:g} of {dtype_name})"
        do = torch.randn_like(out).to(dtype)
        do = _to_layout(do, impl.layout)
        del out
    except Exception as e:
        for p in PASSES:
            add(p, f"n/a ({_reason(e)})")
        _free(dev)
        return

    for p in PASSES:
        call = leaves = None
        try:
            if p == "fwd":

                def call(qi=qi, ki=ki, vi=vi, gi=gi):
                    with torch.no_grad():
                        impl.fn(qi, ki, vi, *gi)

            else:
                leaves = [x.detach().clone().requires_grad_(True) for x in (qi, ki, vi, *gi)]

                def call(leaves=leaves):
                    for x in leaves:
                        x.grad = None
                    impl.fn(*leaves).backward(do)

            if dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats(dev)
            times = time_call(call, dev, warmup=cfg.warmup, repeats=cfg.repeats, budget=cfg.budget)
            mem = torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else math.nan
            add(p, ok, ms=1e3 * statistics.median(times), ms_min=1e3 * min(times), repeats=len(times),
                max_err=err, max_abs_err=abs_err, check_ref=check, peak_mem_gib=mem)
        except Exception as e:
            add(p, f"n/a ({_reason(e)})", max_err=err, max_abs_err=abs_err, check_ref=check)
            _free(dev)
        finally:
            call = leaves = None
