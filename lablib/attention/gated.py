"""Gated linear attention: the state forgets, by a scalar per head or a vector over the key dim.

Plain (unnormalized, identity-map) linear attention keeps adding outer products to its state,
S_t = S_{t-1} + k_t v_t^T, so nothing is ever forgotten. The gated family multiplies the old
state by a decay before adding the new memory:

* scalar gate (RetNet, Mamba-2; one number per head and step):
      S_t = a_t S_{t-1} + k_t v_t^T,               a_t = exp(log_decay_t) in (0, 1]
* GLA (Yang et al., 2024, "Gated Linear Attention Transformers with Hardware-Efficient
  Training"; a data-dependent gate per key dim):
      S_t = diag(alpha_t) S_{t-1} + k_t v_t^T,     alpha_t = exp(log_alpha_t) in (0, 1]^D_k

and both read o_t = S_t^T q_t (times ``scale``; q and k are used as given, no feature map,
no normalizer). Shapes: q, k (B, H, T, D_k), v (B, H, T, D_v), the state S (B, H, D_k, D_v),
log_decay (B, H, T), log_alpha (B, H, T, D_k); outputs (B, H, T, D_v).

Each comes as a recurrence (one token at a time; the truth, it reads like the paper) and a
chunkwise form (matmuls over chunks of C tokens). Unrolling the recurrence inside a chunk whose
entering state is S_0, with cumulative log decays b_i = sum_{s <= i} log a_s (s, i counted from
the chunk's first position):

    S_i = exp(b_i) S_0 + sum_{j <= i} exp(b_i - b_j) k_j v_j^T
    o_i = exp(b_i) S_0^T q_i + sum_{j <= i} exp(b_i - b_j) (q_i . k_j) v_j

The decay from j to i is a ratio exp(b_i) / exp(b_j). Formed as written, exp(-b_j) overflows
once the decays are strong (b_j = -20 j reaches -1300 in 64 steps; exp(1300) is inf in any
float type, and inf * 0 is NaN). So the chunkwise forms stay in log space: they form the log
ratio b_i - b_j, which is <= 0 on and below the diagonal, replace it by -inf above the diagonal
(j > i, where it is positive and possibly huge) *before* exponentiating, and never take exp of
anything positive. Every factor is then in [0, 1].

One more trap: b_i - b_j computed as a difference of the two cumulative sums cancels. After one
strong step (log a = -1000, a near-reset) both b_i and b_j are about -1000, whose fp32 spacing
is 6e-5, so exp(b_i - b_j) for a pair after the reset is off by up to ~1e-4 relative (measured:
outputs off by 2e-4 against the recurrence). The log ratio is therefore formed as the segment
sum sum_{j < s <= i} log a_s itself (a cumsum down each column of a masked (C, C) matrix, the
"segsum" of the Mamba-2 reference code), which only adds the gates actually between j and i.
"""

from __future__ import annotations

import torch

from lablib._checks import check_finite, check_qkv

__all__ = [
    "scalar_gated_recurrent",
    "scalar_gated_chunkwise",
    "gla_recurrent",
    "gla_chunkwise",
]


# --------------------------------------------------------------------------- input checks
# Shared with lablib.attention.delta.


def _check_per_step(x: torch.Tensor, name: str, q: torch.Tensor, *, per_key: bool = False) -> None:
    """Check a per-step tensor: (B, H, T) or, with ``per_key``, (B, H, T, D_k); q's dtype; finite."""
    B, H, T, D_k = q.shape
    want, dims = ((B, H, T, D_k), "(B, H, T, D_k)") if per_key else ((B, H, T), "(B, H, T)")
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {dims}; got {type(x).__name__}")
    if tuple(x.shape) != want:
        raise ValueError(f"{name} must have shape {dims} = {want} to match q {tuple(q.shape)}; got shape {tuple(x.shape)}")
    if x.dtype != q.dtype:
        raise ValueError(f"{name} must have q's dtype {q.dtype}; got {x.dtype}")
    check_finite(x, name)


def _check_log_gate(x: torch.Tensor, name: str, q: torch.Tensor, *, per_key: bool = False) -> None:
    """A log gate must be finite and <= 0, so that the gate exp(x) lies in (0, 1]."""
    _check_per_step(x, name, q, per_key=per_key)
    if x.numel() and (x > 0).any():
        raise ValueError(
            f"{name} must be <= 0 (a decay exp({name}) in (0, 1]); got max {x.max().item():.4g} "
            f"in {name} of shape {tuple(x.shape)}"
        )


def _check_state(state: torch.Tensor, q: torch.Tensor, v: torch.Tensor) -> None:
    """Check an initial state S of shape (B, H, D_k, D_v)."""
    want = (*q.shape[:2], q.shape[-1], v.shape[-1])
    if not isinstance(state, torch.Tensor):
        raise TypeError(f"initial_state must be a torch.Tensor of shape (B, H, D_k, D_v) = {want}; got {type(state).__name__}")
    if tuple(state.shape) != want:
        raise ValueError(f"initial_state must have shape (B, H, D_k, D_v) = {want}; got shape {tuple(state.shape)}")
    if state.dtype != q.dtype:
        raise ValueError(f"initial_state must have q's dtype {q.dtype}; got {state.dtype}")
    check_finite(state, "initial_state")


def _check_chunk_size(chunk_size) -> None:
    if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int; got {chunk_size!r}")


def _initial_state(initial_state, q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    if initial_state is None:
        B, H, _, D_k = q.shape
        return q.new_zeros(B, H, D_k, v.shape[-1])
    _check_state(initial_state, q, v)
    return initial_state


def _scaled(q: torch.Tensor, scale) -> torch.Tensor:
    return q if scale is None else q * scale


def _read(S: torch.Tensor, q_t: torch.Tensor) -> torch.Tensor:
    """o = S^T q: S (B, H, D_k, D_v), q_t (B, H, D_k) -> (B, H, D_v)."""
    return (q_t.unsqueeze(-1) * S).sum(-2)


def _finish(outputs: list, S: torch.Tensor, v: torch.Tensor, return_state: bool, *, cat: bool):
    B, H, _, D_v = v.shape
    if not outputs:
        out = v.new_zeros(B, H, 0, D_v)
    else:
        out = torch.cat(outputs, dim=2) if cat else torch.stack(outputs, dim=2)
    return (out, S) if return_state else out


def _causal_decays(log_a: torch.Tensor) -> torch.Tensor:
    """The decay from step j to step i of a chunk, prod_{j < s <= i} a_s, for j <= i; exactly 0 for j > i.

    log_a: (B, H, C) log gates of one chunk, or (B, H, C, D_k) for a gate per key dim.
    Returns (B, H, C, C), or (B, H, C, C, D_k), with entry [i, j] = exp(b_i - b_j).

    The log ratio b_i - b_j is built as the segment sum sum_{j < s <= i} log a_s (no cancellation,
    see the module docstring), and set to -inf above the diagonal before exp: nothing positive
    is ever exponentiated, so strong decay cannot overflow to inf (or NaN).
    """
    C = log_a.shape[2]
    strict = torch.ones(C, C, dtype=torch.bool, device=log_a.device).tril(-1)  # i > j
    causal = torch.ones(C, C, dtype=torch.bool, device=log_a.device).tril()  # i >= j
    if log_a.ndim == 4:  # per key dim: the (C, C) pattern applies to each d
        strict, causal = strict.unsqueeze(-1), causal.unsqueeze(-1)
        steps = log_a.unsqueeze(3).expand(*log_a.shape[:3], C, log_a.shape[3])  # [i, j, d] = log_a_id
        row_dim = -3
    else:
        steps = log_a.unsqueeze(-1).expand(*log_a.shape, C)  # [i, j] = log_a_i
        row_dim = -2
    seg = steps.masked_fill(~strict, 0.0).cumsum(row_dim)  # [i, j] = sum_{j < s <= i} log a_s
    return seg.masked_fill(~causal, float("-inf")).exp()


# --------------------------------------------------------------------------- scalar gate


def scalar_gated_recurrent(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    log_decay: torch.Tensor,
    *,
    initial_state: torch.Tensor | None = None,
    return_state: bool = False,
    scale: float | None = None,
):
    """Scalar-gated linear attention, one token at a time (RetNet / Mamba-2 style decay).

        S_t = a_t S_{t-1} + k_t v_t^T,   a_t = exp(log_decay_t),   o_t = S_t^T (scale q_t)

    q, k (B, H, T, D_k); v (B, H, T, D_v); log_decay (B, H, T), finite and <= 0;
    initial_state S_0 (B, H, D_k, D_v), zeros if None; scale defaults to 1 (not 1/sqrt(D_k)).
    Returns out (B, H, T, D_v), or (out, S_T) with ``return_state=True``.
    With log_decay = 0 this is ``linear_attention_recurrent(..., feature_map="identity", normalize=False)``.
    """
    check_qkv(q, k, v, causal=True)
    _check_log_gate(log_decay, "log_decay", q)
    S = _initial_state(initial_state, q, v)
    q = _scaled(q, scale)
    a = log_decay.exp()  # (B, H, T), in (0, 1]
    outputs = []
    for t in range(q.shape[2]):
        S = a[:, :, t, None, None] * S + k[:, :, t, :, None] * v[:, :, t, None, :]
        outputs.append(_read(S, q[:, :, t]))
    return _finish(outputs, S, v, return_state, cat=False)


def scalar_gated_chunkwise(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    log_decay: torch.Tensor,
    *,
    chunk_size: int = 64,
    initial_state: torch.Tensor | None = None,
    return_state: bool = False,
    scale: float | None = None,
):
    """Scalar-gated linear attention over chunks of C tokens; same arguments and result as the recurrence.

    For a chunk with queries Q, keys K, values V (C rows each), entering state S_0 and
    cumulative log decays b_i = sum_{s <= i} log_decay_s (s, i within the chunk):

        O   = (Q * exp(b)) S_0  +  (Q K^T * D) V          D_ij = exp(b_i - b_j) if j <= i else 0
        S  <- exp(b_{C-1}) S_0  +  (K * exp(b_{C-1} - b))^T V

    D is formed in log space, as segment sums of the log gates with the upper triangle masked to
    -inf before exp (see the module docstring), so strong decay cannot overflow; the state update's
    exp(b_{C-1} - b_j) is D's last row. T need not be a multiple of C.
    """
    check_qkv(q, k, v, causal=True)
    _check_log_gate(log_decay, "log_decay", q)
    _check_chunk_size(chunk_size)
    S = _initial_state(initial_state, q, v)
    q = _scaled(q, scale)
    T = q.shape[2]
    outputs = []
    for start in range(0, T, chunk_size):
        end = min(start + chunk_size, T)
        qc, kc, vc = q[:, :, start:end], k[:, :, start:end], v[:, :, start:end]
        b = log_decay[:, :, start:end].cumsum(-1)  # (B, H, C): log of the decay since the chunk began
        D = _causal_decays(log_decay[:, :, start:end])  # (B, H, C, C): exp(b_i - b_j), 0 for j > i
        intra = ((qc @ kc.transpose(-1, -2)) * D) @ vc  # this chunk's keys
        inter = (qc * b.exp().unsqueeze(-1)) @ S  # the past, decayed to each position
        outputs.append(inter + intra)
        to_end = D[:, :, -1]  # (B, H, C): exp(b_{C-1} - b_j), the decay from j to the chunk's end
        S = b[:, :, -1:].exp().unsqueeze(-1) * S + (kc * to_end.unsqueeze(-1)).transpose(-1, -2) @ vc
    return _finish(outputs, S, v, return_state, cat=True)


# --------------------------------------------------------------------------- GLA: vector gate


def gla_recurrent(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    log_alpha: torch.Tensor,
    *,
    initial_state: torch.Tensor | None = None,
    return_state: bool = False,
    scale: float | None = None,
):
    """Gated linear attention (GLA), one token at a time: a decay per key dim.

        S_t = diag(alpha_t) S_{t-1} + k_t v_t^T,   alpha_t = exp(log_alpha_t),   o_t = S_t^T (scale q_t)

    q, k (B, H, T, D_k); v (B, H, T, D_v); log_alpha (B, H, T, D_k), finite and <= 0: row d of
    the state (what key feature d has stored) decays by alpha_td. initial_state (B, H, D_k, D_v).
    Returns out (B, H, T, D_v), or (out, S_T) with ``return_state=True``. With every alpha_td
    equal to a_t it is ``scalar_gated_recurrent``.
    """
    check_qkv(q, k, v, causal=True)
    _check_log_gate(log_alpha, "log_alpha", q, per_key=True)
    S = _initial_state(initial_state, q, v)
    q = _scaled(q, scale)
    alpha = log_alpha.exp()  # (B, H, T, D_k)
    outputs = []
    for t in range(q.shape[2]):
        S = alpha[:, :, t, :, None] * S + k[:, :, t, :, None] * v[:, :, t, None, :]
        outputs.append(_read(S, q[:, :, t]))
    return _finish(outputs, S, v, return_state, cat=False)


def gla_chunkwise(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    log_alpha: torch.Tensor,
    *,
    chunk_size: int = 64,
    initial_state: torch.Tensor | None = None,
    return_state: bool = False,
    scale: float | None = None,
):
    """GLA over chunks of C tokens; same arguments and result as ``gla_recurrent``.

    With b_i = sum_{s <= i} log_alpha_s now a vector (C, D_k) per chunk, the scalar-gate formulas
    hold per key dim d:

        o_i = (q_i * exp(b_i))^T S_0  +  sum_{j <= i} A_ij v_j,   A_ij = sum_d q_id k_jd exp(b_id - b_jd)
        S  <- diag(exp(b_{C-1})) S_0  +  (K * exp(b_{C-1} - b))^T V

    The decay no longer factors out of Q K^T, so A is built from a (C, C, D_k) tensor of
    masked log-space ratios (segment sums, as for the scalar gate): O(C^2 D_k) memory per chunk, chosen for clarity (and because it
    cannot overflow) over speed. Fast kernels instead split A into (Q * exp(b)) (K * exp(-b))^T
    relative to a nearby reference position, over sub-chunks short enough for that to be safe.
    """
    check_qkv(q, k, v, causal=True)
    _check_log_gate(log_alpha, "log_alpha", q, per_key=True)
    _check_chunk_size(chunk_size)
    S = _initial_state(initial_state, q, v)
    q = _scaled(q, scale)
    T = q.shape[2]
    outputs = []
    for start in range(0, T, chunk_size):
        end = min(start + chunk_size, T)
        qc, kc, vc = q[:, :, start:end], k[:, :, start:end], v[:, :, start:end]
        b = log_alpha[:, :, start:end].cumsum(2)  # (B, H, C, D_k)
        D = _causal_decays(log_alpha[:, :, start:end])  # (B, H, C, C, D_k): exp(b_id - b_jd), 0 for j > i
        A = (qc.unsqueeze(3) * kc.unsqueeze(2) * D).sum(-1)  # (B, H, C, C): [i, j] = sum_d q_id k_jd D_ijd
        outputs.append((qc * b.exp()) @ S + A @ vc)
        to_end = D[:, :, -1]  # (B, H, C, D_k): exp(b_{C-1} - b_j), per key dim
        S = b[:, :, -1].exp().unsqueeze(-1) * S + (kc * to_end).transpose(-1, -2) @ vc
    return _finish(outputs, S, v, return_state, cat=True)
