"""Measuring feature maps against softmax (chapter t1_05): a softmax head to imitate, and the yardsticks.

* ``vocab_head``: queries and keys of a softmax head reading token sequences (seeded), with a
  ``gain`` that sets how spiky its attention is.
* ``attention_entropy``: mean entropy of attention rows (low: spiky, log T: uniform).
* ``monotonicity``: mean Spearman correlation, per query, between q.k and phi(q).phi(k): 1 when
  the similarity grows with the dot product, as exp does.
* ``compare_feature_maps``: one row per map: features, entropy, monotonicity, cross-entropy to the
  softmax weights, and the attention output's error.
* ``performer_errors``: Performer's error against exact softmax attention, over m and seeds.
* ``loglog_slope``: the fitted exponent p of error ~ C m^p.

The Hedgehog paper (Zhang et al., 2024) names low entropy ("spikiness") and monotonicity in q.k as
the two properties of softmax attention that simple feature maps lack; these functions measure them.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

from lablib.attention.feature_maps import (
    FeatureMap,
    PerformerFeatureMap,
    attention_cross_entropy,
    linear_attention_weights,
    resolve_feature_map,
    softmax_attention_weights,
)
from lablib.attention.linear import linear_attention_parallel
from lablib.attention.softmax import softmax_attention

__all__ = [
    "vocab_head",
    "attention_entropy",
    "monotonicity",
    "compare_feature_maps",
    "performer_errors",
    "loglog_slope",
]


def vocab_head(
    B: int,
    T: int,
    *,
    n_heads: int = 2,
    head_dim: int = 16,
    vocab: int = 32,
    d_model: int = 32,
    gain: float = 1.0,
    seed: int = 0,
    data_seed: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Queries and keys (B, H, T, D), float32, of a fixed softmax head reading random token sequences.

    Tokens are uniform over ``vocab`` ids, each with a N(0, I) embedding in R^d_model; per head
    q = e W_q and k = e W_k with W entries N(0, gain^2 / d_model), so q and k entries have variance
    gain^2 and the scores q.k / sqrt(D) a spread that grows as gain^2 (about 0.5 gain^2 for the
    defaults: gain 1.4 gives spiky attention, gain 0.35 nearly uniform). ``seed`` fixes the
    embeddings and weights (the head); ``data_seed`` the sequences, so one head can be trained
    on some sequences and tested on others. Like a trained model's head, it sees a finite set of
    distinct vectors (one per token), unlike i.i.d. Gaussian queries and keys.
    """
    for name, value in (("B", B), ("T", T), ("n_heads", n_heads), ("head_dim", head_dim), ("vocab", vocab),
                        ("d_model", d_model)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int; got {value!r}")
    if not (isinstance(gain, (int, float)) and gain > 0):
        raise ValueError(f"gain must be > 0; got {gain!r}")
    g = torch.Generator().manual_seed(seed)
    embed = torch.randn(vocab, d_model, generator=g)
    W_q, W_k = (torch.randn(n_heads, d_model, head_dim, generator=g) * (gain / math.sqrt(d_model)) for _ in range(2))
    tokens = torch.randint(0, vocab, (B, T), generator=torch.Generator().manual_seed(data_seed))
    e = embed[tokens]  # (B, T, d_model)
    return torch.einsum("btm,hmd->bhtd", e, W_q), torch.einsum("btm,hmd->bhtd", e, W_k)


def attention_entropy(weights: torch.Tensor) -> float:
    """Mean over rows of -sum_j w_ij log w_ij (nats) for attention weights (..., T_q, T), rows summing to 1.

    log T for uniform rows, 0 for one-hot rows; zeros (a causal mask) contribute 0.
    """
    if not isinstance(weights, torch.Tensor) or weights.ndim < 2:
        raise ValueError(f"weights must be a tensor (..., T_q, T); got {tuple(getattr(weights, 'shape', ()))}")
    w = weights.detach().double()
    return float(-(w * torch.log(w.clamp_min(1e-300))).sum(-1).mean())


def _ranks(x: torch.Tensor) -> torch.Tensor:
    return x.argsort(-1).argsort(-1).double()


def monotonicity(q: torch.Tensor, k: torch.Tensor, feature_map: str | FeatureMap) -> float:
    """Mean over queries of the Spearman correlation, across all keys j, of q_i.k_j and phi(q_i).phi(k_j).

    q, k (..., T, D). 1: the map ranks keys as the dot product (and so softmax) does; near 0: it
    ranks them unrelatedly. Ties (e.g. relu's exact zeros) get distinct ranks in index order.
    """
    phi = resolve_feature_map(feature_map)
    with torch.no_grad():
        dots = q.double() @ k.double().transpose(-1, -2)
        sims = (phi(q) @ phi(k).transpose(-1, -2)).double()
    a, b = _ranks(dots), _ranks(sims)
    a, b = a - a.mean(-1, keepdim=True), b - b.mean(-1, keepdim=True)
    return float(((a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1))).mean())


def compare_feature_maps(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    maps: dict[str, str | FeatureMap],
    *,
    scale: float | None = None,
) -> pd.DataFrame:
    """Each map against softmax on one head, non-causal (every query sees every key).

    q, k (B, H, T, D); v (B, H, T, D_v); ``maps`` name -> feature map. Returns one row per map, the
    first for softmax itself: ``map``, ``features`` (F, phi's output dim; None for softmax),
    ``entropy`` (``attention_entropy`` of the weights), ``monotonicity``, ``cross_entropy``
    (``attention_cross_entropy`` from the softmax weights; softmax's own is its entropy, the
    floor), ``output_error`` (|o - o_softmax| / |o_softmax|, Frobenius, normalized linear attention).
    """
    with torch.no_grad():
        target = softmax_attention_weights(q, k, scale=scale, causal=False)
        exact = softmax_attention(q, k, v, causal=False, scale=scale)
        rows = [{"map": "softmax", "features": None, "entropy": attention_entropy(target), "monotonicity": 1.0,
                 "cross_entropy": float(attention_cross_entropy(target, target)), "output_error": 0.0}]
        for name, fm in maps.items():
            phi = resolve_feature_map(fm)
            w = linear_attention_weights(q, k, phi, causal=False)
            out = linear_attention_parallel(q, k, v, feature_map=phi, causal=False)
            rows.append({"map": name, "features": int(phi(q[..., :1, :]).shape[-1]), "entropy": attention_entropy(w),
                         "monotonicity": monotonicity(q, k, phi), "cross_entropy": float(attention_cross_entropy(target, w)),
                         "output_error": float((out - exact).norm() / exact.norm())})
    return pd.DataFrame(rows)


def performer_errors(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    ms: list[int],
    seeds: list[int],
    *,
    orthogonal: bool = True,
) -> pd.DataFrame:
    """Performer (``PerformerFeatureMap(D, m, seed, scale=D^-1/4)``) against exact causal softmax attention.

    q, k (B, H, T, D), v (B, H, T, D_v). One row per (m, seed): ``output_error`` =
    |o_performer - o_softmax| / |o_softmax| (Frobenius) and ``kernel_error`` = the RMS over all
    (i, j) of the relative error of phi(q_i).phi(k_j) against exp(q_i.k_j / sqrt(D)).
    """
    D = q.shape[-1]
    with torch.no_grad():
        exact = softmax_attention(q, k, v, causal=True)
        kernel = torch.exp(q @ k.transpose(-1, -2) / math.sqrt(D))
        rows = []
        for m in ms:
            for s in seeds:
                phi = PerformerFeatureMap(D, m, seed=s, orthogonal=orthogonal, scale=D ** -0.25)
                out = linear_attention_parallel(q, k, v, feature_map=phi)
                estimate = phi(q) @ phi(k).transpose(-1, -2)
                rows.append({"m": m, "seed": s, "output_error": float((out - exact).norm() / exact.norm()),
                             "kernel_error": float(((estimate - kernel) / kernel).pow(2).mean().sqrt())})
    return pd.DataFrame(rows)


def loglog_slope(x, y) -> tuple[float, float]:
    """Least-squares fit of log y = p log x + log C; returns (p, C). x, y positive, same length >= 2."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 2 or (x <= 0).any() or (y <= 0).any():
        raise ValueError(f"loglog_slope needs two positive 1-d arrays of one length >= 2; got shapes {x.shape}, {y.shape}")
    p, log_c = np.polyfit(np.log(x), np.log(y), 1)
    return float(p), float(np.exp(log_c))
