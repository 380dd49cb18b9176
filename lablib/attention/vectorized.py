"""Chunk-vectorized forms: every chunk at once, the fast PyTorch path on a CPU.

The chunkwise forms in ``lablib.attention.linear`` / ``gated`` / ``delta`` read like the algorithm:
a Python loop over chunks, a handful of small matmuls per chunk. That loop is the cost on a CPU
(T / C iterations of small ops, each paying PyTorch's per-call overhead). Here the same chunk
algebra is written for *all chunks at once*: the sequence is cut into n = ceil(T / C) chunks,
reshaped to (B, H, n, C, D), and every per-chunk quantity becomes one batched op over n.

What stays sequential is only what must: the states entering each chunk. For linear attention
and the gated forms even that is one op,

* ungated:  S_in[c] = S_0 + sum_{c' < c} K_c'^T V_c'                      an exclusive cumsum over chunks
* gated:    S_in[c+1] = exp(G_c) S_in[c] + KV_c                            (G_c: the chunk's total log gate)

and the gated recurrence over chunks is itself (scalar-)gated linear attention on n "tokens",
so it is solved like the intra-chunk part: an (n x n) decay matrix from segment sums of the
chunk-level log gates, masked to -inf above the diagonal *before* exp (nothing positive is
exponentiated; see ``lablib.attention.gated``), times the chunk summaries KV_c. That costs
O(n^2 D_k D_v), so past ``DIRECT_CHUNKS`` (64) chunks the chunks are grouped and the same rule
is applied to the groups (see ``_gated_chunk_states``). The delta rule's states depend on the
state itself (R = U - W S), so its chunk loop stays, with two small matmuls per chunk in it;
the WY / UT transform (a batched triangular inverse) and every intra-chunk matmul are done for
all chunks beforehand. GLA's intra-chunk scores need one more idea (see ``gla_vectorized``).

All forms take and return what the Triton kernels in ``lablib.kernels`` do: q, k (B, H, T, D_k),
v (B, H, T, D_v), an optional initial state S_0 (B, H, D_k, D_v) and ``output_final_state``;
they return o (B, H, T, D_v) or (o, S_T). No feature map and no normalizer (apply them outside,
as ``lablib.ops.linear_attention`` does); ``scale`` multiplies q (default 1). T need not be a
multiple of the chunk size: the last chunk is padded with zeros (zero keys and values and log
gates 0 add nothing to any state), and the padded outputs are dropped. They are differentiable
by autograd and are tested against the recurrences (outputs, final states, every gradient).
Like the kernels they check shapes, dtypes and the gates' ranges, but do not scan q, k, v for
NaN (a full read of the inputs; on a CPU it cost as much as the linear form itself).

``diagonal_scan_vectorized`` is the same idea for the diagonal recurrence h_t = lambda_t h_{t-1} + x_t
of ``lablib.koopman.recurrence``: a sequential loop of C steps run for all chunks at once, then the
(much shorter) recurrence over chunk ends, solved the same way.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from lablib._checks import check_finite, check_qkv
from lablib.attention.delta import BETA_MAX, KEY_NORM_EPS
from lablib.attention.gated import _check_chunk_size, _check_log_gate, _check_per_step

__all__ = [
    "linear_attention_vectorized",
    "scalar_gated_vectorized",
    "gla_vectorized",
    "delta_rule_vectorized",
    "diagonal_scan_vectorized",
]

DIRECT_CHUNKS = 64  # up to this many chunks, the chunk-level recurrence is one (n x n) decay matrix
GLA_FACTOR_SPAN = 16.0  # GLA: largest chunk decay |sum log_alpha| for the factored scores (see gla_vectorized)
GLA_EXACT_CHUNK = 16  # GLA: rows per chunk when the (C, C, D_k) decays are formed exactly


# --------------------------------------------------------------------------- helpers


def _initial_state(initial_state, q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """S_0 (B, H, D_k, D_v) in q's dtype (zeros if None); ValueError naming the shape otherwise."""
    B, H, _, D_k = q.shape
    want = (B, H, D_k, v.shape[-1])
    if initial_state is None:
        return q.new_zeros(want)
    if not isinstance(initial_state, torch.Tensor):
        raise TypeError(f"initial_state must be a torch.Tensor of shape (B, H, D_k, D_v) = {want}; "
                        f"got {type(initial_state).__name__}")
    if tuple(initial_state.shape) != want:
        raise ValueError(f"initial_state must have shape (B, H, D_k, D_v) = {want}; got shape {tuple(initial_state.shape)}")
    if not initial_state.is_floating_point():
        raise ValueError(f"initial_state must be a floating-point tensor; got dtype {initial_state.dtype}")
    check_finite(initial_state, "initial_state")
    return initial_state.to(q.dtype)  # differentiable cast (a Triton kernel's state is fp32)


def _to_chunks(x: torch.Tensor, C: int) -> torch.Tensor:
    """(B, H, T, *rest) -> (B, H, n, C, *rest), zero-padding T up to n * C."""
    T = x.shape[2]
    n = -(-T // C)
    if n * C != T:
        pad = [0, 0] * (x.ndim - 3) + [0, n * C - T]
        x = F.pad(x, pad)
    return x.reshape(*x.shape[:2], n, C, *x.shape[3:])


def _from_chunks(x: torch.Tensor, T: int) -> torch.Tensor:
    """(B, H, n, C, D) -> (B, H, T, D), dropping the padding."""
    return x.reshape(*x.shape[:2], -1, x.shape[-1])[:, :, :T]


def _segsum_decays(log_a: torch.Tensor, dim: int) -> torch.Tensor:
    """Causal decay matrix exp(sum_{j < s <= i} log_a_s) for j <= i, exactly 0 for j > i.

    ``log_a`` has the steps along ``dim`` (any leading and trailing dims); the result inserts a
    new axis after ``dim``: entry [..., i, j, ...] is the decay from step j to step i. Built as
    the segment sum (a cumsum down each column of a masked (C x C) matrix; no difference of two
    cumulative sums, so no cancellation) and masked to -inf above the diagonal before exp, so
    nothing positive is ever exponentiated (see ``lablib.attention.gated``).
    """
    dim = dim % log_a.ndim
    C = log_a.shape[dim]
    trail = log_a.ndim - dim - 1  # dims after the step axis (the key dim for GLA)
    strict = torch.ones(C, C, dtype=torch.bool, device=log_a.device).tril(-1).reshape(C, C, *([1] * trail))
    causal = torch.ones(C, C, dtype=torch.bool, device=log_a.device).tril().reshape(C, C, *([1] * trail))
    steps = log_a.unsqueeze(dim + 1).expand(*log_a.shape[: dim + 1], C, *log_a.shape[dim + 1:])  # [i, j] = log_a_i
    seg = steps.masked_fill(~strict, 0.0).cumsum(dim)  # [i, j] = sum_{j < s <= i} log_a_s
    return seg.masked_fill_(~causal, float("-inf")).exp_()  # in place: seg is a fresh tensor


def _reverse_exclusive_cumsum(x: torch.Tensor, dim: int) -> torch.Tensor:
    """out_j = sum_{s > j} x_s along ``dim`` (flip, cumsum, flip, shift: no subtraction)."""
    total_from = x.flip(dim).cumsum(dim).flip(dim)  # sum_{s >= j}
    zero = torch.zeros_like(x.narrow(dim, 0, 1))
    return torch.cat([total_from.narrow(dim, 1, x.shape[dim] - 1), zero], dim)


def _gated_chunk_states(kv: torch.Tensor, G: torch.Tensor, S0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """States entering every chunk and the final state, for S_in[c+1] = exp(G_c) S_in[c] + kv_c.

    kv: (B, H, n, D_k, D_v) each chunk's contribution at its end; G: (B, H, n) total log decay of
    each chunk, or (B, H, n, D_k) per key dim (GLA); S0: (B, H, D_k, D_v).
    Returns S_in (B, H, n, D_k, D_v) and S_T (B, H, D_k, D_v).

    Unrolled: S_out[c] = sum_{c' <= c} exp(sum_{c' < c'' <= c} G_c'') kv_c' + exp(sum_{c'' <= c} G_c'') S0,
    a gated linear attention over the n chunk summaries: one (n x n) decay matrix (per key dim
    for GLA) times the summaries, formed in log space like the intra-chunk decays. That is
    O(n^2 D_k D_v); past ``DIRECT_CHUNKS`` chunks the same rule is applied to groups of chunks
    (states from zero inside each group, then the recurrence over the groups' summaries,
    recursively), so the cost stays O(n DIRECT_CHUNKS D_k D_v).
    """
    B, H, n, D_k, D_v = kv.shape
    if n > DIRECT_CHUNKS:
        m = DIRECT_CHUNKS
        n_groups = -(-n // m)
        pad = n_groups * m - n  # padding chunks: kv 0, log gate 0
        kv_g = F.pad(kv, [0, 0, 0, 0, 0, pad]).reshape(B, H, n_groups * m, D_k, D_v)
        G_g = F.pad(G, [0, 0] * (G.ndim - 3) + [0, pad])
        # inside each group, from a zero state: fold the groups into the batch dim
        fold = lambda x: x.reshape(B, H * n_groups, m, *x.shape[3:])  # noqa: E731
        local_in, local_out = _gated_chunk_states(fold(kv_g), fold(G_g), kv.new_zeros(B, H * n_groups, D_k, D_v))
        G_grouped = G_g.reshape(B, H, n_groups, m, *G.shape[3:])
        group_in, S_T = _gated_chunk_states(  # the recurrence over the groups' summaries
            local_out.reshape(B, H, n_groups, D_k, D_v), G_grouped.sum(3), S0
        )
        within = G_grouped.cumsum(3)  # decay from the group's start through chunk i, then shifted by one:
        within = torch.cat([torch.zeros_like(within[:, :, :, :1]), within[:, :, :, :-1]], dim=3).exp()
        within = within[..., None, None] if G.ndim == 3 else within[..., None]
        S_in = local_in.reshape(B, H, n_groups, m, D_k, D_v) + within * group_in.unsqueeze(3)
        return S_in.reshape(B, H, n_groups * m, D_k, D_v)[:, :, :n], S_T
    decay_from_start = G.cumsum(2).exp()  # (B, H, n[, D_k]): a cumulative log gate, <= 0
    if G.ndim == 3:
        M = _segsum_decays(G, dim=2)  # (B, H, n, n)
        S_out = (M @ kv.reshape(B, H, n, D_k * D_v)).reshape(B, H, n, D_k, D_v)
        S_out = S_out.add_(decay_from_start[..., None, None] * S0.unsqueeze(2))
    else:
        M = _segsum_decays(G, dim=2).permute(0, 1, 4, 2, 3)  # (B, H, D_k, n, n): one matrix per key dim
        S_out = (M @ kv.permute(0, 1, 3, 2, 4)).permute(0, 1, 3, 2, 4)  # (B, H, n, D_k, D_v)
        S_out = S_out.add_(decay_from_start[..., None] * S0.unsqueeze(2))
    S_in = torch.cat([S0.unsqueeze(2), S_out[:, :, :-1]], dim=2)
    return S_in, S_out[:, :, -1]


def _unit_lower_inverse(M: torch.Tensor) -> torch.Tensor:
    """Inverse of unit lower-triangular matrices M (..., C, C), by recursive halving (matmuls only).

        [[A, 0], [G, E]]^{-1} = [[A^{-1}, 0], [-E^{-1} G A^{-1}, E^{-1}]]

    with both diagonal blocks inverted in one batched call per level (log2 C levels; C is padded
    to a power of two with an identity block, which leaves the top-left inverse unchanged). This
    is LAPACK's recursive triangular inversion (trtri), as accurate as a triangular solve here
    (measured: 2e-7 against float64 at C = 64, beta up to 2). A batched
    ``torch.linalg.solve_triangular`` calls one small threaded LAPACK solve per matrix; on a busy
    2-core machine with 2 torch threads each call waited for a descheduled thread (0.5 ms -> 740 ms
    for 128 8 x 8 solves), while batched matmuls of this size run on one thread.
    """
    C = M.shape[-1]
    P = 1 << max(0, (C - 1).bit_length())
    if P != C:
        identity_tail = torch.eye(P, dtype=M.dtype, device=M.device)
        identity_tail[:C, :C] = 0
        M = F.pad(M, [0, P - C, 0, P - C]) + identity_tail
    return _unit_lower_inverse_pow2(M)[..., :C, :C]


def _unit_lower_inverse_pow2(M: torch.Tensor) -> torch.Tensor:
    P = M.shape[-1]
    if P == 1:
        return torch.ones_like(M)
    h = P // 2
    halves = _unit_lower_inverse_pow2(torch.stack([M[..., :h, :h], M[..., h:, h:]]))
    A_inv, E_inv = halves[0], halves[1]
    G = -(E_inv @ M[..., h:, :h] @ A_inv)
    return torch.cat([torch.cat([A_inv, torch.zeros_like(G)], -1), torch.cat([G, E_inv], -1)], -2)


def _finish(o: torch.Tensor, S: torch.Tensor, output_final_state: bool):
    return (o, S) if output_final_state else o


def _empty(q, v, S0, output_final_state):
    B, H, _, _ = q.shape
    return _finish(v.new_zeros(B, H, 0, v.shape[-1]), S0, output_final_state)


# --------------------------------------------------------------------------- linear attention


def linear_attention_vectorized(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    chunk_size: int = 64,
):
    """Causal linear attention o_t = S_t^T (scale q_t), S_t = S_{t-1} + k_t v_t^T, all chunks at once.

    q, k (B, H, T, D_k); v (B, H, T, D_v); initial_state S_0 (B, H, D_k, D_v) or None (zeros).
    For chunk c with rows Q_c, K_c, V_c:

        S_in[c] = S_0 + sum_{c' < c} K_c'^T V_c'            (B, H, n, D_k, D_v): one exclusive cumsum
        O_c     = Q_c S_in[c] + (Q_c K_c^T * M) V_c          M: the causal (C x C) mask

    Returns o (B, H, T, D_v), or (o, S_T) with ``output_final_state``. Same function as
    ``lablib.kernels.linear_attention.chunk_linear_attention`` and, with ``feature_map="identity",
    normalize=False``, as ``linear_attention_recurrent``.
    """
    check_qkv(q, k, v, causal=True, check_values=False)
    _check_chunk_size(chunk_size)
    S0 = _initial_state(initial_state, q, v)
    if q.shape[2] == 0:
        return _empty(q, v, S0, output_final_state)
    T = q.shape[2]
    C = min(chunk_size, T)  # a chunk longer than the sequence would only be padding
    q = q if scale is None else q * scale
    Q, K, V = (_to_chunks(x, C) for x in (q, k, v))  # (B, H, n, C, D)
    kv = K.transpose(-1, -2) @ V  # (B, H, n, D_k, D_v): each chunk's sum of k v^T
    S_in = torch.cat([S0.unsqueeze(2), kv[:, :, :-1]], dim=2).cumsum(2)  # state entering each chunk
    mask = torch.ones(C, C, dtype=torch.bool, device=q.device).tril()
    scores = (Q @ K.transpose(-1, -2)).masked_fill_(~mask, 0.0)  # (B, H, n, C, C)
    O = (scores @ V).add_(Q @ S_in)  # in place where autograd allows: fewer large temporaries
    return _finish(_from_chunks(O, T), S_in[:, :, -1] + kv[:, :, -1], output_final_state)


# --------------------------------------------------------------------------- scalar gate


def scalar_gated_vectorized(
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
    """Scalar-gated linear attention S_t = exp(log_decay_t) S_{t-1} + k_t v_t^T, all chunks at once.

    q, k (B, H, T, D_k); v (B, H, T, D_v); log_decay (B, H, T), finite and <= 0; initial_state
    (B, H, D_k, D_v) or None. With b_i the cumulative log decay inside a chunk and D its causal
    decay matrix (segment sums, masked before exp), for every chunk at once:

        O_c  = (Q_c * exp(b)) S_in[c] + (Q_c K_c^T * D) V_c
        KV_c = (K_c * exp(b_{C-1} - b))^T V_c,   G_c = b_{C-1}       the chunk's summary and total gate

    and the entering states S_in from the chunk-level gated recurrence (``_gated_chunk_states``).
    Returns o (B, H, T, D_v), or (o, S_T). Same function as ``scalar_gated_recurrent``.
    """
    check_qkv(q, k, v, causal=True, check_values=False)
    _check_log_gate(log_decay, "log_decay", q)
    _check_chunk_size(chunk_size)
    S0 = _initial_state(initial_state, q, v)
    if q.shape[2] == 0:
        return _empty(q, v, S0, output_final_state)
    T = q.shape[2]
    C = min(chunk_size, T)  # a chunk longer than the sequence would only be padding
    q = q if scale is None else q * scale
    Q, K, V = (_to_chunks(x, C) for x in (q, k, v))  # (B, H, n, C, D)
    g = _to_chunks(log_decay, C)  # (B, H, n, C); padding: log gate 0 (no decay), nothing written
    b = g.cumsum(-1)  # log decay from each chunk's start through row i
    D = _segsum_decays(g, dim=-1)  # (B, H, n, C, C)
    intra = ((Q @ K.transpose(-1, -2)) * D) @ V
    kv = (K * D[..., -1, :].unsqueeze(-1)).transpose(-1, -2) @ V  # D's last row: decay from j to the chunk's end
    S_in, S_T = _gated_chunk_states(kv, b[..., -1], S0)
    O = intra.add_((Q * b.exp().unsqueeze(-1)) @ S_in)
    return _finish(_from_chunks(O, T), S_T, output_final_state)


# --------------------------------------------------------------------------- GLA


def gla_vectorized(
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
    """GLA, S_t = diag(exp(log_alpha_t)) S_{t-1} + k_t v_t^T, all chunks at once.

    q, k (B, H, T, D_k); v (B, H, T, D_v); log_alpha (B, H, T, D_k), finite and <= 0;
    initial_state (B, H, D_k, D_v) or None. The scalar gate's formulas hold per key dim d; the
    inter-chunk half is the same, with a decay matrix per key dim. The intra-chunk scores

        A_ij = sum_d q_id k_jd exp(b_id - b_jd)        (j <= i; b: cumulative log gates in the chunk)

    do not factor out of Q K^T, since the decay sits inside the sum over d. Two ways to form them:

    * factored: A = (Q * exp(b)) (K * exp(-b))^T, one matmul (the GLA paper's form). exp(-b_j) is
      the exponential of something positive: it overflows once a chunk's decay is strong, and its
      rounding is relative error |b| * eps. So it is used only when every chunk's total log decay
      is at least -``GLA_FACTOR_SPAN`` (16: exp(16) ~ 9e6, relative error <= ~2e-6 in fp32), as
      with GLA's own gates (logsigmoid(.) / 16, about -3 per 64 tokens), and only for fp32 / fp64;
    * exact: otherwise, from the (C, C, D_k) tensor of masked segment sums (nothing positive is
      exponentiated), on chunks of at most ``GLA_EXACT_CHUNK`` = 16 rows to bound its C^2 D_k size.

    The choice is made per call, from the gates (one reduction); both give the recurrence's result.
    Returns o (B, H, T, D_v), or (o, S_T). Same function as ``gla_recurrent``.
    """
    check_qkv(q, k, v, causal=True, check_values=False)
    _check_log_gate(log_alpha, "log_alpha", q, per_key=True)
    _check_chunk_size(chunk_size)
    S0 = _initial_state(initial_state, q, v)
    if q.shape[2] == 0:
        return _empty(q, v, S0, output_final_state)
    T = q.shape[2]
    q = q if scale is None else q * scale
    spans = _to_chunks(log_alpha.detach(), min(chunk_size, T)).sum(3)  # (B, H, n, D_k): each chunk's total log decay
    wide = q.dtype in (torch.float32, torch.float64)  # fp16 cannot hold exp(16); bf16 would round it coarsely
    factored = wide and bool(spans.min() >= -GLA_FACTOR_SPAN)
    C = min(chunk_size if factored else min(chunk_size, GLA_EXACT_CHUNK), T)
    Q, K, V = (_to_chunks(x, C) for x in (q, k, v))  # (B, H, n, C, D)
    g = _to_chunks(log_alpha, C)  # (B, H, n, C, D_k); padding: log gate 0
    b = g.cumsum(3)  # (B, H, n, C, D_k): log decay from each chunk's start through row i
    to_end = _reverse_exclusive_cumsum(g, dim=3).exp()  # exp(sum_{j < s < C} g_s): decay from j to the end
    kv = (K * to_end).transpose(-1, -2) @ V  # (B, H, n, D_k, D_v)
    S_in, S_T = _gated_chunk_states(kv, b[:, :, :, -1], S0)
    Q_decayed = Q * b.exp()
    if factored:
        mask = torch.ones(C, C, dtype=torch.bool, device=q.device).tril()
        A = (Q_decayed @ (K * (-b).exp()).transpose(-1, -2)).masked_fill_(~mask, 0.0)
    else:
        D = _segsum_decays(g, dim=3)  # (B, H, n, C, C, D_k): exp(sum_{j < s <= i} g_sd), 0 for j > i
        A = (Q.unsqueeze(4) * K.unsqueeze(3) * D).sum(-1)  # (B, H, n, C, C)
    O = (A @ V).add_(Q_decayed @ S_in)
    return _finish(_from_chunks(O, T), S_T, output_final_state)


# --------------------------------------------------------------------------- delta rule


def delta_rule_vectorized(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    beta: torch.Tensor,
    *,
    log_decay: torch.Tensor | None = None,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    chunk_size: int = 64,
    normalize_keys: bool = True,
):
    """DeltaNet (Gated DeltaNet with ``log_decay``): the WY / UT transform for all chunks at once.

        S_t = a_t (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T,   o_t = S_t^T (scale q_t)

    q, k (B, H, T, D_k); v (B, H, T, D_v); beta (B, H, T) in [0, 2]; log_decay (B, H, T), finite
    and <= 0, or None; initial_state (B, H, D_k, D_v) or None; keys L2-normalized if
    ``normalize_keys``. The algebra is ``delta_rule_chunkwise``'s (read its docstring): per chunk,
    with g = exp(b) and D the causal decay matrix,

        L = tril(diag(beta) (K K^T * D), -1)                      batched over all chunks
        [W | U] = (I + L)^{-1} diag(beta) [g * K | V]             one batched inverse (``_unit_lower_inverse``)
        R_c = U_c - W_c S_in[c],   S_in[c+1] = g_C S_in[c] + (K_c * exp(b_C - b))^T R_c     loop over chunks
        O_c = (Q_c * g) S_in[c] + (Q_c K_c^T * D) R_c             batched again after the loop

    The loop carries only the state: two small matmuls per chunk ([W_c; Q_c g] S, then the
    update). Returns o (B, H, T, D_v), or (o, S_T). Same function as ``delta_rule_recurrent``.
    """
    check_qkv(q, k, v, causal=True, check_values=False)
    _check_per_step(beta, "beta", q)
    if beta.numel() and ((beta < 0).any() or (beta > BETA_MAX).any()):
        raise ValueError(f"beta must lie in [0, {BETA_MAX:g}]; got values in [{beta.min().item():.4g}, "
                         f"{beta.max().item():.4g}] in beta of shape {tuple(beta.shape)}")
    if log_decay is not None:
        _check_log_gate(log_decay, "log_decay", q)
    if normalize_keys:
        k = F.normalize(k, dim=-1, eps=KEY_NORM_EPS)
    _check_chunk_size(chunk_size)
    S = _initial_state(initial_state, q, v)
    if q.shape[2] == 0:
        return _empty(q, v, S, output_final_state)
    T = q.shape[2]
    C = min(chunk_size, T)  # a chunk longer than the sequence would only be padding
    q = q if scale is None else q * scale
    Q, K, V = (_to_chunks(x, C) for x in (q, k, v))  # (B, H, n, C, D)
    bt = _to_chunks(beta, C)  # (B, H, n, C); padding: beta 0, writes nothing
    g = torch.zeros_like(bt) if log_decay is None else _to_chunks(log_decay, C)
    b = g.cumsum(-1)
    gexp = b.exp().unsqueeze(-1)  # (B, H, n, C, 1): decay from the chunk's start through row i
    D = _segsum_decays(g, dim=-1)  # (B, H, n, C, C)

    eye = torch.eye(C, dtype=q.dtype, device=q.device)
    L = (bt.unsqueeze(-1) * (K @ K.transpose(-1, -2)) * D).tril(-1)
    rhs = bt.unsqueeze(-1) * torch.cat([gexp * K, V], dim=-1)  # (B, H, n, C, D_k + D_v)
    WU = _unit_lower_inverse(eye + L) @ rhs
    D_k = K.shape[-1]
    W, U = WU[..., :D_k], WU[..., D_k:]
    reads = torch.cat([W, Q * gexp], dim=-2)  # (B, H, n, 2C, D_k): both products with S in one matmul
    K_end = (K * D[..., -1, :].unsqueeze(-1)).transpose(-1, -2)  # (B, H, n, D_k, C): keys decayed to the chunk's end
    g_end = b[..., -1].exp()[..., None, None]  # (B, H, n, 1, 1)

    R, inter = [], []
    # unbind once: indexing x[:, :, ci] inside the loop would cost a full-size zero gradient per chunk
    for reads_c, U_c, g_c, K_c in zip(reads.unbind(2), U.unbind(2), g_end.unbind(2), K_end.unbind(2)):
        WS, QS = (reads_c @ S).split(C, dim=-2)
        R_c = U_c - WS  # pseudo-values r_i = beta_i (v_i - a_i S_{i-1}^T k_i)
        S = g_c * S + K_c @ R_c
        R.append(R_c)
        inter.append(QS)
    R, inter = torch.stack(R, dim=2), torch.stack(inter, dim=2)  # (B, H, n, C, D_v)
    O = inter.add_(((Q @ K.transpose(-1, -2)) * D) @ R)
    return _finish(_from_chunks(O, T), S, output_final_state)


# --------------------------------------------------------------------------- diagonal scan


def _check_scan_inputs(lam, x, h0):
    for name, t in (("lam", lam), ("x", x)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor; got {type(t).__name__}")
        if not (t.is_floating_point() or t.is_complex()):
            raise ValueError(f"{name} must be a real or complex floating tensor; got dtype {t.dtype}")
    if x.ndim < 2:
        raise ValueError(f"x must have shape (..., T, N), e.g. (batch, T, N); got shape {tuple(x.shape)}")
    T, N = x.shape[-2:]
    if lam.shape not in ((N,), x.shape):
        raise ValueError(f"lam must have shape (N,) = ({N},) or x's {tuple(x.shape)}; got shape {tuple(lam.shape)}")
    dtype = torch.promote_types(lam.dtype, x.dtype)
    if h0 is not None:
        want = x.shape[:-2] + (N,)
        if not isinstance(h0, torch.Tensor) or h0.shape != want:
            raise ValueError(f"initial_state must have shape (..., N) = {tuple(want)}; got {getattr(h0, 'shape', type(h0))}")
        dtype = torch.promote_types(dtype, h0.dtype)
    return dtype


def _scan_rows(lam: torch.Tensor, x: torch.Tensor, h0: torch.Tensor, C: int) -> torch.Tensor:
    """h (R, T, N) for lam, x (R, T, N) and h0 (R, N): chunks of C in parallel, then the chunk ends."""
    R, T, N = x.shape
    if T <= C:  # one chunk: the plain loop (unbind once: per-step indexing would cost a full-size
        h, out = h0, []  # zero gradient per step in the backward)
        for lam_t, x_t in zip(lam.unbind(1), x.unbind(1)):
            h = lam_t * h + x_t
            out.append(h)
        return torch.stack(out, dim=1)
    n = -(-T // C)
    pad = n * C - T
    if pad:  # identity steps (lam 1, x 0) leave every prefix unchanged
        lam = torch.cat([lam, lam.new_ones(R, pad, N)], dim=1)
        x = torch.cat([x, x.new_zeros(R, pad, N)], dim=1)
    lam, x = lam.reshape(R, n, C, N), x.reshape(R, n, C, N)
    h, local = x.new_zeros(R, n, N), []
    for lam_t, x_t in zip(lam.unbind(2), x.unbind(2)):  # every chunk from a zero state, all chunks at once
        h = lam_t * h + x_t
        local.append(h)
    local = torch.stack(local, dim=2)  # (R, n, C, N)
    A = lam.cumprod(2)  # (R, n, C, N): product of the chunk's lambdas so far (products only, no division)
    # chunk c maps its entering state h to A_last h + local_last: a diagonal recurrence over n chunks
    h_end = _scan_rows(A[:, :, -1], local[:, :, -1], h0, C)  # (R, n, N): the state after each chunk
    h_in = torch.cat([h0.unsqueeze(1), h_end[:, :-1]], dim=1)
    return (A * h_in.unsqueeze(2) + local).reshape(R, n * C, N)[:, :T]


def diagonal_scan_vectorized(
    lam: torch.Tensor,
    x: torch.Tensor,
    *,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    chunk_size: int = 64,
):
    """h_t = lam_t * h_{t-1} + x_t over time (axis -2), elementwise over channels, by chunks.

    x (..., T, N); lam (N,) or x's shape; initial_state h_{-1} (..., N) or None (zeros); real or
    complex, promoted as PyTorch does. The T steps are cut into n chunks of C: one loop of C steps
    runs every chunk from a zero state at once (``local``), the products of each chunk's lambdas
    A_t (a cumprod) map an entering state through it, and the entering states solve the same
    recurrence over the n chunk ends (recursively, so the sequential depth is about C log_C T,
    not T): h = A * h_in + local. Returns h (..., T, N), or (h, h_{T-1}) with
    ``output_final_state``. Same function as ``lablib.koopman.recurrence.diagonal_recurrence_loop``.
    """
    dtype = _check_scan_inputs(lam, x, initial_state)
    _check_chunk_size(chunk_size)
    if chunk_size < 2:
        raise ValueError(f"chunk_size must be at least 2 for the chunked scan; got {chunk_size}")
    lead, (T, N) = x.shape[:-2], x.shape[-2:]
    if T == 0 or x.numel() == 0:
        raise ValueError(f"x must have at least one time step, row and channel; got shape {tuple(x.shape)}")
    rows = math.prod(lead)
    lam_r = lam.to(dtype).expand(x.shape).reshape(rows, T, N)
    x_r = x.to(dtype).reshape(rows, T, N)
    h0 = x_r.new_zeros(rows, N) if initial_state is None else initial_state.to(dtype).reshape(rows, N)
    h = _scan_rows(lam_r, x_r, h0, chunk_size).reshape(x.shape)
    return (h, h[..., -1, :]) if output_final_state else h
