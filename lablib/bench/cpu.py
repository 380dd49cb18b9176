"""The CPU benchmark: every PyTorch backend of every op beside fla's naive forms and causal SDPA.

``python -m lablib.ops --bench [--T 4096 --B 1 --H 4 --D 64 --threads 2 --backward --out FILE]``

On a CPU, ``lablib.ops``'s ``backend="auto"`` runs the "vectorized" form (every chunk's state at
once). This table is the evidence for that choice: per op, the fastest of a few calls of each of
lablib's PyTorch forms, and of the fastest plain-PyTorch form flash-linear-attention ships for
the same recurrence (``fla/ops/<op>/naive.py``, loaded by ``lablib.peers.fla_naive``, its inputs
already in its (B, T, H, D) layout so no transpose is timed), and of causal softmax attention
(SDPA) at the same size. fla's forms used (the chunked one where fla has one, else its loop):

    op                      fla naive form
    linear_attention        linear_attn.naive_chunk_linear_attn
    scalar_gated_attention  simple_gla.naive_chunk_simple_gla
    gla                     gla.naive_recurrent_gla           (fla ships no chunked naive GLA)
    delta_rule              delta_rule.delta_rule_chunkwise   (its default chunk of 32)
    gated delta_rule        gated_delta_rule.naive_chunk_gated_delta_rule
    diagonal_scan           hgrn.naive_recurrent_hgrn         (its naive_chunk_hgrn needs T = chunk)

Each row's forms are timed in interleaved rounds (see ``_interleaved_best_ms``), so that on a
shared machine they see the same load. ``--out`` writes the table as Markdown with the machine (CPU model, cores, torch threads, torch
version) and the command; the committed one is ``benchmarks/cpu/ops.md``.
"""

from __future__ import annotations

import math
import os
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

__all__ = ["cpu_name", "run_cpu_bench"]

COLUMNS = ["vectorized", "chunkwise", "scan", "recurrent"]


def cpu_name() -> str:
    """The CPU's model name, cores, torch threads and the load average, e.g. 'AMD EPYC, 2 cores, 2 torch threads, load 0.3'.

    The load average (runnable processes, last minute) says whether the machine was shared while it was timed.
    """
    model = platform.processor() or platform.machine() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    load = f", load {os.getloadavg()[0]:.1f} (1-minute average)" if hasattr(os, "getloadavg") else ""
    return f"{model}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads{load}"


def _runner(fn, backward: bool, leaves: list[torch.Tensor]):
    """A no-argument call of ``fn(*leaves)``: forward, or forward + backward of the output's sum."""
    def run():
        with torch.set_grad_enabled(backward):
            out = fn(*leaves)
            out = out[0] if isinstance(out, tuple) else out
            if backward:
                out.sum().backward()
    return run


def _interleaved_best_ms(runners: dict, rounds: int, slow: set) -> dict:
    """Warm each runner up once, then ``rounds`` rounds calling each in turn; the fastest call of each, in ms.

    Interleaving makes the forms compared in one row see the same machine: on a shared CPU the
    load drifts over seconds, and timing one form after the other would hand the drift to one
    of them. Runners in ``slow`` (loops over tokens) get 2 rounds.
    """
    for run in runners.values():
        run()
    best = {name: math.inf for name in runners}
    for r in range(rounds):
        for name, run in runners.items():
            if name in slow and r >= 2:
                continue
            start = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: 1e3 * t for name, t in best.items()}


def _inputs(T: int, B: int, H: int, D: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(B, H, T, D, generator=g) for _ in range(3))
    return dict(
        q=q, k=F.normalize(k, dim=-1), v=v,
        log_decay=F.logsigmoid(torch.randn(B, H, T, generator=g) + 4),  # a ~ 0.98 per step
        log_alpha=F.logsigmoid(torch.randn(B, H, T, D, generator=g)) / 16,  # GLA's own parametrization
        beta=torch.rand(B, H, T, generator=g),
        lam=torch.rand(B * H, T, D, generator=g),
        x=torch.randn(B * H, T, D, generator=g),
    )


def _cases(x: dict[str, torch.Tensor]) -> dict:
    """label -> (lablib op, its inputs, its kwargs, fla's form, fla's inputs, fla's name)."""
    from lablib import ops
    from lablib.peers import fla_naive

    def bthd(t):  # fla's layout, made contiguous outside the timing
        return t.transpose(1, 2).contiguous()

    q, k, v = x["q"], x["k"], x["v"]
    la, sg, gl = fla_naive("linear_attn"), fla_naive("simple_gla"), fla_naive("gla")
    dr, gdr, hg = fla_naive("delta_rule"), fla_naive("gated_delta_rule"), fla_naive("hgrn")
    return {
        "linear_attention": (ops.linear_attention, [q, k, v], {}, la.naive_chunk_linear_attn,
                             [bthd(q), bthd(k), bthd(v)], "naive_chunk_linear_attn"),
        "scalar_gated_attention": (ops.scalar_gated_attention, [q, k, v, x["log_decay"]], {},
                                   sg.naive_chunk_simple_gla,
                                   [bthd(q), bthd(k), bthd(v), x["log_decay"].transpose(1, 2).contiguous()],
                                   "naive_chunk_simple_gla"),
        "gla": (ops.gla, [q, k, v, x["log_alpha"]], {}, gl.naive_recurrent_gla,
                [bthd(q), bthd(k), bthd(v), bthd(x["log_alpha"])], "naive_recurrent_gla"),
        "delta_rule": (ops.delta_rule, [q, k, v, x["beta"]], {}, dr.delta_rule_chunkwise,
                       [q.contiguous(), k.contiguous(), v.contiguous(), x["beta"]], "delta_rule_chunkwise"),
        "gated delta_rule": (ops.delta_rule, [q, k, v, x["beta"]], {"log_decay": x["log_decay"]},
                             lambda q_, k_, v_, g_, b_: gdr.naive_chunk_gated_delta_rule(q_, k_, v_, g_, b_),
                             [bthd(q), bthd(k), bthd(v), x["log_decay"].transpose(1, 2).contiguous(),
                              x["beta"].transpose(1, 2).contiguous()], "naive_chunk_gated_delta_rule"),
        "diagonal_scan": (ops.diagonal_scan, [x["lam"], x["x"]], {}, hg.naive_recurrent_hgrn,
                          [x["x"], x["lam"].log()],
                          "naive_recurrent_hgrn"),
    }


def run_cpu_bench(T: int = 4096, B: int = 1, H: int = 4, D: int = 64, *, threads: int | None = None,
                  backward: bool = False, fla: bool = True, rounds: int = 7) -> tuple[list[dict], str]:
    """Time every case; returns (rows, the Markdown table). A row: op, ms per column, fla's form, our best / fla."""
    from lablib import ops

    if threads:
        torch.set_num_threads(threads)
    for name, n in (("T", T), ("B", B), ("H", H), ("D", D)):
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"{name} must be a positive int; got {n!r}")
    if T % 64:
        raise ValueError(f"T must be a multiple of 64 (fla's naive chunked forms need whole chunks); got {T}")
    x = _inputs(T, B, H, D)
    cases = _cases(x)
    rows = []
    for label, (op, args, kwargs, fla_fn, fla_args, fla_form) in cases.items():
        op_name = "delta_rule" if "delta" in label else op.__name__
        runners = {}
        for col in COLUMNS:
            # the loop's backward at T = 4096 takes tens of seconds and says nothing new: forward only
            if col in ops.BACKENDS[op_name] and not (backward and col == "recurrent"):
                leaves = [a.detach().clone().requires_grad_(backward) for a in args]
                runners[col] = _runner(lambda *a, c=col: op(*a, backend=c, **kwargs).out, backward, leaves)
        if fla and not (backward and "recurrent" in fla_form):
            runners["fla naive"] = _runner(fla_fn, backward, [a.detach().clone().requires_grad_(backward)
                                                              for a in fla_args])
        slow = {"recurrent"} | ({"fla naive"} if "recurrent" in fla_form else set())
        row = {"op": label, **_interleaved_best_ms(runners, rounds, slow)}
        if fla:
            row["fla form"] = fla_form + (" (loop: forward only)" if backward and "recurrent" in fla_form else "")
            if "fla naive" in row:
                row["fla / our best"] = row["fla naive"] / min(row[c] for c in COLUMNS if c in row)
        rows.append(row)
        print(f"  {label}: " + ", ".join(f"{c} {row[c]:.1f}" for c in [*COLUMNS, "fla naive"] if c in row),
              file=sys.stderr, flush=True)
    sdpa_leaves = [t.detach().clone().requires_grad_(backward) for t in (x["q"], x["k"], x["v"])]
    sdpa = _runner(lambda *a: F.scaled_dot_product_attention(*a, is_causal=True), backward, sdpa_leaves)
    rows.append({"op": "softmax (SDPA, causal)", **{"vectorized": _interleaved_best_ms({"sdpa": sdpa}, rounds, set())["sdpa"]}})
    return rows, _markdown(rows, T, B, H, D, backward, fla, rounds)


def _markdown(rows: list[dict], T: int, B: int, H: int, D: int, backward: bool, fla: bool, rounds: int) -> str:
    what = "forward + backward" if backward else "forward"
    cols = COLUMNS + (["fla naive", "fla / our best", "fla form"] if fla else [])
    lines = [f"{what}, ms (fastest call of {rounds} interleaved rounds, 2 for loops over tokens), B={B} H={H} T={T} D={D}, fp32",
             f"machine: {cpu_name()}, torch {torch.__version__}", "",
             "| op | " + " | ".join(cols) + " |", "|---|" + "---:|" * (len(cols) - 1) + "---|"]
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c)
            cells.append("" if v is None else v if isinstance(v, str) else f"{v:.2f}x" if c == "fla / our best"
                         else f"{v:.1f}")
        lines.append(f"| {r['op']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_cpu_bench(path: str | Path, tables: list[str], command: str) -> None:
    """Write one or more tables to a Markdown file with the command that made them."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = "\n\n".join(tables)
    path.write_text(f"# lablib.ops on a CPU, beside fla's naive forms and SDPA\n\nMade by `{command}`.\n\n{body}\n")
