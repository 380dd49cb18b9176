"""Altair charts for chapter t5_04 (they render offline through :mod:`lablib.viz`'s renderer).

Each builder takes a tidy ``pandas.DataFrame`` (the columns named in its docstring) and returns a
chart whose interaction (width and metric selectors) is made of Altair parameters, so it works in
the static book too.
"""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from lablib._checks import check_frame

__all__ = ["gap_chart", "path_chart", "spawn_chart"]

KIND_COLORS = alt.Scale(domain=["naive", "matched"], range=["#d62728", "#1f77b4"])


def path_chart(paths: pd.DataFrame, barriers: pd.DataFrame, width: int | None = None) -> alt.HConcatChart:
    """Left: loss or error along the line from A to B, before (naive) and after weight matching; right: barrier vs width.

    ``paths``: one row per point, columns ``width``, ``seed``, ``kind`` ("naive" / "matched"), ``metric``
    ("test error", "test loss", ...), ``alpha``, ``value``. ``barriers``: columns ``width``, ``seed``, ``kind``,
    ``metric``, ``barrier``. A width selector picks the left panel's networks and moves the rule on the right;
    a metric selector switches both panels. Thin lines: seeds; thick: their mean.
    """
    check_frame(paths, ["width", "seed", "kind", "metric", "alpha", "value"], "path_chart")
    check_frame(barriers, ["width", "seed", "kind", "metric", "barrier"], "path_chart (barriers)")
    widths = sorted(int(w) for w in paths["width"].unique())
    metrics = list(dict.fromkeys(paths["metric"]))
    w_param = alt.param(name="width", value=int(width if width is not None else widths[len(widths) // 2]),
                        bind=alt.binding_select(options=widths, name="hidden width "))
    m_param = alt.param(name="metric", value=metrics[0], bind=alt.binding_select(options=metrics, name="metric "))
    base = alt.Chart(paths).transform_filter((alt.datum.width == w_param) & (alt.datum.metric == m_param))
    color = alt.Color("kind:N", scale=KIND_COLORS, title="network B")
    x = alt.X("alpha:Q", title="alpha (0 = network A, 1 = network B)")
    seeds = base.mark_line(opacity=0.35, strokeWidth=1).encode(x=x, y=alt.Y("value:Q", title="along the path"),
                                                               color=color, detail="seed:N")
    mean = base.mark_line(strokeWidth=3).encode(
        x=x, y="mean(value):Q", color=color,
        tooltip=["kind", alt.Tooltip("alpha:Q", format=".3f"), alt.Tooltip("mean(value):Q", format=".4f", title="mean")])
    left = alt.layer(seeds, mean).properties(width=330, height=240, title="along the straight line A -> B")
    bars = alt.Chart(barriers).transform_filter(alt.datum.metric == m_param)
    bx = alt.X("width:Q", scale=alt.Scale(type="log", base=2), axis=alt.Axis(values=widths, format="d"),
               title="hidden width (log scale)")
    points = bars.mark_circle(size=25, opacity=0.5).encode(x=bx, y=alt.Y("barrier:Q", title="barrier"), color=color)
    line = bars.mark_line(strokeWidth=3, point=True).encode(
        x=bx, y="mean(barrier):Q", color=color,
        tooltip=["kind", "width:Q", alt.Tooltip("mean(barrier):Q", format=".4f", title="mean"),
                 alt.Tooltip("stdev(barrier):Q", format=".4f", title="sd")])
    rule = alt.Chart(pd.DataFrame({"w": widths})).transform_filter(alt.datum.w == w_param).mark_rule(
        color="gray", strokeDash=[4, 3]).encode(x="w:Q")
    right = alt.layer(points, line, rule).properties(width=260, height=240, title="barrier vs width (mean in bold)")
    return alt.hconcat(left, right).add_params(w_param, m_param)


def spawn_chart(rows: pd.DataFrame, one_example: float | None = None) -> alt.HConcatChart:
    """Barrier between the two children of a spawn against the spawn step k, one line per optimizer.

    ``rows``: columns ``optimizer``, ``seed``, ``k`` (int, or "independent" for two independent inits),
    ``barrier``. Left: points (seeds), line (mean) and, dashed, the mean barrier of independently
    initialized pairs. Right: the spawned pairs alone on their own scale, with a dotted rule at
    ``one_example`` (e.g. one test image's share of the error) if given. The x axes are symlog so that
    k = 0 shows. Clicking the legend highlights one optimizer.
    """
    check_frame(rows, ["optimizer", "seed", "k", "barrier"], "spawn_chart")
    spawned = rows[rows["k"] != "independent"].assign(k=lambda f: f["k"].astype(int))
    independent = rows[rows["k"] == "independent"].groupby("optimizer", as_index=False)["barrier"].mean()
    pick = alt.selection_point(name="optimizer_pick", fields=["optimizer"], bind="legend")
    color = alt.Color("optimizer:N", title="optimizer (click)")
    x = alt.X("k:Q", scale=alt.Scale(type="symlog", constant=1), axis=alt.Axis(values=sorted(spawned["k"].unique())),
              title="spawn step k (symlog scale)")
    opacity = alt.condition(pick, alt.value(1.0), alt.value(0.15))

    def spawned_layers(title: str):
        points = alt.Chart(spawned).mark_circle(size=30).encode(x=x, y=alt.Y("barrier:Q", title=title),
                                                                color=color, opacity=opacity)
        line = alt.Chart(spawned).mark_line(strokeWidth=2.5).encode(
            x=x, y="mean(barrier):Q", color=color, opacity=opacity,
            tooltip=["optimizer", "k:Q", alt.Tooltip("mean(barrier):Q", format=".4f", title="mean"),
                     alt.Tooltip("stdev(barrier):Q", format=".4f", title="sd")])
        return [line, points]

    rules = alt.Chart(independent).mark_rule(strokeDash=[5, 3]).encode(
        y="barrier:Q", color=color, opacity=opacity,
        tooltip=["optimizer", alt.Tooltip("barrier:Q", format=".4f", title="independent inits (mean)")])
    line, points = spawned_layers("test error barrier")
    left = alt.layer(rules, line, points.add_params(pick)).properties(
        width=330, height=240, title="spawned copies (lines) vs independent inits (dashed)")
    zoom = spawned_layers("test error barrier (spawned pairs only)")
    if one_example is not None:
        zoom.append(alt.Chart(pd.DataFrame({"y": [float(one_example)]})).mark_rule(color="gray", strokeDash=[2, 2]).encode(
            y="y:Q", tooltip=[alt.Tooltip("y:Q", format=".4f", title="one test example")]))
    right = alt.layer(*zoom).properties(width=250, height=240, title="zoom: the spawned pairs (dotted: one test image)")
    return alt.hconcat(left, right)  # the selection lives in the left panel's points and acts on both


def gap_chart(rows: pd.DataFrame) -> alt.LayerChart:
    """A network vs its linearization after training: a metric against width on log-log axes, with a 1/sqrt(width) guide.

    ``rows``: columns ``width``, ``seed``, ``metric`` (e.g. "rms output gap", "weight change"), ``value`` > 0.
    A selector picks the metric. The grey guide is c / sqrt(width) through the mean at the smallest width.
    """
    check_frame(rows, ["width", "seed", "metric", "value"], "gap_chart")
    if not (rows["value"] > 0).all():
        raise ValueError("gap_chart: every value must be > 0 (log axes)")
    metrics = list(dict.fromkeys(rows["metric"]))
    widths = sorted(int(w) for w in rows["width"].unique())
    means = rows.groupby(["metric", "width"], as_index=False)["value"].mean()
    guide = []
    for metric in metrics:
        first = means[(means.metric == metric) & (means.width == widths[0])]["value"].iloc[0]
        guide += [{"metric": metric, "width": w, "value": first * np.sqrt(widths[0] / w)} for w in widths]
    m_param = alt.param(name="gap_metric", value=metrics[0], bind=alt.binding_select(options=metrics, name="metric "))
    x = alt.X("width:Q", scale=alt.Scale(type="log", base=2), axis=alt.Axis(values=widths, format="d"),
              title="hidden width (log scale)")
    y = alt.Y("value:Q", scale=alt.Scale(type="log"), title="after training (log scale)")
    points = alt.Chart(rows).transform_filter(alt.datum.metric == m_param).mark_circle(size=30, opacity=0.6).encode(
        x=x, y=y, tooltip=["width:Q", "seed:N", alt.Tooltip("value:Q", format=".4g")])
    line = alt.Chart(means).transform_filter(alt.datum.metric == m_param).mark_line(point=True, strokeWidth=2.5).encode(
        x=x, y=alt.Y("value:Q", scale=alt.Scale(type="log")), tooltip=["width:Q", alt.Tooltip("value:Q", format=".4g", title="mean")])
    ref = alt.Chart(pd.DataFrame(guide)).transform_filter(alt.datum.metric == m_param).mark_line(
        color="gray", strokeDash=[5, 3]).encode(x=x, y=alt.Y("value:Q", scale=alt.Scale(type="log")))
    return alt.layer(ref, line, points).add_params(m_param).properties(
        width=420, height=260, title="network vs linearized network (dashed: 1/sqrt(width))")
