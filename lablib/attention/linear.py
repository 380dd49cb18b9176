"""Linear attention in four forms that compute the same thing.

With a feature map phi, attention's output for query i is (Katharopoulos et al., 2020, eq. 2-4)

    o_i = sum_j phi(q_i).phi(k_j) v_j  /  sum_j phi(q_i).phi(k_j)

where j runs over all keys (non-causal) or j <= i (causal). Because phi(q_i) does not
depend on j it can be pulled out of both sums:

    o_i = phi(q_i)^T S_i / phi(q_i)^T z_i,   S_i = sum_j phi(k_j) v_j^T,   z_i = sum_j phi(k_j)

and in the causal case S_i = S_{i-1} + phi(k_i) v_i^T is a recurrence: linear attention is
an RNN whose hidden state S is a (D_k x D_v) matrix.

* ``linear_attention_reference``: the first equation, one query at a time. The truth.
* ``linear_attention_parallel``:  (phi(Q) phi(K)^T * mask) V, quadratic in T, all matmuls.
* ``linear_attention_recurrent``: the RNN, one token at a time, O(T) time, O(1) state.
* ``linear_attention_chunkwise``: the RNN over chunks of C tokens, matmuls inside each chunk.

All take q (B, H, T, D_k), k (B, H, T, D_k), v (B, H, T, D_v) and return (B, H, T, D_v).
With ``normalize=True`` the output is divided by the normalizer phi(q_i)^T z_i + eps.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from lablib._checks import check_qkv
from lablib.attention.feature_maps import FeatureMap, resolve_feature_map

__all__ = [
    "LinearAttentionState",
    "linear_attention_reference",
    "linear_attention_parallel",
    "linear_attention_recurrent",
    "linear_attention_chunkwise",
    "linear_attention",
]

DEFAULT_EPS = 1e-6


class LinearAttentionState(NamedTuple):
    """The RNN state after some prefix of keys and values.

    kv:    (B, H, D_k, D_v)  S = sum_j phi(k_j) v_j^T, the fast-weight memory.
    k_sum: (B, H, D_k)       z = sum_j phi(k_j), the normalizer's running sum.
    """

    kv: torch.Tensor
    k_sum: torch.Tensor

    @classmethod
    def zeros(cls, B: int, H: int, d_k: int, d_v: int, *, dtype=torch.float32, device=None) -> "LinearAttentionState":
        return cls(
            torch.zeros(B, H, d_k, d_v, dtype=dtype, device=device),
            torch.zeros(B, H, d_k, dtype=dtype, device=device),
        )

    @property
    def nbytes(self) -> int:
        """Memory held by the state; independent of how many tokens it has absorbed."""
        return self.kv.numel() * self.kv.element_size() + self.k_sum.numel() * self.k_sum.element_size()


def _check_state(state: LinearAttentionState, fk: torch.Tensor, v: torch.Tensor) -> None:
    B, H, _, F = fk.shape
    want_kv, want_z = (B, H, F, v.shape[-1]), (B, H, F)
    if not isinstance(state, LinearAttentionState):
        raise TypeError(f"initial_state must be a LinearAttentionState; got {type(state).__name__}")
    if tuple(state.kv.shape) != want_kv or tuple(state.k_sum.shape) != want_z:
        raise ValueError(
            f"initial_state shapes must be kv {want_kv} and k_sum {want_z} (B, H, D_k after phi, D_v); "
            f"got kv {tuple(state.kv.shape)} and k_sum {tuple(state.k_sum.shape)}"
        )


def _readout(num: torch.Tensor, den: torch.Tensor, normalize: bool, eps: float) -> torch.Tensor:
    return num / (den.unsqueeze(-1) + eps) if normalize else num


def linear_attention_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    feature_map: str | FeatureMap = "elu+1",
    causal: bool = True,
    normalize: bool = True,
    eps: float = DEFAULT_EPS,
) -> torch.Tensor:
    """Attention with the kernel similarity phi(q).phi(k), literally: one query at a time.

    o_i = sum_j w_ij v_j / (sum_j w_ij + eps) with w_ij = phi(q_i).phi(k_j), j <= i if causal.
    Shapes as in the module docstring. O(T^2) time; written for clarity, not speed.
    """
    check_qkv(q, k, v, causal=causal)
    phi = resolve_feature_map(feature_map)
    fq, fk = phi(q), phi(k)
    outputs = []
    for i in range(q.shape[2]):
        keys = fk[:, :, : i + 1] if causal else fk  # (B, H, J, F)
        values = v[:, :, : i + 1] if causal else v  # (B, H, J, D_v)
        w = (fq[:, :, i : i + 1] * keys).sum(-1)  # (B, H, J): similarity of query i to each key
        num = (w.unsqueeze(-1) * values).sum(2)  # (B, H, D_v)
        outputs.append(_readout(num, w.sum(-1), normalize, eps))
    if not outputs:  # no queries (T_q = 0): an empty (B, H, 0, D_v), as the other forms return
        return v.new_zeros(*v.shape[:2], 0, v.shape[-1])
    return torch.stack(outputs, dim=2)


def linear_attention_parallel(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    feature_map: str | FeatureMap = "elu+1",
    causal: bool = True,
    normalize: bool = True,
    eps: float = DEFAULT_EPS,
) -> torch.Tensor:
    """The parallel (training) form: (phi(Q) phi(K)^T * M) V with M the causal mask.

    Like softmax attention it builds the (T x T) score matrix: O(T^2 D) time, O(T^2) memory,
    but only matmuls, so it is fast for short sequences. Non-causal attention instead uses
    associativity, phi(Q) (phi(K)^T V), which is O(T D^2).
    """
    check_qkv(q, k, v, causal=causal)
    phi = resolve_feature_map(feature_map)
    fq, fk = phi(q), phi(k)
    if not causal:
        kv = fk.transpose(-1, -2) @ v  # (B, H, F, D_v): the whole sequence's state at once
        return _readout(fq @ kv, (fq * fk.sum(2, keepdim=True)).sum(-1), normalize, eps)
    T = q.shape[2]
    mask = torch.ones(T, T, dtype=torch.bool, device=q.device).tril()
    scores = (fq @ fk.transpose(-1, -2)).masked_fill(~mask, 0.0)  # (B, H, T, T)
    return _readout(scores @ v, scores.sum(-1), normalize, eps)


def linear_attention_recurrent(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    feature_map: str | FeatureMap = "elu+1",
    causal: bool = True,
    normalize: bool = True,
    eps: float = DEFAULT_EPS,
    initial_state: LinearAttentionState | None = None,
    return_state: bool = False,
):
    """The recurrent (RNN) form: S_t = S_{t-1} + phi(k_t) v_t^T, o_t = phi(q_t)^T S_t / phi(q_t)^T z_t.

    O(T D_k D_v) time and an O(D_k D_v) state, whatever T is. ``initial_state`` continues
    from an earlier prefix; ``return_state=True`` returns ``(out, final_state)``.
    Non-causal: the whole sequence is absorbed first, then every query reads the final state.
    """
    check_qkv(q, k, v, causal=causal)
    phi = resolve_feature_map(feature_map)
    fq, fk = phi(q), phi(k)
    B, H, T, F = fk.shape
    if initial_state is None:
        initial_state = LinearAttentionState.zeros(B, H, F, v.shape[-1], dtype=v.dtype, device=v.device)
    _check_state(initial_state, fk, v)
    S, z = initial_state

    def absorb(S, z, t):
        return S + fk[:, :, t, :, None] * v[:, :, t, None, :], z + fk[:, :, t]

    def read(S, z, fq_t):  # fq_t: (B, H, F)
        num = (fq_t.unsqueeze(-1) * S).sum(-2)  # phi(q)^T S: (B, H, D_v)
        return _readout(num, (fq_t * z).sum(-1), normalize, eps)

    outputs = []
    if causal:
        for t in range(T):
            S, z = absorb(S, z, t)
            outputs.append(read(S, z, fq[:, :, t]))
    else:
        for t in range(T):
            S, z = absorb(S, z, t)
        outputs = [read(S, z, fq[:, :, i]) for i in range(fq.shape[2])]
    out = torch.stack(outputs, dim=2) if outputs else v.new_zeros(B, H, 0, v.shape[-1])
    return (out, LinearAttentionState(S, z)) if return_state else out


def linear_attention_chunkwise(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    feature_map: str | FeatureMap = "elu+1",
    causal: bool = True,
    normalize: bool = True,
    eps: float = DEFAULT_EPS,
    chunk_size: int = 64,
    initial_state: LinearAttentionState | None = None,
    return_state: bool = False,
):
    """The chunkwise form: the RNN steps over chunks of C tokens instead of single tokens.

    For chunk c holding queries Q_c, keys K_c, values V_c (after phi) and the state S entering it:

        O_c = Q_c S  +  (Q_c K_c^T * M_C) V_c      (inter-chunk: the past; intra-chunk: parallel form)
        S  <- S + K_c^T V_c

    Every step is a matmul with C rows, so the loop runs T / C times instead of T; choosing C
    trades the parallel form's O(T C) work against the recurrence's T / C sequential steps.
    T need not be a multiple of C (the last chunk is shorter). Returns like the recurrent form.
    """
    check_qkv(q, k, v, causal=causal)
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int; got {chunk_size!r}")
    phi = resolve_feature_map(feature_map)
    fq, fk = phi(q), phi(k)
    B, H, T, F = fk.shape
    if initial_state is None:
        initial_state = LinearAttentionState.zeros(B, H, F, v.shape[-1], dtype=v.dtype, device=v.device)
    _check_state(initial_state, fk, v)
    S, z = initial_state
    if not causal:
        S = S + fk.transpose(-1, -2) @ v
        z = z + fk.sum(2)
        out = _readout(fq @ S, (fq * z.unsqueeze(2)).sum(-1), normalize, eps)
        return (out, LinearAttentionState(S, z)) if return_state else out

    mask = torch.ones(chunk_size, chunk_size, dtype=torch.bool, device=q.device).tril()
    outputs = []
    for start in range(0, T, chunk_size):
        end = min(start + chunk_size, T)
        qc, kc, vc = fq[:, :, start:end], fk[:, :, start:end], v[:, :, start:end]
        scores = (qc @ kc.transpose(-1, -2)).masked_fill(~mask[: end - start, : end - start], 0.0)
        num = qc @ S + scores @ vc  # (B, H, C, D_v): past chunks + this chunk
        den = (qc * z.unsqueeze(2)).sum(-1) + scores.sum(-1)  # (B, H, C)
        outputs.append(_readout(num, den, normalize, eps))
        S = S + kc.transpose(-1, -2) @ vc
        z = z + kc.sum(2)
    out = torch.cat(outputs, dim=2) if outputs else v.new_zeros(B, H, 0, v.shape[-1])
    return (out, LinearAttentionState(S, z)) if return_state else out


_FORMS = {
    "reference": linear_attention_reference,
    "parallel": linear_attention_parallel,
    "recurrent": linear_attention_recurrent,
    "chunkwise": linear_attention_chunkwise,
}


def linear_attention(q, k, v, *, form: str = "chunkwise", **kwargs) -> torch.Tensor:
    """Dispatch to one of the forms by name: 'reference', 'parallel', 'recurrent' or 'chunkwise'."""
    try:
        fn = _FORMS[form]
    except KeyError:
        raise ValueError(f"unknown form {form!r}; choose one of {sorted(_FORMS)}") from None
    return fn(q, k, v, **kwargs)
