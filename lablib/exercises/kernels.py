"""Exercise checks for track 1, chapter 2 (the chunkwise form and the Triton kernel).

``count_chunkwise_flops`` is the counted implementation the FLOP exercise is checked against: it
runs one step of the chunk loop on shape-only ("meta") tensors, adds up the matrix products it
issues, and multiplies by the number of steps.
``lablib.kernels`` is imported only inside the checks that need it, so importing this module does
not fix ``TRITON_INTERPRET`` before a chapter has chosen it.
"""

from __future__ import annotations

import contextlib
import math

import torch

from lablib.attention import random_qkv
from lablib.exercises import compare_on_cases

__all__ = ["count_chunkwise_flops", "check_chunkwise_flops", "check_chunk_dv", "check_program_count"]


def count_chunkwise_flops(T: int, C: int, d_k: int, d_v: int) -> int:
    """FLOPs of the chunkwise forward as the kernel computes it, counted matmul by matmul.

    One (batch, head) pair, ``ceil(T / C)`` chunks, each a full C-row tile (the last one padded,
    as in the kernel), and the masked half of each C x C score block counted, because it is
    computed. A multiply-add is 2 FLOPs; the mask and the scaling are not counted.
    """
    if min(T, C, d_k, d_v) < 1:
        raise ValueError(f"T, C, d_k, d_v must be >= 1; got {T}, {C}, {d_k}, {d_v}")
    flops = 0

    def matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        nonlocal flops
        flops += 2 * a.shape[0] * a.shape[1] * b.shape[1]
        return a @ b

    # Every chunk is a full C-row tile, so every step issues the same products: count one step
    # on shape-only ("meta") tensors, where nothing is allocated or computed, then all the steps.
    meta = dict(device="meta")
    S = torch.empty(d_k, d_v, **meta)
    causal = torch.ones(C, C, dtype=torch.bool, **meta).tril()
    Q, K, V = torch.empty(C, d_k, **meta), torch.empty(C, d_k, **meta), torch.empty(C, d_v, **meta)
    scores = matmul(Q, K.T).masked_fill(~causal, 0.0)  # (C, C)
    O = matmul(Q, S) + matmul(scores, V)  # noqa: F841 - the output tile, as the kernel stores it
    S = S + matmul(K.T, V)
    flops *= math.ceil(T / C)
    return flops


def check_chunkwise_flops(fn) -> str:
    """``fn(T, C, d_k, d_v) -> int``: FLOPs of one head's chunkwise forward, T a multiple of C."""
    cases = [(64, 16, 16, 16), (4096, 64, 64, 64), (256, 1, 32, 8), (128, 128, 16, 48), (1000, 8, 24, 40)]
    for T, C, d_k, d_v in cases:
        got, want = fn(T, C, d_k, d_v), count_chunkwise_flops(T, C, d_k, d_v)
        if got != want:
            raise AssertionError(
                f"chunkwise flops: fn(T={T}, C={C}, d_k={d_k}, d_v={d_v}) = {got}, but counting the matmuls gives {want}"
            )
    return f"✓ chunkwise flops: matches the counted matmuls on {len(cases)} shapes"


def check_chunk_dv(fn) -> str:
    """``fn(Q, K, V, dO, dS) -> dV`` for one chunk of the unnormalized form (q already scaled).

    The chunk computes ``O = Q S + tril(Q K^T) V`` and ``S' = S + K^T V``; ``dO`` is the gradient
    reaching O, ``dS`` the one reaching S' (from the chunks after this one). Shapes: Q, K (C, D_k),
    V, dO (C, D_v), dS (D_k, D_v); returns dV (C, D_v). Checked against autograd.
    """

    def expected(Q, K, V, dO, dS):
        V = V.detach().requires_grad_()
        S = torch.randn(Q.shape[1], V.shape[1], generator=torch.Generator().manual_seed(0))  # dV does not depend on it
        O = Q @ S + (Q @ K.T).tril() @ V
        S_next = S + K.T @ V
        (dV,) = torch.autograd.grad((O * dO).sum() + (S_next * dS).sum(), V)
        return dV

    def cases():
        for seed, C, d_k, d_v in [(0, 1, 4, 3), (1, 5, 4, 3), (2, 16, 8, 12)]:
            Q, K, V = (x[0, 0] for x in random_qkv(C, d_k=d_k, d_v=d_v, seed=seed))
            g = torch.Generator().manual_seed(seed + 100)
            yield Q, K, V, torch.randn(C, d_v, generator=g), torch.randn(d_k, d_v, generator=g)

    return compare_on_cases("chunk dV", fn, expected, cases())


@contextlib.contextmanager
def _recorded_forward_grid():
    """Swap the forward kernel for a recorder of its launch grid (nothing runs), then restore it."""
    import lablib.kernels.linear_attention as module

    grids = []

    class Recorder:
        def __getitem__(self, grid):
            grids.append(tuple(grid))
            return lambda *args, **kwargs: None

    kernel = module._chunk_fwd_kernel
    module._chunk_fwd_kernel = Recorder()
    try:
        yield module, grids
    finally:
        module._chunk_fwd_kernel = kernel


def check_program_count(fn) -> str:
    """``fn(B, H, d_v, BV) -> int``: how many programs the forward kernel launches.

    Checked against the grid that ``lablib.kernels.linear_attention`` really launches (recorded,
    not run), with the value block width BV the library picks for that D_v.
    """
    cases = [(1, 2, 24), (2, 4, 64), (3, 2, 65), (1, 1, 200), (4, 8, 128)]
    for B, H, d_v in cases:
        with _recorded_forward_grid() as (module, grids):
            q = torch.zeros(B, H, 1, 16)
            module._forward(q, q, torch.zeros(B, H, 1, d_v), None, 1.0, False, 16)
        launched = math.prod(grids[0])
        BV = module._tiles(16, d_v)[1]
        got = fn(B, H, d_v, BV)
        if got != launched:
            raise AssertionError(
                f"program count: fn(B={B}, H={H}, d_v={d_v}, BV={BV}) = {got}, but the kernel launches "
                f"a grid {grids[0]}, {launched} programs"
            )
    return f"✓ program count: matches the kernel's launch grid on {len(cases)} shapes"
