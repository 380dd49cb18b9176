"""In-context linear regression: the task every track-4 chapter trains and tests on.

A prompt holds N labelled examples of one random linear function and one query:

    w ~ N(0, w_std^2 I_d),   x_i, x_q ~ N(0, Sigma),   y_i = w^T x_i + eps_i,   eps_i ~ N(0, noise_std^2)

A fresh w is drawn for every prompt, so no fixed set of weights can solve the task: a model
has to *learn w from the prompt*, in context. The transformer reads the prompt as one matrix
(von Oswald et al., 2023; Ahn et al., 2023; Zhang, Frei & Bartlett, 2023)

    Z = [[x_1 ... x_N  x_q],      shape (d+1, N+1): one column per token,
         [y_1 ... y_N   0 ]]      the query's label slot left at 0 for the model to fill in.

Shapes used throughout ``lablib.icl``: xs (B, N, d), ys (B, N), x_query (B, d), y_query (B,),
w (B, d), Z (B, d+1, N+1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch

__all__ = [
    "Prompts",
    "RegressionTask",
    "sample_regression_prompts",
    "to_prompt_matrix",
    "from_prompt_matrix",
    "random_covariance",
]


class Prompts(NamedTuple):
    """A batch of regression prompts: xs (B, N, d), ys (B, N), x_query (B, d), y_query (B,), w (B, d)."""

    xs: torch.Tensor
    ys: torch.Tensor
    x_query: torch.Tensor
    y_query: torch.Tensor
    w: torch.Tensor


# ----------------------------------------------------------------------------- input checks


def _check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")
    return value


def _check_nonnegative_float(value, name: str) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a non-negative number; got {value!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite, non-negative number; got {value!r}")
    return value


def _check_tensor(x, name: str, ndim: int, shape_doc: str) -> None:
    """A finite floating-point tensor with ``ndim`` dimensions (a NaN would silently poison every sum)."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape {shape_doc}; got {type(x).__name__}")
    if x.ndim != ndim:
        raise ValueError(f"{name} must have shape {shape_doc}; got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor; got dtype {x.dtype}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or Inf values (shape {tuple(x.shape)})")


def check_prompts(xs, ys, x_query=None) -> tuple[int, int, int]:
    """Check xs (B, N, d), ys (B, N) and (optionally) x_query (B, d); return (B, N, d)."""
    _check_tensor(xs, "xs", 3, "(B, N, d)")
    _check_tensor(ys, "ys", 2, "(B, N)")
    B, N, d = xs.shape
    if N < 1 or d < 1 or B < 1:
        raise ValueError(f"xs must have B, N, d >= 1 (N is the number of in-context examples); got {tuple(xs.shape)}")
    if ys.shape != (B, N):
        raise ValueError(f"ys must have shape (B, N) = {(B, N)} to match xs {tuple(xs.shape)}; got {tuple(ys.shape)}")
    if ys.dtype != xs.dtype:
        raise ValueError(f"xs and ys must share a dtype; got {xs.dtype} and {ys.dtype}")
    if x_query is not None:
        _check_tensor(x_query, "x_query", 2, "(B, d)")
        if x_query.shape != (B, d):
            raise ValueError(
                f"x_query must have shape (B, d) = {(B, d)} to match xs {tuple(xs.shape)}; got {tuple(x_query.shape)}"
            )
        if x_query.dtype != xs.dtype:
            raise ValueError(f"x_query must have the dtype of xs ({xs.dtype}); got {x_query.dtype}")
    return B, N, d


def check_covariance(covariance, d: int) -> torch.Tensor:
    """Check a (d, d) symmetric positive semi-definite covariance; return it as float64."""
    _check_tensor(covariance, "covariance", 2, f"(d, d) = ({d}, {d})")
    if covariance.shape != (d, d):
        raise ValueError(f"covariance must have shape (d, d) = ({d}, {d}); got {tuple(covariance.shape)}")
    cov = covariance.detach().double()
    if not torch.allclose(cov, cov.T, rtol=1e-6, atol=1e-8):
        raise ValueError("covariance must be symmetric")
    smallest = torch.linalg.eigvalsh(cov).min().item()
    if smallest < -1e-8 * max(1.0, cov.diagonal().abs().max().item()):
        raise ValueError(f"covariance must be positive semi-definite; its smallest eigenvalue is {smallest:.3g}")
    return cov


# ----------------------------------------------------------------------------- sampling


def random_covariance(d: int, *, condition: float = 10.0, seed: int = 0) -> torch.Tensor:
    """A fixed random (d, d) covariance with trace d and eigenvalues spread over a ratio ``condition``.

    Eigenvalues are log-spaced from 1 down to 1/condition, then rescaled so that tr(Sigma) = d (the
    same total input variance as Sigma = I, so isotropic and non-isotropic losses are comparable);
    eigenvectors are a random rotation drawn with ``seed``. Returned in float64.
    """
    d = _check_positive_int(d, "d")
    condition = float(condition)
    if not math.isfinite(condition) or condition < 1:
        raise ValueError(f"condition must be a finite number >= 1; got {condition!r}")
    g = torch.Generator().manual_seed(seed)
    # QR of a Gaussian matrix, with the signs of R's diagonal folded in, is a uniformly random rotation
    Q, R = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    Q = Q * torch.sign(torch.diagonal(R)).where(torch.diagonal(R) != 0, torch.ones(()))
    eig = torch.logspace(0, -math.log10(condition), d, dtype=torch.float64)
    eig = eig * d / eig.sum()
    cov = (Q * eig) @ Q.T
    return (cov + cov.T) / 2  # exactly symmetric


def _sqrt_psd(cov: torch.Tensor) -> torch.Tensor:
    """The symmetric square root of a PSD matrix (works for singular Sigma, where Cholesky fails)."""
    eig, vec = torch.linalg.eigh(cov)
    return (vec * eig.clamp_min(0).sqrt()) @ vec.T


def sample_regression_prompts(
    batch: int,
    N: int,
    d: int,
    *,
    noise_std: float = 0.0,
    covariance: torch.Tensor | None = None,
    w_std: float = 1.0,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> Prompts:
    """Draw ``batch`` independent prompts, each with its own w; see the module docstring.

    covariance: Sigma (d, d) for x_i and x_q (symmetric PSD); None means I_d.
    Returns Prompts(xs (B, N, d), ys (B, N), x_query (B, d), y_query (B,), w (B, d)); y_query is
    noisy like the y_i, so even the true w has expected loss noise_std^2.
    """
    batch, N, d = (_check_positive_int(v, name) for v, name in ((batch, "batch"), (N, "N"), (d, "d")))
    noise_std = _check_nonnegative_float(noise_std, "noise_std")
    w_std = _check_nonnegative_float(w_std, "w_std")
    if not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating-point dtype; got {dtype}")
    g = generator

    def normal(*shape):  # sampled in float64 so a seed gives the same prompts in every dtype
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    x = normal(batch, N + 1, d)  # N examples and the query, drawn together
    if covariance is not None:
        x = x @ _sqrt_psd(check_covariance(covariance, d))  # x = z Sigma^{1/2} has covariance Sigma
    w = w_std * normal(batch, d)
    y = torch.einsum("bnd,bd->bn", x, w) + noise_std * normal(batch, N + 1)
    return Prompts(*(t.to(dtype) for t in (x[:, :N], y[:, :N], x[:, N], y[:, N], w)))


@dataclass(frozen=True, eq=False)  # eq=False: comparing tensor fields has no single truth value
class RegressionTask:
    """The distribution of prompts: N examples in d dimensions, label noise, input covariance, prior scale.

    ``task.sample(batch, generator)`` (or ``task(batch, generator)``) draws Prompts; the closed
    forms in ``lablib.icl.baselines`` (optimal step size, optimal preconditioner, expected loss)
    take a task, so a chapter states the distribution once.
    """

    d: int
    N: int
    noise_std: float = 0.0
    covariance: torch.Tensor | None = None  # Sigma (d, d); None = I_d
    w_std: float = 1.0

    def __post_init__(self):
        _check_positive_int(self.d, "d")
        _check_positive_int(self.N, "N")
        _check_nonnegative_float(self.noise_std, "noise_std")
        _check_nonnegative_float(self.w_std, "w_std")
        if self.covariance is not None:
            check_covariance(self.covariance, self.d)

    @property
    def sigma(self) -> torch.Tensor:
        """Sigma (d, d) in float64 (the identity for an isotropic task)."""
        if self.covariance is None:
            return torch.eye(self.d, dtype=torch.float64)
        return self.covariance.detach().double()

    def sample(self, batch: int, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32) -> Prompts:
        return sample_regression_prompts(
            batch,
            self.N,
            self.d,
            noise_std=self.noise_std,
            covariance=self.covariance,
            w_std=self.w_std,
            generator=generator,
            dtype=dtype,
        )

    __call__ = sample


# ----------------------------------------------------------------------------- the prompt matrix


def to_prompt_matrix(xs: torch.Tensor, ys: torch.Tensor, x_query: torch.Tensor) -> torch.Tensor:
    """Z (B, d+1, N+1) from xs (B, N, d), ys (B, N), x_query (B, d): tokens are columns, the query's y is 0."""
    B, N, d = check_prompts(xs, ys, x_query)
    top = torch.cat([xs, x_query[:, None]], dim=1).transpose(1, 2)  # (B, d, N+1)
    bottom = torch.cat([ys, ys.new_zeros(B, 1)], dim=1)[:, None]  # (B, 1, N+1)
    return torch.cat([top, bottom], dim=1)


def from_prompt_matrix(Z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The inverse of ``to_prompt_matrix``: (xs (B, N, d), ys (B, N), x_query (B, d)) from Z (B, d+1, N+1)."""
    _check_tensor(Z, "Z", 3, "(B, d+1, N+1)")
    if Z.shape[1] < 2 or Z.shape[2] < 2:
        raise ValueError(f"Z must have shape (B, d+1, N+1) with d, N >= 1; got {tuple(Z.shape)}")
    return Z[:, :-1, :-1].transpose(1, 2), Z[:, -1, :-1], Z[:, :-1, -1]
