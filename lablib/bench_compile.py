"""How many Triton kernels a benchmark grid will compile, counted without compiling or running any.

``python -m lablib.bench attention --estimate-only [the grid's options]`` (``--estimate`` counts,
then runs the grid). Triton compiles a kernel once per *specialization*: per distinct set of
argument dtypes, ``None``-or-pointer arguments, constexpr values (tile sizes, head dims, the
dot precision), launch options, and integer arguments' divisibility by 16 (and equality to 1).
An autotuned kernel (fla's) compiles every one of its configs the first time it meets a new
tuning key (the values of the arguments named in its ``key`` plus the dtypes of its tensors), and
times each; later calls with that key reuse the winner. On a fresh machine every one of these is
a cold compile, and they dominate the device time of a first run.

How: each case of the grid (our kernel and fla's, each pass, in the bench's order) is called once
on small tensors with Triton's launch replaced by a recorder (``JITFunction.run``,
``Autotuner.run`` and, under ``TRITON_INTERPRET=1``, the interpreter's ``run``), so the host code
runs as in the benchmark and every launch's arguments are seen, but no kernel runs. The tensors
have the grid's B, H and D and a short T with the same divisibility by 16 (no kernel specializes
on T's value; fla's autotuning keys use B, H and the head dims, not T). Then each launch is keyed
as Triton would key it (approximately: pointer alignment is taken as always 16 bytes) and the
keys are counted across the whole grid, first seen first compiled.

The seconds are an estimate from measured rates (``SECONDS``): bf16 kernels compiled for sm_90 by
triton 3.9 on one core of the 2-core CI machine, ours ~1-10 s each (mean ~3.5 s), fla's ~0.3-1.7
(mean ~0.6; smaller kernels); fp32 ("ieee" dots) compiles several times slower (the delta rule's
backward takes minutes). Autotuning adds each config's timing (warm-up + repeats, ``--autotune-
rep-ms`` or Triton's 25 + 100 ms) and fla's config lists depend on the GPU (shared memory,
architecture): counted on a CPU they are fla's fallback lists, so the GPU run's own estimate (in
``benchmarks/gpu_run.sh``) is the one to trust. The measured count is the number of compiled
binaries the run leaves in Triton's cache (``gpu_run.sh`` reports it per phase).
"""

from __future__ import annotations

import contextlib
import inspect
from pathlib import Path

import pandas as pd
import torch

from lablib import bench

__all__ = ["estimate", "summarize", "write_estimate", "SECONDS"]

# Seconds per cold compile (bf16 inputs) and the fixed cost of timing one autotuning config beyond its
# warm-up + repeats; see the module docstring for where they come from.
SECONDS = {"ours": 3.5, "fla": 0.6, "other": 1.0, "autotune_overhead": 0.01}
FP32_COMPILE_FACTOR = 5.0  # fp32 inputs: "ieee" dots unrolled into FMA loops, far bigger PTX
TRITON_AUTOTUNE_MS = (25.0, 100.0)  # Triton's default do_bench warm-up and repeats per config


def _owner(module: str) -> str:
    if module.startswith("lablib"):
        return "ours"
    if module.startswith("fla"):
        return "fla"
    return "other"


def _base_function(fn):
    base = fn
    while not inspect.isfunction(base) and hasattr(base, "fn"):
        base = base.fn
    return base


def _is_constexpr(annotation) -> bool:
    return annotation is not inspect.Parameter.empty and "constexpr" in str(annotation)


def _describe(value, constexpr: bool):
    """What Triton specializes a kernel argument on."""
    if value is None:
        return None
    if hasattr(value, "dtype") and hasattr(value, "data_ptr"):
        return ("ptr", str(value.dtype))
    if constexpr or isinstance(value, (bool, str)):
        return ("const", repr(value))
    if isinstance(value, int):
        return ("int", value % 16 == 0, value == 1)
    if isinstance(value, float):
        return ("float",)
    return ("other", type(value).__name__)


def _spec_key(fn, args, kwargs) -> tuple:
    """An approximation of the key of Triton's per-specialization compile cache for one launch."""
    base = _base_function(fn)
    params = list(inspect.signature(base).parameters.values())
    do_not_specialize = set(getattr(fn, "do_not_specialize", ()) or ())
    described = []
    for i, value in enumerate(args):
        p = params[i] if i < len(params) else None
        plain = p is not None and (p.name in do_not_specialize or i in do_not_specialize)
        desc = _describe(value, p is not None and _is_constexpr(p.annotation))
        described.append(("int",) if plain and desc and desc[0] == "int" else desc)
    rest = tuple(sorted((k, _describe(v, True)) for k, v in kwargs.items() if k not in ("grid", "warmup")))
    return (base.__module__, base.__name__, tuple(described), rest)


def _tuning_key(tuner, args, kwargs) -> tuple:
    """Triton's autotuning key: the values of the ``key`` arguments and the dtypes of all tensor arguments."""
    named = {**dict(zip(tuner.arg_names, args)), **kwargs}
    named = {k: v for k, v in named.items() if k in tuner.arg_names}
    key = [named[k] for k in tuner.keys if k in named]
    key += [str(v.dtype) for v in named.values() if hasattr(v, "dtype")]
    base = _base_function(tuner)
    return (base.__module__, base.__name__, tuple(map(str, key)))


@contextlib.contextmanager
def _recorder():
    """Replace Triton's launches by a recorder; yields the list of (kind, fn, args, kwargs) launches."""
    from triton.runtime.autotuner import Autotuner
    from triton.runtime.jit import JITFunction

    launches: list[tuple] = []
    classes = [JITFunction]
    try:
        from triton.runtime.interpreter import InterpretedFunction

        classes.append(InterpretedFunction)
    except ImportError:  # pragma: no cover - a Triton without the interpreter
        pass

    def jit_run(self, *args, **kwargs):
        launches.append(("jit", self, args, kwargs))

    def tuned_run(self, *args, **kwargs):
        launches.append(("autotune", self, args, kwargs))

    saved = [(c, c.run) for c in classes] + [(Autotuner, Autotuner.run)]
    for c in classes:
        c.run = jit_run
    Autotuner.run = tuned_run
    try:
        yield launches
    finally:
        for c, run in saved:
            c.run = run


@contextlib.contextmanager
def _host_code_on_cpu(device: torch.device):
    """Let our host code and the bench's fla adapter accept CPU tensors without the interpreter (no kernel runs)."""
    import lablib.kernels._base as base  # the flag the kernels' host checks read
    import lablib.kernels.linear_attention as la  # the one lablib.bench reads

    saved = base.INTERPRETED, la.INTERPRETED, bench.FLA_NEEDS_CUDA
    if device.type != "cuda":
        base.INTERPRETED, la.INTERPRETED, bench.FLA_NEEDS_CUDA = True, True, False
    try:
        yield
    finally:
        base.INTERPRETED, la.INTERPRETED, bench.FLA_NEEDS_CUDA = saved


def _short_length(T: int, chunk: int) -> int:
    """A T for the recorded call: short, with T's divisibility by 16 (and by the chunk) kept."""
    if T <= 2 * max(chunk, 64):
        return T
    return 2 * max(chunk, 64) + T % 16


def estimate(cfg: bench.Config) -> pd.DataFrame:
    """One row per (case, pass, kernel launched): how many new compiles it costs, in the grid's order.

    Columns: op, implementation, owner (ours / fla), pass, T, D, B, kernel, kind (jit / autotune),
    configs (autotuned: the kernel's configs), compiles (new cold compiles at this point of the
    grid), autotuned_configs (configs timed here), error (the host code's exception, if any).
    """
    rows: list[dict] = []
    seen_specs: set = set()
    seen_tunings: set = set()
    with _host_code_on_cpu(cfg.device):
        impls = {}
        for op in cfg.ops:
            for name in (bench.TRITON, bench.FLA_NAMES[op]):
                try:
                    impls[op, name] = bench._build(name, cfg, op)
                except Exception as e:  # noqa: BLE001 - not installed, no CUDA...: nothing compiled for it
                    impls[op, name] = bench._reason(e)
        for op, T, D, name in bench.jobs(cfg):
            if (op, name) not in impls:  # the reference and SDPA compile no Triton kernel of ours or fla's
                continue
            impl = impls[op, name]
            B = max(1, cfg.tokens // T)
            base = dict(op=op, implementation=name, owner="ours" if name == bench.TRITON else "fla", T=T, D=D, B=B)
            if not isinstance(impl, bench.Impl):
                rows.append(dict(base, **{"pass": "-"}, kernel="", kind="", configs=0, compiles=0,
                                 autotuned_configs=0, error=f"not available: {impl}"))
                continue
            q, k, v, gates = bench._inputs(B, cfg.heads, _short_length(T, cfg.chunk_size), D, cfg.dtype, cfg.device,
                                           op=op)
            qi, ki, vi = (bench._to_layout(x, impl.layout) for x in (q, k, v))
            gi = bench._impl_gates(impl, op, gates, cfg.dtype)
            for p in bench.PASSES:
                error = ""
                with _recorder() as launches:
                    try:
                        if p == "fwd":
                            with torch.no_grad():
                                impl.fn(qi, ki, vi, *gi)
                        else:
                            leaves = [x.detach().clone().requires_grad_(True) for x in (qi, ki, vi, *gi)]
                            out = impl.fn(*leaves)
                            out.backward(torch.zeros_like(out))
                    except Exception as e:  # noqa: BLE001 - recorded; the launches before it still count
                        error = bench._reason(e)
                for kind, fn, args, kwargs in launches:
                    if kind == "autotune":
                        tuning = _tuning_key(fn, args, kwargs)
                        spec = (tuning, _spec_key(fn.fn, args, kwargs))
                        n_configs = len(fn.configs)
                        if tuning not in seen_tunings:
                            seen_tunings.add(tuning)
                            seen_specs.add(spec)
                            compiles, timed = n_configs, (n_configs if n_configs > 1 else 0)
                        elif spec not in seen_specs:  # the winner, at a new specialization
                            seen_specs.add(spec)
                            compiles, timed = 1, 0
                        else:
                            compiles, timed = 0, 0
                        kernel = tuning[1]
                    else:
                        spec = _spec_key(fn, args, kwargs)
                        compiles = 0 if spec in seen_specs else 1
                        seen_specs.add(spec)
                        n_configs, timed, kernel = 1, 0, spec[1]
                    rows.append(dict(base, **{"pass": p}, kernel=kernel, kind=kind, configs=n_configs,
                                     compiles=compiles, autotuned_configs=timed, error=error))
                if error and not launches:
                    rows.append(dict(base, **{"pass": p}, kernel="", kind="", configs=0, compiles=0,
                                     autotuned_configs=0, error=error))
    columns = ["op", "implementation", "owner", "pass", "T", "D", "B", "kernel", "kind", "configs", "compiles",
               "autotuned_configs", "error"]
    return pd.DataFrame(rows, columns=columns)


def _seconds(row_compiles: float, timed: float, owner: str, cfg: bench.Config) -> float:
    per = SECONDS[owner] * (FP32_COMPILE_FACTOR if cfg.dtype == torch.float32 else 1.0)
    warm, rep = (cfg.autotune_rep_ms / 4, cfg.autotune_rep_ms) if cfg.autotune_rep_ms else TRITON_AUTOTUNE_MS
    return row_compiles * per + timed * ((max(1.0, warm) + rep) / 1e3 + SECONDS["autotune_overhead"])


def summarize(df: pd.DataFrame, cfg: bench.Config) -> pd.DataFrame:
    """Per (owner, op, D): kernels launched, new compiles, autotuned configs and the estimated seconds."""
    if df.empty:
        return pd.DataFrame(columns=["owner", "op", "D", "kernels", "compiles", "autotuned_configs", "est_s"])
    g = df[df.kind != ""].groupby(["owner", "op", "D"], sort=False)
    out = g.agg(kernels=("kernel", "nunique"), compiles=("compiles", "sum"),
                autotuned_configs=("autotuned_configs", "sum")).reset_index()
    out["est_s"] = [_seconds(r.compiles, r.autotuned_configs, r.owner, cfg) for r in out.itertuples()]
    return out


def write_estimate(df: pd.DataFrame, cfg: bench.Config, out: Path) -> dict[str, Path]:
    """compile_estimate.csv (every recorded launch) and compile_estimate.md (the summary) in ``out``."""
    from lablib.kernels.linear_attention import INTERPRETED

    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "compile_estimate.csv", index=False)
    summary = summarize(df, cfg)
    totals = summary.groupby("owner").agg(compiles=("compiles", "sum"), autotuned_configs=("autotuned_configs", "sum"),
                                          est_s=("est_s", "sum"))
    total_s = float(totals.est_s.sum()) if len(totals) else 0.0
    fla_note = bench._fla_version()
    lines = [
        f"# Triton kernels this grid compiles (an estimate; {bench.device_name(cfg.device)})",
        "",
        "- grid: python -m lablib.bench attention " + bench._argv_text(cfg),
        f"- counted by recording every launch of our kernels and fla's ({fla_note}) on small tensors, no kernel run; "
        "a compile per new specialization, every config per new autotuning key",
        f"- seconds: {SECONDS['ours']:g} s per compile of ours, {SECONDS['fla']:g} s of fla's (bf16, triton 3.9, "
        f"sm_90, one core of the 2-core CI machine; x{FP32_COMPILE_FACTOR:g} for fp32) plus each autotuned "
        "config's timing; measured counts come from the run (gpu_run.sh: compiled_*.txt)",
    ]
    if INTERPRETED:
        lines.append("- TRITON_INTERPRET=1 here: this run compiles nothing; the counts are what a compiled run of "
                     "the same grid would compile")
    if cfg.device.type != "cuda":
        lines.append("- counted on the CPU: fla picks its config lists from the GPU it finds (shared memory, "
                     "architecture), so on a GPU the autotuned counts differ")
    errors = sorted(set(e for e in df.error if e))
    if errors:
        lines.append("- host code errors (their launches after the error are not counted): " + "; ".join(errors))
    lines += ["", "| owner | compiles | autotuned configs | est. s |", "|---|---|---|---|"]
    for owner, r in totals.iterrows():
        lines.append(f"| {owner} | {int(r.compiles)} | {int(r.autotuned_configs)} | {r.est_s:.0f} |")
    lines.append(f"| all | {int(totals.compiles.sum()) if len(totals) else 0} | "
                 f"{int(totals.autotuned_configs.sum()) if len(totals) else 0} | {total_s:.0f} |")
    lines += ["", "Per op and head dim:", "", "| owner | op | D | kernels | compiles | autotuned configs | est. s |",
              "|---|---|---|---|---|---|---|"]
    for r in summary.itertuples():
        lines.append(f"| {r.owner} | {r.op} | {r.D} | {r.kernels} | {r.compiles} | {r.autotuned_configs} | "
                     f"{r.est_s:.0f} |")
    (out / "compile_estimate.md").write_text("\n".join(lines) + "\n")
    return {"csv": out / "compile_estimate.csv", "md": out / "compile_estimate.md"}
