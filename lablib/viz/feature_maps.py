"""Charts for chapter t1_05, "What replaces softmax: feature maps". Each builder returns an Altair chart.

Attention matrices travel compactly (one row per matrix holding its entries as a list, flattened
by a Vega transform), rounded to 4 decimals, so the specs stay small and the same on every run.
The selectors are Altair parameters: they work in the static book, without a kernel.
"""

from __future__ import annotations

from typing import Any

import altair as alt
import numpy as np
import pandas as pd

from lablib._checks import check_frame

__all__ = ["attention_heatmaps", "attention_matrix_explorer", "map_property_chart", "performer_error_chart"]

MAX_T = 48  # attention matrices up to 48 x 48 (the data travels inside the chart)
WEIGHT_SCHEME = "blues"


def _matrices(matrices: dict[str, Any], name: str) -> dict[str, np.ndarray]:
    if not isinstance(matrices, dict) or not matrices:
        raise ValueError(f"{name} takes a non-empty dict name -> (T, T) attention matrix")
    out = {}
    for key, m in matrices.items():
        a = m.detach().cpu().double().numpy() if hasattr(m, "detach") else np.asarray(m, dtype=float)
        if a.ndim != 2 or a.shape[0] != a.shape[1] or not 1 <= a.shape[0] <= MAX_T:
            raise ValueError(f"{name}: matrix {key!r} must be (T, T) with T <= {MAX_T}; got shape {a.shape}")
        if not np.isfinite(a).all():
            raise ValueError(f"{name}: matrix {key!r} has NaN or infinite entries")
        out[str(key)] = a
    if len({a.shape for a in out.values()}) != 1:
        raise ValueError(f"{name}: all matrices must have one shape; got {[a.shape for a in out.values()]}")
    return out


def _compact(mats: dict[str, np.ndarray]) -> pd.DataFrame:
    return pd.DataFrame({"map": list(mats), "w": [(a.round(4) + 0.0).ravel().tolist() for a in mats.values()]})


def _heatmap(data: pd.DataFrame, T: int, w_max: float, cell: int, title, filter_expr=None) -> alt.Chart:
    chart = alt.Chart(data)
    if filter_expr is not None:
        chart = chart.transform_filter(filter_expr)
    return (
        chart.transform_flatten(["w"], as_=["weight"])
        .transform_window(n="row_number()", groupby=["map"])
        .transform_calculate(query=f"floor((datum.n - 1) / {T})", key=f"(datum.n - 1) % {T}")
        .mark_rect()
        .encode(
            x=alt.X("key:O", title="key j", axis=alt.Axis(values=list(range(0, T, 8)))),
            y=alt.Y("query:O", title="query i", axis=alt.Axis(values=list(range(0, T, 8)))),
            color=alt.Color("weight:Q", scale=alt.Scale(scheme=WEIGHT_SCHEME, type="sqrt", domain=[0, w_max]),
                            title="weight"),
            tooltip=["map:N", "query:O", "key:O", alt.Tooltip("weight:Q", format=".4f")],
        )
        .properties(width=cell * T, height=cell * T, title=title)
    )


def attention_heatmaps(matrices: dict[str, Any]) -> alt.HConcatChart:
    """Attention matrices side by side (e.g. softmax, Hedgehog before and after training), one colour scale.

    ``matrices``: name -> (T, T) array or tensor of attention weights (rows: queries), T <= 48.
    The colour is on a square-root scale so that small weights stay visible next to spikes.
    """
    mats = _matrices(matrices, "attention_heatmaps")
    T = next(iter(mats.values())).shape[0]
    w_max = float(max(a.max() for a in mats.values())) or 1.0
    cell = max(4, min(10, 240 // T))
    data = _compact(mats)
    panels = [_heatmap(data, T, w_max, cell, name, alt.datum.map == name) for name in mats]
    return alt.hconcat(*panels, spacing=20)


def attention_matrix_explorer(
    matrices: dict[str, Any], reference: str = "softmax", start: str | None = None
) -> alt.HConcatChart:
    """The reference attention matrix beside the one chosen in a dropdown (an Altair parameter ``fmap``).

    ``matrices``: name -> (T, T) weights, including ``reference``; ``start``: the map shown first
    (default: the first one that is not the reference). Works in the static book (no kernel).
    """
    mats = _matrices(matrices, "attention_matrix_explorer")
    if reference not in mats:
        raise ValueError(f"reference {reference!r} is not among the matrices {list(mats)}")
    options = [name for name in mats if name != reference]
    if not options:
        raise ValueError("attention_matrix_explorer needs at least one matrix besides the reference")
    start = options[0] if start is None else start
    if start not in options:
        raise ValueError(f"start must be one of {options}; got {start!r}")
    T = mats[reference].shape[0]
    w_max = float(max(a.max() for a in mats.values())) or 1.0
    cell = max(5, min(10, 300 // T))
    data = _compact(mats)
    pick = alt.param(name="fmap", value=start, bind=alt.binding_select(options=options, name="feature map "))
    left = _heatmap(data, T, w_max, cell, reference, alt.datum.map == reference)
    right = _heatmap(data, T, w_max, cell, alt.Title(alt.expr("fmap")), alt.datum.map == pick)
    return alt.hconcat(left, right, spacing=30).add_params(pick)


def map_property_chart(df: pd.DataFrame) -> alt.LayerChart:
    """Spikiness against monotonicity: one labelled point per map, softmax in red.

    Args:
        df: one row per map: ``map`` (str), ``entropy`` (mean attention-row entropy, nats; lower is
            spikier), ``monotonicity`` (Spearman correlation of phi(q).phi(k) with q.k).

    Softmax sits at monotonicity 1 with its own entropy; a map close to it is both.
    """
    check_frame(df, ["map", "entropy", "monotonicity"], "map_property_chart")
    df = df[["map", "entropy", "monotonicity"]].assign(is_softmax=lambda d: d["map"] == "softmax")
    base = alt.Chart(df).encode(
        x=alt.X("entropy:Q", title="attention entropy, nats (lower: spikier)", scale=alt.Scale(zero=False)),
        y=alt.Y("monotonicity:Q", title="monotonicity in q.k (Spearman)", scale=alt.Scale(domain=[0, 1.05])),
        tooltip=["map:N", alt.Tooltip("entropy:Q", format=".3f"), alt.Tooltip("monotonicity:Q", format=".3f")],
    )
    points = base.mark_point(filled=True, size=80).encode(
        color=alt.condition(alt.datum.is_softmax, alt.value("firebrick"), alt.value("steelblue")))
    labels = base.mark_text(align="left", dx=7, dy=-6, fontSize=11).encode(text="map:N")
    return alt.layer(points, labels, title="What softmax has: low entropy and monotonicity").properties(
        width=420, height=280)


def performer_error_chart(df: pd.DataFrame) -> alt.LayerChart:
    """Performer's error against the number of random features m, log-log, one line per head.

    Args:
        df: one row per (head, m): ``head`` (str), ``m`` (int), ``error`` (float > 0, e.g. the RMS over
            seeds of the relative error against exact softmax attention).

    Dashed grey: C m^(-1/2) through each head's first point, the Monte Carlo rate.
    """
    check_frame(df, ["head", "m", "error"], "performer_error_chart")
    df = df[["head", "m", "error"]]
    if not (df.error > 0).all() or not (df.m > 0).all():
        raise ValueError("performer_error_chart: m and error must be > 0 (log axes)")
    first = df.sort_values("m").groupby("head", sort=False).head(1).set_index("head")
    rate = df.assign(rate=[first.loc[h, "error"] * (m / first.loc[h, "m"]) ** -0.5 for h, m in zip(df["head"], df["m"])])
    x = alt.X("m:Q", scale=alt.Scale(type="log", base=2), axis=alt.Axis(format="d"), title="random features m")
    y_scale = alt.Scale(type="log")
    measured = alt.Chart(df).mark_line(point=True).encode(
        x=x, y=alt.Y("error:Q", scale=y_scale, title="relative error vs exact softmax attention"),
        color=alt.Color("head:N", title="head"),
        tooltip=["head:N", "m:Q", alt.Tooltip("error:Q", format=".4f")])
    reference = alt.Chart(rate).mark_line(strokeDash=[4, 4], color="gray", opacity=0.8).encode(
        x=x, y=alt.Y("rate:Q", scale=y_scale), detail="head:N")
    return alt.layer(measured, reference, title="Performer: error falls as m^(-1/2) (dashed)").properties(
        width=420, height=280)
