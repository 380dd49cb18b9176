"""The t1_06 exercise checks accept correct solutions and reject plausible wrong ones."""

import pytest
import torch

from lablib.exercises.recall import check_recall_accuracy, check_state_bytes


def good_accuracy(logits, labels):
    mask = labels != -100
    return (logits.argmax(-1)[mask] == labels[mask]).float().mean().item()


def accuracy_over_all_positions(logits, labels):  # counts the unlabelled positions as misses
    return (logits.argmax(-1) == labels).float().mean().item()


def good_bytes(mixer, d, h, T, conv):
    per_layer = {"softmax": 2 * T * d, "linear": d * d // h + d, "deltanet": d * d // h}[mixer]
    return 2 * 4 * (per_layer + 3 * (conv - 1) * d * (conv > 0))


def bytes_without_conv_caches(mixer, d, h, T, conv):
    return good_bytes(mixer, d, h, T, 0)


def bytes_as_if_one_head(mixer, d, h, T, conv):  # the classic mistake: H * (d/H)^2 taken as d^2
    return good_bytes(mixer, d, 1, T, conv)


def test_checks_accept_correct_solutions():
    assert check_recall_accuracy(good_accuracy).startswith("✓")
    assert check_state_bytes(good_bytes).startswith("✓")


@pytest.mark.parametrize("check, wrong", [(check_recall_accuracy, accuracy_over_all_positions),
                                          (check_state_bytes, bytes_without_conv_caches),
                                          (check_state_bytes, bytes_as_if_one_head)])
def test_checks_reject_wrong_solutions(check, wrong):
    with pytest.raises(AssertionError):
        check(wrong)
