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

The parts, in the order a run uses them:

* ``lablib.bench.registry``: the ops and their implementations, and how each is called (our
  kernels' and fla's arguments, fla's signature checks); ``NotAvailable``, a row's reason.
* ``lablib.bench.costs``: the FLOP and byte models of one call (``flops``, ``nbytes``) and the
  GPUs' peaks the rates are read against (``peak_for``).
* ``lablib.bench.inputs``: the seeded inputs and gates of a case, in each implementation's layout,
  and the float64 references it is checked against.
* ``lablib.bench.runner``: the grid (``Config``, ``jobs``), its timing (``time_call``), time
  limits and rows (``run_attention``).
* ``lablib.bench.report``: the table, CSV, Markdown and chart (``display_table``,
  ``attention_chart``, ``write_outputs``).
* ``lablib.bench.cli``: the command line and its grid presets (full, gpu, smoke); ``main``. Its
  docstring has the GPU run to commit.

Every name the one-file ``lablib/bench.py`` had is importable from ``lablib.bench`` itself, and
setting one here sets it in the parts that use it, as when it was one module: ``bench.FLA_NEEDS_CUDA = False``
(``lablib.bench_compile``) or ``monkeypatch.setattr(bench, "_run_case", ...)`` (the tests) change
what the code calls, not just this package's attribute.
"""

from __future__ import annotations

import sys
import types

from lablib.bench import cli, costs, inputs, registry, report, runner
from lablib.bench.cli import FULL, GPU, GRIDS, RUN_DEFAULTS, SMOKE, _config, _ints, _ops, _parser, main
from lablib.bench.costs import FLOP_TEXT, PEAKS, device_name, flops, gate_values, nbytes, peak_for
from lablib.bench.inputs import (
    CHECK_TOL, SOFTMAX_CHECK_ROWS, _errors, _from_layout, _impl_gates, _inputs, _references, _seed, _to_layout,
)
from lablib.bench.registry import (
    DTYPES, FLA, FLA_CHUNK, FLA_FUNCTIONS, FLA_NAMES, FLA_NEEDS_CUDA, FLA_ORDER, GATES, IMPLEMENTATIONS, OP_TITLES,
    OPS, OUR_KERNELS, PASSES, PER_KEY_GATES, REF, REF_FUNCTIONS, SDPA, TRITON, Impl, NotAvailable, _build, _fla,
    _fla_kwargs, _fla_version, _is_oom, _lablib_reference, _ours, _reason, _short, _version, implementations,
)
from lablib.bench.report import (
    ROLES, _argv_text, _header, _markdown, _role, _sections, _write_text, attention_chart, display_table,
    write_outputs,
)
from lablib.bench.runner import (
    Config, _fill, _frame, _free, _grid_case, _NoProgress, _row_maker, _run_case, _Stopped, _stop_on_sigterm,
    _time_cap, _timer, _TimeUp, jobs, run_attention, shorten_autotuning, time_call,
)

__all__ = [
    "main", "run_attention", "attention_chart", "peak_for", "flops", "nbytes", "implementations",
    "IMPLEMENTATIONS", "OPS",
]

_PARTS = (registry, costs, inputs, runner, report, cli)


class _Bench(types.ModuleType):
    """This package's module type: an attribute set on it is set in every part that holds the name too.

    The parts look their names up in their own globals, so without this a replaced function or
    flag would change only ``lablib.bench.<name>``, not what the code calls.
    """

    def __setattr__(self, name: str, value) -> None:
        for part in _PARTS:
            if name in vars(part):
                setattr(part, name, value)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Bench
