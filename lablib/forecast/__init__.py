"""Long-horizon forecasting for track 5, chapter t5_02: DLinear and friends against deep forecasters.

After Zeng, Chen, Zhang and Xu, "Are Transformers Effective for Time Series Forecasting?" (AAAI 2023).

* :mod:`lablib.forecast.data`          three series shipped inside PyPI packages (pmdarima, statsmodels, vega_datasets)
* :mod:`lablib.forecast.split`         the chronological 7:1:2 split, train-only standardization, windows
* :mod:`lablib.forecast.decomposition` DLinear's moving average (replicate padding) as a function and as a matrix
* :mod:`lablib.forecast.closed_form`   Linear, DLinear, NLinear fitted by least squares (and DLinear's GD preconditioner)
* :mod:`lablib.forecast.models`        Linear, DLinear, NLinear in PyTorch, as in the authors' code
* :mod:`lablib.forecast.deep`          an MLP and a small encoder-decoder Transformer
* :mod:`lablib.forecast.baselines`     the seasonal-naive forecast; MSE and MAE
* :mod:`lablib.forecast.train`         the authors' training protocol (Adam, lr halving, early stopping)
* :mod:`lablib.forecast.experiment`    the chapter's experiment and its shipped results
* :mod:`lablib.forecast.charts`        the chapter's Altair charts

Shapes: a window batch is ``X`` (N, L) (L the lookback), its targets and forecasts (N, H) (H the horizon).
"""

from lablib.forecast.baselines import mae, mse, seasonal_naive
from lablib.forecast.closed_form import ClosedForm, fit_dlinear, fit_linear, fit_nlinear, gd_preconditioner, ridge_lstsq
from lablib.forecast.data import Series, load_co2, load_seattle_temps, load_series, load_taylor
from lablib.forecast.decomposition import decompose, moving_average, moving_average_matrix
from lablib.forecast.deep import MLP, Transformer
from lablib.forecast.models import DLinear, Linear, NLinear
from lablib.forecast.split import Split, Standardizer, Windows, chronological_split, make_windows, split_windows
from lablib.forecast.train import TrainConfig, predict, train_forecaster

__all__ = [
    "ClosedForm", "DLinear", "Linear", "MLP", "NLinear", "Series", "Split", "Standardizer", "TrainConfig", "Transformer",
    "Windows", "chronological_split", "decompose", "fit_dlinear", "fit_linear", "fit_nlinear", "gd_preconditioner",
    "load_co2", "load_seattle_temps", "load_series", "load_taylor", "mae", "make_windows", "moving_average",
    "moving_average_matrix", "mse", "predict", "ridge_lstsq", "seasonal_naive", "split_windows", "train_forecaster",
]
