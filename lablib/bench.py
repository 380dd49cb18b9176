"""Side-by-side attention benchmark: ``python -m lablib.bench attention [options]``.

One run times, for every sequence length T and head dim D, the forward pass and forward+backward
of four implementations of causal attention over the same number of tokens (B = max(1, tokens // T), so
B * T is fixed and every point does the same amount of linear-attention work):

* ``pytorch chunkwise (lablib reference)``: ``lablib.attention.linear_attention_chunkwise`` with
  ``feature_map="identity", normalize=False`` (a Python loop over chunks; it also runs
  ``check_qkv``'s NaN scan on every call, which is part of its cost).
* ``triton chunkwise (lablib.kernels)``: ``lablib.kernels.linear_attention.chunk_linear_attention``
  with ``scale=1`` (the same function as the reference).
* ``sdpa causal (softmax, FlashAttention path)``:
  ``torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)``; softmax attention,
  a different (quadratic) function, shown as the baseline linear attention has to beat.
* ``fla chunk_linear_attn``: ``fla.ops.linear_attn.chunk_linear_attn`` from flash-linear-attention
  (imported lazily; "not installed" when it is absent), called with ``scale=1.0,
  normalize=False`` so that it computes what the reference does. fla takes (B, T, H, D) tensors
  (``head_first=False``; passed explicitly when the installed version still has the argument):
  its inputs are made in that layout *before* timing, so no transpose is timed; its output is
  transposed back to (B, H, T, D) only for the correctness check.

Each implementation runs in its own ``try``: an error (out of memory, not installed, no CUDA)
records a row with ``status`` "n/a (reason)" and the run goes on.

Correctness. Before timing a (T, D) configuration, each implementation's forward output is compared
with a float64 lablib reference on batch element 0: linear attention against
``linear_attention_chunkwise`` (identity map, unnormalized) over all T rows; SDPA against
``lablib.attention.softmax_attention(causal=True)`` on the first min(T, 2048) query rows (causal
rows t < R depend only on keys and values t < R, so the prefix is an exact check that does not
need a T x T matrix). ``max_err`` = max |out - ref| / max |ref| (``max_abs_err`` unscaled).

Timing. CUDA: CUDA events around each call, after warm-up calls, the device synchronized after
each repeat; CPU: ``time.perf_counter``. ``ms`` is the median of the repeats (``ms_min`` the
fastest); slow cases get fewer repeats (at least 3) so one case stays within ``--budget``
seconds. Forward runs under ``torch.no_grad``; forward+backward is ``fn(q, k, v).backward(do)``
on leaf inputs, grads reset to ``None`` each call. Inputs: q, k ~ N(0, 1/sqrt(D)) (so q.k ~ N(0, 1)),
v ~ N(0, 1), D_k = D_v = D.

Skips. The PyTorch reference is skipped when T / chunk_size > ``--ref-max-chunks`` (default 256,
i.e. T > 16384 at C = 64): it issues about ten small kernels per chunk from Python, so beyond
that its time is launch overhead and each repeat takes seconds. SDPA and the others are tried at
every size; an out-of-memory error becomes "n/a (out of memory)" (and the CUDA cache is emptied).

FLOPs (multiply-add = 2 FLOPs; with chunk size C, D_k = D_v = D):

* chunkwise linear attention, forward: ``2 * B * H * (T*C*D_k + T*C*D_v + 2*T*D_k*D_v)``
  (per chunk Q K^T and the masked scores times V, C x C x D each; Q S and K^T V, C x D x D each;
  the masked half of the C x C block is counted, as the kernels compute it). fla's chunk kernels
  use C = 64.
* SDPA causal, forward: ``2 * B * H * T * T * (D_k + D_v) / 2`` (the causal half of Q K^T and P V).
* backward is counted as 2x forward, so forward+backward = 3x forward.

Bytes (the compulsory traffic, at the input dtype): forward reads q, k, v and writes o:
``B*H*T*(2*D_k + 2*D_v) * itemsize``; forward+backward adds reading q, k, v, do and writing
dq, dk, dv: ``B*H*T*(6*D_k + 5*D_v) * itemsize`` in all. Intermediate traffic (states, scores) is
not counted, so GB/s is a lower bound on what the hardware moved.

Peak. ``torch.cuda.get_device_name`` is matched against a small table of dense bf16 tensor-core
TFLOP/s and HBM GB/s (H100 SXM 989 / 3350, H200 989 / 4800, A100 312 / 2039); the percentages are
always relative to the bf16 dense peak (fp32 inputs use TF32 or fp32 units, whose peak is lower).
Other devices, and the CPU, get "n/a".

Outputs in ``--out``: ``attention.csv`` (every column), ``attention.md`` (header with device,
versions and date, then the table), ``attention.html`` (Altair chart, vega inlined, works offline)
and ``attention.png`` when vl-convert can draw it.

``--smoke``: CPU, fp32, tokens 256, T in {64, 128}, 2 heads, D = 16, chunk 32, 3 repeats; with
``TRITON_INTERPRET=1`` the Triton kernel runs in the interpreter and the whole run takes seconds.
Without the interpreter, on the CPU the Triton row is "n/a (no CUDA; set TRITON_INTERPRET=1)".
Explicit size flags override the smoke (and full) defaults.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import inspect
import math
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd
import torch

__all__ = ["main", "run_attention", "attention_chart", "peak_for", "IMPLEMENTATIONS"]

REF = "pytorch chunkwise (lablib reference)"
TRITON = "triton chunkwise (lablib.kernels)"
SDPA = "sdpa causal (softmax, FlashAttention path)"
FLA = "fla chunk_linear_attn"
IMPLEMENTATIONS = (REF, TRITON, SDPA, FLA)
PASSES = ("fwd", "fwd+bwd")

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}

FULL = dict(tokens=32768, lengths=[1024, 2048, 4096, 8192, 16384, 32768], heads=16, dims=[64, 128],
            dtype="bf16", chunk_size=64, warmup=5, repeats=20)
SMOKE = dict(tokens=256, lengths=[64, 128], heads=2, dims=[16], dtype="fp32", chunk_size=32, warmup=1, repeats=3)

SOFTMAX_CHECK_ROWS = 2048  # SDPA is checked on this many leading query rows (a T x T reference is too big)
FLA_CHUNK = 64  # fla's chunk kernels' block size, for its FLOP count

# (test on the device name, label, dense bf16 tensor-core TFLOP/s, HBM GB/s)
PEAKS: list[tuple[Callable[[str], bool], str, float, float]] = [
    (lambda n: "H200" in n, "H200", 989.0, 4800.0),
    (lambda n: "H100" in n and "PCIE" not in n.upper() and "NVL" not in n.upper(), "H100 SXM", 989.0, 3350.0),
    (lambda n: "A100" in n, "A100 (80GB SXM figures)", 312.0, 2039.0),
]


def peak_for(device_name: str) -> tuple[str, float, float] | None:
    """(label, bf16 dense TFLOP/s, HBM GB/s) for a known GPU name, else None."""
    for test, label, tflops, gbps in PEAKS:
        if test(device_name):
            return label, tflops, gbps
    return None


class NotAvailable(Exception):
    """An implementation that cannot run here; the message is the row's reason."""


# --------------------------------------------------------------------------------------------
# Implementations: each builds fn(q, k, v) -> o, taking and returning its native layout
# --------------------------------------------------------------------------------------------


@dataclass
class Impl:
    name: str
    fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
    kind: str  # "linear" (checked against the linear reference) or "softmax"
    layout: str  # "BHTD" or "BTHD" (fla): the inputs' layout, made before timing
    chunk: int | None
    note: str = ""


def _build(name: str, cfg: "Config") -> Impl:
    """The callable for one implementation, or NotAvailable with the reason."""
    C = cfg.chunk_size
    if name == REF:
        from lablib.attention import linear_attention_chunkwise

        def ref(q, k, v):
            return linear_attention_chunkwise(q, k, v, feature_map="identity", normalize=False, chunk_size=C)

        return Impl(name, ref, "linear", "BHTD", C)

    if name == TRITON:
        from lablib.kernels.linear_attention import INTERPRETED, chunk_linear_attention

        if cfg.device.type != "cuda" and not INTERPRETED:
            raise NotAvailable("no CUDA; set TRITON_INTERPRET=1")
        if cfg.device.type == "cuda" and INTERPRETED:
            raise NotAvailable("TRITON_INTERPRET=1 on a CUDA run; unset it to time compiled kernels")

        def tri(q, k, v):
            return chunk_linear_attention(q, k, v, scale=1.0, chunk_size=C)

        return Impl(name, tri, "linear", "BHTD", C, "Triton interpreter" if INTERPRETED else "")

    if name == SDPA:
        import torch.nn.functional as F

        def sdpa(q, k, v):
            return F.scaled_dot_product_attention(q, k, v, is_causal=True)

        return Impl(name, sdpa, "softmax", "BHTD", None)

    if name == FLA:
        try:
            from fla.ops.linear_attn import chunk_linear_attn
        except ImportError as e:
            raise NotAvailable("not installed") from e
        except Exception as e:  # installed but broken here (e.g. needs a GPU at import)
            raise NotAvailable(f"import failed: {e.__class__.__name__}: {_short(e)}")
        params = inspect.signature(chunk_linear_attn).parameters
        if "normalize" not in params:
            raise NotAvailable("installed fla's chunk_linear_attn has no normalize=False; it would compute another function")
        kwargs = dict(scale=1.0, normalize=False)
        if "head_first" in params:
            kwargs["head_first"] = False
        if cfg.device.type != "cuda":
            raise NotAvailable("fla's Triton kernels need CUDA")

        def fla(q, k, v):
            out = chunk_linear_attn(q, k, v, **kwargs)
            return out[0] if isinstance(out, tuple) else out

        return Impl(name, fla, "linear", "BTHD", FLA_CHUNK, f"fla {_version('flash-linear-attention')}, (B,T,H,D) inputs")

    raise ValueError(f"unknown implementation {name!r}")


# --------------------------------------------------------------------------------------------
# Cost model
# --------------------------------------------------------------------------------------------


def flops(kind: str, pass_: str, B: int, H: int, T: int, d_k: int, d_v: int, chunk: int | None) -> float:
    """FLOPs of one call (see the module docstring): backward = 2x forward."""
    if kind == "linear":
        fwd = 2.0 * B * H * (T * chunk * d_k + T * chunk * d_v + 2 * T * d_k * d_v)
    else:
        fwd = 2.0 * B * H * T * T * (d_k + d_v) / 2
    return fwd if pass_ == "fwd" else 3 * fwd


def nbytes(pass_: str, B: int, H: int, T: int, d_k: int, d_v: int, itemsize: int) -> float:
    """Compulsory bytes of one call: q, k, v read and o written (+ do read, dq, dk, dv written)."""
    per_token = 2 * d_k + 2 * d_v if pass_ == "fwd" else 6 * d_k + 5 * d_v
    return float(B * H * T * per_token * itemsize)


# --------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


@dataclass
class Config:
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


def _short(e: BaseException, n: int = 160) -> str:
    text = " ".join(str(e).split())
    return text if len(text) <= n else text[: n - 3] + "..."


def _is_oom(e: BaseException) -> bool:
    return isinstance(e, torch.OutOfMemoryError) or "out of memory" in str(e).lower() or "can't allocate" in str(e).lower()


def _reason(e: BaseException) -> str:
    if isinstance(e, NotAvailable):
        return str(e)
    if _is_oom(e):
        return "out of memory"
    return f"{e.__class__.__name__}: {_short(e)}"


def _free(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.machine() or 'unknown'}, {torch.get_num_threads()} threads)"


def _inputs(B, H, T, D, dtype, device, seed=0):
    """q, k ~ N(0, 1/sqrt(D)), v ~ N(0, 1), (B, H, T, D), made on the device."""
    g = torch.Generator(device=device).manual_seed(seed)
    q, k, v = (torch.randn(B, H, T, D, generator=g, device=device, dtype=torch.float32) for _ in range(3))
    s = D**-0.25
    return (q * s).to(dtype), (k * s).to(dtype), v.to(dtype)


def _to_layout(x: torch.Tensor, layout: str) -> torch.Tensor:
    return x.transpose(1, 2).contiguous() if layout == "BTHD" else x


def _from_layout(x: torch.Tensor, layout: str) -> torch.Tensor:
    return x.transpose(1, 2) if layout == "BTHD" else x


def _references(q, k, v, chunk_size: int) -> dict[str, tuple[torch.Tensor, int]]:
    """float64 references on batch element 0: kind -> (output rows checked, number of rows)."""
    from lablib.attention import linear_attention_chunkwise, softmax_attention

    q0, k0, v0 = (x[:1].double() for x in (q, k, v))
    T = q.shape[2]
    R = min(T, SOFTMAX_CHECK_ROWS)
    with torch.no_grad():
        lin = linear_attention_chunkwise(q0, k0, v0, feature_map="identity", normalize=False, chunk_size=chunk_size)
        soft = softmax_attention(q0[:, :, :R], k0[:, :, :R], v0[:, :, :R], causal=True)
    return {"linear": (lin, T), "softmax": (soft, R)}


def _errors(out: torch.Tensor, ref: torch.Tensor, rows: int) -> tuple[float, float]:
    diff = (out[:1, :, :rows].double() - ref).abs().max().item()
    scale = ref.abs().max().item()
    return diff / scale if scale > 0 else diff, diff


def run_attention(cfg: Config) -> pd.DataFrame:
    """Every (implementation, T, D, pass) as one row of a DataFrame; see the module docstring."""
    from tqdm.auto import tqdm

    dev, dtype = cfg.device, cfg.dtype
    itemsize = torch.empty((), dtype=dtype).element_size()
    dtype_name = {v: k for k, v in DTYPES.items()}[dtype]
    peak = peak_for(device_name(dev)) if dev.type == "cuda" else None

    impls: dict[str, Impl | str] = {}
    for name in IMPLEMENTATIONS:
        try:
            impls[name] = _build(name, cfg)
        except Exception as e:  # not installed, no CUDA, ...: every row of it is n/a
            impls[name] = _reason(e)
    fla_hint = "pip install flash-linear-attention" if impls[FLA] == "not installed" else ""

    rows: list[dict] = []
    jobs = [(T, D, name) for T in cfg.lengths for D in cfg.dims for name in IMPLEMENTATIONS]
    bar = tqdm(jobs, desc="attention", unit="case", disable=not cfg.progress, file=sys.stderr)
    refs: dict | None = None
    key = None
    for T, D, name in bar:
        bar.set_postfix_str(f"T={T} D={D} {name.split(' (')[0]}")
        B = max(1, cfg.tokens // T)
        impl = impls[name]
        kind = impl.kind if isinstance(impl, Impl) else ("softmax" if name == SDPA else "linear")
        chunk = impl.chunk if isinstance(impl, Impl) else (None if name == SDPA else cfg.chunk_size)
        base = dict(
            implementation=name, device=device_name(dev), dtype=dtype_name, B=B, T=T, H=cfg.heads, D=D,
            chunk=chunk, layout=impl.layout if isinstance(impl, Impl) else "",
        )
        blank = dict(ms=math.nan, ms_min=math.nan, repeats=0, max_err=math.nan, max_abs_err=math.nan,
                     check_ref="", peak_mem_gib=math.nan,
                     note=impl.note if isinstance(impl, Impl) else (fla_hint if name == FLA else ""))

        def add(pass_, status, **values):
            fl = flops(kind, pass_, B, cfg.heads, T, D, D, chunk or cfg.chunk_size)
            by = nbytes(pass_, B, cfg.heads, T, D, D, itemsize)
            row = {**base, "pass": pass_, **blank, **values, "flops": fl, "bytes": by, "status": status}
            ms = row["ms"]
            row["tflops"] = fl / (ms * 1e-3) / 1e12 if ms == ms else math.nan
            row["gbps"] = by / (ms * 1e-3) / 1e9 if ms == ms else math.nan
            row["tflops_pct_peak"] = 100 * row["tflops"] / peak[1] if peak and ms == ms else math.nan
            row["gbps_pct_peak"] = 100 * row["gbps"] / peak[2] if peak and ms == ms else math.nan
            rows.append(row)

        if not isinstance(impl, Impl):
            for p in PASSES:
                add(p, f"n/a ({impl})")
            continue
        if name == REF and T / cfg.chunk_size > cfg.ref_max_chunks:
            for p in PASSES:
                add(p, f"n/a (skipped: T/C = {T // cfg.chunk_size} chunks > --ref-max-chunks {cfg.ref_max_chunks})")
            continue

        try:
            if key != (T, D):  # new shape: new inputs, and the float64 references for the checks
                refs = q = k = v = None
                _free(dev)
                q, k, v = _inputs(B, cfg.heads, T, D, dtype, dev)
                refs = _references(q, k, v, cfg.chunk_size)
                key = (T, D)
            qi, ki, vi = (_to_layout(x, impl.layout) for x in (q, k, v))
            # 1. correctness of the forward on this shape, before any timing
            with torch.no_grad():
                out = _from_layout(impl.fn(qi, ki, vi), impl.layout)
            ref, nrows = refs[impl.kind]
            err, abs_err = _errors(out, ref, nrows)
            check = f"{'linear_attention_chunkwise' if impl.kind == 'linear' else 'softmax_attention'} fp64, b=0, rows<{nrows}"
            do = torch.randn_like(out).to(dtype)
            do = _to_layout(do, impl.layout)
            del out
        except Exception as e:
            for p in PASSES:
                add(p, f"n/a ({_reason(e)})")
            _free(dev)
            continue

        for p in PASSES:
            try:
                if p == "fwd":

                    def call(qi=qi, ki=ki, vi=vi):
                        with torch.no_grad():
                            impl.fn(qi, ki, vi)

                else:
                    leaves = [x.detach().clone().requires_grad_(True) for x in (qi, ki, vi)]

                    def call(leaves=leaves):
                        for x in leaves:
                            x.grad = None
                        impl.fn(*leaves).backward(do)

                if dev.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(dev)
                times = time_call(call, dev, warmup=cfg.warmup, repeats=cfg.repeats, budget=cfg.budget)
                mem = torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else math.nan
                add(p, "ok", ms=1e3 * statistics.median(times), ms_min=1e3 * min(times), repeats=len(times),
                    max_err=err, max_abs_err=abs_err, check_ref=check, peak_mem_gib=mem)
            except Exception as e:
                add(p, f"n/a ({_reason(e)})", max_err=err, max_abs_err=abs_err, check_ref=check)
                _free(dev)
            finally:
                call = leaves = None
        qi = ki = vi = do = None
    bar.close()
    columns = [
        "implementation", "pass", "device", "dtype", "B", "T", "H", "D", "chunk", "layout", "ms", "ms_min", "repeats",
        "flops", "bytes", "tflops", "gbps", "tflops_pct_peak", "gbps_pct_peak", "max_err", "max_abs_err", "check_ref",
        "peak_mem_gib", "status", "note",
    ]
    df = pd.DataFrame(rows, columns=columns)
    return df.astype({"chunk": "Int64"})


# --------------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------------


def display_table(df: pd.DataFrame) -> pd.DataFrame:
    """The columns worth reading, rounded, sorted by pass, D, T and implementation."""
    order = {n: i for i, n in enumerate(IMPLEMENTATIONS)}
    t = df.assign(_o=df.implementation.map(order), _p=df["pass"].map({p: i for i, p in enumerate(PASSES)}))
    t = t.sort_values(["_p", "D", "T", "_o"])

    def num(x, fmt):
        return "n/a" if x != x else format(x, fmt)

    return pd.DataFrame({
        "pass": t["pass"],
        "D": t.D,
        "T": t["T"],
        "B": t.B,
        "implementation": t.implementation,
        "ms": [num(x, ".4g") for x in t.ms],
        "TFLOP/s": [num(x, ".3g") for x in t.tflops],
        "GB/s": [num(x, ".4g") for x in t.gbps],
        "%peak FLOP": [num(x, ".1f") for x in t.tflops_pct_peak],
        "%peak BW": [num(x, ".1f") for x in t.gbps_pct_peak],
        "max_err": [num(x, ".1e") for x in t.max_err],
        "status": t.status,
    })


def _markdown(table: pd.DataFrame) -> str:
    try:
        return table.to_markdown(index=False)
    except ImportError:  # no tabulate: a plain pipe table
        cells = [list(map(str, table.columns))] + [[str(x) for x in r] for r in table.itertuples(index=False)]
        lines = ["| " + " | ".join(r) + " |" for r in cells]
        lines.insert(1, "|" + "|".join("---" for _ in table.columns) + "|")
        return "\n".join(lines)


def attention_chart(df: pd.DataFrame):
    """Median time against T, log-log, one line per implementation; rows: pass, columns: head dim D."""
    import altair as alt

    d = df[df.ms.notna() & (df.ms > 0)][["implementation", "pass", "T", "D", "B", "ms", "tflops", "gbps"]]
    if d.empty:
        return None
    return (
        alt.Chart(d)
        .mark_line(point=True)
        .encode(
            x=alt.X("T:Q", scale=alt.Scale(type="log", base=2), title="sequence length T",
                    axis=alt.Axis(values=sorted(int(t) for t in d["T"].unique()), format="d")),
            y=alt.Y("ms:Q", scale=alt.Scale(type="log"), axis=alt.Axis(format="~g"), title="ms per call (median)"),
            color=alt.Color("implementation:N", title="implementation", scale=alt.Scale(domain=list(IMPLEMENTATIONS)),
                            legend=alt.Legend(labelLimit=400)),
            tooltip=["implementation:N", "pass:N", "T:Q", "B:Q", "D:Q", alt.Tooltip("ms:Q", format=".4g"),
                     alt.Tooltip("tflops:Q", format=".3g", title="TFLOP/s"), alt.Tooltip("gbps:Q", format=".4g", title="GB/s")],
        )
        .properties(width=320, height=220)
        .facet(row=alt.Row("pass:N", title=None, sort=list(PASSES)), column=alt.Column("D:O", title="head dim D"))
        .properties(title="Causal attention, B*T tokens fixed: time vs sequence length")
    )


def write_outputs(df: pd.DataFrame, header: list[str], out: Path) -> dict[str, Path]:
    """attention.csv, .md, .html and (when vl-convert can) .png in ``out``; returns what was written."""
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    df.to_csv(out / "attention.csv", index=False)
    written["csv"] = out / "attention.csv"
    md = "\n".join(header) + "\n\n" + _markdown(display_table(df)) + "\n"
    (out / "attention.md").write_text(md)
    written["md"] = out / "attention.md"
    chart = attention_chart(df)
    if chart is None:
        return written
    try:
        chart.save(str(out / "attention.html"), inline=True)  # vega bundled by vl-convert: offline
    except Exception as e:
        print(f"[bench] inline HTML failed ({_reason(e)}); writing HTML that loads vega from a CDN", file=sys.stderr)
        chart.save(str(out / "attention.html"))
    written["html"] = out / "attention.html"
    try:
        import vl_convert

        (out / "attention.png").write_bytes(vl_convert.vegalite_to_png(chart.to_dict(), scale=2))
        written["png"] = out / "attention.png"
    except Exception as e:
        print(f"[bench] no PNG ({_reason(e)})", file=sys.stderr)
    return written


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def _ints(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lablib.bench", description="lablib benchmarks")
    sub = p.add_subparsers(dest="bench", required=True)
    a = sub.add_parser("attention", help="causal linear attention (reference, Triton, fla) and SDPA, fwd and fwd+bwd")
    a.add_argument("--device", choices=["cuda", "cpu"], help="default: cuda when available (cpu with --smoke)")
    a.add_argument("--dtype", choices=list(DTYPES), help=f"default {FULL['dtype']} ({SMOKE['dtype']} with --smoke)")
    a.add_argument("--tokens", type=int, help=f"B*T, fixed across lengths (default {FULL['tokens']})")
    a.add_argument("--lengths", type=_ints, help="comma-separated T values (default 1024,...,32768)")
    a.add_argument("--heads", type=int, help=f"H (default {FULL['heads']})")
    a.add_argument("--dims", type=_ints, help="comma-separated head dims D = D_k = D_v (default 64,128)")
    a.add_argument("--chunk-size", type=int, help=f"chunk C of the reference and Triton kernel (default {FULL['chunk_size']})")
    a.add_argument("--warmup", type=int, help=f"warm-up calls per case (default {FULL['warmup']})")
    a.add_argument("--repeats", type=int, help=f"timed calls per case, median reported (default {FULL['repeats']})")
    a.add_argument("--budget", type=float, default=5.0, help="seconds of timed calls per case; fewer repeats (>= 3) when slow")
    a.add_argument("--ref-max-chunks", type=int, default=256, help="skip the PyTorch reference when T / C exceeds this")
    a.add_argument("--out", type=Path, default=Path("bench_out"), help="directory for attention.{csv,md,html,png}")
    a.add_argument("--smoke", action="store_true", help="tiny CPU fp32 sizes that run in seconds (TRITON_INTERPRET=1)")
    a.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _config(args: argparse.Namespace) -> Config:
    defaults = SMOKE if args.smoke else FULL
    pick = lambda name: getattr(args, name) if getattr(args, name) is not None else defaults[name]  # noqa: E731
    if args.device is not None:
        device = args.device
    else:
        device = "cpu" if args.smoke or not torch.cuda.is_available() else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch.cuda.is_available() is False here")
    cfg = Config(
        device=torch.device(device), dtype=DTYPES[pick("dtype")], tokens=pick("tokens"), lengths=pick("lengths"),
        heads=pick("heads"), dims=pick("dims"), chunk_size=pick("chunk_size"), warmup=max(1, pick("warmup")),
        repeats=max(1, pick("repeats")), budget=args.budget, ref_max_chunks=args.ref_max_chunks,
        progress=not args.no_progress,
    )
    if cfg.chunk_size < 16 or cfg.chunk_size & (cfg.chunk_size - 1):
        raise SystemExit(f"--chunk-size must be a power of two >= 16 (the Triton kernel's tile); got {cfg.chunk_size}")
    return cfg


def _header(cfg: Config) -> list[str]:
    dev = device_name(cfg.device)
    peak = peak_for(dev) if cfg.device.type == "cuda" else None
    dtype_name = {v: k for k, v in DTYPES.items()}[cfg.dtype]
    try:
        import triton

        triton_version = triton.__version__
    except Exception:
        triton_version = "not installed"
    peak_text = f"{peak[0]}: {peak[1]:g} TFLOP/s bf16 dense, {peak[2]:g} GB/s" if peak else "n/a (device not in the table)"
    return [
        f"# Attention benchmark: {dev}, torch {torch.__version__}, triton {triton_version}, "
        f"{datetime.datetime.now().isoformat(timespec='seconds')}",
        "",
        f"- dtype {dtype_name}; B*T = {cfg.tokens} tokens (B = tokens // T); H = {cfg.heads}; D = D_k = D_v in "
        f"{cfg.dims}; T in {cfg.lengths}; chunk C = {cfg.chunk_size} (fla: {FLA_CHUNK})",
        f"- fla (flash-linear-attention) {_version('flash-linear-attention')}; python {platform.python_version()}",
        f"- peak: {peak_text}",
        "- ms: median of the repeats (CUDA events on GPU, perf_counter on CPU); fwd+bwd includes the forward",
        "- FLOPs: linear 2BH(TCD_k + TCD_v + 2TD_kD_v), SDPA causal 2BHT^2(D_k+D_v)/2, backward = 2x forward; "
        "bytes: q,k,v read + o written (+ do read, dq,dk,dv written)",
        "- max_err: max|out - ref| / max|ref| against a float64 lablib reference on batch 0 (SDPA: first "
        f"min(T, {SOFTMAX_CHECK_ROWS}) rows)",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(None if argv is None else [str(a) for a in argv])
    cfg = _config(args)
    header = _header(cfg)
    df = run_attention(cfg)
    written = write_outputs(df, header, Path(args.out))
    print("\n".join(header))
    print()
    with pd.option_context("display.max_colwidth", 80, "display.width", 250):
        print(display_table(df).to_string(index=False))
    print()
    print("wrote " + ", ".join(str(p) for p in written.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
