"""The delta rule (DeltaNet) and its gated variant: linear attention that overwrites instead of adding.

Linear attention's state S (D_k x D_v) is an associative memory read by o = S^T q. Adding
k_t v_t^T on every step piles new values on top of whatever was stored under similar keys. The
delta rule (Schlag et al., 2021, "Linear Transformers Are Secretly Fast Weight Programmers")
first reads what the memory currently returns for k_t and writes only the correction:

    S_t = S_{t-1} + beta_t k_t (v_t - S_{t-1}^T k_t)^T  =  (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T

which is one step of gradient descent on 1/2 ||S^T k_t - v_t||^2 with learning rate beta_t.
With unit keys (``normalize_keys=True``) and beta_t = 1 the memory then returns v_t for k_t
exactly; beta_t in (1, 2] gives the transition I - beta k k^T a negative eigenvalue 1 - beta_t
(Grazzi et al., 2025), still within [-1, 1] so the state cannot blow up. Gated DeltaNet
(Yang, Kautz & Hatamizadeh, 2024, "Gated Delta Networks") also decays the state:

    S_t = a_t (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T,   a_t = exp(log_decay_t) in (0, 1]

Both read o_t = S_t^T q_t. Shapes: q, k (B, H, T, D_k); v (B, H, T, D_v); beta and log_decay
(B, H, T); the state S (B, H, D_k, D_v); outputs (B, H, T, D_v). The recurrent form is the
truth; the chunkwise form is the WY / UT-transform algorithm of Yang et al., 2024, "Parallelizing
Linear Transformers with the Delta Rule over Sequence Length" (see ``delta_rule_chunkwise``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lablib._checks import check_qkv
from lablib.attention.gated import (
    _causal_decays,
    _check_chunk_size,
    _check_log_gate,
    _check_per_step,
    _finish,
    _initial_state,
    _read,
    _scaled,
)

__all__ = ["delta_rule_recurrent", "delta_rule_chunkwise", "BETA_MAX"]

BETA_MAX = 2.0  # beta in [0, 2] keeps every eigenvalue 1 - beta of I - beta k k^T (unit k) in [-1, 1]
KEY_NORM_EPS = 1e-6


def _prepare(q, k, v, beta, log_decay, normalize_keys):
    """Check the inputs; return the keys to use (L2-normalized if asked)."""
    check_qkv(q, k, v, causal=True)
    _check_per_step(beta, "beta", q)
    if beta.numel() and ((beta < 0).any() or (beta > BETA_MAX).any()):
        raise ValueError(
            f"beta must lie in [0, {BETA_MAX:g}]; got values in [{beta.min().item():.4g}, {beta.max().item():.4g}] "
            f"in beta of shape {tuple(beta.shape)}"
        )
    if log_decay is not None:
        _check_log_gate(log_decay, "log_decay", q)
    return F.normalize(k, dim=-1, eps=KEY_NORM_EPS) if normalize_keys else k


def delta_rule_recurrent(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    beta: torch.Tensor,
    *,
    log_decay: torch.Tensor | None = None,
    initial_state: torch.Tensor | None = None,
    return_state: bool = False,
    normalize_keys: bool = True,
    scale: float | None = None,
):
    """DeltaNet (or, with ``log_decay``, Gated DeltaNet), one token at a time.

        S_t = a_t S_{t-1} + beta_t k_t (v_t - a_t S_{t-1}^T k_t)^T     (a_t = 1 without log_decay)
            = a_t (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T
        o_t = S_t^T (scale q_t)

    q, k (B, H, T, D_k); v (B, H, T, D_v); beta (B, H, T) in [0, 2]; log_decay (B, H, T),
    finite and <= 0, or None; initial_state S_0 (B, H, D_k, D_v), zeros if None. Keys are
    L2-normalized over D_k when ``normalize_keys`` (queries are used as given); scale defaults to 1.
    Returns out (B, H, T, D_v), or (out, S_T) with ``return_state=True``.
    """
    k = _prepare(q, k, v, beta, log_decay, normalize_keys)
    S = _initial_state(initial_state, q, v)
    q = _scaled(q, scale)
    a = None if log_decay is None else log_decay.exp()
    outputs = []
    for t in range(q.shape[2]):
        k_t, v_t = k[:, :, t], v[:, :, t]  # (B, H, D_k), (B, H, D_v)
        if a is not None:
            S = a[:, :, t, None, None] * S
        error = v_t - _read(S, k_t)  # v_t - S^T k_t: what the memory should return minus what it does
        S = S + beta[:, :, t, None, None] * k_t.unsqueeze(-1) * error.unsqueeze(-2)
        outputs.append(_read(S, q[:, :, t]))
    return _finish(outputs, S, v, return_state, cat=False)


def delta_rule_chunkwise(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    beta: torch.Tensor,
    *,
    log_decay: torch.Tensor | None = None,
    chunk_size: int = 64,
    initial_state: torch.Tensor | None = None,
    return_state: bool = False,
    normalize_keys: bool = True,
    scale: float | None = None,
):
    """The delta rule over chunks of C tokens (WY representation + UT transform); same result as the recurrence.

    Derivation, for one chunk with entering state S_0 and rows q_i, k_i, v_i (i = 1..C), with
    cumulative log decays b_i = sum_{s <= i} log a_s (all b = 0 without gating), g_i = exp(b_i):

    1. Write the error term of step i as r_i = beta_i (v_i - a_i S_{i-1}^T k_i). Then by induction
       S_i = g_i S_0 + sum_{j <= i} exp(b_i - b_j) k_j r_j^T: the state is the decayed S_0 plus
       ordinary (gated) linear attention over the keys k_j with "pseudo-values" r_j.
    2. Substituting that S_{i-1} into r_i gives a unit lower-triangular system for R (C x D_v):
           r_i + beta_i sum_{j < i} exp(b_i - b_j) (k_i . k_j) r_j = beta_i v_i - beta_i g_i k_i^T S_0
       i.e. (I + L) R = diag(beta) V - diag(beta) diag(g) K S_0, L = tril(diag(beta) (K K^T * D), -1).
    3. UT transform: T = (I + L)^{-1} diag(beta) by one triangular solve; then U = T V and
       W = T (g * K), so R = U - W S_0. With V = 0 and no decay this says the chunk's product of
       transitions is P_C ... P_1 = I - K^T W (P_i = I - beta_i k_i k_i^T): the WY representation,
       written I - W^T K in the paper, whose state is S^T and is multiplied from the right.
    4. Then, as for gated linear attention (D_ij = exp(b_i - b_j) for j <= i, else 0):
           O  = (Q * g) S_0 + (Q K^T * D) R
           S <- g_C S_0 + (K * exp(b_C - b))^T R

    D is formed in log space (segment sums of the log gates, masked to -inf above the diagonal
    before exp; see lablib.attention.gated), so strong decay cannot overflow. Arguments as in ``delta_rule_recurrent``, plus ``chunk_size``; T need not
    be a multiple of it.
    """
    k = _prepare(q, k, v, beta, log_decay, normalize_keys)
    _check_chunk_size(chunk_size)
    S = _initial_state(initial_state, q, v)
    q = _scaled(q, scale)
    T = q.shape[2]
    eye = torch.eye(chunk_size, dtype=q.dtype, device=q.device)
    outputs = []
    for start in range(0, T, chunk_size):
        end = min(start + chunk_size, T)
        C = end - start
        qc, kc, vc, bc = q[:, :, start:end], k[:, :, start:end], v[:, :, start:end], beta[:, :, start:end]
        log_a = torch.zeros_like(bc) if log_decay is None else log_decay[:, :, start:end]
        b = log_a.cumsum(-1)  # (B, H, C): log of the decay since the chunk began
        D = _causal_decays(log_a)  # (B, H, C, C): exp(b_i - b_j) for j <= i, else 0
        g = b.exp().unsqueeze(-1)  # (B, H, C, 1): decay from the chunk's start to position i

        # UT transform: T = (I + tril(diag(beta) (K K^T * D), -1))^{-1} diag(beta)
        L = (bc.unsqueeze(-1) * (kc @ kc.transpose(-1, -2)) * D).tril(-1)
        T_mat = torch.linalg.solve_triangular(eye[:C, :C] + L, torch.diag_embed(bc), upper=False)
        W = T_mat @ (g * kc)  # (B, H, C, D_k)
        U = T_mat @ vc  # (B, H, C, D_v)
        R = U - W @ S  # pseudo-values r_i = beta_i (v_i - a_i S_{i-1}^T k_i)

        outputs.append((qc * g) @ S + ((qc @ kc.transpose(-1, -2)) * D) @ R)
        to_end = D[:, :, -1]  # (B, H, C): exp(b_C - b_j), the decay from j to the chunk's end
        S = b[:, :, -1:].exp().unsqueeze(-1) * S + (kc * to_end.unsqueeze(-1)).transpose(-1, -2) @ R
    return _finish(outputs, S, v, return_state, cat=True)
