"""Exercise checks for track 1, chapter 4 (the delta rule)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lablib.attention import delta_rule_recurrent, random_qkv
from lablib.exercises import compare_on_cases

__all__ = ["check_delta_step", "check_gated_delta_step", "check_wy_factor"]


def _one_head(x: torch.Tensor) -> torch.Tensor:
    """(T, D) -> (1, 1, T, D): one batch, one head, as lablib.attention expects."""
    return x[None, None]


def _reference_step(S, q_t, k_t, v_t, beta_t, log_a_t=None):
    """One step of lablib's recurrence (keys used as given), for one head."""
    out, state = delta_rule_recurrent(
        _one_head(q_t[None]), _one_head(k_t[None]), _one_head(v_t[None]), beta_t.reshape(1, 1, 1),
        log_decay=None if log_a_t is None else log_a_t.reshape(1, 1, 1),
        initial_state=S[None, None], return_state=True, normalize_keys=False,
    )
    return out[0, 0, 0], state[0, 0]


def _step_cases(seed0: int):
    """States that have seen a few tokens, unit keys, beta across [0, 2]."""
    for seed, beta in [(seed0, 1.0), (seed0 + 1, 0.3), (seed0 + 2, 1.7), (seed0 + 3, 0.0), (seed0 + 4, 2.0)]:
        q, k, v = random_qkv(4, d_k=6, d_v=3, seed=seed)
        q, k, v = q[0, 0], F.normalize(k[0, 0], dim=-1), v[0, 0]
        S = k[:3].T @ v[:3]  # a state that has already stored three pairs
        yield seed, S, q[3], k[3], v[3], torch.tensor(beta)


def check_delta_step(step) -> str:
    """``step(S, q_t, k_t, v_t, beta_t) -> (o_t, S)``: one step of the delta rule, one head.

    S_t = S_{t-1} + beta_t k_t (v_t - S_{t-1}^T k_t)^T and o_t = S_t^T q_t. Shapes: S (D_k, D_v),
    q_t, k_t (D_k,) with k_t of unit length, v_t (D_v,), beta_t a 0-d tensor in [0, 2], o_t (D_v,).
    """

    def cases():
        for _, S, q_t, k_t, v_t, beta_t in _step_cases(0):
            yield S, q_t, k_t, v_t, beta_t

    return compare_on_cases("delta step", step, _reference_step, cases())


def check_gated_delta_step(step) -> str:
    """``step(S, q_t, k_t, v_t, beta_t, log_a_t) -> (o_t, S)``: one step of the gated delta rule.

    S_t = a_t (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T with a_t = exp(log_a_t), o_t = S_t^T q_t.
    Shapes as in ``check_delta_step``; log_a_t a 0-d tensor <= 0.
    """

    def cases():
        for seed, S, q_t, k_t, v_t, beta_t in _step_cases(10):
            log_a = -torch.rand((), generator=torch.Generator().manual_seed(seed)) * (1 + seed % 3)
            yield S, q_t, k_t, v_t, beta_t, log_a

    return compare_on_cases("gated delta step", step, _reference_step, cases())


def _product_of_transitions(K: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """P_C ... P_1 with P_i = I - beta_i k_i k_i^T, multiplied one at a time (the truth)."""
    P = torch.eye(K.shape[1], dtype=K.dtype)
    for k_i, beta_i in zip(K, beta):
        P = P - beta_i * torch.outer(k_i, k_i @ P)  # (I - beta k k^T) P
    return P


def check_wy_factor(wy) -> str:
    """``wy(K, beta) -> W``: the WY factor of a chunk, so that P_C ... P_1 = I - K^T W.

    K (C, D_k) has unit rows k_i; beta (C,) in [0, 2]; W (C, D_k). The check multiplies
    I - K^T W out and compares it with the product of the C transitions P_i = I - beta_i k_i k_i^T,
    taken one at a time; it does not compare W itself, so any correct construction passes.
    """

    def as_product(K, beta):
        return (torch.eye(K.shape[1], dtype=K.dtype) - K.T @ wy(K, beta),)

    def expected(K, beta):
        return (_product_of_transitions(K, beta),)

    def cases():
        for seed, (C, D, beta_max) in enumerate([(1, 4, 1.0), (5, 8, 1.0), (16, 8, 2.0), (12, 16, 2.0)]):
            g = torch.Generator().manual_seed(300 + seed)
            K = F.normalize(torch.randn(C, D, generator=g, dtype=torch.float64), dim=-1)
            yield K, beta_max * torch.rand(C, generator=g, dtype=torch.float64)

    return compare_on_cases("WY factor", as_product, expected, cases(), tol=1e-8)
