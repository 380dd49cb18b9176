"""Extended DMD (Williams, Kevrekidis & Rowley 2015) with pluggable dictionaries.

Convention (Williams et al.'s): samples are **rows**. States X, Y (m, n_state) with Y[j] the
successor of X[j]; a dictionary psi maps states to K features, Psi_X = psi(X) (m, K).
EDMD finds the K x K matrix that best advances every dictionary function by one step:

    Psi_Y ~ Psi_X Kmat,   Kmat = G^+ A,   G = Psi_X^T Psi_X / m,   A = Psi_X^T Psi_Y / m

(the least-squares solution; by default computed by ``lstsq`` on Psi_X directly, which equals
G^+ A but avoids squaring the condition number). Then:

* Koopman eigenvalues: the eigenvalues lambda_i of Kmat;
* eigenfunctions: with Kmat xi_i = lambda_i xi_i,  phi_i(x) = psi(x) xi_i, so that
  phi_i(x') = psi(x') xi_i ~ psi(x) Kmat xi_i = lambda_i phi_i(x);
* the state from the dictionary: every dictionary here contains the state coordinates, so
  x = psi(x) Bmat with Bmat (K, n_state) a 0/1 selection matrix (projection of the state onto
  the dictionary); Koopman modes are v = Xi^{-1} Bmat so that x = sum_i phi_i(x) v_i;
* forecasting: psi_k = psi(x_0) Kmat^k and x_k = psi_k Bmat (linear in the lifted space).

If span(psi) is invariant under the Koopman operator (``FiniteKoopmanMap`` with monomials of
degree >= 2) the eigenpairs living in that subspace are exact, up to rounding.
"""

from __future__ import annotations

import itertools

import numpy as np
import scipy.linalg

from lablib.koopman._validate import as_array, check_positive_int
from lablib.koopman.dmd import sort_eigenvalues

__all__ = [
    "Dictionary",
    "MonomialDictionary",
    "RBFDictionary",
    "RandomFourierDictionary",
    "FunctionDictionary",
    "EDMD",
]


# ----------------------------------------------------------------------------- dictionaries


class Dictionary:
    """A list of K observables psi(x): states (m, n_state) -> features (m, K).

    Subclasses implement ``_features`` and set ``n_state``, ``names`` (K strings) and
    ``state_indices`` (the n_state feature indices that hold x itself, used to read the state back).
    """

    n_state: int
    names: list[str]
    state_indices: list[int]

    @property
    def n_features(self) -> int:
        return len(self.names)

    def __call__(self, X) -> np.ndarray:
        """psi(X): X (m, n_state) -> (m, K), or a single state (n_state,) -> (K,)."""
        X = as_array(X, "X", ndim=(1, 2))
        if X.shape[-1] != self.n_state:
            raise ValueError(f"{type(self).__name__} expects states with n_state = {self.n_state}; got shape {X.shape}")
        single = X.ndim == 1
        out = self._features(X[None] if single else X)
        return out[0] if single else out

    def _features(self, X: np.ndarray) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def state_matrix(self) -> np.ndarray:
        """Bmat (K, n_state), 0/1, with psi(x) Bmat = x."""
        B = np.zeros((self.n_features, self.n_state))
        B[self.state_indices, np.arange(self.n_state)] = 1.0
        return B

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_state={self.n_state}, K={self.n_features})"


class MonomialDictionary(Dictionary):
    """All monomials x^alpha with total degree 0..``degree`` (cross terms included).

    K = binom(n_state + degree, degree) features, ordered by degree, so the constant 1 comes first
    (unless ``include_constant=False``) and then x_1, ..., x_n. Names read like ``x1^2*x2``.
    """

    def __init__(self, n_state: int, degree: int, *, include_constant: bool = True, state_names=None):
        self.n_state = check_positive_int(n_state, "n_state")
        self.degree = check_positive_int(degree, "degree")
        names = list(state_names) if state_names is not None else [f"x{i + 1}" for i in range(self.n_state)]
        if len(names) != self.n_state:
            raise ValueError(f"state_names must have n_state = {self.n_state} names; got {len(names)}")
        exps = []
        for d in range(0 if include_constant else 1, self.degree + 1):
            # combinations_with_replacement enumerates each monomial of degree d once
            for combo in itertools.combinations_with_replacement(range(self.n_state), d):
                exps.append(np.bincount(np.array(combo, dtype=int), minlength=self.n_state))
        self.exponents = np.array(exps, dtype=int).reshape(-1, self.n_state)  # (K, n_state)
        self.names = [self._name(e, names) for e in self.exponents]
        offset = 1 if include_constant else 0
        self.state_indices = list(range(offset, offset + self.n_state))

    @staticmethod
    def _name(e, names) -> str:
        parts = [n if p == 1 else f"{n}^{p}" for n, p in zip(names, e) if p > 0]
        return "*".join(parts) if parts else "1"

    def _features(self, X):
        # (m, 1, n) ** (1, K, n) -> product over n: x^alpha for every alpha at once
        return np.prod(X[:, None, :] ** self.exponents[None, :, :], axis=2)


class RBFDictionary(Dictionary):
    """[1, x, exp(-||x - c_j||^2 / (2 width^2)) for each center c_j]; K = 1 + n_state + n_centers.

    Centers (n_centers, n_state) are given, or drawn from data with ``RBFDictionary.from_data``.
    The constant and the state are included so that the state can be read back linearly.
    """

    def __init__(self, centers, width: float, *, include_constant: bool = True):
        self.centers = as_array(centers, "centers", ndim=2, dtype=np.float64)
        if not (np.isfinite(width) and width > 0):
            raise ValueError(f"width must be a finite positive number; got {width!r}")
        self.width = float(width)
        self.n_state = self.centers.shape[1]
        self.include_constant = include_constant
        offset = 1 if include_constant else 0
        self.names = (["1"] if include_constant else []) + [f"x{i + 1}" for i in range(self.n_state)]
        self.names += [f"rbf{j}" for j in range(self.centers.shape[0])]
        self.state_indices = list(range(offset, offset + self.n_state))

    @classmethod
    def from_data(cls, X, n_centers: int, width: float, *, seed: int = 0, **kwargs) -> "RBFDictionary":
        """Centers = ``n_centers`` distinct rows of the states X (m, n_state), picked at random (seeded)."""
        X = as_array(X, "X", ndim=2, dtype=np.float64)
        n_centers = check_positive_int(n_centers, "n_centers")
        if n_centers > X.shape[0]:
            raise ValueError(f"n_centers = {n_centers} exceeds the number of states m = {X.shape[0]}")
        idx = np.random.default_rng(seed).choice(X.shape[0], size=n_centers, replace=False)
        return cls(X[idx], width, **kwargs)

    def _features(self, X):
        d2 = ((X[:, None, :] - self.centers[None, :, :]) ** 2).sum(-1)  # (m, n_centers)
        parts = ([np.ones((X.shape[0], 1))] if self.include_constant else []) + [X, np.exp(-d2 / (2 * self.width**2))]
        return np.concatenate(parts, axis=1)


class RandomFourierDictionary(Dictionary):
    """[1, x, sqrt(2 / D) cos(W x + beta)] with W ~ N(0, 1 / bandwidth^2), beta ~ U[0, 2 pi) (seeded).

    Random Fourier features (Rahimi & Recht 2007): their inner products approximate a Gaussian
    kernel of width ``bandwidth``. K = 1 + n_state + n_random.
    """

    def __init__(self, n_state: int, n_random: int, bandwidth: float = 1.0, *, seed: int = 0, include_constant: bool = True):
        self.n_state = check_positive_int(n_state, "n_state")
        self.n_random = check_positive_int(n_random, "n_random")
        if not (np.isfinite(bandwidth) and bandwidth > 0):
            raise ValueError(f"bandwidth must be a finite positive number; got {bandwidth!r}")
        rng = np.random.default_rng(seed)
        self.W = rng.standard_normal((self.n_random, self.n_state)) / bandwidth
        self.phase = rng.uniform(0, 2 * np.pi, self.n_random)
        self.include_constant = include_constant
        offset = 1 if include_constant else 0
        self.names = (["1"] if include_constant else []) + [f"x{i + 1}" for i in range(self.n_state)]
        self.names += [f"rff{j}" for j in range(self.n_random)]
        self.state_indices = list(range(offset, offset + self.n_state))

    def _features(self, X):
        rff = np.sqrt(2.0 / self.n_random) * np.cos(X @ self.W.T + self.phase)
        parts = ([np.ones((X.shape[0], 1))] if self.include_constant else []) + [X, rff]
        return np.concatenate(parts, axis=1)


class FunctionDictionary(Dictionary):
    """Your own observables: ``fn`` maps states (m, n_state) to features (m, K).

    ``names`` (K strings) labels them and ``state_indices`` says which columns are x itself,
    e.g. ``FunctionDictionary(lambda X: np.c_[X, X[:, :1]**2], 2, ["x1", "x2", "x1^2"], [0, 1])``.
    """

    def __init__(self, fn, n_state: int, names, state_indices):
        self.fn = fn
        self.n_state = check_positive_int(n_state, "n_state")
        self.names = list(names)
        self.state_indices = [int(i) for i in state_indices]
        if len(self.state_indices) != self.n_state or any(not 0 <= i < len(self.names) for i in self.state_indices):
            raise ValueError(f"state_indices must be {self.n_state} indices into the {len(self.names)} features; got {state_indices}")

    def _features(self, X):
        out = np.asarray(self.fn(X), dtype=float)
        if out.shape != (X.shape[0], self.n_features):
            raise ValueError(f"fn must map ({X.shape[0]}, {self.n_state}) to ({X.shape[0]}, {self.n_features}); got {out.shape}")
        return out


# ----------------------------------------------------------------------------- EDMD


class EDMD:
    """EDMD: ``EDMD(dictionary).fit(X, Y)`` with X, Y (m, n_state), rows are samples.

    Parameters
    ----------
    dictionary : Dictionary
        The observables psi (K of them); must contain the state coordinates.
    ridge : float
        Tikhonov term: Kmat = (G + ridge I)^{-1} A. 0 (default) is plain least squares.
    method : "lstsq" or "gram"
        How to solve the least squares for ridge = 0: ``lstsq`` on Psi_X (stable, default) or
        ``pinv(G) @ A`` literally as in the equation (for teaching; loses half the digits).

    Attributes after ``fit``: ``K`` (K, K) with Psi_Y ~ Psi_X K; ``eigenvalues`` (K,) complex,
    sorted by decreasing modulus; ``eigenvectors`` Xi (K, K), column i = xi_i; ``modes`` (K, n_state)
    with x = phi(x) @ modes; ``residual`` the relative fit error ||Psi_Y - Psi_X K|| / ||Psi_Y||.
    """

    def __init__(self, dictionary: Dictionary, *, ridge: float = 0.0, method: str = "lstsq"):
        if not isinstance(dictionary, Dictionary):
            raise ValueError(f"dictionary must be a lablib.koopman Dictionary; got {type(dictionary).__name__}")
        if not (np.isfinite(ridge) and ridge >= 0):
            raise ValueError(f"ridge must be a finite number >= 0; got {ridge!r}")
        if method not in ("lstsq", "gram"):
            raise ValueError(f"method must be 'lstsq' or 'gram'; got {method!r}")
        self.dictionary = dictionary
        self.ridge = float(ridge)
        self.method = method
        self._fitted = False

    def fit(self, X, Y) -> "EDMD":
        """Fit Kmat on state pairs X, Y (m, n_state) (``snapshot_pairs(trajectories)`` makes them)."""
        X = as_array(X, "X", ndim=2, dtype=np.float64)
        Y = as_array(Y, "Y", ndim=2, dtype=np.float64)
        if X.shape != Y.shape:
            raise ValueError(f"X and Y must have the same shape (m, n_state); got X {X.shape} and Y {Y.shape}")
        psi = self.dictionary
        if X.shape[1] != psi.n_state:
            raise ValueError(f"states have n_state = {X.shape[1]} but the dictionary expects {psi.n_state}")
        m, K = X.shape[0], psi.n_features
        if m < K:
            raise ValueError(
                f"too few snapshot pairs: m = {m} < K = {K} dictionary functions, so Kmat is underdetermined; "
                "use more data or a smaller dictionary"
            )
        PX, PY = psi(X), psi(Y)
        if not (np.all(np.isfinite(PX)) and np.all(np.isfinite(PY))):
            raise ValueError("the dictionary produced NaN/Inf on the data (overflowing monomials?); rescale the states")

        if self.ridge > 0:
            G = PX.T @ PX / m
            A = PX.T @ PY / m
            Kmat = scipy.linalg.solve(G + self.ridge * np.eye(K), A, assume_a="pos")
        elif self.method == "gram":
            G = PX.T @ PX / m
            A = PX.T @ PY / m
            Kmat = np.linalg.pinv(G) @ A
        else:
            Kmat = scipy.linalg.lstsq(PX, PY)[0]  # = G^+ A, via a QR/SVD of Psi_X, not of Psi_X^T Psi_X

        lam, Xi = np.linalg.eig(Kmat)
        order = sort_eigenvalues(lam)
        self.K = Kmat
        self.eigenvalues = lam[order]
        self.eigenvectors = Xi[:, order]
        self.m = m
        self.residual = float(np.linalg.norm(PY - PX @ Kmat) / np.linalg.norm(PY))
        # x = psi(x) Bmat = psi(x) Xi Xi^{-1} Bmat = phi(x) modes (Xi invertible unless K is defective)
        self.state_matrix = psi.state_matrix()
        self.modes = np.linalg.lstsq(self.eigenvectors, self.state_matrix.astype(complex), rcond=None)[0]
        self._fitted = True
        return self

    def _check_fitted(self):
        if not self._fitted:
            raise ValueError("this EDMD is not fitted yet; call .fit(X, Y) first")

    def eigenfunctions(self, X) -> np.ndarray:
        """phi_i(x) = psi(x) xi_i at states X (m, n_state) -> (m, K) complex (or (n_state,) -> (K,))."""
        self._check_fitted()
        return self.dictionary(X) @ self.eigenvectors

    def lift(self, X) -> np.ndarray:
        """psi(X): (m, n_state) -> (m, K)."""
        return self.dictionary(X)

    def predict(self, x0, steps: int, *, reproject: bool = False) -> np.ndarray:
        """Forecast from x0 (n_state,) -> (steps + 1, n_state), or x0 (n_traj, n_state) -> (n_traj, steps + 1, n_state).

        Default: iterate linearly in the lifted space, psi_{k+1} = psi_k Kmat, and read the state
        off each psi_k with Bmat (the Koopman way). ``reproject=True`` instead re-lifts the predicted
        state every step, x_{k+1} = psi(x_k) Kmat Bmat: a nonlinear one-step map, for comparison.
        """
        self._check_fitted()
        steps = check_positive_int(steps, "steps", minimum=0)
        x0 = as_array(x0, "x0", ndim=(1, 2), dtype=np.float64)
        if x0.shape[-1] != self.dictionary.n_state:
            raise ValueError(f"x0 must have last dim n_state = {self.dictionary.n_state}; got shape {x0.shape}")
        single = x0.ndim == 1
        x = x0[None] if single else x0
        out = np.empty((x.shape[0], steps + 1, x.shape[1]))
        out[:, 0] = x
        psi = self.dictionary(x)
        for k in range(steps):
            psi = (self.dictionary(out[:, k]) if reproject else psi) @ self.K
            out[:, k + 1] = psi @ self.state_matrix
        return out[0] if single else out

    def __repr__(self) -> str:
        state = f"fitted on {self.m} pairs" if self._fitted else "not fitted"
        return f"EDMD({self.dictionary!r}, ridge={self.ridge}) {state}"
