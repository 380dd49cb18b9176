"""The chapter 4 exercise checks accept correct solutions and reject plausible wrong ones."""

import pytest
import torch

from lablib.exercises.delta import check_delta_step, check_gated_delta_step, check_wy_factor


def good_step(S, q, k, v, beta):
    S = S + beta * torch.outer(k, v - S.T @ k)  # write only the error
    return S.T @ q, S


def additive_step(S, q, k, v, beta):  # linear attention: adds beta k v^T, never reads
    S = S + beta * torch.outer(k, v)
    return S.T @ q, S


def good_gated_step(S, q, k, v, beta, log_a):
    S = log_a.exp() * S  # decay first, then correct the decayed memory
    S = S + beta * torch.outer(k, v - S.T @ k)
    return S.T @ q, S


def gated_step_error_before_decay(S, q, k, v, beta, log_a):  # reads the undecayed memory
    S = log_a.exp() * S + beta * torch.outer(k, v - S.T @ k)
    return S.T @ q, S


def good_wy(K, beta):
    C = K.shape[0]
    L = torch.tril(beta[:, None] * (K @ K.T), -1)
    return torch.linalg.solve_triangular(torch.eye(C, dtype=K.dtype) + L, beta[:, None] * K, upper=False)


def wy_without_the_solve(K, beta):  # first-order only: drops the interactions between the keys
    return beta[:, None] * K


def wy_upper_triangle(K, beta):  # the keys taken in the wrong order
    C = K.shape[0]
    U = torch.triu(beta[:, None] * (K @ K.T), 1)
    return torch.linalg.solve_triangular(torch.eye(C, dtype=K.dtype) + U, beta[:, None] * K, upper=True)


def test_checks_accept_correct_solutions():
    assert check_delta_step(good_step).startswith("✓")
    assert check_gated_delta_step(good_gated_step).startswith("✓")
    assert check_wy_factor(good_wy).startswith("✓")


@pytest.mark.parametrize(
    "check,wrong",
    [
        (check_delta_step, additive_step),
        (check_gated_delta_step, gated_step_error_before_decay),
        (check_wy_factor, wy_without_the_solve),
        (check_wy_factor, wy_upper_triangle),
    ],
)
def test_checks_reject_wrong_solutions(check, wrong):
    with pytest.raises(AssertionError):
        check(wrong)
