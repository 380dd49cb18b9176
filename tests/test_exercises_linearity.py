"""The t5_03 exercise checks accept correct solutions and reject plausible wrong ones."""

import pytest
import torch

from lablib.exercises.linearity import check_affine_fit, check_linearity_score, check_procrustes_score


def good_score(X, Y):
    X = X - X.mean(0)
    Y = Y - Y.mean(0)
    X, Y = X / X.norm(), Y / Y.norm()
    A = torch.linalg.lstsq(X, Y).solution
    return float(1 - (X @ A - Y).pow(2).sum())


def score_without_centring(X, Y):
    X, Y = X / X.norm(), Y / Y.norm()
    A = torch.linalg.lstsq(X, Y).solution
    return float(1 - (X @ A - Y).pow(2).sum())


def score_normalized_per_column(X, Y):  # z-scores every column of Y: its dimensions weigh equally
    X = (X - X.mean(0)) / X.std(0)
    Y = (Y - Y.mean(0)) / Y.std(0)
    A = torch.linalg.lstsq(X, Y).solution
    return float(1 - (X @ A - Y).pow(2).sum() / Y.pow(2).sum())


def good_affine(X, Y):
    mx, my = X.mean(0), Y.mean(0)
    A = torch.linalg.lstsq(X - mx, Y - my).solution
    return A, my - mx @ A


def affine_without_intercept(X, Y):
    return torch.linalg.lstsq(X, Y).solution, torch.zeros(Y.shape[1], dtype=X.dtype)


def good_procrustes(X, Y):
    X = X - X.mean(0)
    Y = Y - Y.mean(0)
    X, Y = X / X.norm(), Y / Y.norm()
    U, _, Vh = torch.linalg.svd(X.T @ Y)
    return float(1 - (X @ (U @ Vh) - Y).pow(2).sum())


def test_checks_accept_correct_solutions():
    assert check_linearity_score(good_score).startswith("✓")
    assert check_affine_fit(good_affine).startswith("✓")
    assert check_procrustes_score(good_procrustes).startswith("✓")


@pytest.mark.parametrize("check, wrong", [
    (check_linearity_score, score_without_centring),
    (check_linearity_score, score_normalized_per_column),
    (check_affine_fit, affine_without_intercept),
    (check_procrustes_score, good_score),  # an unconstrained map is not a rotation
])
def test_checks_reject_wrong_solutions(check, wrong):
    with pytest.raises(AssertionError):
        check(wrong)


def test_checks_reject_malformed_returns():
    with pytest.raises(AssertionError, match="pair"):
        check_affine_fit(lambda X, Y: torch.zeros(X.shape[1], Y.shape[1]))
    with pytest.raises(AssertionError, match="one number"):
        check_linearity_score(lambda X, Y: None)
