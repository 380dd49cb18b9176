"""Dynamical systems to learn Koopman models from: simulators that generate trajectories offline.

Every system has ``n_state``, a sampling step ``dt``, ``simulate(x0, steps, u=None)`` and
``trajectories(n_traj, steps, seed)``. Shapes (NumPy, float64):

* x0 ``(n_state,)`` -> trajectory ``(steps + 1, n_state)``;
  x0 ``(n_traj, n_state)`` -> trajectories ``(n_traj, steps + 1, n_state)``; row 0 is x0.
* inputs u (forced systems only) ``(steps, n_input)`` or ``(n_traj, steps, n_input)``: u_k acts on
  the step from x_k to x_{k+1} (held constant over it, a zero-order hold).

Discrete maps (``LinearSystem``, ``FiniteKoopmanMap``) are iterated exactly. Continuous systems
x' = f(x, u) are integrated with the classical fixed-step Runge-Kutta 4 method (``integrate_rk4``),
vectorized over initial conditions, with ``substeps`` RK4 steps of h = dt / substeps per sample.
RK4's global error is O(h^4): with the defaults (h = 0.01, or 0.0025 for Lorenz) the sampled
trajectories agree with ``scipy.integrate.solve_ivp`` (DOP853, rtol = 1e-12) to a relative
3e-10 (pendulum), 4e-9 (Duffing), 3e-8 (Van der Pol) over 50 samples and 7e-8 (Lorenz, 100
samples), far below what any Koopman fit resolves (tests/test_koopman_systems.py).

The systems:

=====================  =======================================================  ==========
system                 equations                                                 dt (h)
=====================  =======================================================  ==========
``LinearSystem``       x' = A x (+ B u), A built from chosen eigenvalues         discrete
``FiniteKoopmanMap``   x1' = a x1,  x2' = b x2 + c x1^2 (+ u)                    discrete
``Pendulum``           theta'' = -(g/L) sin(theta) - d theta'                   0.1 (0.01)
``Duffing``            x'' = -delta x' - alpha x - beta x^3                     0.1 (0.01)
``ForcedDuffing``      the same plus a force u                                   0.1 (0.01)
``VanDerPol``          x'' = mu (1 - x^2) x' - x                                0.1 (0.01)
``Lorenz63``           x' = s(y-x), y' = x(r-z) - y, z' = xy - b z               0.01 (0.0025)
=====================  =======================================================  ==========
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from lablib.koopman._validate import as_array, check_positive_int

__all__ = [
    "rk4_step",
    "integrate_rk4",
    "DynamicalSystem",
    "ContinuousSystem",
    "LinearSystem",
    "FiniteKoopmanMap",
    "Pendulum",
    "Duffing",
    "ForcedDuffing",
    "VanDerPol",
    "Lorenz63",
]


# ----------------------------------------------------------------------------- integrator


def rk4_step(f: Callable, x: np.ndarray, h: float, u: np.ndarray | None = None) -> np.ndarray:
    """One classical Runge-Kutta 4 step of x' = f(x, u) with step h; x (n_traj, n_state).

    k1 = f(x), k2 = f(x + h/2 k1), k3 = f(x + h/2 k2), k4 = f(x + h k3),
    x_next = x + h/6 (k1 + 2 k2 + 2 k3 + k4). u is held constant over the step.
    """
    k1 = f(x, u)
    k2 = f(x + 0.5 * h * k1, u)
    k3 = f(x + 0.5 * h * k2, u)
    k4 = f(x + h * k3, u)
    return x + (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)


def integrate_rk4(
    f: Callable,
    x0: np.ndarray,
    dt: float,
    steps: int,
    *,
    substeps: int = 1,
    u: np.ndarray | None = None,
) -> np.ndarray:
    """Sample x' = f(x, u) every ``dt`` for ``steps`` samples, from x0 (n_traj, n_state).

    Each sample interval takes ``substeps`` RK4 steps of h = dt / substeps (accuracy without
    storing the intermediate states). ``f(x, u)`` maps (n_traj, n_state) to (n_traj, n_state);
    ``u`` is None or (n_traj, steps, n_input), u[:, k] held over [k dt, (k+1) dt).
    Returns (n_traj, steps + 1, n_state), with out[:, 0] = x0.
    """
    steps = check_positive_int(steps, "steps")
    substeps = check_positive_int(substeps, "substeps")
    if not (math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a finite positive number; got {dt!r}")
    h = dt / substeps
    out = np.empty((x0.shape[0], steps + 1, x0.shape[1]), dtype=np.float64)
    out[:, 0] = x = x0
    for k in range(steps):
        uk = None if u is None else u[:, k]
        for _ in range(substeps):
            x = rk4_step(f, x, h, uk)
        out[:, k + 1] = x
    return out


# ----------------------------------------------------------------------------- base classes


class DynamicalSystem:
    """Base class: shape checks and sampling shared by all systems.

    Subclasses set ``n_state``, ``n_input`` (0 for autonomous systems), ``dt``, ``state_names``,
    ``init_low`` / ``init_high`` (the box initial conditions are drawn from) and implement ``_run``.
    """

    n_state: int
    n_input: int = 0
    dt: float = 1.0
    state_names: tuple[str, ...] = ()

    def _run(self, x0: np.ndarray, steps: int, u: np.ndarray | None) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def simulate(self, x0, steps: int, u=None) -> np.ndarray:
        """Trajectory from x0 (n_state,) -> (steps+1, n_state), or x0 (n_traj, n_state) -> (n_traj, steps+1, n_state).

        ``u`` (forced systems): (steps, n_input) for a single x0, (n_traj, steps, n_input) for many.
        """
        steps = check_positive_int(steps, "steps")
        x0 = as_array(x0, "x0", ndim=(1, 2), dtype=np.float64)
        single = x0.ndim == 1
        if x0.shape[-1] != self.n_state:
            raise ValueError(f"x0 must have last dim n_state = {self.n_state}; got shape {x0.shape}")
        x0 = x0[None] if single else x0
        if u is None and self.n_input > 0:
            u = np.zeros((x0.shape[0], steps, self.n_input))
        elif u is not None:
            if self.n_input == 0:
                raise ValueError(f"{type(self).__name__} has no input; got u of shape {np.shape(u)}")
            u = as_array(u, "u", ndim=2 if single else 3, dtype=np.float64)
            u = u[None] if single else u
            if u.shape != (x0.shape[0], steps, self.n_input):
                want = (steps, self.n_input) if single else (x0.shape[0], steps, self.n_input)
                raise ValueError(f"u must have shape {want} (one input per step); got {u.shape[1:] if single else u.shape}")
        out = self._run(x0, steps, u)
        if not np.all(np.isfinite(out)):
            raise FloatingPointError(f"{type(self).__name__} trajectory blew up (NaN/Inf); use smaller initial states or fewer steps")
        return out[0] if single else out

    def sample_initial_conditions(self, n_traj: int, seed: int = 0) -> np.ndarray:
        """n_traj initial states (n_traj, n_state), uniform in the box [init_low, init_high] (seeded)."""
        n_traj = check_positive_int(n_traj, "n_traj")
        rng = np.random.default_rng(seed)
        low, high = np.asarray(self.init_low, float), np.asarray(self.init_high, float)
        return rng.uniform(low, high, size=(n_traj, self.n_state))

    def trajectories(self, n_traj: int, steps: int, seed: int = 0, u=None) -> np.ndarray:
        """``simulate`` from ``sample_initial_conditions(n_traj, seed)``: (n_traj, steps + 1, n_state)."""
        return self.simulate(self.sample_initial_conditions(n_traj, seed), steps, u=u)


class ContinuousSystem(DynamicalSystem):
    """x' = f(x, u), sampled every ``dt`` with ``substeps`` RK4 steps per sample (see ``integrate_rk4``)."""

    substeps: int = 10

    def rhs(self, x: np.ndarray, u: np.ndarray | None = None) -> np.ndarray:  # pragma: no cover
        """The vector field f(x, u): x (n_traj, n_state) -> (n_traj, n_state)."""
        raise NotImplementedError

    def _run(self, x0, steps, u):
        return integrate_rk4(self.rhs, x0, self.dt, steps, substeps=self.substeps, u=u)


# ----------------------------------------------------------------------------- discrete maps


class LinearSystem(DynamicalSystem):
    """The discrete linear system x_{k+1} = A x_k (+ B u_k); its Koopman eigenvalues are eig(A).

    Build it from a matrix (``LinearSystem(A)``) or from the eigenvalues you want
    (``LinearSystem.from_eigenvalues``). ``dt`` only labels time: DMD's continuous-time
    eigenvalues log(lambda) / dt use it.
    """

    def __init__(self, A, B=None, *, dt: float = 1.0, init_scale: float = 1.0):
        A = as_array(A, "A", ndim=2, dtype=np.float64)
        if A.shape[0] != A.shape[1]:
            raise ValueError(f"A must be square (n_state, n_state); got shape {A.shape}")
        self.A = A
        self.n_state = A.shape[0]
        if B is not None:
            B = as_array(B, "B", ndim=2, dtype=np.float64)
            if B.shape[0] != self.n_state:
                raise ValueError(f"B must have shape (n_state={self.n_state}, n_input); got {B.shape}")
        self.B = B
        self.n_input = 0 if B is None else B.shape[1]
        self.dt = float(dt)
        self.state_names = tuple(f"x{i + 1}" for i in range(self.n_state))
        self.init_low, self.init_high = [-init_scale] * self.n_state, [init_scale] * self.n_state

    @classmethod
    def from_eigenvalues(cls, eigenvalues, *, n_input: int = 0, seed: int = 0, dt: float = 1.0) -> "LinearSystem":
        """A real A = Q D Q^T with the given eigenvalues and a random orthogonal Q (seeded).

        Complex eigenvalues must come with their conjugates (A is real); each pair a +- ib becomes
        the real 2x2 block [[a, -b], [b, a]] of D. With ``n_input > 0`` a random B (n_state, n_input)
        is drawn too.
        """
        lam = as_array(eigenvalues, "eigenvalues", ndim=1, dtype=np.complex128)
        rng = np.random.default_rng(seed)
        n = lam.size
        D = np.zeros((n, n))
        used = np.zeros(n, bool)
        i = 0
        for j in range(n):
            if used[j]:
                continue
            used[j] = True
            if abs(lam[j].imag) <= 1e-14 * max(1.0, abs(lam[j])):
                D[i, i] = lam[j].real
                i += 1
                continue
            partner = [k for k in range(n) if not used[k] and np.isclose(lam[k], np.conj(lam[j]), rtol=1e-12, atol=1e-14)]
            if not partner:
                raise ValueError(f"complex eigenvalue {lam[j]} needs its conjugate in the list (A is real)")
            used[partner[0]] = True
            a, b = lam[j].real, abs(lam[j].imag)
            D[i : i + 2, i : i + 2] = [[a, -b], [b, a]]
            i += 2
        Q, R = np.linalg.qr(rng.standard_normal((n, n)))
        Q = Q * np.sign(np.diag(R))  # sign fix: makes Q Haar-distributed and the result reproducible
        B = rng.standard_normal((n, n_input)) if n_input > 0 else None
        return cls(Q @ D @ Q.T, B, dt=dt)

    @property
    def eigenvalues(self) -> np.ndarray:
        """eig(A) (n_state,), complex, sorted by decreasing modulus then angle (the Koopman eigenvalues)."""
        lam = np.linalg.eigvals(self.A)
        return lam[np.lexsort((np.angle(lam), -np.abs(lam)))]

    def _run(self, x0, steps, u):
        out = np.empty((x0.shape[0], steps + 1, self.n_state))
        out[:, 0] = x = x0
        for k in range(steps):
            x = x @ self.A.T  # rows are states: (A x)^T = x^T A^T
            if u is not None:
                x = x + u[:, k] @ self.B.T
            out[:, k + 1] = x
        return out


@dataclass
class FiniteKoopmanMap(DynamicalSystem):
    """x1' = a x1,  x2' = b x2 + c x1^2 (+ u): nonlinear, yet with an exactly finite Koopman subspace.

    On the observables (x1, x2, x1^2) the map is linear,

        [x1, x2, x1^2]' = [[a, 0, 0], [0, b, c], [0, 0, a^2]] [x1, x2, x1^2]  (+ [0, u, 0]),

    so the Koopman eigenvalues are {a, b, a^2} with eigenfunctions
    phi_a = x1, phi_{a^2} = x1^2 and phi_b = x2 - c / (a^2 - b) x1^2 (check: phi_b(x') = b phi_b(x)).
    The optional input u enters x2 additively, so the lifted model stays exactly linear with inputs.
    (The discrete-time cousin of the example in Brunton et al., PLoS ONE 2016.)
    """

    a: float = 0.9
    b: float = 0.5
    c: float = 1.0
    controlled: bool = False
    init_low: list = field(default_factory=lambda: [-1.0, -1.0])
    init_high: list = field(default_factory=lambda: [1.0, 1.0])

    n_state = 2
    state_names = ("x1", "x2")

    def __post_init__(self):
        for name in ("a", "b", "c"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be finite; got {getattr(self, name)!r}")
        if math.isclose(self.b, self.a**2):
            raise ValueError(f"b = a^2 = {self.b} makes the eigenvalues b and a^2 collide (a Jordan block); pick b != a^2")
        self.n_input = 1 if self.controlled else 0

    @property
    def koopman_eigenvalues(self) -> np.ndarray:
        """The exact Koopman eigenvalues (a, b, a^2) of the finite subspace, (3,)."""
        return np.array([self.a, self.b, self.a**2])

    @property
    def lifted_matrix(self) -> np.ndarray:
        """K (3, 3) with z' = K z on z = (x1, x2, x1^2)."""
        return np.array([[self.a, 0.0, 0.0], [0.0, self.b, self.c], [0.0, 0.0, self.a**2]])

    def eigenfunctions(self, x) -> np.ndarray:
        """(phi_a, phi_b, phi_{a^2}) at states x (..., 2) -> (..., 3), matching ``koopman_eigenvalues``."""
        x = as_array(x, "x", ndim=(1, 2, 3), dtype=np.float64)
        if x.shape[-1] != 2:
            raise ValueError(f"x must have last dim 2; got shape {x.shape}")
        x1, x2 = x[..., 0], x[..., 1]
        return np.stack([x1, x2 - self.c / (self.a**2 - self.b) * x1**2, x1**2], axis=-1)

    def step(self, x: np.ndarray, u: np.ndarray | None = None) -> np.ndarray:
        """One map step on states x (n_traj, 2); u (n_traj, 1) or None."""
        x1, x2 = x[:, 0], x[:, 1]
        x2_next = self.b * x2 + self.c * x1**2
        if u is not None:
            x2_next = x2_next + u[:, 0]
        return np.stack([self.a * x1, x2_next], axis=1)

    def _run(self, x0, steps, u):
        out = np.empty((x0.shape[0], steps + 1, 2))
        out[:, 0] = x = x0
        for k in range(steps):
            x = self.step(x, None if u is None else u[:, k])
            out[:, k + 1] = x
        return out


# ----------------------------------------------------------------------------- continuous systems


@dataclass
class Pendulum(ContinuousSystem):
    """theta'' = -(g / L) sin(theta) - damping * theta'; state (theta, omega = theta').

    Undamped by default: every orbit is periodic, but the period grows with the amplitude, so the
    Koopman spectrum is not a few isolated eigenvalues and a fixed linear model dephases over time.
    Initial conditions: theta in [-2, 2], omega in [-1, 1] (all below the separatrix, no rotations).
    """

    g_over_l: float = 1.0
    damping: float = 0.0
    dt: float = 0.1
    substeps: int = 10
    init_low: list = field(default_factory=lambda: [-2.0, -1.0])
    init_high: list = field(default_factory=lambda: [2.0, 1.0])

    n_state = 2
    state_names = ("theta", "omega")

    def rhs(self, x, u=None):
        theta, omega = x[:, 0], x[:, 1]
        return np.stack([omega, -self.g_over_l * np.sin(theta) - self.damping * omega], axis=1)


@dataclass
class Duffing(ContinuousSystem):
    """x'' = -delta x' - alpha x - beta x^3; state (x, v = x').

    Defaults alpha = -1, beta = 1, delta = 0.5: a damped double well with stable equilibria at
    x = +-1 (Koopman eigenfunctions carry the basins of attraction). Initial conditions in [-2, 2]^2.
    """

    alpha: float = -1.0
    beta: float = 1.0
    delta: float = 0.5
    dt: float = 0.1
    substeps: int = 10
    init_low: list = field(default_factory=lambda: [-2.0, -2.0])
    init_high: list = field(default_factory=lambda: [2.0, 2.0])

    n_state = 2
    state_names = ("x", "v")

    def rhs(self, x, u=None):
        pos, vel = x[:, 0], x[:, 1]
        acc = -self.delta * vel - self.alpha * pos - self.beta * pos**3
        if u is not None:
            acc = acc + u[:, 0]
        return np.stack([vel, acc], axis=1)


@dataclass
class ForcedDuffing(Duffing):
    """Duffing with a control force: x'' = -delta x' - alpha x - beta x^3 + u (u held over each dt)."""

    def __post_init__(self):
        self.n_input = 1


@dataclass
class VanDerPol(ContinuousSystem):
    """x'' = mu (1 - x^2) x' - x; state (x, v = x'). One attracting limit cycle (mu = 1); box [-3, 3]^2."""

    mu: float = 1.0
    dt: float = 0.1
    substeps: int = 10
    init_low: list = field(default_factory=lambda: [-3.0, -3.0])
    init_high: list = field(default_factory=lambda: [3.0, 3.0])

    n_state = 2
    state_names = ("x", "v")

    def rhs(self, x, u=None):
        pos, vel = x[:, 0], x[:, 1]
        return np.stack([vel, self.mu * (1.0 - pos**2) * vel - pos], axis=1)


@dataclass
class Lorenz63(ContinuousSystem):
    """x' = sigma (y - x), y' = x (rho - z) - y, z' = x y - beta z (sigma 10, rho 28, beta 8/3).

    Chaotic: nearby trajectories separate like exp(0.9 t), so no model (and no integrator) tracks
    a trajectory for long; compare statistics, or short horizons. dt = 0.01 with 4 RK4 substeps.
    Initial conditions in the box [-20, 20] x [-25, 25] x [5, 45] around the attractor.
    """

    sigma: float = 10.0
    rho: float = 28.0
    beta: float = 8.0 / 3.0
    dt: float = 0.01
    substeps: int = 4
    init_low: list = field(default_factory=lambda: [-20.0, -25.0, 5.0])
    init_high: list = field(default_factory=lambda: [20.0, 25.0, 45.0])

    n_state = 3
    state_names = ("x", "y", "z")

    def rhs(self, x, u=None):
        a, b, c = x[:, 0], x[:, 1], x[:, 2]
        return np.stack([self.sigma * (b - a), a * (self.rho - c) - b, a * b - self.beta * c], axis=1)
