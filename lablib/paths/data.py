"""scikit-learn's bundled digits (1,797 8x8 images, no download): one fixed split, standardized."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["Digits", "load_digits_split", "N_TEST", "SPLIT_SEED"]

N_TEST = 497  # 1,300 training images, 497 test images
SPLIT_SEED = 0


@dataclass(frozen=True)
class Digits:
    """The split: ``X_train`` (1300, 64) float32, ``y_train`` (1300,) int64, ``X_test`` (497, 64), ``y_test`` (497,).

    Pixels are standardized with the training set's per-pixel mean and standard deviation (a pixel
    that is constant on the training set is only centred).
    """

    X_train: torch.Tensor
    y_train: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor

    @property
    def n_classes(self) -> int:
        return 10

    @property
    def in_dim(self) -> int:
        return int(self.X_train.shape[1])


def load_digits_split(n_test: int = N_TEST, seed: int = SPLIT_SEED) -> Digits:
    """``sklearn.datasets.load_digits`` shuffled by ``np.random.default_rng(seed)``; the last ``n_test`` are the test set.

    The images ship inside scikit-learn's wheel, so nothing is downloaded.
    """
    from sklearn.datasets import load_digits

    if not 0 < n_test < 1797:
        raise ValueError(f"n_test must be between 1 and 1796; got {n_test}")
    data = load_digits()
    order = np.random.default_rng(seed).permutation(len(data.target))
    X, y = data.data[order].astype(np.float64), data.target[order].astype(np.int64)
    X_train, X_test = X[:-n_test], X[-n_test:]
    mean, std = X_train.mean(axis=0), X_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    as_x = lambda a: torch.from_numpy(((a - mean) / std).astype(np.float32))  # noqa: E731
    return Digits(as_x(X_train), torch.from_numpy(y[:-n_test]), as_x(X_test), torch.from_numpy(y[-n_test:]))
