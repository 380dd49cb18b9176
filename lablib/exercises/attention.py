"""Exercise checks for track 1 (linear attention)."""

from __future__ import annotations

import torch

from lablib.attention import (
    LinearAttentionDecoder,
    SoftmaxKVCacheDecoder,
    elu_plus_one,
    linear_attention_chunkwise,
    linear_attention_recurrent,
    linear_attention_reference,
    random_qkv,
)
from lablib.attention.linear import LinearAttentionState
from lablib.exercises import compare_on_cases

__all__ = ["check_recurrent_step", "check_noncausal_linear_attention", "check_chunk_step", "check_crossover_tokens"]


def _heads(seed: int, T: int, d_k: int = 5, d_v: int = 3):
    """Single-head (T, D) inputs, so exercises can be written without batch dims."""
    q, k, v = random_qkv(T, d_k=d_k, d_v=d_v, seed=seed)
    return q[0, 0], k[0, 0], v[0, 0]


def check_recurrent_step(step) -> str:
    """``step(S, z, q_t, k_t, v_t) -> (o_t, S, z)`` for one head, phi = elu+1, normalized.

    Shapes: S (D_k, D_v), z (D_k,), q_t, k_t (D_k,), v_t (D_v,), o_t (D_v,).
    """

    def expected(S, z, q_t, k_t, v_t):
        out, state = linear_attention_recurrent(
            q_t[None, None, None], k_t[None, None, None], v_t[None, None, None],
            initial_state=LinearAttentionState(S[None, None], z[None, None]), return_state=True,
        )
        return out[0, 0, 0], state.kv[0, 0], state.k_sum[0, 0]

    def cases():
        for seed in range(5):
            q, k, v = _heads(seed, T=4)
            S = elu_plus_one(k[:3]).T @ v[:3]  # a state that has already seen three tokens
            z = elu_plus_one(k[:3]).sum(0)
            yield S, z, q[3], k[3], v[3]

    return compare_on_cases("recurrent step", step, expected, cases())


def check_noncausal_linear_attention(fn) -> str:
    """``fn(q, k, v) -> out`` for one head: q, k (T, D_k), v (T, D_v) -> (T, D_v), elu+1, normalized, non-causal."""

    def expected(q, k, v):
        return linear_attention_reference(q[None, None], k[None, None], v[None, None], causal=False)[0, 0]

    return compare_on_cases("non-causal linear attention", fn, expected, (_heads(s, T) for s, T in [(0, 1), (1, 9), (2, 40)]))


def check_chunk_step(chunk_step) -> str:
    """``chunk_step(S, z, Qc, Kc, Vc) -> (Oc, S, z)``: one chunk, inputs already through phi, normalized.

    Shapes: S (F, D_v), z (F,), Qc, Kc (C, F), Vc (C, D_v), Oc (C, D_v). C may be any size.
    """
    identity = lambda x: x  # noqa: E731 - the inputs are already feature-mapped

    def expected(S, z, Qc, Kc, Vc):
        out, state = linear_attention_chunkwise(
            Qc[None, None], Kc[None, None], Vc[None, None], feature_map=identity, chunk_size=Qc.shape[0],
            initial_state=LinearAttentionState(S[None, None], z[None, None]), return_state=True,
        )
        return out[0, 0], state.kv[0, 0], state.k_sum[0, 0]

    def cases():
        for seed, C in [(0, 1), (1, 4), (2, 7)]:
            q, k, v = _heads(seed, T=C + 5)
            fq, fk = elu_plus_one(q), elu_plus_one(k)
            yield fk[:5].T @ v[:5], fk[:5].sum(0), fq[5:], fk[5:], v[5:]

    return compare_on_cases("chunk step", chunk_step, expected, cases())


def check_crossover_tokens(crossover) -> str:
    """``crossover(d) -> int``: the first token count at which a softmax KV cache (keys and values of
    size d) holds more bytes than the linear-attention state (d x d matrix plus d normalizer), one head.
    Checked against the two decoders' measured ``nbytes``."""
    for d in (4, 16, 64):
        linear = LinearAttentionDecoder(1, 1, d, d)
        cache = SoftmaxKVCacheDecoder()
        first = None
        for t in range(1, 2 * d + 4):
            q = torch.zeros(1, 1, 1, d)
            cache.step(q, q, q)
            if cache.nbytes > linear.nbytes:
                first = t
                break
        got = crossover(d)
        if got != first:
            raise AssertionError(f"crossover({d}) = {got}, but the decoders cross at {first} tokens")
    return "✓ crossover: matches the decoders' measured memory for d = 4, 16, 64"
