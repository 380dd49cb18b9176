"""Checks for the chapters' exercises: each takes the learner's function and tests it on random inputs.

A check returns a short success message (so the notebook shows it) and raises
``AssertionError`` with a hint when the function is wrong. The modules mirror the tracks.
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch

from lablib.testing import max_scaled_error

__all__ = ["compare_on_cases"]


def compare_on_cases(
    name: str, candidate: Callable, expected: Callable, cases: Iterable[tuple], *, tol: float = 1e-5
) -> str:
    """Call ``candidate(*case)`` and ``expected(*case)`` on each case and compare every returned tensor."""
    n = 0
    for case in cases:
        got, want = candidate(*case), expected(*case)
        got = got if isinstance(got, tuple) else (got,)
        want = want if isinstance(want, tuple) else (want,)
        if len(got) != len(want):
            raise AssertionError(f"{name}: expected {len(want)} return values, got {len(got)}")
        for i, (g, w) in enumerate(zip(got, want)):
            if not isinstance(g, torch.Tensor) or g.shape != w.shape:
                shape = tuple(g.shape) if isinstance(g, torch.Tensor) else type(g).__name__
                raise AssertionError(f"{name}: return value {i} should have shape {tuple(w.shape)}; got {shape}")
            err = max_scaled_error(g, w)
            if not err <= tol:
                raise AssertionError(f"{name}: return value {i} is off by {err:.2g} (tolerance {tol:g}) on case {n}")
        n += 1
    return f"✓ {name}: correct on {n} random cases"
