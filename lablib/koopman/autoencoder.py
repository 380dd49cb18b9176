"""Learned observables: the Koopman autoencoder (Lusch, Kutz & Brunton 2018; Takeishi et al. 2017).

EDMD needs the observables chosen in advance. A Koopman autoencoder learns them: an encoder
MLP maps the state to a latent z = enc(x) (dim p), a *linear* K (p x p) advances the latent, and
a decoder maps back, x ~ dec(z). Trained on windows x_0..x_H of trajectories with three losses
(all mean squared errors, in normalized state units):

    reconstruction   || x_k - dec(enc(x_k)) ||^2                       (an autoencoder)
    linear latent    || enc(x_k) - K^k enc(x_0) ||^2,   k = 1..H       (the latent is linear)
    prediction       || x_k - dec(K^k enc(x_0)) ||^2,   k = 1..H       (what we actually want)

Forecasting iterates K in latent space: x_k = dec(K^k enc(x_0)); only the encoder and decoder
are nonlinear. ``MLPStepModel`` is the baseline: a residual MLP x' = x + f(x) trained on the
same windows with the same multi-step prediction loss, iterated for forecasts.

``save_checkpoint`` / ``load_checkpoint`` store a model's config, weights and metadata in one
small file, so a chapter can ship a trained model and rebuild it without retraining.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import torch
from torch import nn

from lablib.koopman._validate import check_positive_int

__all__ = [
    "KoopmanAutoencoder",
    "MLPStepModel",
    "train_koopman_autoencoder",
    "train_step_model",
    "save_checkpoint",
    "load_checkpoint",
    "mlp",
]


def mlp(sizes, activation=nn.Tanh) -> nn.Sequential:
    """Linear layers of the given sizes with ``activation`` between them (none after the last).

    Tanh by default: smooth observables, and smooth maps iterate more gracefully than ReLU kinks.
    """
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


class _DynamicsModel(nn.Module):
    """Shared plumbing: state normalization buffers, input conversion, config for checkpoints."""

    def __init__(self, n_state: int):
        super().__init__()
        self.n_state = check_positive_int(n_state, "n_state")
        # Per-coordinate shift and scale: the networks see (x - shift) / scale, so that every
        # coordinate (say an angle and a velocity) counts equally in the losses.
        self.register_buffer("shift", torch.zeros(n_state))
        self.register_buffer("scale", torch.ones(n_state))

    @property
    def dtype(self) -> torch.dtype:
        return self.shift.dtype

    def set_normalization(self, trajectories: torch.Tensor) -> None:
        """Set shift / scale to the per-coordinate mean / std of ``trajectories`` (..., n_state)."""
        flat = trajectories.reshape(-1, self.n_state)
        self.shift.copy_(flat.mean(0))
        self.scale.copy_(flat.std(0).clamp_min(1e-8))

    def normalize(self, x):
        return (x - self.shift) / self.scale

    def denormalize(self, xn):
        return xn * self.scale + self.shift

    def _as_states(self, x, name="x0"):
        """Array-like or tensor (..., n_state) -> (tensor in the model dtype, was_numpy)."""
        was_numpy = not isinstance(x, torch.Tensor)
        t = torch.as_tensor(np.asarray(x) if was_numpy else x).to(self.dtype)
        if t.ndim < 1 or t.shape[-1] != self.n_state:
            raise ValueError(f"{name} must have last dim n_state = {self.n_state}; got shape {tuple(t.shape)}")
        if not torch.isfinite(t).all():
            raise ValueError(f"{name} contains NaN or Inf values (shape {tuple(t.shape)})")
        return t, was_numpy

    @torch.no_grad()
    def predict(self, x0, steps: int):
        """Forecast x_0..x_steps from x0 (..., n_state) -> (..., steps + 1, n_state).

        Returns a float64 NumPy array if x0 was array-like, a tensor (model dtype) if it was a tensor.
        """
        steps = check_positive_int(steps, "steps", minimum=0)
        x, was_numpy = self._as_states(x0)
        out = self._rollout(self.normalize(x), steps)
        out = self.denormalize(out)
        return out.double().numpy() if was_numpy else out


class KoopmanAutoencoder(_DynamicsModel):
    """enc: R^n -> R^p (MLP), K: R^p -> R^p (linear, no bias), dec: R^p -> R^n (MLP).

    Parameters: ``n_state``, ``latent_dim`` p, ``hidden`` widths of the encoder's hidden layers
    (the decoder mirrors them), ``seed`` for the initialization, ``dtype``.
    K starts at the identity: for a small sampling step the latent barely moves in one step.
    """

    def __init__(self, n_state: int, latent_dim: int, hidden=(64, 64), *, seed: int = 0, dtype=torch.float32):
        super().__init__(n_state)
        self.latent_dim = check_positive_int(latent_dim, "latent_dim")
        hidden = tuple(check_positive_int(h, "hidden width") for h in hidden)
        self.config = {"n_state": self.n_state, "latent_dim": self.latent_dim, "hidden": list(hidden)}
        g = torch.random.fork_rng(devices=[])  # seed the init without touching the global generator
        with g:
            torch.manual_seed(seed)
            self.encoder = mlp([n_state, *hidden, latent_dim])
            self.decoder = mlp([latent_dim, *reversed(hidden), n_state])
            self.K = nn.Linear(latent_dim, latent_dim, bias=False)
            with torch.no_grad():
                self.K.weight.copy_(torch.eye(latent_dim))
        self.to(dtype)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """z = enc((x - shift) / scale): (..., n_state) -> (..., p)."""
        return self.encoder(self.normalize(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """x = dec(z) * scale + shift: (..., p) -> (..., n_state)."""
        return self.denormalize(self.decoder(z))

    def advance(self, z: torch.Tensor, steps: int) -> torch.Tensor:
        """z, Kz, K^2 z, ..., K^steps z: (..., p) -> (..., steps + 1, p)."""
        zs = [z]
        for _ in range(steps):
            zs.append(self.K(zs[-1]))  # nn.Linear computes z @ K^T, i.e. K z for column vectors
        return torch.stack(zs, dim=-2)

    @property
    def koopman_matrix(self) -> torch.Tensor:
        """K (p, p) acting on column vectors: z_{k+1} = K z_k."""
        return self.K.weight.detach()

    def eigenvalues(self) -> np.ndarray:
        """eig(K) (p,) complex, sorted by decreasing modulus: the learned Koopman eigenvalues."""
        lam = np.linalg.eigvals(self.koopman_matrix.double().numpy())
        return lam[np.argsort(-np.abs(lam), kind="stable")]

    def _rollout(self, xn, steps):
        return self.decoder(self.advance(self.encoder(xn), steps))

    def loss(self, windows_n: torch.Tensor, weights: dict[str, float]) -> tuple[torch.Tensor, dict[str, float]]:
        """The three losses on normalized windows (batch, H + 1, n_state); returns (total, parts)."""
        H = windows_n.shape[1] - 1
        z = self.encoder(windows_n)  # (batch, H+1, p): enc(x_k) for every k
        recon = (self.decoder(z) - windows_n).pow(2).mean()
        z_roll = self.advance(z[:, 0], H)[:, 1:]  # K^k enc(x_0), k = 1..H
        latent = (z_roll - z[:, 1:]).pow(2).mean()
        pred = (self.decoder(z_roll) - windows_n[:, 1:]).pow(2).mean()
        total = weights["reconstruction"] * recon + weights["latent"] * latent + weights["prediction"] * pred
        return total, {"reconstruction": recon.item(), "latent": latent.item(), "prediction": pred.item()}


class MLPStepModel(_DynamicsModel):
    """Baseline: a residual MLP one-step map x' = x + f(x) (in normalized units), iterated to forecast."""

    def __init__(self, n_state: int, hidden=(64, 64), *, seed: int = 0, dtype=torch.float32):
        super().__init__(n_state)
        hidden = tuple(check_positive_int(h, "hidden width") for h in hidden)
        self.config = {"n_state": self.n_state, "hidden": list(hidden)}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.net = mlp([n_state, *hidden, n_state])
        self.to(dtype)

    def step(self, x: torch.Tensor) -> torch.Tensor:
        """One step on raw states (..., n_state)."""
        xn = self.normalize(x)
        return self.denormalize(xn + self.net(xn))

    def _rollout(self, xn, steps):
        xs = [xn]
        for _ in range(steps):
            xs.append(xs[-1] + self.net(xs[-1]))
        return torch.stack(xs, dim=-2)

    def loss(self, windows_n, weights):
        H = windows_n.shape[1] - 1
        pred = (self._rollout(windows_n[:, 0], H)[:, 1:] - windows_n[:, 1:]).pow(2).mean()
        return weights["prediction"] * pred, {"prediction": pred.item()}


# ----------------------------------------------------------------------------- training


def _windows(traj: torch.Tensor, horizon: int) -> torch.Tensor:
    """All windows of horizon + 1 consecutive states: (n_traj, T+1, n) -> (n_windows, horizon + 1, n)."""
    w = traj.unfold(1, horizon + 1, 1)  # (n_traj, T+1-horizon, n, horizon+1)
    return w.permute(0, 1, 3, 2).reshape(-1, horizon + 1, traj.shape[2])


def _train(model, trajectories, steps, horizon, *, lr, batch, seed, weights, weight_decay, clip,
           final_lr_fraction, normalize, progress, desc):
    from tqdm.auto import tqdm

    if not isinstance(model, _DynamicsModel):
        raise ValueError(f"model must be a KoopmanAutoencoder or MLPStepModel; got {type(model).__name__}")
    steps = check_positive_int(steps, "steps")
    horizon = check_positive_int(horizon, "horizon")
    batch = check_positive_int(batch, "batch")
    for value, name in ((lr, "lr"), (final_lr_fraction, "final_lr_fraction")):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a finite positive number; got {value!r}")
    traj = torch.as_tensor(np.asarray(trajectories) if not isinstance(trajectories, torch.Tensor) else trajectories)
    if traj.ndim != 3 or traj.shape[2] != model.n_state:
        raise ValueError(f"trajectories must have shape (n_traj, T+1, n_state={model.n_state}); got {tuple(traj.shape)}")
    if traj.shape[1] < horizon + 1:
        raise ValueError(f"trajectories of {traj.shape[1]} time points are too short for horizon {horizon} (need >= {horizon + 1})")
    if not torch.isfinite(traj).all():
        raise ValueError(f"trajectories contain NaN or Inf values (shape {tuple(traj.shape)})")
    traj = traj.to(model.dtype)
    if normalize:
        model.set_normalization(traj)
    windows = model.normalize(_windows(traj, horizon))

    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps, eta_min=lr * final_lr_fraction)
    rows = []
    model.train()
    bar = tqdm(range(steps), desc=desc, unit="step", disable=not progress, mininterval=0.5)
    for step in bar:
        idx = torch.randint(0, windows.shape[0], (min(batch, windows.shape[0]),), generator=g)
        loss, parts = model.loss(windows[idx], weights)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training diverged at step {step} (loss {loss.item()}); lower lr or horizon")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        sched.step()
        rows.append({"step": step, "total": loss.item(), **parts})
        if step % 50 == 0 or step == steps - 1:
            bar.set_postfix(loss=f"{loss.item():.2e}")
    model.eval()
    return pd.DataFrame(rows)


_DEFAULT_WEIGHTS = {"reconstruction": 1.0, "latent": 1.0, "prediction": 1.0}


def train_koopman_autoencoder(
    model: KoopmanAutoencoder,
    trajectories,
    steps: int,
    horizon: int = 10,
    *,
    lr: float = 3e-3,
    batch: int = 256,
    seed: int = 0,
    weights: dict[str, float] | None = None,
    weight_decay: float = 0.0,
    clip: float | None = 1.0,
    final_lr_fraction: float = 0.01,
    normalize: bool = True,
    progress: bool = True,
) -> pd.DataFrame:
    """Train with Adam (cosine-decayed lr) on random windows of ``trajectories`` (n_traj, T+1, n_state).

    Each step draws ``batch`` windows of ``horizon + 1`` consecutive states (seeded by ``seed``)
    and minimizes  w_r * reconstruction + w_l * latent + w_p * prediction  (``weights``, default
    all 1). ``normalize`` first sets the model's shift/scale from the data. Returns the loss
    history as a DataFrame with columns step, total, reconstruction, latent, prediction.
    """
    if not isinstance(model, KoopmanAutoencoder):
        raise ValueError(f"model must be a KoopmanAutoencoder; got {type(model).__name__}")
    w = dict(_DEFAULT_WEIGHTS)
    if weights is not None:
        unknown = set(weights) - set(w)
        if unknown:
            raise ValueError(f"unknown loss weights {sorted(unknown)}; expected keys {sorted(w)}")
        w.update(weights)
    return _train(model, trajectories, steps, horizon, lr=lr, batch=batch, seed=seed, weights=w,
                  weight_decay=weight_decay, clip=clip, final_lr_fraction=final_lr_fraction,
                  normalize=normalize, progress=progress, desc="koopman AE")


def train_step_model(
    model: MLPStepModel,
    trajectories,
    steps: int,
    horizon: int = 10,
    *,
    lr: float = 3e-3,
    batch: int = 256,
    seed: int = 0,
    weight_decay: float = 0.0,
    clip: float | None = 1.0,
    final_lr_fraction: float = 0.01,
    normalize: bool = True,
    progress: bool = True,
) -> pd.DataFrame:
    """Train an ``MLPStepModel`` exactly like ``train_koopman_autoencoder`` (same windows, optimizer and
    schedule), on the multi-step prediction loss over ``horizon`` steps. Returns columns step, total, prediction.
    """
    if not isinstance(model, MLPStepModel):
        raise ValueError(f"model must be an MLPStepModel; got {type(model).__name__}")
    return _train(model, trajectories, steps, horizon, lr=lr, batch=batch, seed=seed, weights={"prediction": 1.0},
                  weight_decay=weight_decay, clip=clip, final_lr_fraction=final_lr_fraction,
                  normalize=normalize, progress=progress, desc="MLP step")


# ----------------------------------------------------------------------------- checkpoints

_MODELS = {"KoopmanAutoencoder": KoopmanAutoencoder, "MLPStepModel": MLPStepModel}
_FORMAT = "lablib.koopman.checkpoint/1"


def save_checkpoint(model: nn.Module, path, meta: dict | None = None) -> None:
    """Save ``model`` (config + state dict, in its dtype) and JSON-able ``meta`` (e.g. the training command) to ``path``."""
    if type(model).__name__ not in _MODELS:
        raise ValueError(f"can only checkpoint {sorted(_MODELS)}; got {type(model).__name__}")
    meta = {} if meta is None else meta
    try:
        json.dumps(meta)  # meta travels through torch.load(weights_only=True): plain data only
    except TypeError as err:
        raise ValueError(f"meta must be JSON-serializable (numbers, strings, lists, dicts); {err}") from None
    torch.save(
        {"format": _FORMAT, "class": type(model).__name__, "config": model.config,
         "dtype": str(model.dtype).removeprefix("torch."), "state_dict": model.state_dict(), "meta": meta},
        path,
    )


def load_checkpoint(path) -> tuple[nn.Module, dict]:
    """Rebuild the model saved by ``save_checkpoint``: returns (model in eval mode, meta)."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)  # no pickled code is executed
    if not isinstance(ckpt, dict) or ckpt.get("format") != _FORMAT:
        raise ValueError(f"{path} is not a lablib.koopman checkpoint (format {_FORMAT})")
    cls = _MODELS[ckpt["class"]]
    model = cls(**ckpt["config"], dtype=getattr(torch, ckpt["dtype"]))
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    return model, ckpt["meta"]
