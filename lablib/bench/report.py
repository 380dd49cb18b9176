"""The report: the rows as a table, CSV, Markdown and an Altair chart.

Outputs in ``--out``: ``attention.csv`` (every row and column; ``op`` first), ``attention.md``
(header with device, versions, date and the FLOP models, then one table per op),
``attention.html`` (Altair chart, one row of panels per op, vega inlined, works offline) and
``attention.png`` when vl-convert can draw it. ``write_outputs`` writes them (each file beside,
then renamed); ``display_table`` is the table's columns, ``attention_chart`` the chart and
``_header(cfg)`` the Markdown header, whose last line is the command that reproduces the run.
"""

from __future__ import annotations

import datetime
import platform
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import torch

from lablib.bench.costs import FLOP_TEXT, device_name, peak_for
from lablib.bench.inputs import CHECK_TOL, SOFTMAX_CHECK_ROWS
from lablib.bench.registry import (
    DTYPES, FLA_CHUNK, FLA_ORDER, OP_TITLES, OPS, PASSES, REF, SDPA, TRITON, _fla_version, _reason,
)

if TYPE_CHECKING:
    from lablib.bench.runner import Config


def _role(name: str) -> str:
    """The implementation's role, the same across ops (fla's function name differs per op)."""
    return "fla (flash-linear-attention)" if name.startswith("fla ") else name


ROLES = (REF, TRITON, SDPA, "fla (flash-linear-attention)")


def display_table(df: pd.DataFrame) -> pd.DataFrame:
    """The columns worth reading, rounded, sorted by op, pass, D, T and implementation."""
    ops = df["op"] if "op" in df else pd.Series("linear", index=df.index)
    t = df.assign(
        _op=ops.map({o: i for i, o in enumerate(OPS)}),
        _o=df.implementation.map(lambda n: ROLES.index(_role(n))),
        _p=df["pass"].map({p: i for i, p in enumerate(PASSES)}),
    )
    t = t.sort_values(["_op", "_p", "D", "T", "_o"])

    def num(x, fmt):
        return "n/a" if x != x else format(x, fmt)

    return pd.DataFrame({
        "op": ops.loc[t.index],
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


def _sections(df: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """(heading, table without the op column) for each op present, in OPS order."""
    table = display_table(df)
    return [
        (f"## {op}: {OP_TITLES[op]}", table[table.op == op].drop(columns="op"))
        for op in OPS if (table.op == op).any()
    ]


def attention_chart(df: pd.DataFrame):
    """Median time against T, log-log, one line per implementation; rows: op, columns: pass and head dim D."""
    import altair as alt

    d = df[df.ms.notna() & (df.ms > 0)]
    if d.empty:
        return None
    d = d.assign(
        op=d["op"] if "op" in d else "linear",
        who=d.implementation.map(_role),
        panel=d["pass"] + ", D=" + d.D.astype(str),
    )[["op", "implementation", "who", "pass", "panel", "T", "D", "B", "ms", "tflops", "gbps"]]
    panels = [f"{p}, D={D}" for p in PASSES for D in sorted(d.D.unique())]
    return (
        alt.Chart(d)
        .mark_line(point=True)
        .encode(
            x=alt.X("T:Q", scale=alt.Scale(type="log", base=2), title="sequence length T",
                    axis=alt.Axis(values=sorted(int(t) for t in d["T"].unique()), format="d")),
            y=alt.Y("ms:Q", scale=alt.Scale(type="log"), axis=alt.Axis(format="~g"), title="ms per call (median)"),
            color=alt.Color("who:N", title="implementation", scale=alt.Scale(domain=list(ROLES)),
                            legend=alt.Legend(labelLimit=400)),
            tooltip=["op:N", "implementation:N", "pass:N", "T:Q", "B:Q", "D:Q", alt.Tooltip("ms:Q", format=".4g"),
                     alt.Tooltip("tflops:Q", format=".3g", title="TFLOP/s"), alt.Tooltip("gbps:Q", format=".4g", title="GB/s")],
        )
        .properties(width=260, height=180)
        .facet(row=alt.Row("op:N", title=None, sort=[o for o in OPS if o in set(d.op)]),
               column=alt.Column("panel:N", title=None, sort=panels))
        .resolve_scale(y="independent")
        .properties(title="Causal attention kernels, B*T tokens fixed: time vs sequence length")
    )


def write_outputs(df: pd.DataFrame, header: list[str], out: Path, chart: bool = True) -> dict[str, Path]:
    """attention.csv, .md, .html and (when vl-convert can) .png in ``out``; returns what was written.

    ``chart=False`` writes the CSV and the table only (the partial outputs of a running grid). Each
    file is written beside and then renamed, so a reader (or a kill) never finds half a file.
    """
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    _write_text(out / "attention.csv", df.to_csv(index=False))
    written["csv"] = out / "attention.csv"
    md = "\n".join(header) + "\n"
    for heading, table in _sections(df):
        md += f"\n{heading}\n\n{_markdown(table)}\n"
    _write_text(out / "attention.md", md)
    written["md"] = out / "attention.md"
    if not chart:
        return written
    try:
        chart = attention_chart(df)
    except ImportError as e:  # no altair (a bare GPU machine's Python): the CSV and the table only
        print(f"[bench] no chart ({_reason(e)})", file=sys.stderr)
        return written
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


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


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
    flop_text = "; ".join(FLOP_TEXT[o] for o in cfg.ops)
    run = []
    if cfg.budget_s is not None or cfg.case_timeout is not None:
        run.append(f"grid budget {'none' if cfg.budget_s is None else format(cfg.budget_s, 'g') + ' s'}, case cap "
                   f"{'none' if cfg.case_timeout is None else format(cfg.case_timeout, 'g') + ' s'} (compilation "
                   "included; rows 'n/a (not run / timed out ...)' past them)")
    if cfg.fla_last:
        run.append(f"fla timed after the others, op by op: {', '.join(o for o in FLA_ORDER if o in cfg.ops)}")
    if cfg.autotune_rep_ms is not None:
        run.append(f"fla's autotuners time each config for {cfg.autotune_rep_ms:g} ms (Triton's default 100 ms; "
                   "every config is still compiled and timed)")
    lines = [
        f"# Attention benchmark: {dev}, torch {torch.__version__}, triton {triton_version}, "
        f"{datetime.datetime.now().isoformat(timespec='seconds')}",
        "",
        f"- ops: {', '.join(cfg.ops)}; dtype {dtype_name} (gates fp32"
        f"{'' if cfg.dtype == torch.float32 else ', values rounded to ' + dtype_name}); "
        f"B*T = {cfg.tokens} tokens (B = tokens // T); H = {cfg.heads}; D = D_k = D_v in {cfg.dims}; "
        f"T in {cfg.lengths}; chunk C = {cfg.chunk_size} (fla: {FLA_CHUNK})",
        f"- fla (flash-linear-attention) {_fla_version()}; python {platform.python_version()}",
        f"- peak: {peak_text}",
        "- ms: median of the repeats (CUDA events on GPU, perf_counter on CPU); fwd+bwd includes the forward "
        "and the gradients of q, k, v and the gates",
        f"- forward FLOPs: {flop_text}; SDPA causal 2BHT^2(D_k+D_v)/2; backward = 2x forward",
        "- bytes: q,k,v read + o written at the input dtype, gates read as fp32 (+ do read, dq,dk,dv and gate "
        "gradients written)",
        "- max_err: max|out - ref| / max|ref| against the op's float64 lablib chunkwise reference on batch 0 "
        f"(SDPA: softmax_attention, first min(T, {SOFTMAX_CHECK_ROWS}) rows); status 'inaccurate' above "
        f"{CHECK_TOL[cfg.dtype]:g}",
    ]
    if run:
        lines.append("- run: " + "; ".join(run))
    return lines + ["- produced by: python -m lablib.bench attention " + _argv_text(cfg)]


def _argv_text(cfg: Config) -> str:
    dtype_name = {v: k for k, v in DTYPES.items()}[cfg.dtype]
    text = (
        f"--op {','.join(cfg.ops)} --device {cfg.device.type} --dtype {dtype_name} --tokens {cfg.tokens} "
        f"--lengths {','.join(map(str, cfg.lengths))} --heads {cfg.heads} --dims {','.join(map(str, cfg.dims))} "
        f"--chunk-size {cfg.chunk_size} --warmup {cfg.warmup} --repeats {cfg.repeats} --budget {cfg.budget:g} "
        f"--ref-max-chunks {cfg.ref_max_chunks}"
    )
    if cfg.budget_s is not None:
        text += f" --budget-s {cfg.budget_s:g}"
    if cfg.case_timeout is not None:
        text += f" --case-timeout {cfg.case_timeout:g}"
    if cfg.fla_last:
        text += " --fla-last"
    if cfg.autotune_rep_ms is not None:
        text += f" --autotune-rep-ms {cfg.autotune_rep_ms:g}"
    return text
