"""EDMD: exact Koopman eigenpairs on a map with a finite invariant subspace; dictionaries; bad input."""

import numpy as np
import pytest

from lablib.koopman import (
    EDMD,
    FiniteKoopmanMap,
    FunctionDictionary,
    MonomialDictionary,
    RandomFourierDictionary,
    RBFDictionary,
    snapshot_pairs,
)

A, B, C = 0.9, 0.5, 1.3

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



@pytest.fixture(scope="module")
def fitted():
    s = FiniteKoopmanMap(a=A, b=B, c=C)
    X, Y = snapshot_pairs(s.trajectories(20, 10, seed=0))
    return s, EDMD(MonomialDictionary(2, 2)).fit(X, Y)


def _closest(lam, target):
    return int(np.argmin(np.abs(lam - target)))


def test_monomials_degree2_recover_exact_eigenvalues(fitted):
    """span{1, x1, x2, x1^2} is invariant, so EDMD's Kmat is block triangular and {1, a, b, a^2} are exact.

    The other two eigenvalues (from x1*x2, x2^2, whose images leave the span) are projection
    artefacts. Measured max error on {a, b, a^2}: 3e-15. Bound 1e-8.
    """
    s, e = fitted
    for target in [1.0, A, B, A**2]:
        assert abs(e.eigenvalues[_closest(e.eigenvalues, target)] - target) < 1e-8


def test_eigenfunction_for_b_is_exact_up_to_scale(fitted):
    """phi_b(x) = x2 - c / (a^2 - b) x1^2: EDMD's eigenfunction equals it times one constant, at new states."""
    s, e = fitted
    Z = np.random.default_rng(7).uniform(-2, 2, size=(50, 2))  # off the training data
    phi = e.eigenfunctions(Z)[:, _closest(e.eigenvalues, B)]
    exact = Z[:, 1] - C / (A**2 - B) * Z[:, 0] ** 2
    scale = np.vdot(exact, phi) / np.vdot(exact, exact)  # least-squares constant
    np.testing.assert_allclose(phi, scale * exact, atol=1e-9 * abs(scale))
    # and it is an eigenfunction: phi(F(x)) = b phi(x)
    phi_next = e.eigenfunctions(s.simulate(Z, 1)[:, 1])[:, _closest(e.eigenvalues, B)]
    np.testing.assert_allclose(phi_next, B * phi, atol=1e-10 * abs(scale))


def test_linear_forecast_is_exact_on_the_finite_map(fitted):
    """The state lives in the invariant span, so iterating Kmat predicts x exactly, 30 steps ahead."""
    s, e = fitted
    te = s.trajectories(5, 30, seed=9)
    np.testing.assert_allclose(e.predict(te[:, 0], 30), te, atol=1e-10)
    np.testing.assert_allclose(e.predict(te[0, 0], 30), te[0], atol=1e-10)
    np.testing.assert_allclose(e.predict(te[:, 0], 30, reproject=True), te, atol=1e-10)
    # Koopman modes rebuild the state from the eigenfunctions: x = phi(x) @ modes
    np.testing.assert_allclose((e.eigenfunctions(te[:, 3]) @ e.modes).real, te[:, 3], atol=1e-10)


def test_gram_and_ridge_forms_agree_with_lstsq():
    s = FiniteKoopmanMap(a=A, b=B, c=C)
    X, Y = snapshot_pairs(s.trajectories(20, 10, seed=0))
    K = EDMD(MonomialDictionary(2, 2)).fit(X, Y).K
    np.testing.assert_allclose(EDMD(MonomialDictionary(2, 2), method="gram").fit(X, Y).K, K, atol=1e-7)
    np.testing.assert_allclose(EDMD(MonomialDictionary(2, 2), ridge=1e-12).fit(X, Y).K, K, atol=1e-6)


def test_custom_dictionary_on_the_exact_subspace():
    """With exactly (x1, x2, x1^2), Kmat is the lifted matrix itself (transposed: rows are samples)."""
    s = FiniteKoopmanMap(a=A, b=B, c=C)
    X, Y = snapshot_pairs(s.trajectories(5, 10, seed=0))
    d = FunctionDictionary(lambda X: np.c_[X, X[:, :1] ** 2], 2, ["x1", "x2", "x1^2"], [0, 1])
    e = EDMD(d).fit(X, Y)
    np.testing.assert_allclose(e.K, s.lifted_matrix.T, atol=1e-12)
    np.testing.assert_allclose(np.sort(e.eigenvalues.real), np.sort(s.koopman_eigenvalues), atol=1e-12)
    assert e.residual < 1e-13


def test_dictionaries_shapes_names_and_state():
    X = np.random.default_rng(0).standard_normal((30, 3))
    mono = MonomialDictionary(3, 3)
    assert mono.n_features == 20  # binom(3 + 3, 3)
    assert mono.names[:4] == ["1", "x1", "x2", "x3"] and "x1*x2*x3" in mono.names and "x3^3" in mono.names
    Psi = mono(X)
    np.testing.assert_allclose(Psi[:, mono.names.index("x1^2*x3")], X[:, 0] ** 2 * X[:, 2])
    rbf = RBFDictionary.from_data(X, 10, width=0.8, seed=1)
    rff = RandomFourierDictionary(3, 16, bandwidth=0.5, seed=2)
    for d, K in ((mono, 20), (rbf, 14), (rff, 20)):
        P = d(X)
        assert P.shape == (30, K) and d(X[0]).shape == (K,)
        np.testing.assert_array_equal(P @ d.state_matrix(), X)  # the state is in every dictionary
    np.testing.assert_array_equal(rff(X), RandomFourierDictionary(3, 16, bandwidth=0.5, seed=2)(X))  # seeded
    # an RBF centered at a data point is 1 there
    assert np.isclose(rbf(rbf.centers[0])[4], 1.0)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: EDMD(MonomialDictionary(2, 3)).fit(np.ones((5, 2)), np.ones((5, 2))), "too few snapshot pairs"),
        (lambda: EDMD(MonomialDictionary(2, 2)).fit(np.ones((20, 3)), np.ones((20, 3))), "n_state = 3"),
        (lambda: EDMD(MonomialDictionary(2, 2)).fit(np.ones((20, 2)), np.ones((19, 2))), "same shape"),
        (lambda: EDMD(MonomialDictionary(2, 2)).fit(np.full((20, 2), np.inf), np.ones((20, 2))), "NaN or Inf"),
        (lambda: EDMD(MonomialDictionary(2, 2)).eigenfunctions(np.ones((3, 2))), "not fitted"),
        (lambda: EDMD("monomials"), "Dictionary"),
        (lambda: EDMD(MonomialDictionary(2, 2), method="svd"), "method"),
        (lambda: MonomialDictionary(2, 0), "degree"),
        (lambda: RBFDictionary(np.zeros((3, 2)), width=0.0), "width"),
        (lambda: RBFDictionary.from_data(np.zeros((3, 2)), 5, 1.0), "exceeds"),
        (lambda: MonomialDictionary(2, 2)(np.ones((4, 3))), "n_state = 2"),
    ],
)
def test_bad_inputs_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()
