"""Wall-clock timing that a chapter can trust: warm-up, several repeats, the median."""

from __future__ import annotations

import statistics
import time
from typing import Callable

import torch

__all__ = ["median_seconds"]


def median_seconds(fn: Callable[[], object], *, repeats: int = 5, warmup: int = 1) -> float:
    """Median wall-clock seconds of ``fn()`` over ``repeats`` runs after ``warmup`` runs (no autograd)."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1; got {repeats}")
    with torch.no_grad():
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return statistics.median(times)
