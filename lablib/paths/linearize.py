"""A network and its first-order Taylor expansion around the initialization (Lee et al., NeurIPS 2019).

    f_lin(x; theta) = f(x; theta_0) + J(x) (theta - theta_0),   J(x) = df(x; theta)/dtheta at theta_0,

a model *linear in its parameters* (not in x). ``J (theta - theta_0)`` is a Jacobian-vector product,
computed by forward-mode autodiff (``torch.func.jvp``) without ever forming J; the gradient of a
loss of f_lin is J^T r for the residual r, a vector-Jacobian product at theta_0 (``torch.func.vjp``),
the same function of r at every step. Lee et al.: in the NTK parameterization, gradient descent on
the network and on f_lin stay close, their gap shrinking like 1/sqrt(width).

The loss is Lee et al.'s mean squared error, L = (1 / 2N) sum_i ||f(x_i) - y_i||^2, minimized by
full-batch gradient descent with a constant learning rate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lablib.paths.mlp import MLP, Params, check_params, clone

__all__ = ["SideBySide", "linearize", "mse_grad", "ntk_max_eigenvalue", "targets", "train_side_by_side"]


def linearize(net: MLP, params0: Params):
    """``f_lin(params, x) -> (N, out)``: the first-order Taylor expansion of ``net`` around ``params0``."""
    check_params(net, params0, "params0")
    params0 = clone(params0)

    def f_lin(params: Params, x: torch.Tensor) -> torch.Tensor:
        check_params(net, params)
        delta = {k: params[k] - params0[k] for k in params0}
        out, tangent = torch.func.jvp(lambda p: net(p, x), (params0,), (delta,))
        return out + tangent

    f_lin.params0 = params0
    return f_lin


def targets(y: torch.Tensor, n_classes: int = 10) -> torch.Tensor:
    """Centred one-hot regression targets (N, n_classes): 0.9 for the label, -0.1 elsewhere (as Lee et al.)."""
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D (N,); got shape {tuple(y.shape)}")
    return torch.nn.functional.one_hot(y, n_classes).float() - 1.0 / n_classes


def mse_grad(out: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """dL/d out for L = (1 / 2N) ||out - Y||^2: (out - Y) / N, shape (N, out)."""
    if out.shape != Y.shape:
        raise ValueError(f"out and Y must have the same shape; got {tuple(out.shape)} and {tuple(Y.shape)}")
    return (out - Y) / out.shape[0]


@dataclass
class SideBySide:
    """The two runs' endpoints and histories. ``history``: one dict per recorded step."""

    params: Params
    params_lin: Params
    history: list[dict]


def _step(params: Params, grads, lr: float) -> Params:
    return {k: params[k] - lr * grads[k] for k in params}


def train_side_by_side(net: MLP, params0: Params, X: torch.Tensor, Y: torch.Tensor, lr: float, steps: int,
                       X_test: torch.Tensor, y_test: torch.Tensor, record: tuple[int, ...] = ()) -> SideBySide:
    """Full-batch gradient descent on MSE for the network and for f_lin from the same ``params0``, same lr.

    X (N, in), Y (N, out) targets, X_test (M, in), y_test (M,) labels. At steps 0, ``steps`` and every step in
    ``record``: the RMS difference of the two models' test outputs (``rms_gap``), their test errors, the
    share of test points whose predicted class differs, training losses, and ||theta - theta_0|| / ||theta_0||.
    """
    check_params(net, params0, "params0")
    if Y.shape != (X.shape[0], net.sizes[-1]):
        raise ValueError(f"Y must have shape ({X.shape[0]}, {net.sizes[-1]}); got {tuple(Y.shape)}")
    if not lr > 0 or steps < 0:
        raise ValueError(f"need lr > 0 and steps >= 0; got lr={lr}, steps={steps}")
    params0 = clone(params0)
    f_lin = linearize(net, params0)
    f0_train, vjp_train = torch.func.vjp(lambda p: net(p, X), params0)  # J^T r at theta_0, reused every step
    norm0 = torch.sqrt(sum((p.double() ** 2).sum() for p in params0.values())).item()
    params, params_lin = clone(params0), clone(params0)
    wanted = set(record) | {0, steps}
    history = []
    for step in range(steps + 1):
        if step in wanted:
            with torch.no_grad():
                out, out_lin = net(params, X_test), f_lin(params_lin, X_test)
                train_out, train_lin = net(params, X), f_lin(params_lin, X)
            history.append({
                "step": step,
                "rms_gap": torch.sqrt(((out - out_lin) ** 2).mean()).item(),
                "error": (out.argmax(1) != y_test).float().mean().item(),
                "error_lin": (out_lin.argmax(1) != y_test).float().mean().item(),
                "disagree": (out.argmax(1) != out_lin.argmax(1)).float().mean().item(),
                "train_loss": 0.5 * ((train_out - Y) ** 2).sum(1).mean().item(),
                "train_loss_lin": 0.5 * ((train_lin - Y) ** 2).sum(1).mean().item(),
                "weight_change": np.sqrt(sum(((params[k] - params0[k]).double() ** 2).sum().item() for k in params)) / norm0,
            })
        if step == steps:
            break
        # the network: ordinary backprop through f at the current parameters
        out, vjp_now = torch.func.vjp(lambda p: net(p, X), params)
        params = _step(params, vjp_now(mse_grad(out, Y))[0], lr)
        # the linear model: output by a jvp, gradient J(theta_0)^T r by the stored vjp
        with torch.no_grad():
            out_lin = f0_train + torch.func.jvp(lambda p: net(p, X), (params0,),
                                                ({k: params_lin[k] - params0[k] for k in params0},))[1]
        params_lin = _step(params_lin, vjp_train(mse_grad(out_lin, Y))[0], lr)
    return SideBySide(clone(params), clone(params_lin), history)


def ntk_max_eigenvalue(net: MLP, params0: Params, X: torch.Tensor, iters: int = 30, seed: int = 0) -> float:
    """The largest eigenvalue of the empirical NTK over N = len(X) points, divided by N, by power iteration.

    Theta = J J^T (N*out x N*out) is never formed: each iteration is one vjp and one jvp. For the loss
    (1/2N)||f - Y||^2, gradient descent on f_lin is stable exactly when lr < 2 / lambda_max.
    """
    check_params(net, params0, "params0")
    if iters < 1:
        raise ValueError(f"iters must be >= 1; got {iters}")
    f = lambda p: net(p, X)  # noqa: E731
    out, vjp = torch.func.vjp(f, params0)
    v = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed))
    v = v / v.norm()
    lam = 0.0
    for _ in range(iters):
        Jv = torch.func.jvp(f, (params0,), (vjp(v)[0],))[1] / X.shape[0]
        lam = float((Jv * v).sum())
        v = Jv / Jv.norm()
    return lam
