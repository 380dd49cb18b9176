"""Chunkwise causal linear attention with a scalar decay gate, in Triton: forward and backward.

What is computed (RetNet / Mamba-2 style: one gate per head and step; no feature map and no
normalizer, q and k are used as given):

    S_t = a_t S_{t-1} + k_t v_t^T,   a_t = exp(log_decay_t) in (0, 1]      S_0: the initial state
    o_t = scale * S_t^T q_t

``lablib.attention.scalar_gated_chunkwise`` is the PyTorch form of the algorithm ported here,
and ``lablib.kernels.linear_attention`` the ungated kernel whose structure (tiling, ragged
sizes, precision, launch settings) this one follows; read that module's docstring first. Only
the gate is new. For one chunk of C tokens with queries Q' = scale * Q, keys K, values V, log
gates g (one per row) and the state S that enters the chunk, write b_i = sum_{s <= i} g_s (the
log decay since the chunk began) and L_ij = sum_{j < s <= i} g_s (the log decay from token j to
token i; 0 on the diagonal). Then

    D   = exp(L) below and on the diagonal, 0 above          (C x C, every entry in [0, 1])
    O   = (Q' * exp(b)) S  +  ((Q' K^T) * D) V                the past, decayed; this chunk
    S  <- exp(b_{C-1}) S  +  (K * exp(L_{C-1, :}))^T V        L_{C-1, j}: decay from j to the end

Never exponentiate anything positive. exp(b_i) / exp(b_j) overflows once gates are strong
(b_j = -20 j; exp(+1280) is inf, and inf * 0 is NaN), so the ratio is formed in log space,
and the entries above the diagonal (where L would be a positive log ratio) are replaced by -inf
with ``tl.where`` *before* ``tl.exp``: they come out as exp(-inf) = 0, never as inf.

Never form L as b_i - b_j. After one near-reset gate (log a = -1000) both cumulative sums are
about -1000, where fp32 spacing is 6e-5, and their difference loses that much absolutely, i.e.
relative error 6e-5 in exp(L_ij) (``lablib.attention.gated`` measured 2e-4 in the outputs).
The kernel builds L as the Mamba-2 "segsum": a cumulative sum down the columns of the (C x C)
matrix whose entry (s, j) is g_s for s > j and 0 otherwise, so entry (i, j) adds only the gates
actually between j and i. It costs a (C x C) scan per chunk, no more than a score tile. The
decays to the chunk's end, L_{C-1, j} = sum_{s > j} g_s, are that matrix's column sums (again
no subtraction), and b_i, a plain cumulative sum from the chunk's start, is only ever
exponentiated as a factor of its own (exp(b_i) of a strongly decayed b_i is correctly 0).

Padding. Gates past the end of the sequence load as 0 (decay 1) and keys and values as 0, so
the padded rows of a ragged last chunk change neither the outputs nor the state: exp(b_{C-1})
of the padded chunk is the decay to the last real token.

Backward. With dO the output gradient, dS_T the final state's and G_t the gradient reaching
k_t v_t^T (the gated version of the ungated kernel's G_t):

    dq_t = scale * S_t dO_t
    G_t  = sum_{i >= t} exp(B_i - B_t) scale q_i dO_i^T + exp(B_T - B_t) dS_T     (B: whole-sequence
    dk_t = G_t v_t,   dv_t = G_t^T k_t,   d(S_0) = G_0 (with B_0 = 0)              cumulative log decay)

``_gated_dq_kernel`` replays the forward recurrence and computes, per chunk,

    dQ = scale * ((dO S^T) * exp(b) + ((dO V^T) * D) K)

``_gated_dkdv_kernel`` walks the chunks in reverse carrying dS, the gradient w.r.t. the state
that leaves the current chunk (initialised from dS_T), and computes, with e_j = exp(L_{C-1, j}),

    dK = (V dS^T) * e + ((V dO^T) * D^T) Q'       D^T: token j receives from queries i >= j
    dV = (K dS) * e   + ((K Q'^T) * D^T) dO
    dS <- exp(b_{C-1}) dS + (Q' * exp(b))^T dO

The gradient of the log gates needs no kernel. Every term of o_i carries the factor exp(B_i),
every term built from k_j v_j^T carries exp(-B_j), and every term of S_T carries exp(B_T). So
the derivative w.r.t. B_t, taken as a free variable, is dO_t . o_t - G_t : k_t v_t^T (+ dS_T : S_T
at t = T), i.e. q_t . dq_t - k_t . dk_t, and since log_decay_t enters every B_s with s >= t,

    d log_decay_t = sum_{s >= t} (q_s . dq_s - k_s . dk_s)  +  <dS_T, S_T>

This identity is exact (no approximation; checked against autograd of the float64 recurrence
in the tests). One cancellation is avoided: q_t . dq_t and k_t . dk_t both contain the diagonal
term scale (q_t . k_t)(v_t . dO_t) (token t's own key, decay 1), which cancels exactly in the
difference but, left in, costs fp32 rounding of its size: under strong decay it dominates both
products while the true gradient is ~0 (measured: 3.7e-4 absolute error at gates of -20, D = 128,
T = 200). So the backward kernels split the diagonal off (it is added to dq, dk elementwise, not
through a dot) and also write, per token, q_t . dq_t and k_t . dk_t *without* it, one partial per
(key block, value block). The host adds the blocks, takes the reverse cumulative sum in float64 and adds
<dS_T, S_T> (from the saved final state): O(T) work per (batch, head), next to the kernels' O(T C D).

Known limitation of d log_decay: one smaller cancellation remains, between <dS_T, S_T> and the
last token's k_T . (dS_T v_T) (its key reaches S_T undecayed). Its fp32 rounding, ~eps |k_T| |v_T|
|dS_T|, enters every step through the cumulative sum; it only shows when the true gradient is
tiny next to that, i.e. under strong decay: at gates of -20, D = 128, T = 200 (scale 1) the scaled
error of d log_decay is 3.3e-5 (1.7e-5 at D = 64; 2e-6 at D = 16, T = 40, as tested). Mild and
"mixed" gates give ~1e-6 or better, at T = 1000 and D = 128 too (measured interpreted).

Precision. As in the ungated kernel: tiles and the state in fp32, IEEE fp32 dots for fp32
inputs, TF32 dots for fp16/bf16 inputs. The gates are always loaded as fp32 and the segment sums
and their exponentials are formed elementwise in fp32 (never rounded to TF32 by a dot). Outputs
take the input dtype, states and their gradients are fp32, and d log_decay takes log_decay's
dtype.

Checks. ``log_decay`` must be finite and <= 0; checking that reads the tensor once and
synchronizes with the device (one reduction), the price of a ValueError instead of silent NaNs.

Kernels are compiled for CUDA tensors. On the CPU they run only under the Triton interpreter
(``TRITON_INTERPRET=1`` set before this module is imported), which is how the tests run them.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from lablib.kernels._base import (
    INTERPRETED,
    ChunkFunction,
    Launch,
    _apply,
    _check_log_gate,
    _check_qkv,
    _dot,
    _load_tile,
    _store_tile,
)

__all__ = ["chunk_scalar_gated_attention", "INTERPRETED"]


# --------------------------------------------------------------------------------------------
# Gate helpers: everything a chunk needs from its log gates, in log space.
# --------------------------------------------------------------------------------------------


@triton.jit
def _load_gates(log_decay, rows, T):
    """log_decay[rows] as fp32; rows past T read 0 (decay 1), so padding never decays the state."""
    return tl.load(log_decay + rows, mask=rows < T, other=0.0).to(tl.float32)


@triton.jit
def _chunk_decays(g, t_in_chunk):
    """From one chunk's log gates g (BT,): (D, exp(b), exp(L_last), exp(b_last)).

    D (BT, BT): D[i, j] = exp(sum_{j < s <= i} g_s) for j <= i, exactly 0 for j > i.
    exp(b) (BT,): decay from the chunk's start through token i; exp(L_last) (BT,): decay from
    token j to the chunk's end (exclusive of j); exp(b_last): decay over the whole chunk.
    """
    strict = t_in_chunk[:, None] > t_in_chunk[None, :]  # (s, j) with s > j
    causal = t_in_chunk[:, None] >= t_in_chunk[None, :]
    gates_after = tl.where(strict, g[:, None], 0.0)  # [s, j] = g_s if s > j
    # Segment sums: [i, j] = sum_{j < s <= i} g_s, only the gates between j and i (no cancellation).
    seg = tl.cumsum(gates_after, axis=0)
    # Mask the exponent, not the result: above the diagonal exp(-inf) = 0, never exp(positive).
    D = tl.exp(tl.where(causal, seg, float("-inf")))
    decay_in = tl.exp(tl.cumsum(g, axis=0))  # exp(b_i)
    decay_to_end = tl.exp(tl.sum(gates_after, axis=0))  # exp(sum_{s > j} g_s): column sums
    decay_chunk = tl.exp(tl.sum(g, axis=0))  # exp(b_{C-1})
    return D, decay_in, decay_to_end, decay_chunk


# --------------------------------------------------------------------------------------------
# Forward
# --------------------------------------------------------------------------------------------


@triton.jit
def _gated_fwd_kernel(
    q, k, v, log_decay, o,  # (B*H, T, D_K) x2, (B*H, T, D_V), (B*H, T) fp32, (NK, B*H, T, D_V): o or its shares
    initial_state, final_state,  # (B*H, D_K, D_V) fp32, or None
    scale, T,
    D_K: tl.constexpr, D_V: tl.constexpr,
    BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    bh = tl.program_id(0).to(tl.int64)  # which (batch, head); int64 so bh * T * D cannot overflow
    vb = tl.program_id(1)  # which block of value columns
    kb = tl.program_id(2)  # which block of key columns (one block unless D_k > 128)
    q += bh * T * D_K
    k += bh * T * D_K
    v += bh * T * D_V
    o += (kb * tl.num_programs(0) + bh) * T * D_V  # this key block's share of o
    log_decay += bh * T

    t_in_chunk = tl.arange(0, BT)
    kcols = kb * BK + tl.arange(0, BK)
    vcols = vb * BV + tl.arange(0, BV)

    if initial_state is not None:
        S = _load_tile(initial_state + bh * D_K * D_V, kcols, vcols, D_K, D_V)
    else:
        S = tl.zeros([BK, BV], dtype=tl.float32)

    for c in range(0, tl.cdiv(T, BT)):
        rows = c * BT + t_in_chunk
        Q = _load_tile(q, rows, kcols, T, D_K) * scale
        K = _load_tile(k, rows, kcols, T, D_K)
        V = _load_tile(v, rows, vcols, T, D_V)
        D, decay_in, decay_to_end, decay_chunk = _chunk_decays(_load_gates(log_decay, rows, T), t_in_chunk)

        scores = _dot(Q, tl.trans(K), DOT_PRECISION) * D  # causal and decayed: D is 0 above the diagonal
        # The past through the state, decayed to each query; this chunk in parallel form.
        O = _dot(Q * decay_in[:, None], S, DOT_PRECISION) + _dot(scores, V, DOT_PRECISION)
        _store_tile(o, rows, vcols, T, D_V, O)

        S = S * decay_chunk + _dot(tl.trans(K * decay_to_end[:, None]), V, DOT_PRECISION)

    if final_state is not None:
        _store_tile(final_state + bh * D_K * D_V, kcols, vcols, D_K, D_V, S)


# --------------------------------------------------------------------------------------------
# Backward
# --------------------------------------------------------------------------------------------


@triton.jit
def _gated_dq_kernel(
    q, k, v, log_decay, do, dq_partial,  # ..., (B*H, T) fp32, (B*H, T, D_V), (NV, B*H, T, D_K) fp32
    qdq_partial,  # (NK * NV, B*H, T) fp32: q_t . dq_t without the diagonal term, this block's share
    initial_state,  # (B*H, D_K, D_V) fp32, or None
    scale, T,
    D_K: tl.constexpr, D_V: tl.constexpr,
    BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    """dQ = scale * ((dO S^T) * exp(b) + ((dO V^T) * D) K): the forward loop with dO as the query."""
    bh = tl.program_id(0).to(tl.int64)
    vb = tl.program_id(1)
    kb = tl.program_id(2)
    q += bh * T * D_K
    k += bh * T * D_K
    v += bh * T * D_V
    do += bh * T * D_V
    log_decay += bh * T
    # This value block's share of dq: dq sums over all value columns, the host adds the shares.
    dq_partial += (vb * tl.num_programs(0) + bh) * T * D_K
    # q_t . dq_t sums over key and value columns: one share per (key block, value block).
    qdq_partial += ((kb * tl.num_programs(1) + vb) * tl.num_programs(0) + bh) * T

    t_in_chunk = tl.arange(0, BT)
    kcols = kb * BK + tl.arange(0, BK)
    vcols = vb * BV + tl.arange(0, BV)
    diagonal = t_in_chunk[:, None] == t_in_chunk[None, :]

    if initial_state is not None:
        S = _load_tile(initial_state + bh * D_K * D_V, kcols, vcols, D_K, D_V)
    else:
        S = tl.zeros([BK, BV], dtype=tl.float32)

    for c in range(0, tl.cdiv(T, BT)):
        rows = c * BT + t_in_chunk
        Qraw = _load_tile(q, rows, kcols, T, D_K)  # unscaled: dq is the gradient of q itself
        K = _load_tile(k, rows, kcols, T, D_K)
        V = _load_tile(v, rows, vcols, T, D_V)
        dO = _load_tile(do, rows, vcols, T, D_V)
        D, decay_in, decay_to_end, decay_chunk = _chunk_decays(_load_gates(log_decay, rows, T), t_in_chunk)

        dscores = _dot(dO, tl.trans(V), DOT_PRECISION) * D  # (BT, BT), 0 above the diagonal
        # Split off the diagonal (token i's own key, decay 1): it cancels in d log_decay.
        on_diagonal = tl.sum(tl.where(diagonal, dscores, 0.0), axis=1)  # dO_i . v_i
        dQ_off = _dot(dO, tl.trans(S), DOT_PRECISION) * decay_in[:, None]
        dQ_off += _dot(tl.where(diagonal, 0.0, dscores), K, DOT_PRECISION)
        dQ = dQ_off + on_diagonal[:, None] * K
        _store_tile(dq_partial, rows, kcols, T, D_K, dQ * scale)
        tl.store(qdq_partial + rows, tl.sum(Qraw * dQ_off, axis=1) * scale, mask=rows < T)

        S = S * decay_chunk + _dot(tl.trans(K * decay_to_end[:, None]), V, DOT_PRECISION)


@triton.jit
def _gated_dkdv_kernel(
    q, k, v, log_decay, do,  # (B*H, T, D_K), (B*H, T, D_K), (B*H, T, D_V), (B*H, T) fp32, (B*H, T, D_V)
    dk_partial, dv,  # (NV, B*H, T, D_K) fp32, (NK, B*H, T, D_V): dv or its key-block shares
    kdk_partial,  # (NK * NV, B*H, T) fp32: k_t . dk_t without the diagonal term, this block's share
    d_final_state, d_initial_state,  # (B*H, D_K, D_V) fp32, or None
    scale, T,
    D_K: tl.constexpr, D_V: tl.constexpr,
    BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    """dK = (V dS^T) * e + ((V dO^T) * D^T) Q',  dV = (K dS) * e + ((K Q'^T) * D^T) dO,  chunks in reverse."""
    bh = tl.program_id(0).to(tl.int64)
    vb = tl.program_id(1)
    kb = tl.program_id(2)
    q += bh * T * D_K
    k += bh * T * D_K
    v += bh * T * D_V
    do += bh * T * D_V
    log_decay += bh * T
    dk_partial += (vb * tl.num_programs(0) + bh) * T * D_K
    dv += (kb * tl.num_programs(0) + bh) * T * D_V
    kdk_partial += ((kb * tl.num_programs(1) + vb) * tl.num_programs(0) + bh) * T

    t_in_chunk = tl.arange(0, BT)
    kcols = kb * BK + tl.arange(0, BK)
    vcols = vb * BV + tl.arange(0, BV)
    diagonal = t_in_chunk[:, None] == t_in_chunk[None, :]

    # dS[kcols, vcols]: gradient w.r.t. the state leaving the current chunk, from everything after it.
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
        D, decay_in, decay_to_end, decay_chunk = _chunk_decays(_load_gates(log_decay, rows, T), t_in_chunk)
        Dt = tl.trans(D)  # [j, i] = decay from key j to query i, 0 unless i >= j

        kq = _dot(K, tl.trans(Q), DOT_PRECISION) * Dt
        vdo = _dot(V, tl.trans(dO), DOT_PRECISION) * Dt
        # What reaches token j from later chunks arrives through the state, decayed from j to the end.
        dV = _dot(K, dS, DOT_PRECISION) * decay_to_end[:, None] + _dot(kq, dO, DOT_PRECISION)
        on_diagonal = tl.sum(tl.where(diagonal, vdo, 0.0), axis=1)  # v_j . dO_j, as in the dq kernel
        dK_off = _dot(V, tl.trans(dS), DOT_PRECISION) * decay_to_end[:, None]
        dK_off += _dot(tl.where(diagonal, 0.0, vdo), Q, DOT_PRECISION)
        dK = dK_off + on_diagonal[:, None] * Q
        _store_tile(dv, rows, vcols, T, D_V, dV)
        _store_tile(dk_partial, rows, kcols, T, D_K, dK)
        tl.store(kdk_partial + rows, tl.sum(K * dK_off, axis=1), mask=rows < T)

        # The state entering this chunk: decayed through it into dS, and read (decayed) by its queries.
        dS = dS * decay_chunk + _dot(tl.trans(Q * decay_in[:, None]), dO, DOT_PRECISION)

    if d_initial_state is not None:
        _store_tile(d_initial_state + bh * D_K * D_V, kcols, vcols, D_K, D_V, dS)


# --------------------------------------------------------------------------------------------
# Host side: launches and autograd (checks and launch set-up: lablib.kernels._base)
# --------------------------------------------------------------------------------------------


def _check_log_decay(log_decay: torch.Tensor, q: torch.Tensor) -> None:
    _check_log_gate(log_decay, q, "log_decay")


def _forward(q, k, v, log_decay, initial_state, scale, output_final_state, chunk_size):
    run = Launch(q, v, chunk_size)
    o = run.shares(v)
    final_state = run.state(wanted=output_final_state)
    _gated_fwd_kernel[run.grid](q, k, v, log_decay, o, initial_state, final_state, scale, run.T, **run.meta)
    return run.total(o, v), final_state


def _backward(q, k, v, log_decay, initial_state, final_state, *, do, d_final_state, scale, chunk_size,
              want_d_initial_state):
    run = Launch(q, v, chunk_size)
    blocks = run.tiles.NK * run.tiles.NV
    dq_partial = run.partials(run.tiles.NV, run.d_k)
    qdq_partial = run.partials(blocks)
    _gated_dq_kernel[run.grid](q, k, v, log_decay, do, dq_partial, qdq_partial, initial_state, scale, run.T,
                               **run.meta)

    dk_partial = run.partials(run.tiles.NV, run.d_k)
    kdk_partial = run.partials(blocks)
    dv = run.shares(v)
    d_initial_state = run.state(wanted=want_d_initial_state)
    _gated_dkdv_kernel[run.grid](
        q, k, v, log_decay, do, dk_partial, dv, kdk_partial, d_final_state, d_initial_state, scale, run.T,
        **run.meta,
    )

    # d log_decay_t = sum_{s >= t} (q_s . dq_s - k_s . dk_s) + <dS_T, S_T> (module docstring), with
    # the diagonal terms left out of both dot products by the kernels; reverse cumsum in float64.
    per_step = qdq_partial.sum(0) - kdk_partial.sum(0)  # (B, H, T)
    d_log_decay = per_step.double().flip(-1).cumsum(-1).flip(-1)
    if d_final_state is not None:
        d_log_decay += (d_final_state.double() * final_state.double()).sum((-2, -1))[..., None]
    return (run.total(dq_partial, q), run.total(dk_partial, k), run.total(dv, v), d_log_decay.float(),
            d_initial_state)


class ChunkScalarGatedAttention(ChunkFunction):
    """Autograd wrapper: saves q, k, v, the log gates (and S_0, S_T); recomputes states in backward."""

    @staticmethod
    def kernel_forward(q, k, v, log_decay, initial_state, *, scale, output_final_state, chunk_size, needs_grad):
        o, final_state = _forward(q, k, v, log_decay, initial_state, scale, output_final_state, chunk_size)
        return o, final_state, (final_state,)

    kernel_backward = staticmethod(_backward)


def chunk_scalar_gated_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    log_decay: torch.Tensor,
    *,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    chunk_size: int = 64,
):
    """Scalar-gated causal linear attention, chunkwise in Triton (RetNet / Mamba-2 style decay).

        S_t = exp(log_decay_t) S_{t-1} + k_t v_t^T,   o_t = scale * S_t^T q_t

    q, k: (B, H, T, D_k) with D_k <= 512; v: (B, H, T, D_v); fp32, fp16 or bf16, one dtype.
    log_decay: (B, H, T), finite and <= 0; fp32, fp16 or bf16 (need not match q; it is used in
        fp32, and fp32 is advisable: a bf16 log gate near 0 is coarse).
    scale: multiplies q (default 1.0: apply feature maps and scaling before calling).
    initial_state: (B, H, D_k, D_v), the state S_0 from an earlier prefix (kept in fp32).
    output_final_state: also return S_T, (B, H, D_k, D_v) fp32.
    chunk_size: tokens per chunk, a power of two >= 16.

    Returns o (B, H, T, D_v) in the input dtype, or (o, final_state). Differentiable in q, k, v,
    log_decay and initial_state, including through final_state. With log_decay = 0 this is
    ``lablib.kernels.linear_attention.chunk_linear_attention``; the PyTorch references are
    ``lablib.attention.scalar_gated_recurrent`` and ``scalar_gated_chunkwise``.
    """
    _check_qkv(q, k, v)
    _check_log_decay(log_decay, q)
    return _apply(ChunkScalarGatedAttention, q, k, v, log_decay, initial_state=initial_state, scale=scale,
                  output_final_state=output_final_state, chunk_size=chunk_size)
