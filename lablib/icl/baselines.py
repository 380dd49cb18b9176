"""The learners a transformer is compared with: least squares, ridge, and (preconditioned) gradient descent.

All of them see one prompt's examples xs (B, N, d), ys (B, N) and return a weight vector w (B, d);
``predict(w, x_query)`` turns it into predictions (B,). Gradient descent is on the in-context loss

    L(w) = 1/(2N) sum_i (w^T x_i - y_i)^2,     grad L(w) = S w - h,   S = X^T X / N (d, d),  h = X^T y / N (d,)

started from w = 0. One step with preconditioner Gamma (d, d) gives w_1 = Gamma h, i.e. the prediction

    yhat = x_q^T Gamma (1/N) sum_i y_i x_i

which is exactly what one layer of linear self-attention computes (``lablib.icl.lsa``). Plain GD
is Gamma = eta I.

Closed forms for one step (derived in ``one_step_expected_loss``; they need only E[w w^T] =
w_std^2 I and Gaussian x ~ N(0, Sigma)):

    Gamma* = ( (N+1)/N Sigma + (tr(Sigma) + noise_std^2 / w_std^2)/N I )^{-1}         (Ahn et al., 2023)
    eta*   = tr(Sigma^2) / tr(Sigma A) with A = (N+1)/N Sigma^2 + (tr(Sigma) + sigma^2/tau^2)/N Sigma,
           = N / (N + d + 1 + noise_std^2 / w_std^2)   for Sigma = I.

For more than one step there is no tidy closed form; ``fit_step_sizes`` and ``fit_preconditioners``
minimize the loss on a fixed batch of prompts instead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from lablib.icl.tasks import Prompts, RegressionTask, _check_tensor, check_prompts

__all__ = [
    "predict",
    "mse",
    "least_squares",
    "ridge",
    "bayes_optimal_weights",
    "gd",
    "preconditioned_gd",
    "optimal_step_size",
    "optimal_preconditioner",
    "one_step_expected_loss",
    "fit_step_sizes",
    "fit_preconditioners",
    "gd_plus_plus",
    "fit_gd_plus_plus",
]


def predict(w: torch.Tensor, x_query: torch.Tensor) -> torch.Tensor:
    """Predictions w^T x_q (B,) from weights w (B, d) and queries x_query (B, d)."""
    _check_tensor(w, "w", 2, "(B, d)")
    _check_tensor(x_query, "x_query", 2, "(B, d)")
    if w.shape != x_query.shape:
        raise ValueError(f"w and x_query must both have shape (B, d); got {tuple(w.shape)} and {tuple(x_query.shape)}")
    return (w * x_query).sum(-1)


def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the batch (a 0-dim tensor); pred and target (B,)."""
    if not isinstance(pred, torch.Tensor) or not isinstance(target, torch.Tensor) or pred.shape != target.shape:
        raise ValueError(
            f"pred and target must be tensors of the same shape (B,); got {getattr(pred, 'shape', type(pred))} "
            f"and {getattr(target, 'shape', type(target))}"
        )
    return ((pred - target) ** 2).mean()


# ----------------------------------------------------------------------------- exact solvers


def least_squares(xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """The minimum-norm least-squares weights pinv(X) y (B, d): exact fit when N >= d, smallest w when N < d."""
    check_prompts(xs, ys)
    return (torch.linalg.pinv(xs) @ ys.unsqueeze(-1)).squeeze(-1)


def ridge(xs: torch.Tensor, ys: torch.Tensor, lam: float) -> torch.Tensor:
    """Ridge weights (X^T X + lam I)^{-1} X^T y (B, d); ``lam`` >= 0 (0 gives ``least_squares``).

    Note lam multiplies I against X^T X, the *sum* over examples (not the mean).
    """
    B, N, d = check_prompts(xs, ys)
    lam = float(lam)
    if not math.isfinite(lam) or lam < 0:
        raise ValueError(f"lam must be a finite, non-negative number; got {lam!r}")
    if lam == 0:
        return least_squares(xs, ys)
    XtX = xs.transpose(1, 2) @ xs
    Xty = (xs.transpose(1, 2) @ ys.unsqueeze(-1)).squeeze(-1)
    eye = torch.eye(d, dtype=xs.dtype, device=xs.device)
    return torch.linalg.solve(XtX + lam * eye, Xty)


def bayes_optimal_weights(xs: torch.Tensor, ys: torch.Tensor, task: RegressionTask) -> torch.Tensor:
    """The posterior mean E[w | prompt] (B, d): the prediction with the lowest possible expected loss.

    With w ~ N(0, tau^2 I) and Gaussian noise sigma^2 it is ridge with lam = sigma^2 / tau^2;
    noiseless, it is the minimum-norm interpolant (``least_squares``). Nothing an in-context
    learner does can beat it on average: it is the floor every curve is measured against.
    """
    check_prompts(xs, ys)
    if task.w_std == 0:
        return xs.new_zeros(xs.shape[0], xs.shape[2])
    return ridge(xs, ys, task.noise_std**2 / task.w_std**2)


# ----------------------------------------------------------------------------- gradient descent


def _as_gammas(gammas, steps: int | None, d: int, dtype, device) -> list[torch.Tensor]:
    """Normalize step sizes / preconditioners to a list of (d, d) matrices, one per step.

    Accepted: a number (eta I), a (d, d) or (k, d, d) tensor, or a list of numbers / (d, d) tensors.
    """
    eye = torch.eye(d, dtype=dtype, device=device)

    def as_matrix(G):
        if isinstance(G, (int, float)) and not isinstance(G, bool):
            return float(G) * eye
        if isinstance(G, torch.Tensor) and G.ndim == 0:
            return G.to(dtype=dtype, device=device) * eye
        return G

    if isinstance(gammas, (int, float)) and not isinstance(gammas, bool) or (
        isinstance(gammas, torch.Tensor) and gammas.ndim == 0
    ):
        gammas = [as_matrix(gammas)]
    if isinstance(gammas, torch.Tensor):
        if not gammas.is_floating_point() or not torch.isfinite(gammas).all():
            raise ValueError("preconditioners / step sizes must be finite floating-point values")
        if gammas.ndim == 2:
            gammas = [gammas] * (1 if steps is None else steps)
        elif gammas.ndim == 3:
            gammas = list(gammas)
        else:
            raise ValueError(f"gammas must have shape (d, d) or (k, d, d); got {tuple(gammas.shape)}")
    elif isinstance(gammas, Sequence):
        gammas = [as_matrix(G) for G in gammas]
    else:
        raise ValueError(f"gammas must be a (d, d) tensor, a (k, d, d) tensor or a list of (d, d); got {type(gammas).__name__}")
    if not gammas:
        raise ValueError("need at least one step (got an empty list of preconditioners)")
    for t, G in enumerate(gammas):
        if not isinstance(G, torch.Tensor) or G.shape != (d, d):
            raise ValueError(f"preconditioner {t} must be a (d, d) = ({d}, {d}) tensor; got {getattr(G, 'shape', G)!r}")
        if not torch.isfinite(G).all():
            raise ValueError(f"preconditioner {t} contains NaN or Inf values")
    return [G.to(dtype=dtype, device=device) for G in gammas]


def preconditioned_gd(xs: torch.Tensor, ys: torch.Tensor, gammas) -> torch.Tensor:
    """Weights (B, d) after k steps of preconditioned GD from w = 0: w <- w - Gamma_t grad L(w).

    gammas: a (d, d) matrix (one step), a (k, d, d) tensor or a list of k (d, d) matrices (step t
    uses Gamma_t); a number eta, alone or in the list, stands for eta I. Differentiable in gammas, so the preconditioners can themselves be fitted.
    """
    B, N, d = check_prompts(xs, ys)
    gammas = _as_gammas(gammas, None, d, xs.dtype, xs.device)
    S = xs.transpose(1, 2) @ xs / N  # (B, d, d): the loss's Hessian
    h = (xs.transpose(1, 2) @ ys.unsqueeze(-1)).squeeze(-1) / N  # (B, d): minus the gradient at w = 0
    w = xs.new_zeros(B, d)
    for G in gammas:
        grad = (S @ w.unsqueeze(-1)).squeeze(-1) - h
        w = w - grad @ G.T  # row-vector form of w - G grad
    return w


def gd(xs: torch.Tensor, ys: torch.Tensor, eta, steps: int = 1) -> torch.Tensor:
    """Weights (B, d) after ``steps`` steps of plain GD from w = 0 with step size eta.

    eta: a number (every step) or a sequence / 1-D tensor of ``steps`` step sizes, one per step.
    """
    B, N, d = check_prompts(xs, ys)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer; got {steps!r}")
    eta = torch.as_tensor(eta, dtype=xs.dtype, device=xs.device)
    if eta.ndim == 0:
        eta = eta.expand(steps)
    if eta.shape != (steps,):
        raise ValueError(f"eta must be a number or hold one step size per step ({steps}); got shape {tuple(eta.shape)}")
    if not torch.isfinite(eta).all():
        raise ValueError(f"eta must be finite; got {eta.tolist()}")
    eye = torch.eye(d, dtype=xs.dtype, device=xs.device)
    return preconditioned_gd(xs, ys, [e * eye for e in eta])


# ----------------------------------------------------------------------------- closed forms for one step


def _one_step_moments(task: RegressionTask) -> tuple[torch.Tensor, torch.Tensor]:
    """(Sigma, A) in float64, A = E[h h^T] / tau^2 for h = X^T y / N (see ``one_step_expected_loss``)."""
    if not isinstance(task, RegressionTask):
        raise ValueError(f"task must be a RegressionTask; got {type(task).__name__}")
    if task.w_std == 0:
        raise ValueError("the closed forms need w_std > 0 (with w = 0 the best predictor is 0)")
    Sig, N = task.sigma, task.N
    ratio = task.noise_std**2 / task.w_std**2  # noise-to-signal ratio sigma^2 / tau^2
    A = (N + 1) / N * Sig @ Sig + (torch.trace(Sig) + ratio) / N * Sig
    return Sig, A


def one_step_expected_loss(task: RegressionTask, gamma) -> float:
    """Expected query loss E[(x_q^T Gamma h - y_q)^2] of one preconditioned GD step, in closed form.

    gamma: a number (plain GD, Gamma = gamma I) or a (d, d) matrix. Derivation, with S = X^T X / N
    and h = S w + X^T eps / N:
        E[loss] = E[(Gamma h - w)^T Sigma (Gamma h - w)] + sigma^2
                = tau^2 [tr(Sigma Gamma A Gamma^T) - 2 tr(Sigma Gamma Sigma) + tr(Sigma)] + sigma^2
    using E[w w^T] = tau^2 I, E[S] = Sigma and, for Gaussian x (Isserlis / Wishart),
        E[S^2] = (N+1)/N Sigma^2 + tr(Sigma)/N Sigma,   so   E[h h^T] = tau^2 A.
    """
    Sig, A = _one_step_moments(task)
    G = _gamma_matrix(gamma, task.d)
    tau2 = task.w_std**2
    value = tau2 * (torch.trace(Sig @ G @ A @ G.T) - 2 * torch.trace(Sig @ G @ Sig) + torch.trace(Sig))
    return float(value) + task.noise_std**2


def _gamma_matrix(gamma, d: int) -> torch.Tensor:
    if isinstance(gamma, torch.Tensor) and gamma.ndim == 2:
        if gamma.shape != (d, d) or not torch.isfinite(gamma).all():
            raise ValueError(f"gamma must be a finite (d, d) = ({d}, {d}) matrix; got shape {tuple(gamma.shape)}")
        return gamma.detach().double()
    gamma = float(gamma)
    if not math.isfinite(gamma):
        raise ValueError(f"gamma must be finite; got {gamma}")
    return gamma * torch.eye(d, dtype=torch.float64)


def optimal_preconditioner(task: RegressionTask) -> torch.Tensor:
    """Gamma* (d, d, float64): the preconditioner of the one-step GD with the lowest expected loss.

    Setting the gradient of ``one_step_expected_loss`` to zero, 2 tau^2 Sigma (Gamma A - Sigma) = 0,
    so Gamma* = Sigma A^{-1} = ((N+1)/N Sigma + (tr(Sigma) + sigma^2/tau^2)/N I)^{-1}
    (Sigma and A commute). For large N it tends to Sigma^{-1}: Newton's step, the one that
    undoes the inputs' correlations. For Sigma = I it is ``optimal_step_size(task)`` times I.
    """
    Sig, A = _one_step_moments(task)
    return torch.linalg.solve(A, Sig).T  # Sigma A^{-1}, as A^{-T} Sigma^T transposed


def optimal_step_size(task: RegressionTask) -> float:
    """eta*: the scalar step size of one plain GD step with the lowest expected loss.

    The loss is a quadratic in eta (``one_step_expected_loss``):
    tau^2 [eta^2 tr(Sigma A) - 2 eta tr(Sigma^2) + tr(Sigma)], minimized at eta* = tr(Sigma^2) / tr(Sigma A);
    for Sigma = I and no noise, eta* = N / (N + d + 1): less than 1, because a small sample's
    gradient overshoots (E[S^2] exceeds Sigma^2 by the sampling variance tr(Sigma)/N Sigma).
    """
    Sig, A = _one_step_moments(task)
    return float(torch.trace(Sig @ Sig) / torch.trace(Sig @ A))


# ----------------------------------------------------------------------------- fitted step sizes for k steps


def _fit(params: torch.Tensor, loss_fn, max_iter: int) -> torch.Tensor:
    """Minimize loss_fn(params) with L-BFGS (float64, strong Wolfe line search); return the fitted copy."""
    params = params.detach().clone().requires_grad_()
    opt = torch.optim.LBFGS([params], lr=1, max_iter=max_iter, line_search_fn="strong_wolfe", tolerance_grad=1e-12)

    def closure():
        opt.zero_grad()
        loss = loss_fn(params)
        loss.backward()
        return loss

    opt.step(closure)
    return params.detach()


def _check_fit_args(prompts, steps):
    if not isinstance(prompts, Prompts):
        raise ValueError(f"prompts must be a lablib.icl.Prompts; got {type(prompts).__name__}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer; got {steps!r}")
    check_prompts(prompts.xs, prompts.ys, prompts.x_query)
    return [t.detach().double() for t in (prompts.xs, prompts.ys, prompts.x_query, prompts.y_query)]


def _initial_eta(xs: torch.Tensor) -> float:
    """A safe starting step: 1 / (the average largest eigenvalue of S), below the divergence threshold 2 / lambda_max."""
    S = xs.transpose(1, 2) @ xs / xs.shape[1]
    return 1.0 / torch.linalg.eigvalsh(S)[:, -1].mean().item()


def _initial_etas(xs: torch.Tensor, steps: int) -> torch.Tensor:
    """Distinct starting step sizes eta_0 (1, 1.5, 2, ...) / ...: k steps of scalar GD commute, so the
    loss is symmetric in the step sizes and equal starting values would never separate (L-BFGS
    would stop at the symmetric saddle). Spread out, they can find the larger late steps that
    damp the small-eigenvalue directions (as Chebyshev / Richardson step sizes do).
    """
    eta0 = _initial_eta(xs)
    return eta0 * (1 + 0.5 * torch.arange(steps, dtype=torch.float64)) / (1 + 0.25 * (steps - 1))


def fit_step_sizes(prompts: Prompts, steps: int, *, max_iter: int = 200) -> torch.Tensor:
    """Per-step step sizes (steps,) float64 minimizing the query MSE of ``gd`` on ``prompts``.

    Fit on one batch and evaluate on another (a few thousand prompts is plenty for a handful of
    numbers). For one step on an isotropic task the fitted value approaches ``optimal_step_size``.
    """
    xs, ys, xq, yq = _check_fit_args(prompts, steps)
    init = _initial_etas(xs, steps)
    return _fit(init, lambda eta: mse(predict(gd(xs, ys, eta, steps), xq), yq), max_iter)


def fit_preconditioners(prompts: Prompts, steps: int, *, max_iter: int = 300) -> torch.Tensor:
    """Per-step preconditioners (steps, d, d) float64 minimizing the query MSE of ``preconditioned_gd``.

    The k-step analogue of ``optimal_preconditioner`` (to which the one-step fit converges as
    the batch grows): the best that k layers of linear self-attention restricted to the GD form
    can do (Ahn et al., 2023).
    """
    xs, ys, xq, yq = _check_fit_args(prompts, steps)
    d = xs.shape[-1]
    init = _initial_etas(xs, steps)[:, None, None] * torch.eye(d, dtype=torch.float64)
    return _fit(init, lambda G: mse(predict(preconditioned_gd(xs, ys, G), xq), yq), max_iter)


# ----------------------------------------------------------------------------- GD++: GD that also reshapes the data


def _check_pairs(etas, gammas) -> tuple[torch.Tensor, torch.Tensor]:
    etas = torch.as_tensor(etas, dtype=torch.float64) if not isinstance(etas, torch.Tensor) else etas
    gammas = torch.as_tensor(gammas, dtype=torch.float64) if not isinstance(gammas, torch.Tensor) else gammas
    etas, gammas = etas.reshape(-1), gammas.reshape(-1)
    if etas.numel() < 1 or etas.shape != gammas.shape:
        raise ValueError(f"etas and gammas must be non-empty and hold one number per step each; got {etas.numel()} and {gammas.numel()}")
    if not (torch.isfinite(etas).all() and torch.isfinite(gammas).all()):
        raise ValueError("etas and gammas must be finite")
    return etas, gammas


def gd_plus_plus(xs: torch.Tensor, ys: torch.Tensor, x_query: torch.Tensor, etas, gammas) -> torch.Tensor:
    """Predictions (B,) of GD++ (von Oswald et al., 2023): each step is a GD step *and* a data transform.

    Step t, with S and h = X^T r / N computed from the current tokens (r: current residuals):
        yhat <- yhat + eta_t x_q^T h          (the GD step, read at the current query)
        r_j  <- r_j - eta_t x_j^T h           (residuals after the step)
        x_j  <- (I - gamma_t S) x_j           (every token, query included: a curvature correction)
    gamma = 0 gives plain GD. The transform shrinks the directions the data already covers well,
    so later steps see a better-conditioned problem: after k steps the prediction is x_q^T p(S) h
    for a polynomial p of degree 2^k - 1 rather than k - 1, a better approximation of S^{-1}.
    It is what a full (unrestricted) k-layer LSA can implement with W_KQ = [[I, 0], [0, 0]] and
    W_PV = [[-gamma I, 0], [0, -eta]]. etas, gammas: k numbers each (differentiable tensors allowed).
    """
    B, N, d = check_prompts(xs, ys, x_query)
    etas, gammas = _check_pairs(etas, gammas)
    etas, gammas = etas.to(xs.dtype), gammas.to(xs.dtype)
    X, r, xq = xs, ys, x_query
    pred = xs.new_zeros(B)
    for eta, gam in zip(etas, gammas):
        S = X.transpose(1, 2) @ X / N  # (B, d, d)
        h = (X.transpose(1, 2) @ r.unsqueeze(-1)).squeeze(-1) / N  # (B, d)
        pred = pred + eta * (xq * h).sum(-1)
        r = r - eta * (X @ h.unsqueeze(-1)).squeeze(-1)
        X, xq = X - gam * X @ S, xq - gam * (S @ xq.unsqueeze(-1)).squeeze(-1)  # both from the old S
    return pred


def fit_gd_plus_plus(prompts: Prompts, steps: int, *, max_iter: int = 300) -> tuple[torch.Tensor, torch.Tensor]:
    """(etas, gammas), each (steps,) float64, minimizing the query MSE of ``gd_plus_plus`` on ``prompts``.

    Started from the spread-out GD step sizes and gamma = 0 (plain GD), so the fit can only improve on GD.
    """
    xs, ys, xq, yq = _check_fit_args(prompts, steps)
    init = torch.cat([_initial_etas(xs, steps), torch.zeros(steps, dtype=torch.float64)])
    fitted = _fit(init, lambda p: mse(gd_plus_plus(xs, ys, xq, p[:steps], p[steps:]), yq), max_iter)
    return fitted[:steps], fitted[steps:]
