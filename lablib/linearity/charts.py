"""Altair charts for chapter t5_03 (they render offline through :mod:`lablib.viz`'s renderer)."""

from __future__ import annotations

import altair as alt
import pandas as pd

__all__ = ["replacement_chart", "score_chart"]

FITS = ("in-sample", "held-out")
MEASURES = ("raw", "residual removed")
WEIGHTS = ("trained", "random")
CONDITIONS = ("linear map", "skip")


def _need(frame: pd.DataFrame, columns: set[str], name: str) -> None:
    missing = columns - set(frame.columns)
    if missing:
        raise ValueError(f"{name} lacks columns {sorted(missing)}")


def score_chart(scores: pd.DataFrame, models=("MiniLM", "Othello GPT")) -> alt.HConcatChart:
    """Linearity score per block, one panel per model: raw vs residual removed (colour), trained vs
    random weights (solid vs dashed).

    ``scores``: rows of :func:`lablib.linearity.experiment.score_rows` (columns ``model``, ``weights``,
    ``seed``, ``block``, ``measure``, ``fit``, ``score``). The random-weights control is drawn at its
    mean over seeds, with a bar from the lowest to the highest seed. A dropdown switches between the
    paper's in-sample score and the held-out one; the mouse wheel zooms the y axis of a panel
    (Altair parameters: they work in the static book too).
    """
    _need(scores, {"model", "weights", "block", "measure", "fit", "score"}, "scores")
    frame = (scores.groupby(["model", "weights", "measure", "fit", "block"], as_index=False)["score"]
             .agg(score="mean", low="min", high="max"))
    fit = alt.param(name="fit", value="in-sample", bind=alt.binding_select(options=list(FITS), name="score "))
    color = alt.Color("measure:N", sort=list(MEASURES), title="measure",
                      scale=alt.Scale(domain=list(MEASURES), range=["#1f77b4", "#ff7f0e"]))
    dash = alt.StrokeDash("weights:N", sort=list(WEIGHTS), title="weights",
                          legend=alt.Legend(symbolType="stroke", symbolStrokeColor="#555", symbolStrokeWidth=2),
                          scale=alt.Scale(domain=list(WEIGHTS), range=[[1, 0], [5, 3]]))
    panels = []
    for i, model in enumerate(models):
        sub = frame[frame["model"] == model]
        if sub.empty:
            raise ValueError(f"no rows for model {model!r}; models: {sorted(frame['model'].unique())}")
        zoom = alt.selection_interval(name=f"zoom_{i}", bind="scales", encodings=["y"])
        base = alt.Chart(sub).transform_filter(alt.datum.fit == fit)
        x = alt.X("block:O", title="block (hidden state l-1 -> l)")
        y = alt.Y("score:Q", title="linearity score", scale=alt.Scale(domain=[0, 1]))
        lines = base.mark_line().encode(x=x, y=y, color=color, strokeDash=dash).add_params(zoom)
        points = base.mark_point(filled=True, size=40).encode(
            x=x, y=y, color=color, shape=alt.Shape("weights:N", sort=list(WEIGHTS), legend=None),
            tooltip=["weights", "measure", "block", alt.Tooltip("score:Q", format=".4f"),
                     alt.Tooltip("low:Q", format=".4f", title="lowest seed"),
                     alt.Tooltip("high:Q", format=".4f", title="highest seed")])
        spread = base.mark_rule().encode(x=x, y="low:Q", y2="high:Q", color=color)
        panels.append(alt.layer(lines, points, spread).properties(width=260, height=230, title=model))
    return alt.hconcat(*panels).add_params(fit).properties(
        title="Linearity of consecutive layers (random weights: mean over 3 seeds, bar = range; wheel to zoom)")


def replacement_chart(rows: pd.DataFrame, model: str, metrics: dict[str, str]) -> alt.LayerChart:
    """What one model loses when block l is replaced by its fitted linear map, or skipped.

    ``rows``: :func:`lablib.linearity.experiment.minilm_replacement` / ``othello_replacement`` rows
    (``model``, ``direction``, ``block``, ``condition`` and the metric columns); ``metrics``: column ->
    axis title, the first shown by default, the others through a dropdown. Bars: the mean over the
    two fit/evaluate directions, dots: each direction; the dashed rule is the intact model. The mouse
    wheel zooms the y axis (the differences between the linear maps are a few thousandths).
    """
    _need(rows, {"model", "direction", "block", "condition", *metrics}, "rows")
    if not metrics:
        raise ValueError("metrics must name at least one column")
    sub = rows[rows["model"] == model]
    if sub.empty:
        raise ValueError(f"no rows for model {model!r}; models: {sorted(rows['model'].unique())}")
    frame = sub.melt(id_vars=["direction", "block", "condition"], value_vars=list(metrics),
                     var_name="metric", value_name="value")
    frame["metric"] = frame["metric"].map(metrics)
    names = list(metrics.values())
    metric = alt.param(name="metric", value=names[0], bind=alt.binding_select(options=names, name="metric "))
    base = alt.Chart(frame).transform_filter(alt.datum.metric == metric)
    blocks = base.transform_filter(alt.datum.condition != "original")
    zoom = alt.selection_interval(name="zoom", bind="scales", encodings=["y"])
    x = alt.X("block:O", title="block replaced")
    color = alt.Color("condition:N", sort=list(CONDITIONS), title=None,
                      scale=alt.Scale(domain=list(CONDITIONS), range=["#1f77b4", "#bbbbbb"]))
    bars = blocks.mark_bar().encode(
        x=x, xOffset=alt.XOffset("condition:N", sort=list(CONDITIONS)),
        y=alt.Y("mean(value):Q", title="the metric chosen below"),
        color=color, tooltip=["block", "condition", alt.Tooltip("mean(value):Q", format=".4f", title="mean")]).add_params(zoom)
    dots = blocks.mark_point(color="black", size=18, filled=True).encode(
        x=x, xOffset=alt.XOffset("condition:N", sort=list(CONDITIONS)), y="value:Q",
        tooltip=["block", "condition", "direction", alt.Tooltip("value:Q", format=".4f")])
    original = base.transform_filter(alt.datum.condition == "original").mark_rule(
        strokeDash=[4, 3], color="firebrick").encode(y="mean(value):Q")
    return alt.layer(bars, dots, original).add_params(metric).properties(
        width=330, height=230, title=f"{model}: one block replaced (dashed: intact model; wheel to zoom)")
