"""Exercise checks for track 2 (Koopman)."""

from __future__ import annotations

import numpy as np

from lablib.koopman import DMD, FiniteKoopmanMap, LinearSystem, snapshot_pairs
from lablib.koopman.dmd import sort_eigenvalues

__all__ = ["check_affine_combine", "check_dmd_eigenvalues", "check_finite_koopman_matrix", "check_latent_rollout"]


def check_dmd_eigenvalues(fn) -> str:
    """``fn(X, Y, r) -> eigenvalues``: the r DMD eigenvalues (any order) from snapshots X, Y (n_features, m).

    Truncate the SVD of X to rank r, form Atilde = U_r^* Y V_r S_r^{-1} and return its eigenvalues.
    Compared, after sorting, with ``lablib.koopman.DMD(r)`` to 1e-8.
    """
    n = 0
    for seed, (lams, r) in enumerate([([0.9, 0.5], 2), ([0.95 * np.exp(0.3j), 0.95 * np.exp(-0.3j), 0.7], 3),
                                      ([1.0, 0.8 * np.exp(1j), 0.8 * np.exp(-1j), 0.3, 0.1], 3)]):
        system = LinearSystem.from_eigenvalues(lams, seed=seed)
        X, Y = snapshot_pairs(system.trajectories(4, 12, seed=seed), layout="columns")
        got = np.asarray(fn(X, Y, r), dtype=complex).reshape(-1)
        want = DMD(r).fit(X, Y).eigenvalues
        if got.shape != want.shape:
            raise AssertionError(f"DMD eigenvalues: expected {want.size} eigenvalues for r = {r}; got {got.size}")
        got = got[sort_eigenvalues(got)]
        err = np.abs(got - want).max()
        if not err <= 1e-8:
            raise AssertionError(f"DMD eigenvalues: off by {err:.2g} on case {n} (r = {r}); expected {np.round(want, 4)}")
        n += 1
    return f"✓ DMD eigenvalues: correct on {n} systems"


def check_finite_koopman_matrix(fn) -> str:
    """``fn(a, b, c) -> K``: the 3 x 3 matrix with g(F(x)) = K g(x) for g(x) = (x1, x2, x1^2) and the map
    x1' = a x1, x2' = b x2 + c x1^2. Checked by applying it to lifted random states.
    """
    n = 0
    for seed, (a, b, c) in enumerate([(0.9, 0.5, 1.0), (0.5, 0.8, -2.0), (1.1, 0.3, 0.7)]):
        system = FiniteKoopmanMap(a=a, b=b, c=c)
        x = np.random.default_rng(seed).uniform(-1, 1, size=(20, 2))
        x_next = system.simulate(x, 1)[:, 1]
        lift = lambda s: np.stack([s[:, 0], s[:, 1], s[:, 0] ** 2], axis=1)
        K = np.asarray(fn(a, b, c), dtype=float)
        if K.shape != (3, 3):
            raise AssertionError(f"finite Koopman matrix: K should be 3 x 3; got shape {K.shape}")
        err = np.abs(lift(x) @ K.T - lift(x_next)).max()
        if not err <= 1e-10:
            raise AssertionError(f"finite Koopman matrix: K g(x) misses g(F(x)) by {err:.2g} for (a, b, c) = {(a, b, c)}")
        n += 1
    return f"✓ finite Koopman matrix: correct for {n} maps"


def check_latent_rollout(fn) -> str:
    """``fn(K, z0, steps) -> zs``: the latent trajectory z_k = K^k z0 for k = 0..steps.

    K (p, p) acts on column vectors (z_{k+1} = K z_k); z0 (B, p); zs (B, steps + 1, p). Torch tensors.
    Compared with ``KoopmanAutoencoder.advance`` to 1e-6 (scaled).
    """
    import torch

    from lablib.koopman import KoopmanAutoencoder
    from lablib.testing import max_scaled_error

    n = 0
    for seed, (p, B, steps) in enumerate([(2, 3, 5), (6, 4, 20), (16, 2, 50)]):
        g = torch.Generator().manual_seed(500 + seed)
        A = torch.randn(p, p, generator=g, dtype=torch.float64)
        K = A / torch.linalg.matrix_norm(A, ord=2) * 0.99  # spectral norm < 1: nothing blows up
        z0 = torch.randn(B, p, generator=g, dtype=torch.float64)
        model = KoopmanAutoencoder(1, p, (4,), dtype=torch.float64)
        with torch.no_grad():
            model.K.weight.copy_(K)
            want = model.advance(z0, steps)
        got = fn(K.clone(), z0.clone(), steps)
        if not isinstance(got, torch.Tensor) or tuple(got.shape) != tuple(want.shape):
            shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
            raise AssertionError(f"latent rollout: expected shape {tuple(want.shape)}; got {shape}")
        err = max_scaled_error(got, want)
        if not err <= 1e-6:
            raise AssertionError(f"latent rollout: off by {err:.2g} on case {n} (is K applied as K z, not z K?)")
        n += 1
    return f"✓ latent rollout: correct on {n} random cases"


def check_affine_combine(fn) -> str:
    """``fn(a1, b1, a2, b2) -> (a, b)``: the affine step "h -> a1 h + b1, then h -> a2 h + b2" as one (a, b).

    Tested elementwise on random real and complex tensors, and by a Hillis-Steele scan built from
    ``fn`` against ``lablib.koopman.recurrence.diagonal_recurrence_loop``.
    """
    import torch

    from lablib.koopman.recurrence import diagonal_recurrence_loop

    n = 0
    for seed, dtype in enumerate([torch.float64, torch.complex128]):
        g = torch.Generator().manual_seed(700 + seed)
        a1, b1, a2, b2, h = (torch.randn(5, generator=g, dtype=dtype) for _ in range(5))
        a, b = fn(a1.clone(), b1.clone(), a2.clone(), b2.clone())
        want = a2 * (a1 * h + b1) + b2
        if (a * h + b - want).abs().max() > 1e-10:
            raise AssertionError("affine combine: (a, b) does not act like 'first (a1, b1), then (a2, b2)'")
        n += 1
        # a scan built from fn: round r combines each element with the one 2^r to its left
        T = 13
        A = torch.rand(T, 3, generator=g, dtype=torch.float64).to(dtype)
        B = torch.randn(T, 3, generator=g, dtype=torch.float64).to(dtype)
        sa, sb, shift = A.clone(), B.clone(), 1
        while shift < T:
            na, nb = fn(sa[:-shift], sb[:-shift], sa[shift:], sb[shift:])  # earlier element first
            sa = torch.cat([sa[:shift], na])
            sb = torch.cat([sb[:shift], nb])
            shift *= 2
        if (sb - diagonal_recurrence_loop(A, B)).abs().max() > 1e-10:
            raise AssertionError("affine combine: a scan built from it does not match the loop (is the order of the two steps right?)")
        n += 1
    return f"✓ affine combine: correct on {n} checks"
