"""Altair charts for chapter t5_02 (they render offline through :mod:`lablib.viz`'s renderer)."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

__all__ = ["forecast_chart", "forecast_frame", "mse_chart"]


def forecast_frame(series: str, X, Y, forecasts: dict, tail: int) -> pd.DataFrame:
    """Long-format rows for :func:`forecast_chart` from n windows of one series.

    ``X`` (n, L) lookbacks, ``Y`` (n, H) targets, ``forecasts`` {model name: (n, H)}; the last ``tail``
    lookback points are drawn before the origin. Values rounded to 3 decimals (the chart's data is
    stored in the notebook).
    """
    X, Y = np.asarray(X, dtype=float), np.asarray(Y, dtype=float)
    if X.ndim != 2 or Y.ndim != 2 or len(X) != len(Y) or not 0 < tail <= X.shape[1]:
        raise ValueError(f"need X (n, L), Y (n, H) and 0 < tail <= L; got {X.shape}, {Y.shape}, tail {tail}")
    rows = []
    for w in range(len(X)):
        truth = np.concatenate([X[w, -tail:], Y[w]])
        rows += [(series, w, t, "truth", v) for t, v in zip(range(-tail, Y.shape[1]), truth)]
        for name, pred in forecasts.items():
            pred = np.asarray(pred, dtype=float)
            if pred.shape != Y.shape:
                raise ValueError(f"forecasts[{name!r}] must have the targets' shape {Y.shape}; got {pred.shape}")
            rows += [(series, w, t, name, v) for t, v in enumerate(pred[w])]
    frame = pd.DataFrame(rows, columns=["series", "window", "step", "model", "value"])
    return frame.assign(value=frame["value"].round(3))


def forecast_chart(frame: pd.DataFrame, models: list[str] | None = None) -> alt.LayerChart:
    """Forecasts against the truth on a few test windows, with a window slider and a series selector.

    ``frame``: long-format rows with columns ``series``, ``window`` (0, 1, ... within a series),
    ``step`` (time relative to the forecast origin: negative in the lookback, 0.. H - 1 ahead),
    ``model`` (``"truth"`` or a model name) and ``value``. The slider picks the window, the dropdown
    the series; clicking a model in the legend highlights it (Altair parameters: they work in the
    static book too).
    """
    missing = {"series", "window", "step", "model", "value"} - set(frame.columns)
    if missing:
        raise ValueError(f"frame lacks columns {sorted(missing)}")
    series = list(dict.fromkeys(frame["series"]))
    n_windows = int(frame["window"].max()) + 1
    models = models or [m for m in dict.fromkeys(frame["model"]) if m != "truth"]
    window = alt.param(name="window", value=0, bind=alt.binding_range(min=0, max=n_windows - 1, step=1, name="test window "))
    which = alt.param(name="series", value=series[0], bind=alt.binding_select(options=series, name="series "))
    pick = alt.selection_point(fields=["model"], bind="legend")
    # inline values: every window of every series travels with the chart (Altair's 5,000-row guard is for
    # data frames; the slider needs all of them, about half a megabyte here)
    values = alt.InlineData(values=frame[["series", "window", "step", "model", "value"]].to_dict("records"))
    base = alt.Chart(values).transform_filter((alt.datum.window == window) & (alt.datum.series == which))
    x = alt.X("step:Q", title="steps from the forecast origin (lookback < 0 <= horizon)")
    truth = base.transform_filter(alt.datum.model == "truth").mark_line(color="black", strokeWidth=2).encode(
        x=x, y=alt.Y("value:Q", title="standardized value", scale=alt.Scale(zero=False)))
    lines = base.transform_filter(alt.datum.model != "truth").mark_line(strokeWidth=1.6).encode(
        x=x, y="value:Q", color=alt.Color("model:N", sort=models, title="model (click to highlight)"),
        opacity=alt.condition(pick, alt.value(0.95), alt.value(0.12)),
        tooltip=["model:N", "step:Q", alt.Tooltip("value:Q", format=".3f")])
    origin = alt.Chart(pd.DataFrame({"step": [0]})).mark_rule(strokeDash=[4, 3], color="gray").encode(x="step:Q")
    return alt.layer(truth, lines, origin).add_params(window, which, pick).properties(
        width=560, height=260, title="test windows: truth (black) and each model's forecast")


def mse_chart(frame: pd.DataFrame, metric: str = "test_mse") -> alt.FacetChart:
    """Test MSE per model: bars at the mean over seeds, error bars at mean +- one sd, one panel per series and horizon.

    ``frame``: columns ``series``, ``horizon``, ``model``, ``seed`` and ``metric``, one row per
    (series, horizon, model, seed); a deterministic method has one row (no error bar). Log y axis:
    the errors span orders of magnitude.
    """
    missing = {"series", "horizon", "model", "seed", metric} - set(frame.columns)
    if missing:
        raise ValueError(f"frame lacks columns {sorted(missing)}")
    frame = frame.assign(panel=frame["series"] + ", H = " + frame["horizon"].astype(str))
    order = list(frame.groupby("model")[metric].mean().sort_values().index)
    y = alt.Y(f"mean({metric}):Q", scale=alt.Scale(type="log"), title="test MSE (mean over seeds, log scale)")
    bars = alt.Chart().mark_bar().encode(
        x=alt.X("model:N", sort=order, title=None), y=y, color=alt.Color("model:N", sort=order, legend=None),
        tooltip=["model", alt.Tooltip(f"mean({metric}):Q", format=".4f", title="mean"),
                 alt.Tooltip(f"stdev({metric}):Q", format=".4f", title="sd"), alt.Tooltip("count():Q", title="seeds")])
    errors = alt.Chart().mark_errorbar(extent="stdev", color="black").encode(
        x=alt.X("model:N", sort=order), y=alt.Y(f"{metric}:Q", scale=alt.Scale(type="log"), title=None))
    return alt.layer(bars, errors, data=frame).properties(width=230, height=170).facet(
        facet=alt.Facet("panel:N", title=None, sort=list(dict.fromkeys(frame["panel"]))), columns=2,
        title="test MSE: mean over seeds (log scale), error bars +- 1 sd"
    ).resolve_scale(x="independent", y="independent")
