"""The chapter-2 exercise checks accept a correct solution and reject a plausible wrong one."""

import math

import pytest

from lablib.exercises.kernels import check_chunk_dv, check_chunkwise_flops, check_program_count, count_chunkwise_flops


def good_flops(T, C, d_k, d_v):
    return 2 * T * (C * d_k + C * d_v + 2 * d_k * d_v)


def flops_without_state(T, C, d_k, d_v):  # forgets Q S and K^T V
    return 2 * T * (C * d_k + C * d_v)


def good_dv(Q, K, V, dO, dS):
    return K @ dS + (K @ Q.T).triu() @ dO


def dv_with_causal_mask(Q, K, V, dO, dS):  # the forward's mask, not its transpose
    return K @ dS + (K @ Q.T).tril() @ dO


def test_counted_flops_match_the_bench_formula():
    from lablib.bench import flops

    assert count_chunkwise_flops(4096, 64, 64, 32) == flops("linear", "fwd", 1, 1, 4096, 64, 32, 64)
    assert count_chunkwise_flops(37, 16, 16, 16) == count_chunkwise_flops(48, 16, 16, 16)  # last chunk padded


def test_checks_accept_correct_solutions():
    assert check_chunkwise_flops(good_flops).startswith("✓")
    assert check_chunk_dv(good_dv).startswith("✓")
    assert check_program_count(lambda B, H, d_v, BV: B * H * math.ceil(d_v / BV)).startswith("✓")


def test_checks_reject_wrong_solutions():
    with pytest.raises(AssertionError, match="chunkwise flops"):
        check_chunkwise_flops(flops_without_state)
    with pytest.raises(AssertionError, match="chunk dV"):
        check_chunk_dv(dv_with_causal_mask)
    with pytest.raises(AssertionError, match="program count"):
        check_program_count(lambda B, H, d_v, BV: B * H * (d_v // BV))  # floor drops the ragged block


def test_program_count_check_restores_the_kernel():
    import lablib.kernels.linear_attention as module

    kernel = module._chunk_fwd_kernel
    with pytest.raises(AssertionError):
        check_program_count(lambda B, H, d_v, BV: 0)
    assert module._chunk_fwd_kernel is kernel
