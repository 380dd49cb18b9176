"""The t5_02 exercise checks accept correct solutions and reject plausible wrong ones."""

import numpy as np
import pytest

from lablib.exercises.forecast import check_dlinear_as_linear, check_moving_average, check_seasonal_naive
from lablib.forecast import moving_average_matrix


def good_moving_average(X, kernel):
    half = (kernel - 1) // 2
    padded = np.concatenate([np.repeat(X[:, :1], half, 1), X, np.repeat(X[:, -1:], half, 1)], axis=1)
    return np.stack([padded[:, t:t + kernel].mean(axis=1) for t in range(X.shape[1])], axis=1)


def zero_padded_moving_average(X, kernel):  # np.convolve's "same": pads with zeros, not the end values
    return np.stack([np.convolve(row, np.ones(kernel) / kernel, mode="same") for row in X])


def good_dlinear_as_linear(W_t, W_s, kernel):
    A = moving_average_matrix(W_t.shape[1], kernel)
    return W_t @ A + W_s @ (np.eye(A.shape[0]) - A)


def transposed_dlinear_as_linear(W_t, W_s, kernel):  # A on the wrong side
    A = moving_average_matrix(W_t.shape[1], kernel)
    return W_t @ A.T + W_s @ (np.eye(A.shape[0]) - A.T)


def good_seasonal_naive(X, horizon, period):
    return X[:, X.shape[1] - period + np.arange(horizon) % period]


def first_season_naive(X, horizon, period):  # repeats the *first* season of the window
    return X[:, np.arange(horizon) % period]


def test_checks_accept_correct_solutions():
    assert check_moving_average(good_moving_average).startswith("✓")
    assert check_dlinear_as_linear(good_dlinear_as_linear).startswith("✓")
    assert check_seasonal_naive(good_seasonal_naive).startswith("✓")


@pytest.mark.parametrize("check, wrong", [(check_moving_average, zero_padded_moving_average),
                                          (check_dlinear_as_linear, transposed_dlinear_as_linear),
                                          (check_dlinear_as_linear, lambda W_t, W_s, k: W_t + W_s),
                                          (check_seasonal_naive, first_season_naive)])
def test_checks_reject_wrong_solutions(check, wrong):
    with pytest.raises(AssertionError):
        check(wrong)
