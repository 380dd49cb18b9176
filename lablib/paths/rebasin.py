"""Git Re-Basin's weight matching (Ainsworth, Hayase & Srinivasa, ICLR 2023, Algorithm 1) for an MLP.

Permuting the units of a hidden layer (rows of W_l and b_l, and the matching columns of W_{l+1})
changes no output: the network computes the same function. Weight matching picks, for every hidden
layer, the permutation of B's units that makes B's weights closest to A's,

    max over P_0..P_{L-2} of  sum_l < W_l^A, P_l W_l^B P_{l-1}^T >_F  (+ the biases),

a sum of coupled linear assignment problems. The paper's coordinate descent: hold every
permutation but one fixed; the one left is a linear assignment problem with cost

    C_l = W_l^A (W_l^B P_{l-1}^T)^T + b_l^A b_l^{B T} + W_{l+1}^{A T} (P_{l+1} W_{l+1}^B),

solved exactly by ``scipy.optimize.linear_sum_assignment``; visit the layers in a random order,
repeat until no permutation changes (at most ``max_iter`` sweeps). With one hidden layer it is one
assignment problem, solved in one step.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from lablib.paths.mlp import MLP, Params, check_params

__all__ = ["Matching", "match_objective", "permute", "random_permutation", "weight_matching"]


class Matching(list):
    """A list of index arrays, one per hidden layer: unit ``perm[l][i]`` of B becomes unit i. ``.sweeps``: iterations run."""

    sweeps: int = 0


def _check_perms(net: MLP, perms) -> list[torch.Tensor]:
    if len(perms) != len(net.hidden):
        raise ValueError(f"need one permutation per hidden layer ({len(net.hidden)}); got {len(perms)}")
    out = []
    for layer, (perm, width) in enumerate(zip(perms, net.hidden)):
        p = torch.as_tensor(np.asarray(perm), dtype=torch.long)
        if p.shape != (width,) or not torch.equal(torch.sort(p).values, torch.arange(width)):
            raise ValueError(f"perms[{layer}] must be a permutation of range({width}); got shape {tuple(p.shape)}")
        out.append(p)
    return out


def permute(net: MLP, params: Params, perms) -> Params:
    """``params`` with hidden layer l's units reordered by ``perms[l]`` (a new dict; same function)."""
    check_params(net, params)
    perms = _check_perms(net, perms)
    out = dict(params)
    for layer, p in enumerate(perms):
        out[f"W{layer}"] = out[f"W{layer}"][p]
        out[f"b{layer}"] = out[f"b{layer}"][p]
        out[f"W{layer + 1}"] = out[f"W{layer + 1}"][:, p]
    return {k: v.clone() for k, v in out.items()}


def random_permutation(net: MLP, seed: int) -> list[np.ndarray]:
    """One uniformly random permutation per hidden layer, from ``np.random.default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    return [rng.permutation(width) for width in net.hidden]


def match_objective(net: MLP, params_a: Params, params_b: Params) -> float:
    """sum over all tensors of <A, B>_F: what weight matching maximizes over permutations of B."""
    check_params(net, params_a, "params_a")
    check_params(net, params_b, "params_b")
    return float(sum((params_a[k].double() * params_b[k].double()).sum() for k in params_a))


def _cost(net: MLP, A: dict, B: dict, perms: list[np.ndarray], layer: int) -> np.ndarray:
    """C (n_l, n_l): C[i, j] = similarity of A's unit i and B's unit j, the other permutations applied to B."""
    W_b = B[f"W{layer}"] if layer == 0 else B[f"W{layer}"][:, perms[layer - 1]]
    cost = A[f"W{layer}"] @ W_b.T + np.outer(A[f"b{layer}"], B[f"b{layer}"])
    W_next = B[f"W{layer + 1}"] if layer + 1 == len(net.hidden) else B[f"W{layer + 1}"][perms[layer + 1]]
    return cost + A[f"W{layer + 1}"].T @ W_next


def weight_matching(net: MLP, params_a: Params, params_b: Params, max_iter: int = 100, seed: int = 0) -> Matching:
    """Permutations of B's hidden units that match A's weights (the paper's coordinate descent).

    Returns a :class:`Matching`, one index array (n_l,) per hidden layer, for :func:`permute`
    (``permute(net, params_b, perms)`` is the matched B). ``seed`` orders the layer visits.
    """
    check_params(net, params_a, "params_a")
    check_params(net, params_b, "params_b")
    if max_iter < 1:
        raise ValueError(f"max_iter must be >= 1; got {max_iter}")
    A = {k: v.detach().double().numpy() for k, v in params_a.items()}
    B = {k: v.detach().double().numpy() for k, v in params_b.items()}
    perms = [np.arange(width) for width in net.hidden]
    rng = np.random.default_rng(seed)
    result = Matching()
    for sweep in range(max_iter):
        changed = False
        for layer in rng.permutation(len(net.hidden)):
            cost = _cost(net, A, B, perms, int(layer))
            rows, cols = linear_sum_assignment(cost, maximize=True)
            old = cost[np.arange(len(cols)), perms[layer]].sum()
            new = cost[rows, cols].sum()
            if new > old + 1e-12 * max(1.0, abs(old)):
                perms[layer] = cols
                changed = True
        result.sweeps = sweep + 1
        if not changed:
            break
    result.extend(perms)
    return result
