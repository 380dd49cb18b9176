"""Exercise checks for track 5, chapter t5_04 (linear paths between trained networks).

Each takes the learner's function and compares it with lablib's, with a message that says what differs.
"""

from __future__ import annotations

import numpy as np
import torch

from lablib.paths.interpolate import barrier
from lablib.paths.mlp import MLP
from lablib.paths.rebasin import match_objective, permute, random_permutation, weight_matching

__all__ = ["check_barrier", "check_match_one_layer", "check_permute_hidden"]


def check_barrier(fn) -> str:
    """``fn(values, alphas) -> float``: max over alpha of v(alpha) - ((1 - alpha) v(0) + alpha v(1)).

    ``values`` and ``alphas`` are 1-D float arrays of the same length, alphas increasing from 0 to 1
    (not always evenly spaced). Compared with :func:`lablib.paths.barrier` to 1e-12 on curves whose
    endpoints differ, where the rise above the endpoints' mean would give another number.
    """
    rng = np.random.default_rng(0)
    cases = [(np.linspace(0, 1, 5), np.array([0.1, 0.6, 0.9, 0.7, 0.5])),
             (np.array([0.0, 0.1, 0.3, 0.6, 1.0]), np.array([0.4, 0.2, 0.3, 0.1, 0.0])),
             (np.linspace(0, 1, 25), rng.random(25))]
    for n, (alphas, values) in enumerate(cases):
        got = float(fn(values.copy(), alphas.copy()))
        want = barrier(values, alphas)
        if not abs(got - want) <= 1e-12:
            mean_ref = barrier(values, alphas, reference="mean")
            hint = (" (that is the rise above the endpoints' mean; measure it above the chord "
                    "(1 - alpha) v(0) + alpha v(1))") if abs(got - mean_ref) < 1e-12 else ""
            raise AssertionError(f"barrier: case {n} gives {got:.6f}, expected {want:.6f}{hint}")
    return f"✓ barrier: correct on {len(cases)} curves"


def _random_params(net: MLP, seed: int) -> dict:
    params = net.init(seed)
    gen = torch.Generator().manual_seed(seed + 100)
    return {k: v + 0.3 * torch.randn(v.shape, generator=gen) for k, v in params.items()}  # nonzero biases too


def check_permute_hidden(fn) -> str:
    """``fn(params, perms) -> params``: reorder hidden layer l's units by ``perms[l]`` (unit perms[l][i] -> i).

    ``params``: dict ``W0, b0, ..., WL, bL`` with Wl (out, in) of a standard-parameterized MLP; ``perms``: one
    int array per hidden layer. Compared with :func:`lablib.paths.permute` exactly, and the network's
    outputs must not change (1e-5).
    """
    n = 0
    for seed, sizes in enumerate([(5, 7, 3), (4, 6, 8, 2), (6, 5, 5, 5, 4)]):
        net = MLP(sizes)
        params, perms = _random_params(net, seed), random_permutation(net, seed + 10)
        x = torch.randn(20, sizes[0], generator=torch.Generator().manual_seed(seed))
        got = fn({k: v.clone() for k, v in params.items()}, [p.copy() for p in perms])
        if not isinstance(got, dict) or set(got) != set(params):
            raise AssertionError(f"permute: return a dict with keys {sorted(params)}")
        change = (net(got, x) - net(params, x)).abs().max().item()
        if not change < 1e-5:
            raise AssertionError(f"permute: sizes {sizes}: the outputs changed by {change:.3g}; a hidden unit's "
                                 "row of W_l, entry of b_l and column of W_(l+1) must move together")
        want = permute(net, params, perms)
        for k in params:
            if got[k].shape != want[k].shape or not torch.equal(got[k], want[k]):
                raise AssertionError(f"permute: sizes {sizes}: {k} differs from lablib's (unit perms[l][i] goes to place i)")
        n += 1
    return f"✓ permute: correct on {n} networks, outputs unchanged"


def check_match_one_layer(fn) -> str:
    """``fn(params_a, params_b) -> perm``: weight matching for a one-hidden-layer MLP (W0, b0, W1, b1).

    ``perm`` (n,) ints such that B's unit perm[i] becomes unit i; it must maximize
    <W0_A, W0_B[perm]> + <b0_A, b0_B[perm]> + <W1_A, W1_B[:, perm]>, one linear assignment problem.
    Compared with :func:`lablib.paths.weight_matching` on three random pairs.
    """
    n = 0
    for seed, sizes in enumerate([(4, 6, 3), (8, 12, 5), (10, 30, 10)]):
        net = MLP(sizes)
        a, b = _random_params(net, 2 * seed), _random_params(net, 2 * seed + 1)
        got = np.asarray(fn({k: v.clone() for k, v in a.items()}, {k: v.clone() for k, v in b.items()})).reshape(-1)
        want = weight_matching(net, a, b)[0]
        if got.shape != want.shape or sorted(got.tolist()) != list(range(sizes[1])):
            raise AssertionError(f"match: return a permutation of range({sizes[1]}); got {got.tolist()}")
        best = match_objective(net, a, permute(net, b, [want]))
        mine = match_objective(net, a, permute(net, b, [got]))
        if not mine >= best - 1e-9:
            raise AssertionError(f"match: sizes {sizes}: your permutation reaches {mine:.4f}, the best is {best:.4f} "
                                 "(use W0, b0 and W1 in the cost, and maximize)")
        n += 1
    return f"✓ weight matching (one hidden layer): optimal on {n} random pairs"
