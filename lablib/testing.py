"""Numerical agreement helpers shared by the tests and the chapters' executable checks."""

from __future__ import annotations

import torch

__all__ = ["max_scaled_error", "assert_agree"]


def max_scaled_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """max |actual - expected| / max(1, max |expected|).

    Floating-point error in a sum scales with the size of its largest terms, not with each
    output element, so agreement is judged relative to the tensor's scale: an element that
    is small because large terms cancelled may carry the error of those large terms.
    """
    if actual.shape != expected.shape:
        raise ValueError(f"shapes differ: actual {tuple(actual.shape)} vs expected {tuple(expected.shape)}")
    # complex tensors compare as complex128 (|a - b| is the complex modulus): .double() would drop
    # the imaginary parts silently
    wide = torch.complex128 if (actual.is_complex() or expected.is_complex()) else torch.float64
    actual, expected = actual.detach().to(wide), expected.detach().to(wide)
    scale = max(1.0, expected.abs().max().item()) if expected.numel() else 1.0
    return (actual - expected).abs().max().item() / scale if expected.numel() else 0.0


def assert_agree(actual: torch.Tensor, expected: torch.Tensor, tol: float = 1e-5, what: str = "tensors") -> None:
    """Raise AssertionError unless ``max_scaled_error(actual, expected) <= tol``."""
    err = max_scaled_error(actual, expected)
    if not err <= tol:  # also catches NaN
        raise AssertionError(f"{what} disagree: scaled max error {err:.3g} > {tol:.1g}")
