"""Chunkwise gated linear attention (GLA) in Triton: a decay per key dim, forward and backward.

What is computed (Yang et al., 2024, "Gated Linear Attention Transformers with Hardware-Efficient
Training"; no feature map and no normalizer, q and k are used as given):

    S_t = diag(alpha_t) S_{t-1} + k_t v_t^T,   alpha_t = exp(log_alpha_t) in (0, 1]^D_k
    o_t = scale * S_t^T q_t                                            S_0: the initial state

Row d of the state (what key feature d has stored) forgets at its own, data-dependent rate.
``lablib.attention.gla_recurrent`` is the truth and ``gla_chunkwise`` the PyTorch chunkwise form;
``lablib.kernels.gated_linear_attention`` is the scalar-gated kernel (one decay per step) whose
log-space rules this module keeps, and ``lablib.kernels.linear_attention`` the ungated kernel
whose tiling, ragged sizes, precision and launch settings it follows. Read those docstrings first.

The chunkwise form. For one chunk of C tokens with queries Q' = scale * Q, keys K, values V, log
gates g (now a (C x D_k) tile) and the state S entering the chunk, b_i = sum_{s <= i} g_s is a
D_k-vector per row, and per key dim d the scalar formulas still hold:

    O  = (Q' * exp(b)) S  +  A V,         A_ij = sum_d q'_id k_jd exp(b_id - b_jd)   (j <= i, else 0)
    S <- diag(exp(b_{C-1})) S  +  (K * exp(L))^T V,        L_jd = sum_{j < s < C} g_sd

The inter-chunk half is the scalar kernel's with a (C x D_k) decay tile in place of a column: a
D_k-vector cumulative sum exp(b) (a factor of its own, <= 1) and the decays to the chunk's end
L, built as a reverse cumulative sum of the gates *after* each row (the gate tile loaded one row
down), never as b_{C-1} - b_j. The new difficulty is A: the decay sits inside the sum over d, so
it no longer factors out of Q K^T as the scalar kernel's D matrix did, and A is not one matmul.

Secondary chunking (the GLA paper's trick). Cut the chunk into sub-chunks of BC = 16 rows. For
a query sub-chunk I and an *earlier* key sub-chunk J, every key j lies before every query i, so
one reference position r between them (here r = the last row before I) splits each decay:

    exp(b_id - b_jd) = exp(sum_{r < s <= i} g_sd) * exp(sum_{j < s <= r} g_sd)
    A_IJ = (Q'_I * exp(cum_I)) (K_J * exp(after_J + gap))^T          one (16 x D_k)(D_k x 16) matmul

where cum_I is the cumulative sum from I's first row, after_J the sum of J's gates after row j,
and gap the sum of the gates of the whole sub-chunks strictly between J and I. Both factors are
exponentials of sums of log gates, <= 0, so in [0, 1]: nothing can overflow (a factor that
underflows to 0 means the true product is even smaller). And both exponents are sums of the
gates actually between the two positions, never a difference of cumulative sums (no cancellation:
after a near-reset gate of -1000, b_i - b_j from two cumulative sums near -1000 would carry an
absolute error ~6e-5). A sub-chunk cannot be split against itself (no single r lies between
every pair j <= i inside I), so the 16 x 16 diagonal block is computed exactly, one key column j at a time,
with the segment sums R_j[i] = sum_{j < s <= i} g_s kept as a running (16 x D_k) tile: going from
column j + 1 to column j adds the gate g_{j+1} to every row below j (an addition, no scan and no
subtraction). Sub-chunks of 16 are the smallest tl.dot tile, so they keep the exact, elementwise
part (16 * 16 * D_k exponentials per sub-chunk) as small as possible; the rest is matmuls.

Kernels. A does not depend on the values, so it is built once, outside the walk over time:

``_gla_intra_scores_kernel``  one program per (batch, head) and sub-chunk I: the row strip
    A[I, :] of its chunk (earlier sub-chunks by matmul, the diagonal block exactly), written to an
    fp32 (B*H, T, C) buffer. No sequential dependency: every sub-chunk of the sequence in parallel.
``_gla_fwd_kernel``  the ungated kernel's walk (one program per (batch, head) and block of BV value
    columns, the state S[:, block] in registers): O = (Q' * exp(b)) S + A V per chunk, then the
    state update. The buffer A is saved for the backward.

Backward. With dO the output gradient, dS the gradient of the state leaving the current chunk
(dS_T for the last), dA_ij = dO_i . v_j, and decays taken per key dim:

    dQ = scale * [(dO S^T) * exp(b)  +  sum_j dA_ij k_jd exp(b_id - b_jd)]          (j <= i)
    dK = (V dS^T) * exp(L)  +  sum_i dA_ij q'_id exp(b_id - b_jd)                   (i >= j)
    dV = (K * exp(L)) dS  +  A^T dO
    dS <- diag(exp(b_{C-1})) dS  +  (Q' * exp(b))^T dO,       the dS left at the start is d(S_0)

``_gla_dq_inter_kernel`` replays the forward walk for the state terms of dQ; ``_gla_dkdv_kernel``
walks the chunks in reverse for dV and the state terms of dK; ``_gla_intra_grad_kernel`` does the
intra-chunk sums over j (for dQ) and i (for dK) exactly as A was built: by matmuls against earlier
(for dQ) and later (for dK, with the reference r = the last row of I) sub-chunks, and the
diagonal block one column at a time; it forms dA sub-block by sub-block, summing over all value
columns, so it is not split by value block. The walks write one partial dQ, dK per value block
(each sums over its columns of D_v) and the host adds them.

Key blocks. The decay is per key dim, and row d of the state only ever sees key dim d, so, as in
the ungated kernel, wide keys (D_k > 128, up to 512) are split into blocks of BK = 128 that are
programs of their own (the last grid axis of every kernel). A, a sum over the key dim, is then
built as one share per key block, A = sum_kb A_kb, and the walk of key block kb uses its own
share: its part of O, (Q' * exp(b))[:, kb] S[kb, :] + A_kb V, sums over the key blocks to O (and
A_kb^T dO to the A^T dO of dV), so A is never added up on the host. dq, dk and d log_alpha are
per key dim and need no shares.

The gate gradient needs no kernel: the scalar kernel's identity holds per key dim d. Every term
of o_i carries exp(B_id) with q_id, every term built from k_j v_j^T carries exp(-B_jd) with k_jd,
and S_T[d, :] carries exp(B_Td) (B: whole-sequence cumulative log decay), so

    d log_alpha_{t,d} = sum_{s >= t} (q_sd dq_sd - k_sd dk_sd)  +  sum_e dS_T[d, e] S_T[d, e]

(elementwise products; exact, checked against autograd of the float64 recurrence in the tests).
As in the scalar kernel the diagonal term (token t's own key, decay 1), scale (v_t . dO_t) k_td in
dq_td and scale (v_t . dO_t) q_td in dk_td, cancels exactly in the difference but would leave fp32
rounding of its size where the true gradient is tiny (strong decay). So the kernels compute dQ and
dK *without* it (the diagonal blocks use j < i strictly), the host forms q * dq - k * dk from those,
takes the reverse cumulative sum over time in float64, adds the dS_T : S_T term (from the saved
final state), and only then adds the diagonal rank-one term scale (v_t . dO_t) k_t (resp. q_t) to
dq (resp. dk): O(T D) elementwise work next to the kernels' O(T C D).

Known limitation of d log_alpha, as in the scalar kernel: the smaller cancellation between
dS_T[d, :] . S_T[d, :] and the last token's k_Td dk_Td remains; it only shows when the true
gradient is tiny next to |k_T| |v_T| |dS_T|, i.e. under strong decay. Measured (interpreted, scale
1, chunks of 64): scaled error of d log_alpha 6.8e-6 at gates of -20, D = 128, T = 200 (3.5e-6 at
D = 64; 1.8e-6 at D = 16, T = 40, as tested); mild or "mixed" gates give ~3e-7 there, and every
other result (o, S_T, dq, dk, dv, d S_0) ~1e-7 to 4e-7 in all of these cases.

Ragged sizes. Rows past T load as 0: gates 0 (decay 1), keys and values 0, so the padding of a
ragged last chunk changes nothing; D_k and D_v are padded to tiles as in the ungated kernel.

Precision. Tiles and the state in fp32, IEEE fp32 dots for fp32 inputs, TF32 dots for fp16/bf16
inputs (A is stored in fp32, rounded to TF32 when it enters A V). The gates are always fp32 and
their sums and exponentials are formed elementwise in fp32; the decay factors of the sub-chunk
split are rounded to TF32 inside the dots for half inputs, as the decayed Q and K of the scalar
kernel are. Outputs take the input dtype, states and their gradients are fp32, and d log_alpha
takes log_alpha's dtype.

Cost and the chunk size (compiled; not measured here). The diagonal blocks cost 16 * 16 * D_k
exponentials per 16 rows whatever the chunk size. A chunk of C = 16 n rows has n (n - 1) / 2
off-diagonal 16 x 16 blocks, one (16 x D_k)(D_k x 16) matmul each in the forward (the backward
adds dO V^T over all of D_v per block); the walks do per chunk the scalar kernel's matmuls, so
they take T / C sequential steps. Larger chunks: fewer sequential steps and larger, tensor-core
friendly matmuls in the walks, but quadratically more off-diagonal blocks and a larger buffer A
(4 C bytes per token and head, saved for the backward). The default C = 64 (n = 4) follows the
GLA paper and the other kernels; ``chunk_size=16`` leaves only the exact diagonal blocks.

Checks. ``log_alpha`` must be finite and <= 0 (one reduction and one sync, as in the scalar
kernel). Kernels are compiled for CUDA tensors. On the CPU they run only under the Triton
interpreter (``TRITON_INTERPRET=1`` set before this module is imported), as the tests do.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from lablib.kernels._base import (
    _LAUNCH,
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

__all__ = ["chunk_gla", "INTERPRETED"]

SUB_CHUNK = 16  # rows of a sub-chunk: the smallest tl.dot tile side


# --------------------------------------------------------------------------------------------
# Gate helpers: what a block of rows needs from its log gates, in log space.
# --------------------------------------------------------------------------------------------


@triton.jit
def _block_gates(log_alpha, first, t_in_block, kcols, T, D_K, BLOCK: tl.constexpr):
    """The log gates of rows first .. first + BLOCK - 1 (a chunk or a sub-chunk) and their sums.

    Returns (cum, after, total): cum[i] = sum_{first <= s <= i} g_s (the decay from the block's
    start through row i), after[j] = sum_{j < s < first + BLOCK} g_s (from row j, excluded, to the
    block's end), both (BLOCK, BK); total (BK,) = the whole block's. All are sums of the gates
    between the two positions, no differences. Rows past T read 0 (decay 1).
    """
    rows = first + t_in_block
    g = _load_tile(log_alpha, rows, kcols, T, D_K)
    # The gates one row down, 0 past the block's end: their reverse cumsum excludes row j itself.
    g_next = tl.where(t_in_block[:, None] < BLOCK - 1, _load_tile(log_alpha, rows + 1, kcols, T, D_K), 0.0)
    cum = tl.cumsum(g, axis=0)
    after = tl.cumsum(g_next, axis=0, reverse=True)
    return cum, after, tl.sum(g, axis=0)


@triton.jit
def _load_row(base, row, kcols, T, D_K):
    """base[row, :] as an fp32 vector (BK,); 0 past T or D_K."""
    mask = (kcols < D_K) & (kcols * 0 + row < T)  # row < T, broadcast over the vector
    return tl.load(base + row * D_K + kcols, mask=mask, other=0.0).to(tl.float32)


@triton.jit
def _next_segment_sums(R, log_alpha, first, j, t_in_block, kcols, T, D_K):
    """The diagonal block's segment sums for key column j from those of column j + 1.

    R[i] = sum_{j < s <= i} g_s for rows i > j, 0 for i <= j: row i of column j + 1's sums plus the
    gate g_{j+1} (a sum, never a difference of cumulative sums)."""
    g_next = _load_row(log_alpha, first + j + 1, kcols, T, D_K)
    return tl.where(t_in_block[:, None] > j, R + g_next[None, :], 0.0)


@triton.jit
def _value_scores(do, v, rows_i, rows_j, T, D_V: tl.constexpr, BC: tl.constexpr, BV: tl.constexpr,
                  DOT_PRECISION: tl.constexpr):
    """dA[rows_i, rows_j] = dO V^T (BC, BC), summed over all value columns one block of BV at a time."""
    dA = tl.zeros([BC, BC], dtype=tl.float32)
    for v0 in range(0, D_V, BV):
        vcols = v0 + tl.arange(0, BV)
        dA += _dot(_load_tile(do, rows_i, vcols, T, D_V), tl.trans(_load_tile(v, rows_j, vcols, T, D_V)),
                   DOT_PRECISION)
    return dA


# --------------------------------------------------------------------------------------------
# Forward
# --------------------------------------------------------------------------------------------


@triton.jit
def _gla_intra_scores_kernel(
    q, k, log_alpha, A,  # (B*H, T, D_K) x3 (log_alpha fp32), (NK, B*H, T, BT) fp32, zero-filled
    scale, T,
    D_K: tl.constexpr, BT: tl.constexpr, BC: tl.constexpr, BK: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    """Row strip I of a chunk's scores, A[I, :] = sum_d q'_id k_jd exp(b_id - b_jd) for j <= i,
    summed over this program's key block d (one share of A per key block)."""
    bh = tl.program_id(0).to(tl.int64)
    sub = tl.program_id(1)  # which sub-chunk of the sequence: I
    kb = tl.program_id(2)  # which block of key dims
    q += bh * T * D_K
    k += bh * T * D_K
    log_alpha += bh * T * D_K
    A += (kb * tl.num_programs(0) + bh) * T * BT

    first = sub * BC  # I's first row
    i_in_chunk = sub % (BT // BC)  # I's place in its chunk: the sub-chunks before it are the J < I
    t = tl.arange(0, BC)
    kcols = kb * BK + tl.arange(0, BK)
    rows = first + t
    Q = _load_tile(q, rows, kcols, T, D_K) * scale
    cum_I, after_I, total_I = _block_gates(log_alpha, first, t, kcols, T, D_K, BC)
    Q_decayed = Q * tl.exp(cum_I)  # q'_i decayed from the reference r = first - 1 to i

    # Earlier sub-chunks, nearest first. gap: log decay of the whole sub-chunks between J and I.
    gap = tl.zeros([BK], dtype=tl.float32)
    for back in range(0, i_in_chunk):
        j_first = first - (back + 1) * BC
        K_J = _load_tile(k, j_first + t, kcols, T, D_K)
        cum_J, after_J, total_J = _block_gates(log_alpha, j_first, t, kcols, T, D_K, BC)
        K_decayed = K_J * tl.exp(after_J + gap[None, :])  # k_j decayed from j to r
        scores = _dot(Q_decayed, tl.trans(K_decayed), DOT_PRECISION)
        _store_tile(A, rows, (i_in_chunk - 1 - back) * BC + t, T, BT, scores)
        gap += total_J

    # The diagonal block, exactly: one key column j at a time, last column first.
    A_II = tl.zeros([BC, BC], dtype=tl.float32)
    R = tl.zeros([BC, BK], dtype=tl.float32)
    for back in range(0, BC):
        j = BC - 1 - back
        R = _next_segment_sums(R, log_alpha, first, j, t, kcols, T, D_K)
        decay = tl.exp(tl.where(t[:, None] >= j, R, float("-inf")))  # 0 above the diagonal, never exp(+)
        column = tl.sum(Q * _load_row(k, first + j, kcols, T, D_K)[None, :] * decay, axis=1)
        A_II = tl.where(t[None, :] == j, column[:, None], A_II)
    _store_tile(A, rows, i_in_chunk * BC + t, T, BT, A_II)


@triton.jit
def _gla_fwd_kernel(
    q, k, v, log_alpha, A, o,  # (B*H, T, D_K) x2, (B*H, T, D_V), (B*H, T, D_K) fp32, (NK, B*H, T, BT) fp32,
    # and (NK, B*H, T, D_V): o, or its key-block shares
    initial_state, final_state,  # (B*H, D_K, D_V) fp32, or None
    scale, T,
    D_K: tl.constexpr, D_V: tl.constexpr,
    BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    """O = (Q' * exp(b)) S + A V per chunk, S <- diag(exp(b_last)) S + (K * exp(L))^T V (one key block's share)."""
    bh = tl.program_id(0).to(tl.int64)
    vb = tl.program_id(1)
    kb = tl.program_id(2)
    q += bh * T * D_K
    k += bh * T * D_K
    v += bh * T * D_V
    o += (kb * tl.num_programs(0) + bh) * T * D_V
    log_alpha += bh * T * D_K
    A += (kb * tl.num_programs(0) + bh) * T * BT  # this key block's share of the scores

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
        b, after, total = _block_gates(log_alpha, c * BT, t_in_chunk, kcols, T, D_K, BT)
        scores = _load_tile(A, rows, t_in_chunk, T, BT)

        O = _dot(Q * tl.exp(b), S, DOT_PRECISION) + _dot(scores, V, DOT_PRECISION)
        _store_tile(o, rows, vcols, T, D_V, O)

        S = S * tl.exp(total)[:, None] + _dot(tl.trans(K * tl.exp(after)), V, DOT_PRECISION)

    if final_state is not None:
        _store_tile(final_state + bh * D_K * D_V, kcols, vcols, D_K, D_V, S)


# --------------------------------------------------------------------------------------------
# Backward
# --------------------------------------------------------------------------------------------


@triton.jit
def _gla_dq_inter_kernel(
    k, v, log_alpha, do, dq_partial,  # ..., (B*H, T, D_V), (NV, B*H, T, D_K) fp32
    initial_state,  # (B*H, D_K, D_V) fp32, or None
    scale, T,
    D_K: tl.constexpr, D_V: tl.constexpr,
    BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    """The state terms of dQ, scale * (dO S^T) * exp(b), replaying the forward walk; one share per value block."""
    bh = tl.program_id(0).to(tl.int64)
    vb = tl.program_id(1)
    kb = tl.program_id(2)
    k += bh * T * D_K
    v += bh * T * D_V
    do += bh * T * D_V
    log_alpha += bh * T * D_K
    dq_partial += (vb * tl.num_programs(0) + bh) * T * D_K

    t_in_chunk = tl.arange(0, BT)
    kcols = kb * BK + tl.arange(0, BK)
    vcols = vb * BV + tl.arange(0, BV)

    if initial_state is not None:
        S = _load_tile(initial_state + bh * D_K * D_V, kcols, vcols, D_K, D_V)
    else:
        S = tl.zeros([BK, BV], dtype=tl.float32)

    for c in range(0, tl.cdiv(T, BT)):
        rows = c * BT + t_in_chunk
        K = _load_tile(k, rows, kcols, T, D_K)
        V = _load_tile(v, rows, vcols, T, D_V)
        dO = _load_tile(do, rows, vcols, T, D_V)
        b, after, total = _block_gates(log_alpha, c * BT, t_in_chunk, kcols, T, D_K, BT)

        dQ = _dot(dO, tl.trans(S), DOT_PRECISION) * tl.exp(b)
        _store_tile(dq_partial, rows, kcols, T, D_K, dQ * scale)

        S = S * tl.exp(total)[:, None] + _dot(tl.trans(K * tl.exp(after)), V, DOT_PRECISION)


@triton.jit
def _gla_dkdv_kernel(
    q, k, v, log_alpha, A, do,  # as in the forward, and (B*H, T, D_V)
    dk_partial, dv,  # (NV, B*H, T, D_K) fp32, (NK, B*H, T, D_V): dv, or its key-block shares
    d_final_state, d_initial_state,  # (B*H, D_K, D_V) fp32, or None
    scale, T,
    D_K: tl.constexpr, D_V: tl.constexpr,
    BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    """dV = (K * exp(L)) dS + A^T dO and the state terms of dK, (V dS^T) * exp(L); chunks in reverse."""
    bh = tl.program_id(0).to(tl.int64)
    vb = tl.program_id(1)
    kb = tl.program_id(2)
    q += bh * T * D_K
    k += bh * T * D_K
    v += bh * T * D_V
    do += bh * T * D_V
    dv += (kb * tl.num_programs(0) + bh) * T * D_V  # with A's share of key block kb: dv's share
    log_alpha += bh * T * D_K
    A += (kb * tl.num_programs(0) + bh) * T * BT
    dk_partial += (vb * tl.num_programs(0) + bh) * T * D_K

    t_in_chunk = tl.arange(0, BT)
    kcols = kb * BK + tl.arange(0, BK)
    vcols = vb * BV + tl.arange(0, BV)

    # dS[:, vcols]: gradient w.r.t. the state leaving the current chunk, from everything after it.
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
        b, after, total = _block_gates(log_alpha, c * BT, t_in_chunk, kcols, T, D_K, BT)
        scores = _load_tile(A, rows, t_in_chunk, T, BT)
        to_end = tl.exp(after)  # (BT, BK): decay from key j to the chunk's end, per key dim

        dV = _dot(K * to_end, dS, DOT_PRECISION) + _dot(tl.trans(scores), dO, DOT_PRECISION)
        dK = _dot(V, tl.trans(dS), DOT_PRECISION) * to_end
        _store_tile(dv, rows, vcols, T, D_V, dV)
        _store_tile(dk_partial, rows, kcols, T, D_K, dK)

        dS = dS * tl.exp(total)[:, None] + _dot(tl.trans(Q * tl.exp(b)), dO, DOT_PRECISION)

    if d_initial_state is not None:
        _store_tile(d_initial_state + bh * D_K * D_V, kcols, vcols, D_K, D_V, dS)


@triton.jit
def _gla_intra_grad_kernel(
    q, k, v, log_alpha, do,  # (B*H, T, D_K) x2, (B*H, T, D_V), (B*H, T, D_K) fp32, (B*H, T, D_V)
    dq_intra, dk_intra,  # (B*H, T, D_K) fp32: the intra-chunk terms, token t's own key left out
    scale, T,
    D_K: tl.constexpr, D_V: tl.constexpr,
    BT: tl.constexpr, BC: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    """For sub-chunk I: dq_id = scale sum_{j < i} dA_ij k_jd e_ijd,  dk_jd = sum_{i > j} dA_ij q'_id e_ijd
    (e: the decay from j to i; both sums within the chunk), built as A was, for this key block's d."""
    bh = tl.program_id(0).to(tl.int64)
    sub = tl.program_id(1)
    kb = tl.program_id(2)
    q += bh * T * D_K
    k += bh * T * D_K
    v += bh * T * D_V
    do += bh * T * D_V
    log_alpha += bh * T * D_K
    dq_intra += bh * T * D_K
    dk_intra += bh * T * D_K

    first = sub * BC
    i_in_chunk = sub % (BT // BC)
    # Sub-chunks of this chunk that hold rows < T: the later ones J that read I's keys.
    n_sub = tl.minimum(BT // BC, i_in_chunk + tl.cdiv(T - first, BC))
    t = tl.arange(0, BC)
    kcols = kb * BK + tl.arange(0, BK)
    rows = first + t
    Q = _load_tile(q, rows, kcols, T, D_K) * scale
    cum_I, after_I, total_I = _block_gates(log_alpha, first, t, kcols, T, D_K, BC)

    # dQ_I from earlier sub-chunks J (reference r = the row before I): as A_IJ, with dA for Q'.
    dQ = tl.zeros([BC, BK], dtype=tl.float32)
    gap = tl.zeros([BK], dtype=tl.float32)
    for back in range(0, i_in_chunk):
        j_first = first - (back + 1) * BC
        K_J = _load_tile(k, j_first + t, kcols, T, D_K)
        cum_J, after_J, total_J = _block_gates(log_alpha, j_first, t, kcols, T, D_K, BC)
        dA = _value_scores(do, v, rows, j_first + t, T, D_V, BC, BV, DOT_PRECISION)  # [i in I, j in J]
        dQ += _dot(dA, K_J * tl.exp(after_J + gap[None, :]), DOT_PRECISION)
        gap += total_J
    dQ = dQ * tl.exp(cum_I)

    # dK_I from later sub-chunks J (reference r = I's last row): key factor exp(after_I), local.
    dK = tl.zeros([BC, BK], dtype=tl.float32)
    gap = tl.zeros([BK], dtype=tl.float32)
    for later in range(i_in_chunk + 1, n_sub):
        j_first = first + (later - i_in_chunk) * BC
        Q_J = _load_tile(q, j_first + t, kcols, T, D_K) * scale
        cum_J, after_J, total_J = _block_gates(log_alpha, j_first, t, kcols, T, D_K, BC)
        dA_t = _value_scores(v, do, rows, j_first + t, T, D_V, BC, BV, DOT_PRECISION)  # [j in I, i in J]
        dK += _dot(dA_t, Q_J * tl.exp(cum_J + gap[None, :]), DOT_PRECISION)
        gap += total_J
    dK = dK * tl.exp(after_I)

    # The diagonal block, exactly and strictly below the diagonal (j < i), one key column at a time.
    dA = _value_scores(do, v, rows, rows, T, D_V, BC, BV, DOT_PRECISION)  # [i, j], both in I
    R = tl.zeros([BC, BK], dtype=tl.float32)
    for back in range(0, BC):
        j = BC - 1 - back
        R = _next_segment_sums(R, log_alpha, first, j, t, kcols, T, D_K)
        decay = tl.exp(tl.where(t[:, None] > j, R, float("-inf")))  # [i, d] = e_ijd for i > j, else 0
        weights = tl.sum(tl.where(t[None, :] == j, dA, 0.0), axis=1)[:, None] * decay  # dA_ij e_ijd
        dQ += weights * _load_row(k, first + j, kcols, T, D_K)[None, :]
        dK += tl.where(t[:, None] == j, tl.sum(weights * Q, axis=0)[None, :], 0.0)

    _store_tile(dq_intra, rows, kcols, T, D_K, dQ * scale)
    _store_tile(dk_intra, rows, kcols, T, D_K, dK)


# --------------------------------------------------------------------------------------------
# Host side: checks, launches, autograd
# --------------------------------------------------------------------------------------------


def _check_log_alpha(log_alpha: torch.Tensor, q: torch.Tensor) -> None:
    _check_log_gate(log_alpha, q, "log_alpha", per_key=True)


def _sub_chunk_grid(run: Launch) -> tuple[int, int, int]:
    """(B*H, sub-chunks of the sequence, key blocks): the intra-chunk kernels run every sub-chunk at once."""
    return run.grid[0], triton.cdiv(run.T, SUB_CHUNK), run.grid[2]


def _forward(q, k, v, log_alpha, initial_state, scale, output_final_state, chunk_size):
    run = Launch(q, v, chunk_size)
    # Entries above the diagonal blocks (later sub-chunks of the chunk) are never written: zeros.
    A = q.new_zeros(run.tiles.NK, run.B, run.H, run.T, chunk_size, dtype=torch.float32)  # a share per key block
    if run.T > 0:
        _gla_intra_scores_kernel[_sub_chunk_grid(run)](
            q, k, log_alpha, A, scale, run.T,
            D_K=run.d_k, BT=chunk_size, BC=SUB_CHUNK, BK=run.tiles.BK, DOT_PRECISION=run.precision, **_LAUNCH,
        )
    o = run.shares(v)
    final_state = run.state(wanted=output_final_state)
    _gla_fwd_kernel[run.grid](q, k, v, log_alpha, A, o, initial_state, final_state, scale, run.T, **run.meta)
    return run.total(o, v), final_state, A


def _backward(q, k, v, log_alpha, initial_state, A, final_state, *, do, d_final_state, scale, chunk_size,
              want_d_initial_state):
    run = Launch(q, v, chunk_size)
    dq_partial = run.partials(run.tiles.NV, run.d_k)
    _gla_dq_inter_kernel[run.grid](k, v, log_alpha, do, dq_partial, initial_state, scale, run.T, **run.meta)

    dk_partial = run.partials(run.tiles.NV, run.d_k)
    dv = run.shares(v)
    d_initial_state = run.state(wanted=want_d_initial_state)
    _gla_dkdv_kernel[run.grid](
        q, k, v, log_alpha, A, do, dk_partial, dv, d_final_state, d_initial_state, scale, run.T, **run.meta
    )

    dq_intra = torch.zeros_like(dq_partial[0])
    dk_intra = torch.zeros_like(dk_partial[0])
    if run.T > 0:
        _gla_intra_grad_kernel[_sub_chunk_grid(run)](
            q, k, v, log_alpha, do, dq_intra, dk_intra, scale, run.T, BC=SUB_CHUNK, **run.meta
        )
    # Without token t's own key (decay 1): the value blocks' shares added, in fp32.
    dq = dq_partial.sum(0) + dq_intra
    dk = dk_partial.sum(0) + dk_intra

    # d log_alpha_{t,d} = sum_{s >= t} (q_sd dq_sd - k_sd dk_sd) + sum_e dS_T[d, e] S_T[d, e] (module
    # docstring), from dq and dk without the diagonal term (it cancels); reverse cumsum in float64.
    qf, kf = q.float(), k.float()
    per_step = qf * dq - kf * dk  # (B, H, T, D_k)
    d_log_alpha = per_step.double().flip(2).cumsum(2).flip(2)
    if d_final_state is not None:
        d_log_alpha += (d_final_state.double() * final_state.double()).sum(-1)[:, :, None, :]

    # Now the diagonal term: o_t's dependence on its own key, scale (q_t . k_t) v_t.
    own = scale * (v.float() * do.float()).sum(-1, keepdim=True)  # (B, H, T, 1): scale v_t . dO_t
    dq += own * kf
    dk += own * qf
    return dq.to(q.dtype), dk.to(k.dtype), run.total(dv, v), d_log_alpha.float(), d_initial_state


class ChunkGLA(ChunkFunction):
    """Autograd wrapper: saves q, k, v, the log gates, the intra-chunk scores A (and S_0, S_T);
    recomputes the states in backward."""

    @staticmethod
    def kernel_forward(q, k, v, log_alpha, initial_state, *, scale, output_final_state, chunk_size, needs_grad):
        o, final_state, A = _forward(q, k, v, log_alpha, initial_state, scale, output_final_state, chunk_size)
        return o, final_state, (A, final_state)

    kernel_backward = staticmethod(_backward)


def chunk_gla(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    log_alpha: torch.Tensor,
    *,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    chunk_size: int = 64,
):
    """Gated linear attention (GLA, a decay per key dim), chunkwise in Triton.

        S_t = diag(exp(log_alpha_t)) S_{t-1} + k_t v_t^T,   o_t = scale * S_t^T q_t

    q, k: (B, H, T, D_k) with D_k <= 512; v: (B, H, T, D_v); fp32, fp16 or bf16, one dtype.
    log_alpha: (B, H, T, D_k), finite and <= 0; fp32, fp16 or bf16 (need not match q; it is used
        in fp32, and fp32 is advisable: a bf16 log gate near 0 is coarse).
    scale: multiplies q (default 1.0: apply feature maps and scaling before calling).
    initial_state: (B, H, D_k, D_v), the state S_0 from an earlier prefix (kept in fp32).
    output_final_state: also return S_T, (B, H, D_k, D_v) fp32.
    chunk_size: tokens per chunk, a power of two >= 16 (split into sub-chunks of 16 inside).

    Returns o (B, H, T, D_v) in the input dtype, or (o, final_state). Differentiable in q, k, v,
    log_alpha and initial_state, including through final_state. With every log_alpha_td equal to
    log_decay_t this is ``lablib.kernels.gated_linear_attention.chunk_scalar_gated_attention``;
    the PyTorch references are ``lablib.attention.gla_recurrent`` and ``gla_chunkwise``.
    """
    _check_qkv(q, k, v)
    _check_log_alpha(log_alpha, q)
    return _apply(ChunkGLA, q, k, v, log_alpha, initial_state=initial_state, scale=scale,
                  output_final_state=output_final_state, chunk_size=chunk_size)
