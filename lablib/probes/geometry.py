"""The causal inner product of Park, Choe & Veitch (2024), "The Linear Representation Hypothesis
and the Geometry of Large Language Models", on the Othello-GPT's unembedding.

With ``gamma(y)`` the unembedding vector of output token ``y`` (a row of ``model.unembed``), the
causal inner product is ``<x, y>_C = x^T Cov(gamma)^{-1} y`` with ``Cov`` taken over the
vocabulary (uniform over tokens, vectors centered). Under it, the unembedding representations of
*causally separable* concepts (concepts that can be varied independently) are predicted to be
orthogonal, while Euclidean inner products carry no such guarantee. ``whitening(M)`` gives ``A``
with ``M = A^T A``: ``<x, y>_C = (A x) . (A y)``, an ordinary dot product after the change of basis.

Concepts here: a move token is a square (row, column). "Row r vs row r'" is represented by the
counterfactual differences ``gamma(r, c) - gamma(r', c)`` (same column); "column c vs c'" by
``gamma(r, c) - gamma(r, c')`` (same row). Row and column of a move are causally separable (either
can change with the other fixed), so row-differences and column-differences should be orthogonal
under ``<.,.>_C``; two row-differences of the same concept (same r, r', different columns) should
be parallel.

A caveat this small model makes unavoidable, and which ``separation_report`` states in numbers: the
vocabulary has 32 moves in ``d_model = 128`` dimensions, so ``Cov(gamma)`` has rank 31 and is not
invertible. With the pseudo-inverse (``ridge=0``) the 32 whitened, centered unembeddings form a
*regular simplex* (their Gram matrix is ``n (I - 11^T / n)``): any two token differences on four
distinct tokens are then exactly orthogonal, and any two sharing one token have ``|cos| = 1/2``,
whatever the model learned. The "separation" is then pure combinatorics, same-concept pairs become
orthogonal too, and the test carries no evidence. ``ridge > 0`` (``Cov + ridge * tr(Cov)/d * I``)
interpolates between that degenerate metric (``ridge -> 0``) and the Euclidean one
(``ridge -> inf``); the report gives both ends and the path between.
"""

from __future__ import annotations

import itertools
import math

import torch

from lablib.world.data import N_MOVES, PLAYABLE
from lablib.world.model import GPT
from lablib.world.othello import SIZE

__all__ = [
    "unembedding_vectors",
    "causal_metric",
    "whitening",
    "causal_inner_product",
    "causal_cosine",
    "concept_differences",
    "pair_cosines",
    "separation_report",
    "format_report",
]


def unembedding_vectors(model: GPT) -> torch.Tensor:
    """(N_MOVES, d_model) rows of the unembedding for the move tokens (the PAD token left out)."""
    return model.unembed.weight.detach()[:N_MOVES].double()


def causal_metric(gamma: torch.Tensor, ridge: float = 0.0, rcond: float = 1e-8) -> torch.Tensor:
    """``M = Cov(gamma)^{-1}`` (d, d), the covariance over the rows of ``gamma`` (n, d), centered.

    ``ridge = 0``: the Moore-Penrose pseudo-inverse (exact inverse when n > d and Cov is full rank;
    eigenvalues below ``rcond`` times the largest are dropped). ``ridge > 0``: the inverse of
    ``Cov + ridge * (tr(Cov) / d) * I`` (shrinkage; full rank)."""
    if not isinstance(gamma, torch.Tensor) or gamma.ndim != 2 or gamma.shape[0] < 2:
        raise ValueError(f"gamma must be a (n >= 2, d) tensor; got {getattr(gamma, 'shape', type(gamma))}")
    if not torch.isfinite(gamma).all():
        raise ValueError("gamma contains NaN or Inf")
    if ridge < 0:
        raise ValueError(f"ridge must be >= 0; got {ridge}")
    g = gamma.double() - gamma.double().mean(0)
    n, d = g.shape
    cov = g.T @ g / n
    if ridge > 0:
        return torch.linalg.inv(cov + ridge * cov.trace() / d * torch.eye(d, dtype=cov.dtype))
    evals, evecs = torch.linalg.eigh(cov)
    keep = evals > rcond * evals.max()
    return (evecs[:, keep] / evals[keep]) @ evecs[:, keep].T


def whitening(metric: torch.Tensor) -> torch.Tensor:
    """The symmetric square root ``A`` of a positive semi-definite ``metric``: ``metric = A^T A``,
    so ``x^T metric y = (A x) . (A y)``. For ``metric = Cov(gamma)^{-1}``, ``A (gamma - mean)``
    has identity covariance on the span of the centered ``gamma``."""
    if metric.ndim != 2 or metric.shape[0] != metric.shape[1]:
        raise ValueError(f"metric must be square; got {tuple(metric.shape)}")
    if not torch.allclose(metric, metric.T, atol=1e-8 * metric.abs().max().item() + 1e-12):
        raise ValueError("metric must be symmetric")
    evals, evecs = torch.linalg.eigh(metric.double())
    if evals.min() < -1e-8 * evals.abs().max():
        raise ValueError(f"metric must be positive semi-definite; smallest eigenvalue {evals.min().item():.3g}")
    return (evecs * evals.clamp(min=0).sqrt()) @ evecs.T


def _check_vectors(x: torch.Tensor, metric: torch.Tensor, name: str) -> torch.Tensor:
    if x.shape[-1] != metric.shape[0]:
        raise ValueError(f"{name} must end in dimension {metric.shape[0]}; got shape {tuple(x.shape)}")
    return x.double()


def causal_inner_product(x: torch.Tensor, y: torch.Tensor, metric: torch.Tensor) -> torch.Tensor:
    """``x^T metric y`` over the last dimension (broadcast over the others)."""
    x, y = _check_vectors(x, metric, "x"), _check_vectors(y, metric, "y")
    return ((x @ metric.double()) * y).sum(-1)


def causal_cosine(x: torch.Tensor, y: torch.Tensor, metric: torch.Tensor | None = None) -> torch.Tensor:
    """Cosine of the angle between ``x`` and ``y`` under ``metric`` (Euclidean when None)."""
    if metric is None:
        metric = torch.eye(x.shape[-1], dtype=torch.float64)
    xy = causal_inner_product(x, y, metric)
    xx = causal_inner_product(x, x, metric)
    yy = causal_inner_product(y, y, metric)
    return xy / (xx * yy).clamp(min=1e-300).sqrt()


def concept_differences(gamma: torch.Tensor) -> dict:
    """Counterfactual unembedding differences of the row and column concepts.

    Returns {"row": (vectors (m, d), tokens (m, 2), keys), "col": ...}: a "row" entry is
    ``gamma(r, c) - gamma(r', c)`` for r < r' with both squares playable (key (r, r', c)); a "col"
    entry is ``gamma(r, c) - gamma(r, c')`` for c < c' (key (c, c', r))."""
    if gamma.shape[0] != N_MOVES:
        raise ValueError(f"gamma must have one row per move token ({N_MOVES}); got {tuple(gamma.shape)}")
    tok = {s: i for i, s in enumerate(PLAYABLE)}
    out = {}
    for name in ("row", "col"):
        vecs, toks, keys = [], [], []
        for fixed in range(SIZE):
            for a, b in itertools.combinations(range(SIZE), 2):
                sa, sb = ((a * SIZE + fixed, b * SIZE + fixed) if name == "row" else (fixed * SIZE + a, fixed * SIZE + b))
                if sa in tok and sb in tok:
                    vecs.append(gamma[tok[sa]] - gamma[tok[sb]])
                    toks.append((tok[sa], tok[sb]))
                    keys.append((a, b, fixed))
        out[name] = (torch.stack(vecs), torch.tensor(toks), keys)
    return out


def pair_cosines(u: torch.Tensor, v: torch.Tensor, metric: torch.Tensor | None = None) -> torch.Tensor:
    """(len(u), len(v)) cosines of every pair (Euclidean when ``metric`` is None)."""
    return causal_cosine(u[:, None, :], v[None, :, :], metric)


def separation_report(model: GPT, ridges=(0.0, 1e-3, 1e-2, 1e-1, 1.0), n_random: int = 2000, seed: int = 0) -> dict:
    """Mean |cos| between concept directions, Euclidean vs causal (one entry per ``ridge``).

    Pair sets (token differences on four *distinct* tokens unless said otherwise):

    * ``cross``: a row-difference and a column-difference (causally separable: predicted ~0);
    * ``cross_shared``: a row- and a column-difference sharing one square (e.g. (r,c)-(r',c) and
      (r,c)-(r,c'));
    * ``same``: two row-differences with the same (r, r') in different columns, and likewise for
      columns (the same concept: predicted |cos| near 1);
    * ``random_tokens``: differences of two random token pairs (the baseline a concept pair should
      beat);
    * ``random_gaussian``: random Gaussian directions in R^d (Euclidean; under the metric, random
      directions in the span of the centered unembeddings).

    Also ``mean_concepts``: |cos| between the averaged row-concept directions (mean over columns of
    the row-differences, one per (r, r')) and the averaged column-concept directions.
    """
    gamma = unembedding_vectors(model)
    n, d = gamma.shape
    cd = concept_differences(gamma)
    R, Rt, Rk = cd["row"]
    Cv, Ct, Ck = cd["col"]
    g = torch.Generator().manual_seed(seed)

    def disjoint(t1, t2):  # (m1, 2), (m2, 2) -> (m1, m2) bool: the four tokens are distinct
        return ~((t1[:, None, :, None] == t2[None, :, None, :]).any(-1).any(-1))

    # random token-difference pairs on four distinct tokens
    ra, rb = [], []
    while len(ra) < n_random:
        p = torch.randperm(n, generator=g)[:4]
        ra.append(gamma[p[0]] - gamma[p[1]])
        rb.append(gamma[p[2]] - gamma[p[3]])
    ra, rb = torch.stack(ra), torch.stack(rb)
    gz1 = torch.randn(n_random, d, generator=g, dtype=torch.float64)
    gz2 = torch.randn(n_random, d, generator=g, dtype=torch.float64)
    centered = gamma - gamma.mean(0)
    # directions in the span of the centered unembeddings (random mixtures of them)
    sz1 = torch.randn(n_random, n, generator=g, dtype=torch.float64) @ centered
    sz2 = torch.randn(n_random, n, generator=g, dtype=torch.float64) @ centered

    same_r = torch.tensor([[a[:2] == b[:2] and a[2] != b[2] for b in Rk] for a in Rk])
    same_c = torch.tensor([[a[:2] == b[:2] and a[2] != b[2] for b in Ck] for a in Ck])
    row_means = {}
    for v, k in zip(R, Rk):
        row_means.setdefault(k[:2], []).append(v)
    col_means = {}
    for v, k in zip(Cv, Ck):
        col_means.setdefault(k[:2], []).append(v)
    RM = torch.stack([torch.stack(v).mean(0) for v in row_means.values()])
    CM = torch.stack([torch.stack(v).mean(0) for v in col_means.values()])

    cross_dis = disjoint(Rt, Ct)
    cross_shared = ~cross_dis
    out = {"n_tokens": n, "d_model": d, "rank_cov": int(torch.linalg.matrix_rank(centered).item()),
           "n_pairs": {"cross": int(cross_dis.sum()), "cross_shared": int(cross_shared.sum()),
                       "same": int(same_r.sum() + same_c.sum()), "random_tokens": n_random,
                       "mean_concepts": RM.shape[0] * CM.shape[0]},
           "metrics": {}}
    for label, metric in [("euclidean", None)] + [(f"causal_ridge={r:g}", causal_metric(gamma, r)) for r in ridges]:
        cross = pair_cosines(R, Cv, metric).abs()
        same = torch.cat([pair_cosines(R, R, metric).abs()[same_r], pair_cosines(Cv, Cv, metric).abs()[same_c]])
        rnd = causal_cosine(ra, rb, metric).abs()
        gz = causal_cosine(gz1, gz2, metric).abs() if metric is None else causal_cosine(sz1, sz2, metric).abs()
        out["metrics"][label] = {
            "cross": cross[cross_dis].mean().item(),
            "cross_shared": cross[cross_shared].mean().item(),
            "same": same.mean().item(),
            "random_tokens": rnd.mean().item(),
            "random_gaussian": gz.mean().item(),
            "mean_concepts": pair_cosines(RM, CM, metric).abs().mean().item(),
        }
    return out


def format_report(report: dict) -> str:
    keys = ("cross", "cross_shared", "same", "random_tokens", "random_gaussian", "mean_concepts")
    lines = [f"mean |cos| ({report['n_tokens']} tokens, d={report['d_model']}, rank Cov = {report['rank_cov']})",
             f"{'metric':>22s} " + " ".join(f"{k:>15s}" for k in keys)]
    for label, m in report["metrics"].items():
        lines.append(f"{label:>22s} " + " ".join(f"{m[k]:15.3f}" for k in keys))
    return "\n".join(lines)
