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

Tiling. As in the other kernels: one program per (batch * head, block of BV value columns); the
state tile S[:, block] (BK x BV, all of D_k in one tile) lives in registers. The delta rule mixes
value columns only through S_0's rows, never across columns: column j of R is U[:, j] - W S_0[:, j],
and W, M, L depend on keys, betas and gates alone. So value blocks still never interact; each
program recomputes L, M and W for its chunk (redundant work when D_v > BV, no communication).

Ragged sizes. Rows past T load k = v = q = 0, beta = 0 and log gate 0, so L, M's off-diagonal
entries and T's columns vanish for them: padding writes nothing into R or the state.

Backward: chunkwise, in reverse. The forward (when gradients are wanted) stores the state
entering every chunk, (B*H, n_chunks, D_k, D_v) fp32 (as FLA does; the alternative, recomputing
them, costs another forward pass). ``_delta_bwd_kernel`` walks the chunks last to first carrying
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

from lablib.kernels.gated_linear_attention import _check_log_decay, _chunk_decays, _load_gates
from lablib.kernels.linear_attention import (
    _check_chunk_size,
    _initial_state_fp32,
    _DTYPES,
    _LAUNCH,
    INTERPRETED,
    _check_qkv,
    _dot,
    _dot_precision,
    _load_tile,
    _store_tile,
    _tiles,
)

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
def _ut_transform(K, beta_c, D, strict, t_in_chunk, BT: tl.constexpr, DOT_PRECISION: tl.constexpr):
    """For one chunk: (K K^T * D, L, M, T) with L = strict_lower(diag(beta) (K K^T * D)),
    M = (I + L)^{-1} and T = M diag(beta)."""
    KKD = _dot(K, tl.trans(K), DOT_PRECISION) * D  # 0 above the diagonal (D is)
    L = tl.where(strict, beta_c[:, None] * KKD, 0.0)
    M = _inverse_unit_lower(L, t_in_chunk, BT)
    return KKD, L, M, M * beta_c[None, :]


# --------------------------------------------------------------------------------------------
# Forward
# --------------------------------------------------------------------------------------------


@triton.jit
def _delta_fwd_kernel(
    q, k, v, beta, log_decay, o,  # (B*H, T, D_K) x2, (B*H, T, D_V), (B*H, T) fp32, (B*H, T) fp32 or None, o
    initial_state, final_state,  # (B*H, D_K, D_V) fp32, or None
    chunk_states,  # (B*H, n_chunks, D_K, D_V) fp32: the state entering each chunk, or None
    scale, T,
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
    n_chunks = tl.cdiv(T, BT)
    if chunk_states is not None:
        chunk_states += bh * n_chunks * D_K * D_V

    t_in_chunk = tl.arange(0, BT)
    kcols = tl.arange(0, BK)
    vcols = vb * BV + tl.arange(0, BV)
    strict = t_in_chunk[:, None] > t_in_chunk[None, :]

    if initial_state is not None:
        S = _load_tile(initial_state + bh * D_K * D_V, kcols, vcols, D_K, D_V)
    else:
        S = tl.zeros([BK, BV], dtype=tl.float32)

    for c in range(0, n_chunks):
        if chunk_states is not None:  # for the backward: the state entering chunk c
            _store_tile(chunk_states + c * D_K * D_V, kcols, vcols, D_K, D_V, S)
        rows = c * BT + t_in_chunk
        Q = _load_tile(q, rows, kcols, T, D_K) * scale
        K = _load_tile(k, rows, kcols, T, D_K)
        V = _load_tile(v, rows, vcols, T, D_V)
        beta_c = tl.load(beta + rows, mask=rows < T, other=0.0)  # padding: beta = 0, writes nothing
        D, decay_in, decay_to_end, decay_chunk = _decays(log_decay, rows, T, t_in_chunk, BT)

        _, _, _, Tm = _ut_transform(K, beta_c, D, strict, t_in_chunk, BT, DOT_PRECISION)
        W = _dot(Tm, K * decay_in[:, None], DOT_PRECISION)  # (BT, BK)
        U = _dot(Tm, V, DOT_PRECISION)  # (BT, BV)
        R = U - _dot(W, S, DOT_PRECISION)  # pseudo-values, this block's columns

        scores = _dot(Q, tl.trans(K), DOT_PRECISION) * D
        O = _dot(Q * decay_in[:, None], S, DOT_PRECISION) + _dot(scores, R, DOT_PRECISION)
        _store_tile(o, rows, vcols, T, D_V, O)

        S = S * decay_chunk + _dot(tl.trans(K * decay_to_end[:, None]), R, DOT_PRECISION)

    if final_state is not None:
        _store_tile(final_state + bh * D_K * D_V, kcols, vcols, D_K, D_V, S)


# --------------------------------------------------------------------------------------------
# Backward
# --------------------------------------------------------------------------------------------


@triton.jit
def _delta_bwd_kernel(
    q, k, v, beta, log_decay, do,  # as the forward's inputs; do (B*H, T, D_V)
    chunk_states,  # (B*H, n_chunks, D_K, D_V) fp32, from the forward
    dq_partial, dk_partial, dv,  # (NV, B*H, T, D_K) fp32 x2, (B*H, T, D_V)
    dbeta_partial, dlog_partial,  # (NV, B*H, T) fp32; dlog_partial None without gates
    d_final_state, d_initial_state,  # (B*H, D_K, D_V) fp32, or None
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
    chunk_states += bh * n_chunks * D_K * D_V
    block = vb * tl.num_programs(0) + bh  # this value block's share of the summed gradients
    dq_partial += block * T * D_K
    dk_partial += block * T * D_K
    dbeta_partial += block * T
    if log_decay is not None:
        log_decay += bh * T
        dlog_partial += block * T

    t_in_chunk = tl.arange(0, BT)
    kcols = tl.arange(0, BK)
    vcols = vb * BV + tl.arange(0, BV)
    strict = t_in_chunk[:, None] > t_in_chunk[None, :]  # [i, j]: i > j
    causal = t_in_chunk[:, None] >= t_in_chunk[None, :]

    if d_final_state is not None:
        dS = _load_tile(d_final_state + bh * D_K * D_V, kcols, vcols, D_K, D_V)
    else:
        dS = tl.zeros([BK, BV], dtype=tl.float32)

    for i in range(0, n_chunks):
        c = n_chunks - 1 - i  # last chunk first
        rows = c * BT + t_in_chunk
        in_seq = rows < T
        S0 = _load_tile(chunk_states + c * D_K * D_V, kcols, vcols, D_K, D_V)
        Q = _load_tile(q, rows, kcols, T, D_K) * scale
        K = _load_tile(k, rows, kcols, T, D_K)
        V = _load_tile(v, rows, vcols, T, D_V)
        dO = _load_tile(do, rows, vcols, T, D_V)
        beta_c = tl.load(beta + rows, mask=in_seq, other=0.0)
        D, decay_in, decay_to_end, decay_chunk = _decays(log_decay, rows, T, t_in_chunk, BT)

        # Recompute the forward's chunk quantities from the stored entering state.
        KKD, L, M, Tm = _ut_transform(K, beta_c, D, strict, t_in_chunk, BT, DOT_PRECISION)
        Kg = K * decay_in[:, None]
        Ke = K * decay_to_end[:, None]
        W = _dot(Tm, Kg, DOT_PRECISION)
        R = _dot(Tm, V, DOT_PRECISION) - _dot(W, S0, DOT_PRECISION)
        QK = _dot(Q, tl.trans(K), DOT_PRECISION)

        # O = (Q' g) S0 + (Q'K^T * D) R  and  S1 = g_C S0 + (K e)^T R.
        dR = _dot(tl.trans(QK * D), dO, DOT_PRECISION) + _dot(Ke, dS, DOT_PRECISION)
        dA = _dot(dO, tl.trans(R), DOT_PRECISION) * D  # gradient of the scores Q'K^T (causal, decayed)
        dO_S0 = _dot(dO, tl.trans(S0), DOT_PRECISION)  # (BT, BK): gradient of Q' g
        dKe = _dot(R, tl.trans(dS), DOT_PRECISION)  # (BT, BK): gradient of K e
        dQ = _dot(dA, K, DOT_PRECISION) + dO_S0 * decay_in[:, None]
        dK = _dot(tl.trans(dA), Q, DOT_PRECISION) + dKe * decay_to_end[:, None]

        # R = U - W S0, U = T V, W = T (g K).
        dW = -_dot(dR, tl.trans(S0), DOT_PRECISION)
        dT = _dot(dR, tl.trans(V), DOT_PRECISION) + _dot(dW, tl.trans(Kg), DOT_PRECISION)
        dV = _dot(tl.trans(Tm), dR, DOT_PRECISION)
        dKg = _dot(tl.trans(Tm), dW, DOT_PRECISION)
        dK += dKg * decay_in[:, None]

        # T = M diag(beta), M = (I + L)^{-1}, L = strict_lower(diag(beta) (K K^T * D)).
        dbeta = tl.sum(dT * M, axis=0)  # [j] = sum_i dT_ij M_ij
        Mt = tl.trans(M)
        dL = -_dot(_dot(Mt, dT * beta_c[None, :], DOT_PRECISION), Mt, DOT_PRECISION)
        dL = tl.where(strict, dL, 0.0)
        dbeta += tl.sum(dL * KKD, axis=1)
        dKK = dL * beta_c[:, None] * D  # gradient of K K^T, strictly lower
        dK += _dot(dKK + tl.trans(dKK), K, DOT_PRECISION)

        _store_tile(dq_partial, rows, kcols, T, D_K, dQ * scale)
        _store_tile(dk_partial, rows, kcols, T, D_K, dK)
        _store_tile(dv, rows, vcols, T, D_V, dV)
        tl.store(dbeta_partial + rows, dbeta, mask=in_seq)

        if log_decay is not None:
            # D_ij (j < s <= i): P_ij = (dL/dD_ij) D_ij; row-wise exclusive cumsum, then sum over i >= s.
            P = dA * QK + dL * L
            before = tl.cumsum(P, axis=1) - P  # [i, s] = sum_{j < s} P_ij
            dlog = tl.sum(tl.where(causal, before, 0.0), axis=0)
            # g_i (i >= s): the reads of S0 and the writes W both carry exp(b_i).
            via_g = decay_in * (tl.sum(Q * dO_S0, axis=1) + tl.sum(K * dKg, axis=1))
            dlog += tl.sum(tl.where(causal, via_g[:, None], 0.0), axis=0)
            # e_j (j < s): token j's write decays through s to the chunk's end.
            via_e = decay_to_end * tl.sum(K * dKe, axis=1)
            dlog += tl.sum(tl.where(strict, via_e[None, :], 0.0), axis=1)
            # g_C (every s): S0 decays through the whole chunk.
            dlog += decay_chunk * tl.sum(tl.sum(S0 * dS, axis=1), axis=0)
            tl.store(dlog_partial + rows, dlog, mask=in_seq)

        dS = _dot(tl.trans(Q * decay_in[:, None]), dO, DOT_PRECISION) + dS * decay_chunk
        dS -= _dot(tl.trans(W), dR, DOT_PRECISION)

    if d_initial_state is not None:
        _store_tile(d_initial_state + bh * D_K * D_V, kcols, vcols, D_K, D_V, dS)


# --------------------------------------------------------------------------------------------
# Host side: checks, launches, autograd
# --------------------------------------------------------------------------------------------


def _check_beta(beta: torch.Tensor, q: torch.Tensor) -> None:
    B, H, T, _ = q.shape
    if not isinstance(beta, torch.Tensor):
        raise TypeError(f"beta must be a tensor of shape (B, H, T) = {(B, H, T)}; got {type(beta).__name__}")
    if tuple(beta.shape) != (B, H, T):
        raise ValueError(
            f"beta must have shape (B, H, T) = {(B, H, T)} to match q {tuple(q.shape)}; got shape {tuple(beta.shape)}"
        )
    if beta.dtype not in _DTYPES:
        raise ValueError(f"beta must be fp32, fp16 or bf16; got {beta.dtype}")
    if beta.device != q.device:
        raise ValueError(f"beta must be on q's device {q.device}; got {beta.device}")
    # One reduction and one sync; NaN fails both comparisons.
    if beta.numel() and not ((beta >= 0) & (beta <= BETA_MAX)).all():
        raise ValueError(
            f"beta must lie in [0, {BETA_MAX:g}] (NaN is not allowed); got min {beta.min().item():.4g}, "
            f"max {beta.max().item():.4g} in beta of shape {tuple(beta.shape)}"
        )


def _forward(q, k, v, beta, log_decay, initial_state, scale, output_final_state, chunk_size, save_states):
    B, H, T, d_k = q.shape
    d_v = v.shape[-1]
    BK, BV, NV = _tiles(d_k, d_v)
    o = torch.empty_like(v)
    final_state = q.new_empty(B, H, d_k, d_v, dtype=torch.float32) if output_final_state else None
    n_chunks = triton.cdiv(T, chunk_size)
    chunk_states = q.new_empty(B, H, n_chunks, d_k, d_v, dtype=torch.float32) if save_states else None
    _delta_fwd_kernel[(B * H, NV)](
        q, k, v, beta, log_decay, o, initial_state, final_state, chunk_states, scale, T,
        D_K=d_k, D_V=d_v, BT=chunk_size, BK=BK, BV=BV, DOT_PRECISION=_dot_precision(q.dtype), **_LAUNCH,
    )
    return o, final_state, chunk_states


def _backward(q, k, v, beta, log_decay, do, chunk_states, d_final_state, scale, chunk_size, want_d_initial_state):
    B, H, T, d_k = q.shape
    d_v = v.shape[-1]
    BK, BV, NV = _tiles(d_k, d_v)
    dq_partial = q.new_empty(NV, B, H, T, d_k, dtype=torch.float32)
    dk_partial = q.new_empty(NV, B, H, T, d_k, dtype=torch.float32)
    dv = torch.empty_like(v)
    dbeta_partial = q.new_empty(NV, B, H, T, dtype=torch.float32)
    dlog_partial = q.new_empty(NV, B, H, T, dtype=torch.float32) if log_decay is not None else None
    d_initial_state = q.new_empty(B, H, d_k, d_v, dtype=torch.float32) if want_d_initial_state else None
    _delta_bwd_kernel[(B * H, NV)](
        q, k, v, beta, log_decay, do, chunk_states, dq_partial, dk_partial, dv, dbeta_partial, dlog_partial,
        d_final_state, d_initial_state, scale, T,
        D_K=d_k, D_V=d_v, BT=chunk_size, BK=BK, BV=BV, DOT_PRECISION=_dot_precision(q.dtype), **_LAUNCH,
    )
    # Add the value blocks' shares (fp32), then round once to the input dtype.
    d_log_decay = dlog_partial.sum(0) if dlog_partial is not None else None
    return (dq_partial.sum(0).to(q.dtype), dk_partial.sum(0).to(k.dtype), dv, dbeta_partial.sum(0),
            d_log_decay, d_initial_state)


class ChunkDeltaRule(torch.autograd.Function):
    """Autograd wrapper: saves q, k, v, beta, the log gates and the state entering each chunk."""

    @staticmethod
    def forward(ctx, q, k, v, beta, log_decay, initial_state, scale, output_final_state, chunk_size):
        save_states = any(ctx.needs_input_grad[:6])
        o, final_state, chunk_states = _forward(
            q, k, v, beta, log_decay, initial_state, scale, output_final_state, chunk_size, save_states
        )
        ctx.save_for_backward(q, k, v, beta, log_decay, chunk_states)
        ctx.scale, ctx.chunk_size, ctx.has_initial_state = scale, chunk_size, initial_state is not None
        return o, final_state

    @staticmethod
    @torch.autograd.function.once_differentiable  # the backward kernel is not differentiable itself
    def backward(ctx, do, d_final_state):
        q, k, v, beta, log_decay, chunk_states = ctx.saved_tensors
        if d_final_state is not None:
            d_final_state = d_final_state.float().contiguous()
        dq, dk, dv, dbeta, d_log_decay, d_initial_state = _backward(
            q, k, v, beta, log_decay, do.contiguous(), chunk_states, d_final_state, ctx.scale, ctx.chunk_size,
            want_d_initial_state=ctx.has_initial_state and ctx.needs_input_grad[5],
        )
        return dq, dk, dv, dbeta, d_log_decay, d_initial_state, None, None, None


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

    q, k: (B, H, T, D_k) with D_k <= 128; v: (B, H, T, D_v); fp32, fp16 or bf16, one dtype.
    beta: (B, H, T) in [0, 2] (values above 1 give the transition a negative eigenvalue);
        fp32, fp16 or bf16, used in fp32.
    log_decay: (B, H, T), finite and <= 0, or None (no decay: plain DeltaNet); used in fp32.
    scale: multiplies q (default 1.0).
    initial_state: (B, H, D_k, D_v), the state S_0 from an earlier prefix (kept in fp32).
    output_final_state: also return S_T, (B, H, D_k, D_v) fp32.
    chunk_size: tokens per chunk, a power of two >= 16 (the triangular solve is a loop over its
        rows, so 16 to 64 are sensible). Default (None): 64 for D_k <= 64, 32 above. Compiled for
        an H100 (sm_90), the backward kernel at D_k = 128 with chunks of 64 needs 368 KB of shared
        memory per block, over the 227 KB limit (found by tests/test_kernels_compile.py; 108 KB at
        chunks of 32), so on CUDA D_k > 64 with chunk_size > 32 raises ValueError.
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
            "shared memory than a GPU block has (368 KB at D_k = 128, chunk 64, sm_90); use chunk_size <= 32 or the default"
        )
    initial_state = _initial_state_fp32(initial_state, q, v)
    if normalize_keys:
        k = F.normalize(k.float(), dim=-1, eps=KEY_NORM_EPS).to(k.dtype)
    scale = 1.0 if scale is None else float(scale)
    o, final_state = ChunkDeltaRule.apply(
        q.contiguous(), k.contiguous(), v.contiguous(), beta.float().contiguous(),
        None if log_decay is None else log_decay.float().contiguous(), initial_state,
        scale, output_final_state, chunk_size,
    )
    return (o, final_state) if output_final_state else o
