"""lablib.forecast: DLinear's closed-form equivalence with Linear, the moving average, the protocol, the data."""

import numpy as np
import pytest
import torch

from lablib.forecast import (DLinear, Linear, NLinear, Standardizer, Transformer, chronological_split, fit_dlinear,
                             fit_linear, fit_nlinear, gd_preconditioner, mae, make_windows, moving_average,
                             moving_average_matrix, mse, seasonal_naive, split_windows, train_forecaster)
from lablib.forecast import data as fdata
from lablib.forecast.deep import MLP
from lablib.forecast.train import TrainConfig, predict


def _series(T=900, seed=0):
    """A daily-ish cycle (period 24), a slow trend and AR(1) noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(T)
    noise = np.zeros(T)
    for i in range(1, T):
        noise[i] = 0.8 * noise[i - 1] + 0.3 * rng.standard_normal()
    return np.sin(2 * np.pi * t / 24) + 0.5 * np.sin(2 * np.pi * t / 168) + 0.002 * t + noise


def _windows(T=900, L=48, H=12, seed=0):
    z = _series(T, seed)
    split = chronological_split(T)
    return split_windows(Standardizer().fit(z, split).transform(z), split, L, H)


# --- the identity: DLinear fitted in closed form is Linear --------------------------------------


@pytest.mark.parametrize("kernel", [5, 25])
def test_closed_form_dlinear_gives_the_same_forecasts_as_closed_form_linear(kernel):
    w = _windows()
    lin, dl = fit_linear(w["train"].X, w["train"].Y), fit_dlinear(w["train"].X, w["train"].Y, kernel=kernel)
    for part in ("train", "test"):
        gap = np.abs(lin.predict(w[part].X) - dl.predict(w[part].X)).max()
        assert gap < 1e-8, (part, gap)
    # and DLinear's effective map W_t A + W_s (I - A) is Linear's W
    W_eff, b_eff = dl.effective()
    assert np.abs(W_eff - lin.weights["W"]).max() < 1e-8 and np.abs(b_eff - lin.b).max() < 1e-8
    # the two halves are not the same matrix: DLinear really fitted 2L parameters per output
    assert np.abs(dl.weights["W_trend"] - dl.weights["W_season"]).max() > 1e-3


def test_with_a_ridge_penalty_the_decomposition_changes_the_fit():
    w = _windows()
    X, Y = w["train"].X, w["train"].Y
    gap = np.abs(fit_linear(X, Y, ridge=10.0).predict(w["test"].X) - fit_dlinear(X, Y, ridge=10.0).predict(w["test"].X)).max()
    assert gap > 1e-3, gap
    with pytest.raises(ValueError, match="ridge"):
        fit_linear(X, Y, ridge=-1.0)


def test_effective_weights_reproduce_predict_for_every_kind():
    w = _windows(seed=1)
    X, Y, Xt = w["train"].X, w["train"].Y, w["test"].X
    for fit in (fit_linear(X, Y), fit_dlinear(X, Y, ridge=3.0), fit_nlinear(X, Y, ridge=0.5)):
        W, b = fit.effective()
        assert np.abs(Xt @ W.T + b - fit.predict(Xt)).max() < 1e-10, fit.kind


def test_nlinear_is_linear_with_rows_summing_to_one():
    w = _windows(seed=2)
    nl = fit_nlinear(w["train"].X, w["train"].Y)
    W, _ = nl.effective()
    assert np.abs(W.sum(axis=1) - 1).max() < 1e-10
    Xt = w["test"].X
    assert np.abs(nl.predict(Xt + 3.0) - nl.predict(Xt) - 3.0).max() < 1e-10  # a level shift passes straight through
    lin = fit_linear(w["train"].X, w["train"].Y)
    assert np.abs(lin.predict(Xt + 3.0) - lin.predict(Xt) - 3.0).max() > 1e-2  # Linear has no such constraint


def test_torch_dlinear_with_closed_form_weights_matches_the_closed_form():
    w = _windows(seed=3)
    fit = fit_dlinear(w["train"].X, w["train"].Y, kernel=7)
    model = DLinear(48, 12, kernel=7).double()
    with torch.no_grad():
        model.trend.weight.copy_(torch.from_numpy(fit.weights["W_trend"]))
        model.season.weight.copy_(torch.from_numpy(fit.weights["W_season"]))
        model.trend.bias.copy_(torch.from_numpy(fit.b))
        model.season.bias.zero_()
        out = model(torch.from_numpy(w["test"].X)).numpy()
    assert np.abs(out - fit.predict(w["test"].X)).max() < 1e-10


def test_one_gradient_step_on_dlinear_is_a_preconditioned_step_on_linear():
    """W_t -= lr G A^T, W_s -= lr G (I - A)^T  =>  W = W_t A + W_s (I - A) moves by -lr G P."""
    torch.manual_seed(0)
    L, H, kernel, lr = 30, 5, 7, 0.1
    model = DLinear(L, H, kernel=kernel).double()
    torch.nn.init.normal_(model.trend.weight, std=0.1)
    torch.nn.init.normal_(model.season.weight, std=0.1)
    A = torch.from_numpy(moving_average_matrix(L, kernel))
    eff = lambda: (model.trend.weight @ A + model.season.weight @ (torch.eye(L, dtype=torch.float64) - A)).detach().clone()
    x, y = torch.randn(64, L, dtype=torch.float64), torch.randn(64, H, dtype=torch.float64)
    W0, b0 = eff(), (model.trend.bias + model.season.bias).detach().clone()
    W = W0.clone().requires_grad_(True)  # the same forecast written as Linear, to get G = dLoss/dW
    b = b0.clone().requires_grad_(True)
    torch.nn.functional.mse_loss(x @ W.T + b, y).backward()
    torch.nn.functional.mse_loss(model(x), y).backward()
    with torch.no_grad():  # one plain gradient step on every DLinear parameter
        for p in model.parameters():
            p -= lr * p.grad
    P = torch.from_numpy(gd_preconditioner(L, kernel))
    assert torch.allclose(eff(), W0 - lr * W.grad @ P, atol=1e-12)
    assert torch.allclose(model.trend.bias + model.season.bias, b0 - 2 * lr * b.grad, atol=1e-12)
    assert not torch.allclose(P, torch.eye(L, dtype=torch.float64), atol=1e-2)  # so it is not plain GD on Linear
    eig = torch.linalg.eigvalsh(P)
    # a^2 + (1 - a)^2 over the filter's gains a: at least 1/2 (a = 1/2), above 1 where the gain is negative
    assert 0.45 < eig.min() < 0.55 and 1.0 < eig.max() < 2.0, (eig.min(), eig.max())


# --- the moving average ----------------------------------------------------------------------


def test_moving_average_by_hand_with_replicate_padding():
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    # kernel 3 pads one copy each side: [1, 1, 2, 3, 4, 5, 5]
    assert np.allclose(moving_average(x, 3), [4 / 3, 2, 3, 4, 14 / 3])
    # kernel 5 pads two: [1, 1, 1, 2, 3, 4, 5, 5, 5]
    assert np.allclose(moving_average(x, 5), [1.6, 2.2, 3.0, 3.8, 4.4])
    assert np.allclose(moving_average(x, 1), x)
    # a kernel longer than the window: every output mixes the padded ends (kernel 9, 4 copies each side)
    assert np.allclose(moving_average(x, 9)[0], (4 * 1 + 1 + 2 + 3 + 4 + 5) / 9)


def test_moving_average_forms_agree_with_the_authors_avgpool():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((6, 40))
    kernel, half = 25, 12
    # the authors' code: repeat the first and last values (k - 1) / 2 times, then AvgPool1d(k, stride 1)
    xt = torch.from_numpy(x)
    padded = torch.cat([xt[:, :1].repeat(1, half), xt, xt[:, -1:].repeat(1, half)], dim=1)
    avgpool = torch.nn.AvgPool1d(kernel, stride=1)(padded[:, None, :])[:, 0].numpy()
    assert np.abs(moving_average(x, kernel) - avgpool).max() < 1e-12
    assert np.abs(moving_average(xt, kernel).numpy() - avgpool).max() < 1e-12
    assert np.abs(x @ moving_average_matrix(40, kernel).T - avgpool).max() < 1e-12
    assert np.allclose(moving_average_matrix(40, kernel).sum(axis=1), 1.0)  # a constant window is its own trend


def test_moving_average_rejects_even_or_bad_kernels():
    for kernel in (0, 2, 24, 2.5):
        with pytest.raises(ValueError, match="odd"):
            moving_average(np.ones(10), kernel)
    with pytest.raises(ValueError, match="odd"):
        DLinear(10, 2, kernel=4)(torch.ones(1, 10))


# --- seasonal naive, metrics -------------------------------------------------------------------


def test_seasonal_naive_is_exact_on_a_periodic_series():
    rng = np.random.default_rng(5)
    period = 7
    z = np.tile(rng.standard_normal(period), 60)
    w = make_windows(z, lookback=20, horizon=17, start=20, end=len(z))
    forecast = seasonal_naive(w.X, 17, period)
    assert mse(forecast, w.Y) == 0.0 and forecast.shape == w.Y.shape
    assert mse(seasonal_naive(w.X, 17, period + 1), w.Y) > 0.1  # the wrong period is not
    with pytest.raises(ValueError, match="shorter than the period"):
        seasonal_naive(w.X, 5, 21)


def test_metrics():
    assert mse([[1.0, 3.0]], [[0.0, 0.0]]) == 5.0 and mae([[1.0, -3.0]], [[0.0, 0.0]]) == 2.0
    with pytest.raises(ValueError, match="shape"):
        mse(np.ones((2, 3)), np.ones((3, 2)))


# --- the protocol ------------------------------------------------------------------------------


def test_split_is_chronological_and_no_target_leaks():
    T, L, H = 1000, 48, 12
    split = chronological_split(T)
    assert (split.train_end, split.val_end) == (700, 800)
    idx = np.arange(T, dtype=float)  # the series is its own time index
    w = split_windows(idx, split, L, H)
    bounds = {"train": (0, 700), "val": (700, 800), "test": (800, 1000)}
    for part, (lo, hi) in bounds.items():
        Y, X = w[part].Y, w[part].X
        assert Y.min() >= lo and Y.max() < hi, part  # every target inside its part
        assert (X[:, -1] + 1 == Y[:, 0]).all() and (np.diff(X, axis=1) == 1).all()  # inputs right before targets
        assert len(w[part]) == hi - max(lo, L) - H + 1  # every window that fits, stride 1
        assert np.array_equal(w[part].starts, Y[:, 0].astype(int))
    assert w["train"].X.max() < 700  # training inputs are training points too
    assert w["test"].X.min() == 800 - L  # the first test window reads the end of the validation part
    assert int(0.7 * 2284) == chronological_split(2284).train_end and 2284 - int(0.2 * 2284) == chronological_split(2284).val_end


def test_standardization_uses_training_statistics_only():
    z = _series(1000)
    split = chronological_split(1000)
    s = Standardizer().fit(z, split)
    assert s.mean == pytest.approx(z[:700].mean()) and s.std == pytest.approx(z[:700].std())
    changed = z.copy()
    changed[700:] += 100.0  # change the future
    s2 = Standardizer().fit(changed, split)
    assert (s2.mean, s2.std) == (s.mean, s.std)
    changed[:10] += 1.0  # change the past
    assert Standardizer().fit(changed, split).mean != s.mean
    t = s.transform(z)
    assert abs(t[:700].mean()) < 1e-12 and abs(t[:700].std() - 1) < 1e-12 and abs(t[700:].mean()) > 0.1
    assert np.allclose(s.inverse(t), z)


def test_bad_inputs_raise_value_errors():
    with pytest.raises(ValueError, match="NaN"):
        make_windows(np.array([1.0, np.nan, 2, 3, 4, 5]), 2, 1, 2, 6)
    with pytest.raises(ValueError, match="1-D"):
        make_windows(np.ones((5, 2)), 2, 1, 2, 5)
    with pytest.raises(ValueError, match="shorter than the horizon"):
        make_windows(np.ones(20), 5, 10, 15, 20)
    with pytest.raises(ValueError, match="lookback <= start"):
        make_windows(np.ones(20), 5, 2, 3, 20)
    with pytest.raises(ValueError, match="fractions"):
        chronological_split(100, (0.7, 0.2, 0.2))
    with pytest.raises(ValueError, match="constant"):
        Standardizer().fit(np.ones(100), chronological_split(100))
    with pytest.raises(ValueError, match="same N"):
        fit_linear(np.ones((10, 4)), np.ones((9, 2)))
    fit = fit_linear(np.random.default_rng(0).random((10, 4)), np.ones((10, 2)))
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        fit.predict(np.ones((3, 5)))
    for model in (Linear(8, 3), DLinear(8, 3, kernel=3), NLinear(8, 3), MLP(8, 3), Transformer(8, 3, label_len=4, patch=1)):
        with pytest.raises(ValueError, match=r"\(batch, 8\)"):
            model(torch.ones(2, 9))
    with pytest.raises(ValueError, match="label_len"):
        Transformer(8, 3, label_len=9, patch=1)
    with pytest.raises(ValueError, match="multiples of the patch"):
        Transformer(16, 12, label_len=8, patch=8)
    with pytest.raises(ValueError, match="unknown series"):
        fdata.load_series("ettm1")


# --- the models and training -------------------------------------------------------------------


def test_models_map_windows_to_horizons_and_nlinear_passes_level_shifts():
    torch.manual_seed(0)
    x = torch.randn(5, 16)
    for model in (Linear(16, 4), DLinear(16, 4, kernel=5), NLinear(16, 4), MLP(16, 4), Transformer(16, 4, label_len=8, patch=4),
                  Transformer(16, 4, label_len=8, patch=2, subtract_last=True)):
        model.eval()
        assert model(x).shape == (5, 4), type(model).__name__
    for model in (NLinear(16, 4), Transformer(16, 4, label_len=8, patch=4, subtract_last=True).eval()):
        assert torch.allclose(model(x + 7.0), model(x) + 7.0, atol=1e-4)
    dl = DLinear(16, 4, kernel=5)
    with torch.no_grad():
        dl.trend.bias.zero_()
        dl.season.bias.zero_()
    # the authors' initialization: both weights 1/L, so the forecast starts as the window's mean
    assert torch.allclose(dl(x), x.mean(dim=1, keepdim=True).expand(5, 4), atol=1e-6)


def test_transformer_reads_the_whole_lookback_and_its_decoder_is_causal():
    torch.manual_seed(1)
    model = Transformer(16, 8, label_len=4, patch=2).eval()
    x = torch.randn(3, 16)
    y = model(x)
    x2 = x.clone()
    x2[:, 0] += 5.0  # the oldest value reaches every forecast through the encoder
    assert (model(x2) - y).abs().min() > 0
    # causal decoder: a later decoder token cannot change an earlier one's output
    memory = torch.randn(3, 8, 64)
    h = torch.randn(3, 6, 64)
    block = model.decoder[0]
    h2 = h.clone()
    h2[:, 4:] += 3.0
    assert torch.allclose(block(h, memory)[:, :4], block(h2, memory)[:, :4], atol=1e-6)
    assert not torch.allclose(block(h, memory)[:, 4:], block(h2, memory)[:, 4:], atol=1e-3)


def test_training_keeps_the_best_validation_epoch_and_approaches_the_closed_form(one_thread):
    w = _windows(T=700, L=24, H=6, seed=6)
    torch.manual_seed(0)
    model, history = train_forecaster(Linear(24, 6), w["train"], w["val"], TrainConfig(lr=1e-2, epochs=6, seed=0))
    val = mse(predict(model, w["val"].X), w["val"].Y)
    assert val == pytest.approx(min(h["val_mse"] for h in history), rel=1e-5)
    closed = mse(fit_linear(w["train"].X, w["train"].Y).predict(w["val"].X), w["val"].Y)
    assert val < 1.5 * closed + 0.02, (val, closed)
    assert [h["lr"] for h in history[:3]] == [1e-2, 5e-3, 2.5e-3]  # halved after every epoch
    with pytest.raises(ValueError, match="batch"):
        train_forecaster(Linear(24, 6), type(w["val"])(w["val"].X[:5], w["val"].Y[:5], w["val"].starts[:5]), w["val"])


# --- the data ----------------------------------------------------------------------------------


def test_the_three_series_load_from_the_installed_packages():
    taylor, seattle, co2 = fdata.load_taylor(), fdata.load_seattle_temps(), fdata.load_co2()
    assert len(taylor) == 4032 and taylor.values[:3].tolist() == [22262.0, 21756.0, 22247.0] and taylor.period == 336
    assert len(seattle) == 8760 and seattle.extra["raw_rows"] == 8759 and seattle.n_interpolated == 1
    assert (np.diff(seattle.index) == np.timedelta64(1, "h")).all()
    assert len(co2) == 2284 and co2.n_interpolated == 59 and not np.isnan(co2.values).any()
    assert co2.values[0] == 316.1 and co2.index[0].strftime("%Y-%m-%d") == "1958-03-29"


@pytest.mark.slow
def test_loaders_agree_with_the_packages_own_loaders():
    """Peers: pmdarima's load_taylor, statsmodels' co2.load_pandas, vega_datasets' seattle_temps (a local file)."""
    from pmdarima.datasets import load_taylor
    from statsmodels.datasets import co2
    from vega_datasets import data

    assert np.array_equal(fdata.load_taylor().values, load_taylor())
    raw = co2.load_pandas().data["co2"]
    ours = fdata.load_co2()
    assert int(raw.isna().sum()) == ours.n_interpolated
    assert np.array_equal(ours.values[~raw.isna().to_numpy()], raw.dropna().to_numpy())
    assert data.seattle_temps.is_local
    frame = data.seattle_temps()
    ours = fdata.load_seattle_temps()
    on_grid = ours.index.get_indexer(frame["date"])
    assert (on_grid >= 0).all() and np.array_equal(ours.values[on_grid], frame["temp"].to_numpy())


def test_a_missing_package_fails_with_the_pip_command(monkeypatch):
    monkeypatch.setattr(fdata.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match=r"pip install pmdarima==\d"):
        fdata.load_taylor()


# --- the experiment and its shipped results -----------------------------------------------------


def test_one_experiment_run_trains_and_scores_on_the_chapters_windows(one_thread):
    from lablib.forecast.experiment import prepare, run_one, sample_windows

    row = run_one(("co2", 24, "DLinear", 0), epochs=1)
    _, _, _, w = prepare("co2", 24, 104)
    assert row["n_test"] == len(w["test"]) and row["epochs_run"] == 1 and row["samples"]["windows"] == sample_windows(len(w["test"]))
    assert np.array(row["samples"]["forecasts"]).shape == (8, 24)
    assert 0 < row["test_mse"] < 1.0, row["test_mse"]  # DLinear's mean initialization is already a fair forecast


def test_the_shipped_results_cover_every_run_on_todays_windows():
    from lablib.forecast.experiment import all_jobs, load_results, prepare

    results = load_results()
    done = {(r["series"], r["horizon"], r["model"], r["seed"]) for r in results["rows"]}
    assert done == set(all_jobs()), sorted(set(all_jobs()) ^ done)
    n_test = {key: len(prepare(*key)[3]["test"]) for key in {(r["series"], r["horizon"], r["lookback"]) for r in results["rows"]}}
    for r in results["rows"]:
        assert r["n_test"] == n_test[r["series"], r["horizon"], r["lookback"]], r
        assert np.isfinite(r["test_mse"]) and r["best_epoch"] <= r["epochs_run"] <= 10
    assert "rebuild" in results and results["commit"]
