"""Charts for chapter t1_06: recall accuracy against decoding state bytes, and training curves."""

from __future__ import annotations

import altair as alt
import pandas as pd

__all__ = ["results_frame", "recall_vs_state_chart", "history_chart"]


def results_frame(results: dict) -> pd.DataFrame:
    """One row per (model, d_model) of a results dict (``lablib.recall.experiment.load_results``)."""
    rows = [{"model": r["model"], "d_model": r["d_model"], "accuracy": r["accuracy"], "lr": r["lr"],
             "state_bytes": r["state_bytes"], "state_KiB": r["state_bytes"] / 1024, "params": r["n_params"],
             "steps": max(run["steps"] for run in r["runs"])} for r in results["rows"]]
    if not rows:
        raise ValueError("the results hold no rows")
    return pd.DataFrame(rows)


def recall_vs_state_chart(frame: pd.DataFrame, target: float = 0.9) -> alt.LayerChart:
    """Accuracy (y) against state KiB (log x), a line per model through its widths; click the legend to pick one."""
    missing = {"model", "d_model", "accuracy", "state_KiB"} - set(frame.columns)
    if missing:
        raise ValueError(f"frame lacks columns {sorted(missing)}")
    pick = alt.selection_point(fields=["model"], bind="legend", name="pick_model")
    base = alt.Chart(frame).encode(
        x=alt.X("state_KiB:Q", scale=alt.Scale(type="log"), title="decoding state per sequence (KiB, measured, both layers)"),
        y=alt.Y("accuracy:Q", scale=alt.Scale(domain=[0, 1]), title="MQAR test accuracy (best lr)"),
        color=alt.Color("model:N", title="mixer (click to pick)"),
        opacity=alt.condition(pick, alt.value(1.0), alt.value(0.15)),
        tooltip=["model", "d_model", alt.Tooltip("accuracy:Q", format=".3f"), alt.Tooltip("state_KiB:Q", format=".1f"),
                 alt.Tooltip("lr:Q", format=".0e"), "steps"],
    )
    lines = base.mark_line(point=True).add_params(pick)
    rule = alt.Chart(pd.DataFrame({"y": [target]})).mark_rule(strokeDash=[4, 4], color="gray").encode(y="y:Q")
    return (lines + rule).properties(width=460, height=300, title="recall against state size (vocab 1024, L = 64, 4 pairs)")


def history_chart(history, title: str = "training") -> alt.Chart:
    """history: (step, accuracy, loss) triples -> accuracy and loss against step."""
    frame = pd.DataFrame(history, columns=["step", "accuracy", "loss"]).melt("step", var_name="measure")
    return alt.Chart(frame).mark_line(point=True).encode(
        x=alt.X("step:Q"), y=alt.Y("value:Q", title=None), color=alt.Color("measure:N", title=None),
        tooltip=["step", "measure", alt.Tooltip("value:Q", format=".3f")],
    ).properties(width=380, height=200, title=title)
