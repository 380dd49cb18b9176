"""Concept directions and linear probes on sentence embeddings (torch only).

* ``stratified_split``: a deterministic train/test split that keeps every label cell balanced.
* ``mean_difference``: the difference of class means, mu_1 - mu_0, the simplest concept direction;
  ``MeanDifferenceProbe`` classifies by which side of the midpoint between the two means a
  projection onto it falls.
* ``LogisticProbe``: multinomial logistic regression (L2-regularised, full-batch L-BFGS) on
  centred features divided by one common scale; ``direction`` maps a binary probe's weight back to the input space.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["LogisticProbe", "MeanDifferenceProbe", "accuracy", "mean_difference", "stratified_split"]


def _check_xy(x, y, *, name: str = "x") -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.as_tensor(x)
    y = torch.as_tensor(y)
    if x.ndim != 2 or not x.dtype.is_floating_point:
        raise ValueError(f"{name} must be a 2-D float tensor (n, d); got shape {tuple(x.shape)}, dtype {x.dtype}")
    if y.ndim != 1 or y.dtype.is_floating_point or y.dtype == torch.bool:
        raise ValueError(f"labels must be a 1-D integer tensor; got shape {tuple(y.shape)}, dtype {y.dtype}")
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"{name} has {x.shape[0]} rows but there are {y.shape[0]} labels")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or Inf")
    if y.min() < 0:
        raise ValueError("labels must be >= 0")
    return x, y.long()


def stratified_split(*labels: torch.Tensor, test_fraction: float = 1 / 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(train_idx, test_idx): within every combination of the given label vectors, a seeded shuffle
    sends round(test_fraction * size) items to the test side. Both index tensors are sorted."""
    if not labels:
        raise ValueError("give at least one label vector")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1); got {test_fraction}")
    labels = [torch.as_tensor(y).long() for y in labels]
    n = labels[0].shape[0]
    if any(y.ndim != 1 or y.shape[0] != n for y in labels):
        raise ValueError("label vectors must be 1-D and of equal length")
    key = torch.stack(labels, 1)  # (n, m)
    gen = torch.Generator().manual_seed(seed)
    train, test = [], []
    for cell in torch.unique(key, dim=0):
        idx = torch.nonzero((key == cell).all(1)).flatten()
        idx = idx[torch.randperm(idx.numel(), generator=gen)]
        n_test = int(round(test_fraction * idx.numel()))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return torch.cat(train).sort().values, torch.cat(test).sort().values


def accuracy(pred: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of ``pred == y``."""
    return (torch.as_tensor(pred) == torch.as_tensor(y)).double().mean().item()


def mean_difference(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """x (n, d), binary y (n,) -> (d,) mean(x[y == 1]) - mean(x[y == 0])."""
    x, y = _check_xy(x, y)
    if set(torch.unique(y).tolist()) != {0, 1}:
        raise ValueError("mean_difference needs binary labels with both 0 and 1 present")
    return x[y == 1].mean(0) - x[y == 0].mean(0)


@dataclass(frozen=True)
class MeanDifferenceProbe:
    """Binary classifier: label 1 iff (x - midpoint) . direction > 0.

    direction: (d,) = mu_1 - mu_0; midpoint: (d,) = (mu_0 + mu_1) / 2.
    """

    direction: torch.Tensor
    midpoint: torch.Tensor

    @classmethod
    def fit(cls, x: torch.Tensor, y: torch.Tensor) -> "MeanDifferenceProbe":
        x, y = _check_xy(x, y)
        direction = mean_difference(x, y)
        midpoint = (x[y == 1].mean(0) + x[y == 0].mean(0)) / 2
        return cls(direction, midpoint)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """(n,) signed projection (x - midpoint) . direction."""
        return (torch.as_tensor(x).to(self.direction.dtype) - self.midpoint) @ self.direction

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return (self.score(x) > 0).long()


@dataclass(frozen=True)
class LogisticProbe:
    """Multinomial logistic regression on centred, rescaled features.

    mean: (d,) the training mean; scale: (d,) the training data's RMS deviation from it, the same
    in every entry. weight: (k, d) and bias: (k,) act on the rescaled inputs. Logits = ((x - mean) / scale) @ weight.T + bias.
    """

    mean: torch.Tensor
    scale: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor

    @classmethod
    def fit(
        cls, x: torch.Tensor, y: torch.Tensor, *, n_classes: int | None = None, l2: float = 1e-2, max_iter: int = 200
    ) -> "LogisticProbe":
        """Fit on x (n, d) float and y (n,) integer labels 0..k-1.

        Minimises mean cross-entropy + ``l2 / 2 * ||weight||^2`` with full-batch L-BFGS in float64,
        from zero weights, so the fit is deterministic. ``l2`` keeps the problem well posed when
        the classes are separable (they are here, with 384 features and a few hundred sentences).
        """
        x, y = _check_xy(x, y)
        if not l2 > 0:
            raise ValueError(f"l2 must be > 0; got {l2}")
        k = int(y.max()) + 1 if n_classes is None else n_classes
        if k < 2:
            raise ValueError("need at least two classes")
        x = x.double()
        mean = x.mean(0)
        # One scale for all features (the RMS spread), not one per feature: per-feature
        # standardisation would blow up directions that barely vary on the training sentences,
        # and a probe that leans on them breaks as soon as an input leaves the data (steering).
        scale = (x - mean).square().mean().sqrt().clamp_min(1e-12).expand(x.shape[1]).clone()
        xs = (x - mean) / scale
        weight = torch.zeros(k, x.shape[1], dtype=torch.float64, requires_grad=True)
        bias = torch.zeros(k, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS([weight, bias], lr=1, max_iter=max_iter, tolerance_grad=1e-9,
                                tolerance_change=1e-12, history_size=20, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(xs @ weight.T + bias, y) + 0.5 * l2 * weight.square().sum()
            loss.backward()
            return loss

        with torch.enable_grad():
            opt.step(closure)
        return cls(mean, scale, weight.detach(), bias.detach())

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(n, d) -> (n, k)."""
        x = torch.as_tensor(x).double()
        if x.ndim != 2 or x.shape[1] != self.mean.shape[0]:
            raise ValueError(f"x must be (n, {self.mean.shape[0]}); got {tuple(x.shape)}")
        return ((x - self.mean) / self.scale) @ self.weight.T + self.bias

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(x).argmax(1)

    def accuracy(self, x: torch.Tensor, y: torch.Tensor) -> float:
        return accuracy(self.predict(x), y)

    @property
    def direction(self) -> torch.Tensor:
        """For a binary probe: the (d,) input-space direction along which the logit of class 1
        minus that of class 0 grows, (w_1 - w_0) / scale."""
        if self.weight.shape[0] != 2:
            raise ValueError("direction is defined for binary probes only")
        return (self.weight[1] - self.weight[0]) / self.scale
