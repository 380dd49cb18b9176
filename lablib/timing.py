"""Wall-clock timing that a chapter can trust: warm-up, several repeats, then the fastest run.

The fastest of several runs is the least noisy estimate of what a computation costs: anything
else running on the machine can only add time to a run, never remove it (the reasoning behind
``timeit``'s advice to report the minimum).
"""

from __future__ import annotations

import time
from typing import Callable

import torch

__all__ = ["best_seconds"]


def best_seconds(fn: Callable[[], object], *, repeats: int = 5, warmup: int = 1) -> float:
    """Fastest wall-clock seconds of ``fn()`` over ``repeats`` runs after ``warmup`` runs (no autograd)."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1; got {repeats}")
    with torch.no_grad():
        for _ in range(warmup):
            fn()
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - start)
    return best
