"""Chunkwise causal linear attention in Triton: forward, backward, and a one-token decoding step.

What is computed (no feature map and no normalizer: apply phi and the scale outside, as the
chapter does; q and k are used as given):

    S_t = S_{t-1} + k_t v_t^T        the (D_k x D_v) state; S_0 is the initial state
    o_t = scale * S_t^T q_t

``lablib.attention.linear_attention_chunkwise`` is the PyTorch form of the algorithm ported
here. For one chunk of C tokens, with queries Q, keys K, values V (one row per token) and the
state S that enters the chunk:

    O  = scale * (Q S + tril(Q K^T) V)      the past through S, this chunk in parallel form
    S <- S + K^T V

Why chunks. Token by token, the recurrence is T dependent rank-1 updates, each far too small
to keep a GPU busy. A chunk turns each step into (C x D) @ (D x D) and (C x C) @ (C x D) matrix
products, which is what tensor cores are built for, and leaves only T / C sequential steps.

Tiling: what each program instance owns. One program owns one (batch, head) pair, one block
of BV value columns and one block of BK key columns. It keeps its tile of the state,
S[key block, value block] (a BK x BV fp32 tile), in registers for the whole sequence; walks over
the chunks in time order; and writes its share of O[..., value block]. Column j of O needs only
column j of S, so value blocks never interact; and row d of S only ever receives key dim d, so
key blocks never interact either: O = sum over key blocks of (Q S + tril(Q K^T) V) restricted
to that block's key columns. The grid is (B * H, cdiv(D_v, BV), cdiv(D_k, BK)), no program reads
what another writes, and time is the only sequential axis. Up to D_k = 128 there is one key
block (BK covers all of D_k) and O is written directly; wider keys (up to 512) give one fp32
share of O per key block, which the host adds (``lablib.kernels._base``, where the tiling,
checks and launch set-up of all four attention kernels live).

Ragged sizes. ``tl.arange`` needs a power-of-two length, so every tile is rounded up (the last
chunk to BT rows, D_k to BK, D_v to BV) and the loads past the tensor's edge read 0. Zeros are
harmless: a zero key or value adds nothing to S, a zero column adds nothing to a dot product,
and the stores are masked, so the padding is never written.

Backward. With dO the gradient of the output and dS_T that of the final state:

    dq_t = scale * S_t dO_t                   needs the states in time order
    G_t  = dS_T + scale * sum_{i >= t} q_i dO_i^T   the gradient reaching k_t v_t^T, summed
                                              backwards in time
    dk_t = G_t v_t,   dv_t = G_t^T k_t,   d(S_0) = G_1

``_chunk_dq_kernel`` replays the forward recurrence (recomputing S costs the forward's flops but
saves storing T / C states) and computes, per chunk,

    dQ = scale * (dO S^T + tril(dO V^T) K)

``_chunk_dkdv_kernel`` walks the chunks in reverse carrying dS, the gradient from the chunks
after this one (initialised from dS_T), and computes, with Q' = scale * Q,

    dK = V dS^T + triu(V dO^T) Q'           triu: token t receives from queries i >= t
    dV = K dS   + triu(K Q'^T) dO
    dS <- dS + Q'^T dO

The dS left after the first chunk is d(S_0). Both backward kernels use the forward's tiling; dq
and dk are sums over all of D_v, so each value block writes a partial sum and PyTorch adds the
blocks (one block, nothing to add, whenever D_v <= 64); dv is a sum over all of D_k, so with
more than one key block it is written as shares too.

Precision. Tiles are loaded as fp32 and every product accumulates in fp32, as does the state.
fp32 inputs use IEEE fp32 dots, so they agree with a float64 reference to ~1e-6; fp16 and
bf16 inputs use TF32 dots (tensor cores; fp16 and bf16 values are exact in TF32, only the fp32
state and scores are rounded when they enter a product). Outputs take the input dtype; states
and their gradients are fp32.

Kernels are compiled for CUDA tensors. On the CPU they run only under the Triton interpreter
(``TRITON_INTERPRET=1`` set before this module is imported), which is how the tests run them.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from lablib.kernels._base import (  # noqa: F401  (MAX_D_K, MAX_BV, _tiles: this module's limits and tiles, as before)
    _LAUNCH,
    INTERPRETED,
    MAX_BV,
    MAX_D_K,
    ChunkFunction,
    Launch,
    _apply,
    _check_qkv,
    _check_state,
    _dot,
    _load_tile,
    _store_tile,
    _tiles,
)

__all__ = ["chunk_linear_attention", "fused_recurrent_step", "INTERPRETED"]


# --------------------------------------------------------------------------------------------
# Forward
# --------------------------------------------------------------------------------------------


@triton.jit
def _chunk_fwd_kernel(
    q, k, v, o,  # (B*H, T, D_K) x2, (B*H, T, D_V), and o (B*H, T, D_V) or its key-block shares (NK, B*H, T, D_V) fp32
    initial_state, final_state,  # (B*H, D_K, D_V) fp32, or None
    scale, T,
    D_K: tl.constexpr, D_V: tl.constexpr,
    BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    bh = tl.program_id(0).to(tl.int64)  # which (batch, head); int64 so bh * T * D cannot overflow
    vb = tl.program_id(1)  # which block of value columns
    kb = tl.program_id(2)  # which block of key columns (one block unless D_k > 128)
    # Move every pointer to this (batch, head)'s matrices, and o to this key block's share.
    q += bh * T * D_K
    k += bh * T * D_K
    v += bh * T * D_V
    o += (kb * tl.num_programs(0) + bh) * T * D_V

    t_in_chunk = tl.arange(0, BT)
    kcols = kb * BK + tl.arange(0, BK)  # this program's key columns (padded to BK)
    vcols = vb * BV + tl.arange(0, BV)  # this program's value columns
    causal = t_in_chunk[:, None] >= t_in_chunk[None, :]  # query i sees keys j <= i

    # The running state S[kcols, vcols], in registers for the whole sequence.
    if initial_state is not None:
        S = _load_tile(initial_state + bh * D_K * D_V, kcols, vcols, D_K, D_V)
    else:
        S = tl.zeros([BK, BV], dtype=tl.float32)

    for c in range(0, tl.cdiv(T, BT)):
        rows = c * BT + t_in_chunk  # this chunk's time steps; rows >= T are padding
        Q = _load_tile(q, rows, kcols, T, D_K) * scale
        K = _load_tile(k, rows, kcols, T, D_K)
        V = _load_tile(v, rows, vcols, T, D_V)

        scores = _dot(Q, tl.trans(K), DOT_PRECISION)  # (BT, BT): this key block's part of Q K^T
        scores = tl.where(causal, scores, 0.0)
        # Past chunks through the state, plus this chunk in parallel (quadratic) form.
        O = _dot(Q, S, DOT_PRECISION) + _dot(scores, V, DOT_PRECISION)
        _store_tile(o, rows, vcols, T, D_V, O)

        # Absorb the chunk only after reading: its own keys were counted by the causal scores.
        S += _dot(tl.trans(K), V, DOT_PRECISION)

    if final_state is not None:
        _store_tile(final_state + bh * D_K * D_V, kcols, vcols, D_K, D_V, S)


# --------------------------------------------------------------------------------------------
# Backward
# --------------------------------------------------------------------------------------------


@triton.jit
def _chunk_dq_kernel(
    k, v, do, dq_partial,  # (B*H, T, D_K), (B*H, T, D_V), (B*H, T, D_V), (NV, B*H, T, D_K) fp32
    initial_state,  # (B*H, D_K, D_V) fp32, or None
    scale, T,
    D_K: tl.constexpr, D_V: tl.constexpr,
    BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    """dQ = scale * (dO S^T + tril(dO V^T) K): the forward loop with dO in the role of Q."""
    bh = tl.program_id(0).to(tl.int64)
    vb = tl.program_id(1)
    kb = tl.program_id(2)
    k += bh * T * D_K
    v += bh * T * D_V
    do += bh * T * D_V
    # This value block's share of dq: dq sums over all value columns, the host adds the shares.
    dq_partial += (vb * tl.num_programs(0) + bh) * T * D_K

    t_in_chunk = tl.arange(0, BT)
    kcols = kb * BK + tl.arange(0, BK)
    vcols = vb * BV + tl.arange(0, BV)
    causal = t_in_chunk[:, None] >= t_in_chunk[None, :]

    if initial_state is not None:
        S = _load_tile(initial_state + bh * D_K * D_V, kcols, vcols, D_K, D_V)
    else:
        S = tl.zeros([BK, BV], dtype=tl.float32)

    for c in range(0, tl.cdiv(T, BT)):
        rows = c * BT + t_in_chunk
        K = _load_tile(k, rows, kcols, T, D_K)
        V = _load_tile(v, rows, vcols, T, D_V)
        dO = _load_tile(do, rows, vcols, T, D_V)

        dscores = tl.where(causal, _dot(dO, tl.trans(V), DOT_PRECISION), 0.0)  # (BT, BT)
        dQ = _dot(dO, tl.trans(S), DOT_PRECISION)
        dQ += _dot(dscores, K, DOT_PRECISION)
        _store_tile(dq_partial, rows, kcols, T, D_K, dQ * scale)

        S += _dot(tl.trans(K), V, DOT_PRECISION)


@triton.jit
def _chunk_dkdv_kernel(
    q, k, v, do,  # (B*H, T, D_K), (B*H, T, D_K), (B*H, T, D_V), (B*H, T, D_V)
    dk_partial, dv,  # (NV, B*H, T, D_K) fp32, (NK, B*H, T, D_V): dv, or its key-block shares
    d_final_state, d_initial_state,  # (B*H, D_K, D_V) fp32, or None
    scale, T,
    D_K: tl.constexpr, D_V: tl.constexpr,
    BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    """dK = V dS^T + triu(V dO^T) Q',  dV = K dS + triu(K Q'^T) dO,  chunks in reverse time order."""
    bh = tl.program_id(0).to(tl.int64)
    vb = tl.program_id(1)
    kb = tl.program_id(2)
    q += bh * T * D_K
    k += bh * T * D_K
    v += bh * T * D_V
    do += bh * T * D_V
    dk_partial += (vb * tl.num_programs(0) + bh) * T * D_K
    dv += (kb * tl.num_programs(0) + bh) * T * D_V  # dv sums over all key columns: one share per key block

    t_in_chunk = tl.arange(0, BT)
    kcols = kb * BK + tl.arange(0, BK)
    vcols = vb * BV + tl.arange(0, BV)
    # The transposed causal mask: key/value j receives gradient from the queries i >= j.
    anticausal = t_in_chunk[:, None] <= t_in_chunk[None, :]

    # dS[kcols, vcols]: gradient of the loss w.r.t. the state, from everything after this chunk.
    if d_final_state is not None:
        dS = _load_tile(d_final_state + bh * D_K * D_V, kcols, vcols, D_K, D_V)
    else:
        dS = tl.zeros([BK, BV], dtype=tl.float32)

    n_chunks = tl.cdiv(T, BT)
    for i in range(0, n_chunks):
        c = n_chunks - 1 - i  # last chunk first
        rows = c * BT + t_in_chunk
        Q = _load_tile(q, rows, kcols, T, D_K) * scale
        K = _load_tile(k, rows, kcols, T, D_K)
        V = _load_tile(v, rows, vcols, T, D_V)
        dO = _load_tile(do, rows, vcols, T, D_V)

        # Within the chunk, (j, i) pairs with i >= j: key j scored query i, value j fed output i.
        kq = tl.where(anticausal, _dot(K, tl.trans(Q), DOT_PRECISION), 0.0)
        vdo = tl.where(anticausal, _dot(V, tl.trans(dO), DOT_PRECISION), 0.0)
        dV = _dot(K, dS, DOT_PRECISION) + _dot(kq, dO, DOT_PRECISION)
        dK = _dot(V, tl.trans(dS), DOT_PRECISION) + _dot(vdo, Q, DOT_PRECISION)
        _store_tile(dv, rows, vcols, T, D_V, dV)
        _store_tile(dk_partial, rows, kcols, T, D_K, dK)

        # This chunk's queries read the state that the earlier chunks wrote: pass their gradient back.
        dS += _dot(tl.trans(Q), dO, DOT_PRECISION)

    if d_initial_state is not None:
        _store_tile(d_initial_state + bh * D_K * D_V, kcols, vcols, D_K, D_V, dS)


# --------------------------------------------------------------------------------------------
# Decoding: one token, the recurrence itself
# --------------------------------------------------------------------------------------------


@triton.jit
def _recurrent_step_kernel(
    q, k, v, o,  # (B*H, D_K), (B*H, D_K), (B*H, D_V), (NK, B*H, D_V): o, or its key-block shares
    state, new_state,  # (B*H, D_K, D_V) fp32
    scale,
    D_K: tl.constexpr, D_V: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
):
    bh = tl.program_id(0).to(tl.int64)
    vb = tl.program_id(1)
    kb = tl.program_id(2)
    kcols = kb * BK + tl.arange(0, BK)
    vcols = vb * BV + tl.arange(0, BV)
    kmask, vmask = kcols < D_K, vcols < D_V

    q_t = tl.load(q + bh * D_K + kcols, mask=kmask, other=0.0).to(tl.float32) * scale
    k_t = tl.load(k + bh * D_K + kcols, mask=kmask, other=0.0).to(tl.float32)
    v_t = tl.load(v + bh * D_V + vcols, mask=vmask, other=0.0).to(tl.float32)
    S = _load_tile(state + bh * D_K * D_V, kcols, vcols, D_K, D_V)

    # One token is a rank-1 update and a matrix-vector product: no tl.dot.
    S += k_t[:, None] * v_t[None, :]  # absorb first: o_t attends to k_t itself
    o_t = tl.sum(q_t[:, None] * S, axis=0)  # this key block's part of S^T q_t

    tl.store(o + (kb * tl.num_programs(0) + bh) * D_V + vcols, o_t.to(o.dtype.element_ty), mask=vmask)
    _store_tile(new_state + bh * D_K * D_V, kcols, vcols, D_K, D_V, S)


# --------------------------------------------------------------------------------------------
# Host side: launches and autograd (checks and launch set-up: lablib.kernels._base)
# --------------------------------------------------------------------------------------------


def _forward(q, k, v, initial_state, scale, output_final_state, chunk_size):
    run = Launch(q, v, chunk_size)  # sizes, tiles, grid (B * H, value blocks, key blocks), meta-parameters
    o = run.shares(v)  # o itself, or one fp32 share of it per key block when D_k > 128
    final_state = run.state(wanted=output_final_state)
    _chunk_fwd_kernel[run.grid](q, k, v, o, initial_state, final_state, scale, run.T, **run.meta)
    return run.total(o, v), final_state


def _backward(q, k, v, initial_state, *, do, d_final_state, scale, chunk_size, want_d_initial_state):
    run = Launch(q, v, chunk_size)
    dq_partial = run.partials(run.tiles.NV, run.d_k)
    _chunk_dq_kernel[run.grid](k, v, do, dq_partial, initial_state, scale, run.T, **run.meta)

    dk_partial = run.partials(run.tiles.NV, run.d_k)
    dv = run.shares(v)
    d_initial_state = run.state(wanted=want_d_initial_state)
    _chunk_dkdv_kernel[run.grid](
        q, k, v, do, dk_partial, dv, d_final_state, d_initial_state, scale, run.T, **run.meta
    )
    # Add the blocks' shares (in fp32), then round once to the input dtype.
    return run.total(dq_partial, q), run.total(dk_partial, k), run.total(dv, v), d_initial_state


class ChunkLinearAttention(ChunkFunction):
    """Autograd wrapper: saves q, k, v (and S_0) and recomputes the states in backward."""

    @staticmethod
    def kernel_forward(q, k, v, initial_state, *, scale, output_final_state, chunk_size, needs_grad):
        o, final_state = _forward(q, k, v, initial_state, scale, output_final_state, chunk_size)
        return o, final_state, ()

    kernel_backward = staticmethod(_backward)


def chunk_linear_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    chunk_size: int = 64,
):
    """Causal linear attention o_t = scale * S_t^T q_t, S_t = S_{t-1} + k_t v_t^T, chunkwise in Triton.

    q, k: (B, H, T, D_k) with D_k <= 512; v: (B, H, T, D_v); fp32, fp16 or bf16, one dtype.
    scale: multiplies q (default 1.0: apply feature maps and scaling before calling).
    initial_state: (B, H, D_k, D_v), the state S_0 from an earlier prefix (kept in fp32).
    output_final_state: also return S_T, (B, H, D_k, D_v) fp32.
    chunk_size: tokens per chunk, a power of two >= 16.

    Returns o (B, H, T, D_v) in the input dtype, or (o, final_state). Differentiable in q, k, v
    and initial_state, including through final_state.
    """
    _check_qkv(q, k, v)
    return _apply(ChunkLinearAttention, q, k, v, initial_state=initial_state, scale=scale,
                  output_final_state=output_final_state, chunk_size=chunk_size)


def fused_recurrent_step(
    q_t: torch.Tensor, k_t: torch.Tensor, v_t: torch.Tensor, state: torch.Tensor, *, scale: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """One decoding step: S' = S + k_t v_t^T, o_t = scale * S'^T q_t, in a single kernel.

    q_t, k_t: (B, H, 1, D_k) with D_k <= 512; v_t: (B, H, 1, D_v); state: (B, H, D_k, D_v), kept in
    fp32. Returns (o_t (B, H, 1, D_v) in the input dtype, new_state (B, H, D_k, D_v) fp32);
    ``state`` itself is not modified. Forward only (decoding needs no gradients).
    """
    _check_qkv(q_t, k_t, v_t)
    if q_t.shape[2] != 1:
        raise ValueError(f"q_t, k_t, v_t must hold one token, shape (B, H, 1, D); got q_t {tuple(q_t.shape)}")
    _check_state(state, q_t, v_t, "state")
    run = Launch(q_t, v_t, chunk_size=1)
    state = state.float().contiguous()
    o_t = run.shares(v_t)
    new_state = torch.empty_like(state)
    _recurrent_step_kernel[run.grid](
        q_t.contiguous(), k_t.contiguous(), v_t.contiguous(), o_t, state, new_state, float(scale),
        D_K=run.d_k, D_V=run.d_v, BK=run.tiles.BK, BV=run.tiles.BV, **_LAUNCH,
    )
    return run.total(o_t, v_t), new_state
