"""Multi-query associative recall (MQAR), the synthetic task of Zoology (Arora et al., 2023).

A sequence first lists D key-value pairs, then queries every key once, later:

    position   0  1  2  3  ...  2D-2 2D-1 | 2D ......................... L-1
    input      k1 v1 k2 v2 ...  kD   vD   | noise, k3, noise, ..., k1, noise ...
    label      -  -  -  -  ...  -    -    | -      v3  -      ...   v1  -   ...

* keys are drawn without replacement from the lower half of the vocabulary, [1, V/2) (0 is
  reserved for "no token"), values from the upper half [V/2, V): a key is never a value;
* the query region (L - 2D positions) has (L - 2D) / 2 even slots; key i sits in slot g_i, the
  slots drawn without replacement with P(g) proportional to (g + 1)^(a - 1) (a = 0.01 by default),
  so most queries come soon after the context and a few far away, as repeated bigrams do in text;
* the label at a query's position is its value (the model answers *at* the key, as its next
  token); every other label is ``IGNORE`` (-100, skipped by the loss and by accuracy);
* every other query-region position is 0, or with ``random_non_queries`` a uniform random token.

Differences from Zoology's generator: numpy's ``Generator`` instead of the global seed, and the
sampling is vectorized by sorting random keys (Gumbel top-k for the weighted slots), so the same
seed gives the same data on every machine without touching global state.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["IGNORE", "MQARData", "mqar", "recall_accuracy"]

IGNORE = -100


@dataclass
class MQARData:
    """inputs (N, L) int64 tokens; labels (N, L) int64, the value at each query position, else -100."""

    inputs: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return self.inputs.shape[0]


def _sample_without_replacement(rng: np.random.Generator, n_rows: int, n_choices: int, k: int,
                                logp: np.ndarray | None = None) -> np.ndarray:
    """(n_rows, k) distinct indices in [0, n_choices) per row; weighted by exp(logp) if given (Gumbel top-k)."""
    scores = rng.random((n_rows, n_choices), dtype=np.float32)
    if logp is not None:  # Gumbel-top-k: argmax of log p + Gumbel noise, k times without replacement
        scores = logp[None, :] - np.log(-np.log(np.clip(scores, 1e-12, 1 - 1e-7)))
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def mqar(
    n_examples: int,
    *,
    vocab: int = 1024,
    seq_len: int = 64,
    n_pairs: int = 4,
    power_a: float = 0.01,
    random_non_queries: bool = True,
    seed: int = 0,
) -> MQARData:
    """Generate ``n_examples`` MQAR sequences (see the module docstring for the layout).

    Needs seq_len even, 4 * n_pairs <= seq_len (room for the queries), vocab > seq_len and
    n_pairs < vocab / 2 (enough distinct keys). Same arguments and seed -> the same tensors.
    """
    if n_examples < 1 or n_pairs < 1:
        raise ValueError(f"n_examples and n_pairs must be positive; got {n_examples}, {n_pairs}")
    if seq_len % 2 or 4 * n_pairs > seq_len:
        raise ValueError(f"seq_len must be even and >= 4 * n_pairs; got seq_len={seq_len}, n_pairs={n_pairs}")
    if vocab <= seq_len or n_pairs >= vocab // 2 - 1:
        raise ValueError(f"vocab must exceed seq_len and leave n_pairs distinct keys; got vocab={vocab}")
    if not 0 < power_a <= 1:
        raise ValueError(f"power_a must be in (0, 1] (1 = uniform gaps); got {power_a}")
    rng = np.random.default_rng(seed)
    half, context = vocab // 2, 2 * n_pairs
    rows = np.arange(n_examples)[:, None]
    inputs = np.zeros((n_examples, seq_len), dtype=np.int64)
    labels = np.full((n_examples, seq_len), IGNORE, dtype=np.int64)
    out = []
    for start in range(0, n_examples, 4096):  # in blocks: the sort needs (rows, V/2) scores
        n = min(4096, n_examples - start)
        keys = 1 + _sample_without_replacement(rng, n, half - 1, n_pairs)            # [1, V/2)
        values = half + _sample_without_replacement(rng, n, vocab - half, n_pairs)   # [V/2, V)
        slots = (seq_len - context) // 2
        logp = (power_a - 1.0) * np.log(np.arange(1, slots + 1, dtype=np.float64))
        gaps = _sample_without_replacement(rng, n, slots, n_pairs, logp)
        noise = rng.integers(0, vocab, size=(n, seq_len))
        out.append((keys, values, context + 2 * gaps, noise))
    keys, values, where, noise = (np.concatenate(parts) for parts in zip(*out))
    inputs[:, 0:context:2], inputs[:, 1:context:2] = keys, values
    if random_non_queries:
        inputs[:, context:] = noise[:, context:]
    inputs[rows, where] = keys
    labels[rows, where] = values
    return MQARData(torch.from_numpy(inputs), torch.from_numpy(labels))


def recall_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of query positions (labels != -100) whose argmax logit is the right value."""
    mask = labels != IGNORE
    if not mask.any():
        raise ValueError("labels hold no query positions")
    return (logits.argmax(-1)[mask] == labels[mask]).float().mean().item()
