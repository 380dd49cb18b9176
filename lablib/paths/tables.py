"""Tidy tables from the shipped results (for the charts and the chapter's claims), and a log-log slope fit."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["gap_frame", "loglog_slope", "rebasin_frames", "spawn_frame"]

PATH_METRICS = {"test error": "test_error", "test loss": "test_loss", "train loss": "train_loss", "train error": "train_error"}


def rebasin_frames(results: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(paths, barriers) from the ``rebasin`` results, in the shape :func:`lablib.paths.charts.path_chart` takes."""
    alphas = results["alphas"]
    paths, barriers = [], []
    for row in results["rows"]:
        for kind in ("naive", "matched"):
            for metric, key in PATH_METRICS.items():
                values = row[f"{key}_path_{kind}"]
                paths += [{"width": row["width"], "seed": row["seed"], "kind": kind, "metric": metric, "alpha": a, "value": v}
                          for a, v in zip(alphas, values)]
                barriers.append({"width": row["width"], "seed": row["seed"], "kind": kind, "metric": metric,
                                 "barrier": row[f"{key}_barrier_{kind}"]})
    return pd.DataFrame(paths), pd.DataFrame(barriers)


def spawn_frame(results: dict, metric: str = "test_error_barrier_naive") -> pd.DataFrame:
    """One row per (optimizer, seed, k): columns optimizer, seed, k (int or "independent"), barrier, test errors."""
    return pd.DataFrame([{"optimizer": r["optimizer"], "seed": r["seed"], "k": r["k"], "barrier": r[metric],
                          "test_error_a": r["test_error_a"], "test_error_b": r["test_error_b"]} for r in results["rows"]])


def gap_frame(results: dict, step: int | None = None) -> pd.DataFrame:
    """One row per (width, seed) at ``step`` (default: the last): the columns of the side-by-side history."""
    rows = []
    for row in results["rows"]:
        history = row["history"]
        entry = history[-1] if step is None else next(h for h in history if h["step"] == step)
        rows.append({"width": row["width"], "seed": row["seed"], **entry})
    return pd.DataFrame(rows)


def loglog_slope(x, y) -> float:
    """Least-squares slope of log y against log x (x, y 1-D, positive): y ~ x^slope."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 2:
        raise ValueError(f"x and y must be 1-D of the same length >= 2; got {x.shape} and {y.shape}")
    if (x <= 0).any() or (y <= 0).any():
        raise ValueError("x and y must be positive (log-log fit)")
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])
