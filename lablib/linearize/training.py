"""One small optimization loop shared by attention transfer and LoRA (Adam, a tqdm bar)."""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["fit"]


def fit(params, step_loss: Callable[[int], torch.Tensor], *, steps: int, lr: float, desc: str = "train",
        progress: bool = True, clip: float | None = 1.0, every: int = 10) -> list[float]:
    """Minimize ``step_loss(step)`` (a scalar tensor; draw its batch inside) over ``params`` with
    Adam(lr) for ``steps`` steps, gradient norm clipped to ``clip``. The parameters are switched to
    ``requires_grad=True`` and back to False after. Returns the loss of every ``every``-th step."""
    params = list(params)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int; got {steps!r}")
    if not params:
        raise ValueError("no parameters to train")
    from tqdm.auto import tqdm

    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=lr)
    curve = []
    bar = tqdm(range(steps), desc=desc, disable=not progress, mininterval=2.0)
    try:
        for step in bar:
            loss = step_loss(step)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if clip is not None:
                torch.nn.utils.clip_grad_norm_(params, clip)
            opt.step()
            if step % every == 0 or step == steps - 1:
                curve.append(loss.item())
                bar.set_postfix(loss=f"{curve[-1]:.4g}", refresh=False)
    finally:
        for p in params:
            p.requires_grad_(False)
            p.grad = None
    return curve
