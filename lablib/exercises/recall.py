"""Exercise checks for chapter t1_06 (recall and state size): each takes the learner's function."""

from __future__ import annotations

import torch

from lablib.layers import LanguageModel, LMConfig
from lablib.recall import IGNORE, decoding_state_bytes, recall_accuracy

__all__ = ["check_recall_accuracy", "check_state_bytes"]


def check_recall_accuracy(fn) -> str:
    """``fn(logits (B, T, V), labels (B, T)) -> float``: the fraction of query positions answered right.

    Only positions whose label is not -100 count. Compared with ``lablib.recall.recall_accuracy``.
    """
    n = 0
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        logits = torch.randn(4, 12, 10, generator=g)
        labels = torch.full((4, 12), IGNORE)
        where = torch.rand(4, 12, generator=g) < 0.25
        where[:, 0] = True
        labels[where] = torch.randint(0, 10, (int(where.sum()),), generator=g)
        right = where & (torch.rand(4, 12, generator=g) < 0.5)  # about half the queries answered right
        labels[right] = logits.argmax(-1)[right]
        want = recall_accuracy(logits, labels)
        got = float(fn(logits.clone(), labels.clone()))
        if abs(got - want) > 1e-9:
            raise AssertionError(f"recall accuracy: case {n} gives {got:.4f}, expected {want:.4f} "
                                 "(count only positions whose label is not -100)")
        n += 1
    return f"✓ recall accuracy: correct on {n} random batches"


CASES = [("softmax", 32, 1, 64, 0), ("linear", 32, 2, 64, 0), ("deltanet", 64, 1, 64, 4), ("linear", 16, 1, 128, 4)]


def check_state_bytes(fn) -> str:
    """``fn(mixer, d_model, n_heads, seq_len, conv_size) -> int``: bytes of a 2-layer LanguageModel's
    decoding state for one sequence of ``seq_len`` tokens in float32 (mixer: "softmax", "linear"
    with its normalizer, or "deltanet"), conv caches included. Compared with the measured bytes."""
    for mixer, d, h, T, conv in CASES:
        model = LanguageModel(LMConfig(vocab=8, mixer=mixer, d_model=d, n_heads=h, mlp=False,
                                       mixer_kwargs={"conv_size": conv}))
        want = decoding_state_bytes(model, T)
        got = int(fn(mixer, d, h, T, conv))
        if got != want:
            raise AssertionError(f"state bytes of {mixer} (d_model {d}, {h} heads, T {T}, conv {conv}): "
                                 f"you computed {got:,}, the state's tensors hold {want:,}")
    return f"✓ state bytes: right for all {len(CASES)} models"
