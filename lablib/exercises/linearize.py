"""Exercise checks for track 1, chapter t1_07 (linearizing a trained transformer): each compares the
learner's function with :mod:`lablib.linearize` on random cases built to expose the usual slips
(a window one token too wide, a window that forgets the causal mask, the two parts normalized
separately, LoRA's scale left out)."""

from __future__ import annotations

import torch

from lablib.exercises import compare_on_cases
from lablib.linearize.attention import hybrid_weights

__all__ = ["check_hybrid_weights", "check_lora_forward", "check_window_mask"]


def _gaussian(*shape, seed: int, std: float = 1.0) -> torch.Tensor:
    return std * torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def check_window_mask(fn) -> str:
    """``fn(T, window, causal) -> (T, T) bool``: True where key j is in query i's softmax window.

    The window holds the keys with ``|i - j| < window``, and, if ``causal``, only ``j <= i``
    (``window = 1``: the token itself). Compared with the window ``lablib.linearize.hybrid_weights`` uses.
    """

    def expected(T, window, causal):
        i = torch.arange(T)
        near = (i[:, None] - i[None, :]).abs() < window
        return near & torch.ones(T, T, dtype=torch.bool).tril() if causal else near

    n = 0
    for T, window, causal in [(6, 2, True), (6, 2, False), (9, 4, True), (5, 1, False), (7, 7, True), (3, 10, False)]:
        got = fn(T, window, causal)
        want = expected(T, window, causal)
        if not isinstance(got, torch.Tensor) or got.shape != (T, T):
            raise AssertionError(f"window mask: expected a ({T}, {T}) tensor; got {getattr(got, 'shape', type(got).__name__)}")
        if not torch.equal(got.bool(), want):
            diff = (got.bool() != want).nonzero()[0].tolist()
            raise AssertionError(f"window mask (T={T}, window={window}, causal={causal}): wrong at (i, j) = {tuple(diff)}: "
                                 f"got {bool(got.bool()[tuple(diff)])}, expected {bool(want[tuple(diff)])}. "
                                 "The window is |i - j| < window, and a causal one also needs j <= i.")
        n += 1
    return f"✓ window mask: correct on {n} cases"


def check_hybrid_weights(fn) -> str:
    """``fn(q, k, fq, fk, window, gamma) -> (T, T)``: causal hybrid weights of one head.

    q, k (T, D) queries and keys, fq, fk (T, F) their features, ``gamma`` a float. In the window
    (``0 <= i - j < window``) ``a_ij = gamma * exp(q_i.k_j / sqrt(D) - m_i)``, ``m_i`` the row's
    largest windowed score; for older keys ``a_ij = fq_i . fk_j``; then every row is divided by its
    sum (*one* sum over both parts). Compared with :func:`lablib.linearize.hybrid_weights`.
    """

    def expected(q, k, fq, fk, window, gamma):
        g = torch.tensor([gamma], dtype=q.dtype)
        return hybrid_weights(q[None, None], k[None, None], fq[None, None], fk[None, None], window=window,
                              gamma=g, causal=True, eps=0.0)[0, 0]

    cases = []
    for i, (T, D, F, window, gamma) in enumerate([(6, 4, 5, 2, 0.5), (10, 8, 6, 3, 0.2), (4, 2, 3, 1, 0.9), (8, 4, 4, 8, 0.3)]):
        cases.append((_gaussian(T, D, seed=50 + i), _gaussian(T, D, seed=60 + i),
                      _gaussian(T, F, seed=70 + i).exp(), _gaussian(T, F, seed=80 + i).exp(), window, gamma))
    return compare_on_cases("hybrid weights", fn, expected, cases, tol=1e-8)


def check_lora_forward(fn) -> str:
    """``fn(x, W, b, A, B, alpha) -> y``: a LoRA layer's output ``x W^T + b + (alpha / r) (x A^T) B^T``.

    x (N, d_in), W (d_out, d_in), b (d_out,), A (r, d_in), B (d_out, r). Compared with the formula on
    random cases (one with B = 0, which must give the base layer exactly).
    """

    def expected(x, W, b, A, B, alpha):
        return x @ W.T + b + (alpha / A.shape[0]) * (x @ A.T) @ B.T

    cases = []
    for i, (N, d_in, d_out, r, alpha) in enumerate([(5, 6, 4, 2, 4.0), (3, 8, 8, 8, 16.0), (7, 5, 9, 1, 1.0)]):
        s = 90 + 10 * i
        B = _gaussian(d_out, r, seed=s + 4) if i else torch.zeros(d_out, r, dtype=torch.float64)
        cases.append((_gaussian(N, d_in, seed=s), _gaussian(d_out, d_in, seed=s + 1), _gaussian(d_out, seed=s + 2),
                      _gaussian(r, d_in, seed=s + 3), B, alpha))
    cases.append((cases[1][0], cases[1][1], cases[1][2], cases[1][3], _gaussian(8, 8, seed=200), 16.0))
    return compare_on_cases("LoRA forward", fn, expected, cases, tol=1e-8)
