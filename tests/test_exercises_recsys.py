"""The track 5 exercise checks accept correct solutions and reject plausible wrong ones."""

import numpy as np
import pytest

from lablib.exercises.recsys import check_ease_weights, check_recall_at_k
from lablib.recsys.metrics import recall_at_k


def good_ease(X, lam):
    P = np.linalg.inv(X.T @ X + lam * np.eye(X.shape[1]))
    B = -P / np.diag(P)
    np.fill_diagonal(B, 0.0)
    return B


def ridge_without_constraint(X, lam):  # plain ridge regression of X on itself: diag(B) != 0
    G = X.T @ X
    return np.linalg.solve(G + lam * np.eye(G.shape[0]), G)


def good_recall(scores, heldout, seen, k):
    return recall_at_k(scores, heldout, k, seen)


def recall_normalized_by_heldout_count(scores, heldout, seen, k):  # not by min(K, |heldout|)
    return recall_at_k(scores, heldout, k, seen) * np.minimum(k, heldout.sum(1)) / heldout.sum(1)


def test_checks_accept_correct_solutions():
    assert check_ease_weights(good_ease).startswith("✓")
    assert check_recall_at_k(good_recall).startswith("✓")


@pytest.mark.parametrize("check, wrong", [(check_ease_weights, ridge_without_constraint),
                                          (check_recall_at_k, recall_normalized_by_heldout_count)])
def test_checks_reject_wrong_solutions(check, wrong):
    with pytest.raises(AssertionError):
        check(wrong)
