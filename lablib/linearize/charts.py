"""Altair charts for chapter t1_07 (they render offline through :mod:`lablib.viz`'s renderer)."""

from __future__ import annotations

import altair as alt
import pandas as pd

__all__ = ["layer_chart", "share_chart"]

LAYER_METRICS = {
    "attention_kl": "attention KL(softmax || linearized), teacher's inputs",
    "head_output_cos": "cosine of the heads' outputs, teacher's inputs",
    "hidden_cos": "cosine of the block's output, model run on its own",
}


def _need(frame: pd.DataFrame, columns: set[str], name: str) -> None:
    missing = columns - set(frame.columns)
    if missing:
        raise ValueError(f"{name} lacks columns {sorted(missing)}")


def layer_chart(layers: pd.DataFrame, stages: list[str], models=("Othello GPT", "MiniLM")) -> alt.HConcatChart:
    """Per-layer closeness to the teacher, one panel per model, one line per stage.

    ``layers``: rows with ``model``, ``stage``, ``layer`` and the columns of ``LAYER_METRICS``
    (:func:`lablib.linearize.metrics.layer_metrics` rows tagged with model and stage); ``stages`` in
    legend order. A dropdown picks the measure; clicking a legend entry highlights a stage (Altair
    parameters, so it works in the static book too).
    """
    _need(layers, {"model", "stage", "layer", *LAYER_METRICS}, "layers")
    frame = layers.melt(id_vars=["model", "stage", "layer"], value_vars=list(LAYER_METRICS),
                        var_name="measure", value_name="value")
    frame["measure"] = frame["measure"].map(LAYER_METRICS)
    frame = frame[frame["stage"].isin(list(stages))]
    names = list(LAYER_METRICS.values())
    measure = alt.param(name="measure", value=names[0], bind=alt.binding_select(options=names, name="measure "))
    pick = alt.selection_point(name="stage_pick", fields=["stage"], bind="legend")
    color = alt.Color("stage:N", sort=list(stages), scale=alt.Scale(domain=list(stages), scheme="tableau10"))
    panels = []
    for model in models:
        sub = frame[frame["model"] == model]
        if sub.empty:
            raise ValueError(f"no rows for model {model!r}; models: {sorted(frame['model'].unique())}")
        base = alt.Chart(sub).transform_filter(alt.datum.measure == measure)
        enc = dict(x=alt.X("layer:O", title="layer"), y=alt.Y("value:Q", title="the measure chosen below"),
                   color=color, opacity=alt.condition(pick, alt.value(1.0), alt.value(0.12)),
                   tooltip=["stage", "layer", alt.Tooltip("value:Q", format=".4f")])
        panel = alt.layer(base.mark_line(), base.mark_point(filled=True, size=45).encode(**enc))
        panel = panel.encode(**enc).properties(width=280, height=230, title=model)
        panels.append(panel.add_params(pick) if not panels else panel)  # one selection, defined once
    return alt.hconcat(*panels).add_params(measure).properties(
        title="How close each layer stays to the softmax teacher (click a stage in the legend)")


def share_chart(table: pd.DataFrame, metrics: dict[str, str]) -> alt.VConcatChart:
    """The share of the teacher's quality each stage recovers, a bar per stage, a panel per model.

    ``table``: rows with ``model``, ``stage``, ``metric`` (a key of ``metrics``, the label to show),
    ``share`` (stage's value / teacher's) and ``value``; stages keep their row order. A dropdown
    picks the metric shown for each model. The dashed rule is the teacher (share 1).
    """
    _need(table, {"model", "stage", "metric", "share", "value"}, "table")
    frame = table.copy()
    frame["metric"] = frame["metric"].map(metrics)
    order = list(dict.fromkeys(frame["stage"]))
    charts = []
    for i, model in enumerate(dict.fromkeys(frame["model"])):
        sub = frame[frame["model"] == model]
        present = set(sub["metric"])
        names = [label for label in metrics.values() if label in present]  # in the order of ``metrics``
        pick = alt.param(name=f"metric_{i}", value=names[0],
                         bind=alt.binding_select(options=names, name=f"{model} metric "))
        base = alt.Chart(sub).transform_filter(alt.datum.metric == pick)
        bars = base.mark_bar().encode(
            y=alt.Y("stage:N", sort=order, title=None),
            x=alt.X("share:Q", title="share of the teacher's value", scale=alt.Scale(domain=[0, 1.05])),
            color=alt.Color("stage:N", sort=order, legend=None, scale=alt.Scale(scheme="tableau10")),
            tooltip=["stage", "metric", alt.Tooltip("value:Q", format=".4f"), alt.Tooltip("share:Q", format=".3f")])
        rule = alt.Chart(pd.DataFrame({"x": [1.0]})).mark_rule(strokeDash=[4, 3], color="black").encode(x="x:Q")
        charts.append(alt.layer(bars, rule).add_params(pick).properties(width=420, height=24 * len(order), title=model))
    return alt.vconcat(*charts).properties(title="Share of the teacher's quality recovered, stage by stage")
