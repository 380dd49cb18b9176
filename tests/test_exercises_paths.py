"""The t5_04 exercise checks accept correct solutions and reject plausible wrong ones."""

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from lablib.exercises.paths import check_barrier, check_match_one_layer, check_permute_hidden


def good_barrier(values, alphas):
    return float(np.max(values - ((1 - alphas) * values[0] + alphas * values[-1])))


def barrier_above_the_mean(values, alphas):  # Frankle et al.'s reference, not the chord
    return float(np.max(values) - 0.5 * (values[0] + values[-1]))


def good_permute(params, perms):
    out = dict(params)
    for layer, p in enumerate(perms):
        out[f"W{layer}"] = out[f"W{layer}"][p]
        out[f"b{layer}"] = out[f"b{layer}"][p]
        out[f"W{layer + 1}"] = out[f"W{layer + 1}"][:, p]
    return out


def permute_forgetting_next_layer(params, perms):
    out = dict(params)
    for layer, p in enumerate(perms):
        out[f"W{layer}"] = out[f"W{layer}"][p]
        out[f"b{layer}"] = out[f"b{layer}"][p]
    return out


def good_match(a, b):
    cost = a["W0"] @ b["W0"].T + np.outer(a["b0"], b["b0"]) + a["W1"].T @ b["W1"]
    return linear_sum_assignment(cost.numpy(), maximize=True)[1]


def match_first_layer_only(a, b):
    return linear_sum_assignment((a["W0"] @ b["W0"].T).numpy(), maximize=True)[1]


def test_checks_accept_correct_solutions():
    assert check_barrier(good_barrier).startswith("✓")
    assert check_permute_hidden(good_permute).startswith("✓")
    assert check_match_one_layer(good_match).startswith("✓")


@pytest.mark.parametrize("check, wrong", [(check_barrier, barrier_above_the_mean),
                                          (check_permute_hidden, permute_forgetting_next_layer),
                                          (check_match_one_layer, match_first_layer_only)])
def test_checks_reject_wrong_solutions(check, wrong):
    with pytest.raises(AssertionError):
        check(wrong)
