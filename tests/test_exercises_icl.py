"""The track 4 exercise checks accept correct solutions and reject plausible wrong ones."""

import pytest
import torch

from lablib.exercises.icl import check_lsa_weights_for_gd, check_one_step_prediction


def good_prediction(xs, ys, x_query, eta):
    h = (xs * ys[..., None]).mean(1)  # (1/N) sum_i y_i x_i
    return eta * (x_query * h).sum(-1)


def prediction_summing_instead_of_averaging(xs, ys, x_query, eta):
    return eta * (x_query * (xs * ys[..., None]).sum(1)).sum(-1)


def good_weights(d, eta):
    W_KQ = torch.zeros(d + 1, d + 1, dtype=torch.float64)
    W_KQ[:d, :d] = -eta * torch.eye(d)
    W_PV = torch.zeros(d + 1, d + 1, dtype=torch.float64)
    W_PV[d, d] = 1.0
    return W_KQ, W_PV


def weights_with_the_wrong_sign(d, eta):  # predicts minus the GD step
    W_KQ, W_PV = good_weights(d, eta)
    return -W_KQ, W_PV


def weights_reading_the_label_row(d, eta):  # scores y_i y_j instead of x_i . x_j
    W_KQ = torch.zeros(d + 1, d + 1, dtype=torch.float64)
    W_KQ[d, d] = -eta
    W_PV = torch.zeros(d + 1, d + 1, dtype=torch.float64)
    W_PV[d, d] = 1.0
    return W_KQ, W_PV


def test_checks_accept_correct_solutions():
    assert check_one_step_prediction(good_prediction).startswith("✓")
    assert check_lsa_weights_for_gd(good_weights).startswith("✓")


@pytest.mark.parametrize(
    "check,wrong",
    [
        (check_one_step_prediction, prediction_summing_instead_of_averaging),
        (check_lsa_weights_for_gd, weights_with_the_wrong_sign),
        (check_lsa_weights_for_gd, weights_reading_the_label_row),
    ],
)
def test_checks_reject_wrong_solutions(check, wrong):
    with pytest.raises(AssertionError):
        check(wrong)


def test_wrong_shapes_are_reported():
    with pytest.raises(AssertionError, match=r"W_KQ should have shape \(d\+1, d\+1\)"):
        check_lsa_weights_for_gd(lambda d, eta: (torch.zeros(d, d), torch.zeros(d + 1, d + 1)))
