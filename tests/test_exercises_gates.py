"""The chapter 3 exercise checks accept a correct solution and reject a plausible wrong one."""

import math

import pytest
import torch

from lablib.exercises.gates import check_decay_mask, check_gated_step, check_half_life


def good_step(S, q, k, v, log_a):
    S = log_a.exp() * S + torch.outer(k, v)
    return q @ S, S


def step_decaying_the_new_memory(S, q, k, v, log_a):  # gates the write too
    S = log_a.exp() * (S + torch.outer(k, v))
    return q @ S, S


def good_mask(log_a):
    T = log_a.shape[0]
    seg = log_a[:, None].expand(T, T).masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(-1), 0.0).cumsum(0)
    return seg.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf")).exp()


def mask_as_ratio_of_products(log_a):  # exp(b_t) / exp(b_s): 0/0 once the gates are strong
    P = log_a.cumsum(0).exp()
    return (P[:, None] / P[None, :]).tril()


def mask_as_difference_of_cumsums(log_a):  # log space, but b_t - b_s cancels after a near-reset
    b = log_a.cumsum(0)
    diff = (b[:, None] - b[None, :]).masked_fill(~torch.ones(len(b), len(b), dtype=torch.bool).tril(), float("-inf"))
    return diff.exp()


def test_checks_accept_correct_solutions():
    assert check_gated_step(good_step).startswith("✓")
    assert check_decay_mask(good_mask).startswith("✓")
    assert check_half_life(lambda a: math.log(2) / -math.log(a)).startswith("✓")


def test_checks_reject_wrong_solutions():
    with pytest.raises(AssertionError, match="gated step"):
        check_gated_step(step_decaying_the_new_memory)
    with pytest.raises(AssertionError, match="decay mask"):
        check_decay_mask(mask_as_ratio_of_products)
    with pytest.raises(AssertionError, match="decay mask"):
        check_decay_mask(mask_as_difference_of_cumsums)
    with pytest.raises(AssertionError, match=r"half_life\(0.5\)"):
        check_half_life(lambda a: math.log(2) / (1 - a))  # the small-(1 - a) approximation
