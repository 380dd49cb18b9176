"""The t1_05 exercise checks accept correct solutions and reject plausible wrong ones."""

import math

import pytest
import torch

from lablib.exercises.feature_maps import (
    check_cosformer_map,
    check_linear_attention_weights,
    check_positive_random_features,
)


def good_cosformer(x, max_len):
    angle = math.pi * torch.arange(x.shape[0], dtype=x.dtype)[:, None] / (2 * max_len)
    r = torch.relu(x)
    return torch.cat([r * torch.sin(angle), r * torch.cos(angle)], dim=-1)


def cosformer_positions_from_one(x, max_len):  # positions 1 .. T instead of 0 .. T-1
    angle = math.pi * torch.arange(1, x.shape[0] + 1, dtype=x.dtype)[:, None] / (2 * max_len)
    r = torch.relu(x)
    return torch.cat([r * torch.sin(angle), r * torch.cos(angle)], dim=-1)


def cosformer_without_relu(x, max_len):  # negative features: weights can cancel
    angle = math.pi * torch.arange(x.shape[0], dtype=x.dtype)[:, None] / (2 * max_len)
    return torch.cat([x * torch.sin(angle), x * torch.cos(angle)], dim=-1)


def good_features(x, W):
    return torch.exp(x @ W.T - (x * x).sum(-1, keepdim=True) / 2) / math.sqrt(W.shape[0])


def features_without_norm_correction(x, W):  # drops exp(-|x|^2 / 2): biased
    return torch.exp(x @ W.T) / math.sqrt(W.shape[0])


def good_weights(fq, fk):
    s = (fq @ fk.T).tril()
    return s / s.sum(-1, keepdim=True)


def weights_normalized_over_all_keys(fq, fk):  # masks after normalizing: rows no longer sum to 1
    s = fq @ fk.T
    return (s / s.sum(-1, keepdim=True)).tril()


def test_checks_accept_correct_solutions():
    assert check_cosformer_map(good_cosformer).startswith("✓")
    assert check_positive_random_features(good_features).startswith("✓")
    assert check_linear_attention_weights(good_weights).startswith("✓")


@pytest.mark.parametrize("check, wrong", [
    (check_cosformer_map, cosformer_positions_from_one),
    (check_cosformer_map, cosformer_without_relu),
    (check_positive_random_features, features_without_norm_correction),
    (check_linear_attention_weights, weights_normalized_over_all_keys),
])
def test_checks_reject_wrong_solutions(check, wrong):
    with pytest.raises(AssertionError):
        check(wrong)
