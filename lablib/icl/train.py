"""Training a prompt transformer on in-context regression, and reading off what it learned.

``train_lsa`` draws a fresh batch of prompts every step (each with its own w), so the model can
only lower the loss by learning an *algorithm* that fits w from the prompt. After training:

* ``evaluate`` gives the query MSE on held-out prompts;
* ``implied_weights`` gives the w_eff (B, d) the model uses on each prompt (yhat = w_eff^T x_q,
  exact for linear attention, a local linearization for softmax);
* ``compare_with_gd`` lines the model up against k steps of preconditioned GD: loss ratio,
  cosine similarity of predictions and of implied weights.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from lablib.icl.baselines import mse, predict, preconditioned_gd
from lablib.icl.lsa import PromptTransformer
from lablib.icl.tasks import Prompts, RegressionTask, check_prompts

__all__ = ["train_lsa", "evaluate", "implied_weights", "compare_with_gd"]


def _check_model(model) -> None:
    if not isinstance(model, PromptTransformer):
        raise ValueError(f"model must be a lablib.icl PromptTransformer (e.g. LinearTransformer); got {type(model).__name__}")


def _model_dtype(model) -> torch.dtype:
    return next(model.parameters()).dtype


def train_lsa(
    model: PromptTransformer,
    task: RegressionTask,
    steps: int,
    *,
    lr: float = 1e-2,
    batch: int = 256,
    seed: int = 0,
    clip: float | None = 1.0,
    final_lr_fraction: float = 0.01,
    progress: bool = True,
) -> torch.Tensor:
    """Train ``model`` with Adam on the query MSE of fresh prompts from ``task``; return the loss history (steps,).

    The learning rate decays from ``lr`` to ``lr * final_lr_fraction`` on a cosine: the excess loss
    over the optimum is quadratic in the weights' error, so the last, small steps are what take
    the model from "close" to "within a percent". Gradients are clipped to norm ``clip`` (None to
    skip) because deeper linear stacks are cubic-and-up in their weights and an early large step
    can blow up. Prompts come from a generator seeded with ``seed``; the model's initialization is
    its own (``LinearTransformer(seed=...)``). Training works in the model's dtype.
    """
    from tqdm.auto import tqdm

    _check_model(model)
    if not isinstance(task, RegressionTask):
        raise ValueError(f"task must be a RegressionTask; got {type(task).__name__}")
    if task.d != model.d:
        raise ValueError(f"task has d = {task.d} but the model was built for d = {model.d}")
    for value, name in ((steps, "steps"), (batch, "batch")):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer; got {value!r}")
    for value, name in ((lr, "lr"), (final_lr_fraction, "final_lr_fraction")):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a finite positive number; got {value!r}")
    if clip is not None and not (math.isfinite(clip) and clip > 0):
        raise ValueError(f"clip must be a finite positive number or None; got {clip!r}")

    dtype = _model_dtype(model)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps, eta_min=lr * final_lr_fraction)
    history = torch.empty(steps, dtype=torch.float64)
    model.train()
    bar = tqdm(range(steps), desc="train", unit="step", disable=not progress, mininterval=0.5)
    for step in bar:
        p = task.sample(batch, generator=g, dtype=dtype)
        loss = mse(model.predict(p.xs, p.ys, p.x_query), p.y_query)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training diverged at step {step} (loss {loss.item()}); lower lr or clip")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        sched.step()
        history[step] = loss.item()
        if step % 100 == 0 or step == steps - 1:
            bar.set_postfix(loss=f"{loss.item():.4f}")
    model.eval()
    return history


@torch.no_grad()
def evaluate(model: PromptTransformer, prompts: Prompts) -> float:
    """Query MSE of ``model`` on ``prompts`` (held-out Prompts, cast to the model's dtype)."""
    _check_model(model)
    dtype = _model_dtype(model)
    xs, ys, xq, yq = (t.to(dtype) for t in prompts[:4])
    return mse(model.predict(xs, ys, xq), yq).item()


def implied_weights(model: PromptTransformer, xs: torch.Tensor, ys: torch.Tensor, x_query: torch.Tensor | None = None) -> torch.Tensor:
    """The weights w_eff (B, d) the model applies to the query: d yhat / d x_q, one row per prompt.

    For linear self-attention (any depth) yhat is exactly linear in x_q (the query column never
    feeds keys or values), so yhat = w_eff^T x_q for every x_q and ``x_query`` is irrelevant
    (zeros by default). For softmax attention it is the gradient *at* x_query: a local linearization.
    xs (B, N, d), ys (B, N), x_query (B, d) or None.
    """
    _check_model(model)
    check_prompts(xs, ys, x_query)
    dtype = _model_dtype(model)
    xs, ys = xs.to(dtype), ys.to(dtype)
    xq = torch.zeros(xs.shape[0], xs.shape[2], dtype=dtype) if x_query is None else x_query.to(dtype)
    xq = xq.detach().clone().requires_grad_()
    with torch.enable_grad():
        pred = model.predict(xs, ys, xq)
        # prompts are independent, so the gradient of the sum holds each prompt's own gradient
        (w,) = torch.autograd.grad(pred.sum(), xq)
    return w.detach()


def compare_with_gd(model: PromptTransformer, prompts: Prompts, gammas) -> dict[str, float]:
    """Model vs preconditioned GD (``gammas`` as in ``baselines.preconditioned_gd``) on the same prompts.

    Returns floats: model_loss and gd_loss (query MSE), loss_ratio = model_loss / gd_loss,
    prediction_cosine (cosine between the two (B,) prediction vectors), weight_cosine (the mean
    over prompts of the cosine between implied_weights and GD's w) and weight_rel_error
    (||w_eff - w_gd|| / ||w_gd||, over the whole batch).
    """
    _check_model(model)
    if not isinstance(prompts, Prompts):
        raise ValueError(f"prompts must be a lablib.icl.Prompts; got {type(prompts).__name__}")
    xs, ys, xq, yq = (t.detach().double() for t in prompts[:4])
    w_gd = preconditioned_gd(xs, ys, gammas.double() if isinstance(gammas, torch.Tensor) else gammas)
    w_model = implied_weights(model, xs, ys, xq).double()  # at x_q: exact for LSA, local for softmax
    with torch.no_grad():
        pred_model = model.predict(*(t.to(_model_dtype(model)) for t in (xs, ys, xq))).double()
    pred_gd = predict(w_gd, xq)
    model_loss, gd_loss = mse(pred_model, yq).item(), mse(pred_gd, yq).item()
    return {
        "model_loss": model_loss,
        "gd_loss": gd_loss,
        "loss_ratio": model_loss / gd_loss,
        "prediction_cosine": F.cosine_similarity(pred_model, pred_gd, dim=0).item(),
        "weight_cosine": F.cosine_similarity(w_model, w_gd, dim=1).mean().item(),
        "weight_rel_error": ((w_model - w_gd).norm() / w_gd.norm()).item(),
    }
