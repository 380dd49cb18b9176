"""Track 2 systems: the RK4 integrator is accurate, the discrete maps have the Koopman structure they claim."""

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from lablib.koopman import (
    Duffing,
    FiniteKoopmanMap,
    ForcedDuffing,
    LinearSystem,
    Lorenz63,
    Pendulum,
    VanDerPol,
    integrate_rk4,
)

CONTINUOUS = [Pendulum(), Duffing(), VanDerPol(), Lorenz63()]

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



@pytest.mark.parametrize("system", CONTINUOUS, ids=lambda s: type(s).__name__)
def test_rk4_matches_solve_ivp(system):
    """Sampled RK4 trajectories vs scipy's DOP853 at rtol 1e-12, over 50 samples (Lorenz: 100 samples = 1 time unit).

    Measured max error relative to the state's scale: pendulum 3e-10, Duffing 4e-9, Van der Pol
    3e-8, Lorenz 6e-8 (its errors grow like exp(0.9 t)). Bound: 1e-6.
    """
    steps = 100 if isinstance(system, Lorenz63) else 50
    x0 = system.sample_initial_conditions(3, seed=1)
    ours = system.simulate(x0, steps)
    t_eval = np.arange(steps + 1) * system.dt
    for i in range(3):
        sol = solve_ivp(lambda t, x: system.rhs(x[None])[0], (0, t_eval[-1]), x0[i], method="DOP853",
                        t_eval=t_eval, rtol=1e-12, atol=1e-12)
        scale = np.abs(sol.y).max()
        assert np.abs(ours[i] - sol.y.T).max() < 1e-6 * scale


def test_rk4_is_fourth_order():
    """Halving h divides the global error by ~2^4 = 16 (measured 15.9 on the pendulum)."""
    f = Pendulum().rhs
    x0 = np.array([[1.5, 0.3]])
    ref = integrate_rk4(f, x0, 1.0, 5, substeps=400)[:, -1]
    e1 = np.abs(integrate_rk4(f, x0, 1.0, 5, substeps=10)[:, -1] - ref).max()
    e2 = np.abs(integrate_rk4(f, x0, 1.0, 5, substeps=20)[:, -1] - ref).max()
    assert 14 < e1 / e2 < 18


def test_default_step_is_converged():
    """The default sampling (dt 0.1, h = 0.01) agrees with h = 0.0025 to 1e-7 over 100 samples (measured 1.8e-8)."""
    s = Duffing()
    x0 = s.sample_initial_conditions(4, seed=0)
    fine = integrate_rk4(s.rhs, x0, s.dt, 100, substeps=4 * s.substeps)
    assert np.abs(s.simulate(x0, 100) - fine).max() < 1e-7


def test_shapes_and_seeds():
    s = VanDerPol()
    a = s.trajectories(5, 20, seed=3)
    assert a.shape == (5, 21, 2)
    np.testing.assert_array_equal(a, s.trajectories(5, 20, seed=3))
    assert not np.array_equal(a, s.trajectories(5, 20, seed=4))
    single = s.simulate(a[0, 0], 20)
    assert single.shape == (21, 2)
    np.testing.assert_allclose(single, a[0], rtol=0, atol=0)


def test_pendulum_conserves_energy():
    """Undamped pendulum: E = omega^2 / 2 - cos(theta) constant to 1e-8 over 200 samples."""
    tr = Pendulum().trajectories(4, 200, seed=0)
    E = tr[..., 1] ** 2 / 2 - np.cos(tr[..., 0])
    assert np.abs(E - E[:, :1]).max() < 1e-8


def test_linear_system_has_the_requested_eigenvalues():
    lam = np.array([0.95, 0.8 + 0.4j, 0.8 - 0.4j, -0.5, 0.3])
    s = LinearSystem.from_eigenvalues(lam, seed=2)
    assert np.isrealobj(s.A)
    np.testing.assert_allclose(np.sort_complex(s.eigenvalues), np.sort_complex(lam), atol=1e-12)
    tr = s.simulate(np.ones(5), 3)
    np.testing.assert_allclose(tr[3], np.linalg.matrix_power(s.A, 3) @ np.ones(5), atol=1e-13)


def test_finite_koopman_map_eigenfunctions_are_exact():
    """phi(F(x)) = lambda phi(x) for phi_a = x1, phi_b = x2 - c/(a^2 - b) x1^2, phi_{a^2} = x1^2."""
    s = FiniteKoopmanMap(a=0.9, b=0.5, c=1.3)
    tr = s.trajectories(10, 5, seed=0)
    phi = s.eigenfunctions(tr)  # (10, 6, 3)
    np.testing.assert_allclose(phi[:, 1:], phi[:, :-1] * s.koopman_eigenvalues, atol=1e-14)
    z = np.concatenate([tr, tr[..., :1] ** 2], axis=-1)  # (x1, x2, x1^2)
    np.testing.assert_allclose(z[:, 1:], z[:, :-1] @ s.lifted_matrix.T, atol=1e-14)


def test_forced_systems_take_inputs():
    s = ForcedDuffing()
    u = np.full((2, 30, 1), 0.5)
    with_u = s.simulate(s.sample_initial_conditions(2), 30, u=u)
    without = s.simulate(s.sample_initial_conditions(2), 30)
    assert with_u.shape == (2, 31, 2) and not np.allclose(with_u, without)
    np.testing.assert_array_equal(without, Duffing().trajectories(2, 30))  # u = 0 is the unforced system
    m = FiniteKoopmanMap(controlled=True)
    tr = m.simulate([0.5, 0.0], 1, u=[[2.0]])
    np.testing.assert_allclose(tr[1], [0.45, 0.25 + 2.0])


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: Duffing().simulate([1.0, 2.0, 3.0], 5), "n_state = 2"),
        (lambda: Duffing().simulate([np.nan, 0.0], 5), "NaN or Inf"),
        (lambda: Duffing().simulate([1.0, 0.0], 0), "steps must be"),
        (lambda: Duffing().simulate([1.0, 0.0], 5, u=np.zeros((5, 1))), "has no input"),
        (lambda: ForcedDuffing().simulate([1.0, 0.0], 5, u=np.zeros((4, 1))), "one input per step"),
        (lambda: LinearSystem(np.ones((2, 3))), "square"),
        (lambda: LinearSystem.from_eigenvalues([0.5 + 0.5j, 0.1]), "conjugate"),
        (lambda: FiniteKoopmanMap(a=0.5, b=0.25), "collide"),
        (lambda: integrate_rk4(Duffing().rhs, np.zeros((1, 2)), -0.1, 3), "dt must be"),
    ],
)
def test_bad_inputs_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()
