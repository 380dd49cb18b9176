"""Exact DMD: agrees with PyDMD (a peer implementation), recovers known eigenvalues, rejects bad input."""

import warnings

import numpy as np
import pytest
from conftest import require_peer

from lablib.koopman import DMD, LinearSystem, snapshot_pairs

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



def spatiotemporal_data(n=64, m=81, seed=0, noise=1e-3):
    """A field (n, m) of 3 oscillating/decaying spatial patterns plus small noise (so all singular values are distinct)."""
    rng = np.random.default_rng(seed)
    x = np.linspace(-5, 5, n)[:, None]
    t = np.arange(m)[None, :] * 0.1
    f = (
        np.exp(-x**2) * np.cos(2.3 * t) * np.exp(-0.05 * t)
        + np.tanh(x) * np.sin(1.1 * t)
        + 0.5 * np.sin(x) * np.exp(0.02 * t)
    )
    return f + noise * rng.standard_normal((n, m))


def _normalize_modes(P):
    # unit norm and a fixed phase (largest-magnitude entry real and positive): a mode's canonical form
    P = P / np.linalg.norm(P, axis=0)
    idx = np.argmax(np.abs(P), axis=0)
    phase = P[idx, np.arange(P.shape[1])]
    return P * (np.abs(phase) / phase)


@pytest.mark.parametrize("rank", [3, 6])
def test_matches_pydmd(rank):
    """Eigenvalues, exact modes (normalized), amplitude-weighted modes and reconstruction equal PyDMD's.

    Measured max differences (float64, rank 3 / 6): eigenvalues 4e-16 / 7e-15, normalized modes
    4e-15 / 1e-13, b_i phi_i 1e-13 / 1e-12, reconstruction 1e-14 / 2e-13. Bound 1e-10.
    """
    pydmd = require_peer("pydmd", "PyDMD")
    data = spatiotemporal_data()
    ours = DMD(rank, dt=0.1).fit(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyDMD warns about the condition number of noisy data
        theirs = pydmd.DMD(svd_rank=rank, exact=True).fit(data)
    order = np.lexsort((np.round(np.angle(theirs.eigs), 12), -np.round(np.abs(theirs.eigs), 12)))
    lam_t, modes_t, b_t = theirs.eigs[order], theirs.modes[:, order], theirs.amplitudes[order]

    np.testing.assert_allclose(ours.eigenvalues, lam_t, rtol=0, atol=1e-10)
    np.testing.assert_allclose(_normalize_modes(ours.modes), _normalize_modes(modes_t), rtol=0, atol=1e-10)
    # b_i phi_i does not depend on how phi_i is scaled: compare it unnormalized
    np.testing.assert_allclose(ours.modes * ours.amplitudes, modes_t * b_t, rtol=0, atol=1e-10)
    np.testing.assert_allclose(ours.reconstruct(), theirs.reconstructed_data.real, rtol=0, atol=1e-10)


def test_matches_pydmd_on_pairs():
    """fit(X, Y) with explicit snapshot pairs (several trajectories) agrees with PyDMD's fit(X, Y)."""
    pydmd = require_peer("pydmd", "PyDMD")
    s = LinearSystem.from_eigenvalues([0.97, 0.9 + 0.3j, 0.9 - 0.3j, 0.6, -0.4], seed=5)
    X, Y = snapshot_pairs(s.trajectories(4, 10, seed=0), layout="columns")
    ours = DMD(5).fit(X, Y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = pydmd.DMD(svd_rank=5, exact=True).fit(X, Y)
    np.testing.assert_allclose(np.sort_complex(ours.eigenvalues), np.sort_complex(theirs.eigs), atol=1e-10)


def test_recovers_linear_system_eigenvalues_and_forecasts():
    """Observed through a random 40 x 4 lift, DMD with r = 4 recovers eig(A) to 1e-12 and forecasts exactly."""
    lam = np.array([0.99, 0.8 + 0.5j, 0.8 - 0.5j, 0.5])
    s = LinearSystem.from_eigenvalues(lam, seed=1, dt=0.1)
    C = np.random.default_rng(0).standard_normal((40, 4))
    traj = s.simulate(np.random.default_rng(1).standard_normal(4), 30) @ C.T  # (31, 40)
    d = DMD(4, dt=0.1).fit(traj[:20].T)
    np.testing.assert_allclose(d.eigenvalues, s.eigenvalues, atol=1e-12)
    np.testing.assert_allclose(d.continuous_eigenvalues, np.log(s.eigenvalues.astype(complex)) / 0.1, atol=1e-10)
    np.testing.assert_allclose(d.reconstruct(), traj[:20].T, atol=1e-11)
    np.testing.assert_allclose(d.predict(traj[0], 30), traj, atol=1e-10)  # 10 steps past the data
    batch = d.predict(np.stack([traj[0], traj[5]], axis=1), 3)  # x0 (n, 2) -> (2, 4, n)
    np.testing.assert_allclose(batch[1], traj[5:9], atol=1e-11)
    assert d.singular_values[4] < 1e-10 * d.singular_values[0]  # the data really are rank 4


def complex_linear_data(n=30, steps=25, seed=0):
    """A complex, non-Hermitian (and non-normal) 4 x 4 system x_{k+1} = A x_k, observed through a
    complex 30 x 4 lift C: eigenvalues that are not conjugate pairs, complex snapshots whose
    imaginary parts carry half the signal. Returns (data (n, steps + 1), eigenvalues, C A C^+)."""
    rng = np.random.default_rng(seed)
    lam = np.array([0.98 * np.exp(0.3j), 0.9 * np.exp(-1.1j), 0.7 + 0.2j, -0.5 + 0.1j])
    P = rng.standard_normal((4, 4)) + 1j * rng.standard_normal((4, 4))
    A = P @ np.diag(lam) @ np.linalg.inv(P)
    assert not np.allclose(A, A.conj().T) and not np.allclose(A @ A.conj().T, A.conj().T @ A)
    C = rng.standard_normal((n, 4)) + 1j * rng.standard_normal((n, 4))
    z = [rng.standard_normal(4) + 1j * rng.standard_normal(4)]
    for _ in range(steps):
        z.append(A @ z[-1])
    return C @ np.stack(z, axis=1), lam, C @ A @ np.linalg.pinv(C)


def test_complex_snapshots_recover_eigenvalues_modes_and_forecast():
    """Complex data (DMD accepts them; real data cannot tell V from conj(V), nor U^T from U^*):
    eig(A) to 1e-10, every exact mode an eigenvector of the lifted operator C A C^+, the complex
    trajectory rebuilt and forecast 5 steps past the data, and operator = C A C^+.
    Measured: eigenvalues 2e-15, mode residuals 2e-15 (relative), reconstruction and forecast 4e-13,
    operator 2e-15."""
    data, lam, A_lifted = complex_linear_data()
    d = DMD(4).fit(data[:, :21])
    order = np.argsort(np.angle(lam))
    np.testing.assert_allclose(d.eigenvalues[np.argsort(np.angle(d.eigenvalues))], lam[order], rtol=0, atol=1e-10)
    residual = A_lifted @ d.modes - d.modes * d.eigenvalues  # (A phi_i - lambda_i phi_i) for every i
    assert np.abs(residual).max() < 1e-10 * np.abs(d.modes).max()
    rebuilt = d.reconstruct()
    assert np.iscomplexobj(rebuilt) and np.abs(data[:, :21].imag).max() > 1
    np.testing.assert_allclose(rebuilt, data[:, :21], rtol=0, atol=1e-10)
    np.testing.assert_allclose(d.predict(data[:, 0], 25), data.T, rtol=0, atol=1e-10)
    np.testing.assert_allclose(d.operator, A_lifted, rtol=0, atol=1e-10)


def test_complex_snapshot_pairs_match_pydmd():
    """Complex X, Y (explicit pairs) and truncation below the data's rank (r = 3 of 4): eigenvalues,
    normalized exact modes, b_i phi_i and the reconstruction equal PyDMD's to 1e-10.
    Measured: eigenvalues and modes 7e-16, b_i phi_i 4e-14, reconstruction 2e-13."""
    pydmd = require_peer("pydmd", "PyDMD")
    data, _, _ = complex_linear_data(seed=1)
    data = data + 1e-3 * np.random.default_rng(2).standard_normal(data.shape)  # distinct singular values
    for fit_args in ((data,), (data[:, :-1], data[:, 1:])):
        ours = DMD(3).fit(*fit_args)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = pydmd.DMD(svd_rank=3, exact=True).fit(*fit_args)
        order = np.lexsort((np.round(np.angle(theirs.eigs), 12), -np.round(np.abs(theirs.eigs), 12)))
        lam_t, modes_t, b_t = theirs.eigs[order], theirs.modes[:, order], theirs.amplitudes[order]
        np.testing.assert_allclose(ours.eigenvalues, lam_t, rtol=0, atol=1e-10)
        np.testing.assert_allclose(_normalize_modes(ours.modes), _normalize_modes(modes_t), rtol=0, atol=1e-10)
        np.testing.assert_allclose(ours.modes * ours.amplitudes, modes_t * b_t, rtol=0, atol=1e-10)
        if len(fit_args) == 1:
            np.testing.assert_allclose(ours.reconstruct(), theirs.reconstructed_data, rtol=0, atol=1e-10)


def test_rank_none_keeps_numerical_rank():
    s = LinearSystem.from_eigenvalues([0.9, 0.5, 0.2], seed=0)
    C = np.random.default_rng(0).standard_normal((10, 3))
    traj = s.simulate(np.ones(3), 12) @ C.T
    assert DMD().fit(traj.T).rank == 3


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: DMD(2).fit(np.ones((5, 2))), "at least 3 snapshots"),
        (lambda: DMD(2).fit(np.ones((5, 1)), np.ones((5, 1))), "at least 2 snapshot pairs"),
        (lambda: DMD(9).fit(spatiotemporal_data(n=8, m=20)), "beyond the data.*only min"),
        (lambda: DMD(5).fit(np.outer(np.arange(1, 9), np.ones(10))), "numerical rank 1"),
        (lambda: DMD(2).fit(np.ones((4, 6)), np.ones((4, 5))), "same shape"),
        (lambda: DMD(2).fit(np.full((4, 6), np.nan)), "NaN or Inf"),
        (lambda: DMD(2).fit(np.ones(6)), "2-D"),
        (lambda: DMD(0), "rank must be"),
        (lambda: DMD(2).predict(np.ones(3), 2), "not fitted"),
        (lambda: DMD(2).fit(spatiotemporal_data(n=8, m=20)).predict(np.ones(3), 2), "n_features = 8"),
    ],
)
def test_bad_inputs_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()
