"""Minibatch training of an :class:`~lablib.paths.mlp.MLP` whose whole state can be copied (for the spawn test).

A :class:`TrainState` holds the parameters, the optimizer's buffers and the step count, so that
"train k steps, copy, continue twice with different data orders" (Frankle et al. 2020) is a copy of
one object. Data order: epoch e is one permutation of the training set, a function of (``order_seed``, e)
only, so a run stopped at step k and resumed with the same ``order_seed`` is the run never stopped;
resumed with another ``order_seed`` it sees the same images in another order (SGD noise), the only
difference between the two children of a spawn.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from lablib.paths.mlp import MLP, Params, check_params, clone

__all__ = ["TrainConfig", "TrainState", "epoch_order", "start", "train_steps", "train"]


@dataclass(frozen=True)
class TrainConfig:
    """``optimizer``: "sgd" (heavy-ball momentum) or "adam"; constant learning rate; ``epochs`` of ``batch_size``."""

    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    batch_size: int = 32
    epochs: int = 20
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8

    def __post_init__(self):
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer must be 'sgd' or 'adam'; got {self.optimizer!r}")
        if not self.lr > 0 or self.batch_size < 1 or self.epochs < 0:
            raise ValueError(f"need lr > 0, batch_size >= 1, epochs >= 0; got {self.lr}, {self.batch_size}, {self.epochs}")

    def steps_per_epoch(self, n_train: int) -> int:
        return n_train // self.batch_size  # the last incomplete batch of an epoch is dropped

    def total_steps(self, n_train: int) -> int:
        return self.epochs * self.steps_per_epoch(n_train)


@dataclass
class TrainState:
    """Parameters, optimizer buffers (``m``: momentum or Adam's first moment, ``v``: Adam's second), step."""

    params: Params
    m: Params = field(default_factory=dict)
    v: Params = field(default_factory=dict)
    step: int = 0

    def copy(self) -> "TrainState":
        return copy.deepcopy(self)


def start(net: MLP, params: Params) -> TrainState:
    """A state at step 0 with zero optimizer buffers."""
    check_params(net, params)
    return TrainState(clone(params), {k: torch.zeros_like(p) for k, p in params.items()},
                      {k: torch.zeros_like(p) for k, p in params.items()}, 0)


def epoch_order(n: int, order_seed: int, epoch: int) -> torch.Tensor:
    """The permutation of range(n) that epoch ``epoch`` of data order ``order_seed`` uses."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(int(order_seed) * 100_003 + int(epoch)))


def _batches(n: int, batch_size: int, order_seed: int, first_step: int, n_steps: int):
    """Batch indices for global steps first_step .. first_step + n_steps - 1 (resumable: a function of the step)."""
    per_epoch = n // batch_size
    perm, epoch = None, None
    for step in range(first_step, first_step + n_steps):
        if step // per_epoch != epoch:
            epoch = step // per_epoch
            perm = epoch_order(n, order_seed, epoch)
        i = step % per_epoch
        yield perm[i * batch_size:(i + 1) * batch_size]


def train_steps(net: MLP, state: TrainState, X: torch.Tensor, y: torch.Tensor, config: TrainConfig,
                n_steps: int, order_seed: int) -> TrainState:
    """``n_steps`` optimizer steps on cross-entropy from ``state`` (a new state; the input is not changed).

    X (N, in_dim) float, y (N,) int64; the batch of global step s is slice s mod (N // batch_size) of
    epoch s // (N // batch_size)'s permutation (:func:`epoch_order`).
    """
    if X.ndim != 2 or X.shape[1] != net.sizes[0] or y.shape != (X.shape[0],):
        raise ValueError(f"need X (N, {net.sizes[0]}) and y (N,); got {tuple(X.shape)} and {tuple(y.shape)}")
    if n_steps < 0:
        raise ValueError(f"n_steps must be >= 0; got {n_steps}")
    if X.shape[0] < config.batch_size:
        raise ValueError(f"batch_size {config.batch_size} exceeds the {X.shape[0]} training examples")
    state = state.copy()
    keys = list(state.params)
    params = [state.params[k].detach() for k in keys]
    m, v = [state.m[k] for k in keys], [state.v[k] for k in keys]
    b1, b2 = config.betas
    for idx in _batches(X.shape[0], config.batch_size, order_seed, state.step, n_steps):
        leaves = [p.requires_grad_(True) for p in params]
        loss = F.cross_entropy(net(dict(zip(keys, leaves)), X[idx]), y[idx])
        grads = torch.autograd.grad(loss, leaves)
        params = [p.detach() for p in leaves]
        state.step += 1
        with torch.no_grad():  # the same updates as torch.optim.SGD(momentum) / Adam, on lists of tensors
            if config.optimizer == "sgd":
                torch._foreach_mul_(m, config.momentum)
                torch._foreach_add_(m, grads)
                torch._foreach_add_(params, m, alpha=-config.lr)
            else:
                torch._foreach_mul_(m, b1)
                torch._foreach_add_(m, grads, alpha=1 - b1)
                torch._foreach_mul_(v, b2)
                torch._foreach_addcmul_(v, grads, grads, value=1 - b2)
                denom = torch._foreach_sqrt(v)
                torch._foreach_div_(denom, (1 - b2**state.step) ** 0.5)
                torch._foreach_add_(denom, config.eps)
                torch._foreach_addcdiv_(params, m, denom, value=-config.lr / (1 - b1**state.step))
    state.params, state.m, state.v = dict(zip(keys, params)), dict(zip(keys, m)), dict(zip(keys, v))
    state.params = clone(state.params)
    return state


def train(net: MLP, init_seed: int, order_seed: int, X: torch.Tensor, y: torch.Tensor, config: TrainConfig) -> Params:
    """Parameters after ``config.epochs`` epochs from ``net.init(init_seed)``, data order ``order_seed``."""
    state = start(net, net.init(init_seed))
    return train_steps(net, state, X, y, config, config.total_steps(X.shape[0]), order_seed).params
