"""The exercise checks accept a correct solution and reject a plausible wrong one."""

import pytest
import torch

from lablib.attention import elu_plus_one
from lablib.exercises.attention import (
    check_chunk_step,
    check_crossover_tokens,
    check_noncausal_linear_attention,
    check_recurrent_step,
)


def good_step(S, z, q, k, v):
    fq, fk = elu_plus_one(q), elu_plus_one(k)
    S, z = S + torch.outer(fk, v), z + fk
    return (fq @ S) / (fq @ z + 1e-6), S, z


def step_reading_old_state(S, z, q, k, v):  # reads before writing: misses the current token
    fq, fk = elu_plus_one(q), elu_plus_one(k)
    o = (fq @ S) / (fq @ z + 1e-6)
    return o, S + torch.outer(fk, v), z + fk


def good_noncausal(q, k, v):
    fq, fk = elu_plus_one(q), elu_plus_one(k)
    return (fq @ (fk.T @ v)) / (fq @ fk.sum(0) + 1e-6).unsqueeze(-1)


def good_chunk(S, z, Q, K, V):
    A = (Q @ K.T).tril()
    return (Q @ S + A @ V) / (Q @ z + A.sum(-1) + 1e-6).unsqueeze(-1), S + K.T @ V, z + K.sum(0)


def chunk_without_mask(S, z, Q, K, V):
    A = Q @ K.T
    return (Q @ S + A @ V) / (Q @ z + A.sum(-1) + 1e-6).unsqueeze(-1), S + K.T @ V, z + K.sum(0)


def test_checks_accept_correct_solutions():
    assert check_recurrent_step(good_step).startswith("✓")
    assert check_noncausal_linear_attention(good_noncausal).startswith("✓")
    assert check_chunk_step(good_chunk).startswith("✓")
    assert check_crossover_tokens(lambda d: (d + 1) // 2 + 1).startswith("✓")


def test_checks_reject_wrong_solutions():
    with pytest.raises(AssertionError, match="recurrent step"):
        check_recurrent_step(step_reading_old_state)
    with pytest.raises(AssertionError, match="non-causal"):
        check_noncausal_linear_attention(lambda q, k, v: good_noncausal(q, k, v)[:, :1])
    with pytest.raises(AssertionError, match="chunk step"):
        check_chunk_step(chunk_without_mask)
    with pytest.raises(AssertionError, match=r"crossover\(4\)"):
        check_crossover_tokens(lambda d: d)
