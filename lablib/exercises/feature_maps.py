"""Exercise checks for track 1, chapter 5 (feature maps): each compares the learner's function with lablib's."""

from __future__ import annotations

import math

import torch

from lablib.attention.feature_maps import CosFormerFeatureMap, linear_attention_weights
from lablib.exercises import compare_on_cases

__all__ = ["check_cosformer_map", "check_positive_random_features", "check_linear_attention_weights"]


def _gaussian(*shape, seed: int, std: float = 1.0) -> torch.Tensor:
    return std * torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def check_cosformer_map(fn) -> str:
    """``fn(x, max_len) -> phi (T, 2 D)``: cosFormer's map for one sequence x (T, D) at positions 0 .. T-1.

    phi(x_i) = [relu(x_i) sin(pi i / (2 M)), relu(x_i) cos(pi i / (2 M))] with M = max_len.
    Compared with ``lablib.attention.feature_maps.CosFormerFeatureMap`` on four random cases.
    """

    def expected(x, max_len):
        return CosFormerFeatureMap(max_len)(x)

    shapes = [(5, 3, 5), (12, 4, 16), (1, 6, 3), (30, 8, 64)]  # (T, D, M), M = T in the first
    cases = [(_gaussian(T, D, seed=seed), M) for seed, (T, D, M) in enumerate(shapes)]
    return compare_on_cases("cosFormer map", fn, expected, cases, tol=1e-6)


def check_positive_random_features(fn) -> str:
    """``fn(x, W) -> phi (N, m)``: Performer's positive random features for rows x (N, D), projection W (m, D).

    phi(x) = exp(W x - |x|^2 / 2) / sqrt(m), so that phi(q) . phi(k) estimates exp(q . k).
    Compared with the formula on four random cases (the projection is given, so the answer is exact).
    """

    def expected(x, W):
        return torch.exp(x @ W.T - 0.5 * (x * x).sum(-1, keepdim=True)) / math.sqrt(W.shape[0])

    cases = [(_gaussian(N, D, seed=10 + i, std=0.5), _gaussian(m, D, seed=20 + i))
             for i, (N, D, m) in enumerate([(4, 3, 8), (7, 8, 16), (1, 5, 64), (10, 16, 33)])]
    return compare_on_cases("positive random features", fn, expected, cases, tol=1e-5)


def check_linear_attention_weights(fn) -> str:
    """``fn(fq, fk) -> A (T, T)``: causal linear attention weights from features fq, fk (T, F), one head.

    A_ij = fq_i . fk_j / sum_{l <= i} fq_i . fk_l for j <= i, and 0 for j > i (rows sum to 1).
    Compared with ``lablib.attention.feature_maps.linear_attention_weights`` (identity map) on four cases.
    """

    def expected(fq, fk):
        return linear_attention_weights(fq, fk, "identity", causal=True, eps=0.0)

    cases = [(_gaussian(T, F, seed=30 + i).exp(), _gaussian(T, F, seed=40 + i).exp())  # positive features
             for i, (T, F) in enumerate([(4, 2), (9, 5), (1, 3), (16, 8)])]
    return compare_on_cases("linear attention weights", fn, expected, cases, tol=1e-5)
