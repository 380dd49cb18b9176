"""The t1_07 exercise checks accept correct solutions and reject plausible wrong ones."""

import math

import pytest
import torch

from lablib.exercises.linearize import check_hybrid_weights, check_lora_forward, check_window_mask


def good_mask(T, window, causal):
    i = torch.arange(T)
    near = (i[:, None] - i[None, :]).abs() < window
    return near & (i[:, None] >= i[None, :]) if causal else near


def mask_one_too_wide(T, window, causal):
    return good_mask(T, window + 1, causal)


def mask_forgets_causality(T, window, causal):
    return good_mask(T, window, False)


def good_hybrid(q, k, fq, fk, window, gamma):
    T = q.shape[0]
    i = torch.arange(T)
    near = (i[:, None] - i[None, :] >= 0) & (i[:, None] - i[None, :] < window)
    far = i[:, None] - i[None, :] >= window
    s = (q @ k.T / math.sqrt(q.shape[1])).masked_fill(~near, float("-inf"))
    a = gamma * torch.exp(s - s.max(-1, keepdim=True).values) + (fq @ fk.T) * far
    return a / a.sum(-1, keepdim=True)


def hybrid_normalized_separately(q, k, fq, fk, window, gamma):
    T = q.shape[0]
    i = torch.arange(T)
    near = (i[:, None] - i[None, :] >= 0) & (i[:, None] - i[None, :] < window)
    far = i[:, None] - i[None, :] >= window
    s = (q @ k.T / math.sqrt(q.shape[1])).masked_fill(~near, float("-inf"))
    lin = (fq @ fk.T) * far
    lin = lin / lin.sum(-1, keepdim=True).clamp_min(1e-30)
    return gamma * s.softmax(-1) + (1 - gamma) * lin


def good_lora(x, W, b, A, B, alpha):
    return x @ W.T + b + (alpha / A.shape[0]) * (x @ A.T) @ B.T


def lora_without_scale(x, W, b, A, B, alpha):
    return x @ W.T + b + (x @ A.T) @ B.T


def test_checks_accept_correct_solutions():
    assert check_window_mask(good_mask).startswith("✓")
    assert check_hybrid_weights(good_hybrid).startswith("✓")
    assert check_lora_forward(good_lora).startswith("✓")


@pytest.mark.parametrize("wrong", [mask_one_too_wide, mask_forgets_causality])
def test_window_mask_rejects(wrong):
    with pytest.raises(AssertionError, match="window mask"):
        check_window_mask(wrong)


def test_hybrid_rejects_separate_normalization():
    with pytest.raises(AssertionError, match="hybrid weights"):
        check_hybrid_weights(hybrid_normalized_separately)


def test_lora_rejects_missing_scale():
    with pytest.raises(AssertionError, match="LoRA forward"):
        check_lora_forward(lora_without_scale)
