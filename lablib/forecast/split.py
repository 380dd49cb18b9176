"""The LTSF protocol (Zeng et al. 2023, after Informer and Autoformer): a chronological split and windows.

The series is cut in time into train, validation and test parts, 7:1:2 (``int(0.7 T)`` and
``int(0.2 T)`` points, the rest validation, as the authors' ``Dataset_Custom``). A
:class:`Standardizer` is fitted on the training part *only* and applied to the whole series, so
no statistic of the future leaks into training. A sample is a window: ``lookback`` points in,
the next ``horizon`` points to forecast. Every window's *targets* lie inside its part; its
lookback may reach back into the part before (the first test forecast reads the end of the
validation part, as it would in deployment), exactly as the authors' loaders set their borders
``num_train - seq_len`` and ``T - num_test - seq_len``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Split", "Standardizer", "Windows", "chronological_split", "make_windows", "split_windows"]

PARTS = ("train", "val", "test")


@dataclass(frozen=True)
class Split:
    """Borders of a chronological split of T points: train [0, train_end), val [train_end, val_end), test [val_end, T)."""

    T: int
    train_end: int
    val_end: int

    def part(self, name: str) -> tuple[int, int]:
        """(start, end) of the targets of part ``name`` ("train", "val", "test")."""
        return {"train": (0, self.train_end), "val": (self.train_end, self.val_end), "test": (self.val_end, self.T)}[name]


def chronological_split(T: int, fractions=(0.7, 0.1, 0.2)) -> Split:
    """The 7:1:2 split of the authors' code: ``n_train = int(0.7 T)``, ``n_test = int(0.2 T)``, val the rest."""
    if len(fractions) != 3 or any(f <= 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-9:
        raise ValueError(f"fractions must be three positive numbers summing to 1; got {fractions}")
    if T < 10:
        raise ValueError(f"need at least 10 points to split; got T = {T}")
    n_train, n_test = int(T * fractions[0]), int(T * fractions[2])
    return Split(T=T, train_end=n_train, val_end=T - n_test)


class Standardizer:
    """z = (x - mean) / std with the mean and (population) std of the training part only."""

    def fit(self, values, split: Split) -> "Standardizer":
        """``values`` (T,): the whole series; only ``values[:split.train_end]`` is read."""
        values = _series(values)
        if len(values) != split.T:
            raise ValueError(f"values has {len(values)} points but the split is of T = {split.T}")
        train = values[: split.train_end]
        self.mean, self.std = float(train.mean()), float(train.std())
        if not self.std > 0:
            raise ValueError(f"the training part is constant (std = {self.std}); cannot standardize")
        return self

    def transform(self, values) -> np.ndarray:
        return (_series(values, ndim=None) - self.mean) / self.std

    def inverse(self, z) -> np.ndarray:
        return np.asarray(z, dtype=np.float64) * self.std + self.mean


@dataclass(frozen=True)
class Windows:
    """Windows of one part: ``X`` (N, lookback) inputs, ``Y`` (N, horizon) targets, ``starts`` (N,) the index
    of each window's first target in the series (so target j of window i is the point ``starts[i] + j``)."""

    X: np.ndarray
    Y: np.ndarray
    starts: np.ndarray

    def __len__(self) -> int:
        return len(self.starts)


def _series(values, ndim: int | None = 1) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if ndim is not None and values.ndim != ndim:
        raise ValueError(f"expected a 1-D series (T,); got shape {values.shape}")
    if np.isnan(values).any():
        raise ValueError(f"the series has {int(np.isnan(values).sum())} NaN values; interpolate them first")
    return values


def make_windows(values, lookback: int, horizon: int, start: int, end: int) -> Windows:
    """All windows whose targets are ``values[s:s+horizon]`` with ``start <= s`` and ``s + horizon <= end``.

    The inputs are ``values[s-lookback:s]``, so ``start >= lookback`` is required. ``values`` (T,).
    """
    values = _series(values)
    if lookback < 1 or horizon < 1:
        raise ValueError(f"lookback and horizon must be >= 1; got {lookback}, {horizon}")
    if not lookback <= start <= end <= len(values):
        raise ValueError(f"need lookback <= start <= end <= T; got lookback {lookback}, start {start}, end {end}, T {len(values)}")
    if end - start < horizon:
        raise ValueError(f"the part [{start}, {end}) is shorter than the horizon {horizon}: no window fits")
    view = np.lib.stride_tricks.sliding_window_view(values[start - lookback:end], lookback + horizon)
    return Windows(X=view[:, :lookback].copy(), Y=view[:, lookback:].copy(), starts=np.arange(start, end - horizon + 1))


def split_windows(values, split: Split, lookback: int, horizon: int) -> dict[str, Windows]:
    """Windows of each part ("train", "val", "test"): targets inside the part, lookback reaching back if needed.

    Training windows start at ``lookback`` (their inputs must be training points too).
    """
    out = {}
    for name in PARTS:
        start, end = split.part(name)
        out[name] = make_windows(values, lookback, horizon, max(start, lookback), end)
    return out
