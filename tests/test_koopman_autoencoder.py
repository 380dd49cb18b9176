"""Koopman autoencoder and MLP step model: short training smoke tests, the forecast is K iterated, checkpoints round-trip.

The long training (the one that beats EDMD) is not a test: see ``lablib.koopman.compare``.
"""

import numpy as np
import pytest
import torch

from lablib.koopman import (
    Duffing,
    KoopmanAutoencoder,
    LiftedControlModel,
    MLPStepModel,
    decoder_readout,
    encoder_lift,
    forecast_rmse,
    load_checkpoint,
    save_checkpoint,
    snapshot_pairs,
    train_koopman_autoencoder,
    train_step_model,
)

@pytest.fixture(autouse=True)
def one_blas_thread():
    """NumPy/SciPy's OpenBLAS spawns a thread per host core; on a shared 2-core box that makes each
    small lstsq ~300x slower. One thread keeps these tests fast (threadpoolctl comes with pydmd)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        yield
        return
    with threadpool_limits(1):
        yield



pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data():
    return Duffing().trajectories(20, 40, seed=0)


def test_autoencoder_loss_decreases(data):
    """150 steps (about 1 s): every loss term ends well below where it started (measured, mean of first / last 10: total 1.6 -> 0.09)."""
    model = KoopmanAutoencoder(2, 6, (32, 32), seed=0)
    hist = train_koopman_autoencoder(model, data, 150, horizon=5, batch=64, progress=False)
    assert list(hist.columns) == ["step", "total", "reconstruction", "latent", "prediction"]
    assert len(hist) == 150
    first, last = hist.iloc[:10].mean(), hist.iloc[-10:].mean()
    assert last["total"] < 0.2 * first["total"]
    assert last["prediction"] < 0.2 * first["prediction"]
    assert last["reconstruction"] < 0.2 * first["reconstruction"]
    # the model normalizes with the data's statistics
    flat = torch.as_tensor(data.reshape(-1, 2), dtype=torch.float32)
    torch.testing.assert_close(model.shift, flat.mean(0))


def test_training_is_deterministic(data):
    runs = []
    for _ in range(2):
        model = KoopmanAutoencoder(2, 4, (16,), seed=3)
        runs.append(train_koopman_autoencoder(model, data, 20, horizon=3, batch=32, seed=5, progress=False)["total"].to_numpy())
    np.testing.assert_array_equal(runs[0], runs[1])


def test_forecast_iterates_K_in_latent_space(data):
    """predict(x0, k) = dec(K^k enc(x0)): only the encoder and decoder are nonlinear."""
    model = KoopmanAutoencoder(2, 4, (16, 16), seed=1, dtype=torch.float64)
    x0 = torch.as_tensor(data[:3, 0])
    out = model.predict(x0, 7)
    assert out.shape == (3, 8, 2) and out.dtype == torch.float64
    Kmat = model.koopman_matrix
    with torch.no_grad():
        z = model.encode(x0)
        manual = model.decode(z @ torch.linalg.matrix_power(Kmat, 7).T)
    torch.testing.assert_close(out[:, 7], manual)
    assert isinstance(model.predict(data[:3, 0], 2), np.ndarray)  # NumPy in, NumPy out
    assert model.eigenvalues().shape == (4,)


def test_mlp_step_model_trains_and_iterates(data):
    """300 steps (about 1.5 s): the 5-step forecast RMSE on the data drops (measured 0.64 -> 0.21); step() iterates."""
    model = MLPStepModel(2, (32, 32), seed=0)
    before = forecast_rmse(model.predict(data[:, 0], 5), data[:, :6]).mean()
    hist = train_step_model(model, data, 300, horizon=5, batch=64, progress=False)
    assert list(hist.columns) == ["step", "total", "prediction"]
    after = forecast_rmse(model.predict(data[:, 0], 5), data[:, :6]).mean()
    assert after < 0.5 * before
    x0 = torch.as_tensor(data[:2, 0], dtype=torch.float32)
    out = model.predict(x0, 3)
    with torch.no_grad():
        torch.testing.assert_close(out[:, 3], model.step(model.step(model.step(x0))))


def test_checkpoint_round_trip(tmp_path, data):
    model = KoopmanAutoencoder(2, 5, (8, 8), seed=2)
    train_koopman_autoencoder(model, data, 5, horizon=3, progress=False)
    path = tmp_path / "ae.pt"
    save_checkpoint(model, path, {"system": "Duffing", "steps": 5})
    loaded, meta = load_checkpoint(path)
    assert meta == {"system": "Duffing", "steps": 5} and isinstance(loaded, KoopmanAutoencoder)
    np.testing.assert_array_equal(loaded.predict(data[:4, 0], 10), model.predict(data[:4, 0], 10))
    mlp = MLPStepModel(2, (8,), seed=0, dtype=torch.float64)
    save_checkpoint(mlp, tmp_path / "mlp.pt")
    loaded, meta = load_checkpoint(tmp_path / "mlp.pt")
    assert meta == {} and loaded.dtype == torch.float64
    with pytest.raises(ValueError, match="JSON"):
        save_checkpoint(model, tmp_path / "x.pt", {"array": np.ones(2)})
    torch.save({"a": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a lablib.koopman checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_encoder_as_lift_for_control():
    """A (here untrained) encoder plugs into the lifted control model; shapes line up, decoder readout works."""
    from lablib.koopman import ForcedDuffing

    s = ForcedDuffing()
    U = np.random.default_rng(0).uniform(-1, 1, (10, 20, 1))
    tr = s.trajectories(10, 20, u=U)
    X, Y = snapshot_pairs(tr)
    model = KoopmanAutoencoder(2, 6, (16,), seed=0)
    m = LiftedControlModel(encoder_lift(model)).fit(X, Y, U.reshape(-1, 1))
    assert m.K.shape == (6, 6) and m.B.shape == (6, 1) and m.C.shape == (2, 6)
    assert m.predict(tr[:, 0], U).shape == tr.shape
    md = LiftedControlModel(encoder_lift(model), decode=decoder_readout(model)).fit(X, Y, U.reshape(-1, 1))
    assert md.predict(tr[0, 0], U[0]).shape == tr[0].shape


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda d: train_koopman_autoencoder(KoopmanAutoencoder(3, 4), d, 5, progress=False), "n_state=3"),
        (lambda d: train_koopman_autoencoder(KoopmanAutoencoder(2, 4), d[:, :4], 5, horizon=5, progress=False), "too short"),
        (lambda d: train_koopman_autoencoder(KoopmanAutoencoder(2, 4), d, 0, progress=False), "steps"),
        (lambda d: train_koopman_autoencoder(MLPStepModel(2), d, 5, progress=False), "KoopmanAutoencoder"),
        (lambda d: train_koopman_autoencoder(KoopmanAutoencoder(2, 4), d, 5, weights={"recon": 1.0}, progress=False), "unknown loss"),
        (lambda d: train_step_model(MLPStepModel(2), np.where(d > 1, np.nan, d), 5, progress=False), "NaN or Inf"),
        (lambda d: KoopmanAutoencoder(2, 4).predict(np.ones(3), 2), "n_state = 2"),
        (lambda d: KoopmanAutoencoder(2, 0), "latent_dim"),
    ],
)
def test_bad_inputs_raise(call, match, data):
    with pytest.raises(ValueError, match=match):
        call(data)


def test_compare_forecasts_smoke():
    """The comparison driver runs end to end on a tiny budget (the real run is ``python -m lablib.koopman.compare``)."""
    from lablib.koopman.compare import compare_forecasts

    res = compare_forecasts("pendulum", n_train=10, train_length=30, n_test=4, eval_steps=10, latent_dim=4,
                            hidden=8, steps=3, horizon=5, progress=False)
    assert list(res["table"]["model"]) == ["EDMD", "Koopman autoencoder", "MLP step model"]
    assert np.isfinite(res["table"]["rmse_mean"]).all()
    assert len(res["per_step"]) == 3 * 11 and len(res["edmd_menu"]) == 14
    with pytest.raises(ValueError, match="system must be one of"):
        compare_forecasts("lorenz")
