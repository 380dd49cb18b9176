"""LEACE: least-squares concept erasure in closed form (Belrose et al. 2023,
"LEACE: Perfect linear concept erasure in closed form", arXiv:2306.03819).

Given representations X (n, d) and a concept Z (n, k) (one-hot classes), LEACE finds the affine
map r(x) = x - M (x - mu) that

1. makes the class-conditional means of r(X) equal (so *no* linear classifier can do better than
   a constant on r(X): the paper's Theorem 3.1, "linear guardedness"), and
2. among all such maps, moves X the least: it minimises E ||r(X) - X||^2, and the paper shows
   the same map is optimal for every norm that comes from an inner product.

The closed form (paper, Theorem 4.3):

    W   = Cov_X^{-1/2}                   whitening                       (d, d)
    W^+ = Cov_X^{+1/2}                   its pseudo-inverse (unwhitening) (d, d)
    P   = orthogonal projection onto the column space of W Cov_XZ        (d, d), rank <= k - 1
    r(x) = x - W^+ P W (x - mu)          mu = E[x]

Read right to left: centre x, whiten it, keep only the part along the (whitened) directions
that covary with Z, unwhiten that part, subtract it. In the whitened space this is an orthogonal
projection; in the original space it is an *oblique* one: for a binary concept with class-mean
difference delta it removes x along delta, by the amount that the LDA functional
delta^T Cov_X^{-1} (x - mu) reads off.

``LeaceEraser`` stores the rank-r factors ``proj_left = W^+ U`` (d, r) and
``proj_right = U^T W`` (r, d), where U (d, r) is an orthonormal basis of that column space, so
``W^+ P W = proj_left @ proj_right``. The peer implementation (EleutherAI's ``concept-erasure``,
``LeaceEraser.fit``) uses the same factorisation; ``tests/test_encoder_leace.py`` checks that both
give the same outputs. (Its defaults add two refinements that the paper's formula does not have:
a shrinkage estimate of Cov_X and a cap on the trace of the erased covariance; with
``shrinkage=False, constrain_cov_trace=False`` it is the formula above.)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["LeaceEraser", "one_hot", "shrink_covariance"]


def shrink_covariance(cov: torch.Tensor, n: int) -> torch.Tensor:
    """Linear shrinkage of a (d, d) sample covariance towards a multiple of the identity.

    Returns ``a * cov + (1 - a) * (tr(cov) / d) * I`` with
    ``a = 1 - tr(cov)^2 / (n * (||cov||_F^2 - tr(cov)^2 / d))``, the random-matrix-theory optimum
    in Frobenius norm when d / n stays finite (Ledoit-Wolf style; the formula of
    ``concept_erasure.optimal_linear_shrinkage``, arXiv:1308.2608, simplified: its target has
    the trace of ``cov``, which makes its two coefficients sum to one). ``cov`` is the biased
    estimate (divided by n). Shrinkage lifts the zero and tiny eigenvalues that a few hundred
    samples in 384 dimensions leave, so that whitening does not blow them up.
    """
    d = cov.shape[0]
    tr = torch.trace(cov)
    a = 1 - tr**2 / (n * (cov.square().sum() - tr**2 / d))
    return a * cov + (1 - a) * (tr / d) * torch.eye(d, dtype=cov.dtype)


def one_hot(z: torch.Tensor, n_classes: int | None = None) -> torch.Tensor:
    """(n,) integer labels 0..k-1 -> (n, k) float64 one-hot."""
    z = torch.as_tensor(z)
    if z.ndim != 1 or z.dtype.is_floating_point or z.dtype == torch.bool or z.numel() == 0:
        raise ValueError(f"labels must be a non-empty 1-D integer tensor; got shape {tuple(z.shape)}, dtype {z.dtype}")
    if z.min() < 0:
        raise ValueError("labels must be >= 0")
    k = int(z.max()) + 1 if n_classes is None else n_classes
    if z.max() >= k:
        raise ValueError(f"labels must be < n_classes={k}")
    return torch.nn.functional.one_hot(z.long(), k).double()


def _check_fit_inputs(x, z) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.as_tensor(x)
    if x.ndim != 2 or not x.dtype.is_floating_point:
        raise ValueError(f"x must be a 2-D float tensor (n, d); got shape {tuple(x.shape)}, dtype {x.dtype}")
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"need at least 2 samples to estimate covariances; got {n}")
    if not torch.isfinite(x).all():
        raise ValueError("x contains NaN or Inf")
    z = torch.as_tensor(z)
    if z.ndim == 1:
        z = one_hot(z)
    elif z.ndim == 2 and z.dtype.is_floating_point:
        z = z.double()
    else:
        raise ValueError(f"z must be (n,) integer labels or an (n, k) float matrix; got shape {tuple(z.shape)}, dtype {z.dtype}")
    if z.shape[0] != n:
        raise ValueError(f"x has {n} rows but z has {z.shape[0]}")
    if not torch.isfinite(z).all():
        raise ValueError("z contains NaN or Inf")
    if torch.allclose(z, z[:1].expand_as(z)):
        raise ValueError("z is constant: there is no concept to erase (need at least two classes)")
    return x, z


@dataclass(frozen=True)
class LeaceEraser:
    """The affine eraser r(x) = x - proj_left @ proj_right @ (x - mean).

    mean: (d,) the mean of the fitting data. proj_left: (d, r) = W^+ U. proj_right: (r, d) = U^T W.
    r is the rank of Cov_XZ after whitening (at most k - 1 for k one-hot classes). Float64.
    """

    mean: torch.Tensor
    proj_left: torch.Tensor
    proj_right: torch.Tensor

    @classmethod
    def fit(cls, x: torch.Tensor, z: torch.Tensor, *, shrinkage: bool = False, svd_tol: float = 0.01) -> "LeaceEraser":
        """Fit on x (n, d) float and z, either (n,) integer class labels or an (n, k) float matrix.

        Covariances are the unbiased sample ones (divide by n - 1), computed in float64. With
        ``shrinkage=True`` Cov_X is replaced by ``shrink_covariance`` of it (the estimate that
        ``concept-erasure`` uses by default); that matters when Cov_X is ill-conditioned, as it is
        for a few hundred template sentences in 384 dimensions (see the module docstring).
        Eigenvalues of Cov_X below ``eigmax * d * eps`` are treated as zero (the pseudo-inverse's
        cut-off), and singular values of W Cov_XZ at or below ``svd_tol`` are dropped (exactly
        the rules of ``concept-erasure``; a one-hot Z always has one zero singular value, since its
        centred columns sum to zero). Raises ``ValueError`` on bad shapes, NaN, or a constant z.
        """
        x, z = _check_fit_inputs(x, z)
        if not svd_tol > 0:
            raise ValueError(f"svd_tol must be > 0; got {svd_tol}")
        x = x.double()
        n = x.shape[0]
        mean = x.mean(0)  # (d,)
        xc = x - mean  # (n, d)
        zc = z - z.mean(0)  # (n, k)
        if shrinkage:
            cov_xx = shrink_covariance(xc.T @ xc / n, n)  # (d, d)
        else:
            cov_xx = xc.T @ xc / (n - 1)  # (d, d)
        cov_xz = xc.T @ zc / (n - 1)  # (d, k)

        # Whitening W = Cov_X^{-1/2} and unwhitening W^+ = Cov_X^{1/2}, on the non-null eigenspace.
        evals, evecs = torch.linalg.eigh((cov_xx + cov_xx.T) / 2)  # ascending; (d,), (d, d)
        keep = evals > evals[-1] * cov_xx.shape[0] * torch.finfo(evals.dtype).eps
        evals = evals.clamp_min(0.0)
        inv_sqrt = torch.where(keep, evals.rsqrt(), torch.zeros_like(evals))
        sqrt = torch.where(keep, evals.sqrt(), torch.zeros_like(evals))
        w = (evecs * inv_sqrt) @ evecs.T  # (d, d)
        w_pinv = (evecs * sqrt) @ evecs.T  # (d, d)

        # Orthonormal basis U (d, r) of the column space of W Cov_XZ; P = U U^T.
        u, s, _ = torch.linalg.svd(w @ cov_xz, full_matrices=False)  # (d, k), (k,)
        u = u[:, s > svd_tol]  # (d, r)
        return cls(mean=mean, proj_left=w_pinv @ u, proj_right=u.T @ w)

    @property
    def rank(self) -> int:
        """Number of directions erased (r)."""
        return self.proj_left.shape[1]

    @property
    def matrix(self) -> torch.Tensor:
        """The (d, d) linear part I - W^+ P W (so r(x) = matrix @ x + const)."""
        d = self.mean.shape[0]
        return torch.eye(d, dtype=self.mean.dtype) - self.proj_left @ self.proj_right

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Erase the concept from x (..., d); returns a tensor of x's dtype and shape."""
        x = torch.as_tensor(x)
        if x.ndim < 1 or x.shape[-1] != self.mean.shape[0] or not x.dtype.is_floating_point:
            raise ValueError(f"x must be a float tensor (..., {self.mean.shape[0]}); got shape {tuple(x.shape)}, dtype {x.dtype}")
        x64 = x.double()
        erased = x64 - ((x64 - self.mean) @ self.proj_right.T) @ self.proj_left.T
        return erased.to(x.dtype)
