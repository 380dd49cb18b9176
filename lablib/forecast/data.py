"""Three real series that ship inside PyPI packages, read from the installed files (no download).

Each loader finds its file through the package's import spec *without importing the package*
(pmdarima's import alone takes seconds: it pulls scikit-learn and statsmodels), so what a
chapter pays is one small file read.

* :func:`load_taylor`: half-hourly electricity demand in England and Wales, 5 June to 27 August
  2000, 4,032 points (12 weeks), megawatts (Taylor 2003). pmdarima ships it as a number list in
  ``pmdarima/datasets/taylor.py``; we read that literal with :mod:`ast` (nothing is executed).
* :func:`load_seattle_temps`: hourly temperatures in Seattle through 2010, degrees Fahrenheit,
  ``vega_datasets/_data/seattle-temps.csv`` (a *local* dataset of vega_datasets, listed in its
  ``local_datasets.json``; most of its datasets are URLs). 8,759 rows: the hour lost to the
  daylight-saving switch on 14 March is missing, so we put the series on a regular hourly grid and
  interpolate that one hour linearly (8,760 points).
* :func:`load_co2`: weekly atmospheric CO2 at Mauna Loa, March 1958 to December 2001, ppm,
  ``statsmodels/datasets/co2/co2.csv``, 2,284 points of which 59 are missing (the longest gap is 18
  weeks, in 1958-59); we interpolate them linearly in time.
"""

from __future__ import annotations

import ast
import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["PINS", "Series", "load_co2", "load_seattle_temps", "load_series", "load_taylor", "package_file"]

# The versions this chapter was built with (the files have not changed in years, but a pin is a promise).
PINS = {"pmdarima": "2.1.1", "vega_datasets": "0.9.0", "statsmodels": "0.15.0"}
_DIST = {"pmdarima": "pmdarima", "vega_datasets": "vega_datasets", "statsmodels": "statsmodels"}


@dataclass(frozen=True)
class Series:
    """One univariate series on a regular time grid.

    ``values`` (T,) float64, no NaN; ``index`` (T,) the timestamps; ``period`` the seasonal period in
    steps that the seasonal-naive forecast repeats; ``unit``, ``source`` (package and file) and
    ``notes`` (what was done to the raw file, e.g. how many values were interpolated).
    """

    name: str
    values: np.ndarray
    index: pd.DatetimeIndex
    period: int
    unit: str
    source: str
    notes: str = ""
    n_interpolated: int = 0
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.values)


def package_file(package: str, relative: str) -> Path:
    """Path of ``relative`` inside the installed ``package`` (not imported); FileNotFoundError with the pip command."""
    hint = f"pip install {_DIST.get(package, package)}=={PINS[package]}" if package in PINS else f"pip install {package}"
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"this series ships inside the {package} package, which is not installed: {hint}")
    for location in spec.submodule_search_locations:
        path = Path(location) / relative
        if path.is_file():
            return path
    raise FileNotFoundError(f"{package} is installed but has no {relative}; install the pinned version: {hint}")


def _taylor_literal(path: Path) -> np.ndarray:
    """The number list passed to ``np.array([...])`` inside ``load_taylor`` in pmdarima's taylor.py."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "array"
                and node.args and isinstance(node.args[0], ast.List) and len(node.args[0].elts) > 1000):
            return np.asarray(ast.literal_eval(node.args[0]), dtype=np.float64)
    raise ValueError(f"no np.array([...]) literal with the Taylor data found in {path}")


def load_taylor() -> Series:
    """Half-hourly electricity demand (MW), 4,032 points from Monday 5 June 2000 00:00; weekly period 336."""
    path = package_file("pmdarima", "datasets/taylor.py")
    values = _taylor_literal(path)
    if values.shape != (4032,):
        raise ValueError(f"expected 4,032 half-hourly values in {path}; found shape {values.shape}")
    index = pd.date_range("2000-06-05", periods=len(values), freq="30min")
    return Series("taylor", values, index, period=336, unit="MW", source="pmdarima: datasets/taylor.py",
                  notes="half-hourly, 12 weeks; seasonal period one week (336 steps), a daily cycle of 48 inside it")


def load_seattle_temps() -> Series:
    """Hourly Seattle temperature (F) in 2010 on a regular grid: 8,760 points, one interpolated; daily period 24."""
    listing = json.loads(package_file("vega_datasets", "local_datasets.json").read_text())
    if listing.get("seattle-temps") != "_data/seattle-temps.csv":
        raise FileNotFoundError(f"vega_datasets lists seattle-temps as {listing.get('seattle-temps')!r}, not a local file")
    path = package_file("vega_datasets", "_data/seattle-temps.csv")
    raw = pd.read_csv(path)
    stamps = pd.to_datetime(raw["date"], format="%Y/%m/%d %H:%M")
    frame = pd.Series(raw["temp"].to_numpy(dtype=np.float64), index=stamps)
    grid = pd.date_range(stamps.iloc[0], stamps.iloc[-1], freq="h")
    regular = frame.reindex(grid)
    n_missing = int(regular.isna().sum())
    regular = regular.interpolate(method="time")
    return Series("seattle", regular.to_numpy(), grid, period=24, unit="F", source="vega_datasets: _data/seattle-temps.csv",
                  notes=f"{len(raw):,} hourly rows; {n_missing} missing hour (daylight saving) interpolated linearly",
                  n_interpolated=n_missing, extra={"raw_rows": len(raw)})


def load_co2() -> Series:
    """Weekly Mauna Loa CO2 (ppm), 2,284 points from 29 March 1958; 59 missing values interpolated; period 52."""
    path = package_file("statsmodels", "datasets/co2/co2.csv")
    raw = pd.read_csv(path)
    index = pd.DatetimeIndex(pd.to_datetime(raw["date"].astype(str), format="%Y%m%d"))
    series = pd.Series(raw["co2"].to_numpy(dtype=np.float64), index=index)
    n_missing = int(series.isna().sum())
    values = series.interpolate(method="time").to_numpy()
    if np.isnan(values).any():
        raise ValueError("CO2 still has NaN after interpolation (a gap at either end)")
    return Series("co2", values, index, period=52, unit="ppm", source="statsmodels: datasets/co2/co2.csv",
                  notes=f"weekly; {n_missing} missing values interpolated linearly in time", n_interpolated=n_missing)


_LOADERS = {"taylor": load_taylor, "seattle": load_seattle_temps, "co2": load_co2}


def load_series(name: str) -> Series:
    """One of ``"taylor"``, ``"seattle"``, ``"co2"``."""
    if name not in _LOADERS:
        raise ValueError(f"unknown series {name!r}; choose from {sorted(_LOADERS)}")
    return _LOADERS[name]()
