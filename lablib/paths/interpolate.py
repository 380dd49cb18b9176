"""The straight line between two networks, the loss and error along it, and its barrier.

theta(alpha) = (1 - alpha) theta_A + alpha theta_B. The barrier of a curve v(alpha) (loss or error),
as Ainsworth et al. (2023, Eq. 1) define it, is

    B = max_alpha [ v(alpha) - ((1 - alpha) v(0) + alpha v(1)) ],

the largest rise above the chord between the endpoints. Frankle et al. (2020) measure the rise
above the endpoints' *mean*, max_alpha v(alpha) - (v(0) + v(1)) / 2 (and so do the Git Re-Basin
authors' plotting scripts); ``reference="mean"`` gives that one. Both are 0 on a flat path, and they
agree when the endpoints have equal values.
"""

from __future__ import annotations

import numpy as np
import torch

from lablib.paths.mlp import MLP, Params, check_params

__all__ = ["ALPHAS", "barrier", "interpolate", "path_metrics"]

ALPHAS = np.linspace(0.0, 1.0, 25)  # as the Git Re-Basin scripts (25 points)


def interpolate(params_a: Params, params_b: Params, alpha: float) -> Params:
    """(1 - alpha) * params_a + alpha * params_b, key by key (same keys and shapes required; alpha a float)."""
    if set(params_a) != set(params_b):
        raise ValueError(f"params_a and params_b must have the same keys; got {sorted(params_a)} and {sorted(params_b)}")
    for k in params_a:
        if params_a[k].shape != params_b[k].shape:
            raise ValueError(f"{k}: shapes differ, {tuple(params_a[k].shape)} vs {tuple(params_b[k].shape)}")
    # torch.lerp computes a + alpha (b - a) for alpha < 0.5 and b - (1 - alpha)(b - a) above: exact at both
    # endpoints, and exactly a all along when b == a (so a network's path to itself is flat to the last bit).
    alpha = float(alpha)
    return {k: torch.lerp(params_a[k], params_b[k], alpha) for k in params_a}


@torch.no_grad()
def path_metrics(net: MLP, params_a: Params, params_b: Params, X: torch.Tensor, y: torch.Tensor,
                 alphas=ALPHAS) -> dict[str, np.ndarray]:
    """Loss and error of theta(alpha) on (X (N, in), y (N,)) at each alpha: {"alpha", "loss", "error"} arrays."""
    check_params(net, params_a, "params_a")
    check_params(net, params_b, "params_b")
    alphas = np.asarray(alphas, dtype=float)
    if alphas.ndim != 1 or len(alphas) < 2:
        raise ValueError(f"alphas must be 1-D with at least 2 values; got shape {alphas.shape}")
    losses, errors = [], []
    for alpha in alphas:
        logits = net(interpolate(params_a, params_b, alpha), X)
        losses.append(torch.nn.functional.cross_entropy(logits, y).item())
        errors.append((logits.argmax(1) != y).float().mean().item())
    return {"alpha": alphas, "loss": np.array(losses), "error": np.array(errors)}


def barrier(values, alphas=None, reference: str = "linear") -> float:
    """The barrier of ``values`` (K,) measured at ``alphas`` (K,), increasing from 0 to 1 (default: evenly spaced).

    ``reference="linear"``: max over alpha of v(alpha) minus the chord (1 - alpha) v(0) + alpha v(1);
    ``reference="mean"``: max over alpha of v(alpha) minus (v(0) + v(1)) / 2. Never below 0 for "linear"
    (alpha = 0 gives 0), and the "mean" barrier is at least max(v(0), v(1)) - the mean.
    """
    v = np.asarray(values, dtype=float)
    if v.ndim != 1 or len(v) < 2:
        raise ValueError(f"values must be 1-D with at least 2 entries; got shape {v.shape}")
    a = np.linspace(0.0, 1.0, len(v)) if alphas is None else np.asarray(alphas, dtype=float)
    if a.shape != v.shape:
        raise ValueError(f"alphas must have the shape of values {v.shape}; got {a.shape}")
    if a[0] != 0.0 or a[-1] != 1.0 or np.any(np.diff(a) <= 0):
        raise ValueError(f"alphas must increase from 0 to 1; got {a[0]} ... {a[-1]}")
    if reference == "linear":
        return float(np.max(v - (v[0] + a * (v[-1] - v[0]))))  # the chord; exactly v[0] where v[-1] == v[0]
    if reference == "mean":
        return float(np.max(v) - 0.5 * (v[0] + v[-1]))
    raise ValueError(f"reference must be 'linear' or 'mean'; got {reference!r}")
