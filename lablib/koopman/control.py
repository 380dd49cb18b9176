"""Koopman with inputs: DMD with control (DMDc) and lifted linear predictors z' = K z + B u.

**DMDc** (Proctor, Brunton & Kutz 2016), snapshots as columns: X, Y (n, m), inputs U (q, m),
Y ~ A X + B U. Stack Omega = [X; U] (n + q, m) and solve [A B] = Y Omega^+ with truncated SVDs:

1. Omega ~ Ut St Vt^*  (rank p),   Ut = [Ut1; Ut2] split into its n state rows and q input rows
2. A = Y Vt St^{-1} Ut1^*  (n, n),  B = Y Vt St^{-1} Ut2^*  (n, q)
3. reduce with the POD basis Uh (n, r) of Y (rank r):
   Atilde = Uh^* A Uh (r, r),  Btilde = Uh^* B (r, q);  forecast in those coordinates
4. eigenvalues of Atilde (W its eigenvectors); modes Phi = A Uh W.

**Lifted linear predictor** (Korda & Mezic 2018): lift states with observables z = psi(x)
(an EDMD ``Dictionary``, or a trained autoencoder's encoder, see ``encoder_lift``), fit
z' = K z + B u by least squares on the lifted pairs, and read the state back with a linear
readout x ~ C z (the dictionary's state selection, or a least-squares fit) or a given decoder.
A linear model in z is what linear MPC needs, even though the system is nonlinear.
"""

from __future__ import annotations

import numpy as np

from lablib.koopman._validate import as_array, check_positive_int, check_rank
from lablib.koopman.dmd import sort_eigenvalues

__all__ = ["DMDc", "LiftedControlModel", "encoder_lift", "decoder_readout"]


def _check_inputs_columns(X, Y, U):
    X = as_array(X, "X", ndim=2)
    U = as_array(U, "U", ndim=2)
    if Y is None:
        if X.shape[1] < 3:
            raise ValueError(f"a trajectory X (n, m+1) needs at least 3 snapshots; got shape {X.shape}")
        X, Y = X[:, :-1], X[:, 1:]
    else:
        Y = as_array(Y, "Y", ndim=2)
        if X.shape != Y.shape:
            raise ValueError(f"X and Y must have the same shape (n, m); got X {X.shape} and Y {Y.shape}")
    if U.shape[1] != X.shape[1]:
        raise ValueError(f"U must have one column per snapshot pair, shape (q, m={X.shape[1]}); got {U.shape}")
    if X.shape[1] < 2:
        raise ValueError(f"need at least 2 snapshot pairs; got X of shape {X.shape}")
    return X, Y, U


class DMDc:
    """DMD with control, B unknown: ``DMDc(rank, rank_omega).fit(X, Y, U)``.

    ``rank`` r truncates the output basis (SVD of Y), ``rank_omega`` p the SVD of Omega = [X; U];
    None keeps the numerical rank of each. Attributes after ``fit``: ``A`` (n, n), ``B`` (n, q),
    ``Atilde`` (r, r), ``Btilde`` (r, q), ``basis`` Uh (n, r), ``eigenvalues`` (r,), ``modes`` (n, r).
    """

    def __init__(self, rank: int | None = None, rank_omega: int | None = None):
        for value, name in ((rank, "rank"), (rank_omega, "rank_omega")):
            if value is not None:
                check_positive_int(value, name)
        self.rank_requested = rank
        self.rank_omega_requested = rank_omega
        self._fitted = False

    def fit(self, X, Y, U) -> "DMDc":
        """X, Y (n, m) snapshot pairs (or Y None and X a trajectory (n, m+1)), U (q, m) with x_{k+1} = A x_k + B u_k."""
        X, Y, U = _check_inputs_columns(X, Y, U)
        n, q = X.shape[0], U.shape[0]
        Omega = np.vstack([X, U])
        Ut, st, Vth = np.linalg.svd(Omega, full_matrices=False)
        p = check_rank(self.rank_omega_requested, st, "rank_omega")
        Ut, st, Vt = Ut[:, :p], st[:p], Vth[:p].conj().T
        Uh, sh, _ = np.linalg.svd(Y, full_matrices=False)
        r = check_rank(self.rank_requested, sh, "rank")
        Uh = Uh[:, :r]

        YVSinv = (Y @ Vt) / st  # Y Vt St^{-1}: the part shared by A and B
        self.A = YVSinv @ Ut[:n].conj().T
        self.B = YVSinv @ Ut[n:].conj().T
        self.Atilde = Uh.conj().T @ self.A @ Uh
        self.Btilde = Uh.conj().T @ self.B
        lam, W = np.linalg.eig(self.Atilde)
        order = sort_eigenvalues(lam)
        self.eigenvalues, W = lam[order], W[:, order]
        self.modes = self.A @ Uh @ W
        self.basis = Uh
        self.rank, self.rank_omega = r, p
        self.n_state, self.n_input = n, q
        self._is_real = not any(np.iscomplexobj(a) for a in (X, Y, U))
        self._fitted = True
        return self

    def predict(self, x0, u) -> np.ndarray:
        """Forecast from x0 (n,) under inputs u (steps, q): (steps + 1, n), iterating in the reduced coordinates.

        x~_0 = Uh^* x0,  x~_{k+1} = Atilde x~_k + Btilde u_k,  x_k = Uh x~_k.
        """
        if not self._fitted:
            raise ValueError("this DMDc is not fitted yet; call .fit(X, Y, U) first")
        x0 = as_array(x0, "x0", ndim=1)
        u = as_array(u, "u", ndim=2)
        if x0.shape != (self.n_state,):
            raise ValueError(f"x0 must have shape (n={self.n_state},); got {x0.shape}")
        if u.shape[1] != self.n_input:
            raise ValueError(f"u must have shape (steps, q={self.n_input}); got {u.shape}")
        xt = self.basis.conj().T @ x0
        out = [xt]
        for k in range(u.shape[0]):
            xt = self.Atilde @ xt + self.Btilde @ u[k]
            out.append(xt)
        out = np.stack(out) @ self.basis.T
        return out.real if self._is_real else out


class LiftedControlModel:
    """z' = K z + B u on lifted states z = lift(x); x ~ C z (or decode(z)). Rows are samples.

    Parameters
    ----------
    lift : callable (m, n_state) -> (m, p)
        The observables: a ``Dictionary`` (then C is its exact state selection) or e.g.
        ``encoder_lift(autoencoder)``.
    decode : callable (m, p) -> (m, n_state), optional
        Nonlinear readout (e.g. ``decoder_readout(autoencoder)``); default: linear C.
    ridge : float
        Tikhonov term for the least squares of [K B].

    After ``fit``: ``K`` (p, p), ``B`` (p, q), ``C`` (n_state, p) (column convention: z' = K z + B u).
    """

    def __init__(self, lift, *, decode=None, ridge: float = 0.0):
        if not callable(lift):
            raise ValueError(f"lift must be callable (states (m, n) -> lifted (m, p)); got {type(lift).__name__}")
        if decode is not None and not callable(decode):
            raise ValueError(f"decode must be callable or None; got {type(decode).__name__}")
        if not (np.isfinite(ridge) and ridge >= 0):
            raise ValueError(f"ridge must be a finite number >= 0; got {ridge!r}")
        self.lift, self.decode, self.ridge = lift, decode, float(ridge)
        self._fitted = False

    def _lift(self, X):
        Z = as_array(self.lift(X), "lift(X)", ndim=2, dtype=np.float64)
        if Z.shape[0] != X.shape[0]:
            raise ValueError(f"lift must return one row per state; got {Z.shape} for {X.shape[0]} states")
        return Z

    def fit(self, X, Y, U) -> "LiftedControlModel":
        """X, Y (m, n_state) state pairs and U (m, q) inputs with x_{k+1} = F(x_k, u_k)."""
        X = as_array(X, "X", ndim=2, dtype=np.float64)
        Y = as_array(Y, "Y", ndim=2, dtype=np.float64)
        U = as_array(U, "U", ndim=2, dtype=np.float64)
        if X.shape != Y.shape or U.shape[0] != X.shape[0]:
            raise ValueError(f"X, Y must be (m, n_state) and U (m, q) with the same m; got X {X.shape}, Y {Y.shape}, U {U.shape}")
        Z, Zn = self._lift(X), self._lift(Y)
        p, q = Z.shape[1], U.shape[1]
        if X.shape[0] < p + q:
            raise ValueError(f"too few pairs: m = {X.shape[0]} < p + q = {p + q} unknowns per row of [K B]")
        M = np.hstack([Z, U])  # (m, p + q): z'^T = [z^T u^T] [K^T; B^T]
        if self.ridge > 0:
            KB = np.linalg.solve(M.T @ M + self.ridge * X.shape[0] * np.eye(p + q), M.T @ Zn)
        else:
            KB = np.linalg.lstsq(M, Zn, rcond=None)[0]
        self.K, self.B = KB[:p].T, KB[p:].T
        from lablib.koopman.edmd import Dictionary

        if self.decode is None:
            # exact readout if the lift is a dictionary that contains x; else least squares x ~ C z
            self.C = self.lift.state_matrix().T if isinstance(self.lift, Dictionary) else np.linalg.lstsq(Z, X, rcond=None)[0].T
        self.n_state, self.n_input, self.latent_dim = X.shape[1], q, p
        self.residual = float(np.linalg.norm(Zn - M @ KB) / np.linalg.norm(Zn))
        self._fitted = True
        return self

    def predict(self, x0, u) -> np.ndarray:
        """From x0 (n_state,) and u (steps, q) -> (steps + 1, n_state); batched: (n_traj, n_state), (n_traj, steps, q)."""
        if not self._fitted:
            raise ValueError("this LiftedControlModel is not fitted yet; call .fit(X, Y, U) first")
        x0 = as_array(x0, "x0", ndim=(1, 2), dtype=np.float64)
        single = x0.ndim == 1
        u = as_array(u, "u", ndim=2 if single else 3, dtype=np.float64)
        x0, u = (x0[None], u[None]) if single else (x0, u)
        if x0.shape[1] != self.n_state or u.shape[0] != x0.shape[0] or u.shape[2] != self.n_input:
            raise ValueError(f"x0 must be (n_traj, {self.n_state}) and u (n_traj, steps, {self.n_input}); got {x0.shape}, {u.shape}")
        z = self._lift(x0)
        zs = [z]
        for k in range(u.shape[1]):
            z = z @ self.K.T + u[:, k] @ self.B.T
            zs.append(z)
        Zs = np.stack(zs, axis=1)  # (n_traj, steps + 1, p)
        if self.decode is None:
            out = Zs @ self.C.T
        else:
            out = np.asarray(self.decode(Zs.reshape(-1, self.latent_dim))).reshape(*Zs.shape[:2], self.n_state)
        out[:, 0] = x0  # the first state is given, not reconstructed
        return out[0] if single else out


def encoder_lift(model):
    """A NumPy lift x (m, n) -> z (m, p) from a trained ``KoopmanAutoencoder``'s encoder (float64 out)."""
    import torch

    def lift(X):
        with torch.no_grad():
            return model.encode(torch.as_tensor(np.asarray(X), dtype=model.dtype)).double().numpy()

    return lift


def decoder_readout(model):
    """A NumPy readout z (m, p) -> x (m, n) from a trained ``KoopmanAutoencoder``'s decoder."""
    import torch

    def decode(Z):
        with torch.no_grad():
            return model.decode(torch.as_tensor(np.asarray(Z), dtype=model.dtype)).double().numpy()

    return decode
