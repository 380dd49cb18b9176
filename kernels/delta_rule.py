"""The chunkwise delta rule (DeltaNet) and its gated variant (Gated DeltaNet) in Triton: forward and backward.

What is computed (``lablib.attention.delta`` explains the delta rule; its ``delta_rule_recurrent``
is the truth and ``delta_rule_chunkwise`` the PyTorch form of the algorithm ported here):

    S_t = a_t (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T,    a_t = exp(log_decay_t) (1 if None)
    o_t = scale * S_t^T q_t

Read ``lablib.kernels.linear_attention`` (tiling, ragged sizes, precision, launch settings) and
``lablib.kernels.gated_linear_attention`` (gates in log space) first; this kernel reuses their
helpers and only adds what the delta rule needs: a triangular solve per chunk.

The chunk algorithm (Yang et al., 2024, "Parallelizing Linear Transformers with the Delta Rule
over Sequence Length"). For one chunk of C tokens with queries Q' = scale * Q, keys K, values V,
step sizes beta, entering state S_0, cumulative log decays b_i (from the chunk's start, through
token i), g_i = exp(b_i), and D the (C x C) causal decay matrix of the gated kernel:

    L  = strict_lower(diag(beta) (K K^T * D))           C x C, how token j's write disturbs token i's read
    M  = (I + L)^{-1},   T = M diag(beta)               the UT transform: one triangular solve
    W  = T (g * K),      U = T V                        W never involves V
    R  = U - W S_0                                      the "pseudo-values" r_i = beta_i (v_i - a_i S_{i-1}^T k_i)
    O  = (Q' * g) S_0 + (Q' K^T * D) R                  then exactly gated linear attention with values R
    S <- g_C S_0 + (K * e)^T R                          e_j = exp(b_C - b_j): decay from j to the chunk's end

The triangular solve. (I + L) is unit lower triangular, so M = (I + L)^{-1} follows by forward
substitution, one row at a time: M_i = e_i - sum_{j < i} L_ij M_j (row i of M only needs the rows
above it). The kernel runs that as a loop over the C rows; each step picks row i of L with a
masked sum (registers cannot be indexed by a loop variable) and writes row i of M with
``tl.where``. That is C dependent steps of O(C^2) elementwise work per chunk, O(C^3) in all (as
much as the chunk's O(C^2 D) matrix products at D = C, but serial and off the tensor cores): fine
for a teaching kernel with C <= 64; production kernels (FLA) invert 16 x 16 diagonal blocks this
way and combine them with matrix products. M, not T, is formed so that the backward can
differentiate through diag(beta) even where beta_j = 0.

Tiling. As in the other kernels: one program per (batch * head, block of BV value columns). The
delta rule mixes value columns only through S_0's rows, never across columns: column j of R is
U[:, j] - W S_0[:, j], and W, M, L depend on keys, betas and gates alone. So value blocks still
never interact; each program recomputes L, M and W for its chunk (redundant work when D_v > BV,
no communication).

Key blocks: why this kernel loops over them. Unlike the other three kernels, the delta rule mixes
the state's *rows*: every pseudo-value r_i = beta_i (v_i - a_i S^T k_i) reads all of D_k, and
every row of the new state is written from R. So key blocks cannot be programs of their own
(they would have to exchange R every chunk); one program owns all of S[:, block] and walks the
key dim in blocks of BK <= 128 columns: K K^T, Q' K^T and W S_0 are sums over key blocks, and the
state update is done block by block. All of S[:, block] is D_k x BV fp32, 128 KB at D_k = 512,
more than a program's registers, so the state lives in global memory (L2-resident), in the
buffer of chunk states the backward needs anyway: the chunk reads slot c (the state entering it)
and writes slot c + 1, key block by key block, and a barrier (``tl.debug_barrier``) makes the
writes of all the program's threads visible before the next chunk reads them. (Without
gradients two slots, used in turn, suffice.) The backward carries dS the same way, in two slots.
FLA's kernels keep the state in registers instead, as up to four named 64-column tiles, which is
why they stop at D_k = 256.

Ragged sizes. Rows past T load k = v = q = 0, beta = 0 and log gate 0, so L, M's off-diagonal
entries and T's columns vanish for them: padding writes nothing into R or the state.

Backward: chunkwise, in reverse. The forward (when gradients are wanted) stores the state
entering every chunk, and S_T after them, (B*H, n_chunks + 1, D_k, D_v) fp32 (as FLA does; the
alternative, recomputing them, costs another forward pass). ``_delta_bwd_kernel`` walks the chunks last to first carrying
dS, the gradient of the state leaving the chunk (from dS_T, or zero), recomputes M, T, W, U, R
from the stored S_0, and applies the chain rule to the six lines above, with dO the output
gradient and dA = (dO R^T) * D (the gradient of the causal scores):

    dR   = (Q' K^T * D)^T dO + (K * e) dS
    dS_0 = (Q' * g)^T dO + g_C dS - W^T dR                 carried to the previous chunk
    dQ'  = dA K + (dO S_0^T) * g
    dK   = dA^T Q' + (R dS^T) * e + (T^T dW) * g + (dK_L + dK_L^T) K,   dW = -dR S_0^T
    dV   = T^T dR
    dT   = dR V^T + dW (g * K)^T,   dM = dT diag(beta),   dL = strict_lower(-M^T dM M^T)
    dK_L = dL * diag(beta) D                               (gradient of K K^T through L)
    dbeta_j = sum_i dT_ij M_ij + sum_k dL_jk (K K^T * D)_jk

Every one of these is a sum over value columns, so each value block writes its share of dq, dk,
dbeta and d log_decay and the host adds the blocks (dv and dS_0 are the block's own columns).

The log-decay gradient is taken directly, per chunk: log_decay_s enters D_ij for j < s <= i, g_i
for i >= s, e_j for j < s, and g_C. With P = dA * (Q' K^T) + dL * L (the gradient of each D_ij
times D_ij),

    d log_decay_s = sum_{i >= s} sum_{j < s} P_ij + sum_{i >= s} g_i (Q'_i . (dO S_0^T)_i + K_i . (T^T dW)_i)
                    + sum_{j < s} e_j K_j . (R dS^T)_j + g_C <S_0, dS>

The double sum is a row-wise exclusive cumulative sum of P followed by masked column sums, so
every term only adds contributions that actually involve gate s (the diagonal of D, which no
gate touches, never enters). Unlike the gated linear-attention kernel, which derives d log_decay
from dq and dk through an identity and must split off a cancelling diagonal term, nothing here is
a difference of large whole-sequence quantities, and under strong decay every term is as small as
the truth (measured: 6e-9 scaled error at gates of -20, D_k = 128, T = 200).

Precision. Tiles, the state, L, M and all gradients are fp32; fp32 inputs use IEEE fp32 dots,
fp16/bf16 inputs TF32 dots, as in the other kernels. Outputs take the input dtype, states are
fp32, and gradients take their input's dtype. Keys are L2-normalized in PyTorch before the kernel
(``normalize_keys``, in fp32), so autograd differentiates the normalization.

Checks. beta must lie in [0, 2] and log_decay be finite and <= 0; both checks read the tensor once
and synchronize with the device. q, k, v are not scanned for NaN (as in the other kernels).

Kernels are compiled for CUDA tensors. On the CPU they run only under the Triton interpreter
(``TRITON_INTERPRET=1`` set before this module is imported), which is how the tests run them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

from lablib.kernels._base import (
    INTERPRETED,
    ChunkFunction,
    Launch,
    _apply,
    _check_chunk_size,
    _check_per_step,
    _check_qkv,
    _check_values,
    _dot,
    _load_tile,
    _store_tile,
)
from lablib.kernels.gated_linear_attention import _check_log_decay, _chunk_decays, _load_gates

__all__ = ["chunk_delta_rule", "INTERPRETED", "BETA_MAX"]

# Above this key width, chunks of 64 overflow the backward kernel's shared memory on sm_90 (see chunk_delta_rule).
MAX_CHUNK_64_D_K = 64

BETA_MAX = 2.0  # as lablib.attention.delta: eigenvalues 1 - beta of I - beta k k^T stay in [-1, 1]
KEY_NORM_EPS = 1e-6  # as lablib.attention.delta


# --------------------------------------------------------------------------------------------
# Chunk helpers
# --------------------------------------------------------------------------------------------


@triton.jit
def _decays(log_decay, rows, T, t_in_chunk, BT: tl.constexpr):
    """_chunk_decays of this chunk's log gates, or of zero gates (no decay) when log_decay is None."""
    if log_decay is not None:
        g = _load_gates(log_decay, rows, T)
    else:
        g = tl.zeros([BT], dtype=tl.float32)
    return _chunk_decays(g, t_in_chunk)


@triton.jit
def _key_products(q, k, rows, T, scale, D_K: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr,
                  DOT_PRECISION: tl.constexpr):
    """(K K^T, Q' K^T) of one chunk (BT x BT each), summed over the key dim one block of BK at a time."""
    KK = tl.zeros([BT, BT], dtype=tl.float32)
    QK = tl.zeros([BT, BT], dtype=tl.float32)
    for k0 in range(0, D_K, BK):
        kcols = k0 + tl.arange(0, BK)
        K = _load_tile(k, rows, kcols, T, D_K)
        KK += _dot(K, tl.trans(K), DOT_PRECISION)
        QK += _dot(_load_tile(q, rows, kcols, T, D_K) * scale, tl.trans(K), DOT_PRECISION)
    return KK, QK


@triton.jit
def _inverse_unit_lower(L, t_in_chunk, BT: tl.constexpr):
    """(I + L)^{-1} for a strictly lower-triangular (BT x BT) L, by forward substitution.

    Row i of M = (I + L)^{-1} solves M_i + sum_{j < i} L_ij M_j = e_i. Rows not yet computed are
    0, so the sum may run over all j. A register tile cannot be indexed by the loop variable: row i
    of L is read by a masked sum, and row i of M written by a masked select.
    """
    M = tl.zeros([BT, BT], dtype=tl.float32)
    for i in range(BT):
        is_row = t_in_chunk[:, None] == i
        L_i = tl.sum(tl.where(is_row, L, 0.0), axis=0)  # (BT,): L[i, :]
        M_i = tl.where(t_in_chunk == i, 1.0, 0.0) - tl.sum(L_i[:, None] * M, axis=0)
        M = tl.where(is_row, M_i[None, :], M)
    return M


@triton.jit
def _ut_transform(KKD, beta_c, strict, t_in_chunk, BT: tl.constexpr):
    """From one chunk's decayed Gram matrix K K^T * D: (L, M, T) with L = strict_lower(diag(beta) (K K^T * D)),
    M = (I + L)^{-1} and T = M diag(beta)."""
    L = tl.where(strict, beta_c[:, None] * KKD, 0.0)
    M = _inverse_unit_lower(L, t_in_chunk, BT)
    return L, M, M * beta_c[None, :]


# --------------------------------------------------------------------------------------------
# Forward
# --------------------------------------------------------------------------------------------


@triton.jit
def _delta_fwd_kernel(
    q, k, v, beta, log_decay, o,  # (B*H, T, D_K) x2, (B*H, T, D_V), (B*H, T) fp32, (B*H, T) fp32 or None, o
    states,  # (B*H, N_SLOTS, D_K, D_V) fp32: slot c % N_SLOTS, the state entering chunk c (slot 0: S_0, from the host)
    scale, T, N_SLOTS,
    D_K: tl.constexpr, D_V: tl.constexpr,
    BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    bh = tl.program_id(0).to(tl.int64)
    vb = tl.program_id(1)
    q += bh * T * D_K
    k += bh * T * D_K
    v += bh * T * D_V
    o += bh * T * D_V
    beta += bh * T
    if log_decay is not None:
        log_decay += bh * T
    states += bh * N_SLOTS * D_K * D_V

    t_in_chunk = tl.arange(0, BT)
    vcols = vb * BV + tl.arange(0, BV)
    strict = t_in_chunk[:, None] > t_in_chunk[None, :]

    for c in range(0, tl.cdiv(T, BT)):
        S_in = states + (c % N_SLOTS) * D_K * D_V  # the state entering this chunk (this program's columns) ...
        S_out = states + ((c + 1) % N_SLOTS) * D_K * D_V  # ... and the one leaving it
        rows = c * BT + t_in_chunk
        V = _load_tile(v, rows, vcols, T, D_V)
        beta_c = tl.load(beta + rows, mask=rows < T, other=0.0)  # padding: beta = 0, writes nothing
        D, decay_in, decay_to_end, decay_chunk = _decays(log_decay, rows, T, t_in_chunk, BT)

        KK, QK = _key_products(q, k, rows, T, scale, D_K, BT, BK, DOT_PRECISION)
        _, _, Tm = _ut_transform(KK * D, beta_c, strict, t_in_chunk, BT)

        # Pseudo-values R = T V - W S_0 (W = T (g * K)) and the state's part of O, (Q' * g) S_0:
        # both sums over the key dim, one block of BK key columns at a time.
        R = _dot(Tm, V, DOT_PRECISION)  # (BT, BV)
        O = tl.zeros([BT, BV], dtype=tl.float32)
        for k0 in range(0, D_K, BK):
            kcols = k0 + tl.arange(0, BK)
            K = _load_tile(k, rows, kcols, T, D_K)
            Q = _load_tile(q, rows, kcols, T, D_K) * scale
            S = _load_tile(S_in, kcols, vcols, D_K, D_V)
            W = _dot(Tm, K * decay_in[:, None], DOT_PRECISION)  # (BT, BK)
            R -= _dot(W, S, DOT_PRECISION)
            O += _dot(Q * decay_in[:, None], S, DOT_PRECISION)

        O += _dot(QK * D, R, DOT_PRECISION)  # this chunk: gated linear attention with values R
        _store_tile(o, rows, vcols, T, D_V, O)

        # The state leaving the chunk, key block by key block, into the next slot.
        for k0 in range(0, D_K, BK):
            kcols = k0 + tl.arange(0, BK)
            K = _load_tile(k, rows, kcols, T, D_K)
            S = _load_tile(S_in, kcols, vcols, D_K, D_V)
            S = S * decay_chunk + _dot(tl.trans(K * decay_to_end[:, None]), R, DOT_PRECISION)
            _store_tile(S_out, kcols, vcols, D_K, D_V, S)
        tl.debug_barrier()  # the next chunk reads S_out, written by all of this program's threads


# --------------------------------------------------------------------------------------------
# Backward
# --------------------------------------------------------------------------------------------


@triton.jit
def _delta_bwd_kernel(
    q, k, v, beta, log_decay, do,  # as the forward's inputs; do (B*H, T, D_V)
    states,  # (B*H, n_chunks + 1, D_K, D_V) fp32, from the forward: slot c, the state entering chunk c
    d_states,  # (B*H, 2, D_K, D_V) fp32: slot i % 2, dS leaving the i-th chunk walked (slot 0: dS_T, from the host)
    dq_partial, dk_partial, dv,  # (NV, B*H, T, D_K) fp32 x2, (B*H, T, D_V)
    dbeta_partial, dlog_partial,  # (NV, B*H, T) fp32; dlog_partial None without gates
    scale, T,
    D_K: tl.constexpr, D_V: tl.constexpr,
    BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    """The chain rule through one chunk (module docstring), chunks in reverse, carrying dS."""
    bh = tl.program_id(0).to(tl.int64)
    vb = tl.program_id(1)
    q += bh * T * D_K
    k += bh * T * D_K
    v += bh * T * D_V
    do += bh * T * D_V
    dv += bh * T * D_V
    beta += bh * T
    n_chunks = tl.cdiv(T, BT)
    states += bh * (n_chunks + 1) * D_K * D_V
    d_states += bh * 2 * D_K * D_V
    block = vb * tl.num_programs(0) + bh  # this value block's share of the summed gradients
    dq_partial += block * T * D_K
    dk_partial += block * T * D_K
    dbeta_partial += block * T
    if log_decay is not None:
        log_decay += bh * T
        dlog_partial += block * T

    t_in_chunk = tl.arange(0, BT)
    vcols = vb * BV + tl.arange(0, BV)
    strict = t_in_chunk[:, None] > t_in_chunk[None, :]  # [i, j]: i > j
    causal = t_in_chunk[:, None] >= t_in_chunk[None, :]

    for i in range(0, n_chunks):
        c = n_chunks - 1 - i  # last chunk first
        S0 = states + c * D_K * D_V  # the state entering chunk c
        dS_in = d_states + (i % 2) * D_K * D_V  # the gradient w.r.t. the state leaving chunk c ...
        dS_out = d_states + ((i + 1) % 2) * D_K * D_V  # ... and w.r.t. the one entering it
        rows = c * BT + t_in_chunk
        in_seq = rows < T
        V = _load_tile(v, rows, vcols, T, D_V)
        dO = _load_tile(do, rows, vcols, T, D_V)
        beta_c = tl.load(beta + rows, mask=in_seq, other=0.0)
        D, decay_in, decay_to_end, decay_chunk = _decays(log_decay, rows, T, t_in_chunk, BT)

        # Recompute the forward's chunk quantities from the stored entering state.
        KK, QK = _key_products(q, k, rows, T, scale, D_K, BT, BK, DOT_PRECISION)
        KKD = KK * D
        L, M, Tm = _ut_transform(KKD, beta_c, strict, t_in_chunk, BT)
        # R = T V - W S0, and dR = (Q'K^T * D)^T dO + (K e) dS (O and S1 = g_C S0 + (K e)^T R read R),
        # both sums over the key dim.
        R = _dot(Tm, V, DOT_PRECISION)
        dR = _dot(tl.trans(QK * D), dO, DOT_PRECISION)
        for k0 in range(0, D_K, BK):
            kcols = k0 + tl.arange(0, BK)
            K = _load_tile(k, rows, kcols, T, D_K)
            R -= _dot(_dot(Tm, K * decay_in[:, None], DOT_PRECISION), _load_tile(S0, kcols, vcols, D_K, D_V),
                      DOT_PRECISION)
            dR += _dot(K * decay_to_end[:, None], _load_tile(dS_in, kcols, vcols, D_K, D_V), DOT_PRECISION)
        dA = _dot(dO, tl.trans(R), DOT_PRECISION) * D  # gradient of the scores Q'K^T (causal, decayed)

        # R = U - W S0, U = T V, W = T (g K): dV = T^T dR, and dT = dR V^T + dW (g K)^T, dW = -dR S0^T.
        dV = _dot(tl.trans(Tm), dR, DOT_PRECISION)
        dT = _dot(dR, tl.trans(V), DOT_PRECISION)
        for k0 in range(0, D_K, BK):
            kcols = k0 + tl.arange(0, BK)
            dW = -_dot(dR, tl.trans(_load_tile(S0, kcols, vcols, D_K, D_V)), DOT_PRECISION)
            dT += _dot(dW, tl.trans(_load_tile(k, rows, kcols, T, D_K) * decay_in[:, None]), DOT_PRECISION)

        # T = M diag(beta), M = (I + L)^{-1}, L = strict_lower(diag(beta) (K K^T * D)).
        dbeta = tl.sum(dT * M, axis=0)  # [j] = sum_i dT_ij M_ij
        Mt = tl.trans(M)
        dL = -_dot(_dot(Mt, dT * beta_c[None, :], DOT_PRECISION), Mt, DOT_PRECISION)
        dL = tl.where(strict, dL, 0.0)
        dbeta += tl.sum(dL * KKD, axis=1)
        dKK = dL * beta_c[:, None] * D  # gradient of K K^T, strictly lower

        # Key block by key block: dq, dk, the gradient w.r.t. the entering state, and the sums over
        # the key dim that d log_decay needs.
        q_dOS0 = tl.zeros([BT], dtype=tl.float32)  # Q'_i . (dO S0^T)_i
        k_dKg = tl.zeros([BT], dtype=tl.float32)  # K_i . (T^T dW)_i
        k_dKe = tl.zeros([BT], dtype=tl.float32)  # K_j . (R dS^T)_j
        S0_dS = tl.zeros([BK], dtype=tl.float32)  # <S0, dS>, as row sums over the key blocks (added up at the end)
        for k0 in range(0, D_K, BK):
            kcols = k0 + tl.arange(0, BK)
            Q = _load_tile(q, rows, kcols, T, D_K) * scale
            K = _load_tile(k, rows, kcols, T, D_K)
            S = _load_tile(S0, kcols, vcols, D_K, D_V)
            dS = _load_tile(dS_in, kcols, vcols, D_K, D_V)
            dO_S0 = _dot(dO, tl.trans(S), DOT_PRECISION)  # (BT, BK): gradient of Q' g
            dKe = _dot(R, tl.trans(dS), DOT_PRECISION)  # (BT, BK): gradient of K e
            dKg = -_dot(tl.trans(Tm), _dot(dR, tl.trans(S), DOT_PRECISION), DOT_PRECISION)  # T^T dW: gradient of g K
            dQ = _dot(dA, K, DOT_PRECISION) + dO_S0 * decay_in[:, None]
            dK = _dot(tl.trans(dA), Q, DOT_PRECISION) + dKe * decay_to_end[:, None] + dKg * decay_in[:, None]
            dK += _dot(dKK + tl.trans(dKK), K, DOT_PRECISION)
            _store_tile(dq_partial, rows, kcols, T, D_K, dQ * scale)
            _store_tile(dk_partial, rows, kcols, T, D_K, dK)
            q_dOS0 += tl.sum(Q * dO_S0, axis=1)
            k_dKg += tl.sum(K * dKg, axis=1)
            k_dKe += tl.sum(K * dKe, axis=1)
            S0_dS += tl.sum(S * dS, axis=1)
            # dS_0 = (Q' g)^T dO + g_C dS - W^T dR, carried to the previous chunk.
            W = _dot(Tm, K * decay_in[:, None], DOT_PRECISION)
            dS = _dot(tl.trans(Q * decay_in[:, None]), dO, DOT_PRECISION) + dS * decay_chunk
            dS -= _dot(tl.trans(W), dR, DOT_PRECISION)
            _store_tile(dS_out, kcols, vcols, D_K, D_V, dS)

        _store_tile(dv, rows, vcols, T, D_V, dV)
        tl.store(dbeta_partial + rows, dbeta, mask=in_seq)

        if log_decay is not None:
            # D_ij (j < s <= i): P_ij = (dL/dD_ij) D_ij; row-wise exclusive cumsum, then sum over i >= s.
            P = dA * QK + dL * L
            before = tl.cumsum(P, axis=1) - P  # [i, s] = sum_{j < s} P_ij
            dlog = tl.sum(tl.where(causal, before, 0.0), axis=0)
            # g_i (i >= s): the reads of S0 and the writes W both carry exp(b_i).
            via_g = decay_in * (q_dOS0 + k_dKg)
            dlog += tl.sum(tl.where(causal, via_g[:, None], 0.0), axis=0)
            # e_j (j < s): token j's write decays through s to the chunk's end.
            via_e = decay_to_end * k_dKe
            dlog += tl.sum(tl.where(strict, via_e[None, :], 0.0), axis=1)
            # g_C (every s): S0 decays through the whole chunk.
            dlog += decay_chunk * tl.sum(S0_dS, axis=0)
            tl.store(dlog_partial + rows, dlog, mask=in_seq)
        tl.debug_barrier()  # the next (earlier) chunk reads dS_out, written by all of this program's threads


# --------------------------------------------------------------------------------------------
# Host side: launches and autograd (checks and launch set-up: lablib.kernels._base)
# --------------------------------------------------------------------------------------------


def _check_beta(beta: torch.Tensor, q: torch.Tensor) -> None:
    _check_per_step(beta, q, "beta")
    # NaN fails both comparisons.
    _check_values(beta, "beta", (beta >= 0) & (beta <= BETA_MAX), f"lie in [0, {BETA_MAX:g}] (NaN is not allowed)")


def _state_slots(q: torch.Tensor, run: Launch, n_slots: int, first: torch.Tensor | None) -> torch.Tensor:
    """An fp32 (B, H, n_slots, D_k, D_v) buffer of states for a kernel to walk through: slot 0 is
    ``first`` (zeros for None), the kernel writes the others."""
    slots = q.new_empty(run.B, run.H, n_slots, run.d_k, run.d_v, dtype=torch.float32)
    slots[:, :, 0] = 0.0 if first is None else first
    return slots


def _forward(q, k, v, beta, log_decay, initial_state, scale, output_final_state, chunk_size, save_states):
    run = Launch(q, v, chunk_size, split_keys=False)  # one program walks every key block
    n_chunks = triton.cdiv(run.T, chunk_size)
    # The state entering each chunk and S_T, kept for the backward; without it two slots, in turn.
    n_slots = n_chunks + 1 if save_states else 2
    states = _state_slots(q, run, n_slots, initial_state)
    o = torch.empty_like(v)
    _delta_fwd_kernel[run.grid](q, k, v, beta, log_decay, o, states, scale, run.T, n_slots, **run.meta)
    final_state = states[:, :, n_chunks % n_slots].clone() if output_final_state else None
    return o, final_state, (states if save_states else None)


def _backward(q, k, v, beta, log_decay, initial_state, states, *, do, d_final_state, scale, chunk_size,
              want_d_initial_state):
    run = Launch(q, v, chunk_size, split_keys=False)
    NV = run.tiles.NV
    dq_partial = run.partials(NV, run.d_k)
    dk_partial = run.partials(NV, run.d_k)
    dv = torch.empty_like(v)
    dbeta_partial = run.partials(NV)
    dlog_partial = run.partials(NV) if log_decay is not None else None
    # dS, carried from chunk to chunk in two slots used in turn; it starts as dS_T.
    d_states = _state_slots(q, run, 2, d_final_state)
    _delta_bwd_kernel[run.grid](
        q, k, v, beta, log_decay, do, states, d_states, dq_partial, dk_partial, dv, dbeta_partial, dlog_partial,
        scale, run.T, **run.meta,
    )
    n_chunks = triton.cdiv(run.T, chunk_size)
    d_initial_state = d_states[:, :, n_chunks % 2].clone() if want_d_initial_state else None
    # Add the value blocks' shares (fp32), then round once to the input dtype.
    d_log_decay = dlog_partial.sum(0) if dlog_partial is not None else None
    return (run.total(dq_partial, q), run.total(dk_partial, k), dv, dbeta_partial.sum(0), d_log_decay,
            d_initial_state)


class ChunkDeltaRule(ChunkFunction):
    """Autograd wrapper: saves q, k, v, beta, the log gates and the state entering each chunk."""

    @staticmethod
    def kernel_forward(q, k, v, beta, log_decay, initial_state, *, scale, output_final_state, chunk_size,
                       needs_grad):
        o, final_state, states = _forward(q, k, v, beta, log_decay, initial_state, scale, output_final_state,
                                          chunk_size, save_states=needs_grad)
        return o, final_state, (states,)

    kernel_backward = staticmethod(_backward)


def chunk_delta_rule(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    beta: torch.Tensor,
    *,
    log_decay: torch.Tensor | None = None,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    chunk_size: int | None = None,
    normalize_keys: bool = True,
):
    """DeltaNet (or, with ``log_decay``, Gated DeltaNet), chunkwise in Triton.

        S_t = a_t (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T,   a_t = exp(log_decay_t)
        o_t = scale * S_t^T q_t

    q, k: (B, H, T, D_k) with D_k <= 512; v: (B, H, T, D_v); fp32, fp16 or bf16, one dtype.
    beta: (B, H, T) in [0, 2] (values above 1 give the transition a negative eigenvalue);
        fp32, fp16 or bf16, used in fp32.
    log_decay: (B, H, T), finite and <= 0, or None (no decay: plain DeltaNet); used in fp32.
    scale: multiplies q (default 1.0).
    initial_state: (B, H, D_k, D_v), the state S_0 from an earlier prefix (kept in fp32).
    output_final_state: also return S_T, (B, H, D_k, D_v) fp32.
    chunk_size: tokens per chunk, a power of two >= 16 (the triangular solve is a loop over its
        rows, so 16 to 64 are sensible). Default (None): 64 for D_k <= 64, 32 above. Compiled for
        an H100 (sm_90), the backward kernel at D_k = 128 with chunks of 64 needs 272 KB of shared
        memory per block, over the 227 KB limit (bf16; found by tests/test_kernels_compile.py,
        which reports the figures: 84 KB at D_k = 512 with chunks of 32), so on CUDA D_k > 64 with
        chunk_size > 32 raises ValueError.
    normalize_keys: L2-normalize k over D_k first (in PyTorch, so autograd sees it), as
        ``lablib.attention.delta`` does; without it, keep beta ||k||^2 <= 2 or the state can grow.

    Returns o (B, H, T, D_v) in the input dtype, or (o, final_state). Differentiable in q, k, v,
    beta, log_decay and initial_state, including through final_state. The PyTorch references are
    ``lablib.attention.delta.delta_rule_recurrent`` and ``delta_rule_chunkwise``.
    """
    _check_qkv(q, k, v)
    _check_beta(beta, q)
    if log_decay is not None:
        _check_log_decay(log_decay, q)
    wide_keys = q.shape[-1] > MAX_CHUNK_64_D_K
    if chunk_size is None:
        chunk_size = 32 if wide_keys else 64
    _check_chunk_size(chunk_size)
    if wide_keys and chunk_size > 32 and q.is_cuda:
        raise ValueError(
            f"chunk_size {chunk_size} with D_k = {q.shape[-1]} > {MAX_CHUNK_64_D_K}: the backward kernel would need more "
            "shared memory than a GPU block has (272 KB at D_k = 128, chunk 64; 227 KB on sm_90); use chunk_size <= 32 "
            "or the default"
        )
    if normalize_keys:
        k = F.normalize(k.float(), dim=-1, eps=KEY_NORM_EPS).to(k.dtype)
    return _apply(ChunkDeltaRule, q, k, v, beta, log_decay, initial_state=initial_state, scale=scale,
                  output_final_state=output_final_state, chunk_size=chunk_size)
