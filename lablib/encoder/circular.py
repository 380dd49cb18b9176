"""Beyond one direction: are days and months arranged on a circle?

Engels et al. (2024, "Not all language model features are linear") found days of the week and
months of the year on circles in 2-D subspaces of GPT-2 and Mistral 7B: a feature that is
*multi-dimensional* and *cyclic*, so no single direction can hold it. Here the same question is
asked of all-MiniLM-L6-v2, in the simplest way:

1. embed every name in a few templates (``calendar_prompts``) and average over the templates,
   one point per name at a chosen layer;
2. project the centred points onto their top two principal components;
3. read off each point's angle and compare the angular order with the calendar order.

Statistics (``circle_stats``):

* ``adjacent``: how many of the n cyclic neighbour pairs (Mon-Tue, ..., Sun-Mon) are next to
  each other in angular order, out of n. A perfect circle in calendar order scores n; a random
  arrangement about 2 on average (each of n angular neighbour pairs is a calendar pair with
  probability 2 / (n - 1)).
* ``p_value``: the fraction of random relabellings (permutations of the names over the same
  points) that score at least as high; the projection does not look at the labels, so this is an
  exact permutation test of "calendar order is reflected in the angles".
* ``radius_cv``: spread of the distances from the centre, std / mean (0 for a perfect circle).
* ``explained``: the share of the variance of the n points that the two components keep.

A perfect angular order does not by itself prove a *closed* loop: a 1-D ordinal feature (early
to late in the week) bent into a horseshoe by PCA would score the same, the loop closing through
the gap between its two ends. Two checks in the full 384-dimensional space tell them apart:

* ``wrap_ratio``: the distance from the last name to the first (Sunday-Monday,
  December-January) over the median distance between the other consecutive names; about 1 on a
  circle, large on a horseshoe or a line.
* ``r_cyclic`` and ``r_linear``: the correlation of all pairwise distances with the cyclic step
  min(|i - j|, n - |i - j|) and with the linear step |i - j|; a circle favours the first.
"""

from __future__ import annotations

import torch

from lablib.encoder.model import embed
from lablib.encoder.sentences import calendar_prompts

__all__ = ["calendar_points", "circle_stats", "cyclic_adjacency", "pca2"]


def calendar_points(kind: str, layer: int) -> tuple[tuple[str, ...], torch.Tensor]:
    """(names, points): points (n, 384) float64, the mean over templates of each name's pooled
    state at ``layer``. ``kind``: "days" (n = 7) or "months" (n = 12)."""
    names, prompts = calendar_prompts(kind)
    flat = [p for group in prompts for p in group]
    x = embed(flat, layer).double().view(len(names), len(prompts[0]), -1)
    return names, x.mean(1)


def pca2(points: torch.Tensor) -> tuple[torch.Tensor, float]:
    """(n, d) -> ((n, 2) coordinates on the top two principal components of the centred points,
    share of variance they keep)."""
    points = torch.as_tensor(points).double()
    if points.ndim != 2 or points.shape[0] < 3:
        raise ValueError(f"points must be (n, d) with n >= 3; got {tuple(points.shape)}")
    centred = points - points.mean(0)
    u, s, _ = torch.linalg.svd(centred, full_matrices=False)
    return u[:, :2] * s[:2], (s[:2].square().sum() / s.square().sum()).item()


def cyclic_adjacency(angles: torch.Tensor, order: torch.Tensor | None = None) -> int:
    """Number of calendar-neighbour pairs (i, i + 1 mod n) of ``order`` (default: 0..n-1) that are
    neighbours when the points are sorted by angle (in either direction)."""
    n = angles.shape[0]
    order = torch.arange(n) if order is None else order
    ring = order[torch.argsort(angles)].tolist()  # calendar positions in angular order
    around = {frozenset((ring[i], ring[(i + 1) % n])) for i in range(n)}
    return sum(frozenset((i, (i + 1) % n)) in around for i in range(n))


def _corr(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a - a.mean(), b - b.mean()
    return (a @ b / (a.norm() * b.norm())).item()


def circle_stats(points: torch.Tensor, n_permutations: int = 2000, seed: int = 0) -> dict:
    """Circle statistics of n points given in calendar order (see the module docstring).

    Returns ``adjacent`` (int, out of n), ``n``, ``p_value``, ``radius_cv``, ``explained``,
    ``wrap_ratio``, ``r_cyclic``, ``r_linear``, ``angles`` (n,) in radians and ``coords`` (n, 2).
    """
    points = torch.as_tensor(points).double()
    coords, explained = pca2(points)
    angles = torch.atan2(coords[:, 1], coords[:, 0])
    radii = coords.norm(dim=1)
    n = points.shape[0]
    observed = cyclic_adjacency(angles)
    gen = torch.Generator().manual_seed(seed)
    hits = sum(cyclic_adjacency(angles, torch.randperm(n, generator=gen)) >= observed for _ in range(n_permutations))
    step = torch.stack([(points[(i + 1) % n] - points[i]).norm() for i in range(n)])  # (n,)
    i, j = torch.triu_indices(n, n, 1)
    dist = (points[i] - points[j]).norm(dim=1)
    linear = (j - i).double()
    cyclic = torch.minimum(linear, n - linear)
    return {
        "adjacent": observed,
        "n": n,
        "p_value": (hits + 1) / (n_permutations + 1),
        "radius_cv": (radii.std() / radii.mean()).item(),
        "explained": explained,
        "wrap_ratio": (step[-1] / step[:-1].median()).item(),
        "r_cyclic": _corr(dist, cyclic),
        "r_linear": _corr(dist, linear),
        "angles": angles,
        "coords": coords,
    }
