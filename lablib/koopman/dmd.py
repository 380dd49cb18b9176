"""Exact dynamic mode decomposition (Schmid 2010; Tu, Rowley et al. 2014).

Convention (the DMD literature's and PyDMD's): snapshots are **columns**. X = [x_0 ... x_{m-1}]
and Y = [x_1 ... x_m] are (n_features, m), with Y[:, j] the successor of X[:, j]. DMD looks for the
best-fit linear map A with Y ~ A X, without ever forming the (n_features, n_features) matrix:

1. thin SVD, truncated to rank r:  X ~ U S V^*    U (n, r), S (r, r), V (m, r)
2. A projected onto span(U):       Atilde = U^* Y V S^{-1}           (r, r)
3. its eigenpairs:                 Atilde W = W Lambda               eigenvalues lambda_i
4. exact DMD modes:                Phi = Y V S^{-1} W                (n, r)  (A Phi = Phi Lambda)
5. amplitudes, fit to x_0:         b = argmin ||Phi b - x_0||         (r,)
6. the model:                      x_k ~ Phi Lambda^k b = sum_i phi_i lambda_i^k b_i

Continuous-time eigenvalues are omega_i = log(lambda_i) / dt (growth rate + i frequency).
``snapshot_pairs`` turns trajectories (n_traj, T+1, n_state) into X, Y.
"""

from __future__ import annotations

import numpy as np

from lablib.koopman._validate import as_array, check_positive_int, check_rank

__all__ = ["DMD", "snapshot_pairs", "sort_eigenvalues"]


def snapshot_pairs(trajectories, *, layout: str = "rows") -> tuple[np.ndarray, np.ndarray]:
    """Pairs (x_k, x_{k+1}) from trajectories (T+1, n_state) or (n_traj, T+1, n_state).

    Pairs never straddle two trajectories. ``layout="rows"`` returns X, Y (m, n_state), one
    sample per row (EDMD's convention); ``layout="columns"`` returns (n_state, m) (DMD's).
    m = n_traj * T.
    """
    traj = as_array(trajectories, "trajectories", ndim=(2, 3))
    traj = traj[None] if traj.ndim == 2 else traj
    if traj.shape[1] < 2:
        raise ValueError(f"each trajectory needs at least 2 time points to make a pair; got shape {traj.shape}")
    X = traj[:, :-1].reshape(-1, traj.shape[2])
    Y = traj[:, 1:].reshape(-1, traj.shape[2])
    if layout == "rows":
        return X, Y
    if layout == "columns":
        return X.T.copy(), Y.T.copy()
    raise ValueError(f"layout must be 'rows' or 'columns'; got {layout!r}")


def sort_eigenvalues(eigenvalues: np.ndarray) -> np.ndarray:
    """Indices that sort eigenvalues by decreasing modulus, then by angle (a deterministic order)."""
    lam = np.asarray(eigenvalues)
    return np.lexsort((np.round(np.angle(lam), 12), -np.round(np.abs(lam), 12)))


class DMD:
    """Exact DMD with rank truncation: ``DMD(rank).fit(X, Y)`` or ``DMD(rank).fit(trajectory)``.

    Parameters
    ----------
    rank : int or None
        Truncation rank r of the SVD of X. None keeps the numerical rank of X. A rank beyond
        min(n_features, m) or beyond the numerical rank raises ``ValueError``.
    dt : float
        Time between snapshots; used only for ``continuous_eigenvalues``.

    Attributes after ``fit`` (eigenpairs sorted by decreasing |lambda|, then angle):
    ``eigenvalues`` (r,) complex, ``modes`` Phi (n_features, r) complex (exact modes),
    ``amplitudes`` b (r,), ``Atilde`` (r, r), ``U`` (n_features, r) the POD basis,
    ``singular_values`` (min(n, m),) all of them (for choosing r), ``rank`` r.
    """

    def __init__(self, rank: int | None = None, *, dt: float = 1.0):
        if rank is not None:
            check_positive_int(rank, "rank")
        if not (np.isfinite(dt) and dt > 0):
            raise ValueError(f"dt must be a finite positive number; got {dt!r}")
        self.rank_requested = rank
        self.dt = float(dt)
        self._fitted = False

    # ------------------------------------------------------------------ fit

    def fit(self, X, Y=None) -> "DMD":
        """Fit on snapshot pairs X, Y (n_features, m), or on one trajectory X (n_features, m+1) if Y is None.

        With Y None the columns of X are consecutive snapshots and the pairs are (X[:, :-1], X[:, 1:]);
        the amplitudes are then fitted to X[:, 0], so ``reconstruct()`` reproduces the trajectory.
        """
        X = as_array(X, "X", ndim=2)
        if Y is None:
            if X.shape[1] < 3:
                raise ValueError(f"a trajectory X (n_features, m+1) needs at least 3 snapshots (2 pairs); got shape {X.shape}")
            X, Y = X[:, :-1], X[:, 1:]
        else:
            Y = as_array(Y, "Y", ndim=2)
            if X.shape != Y.shape:
                raise ValueError(f"X and Y must have the same shape (n_features, m); got X {X.shape} and Y {Y.shape}")
            if X.shape[1] < 2:
                raise ValueError(f"need at least 2 snapshot pairs (columns); got X of shape {X.shape}")
        self.n_features, self.m = X.shape

        # economy SVD: U (n, k), s (k,), Vh (k, m) with k = min(n, m)
        U, s, Vh = np.linalg.svd(X, full_matrices=False)
        r = check_rank(self.rank_requested, s)
        self.singular_values = s
        U, s, V = U[:, :r], s[:r], Vh[:r].conj().T

        # Atilde = U^* Y V S^{-1}: the operator seen in POD coordinates (dividing the columns of
        # Y V by s is the same as right-multiplying by S^{-1}, without forming the diagonal matrix)
        YVSinv = (Y @ V) / s
        Atilde = U.conj().T @ YVSinv
        lam, W = np.linalg.eig(Atilde)
        order = sort_eigenvalues(lam)
        lam, W = lam[order], W[:, order]

        self.rank = r
        self.U = U
        self.Atilde = Atilde
        self.eigenvalues = lam
        self.modes = YVSinv @ W  # exact modes: eigenvectors of A = Y V S^-1 U^* with A phi = lambda phi
        self.amplitudes = self._fit_amplitudes(X[:, 0])
        self._is_real = not (np.iscomplexobj(X) or np.iscomplexobj(Y))
        self._fitted = True
        return self

    def _fit_amplitudes(self, x0: np.ndarray) -> np.ndarray:
        # least squares, not Phi^+ x0 via pinv: same answer, and lstsq is the stable way to get it
        b, *_ = np.linalg.lstsq(self.modes, x0.astype(complex), rcond=None)
        return b

    def _check_fitted(self):
        if not self._fitted:
            raise ValueError("this DMD is not fitted yet; call .fit(X, Y) first")

    # ------------------------------------------------------------------ derived quantities

    @property
    def continuous_eigenvalues(self) -> np.ndarray:
        """omega = log(lambda) / dt (r,): real part = growth rate, imaginary part = angular frequency."""
        self._check_fitted()
        return np.log(self.eigenvalues.astype(complex)) / self.dt

    @property
    def operator(self) -> np.ndarray:
        """The rank-r operator A_r = Phi Lambda Phi^+ (n_features, n_features); for small n_features only."""
        self._check_fitted()
        A = self.modes @ np.diag(self.eigenvalues) @ np.linalg.pinv(self.modes)
        return A.real if self._is_real else A

    def _real(self, x):
        # data were real, so conjugate pairs cancel: drop the rounding-level imaginary part
        return x.real if self._is_real else x

    # ------------------------------------------------------------------ prediction

    def predict(self, x0=None, steps: int = 1) -> np.ndarray:
        """Forecast x_k = Phi Lambda^k b for k = 0..steps: (steps + 1, n_features).

        b is fitted to ``x0`` (n_features,) by least squares (the fitted amplitudes if x0 is None).
        x0 may also be (n_features, n_batch): then the result is (n_batch, steps + 1, n_features).
        """
        self._check_fitted()
        steps = check_positive_int(steps, "steps", minimum=0)
        if x0 is None:
            b = self.amplitudes[:, None]
            single = True
        else:
            x0 = as_array(x0, "x0", ndim=(1, 2))
            if x0.shape[0] != self.n_features:
                raise ValueError(f"x0 must have first dim n_features = {self.n_features}; got shape {x0.shape}")
            single = x0.ndim == 1
            b, *_ = np.linalg.lstsq(self.modes, (x0[:, None] if single else x0).astype(complex), rcond=None)
        powers = self.eigenvalues[None, :] ** np.arange(steps + 1)[:, None]  # (steps+1, r): lambda_i^k
        # x_k[n, batch] = sum_i Phi[n, i] lambda_i^k b[i, batch]
        out = np.einsum("ni,ki,ib->bkn", self.modes, powers, b)
        out = self._real(out)
        return out[0] if single else out

    def reconstruct(self) -> np.ndarray:
        """The fitted data rebuilt from the modes: Phi Lambda^k b for k = 0..m, (n_features, m + 1)."""
        self._check_fitted()
        return self.predict(None, self.m).T

    def __repr__(self) -> str:
        if not self._fitted:
            return f"DMD(rank={self.rank_requested}, dt={self.dt})"
        return f"DMD(rank={self.rank}, dt={self.dt}) fitted on {self.n_features} features x {self.m} pairs"
