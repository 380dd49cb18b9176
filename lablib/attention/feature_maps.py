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

__all__ = ["FeatureMap", "elu_plus_one", "relu", "identity", "FEATURE_MAPS", "resolve_feature_map"]


def elu_plus_one(x: torch.Tensor) -> torch.Tensor:
    """elu(x) + 1 (Katharopoulos et al., 2020): positive everywhere, so normalizers never vanish."""
    return F.elu(x) + 1.0


def relu(x: torch.Tensor) -> torch.Tensor:
    """max(x, 0): non-negative but can be exactly zero, so normalized attention needs an eps."""
    return F.relu(x)


def identity(x: torch.Tensor) -> torch.Tensor:
    """phi(x) = x: plain (unnormalized) linear attention, the form used by most modern variants."""
    return x


FEATURE_MAPS: dict[str, FeatureMap] = {"elu+1": elu_plus_one, "relu": relu, "identity": identity}


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
