"""Training as in the authors' code (cure-lab/LTSF-Linear, ``exp/exp_main.py``), for any forecaster here.

Adam on the mean squared error of standardized values; shuffled batches (the last incomplete one
dropped, ``drop_last=True`` as there); after each epoch the validation MSE decides early stopping
(patience 3) and the best epoch's weights are kept; the learning rate halves after every epoch
(their ``lradj="type1"``: lr_e = lr * 0.5^(e - 1)); at most 10 epochs.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

__all__ = ["TrainConfig", "predict", "train_forecaster"]


@dataclass(frozen=True)
class TrainConfig:
    """The authors' defaults: 10 epochs, patience 3, batch 32, lr halved every epoch. Their lr varies by
    dataset (1e-4 default, 1e-3 to 5e-2 in their linear models' scripts)."""

    lr: float = 1e-3
    batch_size: int = 32
    epochs: int = 10
    patience: int = 3
    halve_lr_every_epoch: bool = True
    seed: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


@torch.no_grad()
def predict(model: nn.Module, X, batch_size: int = 512) -> np.ndarray:
    """Forecasts (N, H) float64 of windows X (N, L) in eval mode (dropout off)."""
    was = model.training
    model.eval()
    X = torch.as_tensor(np.asarray(X), dtype=torch.float32)
    out = torch.cat([model(X[i:i + batch_size]) for i in range(0, len(X), batch_size)]) if len(X) else X[:, :0]
    model.train(was)
    return out.double().numpy()


def train_forecaster(model: nn.Module, train, val, config: TrainConfig = TrainConfig()):
    """Train ``model`` on ``train`` windows, early-stopped on ``val``; returns (model at its best epoch, history).

    ``train``, ``val``: objects with ``X`` (N, L) and ``Y`` (N, H) arrays (:class:`~lablib.forecast.split.Windows`).
    ``history``: one dict per epoch (epoch, lr, train MSE, val MSE, seconds). Seeded by ``config.seed``
    (the caller seeds the model's initialization with ``torch.manual_seed`` before building it).
    """
    X, Y = (torch.as_tensor(np.asarray(a), dtype=torch.float32) for a in (train.X, train.Y))
    if X.ndim != 2 or Y.ndim != 2 or len(X) != len(Y):
        raise ValueError(f"train.X must be (N, L) and train.Y (N, H); got {tuple(X.shape)} and {tuple(Y.shape)}")
    if len(X) < config.batch_size:
        raise ValueError(f"fewer training windows ({len(X)}) than one batch ({config.batch_size})")
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    best, best_state, history, waited = np.inf, None, [], 0
    for epoch in range(1, config.epochs + 1):
        lr = config.lr * (0.5 ** (epoch - 1) if config.halve_lr_every_epoch else 1.0)
        for group in optimizer.param_groups:
            group["lr"] = lr
        start, model_losses = time.perf_counter(), []
        model.train()
        order = torch.randperm(len(X), generator=generator)
        for b in range(len(X) // config.batch_size):
            idx = order[b * config.batch_size:(b + 1) * config.batch_size]
            loss = nn.functional.mse_loss(model(X[idx]), Y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            model_losses.append(float(loss.detach()))
        val_mse = float(np.mean((predict(model, val.X) - np.asarray(val.Y)) ** 2))
        history.append({"epoch": epoch, "lr": lr, "train_mse": float(np.mean(model_losses)), "val_mse": val_mse,
                        "seconds": round(time.perf_counter() - start, 2)})
        if val_mse < best:
            best, best_state, waited = val_mse, {k: v.detach().clone() for k, v in model.state_dict().items()}, 0
        else:
            waited += 1
            if waited >= config.patience:
                break
    model.load_state_dict(best_state)
    model.eval()
    return model, history
