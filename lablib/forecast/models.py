"""The LTSF-Linear models in PyTorch, as in the authors' code (cure-lab/LTSF-Linear, univariate form).

Each maps windows x (B, L) float to forecasts (B, H).

* :class:`Linear`: one ``nn.Linear(L, H)`` (PyTorch's default initialization).
* :class:`DLinear`: moving-average decomposition (kernel 25, replicate padding), one ``nn.Linear``
  on the trend and one on the remainder, their outputs added; both weights start at ``1 / L``
  (every output the window's mean), as in the authors' code.
* :class:`NLinear`: subtract the window's last value, ``nn.Linear``, add the value back.
"""

from __future__ import annotations

import torch
from torch import nn

from lablib.forecast.decomposition import decompose

__all__ = ["DLinear", "Linear", "NLinear", "check_windows"]


def check_windows(x: torch.Tensor, lookback: int) -> None:
    """Raise ValueError unless x is a float tensor (B, lookback)."""
    if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[1] != lookback or not x.is_floating_point():
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be a float tensor (batch, {lookback}); got {shape}")


class _Forecaster(nn.Module):
    def __init__(self, lookback: int, horizon: int):
        super().__init__()
        if lookback < 1 or horizon < 1:
            raise ValueError(f"lookback and horizon must be >= 1; got {lookback}, {horizon}")
        self.lookback, self.horizon = lookback, horizon


class Linear(_Forecaster):
    """y = W x + b."""

    def __init__(self, lookback: int, horizon: int):
        super().__init__(lookback, horizon)
        self.linear = nn.Linear(lookback, horizon)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_windows(x, self.lookback)
        return self.linear(x)


class DLinear(_Forecaster):
    """y = W_t trend(x) + W_s (x - trend(x)) + b_t + b_s, trend the replicate-padded moving average."""

    def __init__(self, lookback: int, horizon: int, kernel: int = 25):
        super().__init__(lookback, horizon)
        self.kernel = kernel
        self.trend = nn.Linear(lookback, horizon)
        self.season = nn.Linear(lookback, horizon)
        with torch.no_grad():  # the authors' initialization: every output starts as the window's mean
            self.trend.weight.fill_(1.0 / lookback)
            self.season.weight.fill_(1.0 / lookback)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_windows(x, self.lookback)
        trend, remainder = decompose(x, self.kernel)
        return self.trend(trend) + self.season(remainder)


class NLinear(_Forecaster):
    """y = W (x - x_L) + b + x_L, x_L the last value of the window."""

    def __init__(self, lookback: int, horizon: int):
        super().__init__(lookback, horizon)
        self.linear = nn.Linear(lookback, horizon)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_windows(x, self.lookback)
        last = x[:, -1:].detach()
        return self.linear(x - last) + last
