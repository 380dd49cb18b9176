"""Feature maps phi for the kernel trick: sim(q, k) = phi(q) . phi(k).

Softmax attention's similarity exp(q . k) is a kernel whose feature map is infinite
dimensional. Linear attention swaps it for a finite map phi: R^D -> R^F, applied to each
query and key vector independently (last dim), which is what lets the sum over keys be
regrouped into a running state.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

FeatureMap = Callable[[torch.Tensor], torch.Tensor]

__all__ = ["FeatureMap", "elu_plus_one", "relu", "identity", "taylor", "FEATURE_MAPS", "resolve_feature_map"]


def elu_plus_one(x: torch.Tensor) -> torch.Tensor:
    """elu(x) + 1 (Katharopoulos et al., 2020): positive everywhere, so normalizers never vanish."""
    return F.elu(x) + 1.0


def relu(x: torch.Tensor) -> torch.Tensor:
    """max(x, 0): non-negative but can be exactly zero, so normalized attention needs an eps."""
    return F.relu(x)


def identity(x: torch.Tensor) -> torch.Tensor:
    """phi(x) = x: plain (unnormalized) linear attention, the form used by most modern variants."""
    return x


def taylor(x: torch.Tensor) -> torch.Tensor:
    """Based's second-order Taylor map (Arora et al., 2024): (..., D) -> (..., 1 + D + D^2).

        phi(x) = [1, x / D^(1/4), vec(x x^T) / (sqrt(2) sqrt(D))]
        phi(q) . phi(k) = 1 + q.k / sqrt(D) + (q.k)^2 / (2 D)

    the first three terms of exp(q.k / sqrt(D)). Always >= 1/2 (a quadratic with no real root
    above it), so the normalizer never vanishes. Based applies it to a small projected key
    (D = 16: 273 features); the state grows as D^2.
    """
    D = x.shape[-1]
    outer = (x.unsqueeze(-1) * x.unsqueeze(-2)).flatten(-2) / (2.0 ** 0.5 * D ** 0.5)
    return torch.cat([torch.ones_like(x[..., :1]), x / D ** 0.25, outer], dim=-1)


FEATURE_MAPS: dict[str, FeatureMap] = {"elu+1": elu_plus_one, "relu": relu, "identity": identity, "taylor": taylor}


def resolve_feature_map(feature_map: str | FeatureMap) -> FeatureMap:
    """Return the callable for a name in ``FEATURE_MAPS`` or pass a callable through."""
    if callable(feature_map):
        return feature_map
    try:
        return FEATURE_MAPS[feature_map]
    except KeyError:
        raise ValueError(
            f"unknown feature map {feature_map!r}; choose one of {sorted(FEATURE_MAPS)} or pass a callable"
        ) from None
