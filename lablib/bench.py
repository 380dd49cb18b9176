"""Side-by-side benchmark of every kernel of the family: ``python -m lablib.bench attention [options]``.

For each *op* (``--op``, default all of them), each sequence length T and head dim D, one run
checks and then times the forward pass and forward+backward of the implementations a user would
pick between, over the same number of tokens (B = max(1, tokens // T), so B * T is fixed):

* ``linear``: lablib ``linear_attention_chunkwise`` (identity map, ``normalize=False``); ours
  ``linear_attention.chunk_linear_attention``; fla ``fla.ops.linear_attn.chunk_linear_attn``
  (``normalize=False``).
* ``scalar_gated``: lablib ``scalar_gated_chunkwise``; ours
  ``gated_linear_attention.chunk_scalar_gated_attention``; fla ``fla.ops.simple_gla.chunk_simple_gla``
  (``g`` = the log decay).
* ``gla``: lablib ``gla_chunkwise``; ours ``gla.chunk_gla``; fla ``fla.ops.gla.chunk_gla`` (``g`` = log alpha).
* ``delta``: lablib ``delta_rule_chunkwise``; ours ``delta_rule.chunk_delta_rule``; fla
  ``fla.ops.delta_rule.chunk_delta_rule``.
* ``gated_delta``: lablib ``delta_rule_chunkwise(..., log_decay=)``; ours
  ``delta_rule.chunk_delta_rule(..., log_decay=)``; fla ``fla.ops.gated_delta_rule.chunk_gated_delta_rule``.

(lablib: ``lablib.attention``, the PyTorch chunkwise reference; ours: ``lablib.kernels``, Triton),
plus, in every op's table, ``torch.nn.functional.scaled_dot_product_attention(q, k, v,
is_causal=True)``: softmax attention, a different (quadratic) function, shown as the baseline
the linear family has to beat. The linear ops all read o_t = S_t^T q_t with ``scale = 1`` (q as given):

* linear:       S_t = S_{t-1} + k_t v_t^T
* scalar_gated: S_t = a_t S_{t-1} + k_t v_t^T,             a_t = exp(log_decay_t), one per head and step
* gla:          S_t = diag(alpha_t) S_{t-1} + k_t v_t^T,   alpha_t = exp(log_alpha_t), one per key dim
* delta:        S_t = (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T   (keys L2-normalized)
* gated_delta:  S_t = a_t (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T

Implementations. The lablib reference is a Python loop over chunks (it also runs the input checks'
NaN scans, part of its cost). Ours are called with ``scale=1.0, chunk_size=C``. fla is imported
lazily ("not installed" when absent); its keyword names changed across versions, so the bench
inspects the installed function's signature and calls it only if it can compute the same function:
``scale`` must exist (else fla would apply 1/sqrt(D_k)), ``chunk_linear_attn`` must take
``normalize`` (passed ``False``); ``head_first=False`` is passed when the argument exists. For the
delta ops, lablib L2-normalizes the keys (not the queries) inside the call: fla's
``use_k_l2norm_in_kernel=True`` is used where it exists (the same function), else
``use_qk_l2norm_in_kernel=True`` (which also normalizes q: the delta inputs have unit-norm queries
and keys, so on them this is the same function), else no in-kernel normalization (the keys are
already unit-norm; fla then skips work that lablib does, which the ``note`` column says). Anything
else is a row "n/a (reason)": a different function is never benchmarked silently, and the
correctness check below flags one that slipped through. fla takes (B, T, H, D) tensors and
(B, T, H[, D]) gates; its inputs are made in that layout *before* timing (no transpose timed) and
its output is transposed back only for the check. Each implementation runs in its own ``try``: an
error (out of memory, not installed, no CUDA, an import failure of a kernel still being written)
records rows with status "n/a (reason)" and the run goes on.

Inputs (made on the device before timing; one seed per op, T and D). q, k ~ N(0, 1/sqrt(D)) (so
q.k ~ N(0, 1)) and v ~ N(0, 1), D_k = D_v = D; for the delta ops q and k are L2-normalized rows
(DeltaNet's convention, and what makes fla's q-and-k normalization agree with lablib's). Gates are
fp32 tensors: log_decay = logsigmoid(randn + 3) (B, H, T) and log_alpha = logsigmoid(randn + 3)
(B, H, T, D_k), decays around 0.95 per step; beta = sigmoid(randn) in [0, 1] (B, H, T). Their
values are first rounded to the input dtype, so every implementation sees exactly the same gates:
ours get them in fp32, the lablib reference in the input dtype (its checks require q's dtype),
fla fp32 gates and beta in the input dtype (as its documentation shows). For forward+backward the
gates and beta are leaves that require grad too (as in training), so every implementation also
computes their gradients.

Correctness. Before timing a (op, T, D) configuration, each implementation's forward output is
compared with a float64 lablib reference on batch element 0: the op's chunkwise lablib function
(above) in float64 over all T rows; SDPA against ``lablib.attention.softmax_attention(causal=True)``
on the first min(T, 2048) query rows (causal rows t < R depend only on keys and values t < R, so
the prefix is an exact check that needs no T x T matrix). ``max_err`` = max |out - ref| / max |ref|
(``max_abs_err`` unscaled). A row whose ``max_err`` exceeds the dtype's tolerance (fp32 1e-2,
fp16 3e-2, bf16 1e-1: loose enough for TF32 and half-precision rounding, far below the O(1) error
of a different function or layout) is still timed but gets status "inaccurate (...)", not "ok".
Half precision: ``torch.linalg.solve_triangular`` has no fp16/bf16 CPU kernel, so in fp16/bf16
on the CPU the delta references are "n/a (NotImplementedError ...)"; use fp32 there. On CUDA the
solve goes to cuBLAS trsm, which may lack half precision too: if so, the row says so in the same
way (the float64 correctness references are unaffected).

Timing. CUDA: CUDA events around each call, after warm-up calls, the device synchronized after
each repeat; CPU: ``time.perf_counter``. ``ms`` is the median of the repeats (``ms_min`` the
fastest); slow cases get fewer repeats (at least 3) so one case stays within ``--budget``
seconds. Forward runs under ``torch.no_grad``; forward+backward is ``fn(q, k, v, ...).backward(do)``
on leaf inputs, grads reset to ``None`` each call.

Skips. The PyTorch reference is skipped when T / chunk_size > ``--ref-max-chunks`` (default 256,
i.e. T > 16384 at C = 64): it issues many small kernels per chunk from Python, so beyond that its
time is launch overhead and each repeat takes seconds. The others are tried at every size; an
out-of-memory error becomes "n/a (out of memory)" (and the CUDA cache is emptied).

FLOPs of one forward call (a multiply-add = 2 FLOPs; an elementwise op = 1; chunk C, and the
masked half of every C x C block is counted, as the kernels compute it; fla's chunk kernels use
C = 64). With lin = ``2 * B * H * (T*C*D_k + T*C*D_v + 2*T*D_k*D_v)``:

* ``linear``: lin. Per chunk Q K^T and the masked scores times V (C x C x D each), Q S and K^T V
  (C x D_k x D_v each).
* ``scalar_gated``: lin + ``B * H * (3*T*C + 2*T*D_k + T*D_k*D_v/C)``: per chunk the C x C decay
  matrix (segment sums, exp) and its product with the scores (3 C^2), the decay of q and k
  (2 C D_k) and of the state (D_k D_v).
* ``gla``: lin + ``B * H * (6*T*D_k + T*D_k*D_v/C)``. The model counted: the same matrix
  products as linear attention (the intra-chunk scores A as one dense C x C x D_k product, the
  decays folded into Q and K, as the sub-chunked kernels do off the diagonal), plus per token and
  key dim the gate work (cumulative sums and exponentials towards both chunk ends, scaling q and
  k: 6 T D_k) and the state's diagonal decay per chunk. Not counted: the extra exponentials of
  the exact 16 x 16 diagonal sub-blocks (about 16 D_k per token in our kernel and in fla's).
* ``delta``: ``2 * B * H * T * (3*C*D_k + 2*C*D_v + 3*D_k*D_v) + B * H * T * C^2 / 3``: per chunk
  linear attention's products with R in place of V (Q K^T, (scores) R, Q S, K^T R) plus K K^T
  (C x C x D_k), the triangular solve (I + L)^{-1} diag(beta) (~C^3/3 FLOPs: a lower-triangular
  inverse), W = T K and U = T V (C x C x D each) and R = U - W S (C x D_k x D_v). Not counted: the
  key normalization and the beta scalings (O(T D) elementwise).
* ``gated_delta``: delta + ``B * H * (4*T*C + 3*T*D_k + T*D_k*D_v/C)``: the decay matrix
  (segment sums, exp) applied to L and to the scores (4 C^2 per chunk), the decays of K in W, of
  q and of k in the state update (3 C D_k), and of the state (D_k D_v).
* SDPA causal: ``2 * B * H * T * T * (D_k + D_v) / 2`` (the causal half of Q K^T and P V).
* backward is counted as 2x forward, so forward+backward = 3x forward (a convention: the delta
  rule's backward does relatively more, so its TFLOP/s there are an underestimate).

Bytes (the compulsory traffic): forward reads q, k, v and writes o at the input dtype,
``B*H*T*(2*D_k + 2*D_v) * itemsize``, and reads the gates (G fp32 values per token and head:
scalar_gated 1, gla D_k, delta 1 (beta), gated_delta 2) ``B*H*T*G*4``; forward+backward also reads
q, k, v, do and the gates and writes dq, dk, dv and the gates' gradients:
``B*H*T*((6*D_k + 5*D_v) * itemsize + 3*G*4)`` in all. Intermediate traffic (states, scores) is
not counted, so GB/s is a lower bound on what the hardware moved.

Peak. ``torch.cuda.get_device_name`` is matched against a small table of dense bf16 tensor-core
TFLOP/s and HBM GB/s (H100 SXM 989 / 3350, H200 989 / 4800, A100 312 / 2039); the percentages are
always relative to the bf16 dense peak (fp32 inputs use TF32 or fp32 units, whose peak is lower).
Other devices, and the CPU, get "n/a".

Outputs in ``--out``: ``attention.csv`` (every row and column; ``op`` first), ``attention.md``
(header with device, versions, date and the FLOP models, then one table per op),
``attention.html`` (Altair chart, one row of panels per op, vega inlined, works offline) and
``attention.png`` when vl-convert can draw it.

The GPU run to commit (every op, bf16, T from 1024 to 32768, D in {64, 128}; TRITON_INTERPRET
unset)::

    python -m lablib.bench attention --out benchmarks/h200 --no-progress

then commit ``benchmarks/<device>/attention.{md,csv,png}`` (the .html inlines vega, about 1 MB).
On a fresh machine its length is dominated by compilation, not timing: 480 cases, most a few
hundred ms of timed calls, but ``--estimate-only`` counts ~1,800 cold Triton compiles for it,
34 of ours (bf16, a few seconds each) and ~1,750 of fla's, whose autotuners compile and time
every config (48 per kernel for its state recurrence) of every kernel for each new key, per op
and D: ~20 minutes at the CI machine's compile rate (see ``lablib.bench_compile``).

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
still compiled and timed, and the fastest kept. ``--estimate`` writes compile_estimate.{md,csv}
(``lablib.bench_compile``: every kernel the grid will compile, counted without compiling) before
running; ``--estimate-only`` stops there.

``--grid gpu`` is the first GPU run, what ``benchmarks/gpu_run.sh`` runs (FULL's sizes, all five
ops): the reference only up to T = 4096 (``--ref-max-chunks 64``), 1 s of timed calls per case,
``--budget-s 330 --case-timeout 150 --fla-last --autotune-rep-ms 20``. It gets our kernels, SDPA
and the reference at every size (the reference to T = 4096), and fla for as many ops as the
budget leaves (the estimate at the CI machine's compile rate: ~2 minutes of compiles for all of
ours, ~1-4 minutes per op and D for fla); see benchmarks/README.md.

``--smoke``: CPU, fp32, tokens 128, T in {64, 128}, 1 head, D = 16, chunk 32, 3 repeats; with
``TRITON_INTERPRET=1`` the Triton kernels run in the interpreter and all five ops take under a
minute on two CPU cores (GLA's interpreted kernel most of it; ``--op`` narrows it). Without the interpreter, on the CPU our rows are "n/a (no CUDA; set
TRITON_INTERPRET=1)". Explicit size flags override the smoke (and full) defaults.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib
import importlib.metadata
import importlib.util
import inspect
import math
import platform
import signal
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import pandas as pd
import torch

__all__ = [
    "main", "run_attention", "attention_chart", "peak_for", "flops", "nbytes", "implementations",
    "IMPLEMENTATIONS", "OPS",
]

REF = "pytorch chunkwise (lablib reference)"
TRITON = "triton chunkwise (lablib.kernels)"
SDPA = "sdpa causal (softmax, FlashAttention path)"
PASSES = ("fwd", "fwd+bwd")

# The ops, in table order: what each computes (for the tables), the lablib reference, our kernel
# (module, function) and fla's (module, function).
OPS = ("linear", "scalar_gated", "gla", "delta", "gated_delta")
OP_TITLES = {
    "linear": "causal linear attention (identity map, unnormalized): S_t = S_{t-1} + k_t v_t^T",
    "scalar_gated": "scalar-gated linear attention (RetNet / Mamba-2 decay): S_t = a_t S_{t-1} + k_t v_t^T",
    "gla": "gated linear attention (GLA, a decay per key dim): S_t = diag(alpha_t) S_{t-1} + k_t v_t^T",
    "delta": "delta rule (DeltaNet, unit keys): S_t = (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T",
    "gated_delta": "gated delta rule (Gated DeltaNet): S_t = a_t (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T",
}
REF_FUNCTIONS = {
    "linear": "linear_attention_chunkwise",
    "scalar_gated": "scalar_gated_chunkwise",
    "gla": "gla_chunkwise",
    "delta": "delta_rule_chunkwise",
    "gated_delta": "delta_rule_chunkwise",
}
OUR_KERNELS = {
    "linear": ("lablib.kernels.linear_attention", "chunk_linear_attention"),
    "scalar_gated": ("lablib.kernels.gated_linear_attention", "chunk_scalar_gated_attention"),
    "gla": ("lablib.kernels.gla", "chunk_gla"),
    "delta": ("lablib.kernels.delta_rule", "chunk_delta_rule"),
    "gated_delta": ("lablib.kernels.delta_rule", "chunk_delta_rule"),
}
FLA_FUNCTIONS = {
    "linear": ("fla.ops.linear_attn", "chunk_linear_attn"),
    "scalar_gated": ("fla.ops.simple_gla", "chunk_simple_gla"),
    "gla": ("fla.ops.gla", "chunk_gla"),
    "delta": ("fla.ops.delta_rule", "chunk_delta_rule"),
    "gated_delta": ("fla.ops.gated_delta_rule", "chunk_gated_delta_rule"),
}
FLA_NAMES = {op: f"fla {fn}" for op, (_, fn) in FLA_FUNCTIONS.items()}
FLA_NEEDS_CUDA = True  # fla's kernels are Triton-on-CUDA; the tests turn this off to run fake fla modules on the CPU
FLA = FLA_NAMES["linear"]
# The extra inputs of each op, in call order, and how many fp32 values per token and head they hold
# (``per_key``: D_k of them).
GATES: dict[str, tuple[str, ...]] = {
    "linear": (),
    "scalar_gated": ("log_decay",),
    "gla": ("log_alpha",),
    "delta": ("beta",),
    "gated_delta": ("log_decay", "beta"),
}
PER_KEY_GATES = {"log_alpha"}


def implementations(op: str) -> tuple[str, str, str, str]:
    """The four implementations compared for ``op``: reference, ours, SDPA, fla."""
    if op not in OPS:
        raise ValueError(f"unknown op {op!r}; expected one of {OPS}")
    return (REF, TRITON, SDPA, FLA_NAMES[op])


IMPLEMENTATIONS = implementations("linear")

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
CHECK_TOL = {torch.float32: 1e-2, torch.float16: 3e-2, torch.bfloat16: 1e-1}

# Grid presets (``--grid``; ``--smoke`` = ``--grid smoke``). The run settings after the sizes: seconds of timed
# calls per case (``budget``), the reference's chunk limit, the whole grid's wall-clock budget, the cap on one
# case (compilation included), fla last, and fla's autotuning time per config (None: Triton's default).
RUN_DEFAULTS = dict(budget=5.0, ref_max_chunks=256, budget_s=None, case_timeout=None, fla_last=False,
                    autotune_rep_ms=None)
FULL = dict(tokens=32768, lengths=[1024, 2048, 4096, 8192, 16384, 32768], heads=16, dims=[64, 128],
            dtype="bf16", chunk_size=64, warmup=5, repeats=20, **RUN_DEFAULTS)
SMOKE = dict(tokens=128, lengths=[64, 128], heads=1, dims=[16], dtype="fp32", chunk_size=32, warmup=1, repeats=3,
             **RUN_DEFAULTS)
# The first GPU run (benchmarks/gpu_run.sh): FULL's sizes inside about 6 minutes of device time, compilation
# included. Our kernels, SDPA and the reference (T <= 4096) first; fla after them, cheapest autotuning first
# (FLA_ORDER), each config timed for 20 ms instead of Triton's 100; the grid stops at 330 s and no case
# (one implementation at one size, both passes) may take more than 150 s. See benchmarks/README.md.
GPU = dict(FULL, budget=1.0, ref_max_chunks=64, budget_s=330.0, case_timeout=150.0, fla_last=True,
           autotune_rep_ms=20.0)
GRIDS = {"full": FULL, "gpu": GPU, "smoke": SMOKE}
# fla's ops in order of how many configs its autotuner compiles and times for them (fewest first; counted by
# ``python -m lablib.bench attention --estimate-only --grid gpu``): with ``fla_last`` fla runs in this order.
FLA_ORDER = ("linear", "gated_delta", "delta", "scalar_gated", "gla")

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
# Implementations: each builds fn(q, k, v, *gates) -> o, taking and returning its native layout
# --------------------------------------------------------------------------------------------


@dataclass
class Impl:
    name: str
    fn: Callable[..., torch.Tensor]
    kind: str  # the op (checked against its float64 lablib reference) or "softmax"
    layout: str  # "BHTD" or "BTHD" (fla): the inputs' layout, made before timing
    chunk: int | None
    note: str = ""
    uses_gates: bool = True  # False: called with q, k, v only (SDPA)
    gates_in_input_dtype: tuple[str, ...] = ()  # gates passed in q's dtype (else fp32)


def _lablib_reference(op: str, C: int) -> Callable[..., torch.Tensor]:
    """The op's PyTorch chunkwise function from lablib.attention, as fn(q, k, v, *gates)."""
    import lablib.attention as la

    if op == "linear":
        return lambda q, k, v: la.linear_attention_chunkwise(q, k, v, feature_map="identity", normalize=False, chunk_size=C)
    if op == "scalar_gated":
        return lambda q, k, v, g: la.scalar_gated_chunkwise(q, k, v, g, chunk_size=C)
    if op == "gla":
        return lambda q, k, v, g: la.gla_chunkwise(q, k, v, g, chunk_size=C)
    if op == "delta":
        return lambda q, k, v, beta: la.delta_rule_chunkwise(q, k, v, beta, chunk_size=C)
    if op == "gated_delta":
        return lambda q, k, v, g, beta: la.delta_rule_chunkwise(q, k, v, beta, log_decay=g, chunk_size=C)
    raise ValueError(f"unknown op {op!r}")


def _ours(op: str, C: int) -> Callable[..., torch.Tensor]:
    """Our Triton kernel for the op, as fn(q, k, v, *gates); NotAvailable if it does not import."""
    module, function = OUR_KERNELS[op]
    try:
        kernel = getattr(importlib.import_module(module), function)
    except Exception as e:  # e.g. a kernel module still being written
        raise NotAvailable(f"import of {module}.{function} failed: {e.__class__.__name__}: {_short(e)}") from e
    if op == "linear":
        return lambda q, k, v: kernel(q, k, v, scale=1.0, chunk_size=C)
    if op in ("scalar_gated", "gla"):
        return lambda q, k, v, g: kernel(q, k, v, g, scale=1.0, chunk_size=C)
    # The delta-rule kernel's backward overflows shared memory at D_k > 64 with chunks of 64 (see
    # lablib.kernels.delta_rule.chunk_delta_rule): it runs with chunks of 32 there (FLOPs still count C).
    delta_chunk = lambda q: min(C, 32) if q.shape[-1] > 64 else C  # noqa: E731
    if op == "delta":
        return lambda q, k, v, beta: kernel(q, k, v, beta, log_decay=None, scale=1.0, chunk_size=delta_chunk(q))
    if op == "gated_delta":
        return lambda q, k, v, g, beta: kernel(q, k, v, beta, log_decay=g, scale=1.0, chunk_size=delta_chunk(q))
    raise ValueError(f"unknown op {op!r}")


def _fla_kwargs(op: str, params: Mapping[str, inspect.Parameter]) -> tuple[dict, str]:
    """Keyword arguments that make the installed fla function compute the op with scale 1, and a note.

    ``params`` is ``inspect.signature(fla_function).parameters``. Raises NotAvailable when this
    version cannot be called to compute the same function as the lablib reference.
    """
    function = FLA_FUNCTIONS[op][1]
    if "scale" not in params:
        raise NotAvailable(f"installed fla's {function} has no scale argument; it would apply 1/sqrt(D_k)")
    kwargs: dict = dict(scale=1.0)
    note = ""
    if op == "linear":
        if "normalize" not in params:
            raise NotAvailable("installed fla's chunk_linear_attn has no normalize=False; it would compute another function")
        kwargs["normalize"] = False
    for gate in GATES[op]:
        arg = "beta" if gate == "beta" else "g"  # fla's names: g (log gates, scalar or per key dim), beta
        if arg not in params:
            raise NotAvailable(f"installed fla's {function} has no {arg!r} argument")
    if op in ("delta", "gated_delta"):
        if "use_k_l2norm_in_kernel" in params:
            kwargs["use_k_l2norm_in_kernel"] = True
            if "use_q_l2norm_in_kernel" in params:
                kwargs["use_q_l2norm_in_kernel"] = False
            note = "keys L2-normalized in the kernel (as lablib)"
        elif "use_qk_l2norm_in_kernel" in params:
            kwargs["use_qk_l2norm_in_kernel"] = True
            note = "q and k L2-normalized in the kernel (q is unit-norm here, so the same function)"
        else:
            note = "no in-kernel L2 norm (keys are unit-norm already; lablib normalizes them, fla does not)"
    if "head_first" in params:
        kwargs["head_first"] = False
    return kwargs, note


def _fla(op: str, cfg: "Config") -> Impl:
    module, function = FLA_FUNCTIONS[op]
    name = FLA_NAMES[op]
    try:
        fn = getattr(importlib.import_module(module), function)
    except ImportError as e:
        if importlib.util.find_spec("fla") is None:
            raise NotAvailable("not installed") from e
        raise NotAvailable(f"import of {module}.{function} failed: {e.__class__.__name__}: {_short(e)}") from e
    except Exception as e:  # installed but broken here (e.g. needs a GPU at import)
        raise NotAvailable(f"import failed: {e.__class__.__name__}: {_short(e)}") from e
    kwargs, note = _fla_kwargs(op, inspect.signature(fn).parameters)
    if FLA_NEEDS_CUDA and cfg.device.type != "cuda":
        raise NotAvailable("fla's Triton kernels need CUDA")

    def first(out):
        return out[0] if isinstance(out, tuple) else out

    if op == "linear":
        call = lambda q, k, v: first(fn(q, k, v, **kwargs))  # noqa: E731
    elif op in ("scalar_gated", "gla"):
        call = lambda q, k, v, g: first(fn(q, k, v, g=g, **kwargs))  # noqa: E731
    elif op == "delta":
        call = lambda q, k, v, beta: first(fn(q, k, v, beta=beta, **kwargs))  # noqa: E731
    else:
        call = lambda q, k, v, g, beta: first(fn(q, k, v, g=g, beta=beta, **kwargs))  # noqa: E731
    note = ", ".join(x for x in (f"fla {_fla_version()}, (B,T,H,D) inputs", note) if x)
    return Impl(name, call, op, "BTHD", FLA_CHUNK, note, gates_in_input_dtype=("beta",))


def _build(name: str, cfg: "Config", op: str = "linear") -> Impl:
    """The callable for one implementation of ``op``, or NotAvailable with the reason."""
    C = cfg.chunk_size
    if name == REF:
        return Impl(name, _lablib_reference(op, C), op, "BHTD", C, gates_in_input_dtype=GATES[op])

    if name == TRITON:
        from lablib.kernels.linear_attention import INTERPRETED

        if cfg.device.type != "cuda" and not INTERPRETED:
            raise NotAvailable("no CUDA; set TRITON_INTERPRET=1")
        if cfg.device.type == "cuda" and INTERPRETED:
            raise NotAvailable("TRITON_INTERPRET=1 on a CUDA run; unset it to time compiled kernels")
        return Impl(name, _ours(op, C), op, "BHTD", C, "Triton interpreter" if INTERPRETED else "")

    if name == SDPA:
        import torch.nn.functional as F

        def sdpa(q, k, v):
            return F.scaled_dot_product_attention(q, k, v, is_causal=True)

        return Impl(name, sdpa, "softmax", "BHTD", None, uses_gates=False)

    if name == FLA_NAMES[op]:
        return _fla(op, cfg)

    raise ValueError(f"unknown implementation {name!r} for op {op!r}")


# --------------------------------------------------------------------------------------------
# Cost model
# --------------------------------------------------------------------------------------------


def flops(kind: str, pass_: str, B: int, H: int, T: int, d_k: int, d_v: int, chunk: int | None) -> float:
    """FLOPs of one call of ``kind`` (an op or "softmax"; see the module docstring): backward = 2x forward."""
    BH, C = float(B * H), chunk
    if kind == "softmax":
        fwd = 2.0 * BH * T * T * (d_k + d_v) / 2
    elif kind in ("linear", "scalar_gated", "gla"):
        fwd = 2.0 * BH * (T * C * d_k + T * C * d_v + 2 * T * d_k * d_v)
        if kind == "scalar_gated":
            fwd += BH * (3 * T * C + 2 * T * d_k + T * d_k * d_v / C)
        elif kind == "gla":
            fwd += BH * (6 * T * d_k + T * d_k * d_v / C)
    elif kind in ("delta", "gated_delta"):
        fwd = 2.0 * BH * T * (3 * C * d_k + 2 * C * d_v + 3 * d_k * d_v) + BH * T * C * C / 3
        if kind == "gated_delta":
            fwd += BH * (4 * T * C + 3 * T * d_k + T * d_k * d_v / C)
    else:
        raise ValueError(f"unknown kind {kind!r}")
    return fwd if pass_ == "fwd" else 3 * fwd


def gate_values(op: str, d_k: int) -> int:
    """fp32 gate values per token and head read by ``op`` (0 for linear attention and SDPA)."""
    return sum(d_k if g in PER_KEY_GATES else 1 for g in GATES.get(op, ()))


def nbytes(pass_: str, B: int, H: int, T: int, d_k: int, d_v: int, itemsize: int, op: str = "linear") -> float:
    """Compulsory bytes of one call: q, k, v (+ gates) read and o written (+ do read, dq, dk, dv (+ d gates) written)."""
    per_token = 2 * d_k + 2 * d_v if pass_ == "fwd" else 6 * d_k + 5 * d_v
    gates = gate_values(op, d_k) * 4 * (1 if pass_ == "fwd" else 3)
    return float(B * H * T * (per_token * itemsize + gates))


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
    ops: list[str] = field(default_factory=lambda: list(OPS))
    budget_s: float | None = None  # wall-clock seconds for the whole grid; cases after it are "not run"
    case_timeout: float | None = None  # seconds for one case (an implementation at one size, both passes)
    fla_last: bool = False  # time fla after every other implementation (its autotuning is the slow part)
    autotune_rep_ms: float | None = None  # fla's autotuner times each config this long (None: Triton's 100 ms)


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


def _fla_version() -> str:
    """fla's version, under either of its distributions (flash-linear-attention, or fla-core: the ops alone)."""
    for dist in ("flash-linear-attention", "fla-core"):
        version = _version(dist)
        if version != "not installed":
            return version if dist == "flash-linear-attention" else f"{version} (fla-core)"
    return "not installed"


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.machine() or 'unknown'}, {torch.get_num_threads()} threads)"


def _seed(op: str, T: int, D: int) -> int:
    return (OPS.index(op) * 1_000_003 + T * 1009 + D) % (2**31)


def _inputs(B, H, T, D, dtype, device, seed=0, op="linear"):
    """q, k, v (B, H, T, D) in ``dtype`` and the op's gates (fp32, values representable in ``dtype``).

    q, k ~ N(0, 1/sqrt(D)) (unit-norm rows for the delta ops), v ~ N(0, 1);
    log_decay = logsigmoid(randn + 3) (B, H, T); log_alpha the same, (B, H, T, D);
    beta = sigmoid(randn) (B, H, T). Made on the device.
    """
    import torch.nn.functional as F

    g = torch.Generator(device=device).manual_seed(seed)
    randn = lambda *shape: torch.randn(*shape, generator=g, device=device, dtype=torch.float32)  # noqa: E731
    q, k, v = (randn(B, H, T, D) for _ in range(3))
    if op in ("delta", "gated_delta"):
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
    else:
        s = D**-0.25
        q, k = q * s, k * s
    gates = {}
    for name in GATES[op]:
        if name == "log_decay":
            x = F.logsigmoid(randn(B, H, T) + 3)
        elif name == "log_alpha":
            x = F.logsigmoid(randn(B, H, T, D) + 3)
        else:  # beta
            x = torch.sigmoid(randn(B, H, T))
        gates[name] = x.to(dtype).float()  # the same values for every implementation, whatever dtype it takes
    return q.to(dtype), k.to(dtype), v.to(dtype), gates


def _to_layout(x: torch.Tensor, layout: str) -> torch.Tensor:
    """(B, H, T, ...) -> the implementation's layout ((B, T, H, ...) for fla), contiguous."""
    return x.transpose(1, 2).contiguous() if layout == "BTHD" else x


def _from_layout(x: torch.Tensor, layout: str) -> torch.Tensor:
    return x.transpose(1, 2) if layout == "BTHD" else x


def _impl_gates(impl: Impl, op: str, gates: dict[str, torch.Tensor], dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    """The op's gates as ``impl`` takes them: its layout, fp32 or (where it needs) the input dtype."""
    if not impl.uses_gates:
        return ()
    return tuple(
        _to_layout(gates[n].to(dtype) if n in impl.gates_in_input_dtype else gates[n], impl.layout) for n in GATES[op]
    )


def _references(q, k, v, chunk_size: int, op: str = "linear", gates: dict | None = None) -> dict[str, tuple[torch.Tensor, int]]:
    """float64 references on batch element 0: kind (the op, "softmax") -> (output rows checked, number of rows)."""
    from lablib.attention import softmax_attention

    q0, k0, v0 = (x[:1].double() for x in (q, k, v))
    g0 = tuple(gates[n][:1].double() for n in GATES[op]) if gates else ()
    T = q.shape[2]
    R = min(T, SOFTMAX_CHECK_ROWS)
    with torch.no_grad():
        ref = _lablib_reference(op, chunk_size)(q0, k0, v0, *g0)
        soft = softmax_attention(q0[:, :, :R], k0[:, :, :R], v0[:, :, :R], causal=True)
    return {op: (ref, T), "softmax": (soft, R)}


def _errors(out: torch.Tensor, ref: torch.Tensor, rows: int) -> tuple[float, float]:
    diff = (out[:1, :, :rows].double() - ref).abs().max().item()
    scale = ref.abs().max().item()
    return diff / scale if scale > 0 else diff, diff


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


# --------------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


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


FLOP_TEXT = {
    "linear": "linear lin = 2BH(TCD_k + TCD_v + 2TD_kD_v)",
    "scalar_gated": "scalar_gated lin + BH(3TC + 2TD_k + TD_kD_v/C)",
    "gla": "gla lin + BH(6TD_k + TD_kD_v/C) (A as a dense CxCxD_k product; diagonal sub-block exps not counted)",
    "delta": "delta 2BHT(3CD_k + 2CD_v + 3D_kD_v) + BHTC^2/3",
    "gated_delta": "gated_delta delta + BH(4TC + 3TD_k + TD_kD_v/C)",
}


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


if __name__ == "__main__":
    sys.exit(main())
