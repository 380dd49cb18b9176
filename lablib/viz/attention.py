"""Charts for chapter 1, "Linear attention is an RNN". Each builder returns an Altair chart.

The table-shaped ones take a tidy ``pandas.DataFrame`` (one row per point, the columns named in
the docstring); :func:`state_explorer` takes the state trajectory as a tensor or array. Every
chart has its data inline and no unnamed parameters, so its spec (and the HTML the ``lablib``
renderer makes of it) is the same on every run.
"""

from __future__ import annotations

import math
from typing import Any

import altair as alt
import numpy as np
import pandas as pd

from lablib._checks import check_frame

__all__ = ["error_chart", "memory_chart", "recall_chart", "state_explorer", "timing_chart"]

WIDTH, HEIGHT = 420, 260
MAX_STEPS, MAX_DIM = 64, 16  # state_explorer: keeps the inline data (and the page) small
DIVERGING = "redblue"  # reversed below: negative blue, positive red, white at 0 (as RecurrenceStepper)


def _log_x(field: str, title: str) -> alt.X:
    return alt.X(f"{field}:Q", scale=alt.Scale(type="log", base=2), axis=alt.Axis(format="d"), title=title)


def _decades(low: float, high: float) -> list[float]:
    """Powers of ten from the one at or below ``low`` to the one at or above ``high``: log-axis ticks."""
    lo, hi = math.floor(math.log10(low)), math.ceil(math.log10(high))
    return [10.0**e for e in range(lo, max(hi, lo + 1) + 1)]


def timing_chart(df: pd.DataFrame) -> alt.Chart:
    """Seconds per forward pass against sequence length, log-log, one line per form.

    Args:
        df: one row per (form, T): ``form`` (str), ``T`` (int, sequence length), ``seconds``
            (float, e.g. the median of a few runs).

    On log-log axes a cost ~ T^p is a straight line of slope p: 2 for the quadratic forms, 1 for
    the recurrent and chunkwise ones.
    """
    check_frame(df, ["form", "T", "seconds"], "timing_chart")
    df = df[["form", "T", "seconds"]]
    if not (df.seconds > 0).all():
        raise ValueError("timing_chart: every time must be > 0 (the axis is logarithmic)")
    ticks = _decades(float(df.seconds.min()), float(df.seconds.max()))
    return (
        alt.Chart(df, title="Time per forward pass vs sequence length")
        .mark_line(point=True)
        .encode(
            x=_log_x("T", "sequence length T"),
            y=alt.Y(
                "seconds:Q",
                scale=alt.Scale(type="log"),
                axis=alt.Axis(values=ticks, format="~g"),
                title="seconds per forward pass",
            ),
            color=alt.Color("form:N", title="form"),
            tooltip=["form:N", "T:Q", alt.Tooltip("seconds:Q", format=".3~e")],
        )
        .properties(width=WIDTH, height=HEIGHT)
    )


def memory_chart(df: pd.DataFrame) -> alt.Chart:
    """Memory a decoder keeps to produce the next token (KiB), against tokens generated so far.

    Args:
        df: one row per (decoder, tokens): ``decoder`` (str), ``tokens`` (int), ``bytes`` (int,
            e.g. ``SoftmaxKVCacheDecoder.nbytes`` or ``LinearAttentionDecoder.nbytes``).

    The softmax KV cache grows linearly with the tokens; the linear-attention state is flat.
    """
    check_frame(df, ["decoder", "tokens", "bytes"], "memory_chart")
    df = df[["decoder", "tokens", "bytes"]]
    return (
        alt.Chart(df, title="Memory needed to decode the next token")
        .transform_calculate(KiB="datum.bytes / 1024")
        .mark_line(point=True)
        .encode(
            x=alt.X("tokens:Q", scale=alt.Scale(nice=False), title="tokens decoded"),
            y=alt.Y("KiB:Q", title="KiB kept (KV cache or state)"),
            color=alt.Color("decoder:N", title="decoder"),
            tooltip=["decoder:N", "tokens:Q", alt.Tooltip("bytes:Q", format=","), alt.Tooltip("KiB:Q", format=",.1f")],
        )
        .properties(width=WIDTH, height=HEIGHT)
    )


def error_chart(df: pd.DataFrame, tolerance: float = 1e-5) -> alt.LayerChart:
    """Largest error of each form against the reference, log scale, with the tolerance dashed.

    Args:
        df: one row per (form, T): ``form`` (str), ``T`` (int), ``max_error`` (float, e.g.
            ``max |form - reference|`` or ``lablib.testing.max_scaled_error``).
        tolerance: drawn as a dashed rule.

    In float32 the forms agree to about 1e-7: rounding, because they add in different orders.
    Exact zeros, which a log axis cannot show, sit on the axis floor, labelled "0 (exact)".
    """
    check_frame(df, ["form", "T", "max_error"], "error_chart")
    if (df.max_error < 0).any() or df.max_error.isna().any():
        raise ValueError("error_chart: max_error must be >= 0 and not NaN")
    positive = df.max_error[df.max_error > 0]
    low = 10.0 ** (math.floor(math.log10(positive.min())) - 1) if len(positive) else 1e-12
    high = 10.0 ** math.ceil(math.log10(max(float(df.max_error.max()), 10 * tolerance)))
    df = df[["form", "T", "max_error"]].assign(shown=df.max_error.clip(lower=low))
    y_scale = alt.Scale(type="log", domain=[low, high])
    y_axis = alt.Axis(values=_decades(low, high), format=".0e")
    if len(positive) < len(df):
        y_axis = alt.Axis(
            values=_decades(low, high), labelExpr=f"datum.value <= {low!r} ? '0 (exact)' : format(datum.value, '.0e')"
        )
    lines = (
        alt.Chart(df)
        .mark_line(point=True)
        .encode(
            x=_log_x("T", "sequence length T"),
            y=alt.Y("shown:Q", scale=y_scale, axis=y_axis, title="max |form - reference|"),
            color=alt.Color("form:N", title="form"),
            tooltip=["form:N", "T:Q", alt.Tooltip("max_error:Q", format=".2e")],
        )
    )
    rule = (
        alt.Chart(pd.DataFrame({"tolerance": [tolerance]}))
        .mark_rule(strokeDash=[4, 4], color="gray")
        .encode(y=alt.Y("tolerance:Q", scale=y_scale), tooltip=[alt.Tooltip("tolerance:Q", format=".0e")])
    )
    return alt.layer(lines, rule, title="Every form agrees with the reference (dashed: tolerance)").properties(
        width=WIDTH, height=HEIGHT
    )


def recall_chart(df: pd.DataFrame) -> alt.LayerChart:
    """Read-back error of an outer-product (fast-weight) memory against the pairs stored in it.

    Args:
        df: one row per (d, pairs): ``pairs`` (int, n key-value pairs written into
            S = sum_j k_j v_j^T), ``d`` (int, the key dimension / state size), ``error`` (float,
            mean relative error of reading each v_m back as S^T k_m).

    One line per d. Dashed: sqrt((n - 1) / d), the crosstalk expected from random unit keys; the
    error becomes large once n approaches d.
    """
    check_frame(df, ["pairs", "d", "error"], "recall_chart")
    df = df[["pairs", "d", "error"]]
    base = alt.Chart(df).encode(
        x=alt.X("pairs:Q", title="key-value pairs stored (n)"),
        color=alt.Color("d:O", title="state dim d"),
    )
    measured = base.mark_line(point=alt.OverlayMarkDef(size=16, filled=True)).encode(
        y=alt.Y("error:Q", title="relative read-back error"),
        tooltip=["d:O", "pairs:Q", alt.Tooltip("error:Q", format=".3f")],
    )
    theory = (
        base.transform_calculate(theory="sqrt((datum.pairs - 1) / datum.d)")
        .mark_line(strokeDash=[4, 4], opacity=0.7)
        .encode(y="theory:Q")
    )
    return alt.layer(
        measured, theory, title="Fast-weight memory capacity: crosstalk grows with n/d (dashed: sqrt((n-1)/d))"
    ).properties(width=WIDTH, height=HEIGHT)


def _as_array(x: Any, name: str) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor, on any device, with or without grad
        x = x.detach().cpu().double().numpy()
    a = np.asarray(x, dtype=np.float64)
    if not np.isfinite(a).all():
        raise ValueError(f"state_explorer: {name} has NaN or infinite entries")
    return a


def state_explorer(states: Any, outputs: Any, start: int = 0) -> alt.HConcatChart:
    """The recurrent state S_t and the output o_t, with a slider over t that needs no kernel.

    Args:
        states: (T, D_k, D_v) tensor or array, the state S_t = sum_{j<=t} phi(k_j) v_j^T after each
            step t (``linear_attention_recurrent(..., return_state=True)`` on each prefix).
        outputs: (T, D_v) tensor or array, the output o_t at each step.
        start: the step shown first (and in the static picture).

    Returns one chart: the heatmap of S_t (rows: key dims, columns: value dims) beside the bars of
    o_t, both filtered by an Altair parameter ``t`` bound to a range input (0 .. T-1). The
    colour and bar scales are fixed across t, so the picture changes only where the numbers do.
    T <= 64 and D_k, D_v <= 16: the data (every S_t, rounded to 4 decimals) travels inside the chart.
    """
    S, O = _as_array(states, "states"), _as_array(outputs, "outputs")
    if S.ndim != 3 or O.ndim != 2 or O.shape != (S.shape[0], S.shape[2]):
        raise ValueError(
            f"state_explorer needs states (T, D_k, D_v) and outputs (T, D_v); got {S.shape} and {O.shape}"
        )
    T, d_k, d_v = S.shape
    if not (1 <= T <= MAX_STEPS and 1 <= d_k <= MAX_DIM and 1 <= d_v <= MAX_DIM):
        raise ValueError(
            f"state_explorer draws at most {MAX_STEPS} steps of a {MAX_DIM} x {MAX_DIM} state; got {S.shape}: "
            "slice the steps or heads you want to show"
        )
    if not 0 <= start < T:
        raise ValueError(f"start must be in 0..{T - 1}, got {start}")

    # One row per step holding the whole S_t (row-major) and o_t; a filter keeps the row for the
    # slider's t, a flatten turns it into one row per entry. Compact: ~T * D_k * D_v numbers.
    S, O = S.round(4) + 0.0, O.round(4) + 0.0  # + 0.0 turns -0.0 into 0.0
    data = pd.DataFrame({"t": np.arange(T), "S": [s.ravel().tolist() for s in S], "o": [o.tolist() for o in O]})
    step = alt.param(name="t", value=start, bind=alt.binding_range(min=0, max=T - 1, step=1, name="t "))
    s_lim = float(np.abs(S).max()) or 1.0
    o_lim = float(np.abs(O).max()) or 1.0
    cell = max(14, min(32, 320 // max(d_k, d_v)))

    def one_step(field: str) -> alt.Chart:
        return (
            alt.Chart(data)
            .transform_filter(alt.datum.t == step)
            .transform_flatten([field], as_=["value"])
            .transform_window(n="row_number()")
            .transform_calculate(i=f"floor((datum.n - 1) / {d_v})", j=f"(datum.n - 1) % {d_v}")
        )

    state = (
        one_step("S")
        .mark_rect()
        .encode(
            x=alt.X("j:O", title="value dim j"),
            y=alt.Y("i:O", title="key dim i"),
            color=alt.Color(
                "value:Q",
                scale=alt.Scale(scheme=DIVERGING, reverse=True, domain=[-s_lim, s_lim], domainMid=0),
                title="S_t[i, j]",
            ),
            tooltip=["t:O", "i:O", "j:O", alt.Tooltip("value:Q", format=".4f")],
        )
        .properties(width=cell * d_v, height=cell * d_k, title=alt.Title(alt.expr("'state S_t at t = ' + t")))
    )
    output = (
        one_step("o")
        .mark_bar()
        .encode(
            x=alt.X("j:O", title="value dim j"),
            y=alt.Y("value:Q", scale=alt.Scale(domain=[-o_lim, o_lim]), title="o_t[j]"),
            color=alt.Color(
                "value:Q", scale=alt.Scale(scheme=DIVERGING, reverse=True, domain=[-o_lim, o_lim], domainMid=0), legend=None
            ),
            tooltip=["t:O", "j:O", alt.Tooltip("value:Q", format=".4f")],
        )
        .properties(width=cell * d_v, height=cell * d_k, title=alt.Title(alt.expr("'output o_t at t = ' + t")))
    )
    return alt.hconcat(state, output, spacing=40).add_params(step).resolve_scale(color="independent")
