"""Exercise checks for track 5, chapter t5_03 (how linear is a transformer): each takes the learner's
function and compares it with :mod:`lablib.linearity` on random cases built to expose the usual slips
(no centring, per-column instead of Frobenius normalization, a map without intercept, an unconstrained
map where a rotation was asked for)."""

from __future__ import annotations

import torch

from lablib.linearity.score import fit_affine, linearity_score, procrustes_score

__all__ = ["check_affine_fit", "check_linearity_score", "check_procrustes_score"]


def _cases(seed: int, n: int, d_in: int, d_out: int):
    """X with a large mean and unequal column scales; Y a nonlinear function of X, also offset and anisotropic."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d_in, generator=g, dtype=torch.float64) * torch.linspace(0.3, 3.0, d_in, dtype=torch.float64) + 4.0
    W = torch.randn(d_in, d_out, generator=g, dtype=torch.float64)
    Y = torch.tanh((X - 4.0) @ W / 2) * torch.linspace(0.2, 5.0, d_out, dtype=torch.float64)
    Y = Y + 0.2 * torch.randn(n, d_out, generator=g, dtype=torch.float64) - 3.0
    return X, Y


def _float(value, name: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError, RuntimeError) as err:
        raise AssertionError(f"{name}: expected one number; got {type(value).__name__}") from err


def check_linearity_score(fn) -> str:
    """``fn(X, Y) -> float``: the linearity score of ``X`` (n, d_x) and ``Y`` (n, d_y), float64 tensors.

    Centre each, divide each by its Frobenius norm, fit ``A`` by least squares, return
    ``1 - ||X~ A - Y~||_F^2``. Compared with :func:`lablib.linearity.linearity_score` to 1e-6.
    """
    n = 0
    for seed, (rows, d_in, d_out) in enumerate([(300, 6, 6), (500, 10, 4), (200, 5, 12)]):
        X, Y = _cases(seed, rows, d_in, d_out)
        got = _float(fn(X.clone(), Y.clone()), "linearity score")
        want = linearity_score(X, Y)
        if not abs(got - want) <= 1e-6:
            raise AssertionError(f"linearity score: got {got:.6f}, expected {want:.6f} on case {n} "
                                 f"({rows} tokens, {d_in} -> {d_out} dims). Did you centre both, and divide each "
                                 "by its whole Frobenius norm (not column by column)?")
        n += 1
    return f"✓ linearity score: correct on {n} random pairs"


def check_affine_fit(fn) -> str:
    """``fn(X, Y) -> (A, b)``: the least-squares affine map, ``Y ~ X @ A + b``, with ``A`` (d_in, d_out), ``b`` (d_out,).

    Its predictions ``X_test @ A + b`` on new tokens are compared with those of
    :func:`lablib.linearity.fit_affine` to 1e-6 (relative to the predictions' scale).
    """
    n = 0
    for seed, (rows, d_in, d_out) in enumerate([(300, 6, 6), (400, 8, 3)]):
        X, Y = _cases(10 + seed, rows, d_in, d_out)
        X_test, _ = _cases(20 + seed, 50, d_in, d_out)
        out = fn(X.clone(), Y.clone())
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise AssertionError("affine fit: return the pair (A, b)")
        A, b = (torch.as_tensor(t, dtype=torch.float64) for t in out)
        if A.shape != (d_in, d_out) or b.reshape(-1).shape != (d_out,):
            raise AssertionError(f"affine fit: A should be ({d_in}, {d_out}) and b ({d_out},); "
                                 f"got {tuple(A.shape)} and {tuple(b.shape)}")
        want = fit_affine(X, Y, ridge=0.0)(X_test)
        got = X_test @ A + b.reshape(-1)
        err = float((got - want).abs().max() / want.abs().max())
        if not err <= 1e-6:
            raise AssertionError(f"affine fit: predictions off by {err:.2g} (relative) on case {n}. "
                                 "Fit A on the centred X and Y, then b = mean(Y) - mean(X) @ A.")
        n += 1
    return f"✓ affine fit: correct predictions on {n} random problems"


def check_procrustes_score(fn) -> str:
    """``fn(X, Y) -> float``: the orthogonal Procrustes score ``1 - min_{R^T R = I} ||X~ R - Y~||_F^2``, X and Y (n, d).

    Compared with :func:`lablib.linearity.procrustes_score` to 1e-6 (hint: the best rotation
    comes from the SVD of ``X~^T Y~``).
    """
    n = 0
    for seed, (rows, d) in enumerate([(300, 6), (500, 9)]):
        X, Y = _cases(30 + seed, rows, d, d)
        got = _float(fn(X.clone(), Y.clone()), "Procrustes score")
        want = procrustes_score(X, Y)
        if not abs(got - want) <= 1e-6:
            lin = linearity_score(X, Y)
            hint = (" That is the unconstrained linearity score: R must be orthogonal."
                    if abs(got - lin) < 1e-6 else "")
            raise AssertionError(f"Procrustes score: got {got:.6f}, expected {want:.6f} on case {n}.{hint}")
        n += 1
    return f"✓ Procrustes score: correct on {n} random pairs"
