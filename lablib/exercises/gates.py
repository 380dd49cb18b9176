"""Exercise checks for track 1, chapter 3 (decay and gates)."""

from __future__ import annotations

import math

import torch

from lablib.attention import random_qkv, scalar_gated_recurrent
from lablib.attention.gated import _causal_decays
from lablib.exercises import compare_on_cases

__all__ = ["check_gated_step", "check_decay_mask", "check_half_life"]


def _log_gates(seed: int, T: int, strength: float = 1.0) -> torch.Tensor:
    """T log gates in (-strength, 0], from a seeded generator."""
    g = torch.Generator().manual_seed(1000 + seed)
    return -strength * torch.rand(T, generator=g)


def check_gated_step(step) -> str:
    """``step(S, q_t, k_t, v_t, log_a_t) -> (o_t, S)``: one step of the scalar-gated recurrence, one head.

    S_t = exp(log_a_t) S_{t-1} + k_t v_t^T and o_t = S_t^T q_t (no feature map, no normalizer).
    Shapes: S (D_k, D_v), q_t, k_t (D_k,), v_t (D_v,), log_a_t a 0-d tensor (<= 0), o_t (D_v,).
    """

    def expected(S, q_t, k_t, v_t, log_a_t):
        out, state = scalar_gated_recurrent(
            q_t[None, None, None], k_t[None, None, None], v_t[None, None, None], log_a_t.reshape(1, 1, 1),
            initial_state=S[None, None], return_state=True,
        )
        return out[0, 0, 0], state[0, 0]

    def cases():
        for seed, strength in [(0, 0.1), (1, 1.0), (2, 5.0), (3, 0.0)]:
            q, k, v = random_qkv(4, d_k=5, d_v=3, seed=seed)
            q, k, v = q[0, 0], k[0, 0], v[0, 0]
            S = k[:3].T @ v[:3]  # a state that has already seen three tokens
            yield S, q[3], k[3], v[3], _log_gates(seed, 1, strength)[0]

    return compare_on_cases("gated step", step, expected, cases())


def check_decay_mask(mask_fn) -> str:
    """``mask_fn(log_a) -> M``: the (T, T) decay mask from T log gates, M[t, s] = prod_{s < r <= t} a_r
    for s <= t and 0 above the diagonal.

    The cases include strong gates (log a = -30 per step, where exp of a cumulative sum underflows
    and a ratio of cumulative products is 0/0) and one near-reset gate (log a = -1000), where
    subtracting two cumulative sums loses digits: form the segment sums in log space.
    """

    def expected(log_a):
        return _causal_decays(log_a[None, None])[0, 0]

    def cases():
        yield (_log_gates(0, 1),)
        yield (_log_gates(1, 9),)
        yield (_log_gates(2, 40, strength=0.05),)
        yield (torch.full((40,), -30.0),)
        near_reset = _log_gates(4, 24, strength=0.01)
        near_reset[5] = -1000.0
        yield (near_reset,)

    return compare_on_cases("decay mask", mask_fn, expected, cases())


def check_half_life(half_life) -> str:
    """``half_life(a) -> float``: the number of steps n (not necessarily whole) after which a fixed
    decay a in (0, 1) has shrunk a stored memory to half, a^n = 1/2."""
    for a in (0.5, 0.9, 0.99, 0.999, 1e-3):
        got = float(half_life(a))
        if not math.isfinite(got) or abs(a**got - 0.5) > 1e-6:
            raise AssertionError(f"half_life({a}) = {got:.6g}, but {a}^{got:.6g} = {a ** got:.6g}, not 0.5")
    return "✓ half-life: a^n = 1/2 for a = 0.5, 0.9, 0.99, 0.999, 0.001"
