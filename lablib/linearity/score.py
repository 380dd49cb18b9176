"""The linearity score between two layers' embeddings (Razzhigaev et al. 2024).

For the embeddings ``X`` (n, d_x) and ``Y`` (n, d_y) of the same n tokens at two consecutive layers:
centre each (subtract its column means), divide each by its Frobenius norm, and measure how much of
the normalized ``Y`` a linear map of the normalized ``X`` leaves unexplained:

    X~ = (X - mean X) / ||X - mean X||_F,   Y~ = (Y - mean Y) / ||Y - mean Y||_F,
    score = 1 - min_A ||X~ A - Y~||_F^2 .

Since ``||Y~||_F = 1`` the score is the R^2 of a multi-output least-squares regression, in [0, 1]:
1 when ``Y`` is exactly an affine function of ``X``, about ``d_x / n`` for independent noise (what
least squares can fit in-sample by chance). It is unchanged by an orthogonal rotation of ``X`` or of
``Y``, by scaling either one, and by translating either one.

Where this differs from the authors' code (``procrustes_similarity`` in the notebook of
github.com/AIRI-Institute/LLM-Microscope): the same centring and Frobenius normalization, but they
solve for ``A`` with an unregularized pseudo-inverse (``V diag(1/S) U^T`` from the SVD of ``X~``),
which divides by every singular value however small; here ``A`` solves the ridge normal equations
``(X~^T X~ + ridge I) A = X~^T Y~`` in float64 with ``ridge = 1e-8`` (relative to
``trace(X~^T X~) = 1``), which changes the score by far less than 1e-6 on full-rank embeddings and
stays finite on rank-deficient ones. Their "residual removed" score (``procrustes_similarity_centered``)
is :func:`residual_linearity_score`: the same score between ``X`` and ``Y - X``. Despite the name,
their "Procrustes similarity" fits an unconstrained linear ``A``; the orthogonal Procrustes
version (``A`` a rotation) is :func:`procrustes_score`, a lower bound on the linearity score.

Beyond the paper: ``heldout=(X_test, Y_test)`` scores a map fitted on ``(X, Y)`` on other tokens,
which removes the in-sample bias (about ``d_x / n``) of a score fitted and measured on the same data.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["AffineMap", "DEFAULT_RIDGE", "fit_affine", "linearity_score", "normalize", "procrustes_score",
           "residual_linearity_score", "update_share"]

DEFAULT_RIDGE = 1e-8


def _as_matrix(x, name: str) -> torch.Tensor:
    """A float64 (n, d) tensor from a tensor or an array; ValueError on a bad shape or a NaN."""
    if isinstance(x, torch.Tensor):
        t = x.detach().to("cpu", torch.float64)
    else:
        try:
            t = torch.as_tensor(x, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError) as err:
            raise ValueError(f"{name} must be a 2-D (n, d) array or tensor; got {type(x).__name__}") from err
    if t.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n, d); got shape {tuple(t.shape)}")
    if t.shape[0] < 2 or t.shape[1] < 1:
        raise ValueError(f"{name} needs at least 2 rows and 1 column; got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contains NaN or Inf values (shape {tuple(t.shape)})")
    return t


def _check_pair(X, Y, names=("X", "Y")) -> tuple[torch.Tensor, torch.Tensor]:
    X, Y = _as_matrix(X, names[0]), _as_matrix(Y, names[1])
    if X.shape[0] != Y.shape[0]:
        raise ValueError(f"{names[0]} and {names[1]} must hold the same tokens (rows); got shapes "
                         f"{tuple(X.shape)} and {tuple(Y.shape)}")
    return X, Y


def _check_ridge(ridge) -> float:
    if isinstance(ridge, bool) or not isinstance(ridge, (int, float)) or not ridge >= 0 or ridge == float("inf"):
        raise ValueError(f"ridge must be a finite number >= 0; got {ridge!r}")
    return float(ridge)


def _centred(x: torch.Tensor, name: str) -> tuple[torch.Tensor, torch.Tensor, float]:
    mean = x.mean(0)
    xc = x - mean
    norm = float(xc.norm())
    if not norm > 1e-12 * max(1.0, float(x.abs().max())):
        raise ValueError(f"{name} is constant across its {x.shape[0]} rows (zero norm after centring); "
                         "the score is undefined")
    return xc, mean, norm


def normalize(X) -> torch.Tensor:
    """``(X - mean X) / ||X - mean X||_F``: float64 (n, d), column means 0, Frobenius norm 1.

    Raises ``ValueError`` for a non-2-D input, a NaN, or rows that are all equal (nothing to normalize).
    """
    X = _as_matrix(X, "X")
    xc, _, norm = _centred(X, "X")
    return xc / norm


@dataclass(frozen=True)
class AffineMap:
    """``y = x @ A + b``: ``A`` (d_in, d_out), ``b`` (d_out,), float64 on the CPU.

    Calling it on a (..., d_in) tensor returns (..., d_out) in the input's dtype and device.
    """

    A: torch.Tensor
    b: torch.Tensor

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.shape[-1] != self.A.shape[0]:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"input must be a tensor (..., {self.A.shape[0]}); got {shape}")
        A, b = self.A.to(x.device, x.dtype), self.b.to(x.device, x.dtype)
        return x @ A + b

    @classmethod
    def identity(cls, d: int) -> "AffineMap":
        """The map that leaves its input unchanged (removing a residual block that is skipped)."""
        return cls(torch.eye(d, dtype=torch.float64), torch.zeros(d, dtype=torch.float64))


def _solve(xc: torch.Tensor, yc: torch.Tensor, ridge: float, scale: float) -> torch.Tensor:
    """argmin_A ||xc A - yc||^2 + ridge * scale * ||A||^2 (``scale = ||xc||_F^2``: ridge relative to the trace)."""
    gram = xc.T @ xc
    gram.diagonal().add_(ridge * scale)
    rhs = xc.T @ yc
    try:
        return torch.linalg.solve(gram, rhs)
    except RuntimeError:  # singular with ridge = 0: the minimum-norm least-squares solution
        return torch.linalg.lstsq(xc, yc, driver="gelsd").solution


def fit_affine(X, Y, *, ridge: float = DEFAULT_RIDGE) -> AffineMap:
    """The least-squares affine map from ``X`` (n, d_in) to ``Y`` (n, d_out): ``Y ~ X A + b``.

    ``A`` minimizes ``||(X - mean X) A - (Y - mean Y)||_F^2 + ridge ||X - mean X||_F^2 ||A||_F^2``
    (the ridge is relative to the trace of the centred Gram matrix, so it does not depend on the
    scale of ``X``); ``b = mean Y - (mean X) A``. Solved in float64. This is the map the linearity
    score measures, in the model's own units, ready to stand in for a block (``linear_replacement``).
    """
    X, Y = _check_pair(X, Y)
    ridge = _check_ridge(ridge)
    xc, mx, nx = _centred(X, "X")
    A = _solve(xc, Y - Y.mean(0), ridge, nx * nx)
    return AffineMap(A, Y.mean(0) - mx @ A)


def linearity_score(X, Y, *, ridge: float = DEFAULT_RIDGE, heldout=None) -> float:
    """``1 - min_A ||X~ A - Y~||_F^2`` for the centred, Frobenius-normalized ``X`` (n, d_x) and ``Y`` (n, d_y).

    The rows of ``X`` and ``Y`` are the same n tokens at two layers. ``ridge``: see :func:`fit_affine`
    (1e-8 by default; 0 for plain least squares). With ``heldout=(X_test, Y_test)`` (m, d_x) and
    (m, d_y), the map is fitted on ``(X, Y)`` and scored on the test tokens:
    ``1 - ||X_test A + b - Y_test||_F^2 / ||Y_test - mean Y_test||_F^2`` (a held-out R^2, which can be
    negative). Without it the score is the paper's, in-sample, in [0, 1].
    Raises ``ValueError`` for mismatched rows, non-2-D inputs, NaNs, constant inputs or a bad ridge.
    """
    X, Y = _check_pair(X, Y)
    ridge = _check_ridge(ridge)
    if heldout is None:
        xc, _, nx = _centred(X, "X")
        yc, _, ny = _centred(Y, "Y")
        xn, yn = xc / nx, yc / ny
        A = _solve(xn, yn, ridge, 1.0)
        return float(1.0 - (xn @ A - yn).pow(2).sum())
    if not isinstance(heldout, (tuple, list)) or len(heldout) != 2:
        raise ValueError("heldout must be a pair (X_test, Y_test)")
    Xt, Yt = _check_pair(*heldout, names=("X_test", "Y_test"))
    if Xt.shape[1] != X.shape[1] or Yt.shape[1] != Y.shape[1]:
        raise ValueError(f"the test pair must have the fitted pair's columns: X {tuple(X.shape)}, Y {tuple(Y.shape)}; "
                         f"X_test {tuple(Xt.shape)}, Y_test {tuple(Yt.shape)}")
    fit = fit_affine(X, Y, ridge=ridge)
    _, _, nyt = _centred(Yt, "Y_test")
    return float(1.0 - (fit(Xt) - Yt).pow(2).sum() / nyt**2)


def residual_linearity_score(X, Y, *, ridge: float = DEFAULT_RIDGE, heldout=None) -> float:
    """The paper's "residual removed" score: :func:`linearity_score` between ``X`` and ``Y - X``.

    ``X``, ``Y`` (n, d): the embeddings before and after a residual block, so ``Y - X`` is what the
    block adds to the stream. ``heldout=(X_test, Y_test)`` works as in :func:`linearity_score`.
    """
    X, Y = _check_pair(X, Y)
    if X.shape[1] != Y.shape[1]:
        raise ValueError(f"Y - X needs equal widths; got shapes {tuple(X.shape)} and {tuple(Y.shape)}")
    if heldout is not None:
        if not isinstance(heldout, (tuple, list)) or len(heldout) != 2:
            raise ValueError("heldout must be a pair (X_test, Y_test)")
        Xt, Yt = _check_pair(*heldout, names=("X_test", "Y_test"))
        if Xt.shape[1] != X.shape[1] or Yt.shape[1] != Y.shape[1]:
            raise ValueError(f"the test pair must have width {X.shape[1]}; got {tuple(Xt.shape)}, {tuple(Yt.shape)}")
        heldout = (Xt, Yt - Xt)
    return linearity_score(X, Y - X, ridge=ridge, heldout=heldout)


def update_share(X, Y) -> float:
    """``||U - mean U||_F / ||Y - mean Y||_F`` for the block's update ``U = Y - X``: how much of the
    (centred) output the block itself added. ``X``, ``Y`` (n, d).

    It links the two scores exactly: the best map from ``X`` to ``Y`` and the best from ``X`` to
    ``U`` leave the same residual (``A = I + B``), so with ``ridge = 0``

        1 - linearity_score(X, Y) = (1 - residual_linearity_score(X, Y)) * update_share(X, Y)^2 .

    A small update share, the paper's "consistently low output norm of the transformer layer",
    is what makes the raw score near 1 while the residual-removed one is not.
    """
    X, Y = _check_pair(X, Y)
    if X.shape[1] != Y.shape[1]:
        raise ValueError(f"Y - X needs equal widths; got shapes {tuple(X.shape)} and {tuple(Y.shape)}")
    _, _, ny = _centred(Y, "Y")
    U = Y - X
    return float((U - U.mean(0)).norm() / ny)


def procrustes_score(X, Y) -> float:
    """The orthogonal Procrustes version: ``1 - min_{R^T R = I} ||X~ R - Y~||_F^2 = 2 ||X~^T Y~||_* - 1``.

    ``X``, ``Y`` (n, d), same width; ``||.||_*`` is the nuclear norm (sum of singular values). Only a
    rotation (or reflection) is allowed, so this is at most :func:`linearity_score` of the same pair
    (and can be negative). Not the paper's score (which fits any ``A``); here for the comparison.
    """
    X, Y = _check_pair(X, Y)
    if X.shape[1] != Y.shape[1]:
        raise ValueError(f"an orthogonal map needs equal widths; got shapes {tuple(X.shape)} and {tuple(Y.shape)}")
    xn, yn = normalize(X), normalize(Y)
    return float(2.0 * torch.linalg.svdvals(xn.T @ yn).sum() - 1.0)
