"""Altair charts for chapter t5_01 (they render offline through :mod:`lablib.viz`'s renderer)."""

from __future__ import annotations

import altair as alt
import pandas as pd

__all__ = ["lambda_chart", "method_chart"]

METRICS = ("Recall@20", "Recall@50", "NDCG@100")


def lambda_chart(val_rows: pd.DataFrame, chosen: float | None = None) -> alt.LayerChart:
    """Validation metric vs EASE's lambda: one thin line per seed, the mean in bold, with two selectors.

    ``val_rows``: columns ``seed``, ``hyper`` (lambda), and the metrics in ``METRICS``; rows of other
    methods are ignored. A metric dropdown picks the y axis; a lambda dropdown moves a rule and a label
    that reads the mean at that lambda (Altair parameters: they work in the static book too).
    """
    missing = {"seed", "hyper", "method", *METRICS} - set(val_rows.columns)
    if missing:
        raise ValueError(f"val_rows lacks columns {sorted(missing)}")
    frame = val_rows[val_rows["method"] == "EASE"].melt(
        id_vars=["seed", "hyper"], value_vars=list(METRICS), var_name="metric", value_name="value")
    lambdas = sorted(frame["hyper"].unique())
    metric = alt.param(name="metric", value="NDCG@100", bind=alt.binding_select(options=list(METRICS), name="metric "))
    lam = alt.param(name="lam", value=float(chosen if chosen is not None else lambdas[len(lambdas) // 2]),
                    bind=alt.binding_select(options=[float(v) for v in lambdas], name="lambda "))
    base = alt.Chart(frame).transform_filter(alt.datum.metric == metric)
    x = alt.X("hyper:Q", scale=alt.Scale(type="log"), title="lambda (log scale)")
    seeds = base.mark_line(opacity=0.3, strokeWidth=1).encode(x=x, y=alt.Y("value:Q", title="validation metric",
                                                                              scale=alt.Scale(zero=False)),
                                                              detail="seed:N", color=alt.value("steelblue"))
    mean = base.mark_line(point=True, strokeWidth=3).encode(
        x=x, y=alt.Y("mean(value):Q"), color=alt.value("steelblue"),
        tooltip=[alt.Tooltip("hyper:Q", title="lambda"), alt.Tooltip("mean(value):Q", format=".4f", title="mean")])
    picked = base.transform_filter(alt.datum.hyper == lam)
    rule = picked.mark_rule(color="firebrick", strokeDash=[4, 3]).encode(x=x)
    label = picked.mark_text(align="left", dx=6, dy=-8, color="firebrick").encode(
        x=x, y=alt.Y("mean(value):Q"), text=alt.Text("mean(value):Q", format=".4f"))
    return alt.layer(seeds, mean, rule, label).add_params(metric, lam).properties(
        width=420, height=240, title="EASE on the validation users: lambda (mean over seeds in bold)")


def method_chart(test_rows: pd.DataFrame) -> alt.FacetChart:
    """Test metrics per method: bars at the mean over seeds, error bars at mean +- one standard deviation.

    ``test_rows``: columns ``method``, ``seed`` and the metrics in ``METRICS``, one row per (method, seed).
    """
    missing = {"seed", "method", *METRICS} - set(test_rows.columns)
    if missing:
        raise ValueError(f"test_rows lacks columns {sorted(missing)}")
    frame = test_rows.melt(id_vars=["method", "seed"], value_vars=list(METRICS), var_name="metric", value_name="value")
    order = list(frame.groupby("method")["value"].mean().sort_values().index)
    bars = alt.Chart().mark_bar().encode(
        x=alt.X("method:N", sort=order, title=None), y=alt.Y("mean(value):Q", title="test users (mean, +- 1 sd)"),
        color=alt.Color("method:N", sort=order, legend=None),
        tooltip=["method", alt.Tooltip("mean(value):Q", format=".4f", title="mean"),
                 alt.Tooltip("stdev(value):Q", format=".4f", title="sd")])
    errors = alt.Chart().mark_errorbar(extent="stdev", color="black").encode(
        x=alt.X("method:N", sort=order), y=alt.Y("value:Q"))
    return alt.layer(bars, errors, data=frame).properties(width=190, height=220).facet(
        column=alt.Column("metric:N", sort=list(METRICS), title=None))
