"""Probes over cached residual-stream activations: linear (multinomial logistic with L2, or
closed-form ridge on one-hot targets) and nonlinear (one-hidden-layer MLP), with held-out accuracy
and the two controls that make a probe result mean something:

* the **majority-class baseline** (per square, the most frequent class of the training split);
* the **random-init control**: the same probes on a GPT of the same config, freshly initialized
  (``random_init_model``). What a probe reads off an untrained network is what the *input* makes
  decodable (the last move played, the position's parity, which squares were played); what the
  trained model adds beyond that is what training built.

All probes are multi-output: ``x`` (P, d) activations, ``y`` (P, S) integer labels, one
``n_classes``-way classification per output (square). Inputs are standardized inside the fit and
the standardization is folded back, so a ``LinearProbe`` reads raw activations and its
``weight[s, c]`` is a direction in the residual stream itself (what ``intervene`` edits along).

``probe_table`` produces the per-layer table: encodings (black/white vs mine/theirs) x probe kind
(linear vs MLP) x model (trained vs random init), with test accuracy over all squares and over
occupied squares only (empty is easy: it is read off the move history).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lablib.memo import session_memo
from lablib.world.activations import ProbeData, probe_dataset
from lablib.world.model import GPT

__all__ = [
    "LinearProbe",
    "MLPProbe",
    "fit_logistic_probe",
    "fit_ridge_probe",
    "fit_mlp_probe",
    "fit_probe",
    "probe_accuracy",
    "majority_baseline",
    "random_init_model",
    "probe_table",
    "format_table",
    "PROBE_KINDS",
]

PROBE_KINDS = ("linear", "ridge", "mlp")
_EMPTY = 0  # class 0 is "empty" in both encodings (lablib.world.data.EMPTY)


# -- input checks ---------------------------------------------------------------------------------
def _check_xy(x: torch.Tensor, y: torch.Tensor, n_classes: int | None) -> tuple[torch.Tensor, torch.Tensor, int]:
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise ValueError("x and y must be torch tensors")
    if x.ndim != 2 or not x.is_floating_point():
        raise ValueError(f"x must be a float tensor (P, d); got shape {tuple(x.shape)} dtype {x.dtype}")
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2 or y.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        raise ValueError(f"y must be an integer tensor (P,) or (P, S); got shape {tuple(y.shape)} dtype {y.dtype}")
    if len(x) != len(y):
        raise ValueError(f"x and y must have the same number of rows; got {len(x)} and {len(y)}")
    if len(x) < 2:
        raise ValueError(f"need at least 2 examples; got {len(x)}")
    if not torch.isfinite(x).all():
        raise ValueError("x contains NaN or Inf")
    y = y.long()
    if (y < 0).any():
        raise ValueError("y must be non-negative class indices")
    k = int(y.max()) + 1
    if n_classes is None:
        n_classes = max(k, 2)
    if n_classes < 2:
        raise ValueError(f"n_classes must be >= 2; got {n_classes}")
    if k > n_classes:
        raise ValueError(f"y has class {k - 1} but n_classes={n_classes}")
    return x.float(), y, n_classes


def _standardize(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    mean = x.mean(0)
    std = x.std(0) + 1e-6
    return (x - mean) / std, mean, std


# -- probes ---------------------------------------------------------------------------------------
@dataclass
class LinearProbe:
    """``logits(x)[p, s, c] = x[p] . weight[s, c] + bias[s, c]``; reads raw activations."""

    weight: torch.Tensor  # (S, C, d)
    bias: torch.Tensor  # (S, C)
    kind: str = "linear"

    @property
    def n_outputs(self) -> int:
        return self.weight.shape[0]

    @property
    def n_classes(self) -> int:
        return self.weight.shape[1]

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.weight.shape[2]:
            raise ValueError(f"x must be (P, {self.weight.shape[2]}); got {tuple(x.shape)}")
        return torch.einsum("pd,scd->psc", x.float(), self.weight) + self.bias

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(x).argmax(-1)

    def direction(self, output: int, cls: int) -> torch.Tensor:
        """The residual-stream direction whose dot product is the (output, class) logit."""
        return self.weight[output, cls]


class MLPProbe(nn.Module):
    """One hidden layer (GELU), all outputs from a shared hidden layer; reads raw activations."""

    kind = "mlp"

    def __init__(self, d: int, n_outputs: int, n_classes: int, hidden: int = 256):
        super().__init__()
        self.n_outputs, self.n_classes = n_outputs, n_classes
        self.register_buffer("mean", torch.zeros(d))
        self.register_buffer("std", torch.ones(d))
        self.net = nn.Sequential(nn.Linear(d, hidden), nn.GELU(), nn.Linear(hidden, n_outputs * n_classes))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.mean.shape[0]:
            raise ValueError(f"x must be (P, {self.mean.shape[0]}); got {tuple(x.shape)}")
        return self.net((x.float() - self.mean) / self.std).view(len(x), self.n_outputs, self.n_classes)

    forward = logits

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(x).argmax(-1)


def fit_logistic_probe(x: torch.Tensor, y: torch.Tensor, n_classes: int | None = None, l2: float = 1e-3,
                       method: str = "lbfgs", steps: int = 100, lr: float = 0.05, seed: int = 0) -> LinearProbe:
    """Multinomial logistic regression per output, L2 penalty ``l2 / 2 * ||W||^2`` on the
    standardized-input weights (bias unpenalized), full batch; ``method`` "lbfgs" (``steps`` = max
    iterations, strong-Wolfe line search) or "adam" (``steps`` Adam steps at ``lr``)."""
    x, y, C = _check_xy(x, y, n_classes)
    if l2 < 0 or steps < 1:
        raise ValueError(f"need l2 >= 0 and steps >= 1; got l2={l2}, steps={steps}")
    if method not in ("lbfgs", "adam"):
        raise ValueError(f"method must be 'lbfgs' or 'adam'; got {method!r}")
    P, d = x.shape
    S = y.shape[1]
    xs, mean, std = _standardize(x)
    g = torch.Generator().manual_seed(seed)
    W = (torch.randn(S * C, d, generator=g) * 0.01).requires_grad_(True)
    b = torch.zeros(S * C, requires_grad=True)
    target = y.reshape(-1)

    def loss_fn():
        logits = (xs @ W.T + b).view(P * S, C)
        return F.cross_entropy(logits, target) + 0.5 * l2 * (W * W).sum() / S

    if method == "lbfgs":
        opt = torch.optim.LBFGS([W, b], lr=1.0, max_iter=steps, history_size=20, line_search_fn="strong_wolfe",
                                tolerance_grad=1e-6, tolerance_change=1e-9)

        def closure():
            opt.zero_grad()
            loss = loss_fn()
            loss.backward()
            return loss

        opt.step(closure)
    else:
        opt = torch.optim.Adam([W, b], lr=lr)
        for _ in range(steps):
            opt.zero_grad()
            loss_fn().backward()
            opt.step()
    with torch.no_grad():
        Wr = W / std  # fold the standardization: logits = ((x - mean) / std) W^T + b
        br = b - Wr @ mean
    return LinearProbe(Wr.view(S, C, d).detach(), br.view(S, C).detach(), kind="linear")


def fit_ridge_probe(x: torch.Tensor, y: torch.Tensor, n_classes: int | None = None, lam: float = 1e-2) -> LinearProbe:
    """Closed-form ridge regression of the one-hot targets on standardized ``x`` (one solve for all
    outputs); predicts the argmax score. ``lam`` is relative: the penalty is ``lam * P``."""
    x, y, C = _check_xy(x, y, n_classes)
    if lam < 0:
        raise ValueError(f"lam must be >= 0; got {lam}")
    P, d = x.shape
    S = y.shape[1]
    xs, mean, std = _standardize(x)
    xs = xs.double()
    Y = F.one_hot(y, C).reshape(P, S * C).double()
    ymean = Y.mean(0)
    A = xs.T @ xs + lam * P * torch.eye(d, dtype=torch.float64)
    W = torch.linalg.solve(A, xs.T @ (Y - ymean)).T.float()  # (S*C, d), standardized inputs
    Wr = W / std
    br = ymean.float() - Wr @ mean
    return LinearProbe(Wr.view(S, C, d), br.view(S, C), kind="ridge")


@session_memo
def fit_mlp_probe(x: torch.Tensor, y: torch.Tensor, n_classes: int | None = None, hidden: int = 256,
                  epochs: int = 30, batch_size: int = 1024, lr: float = 2e-3, weight_decay: float = 1e-4,
                  seed: int = 0) -> MLPProbe:
    """A one-hidden-layer MLP probe trained by minibatch AdamW (cosine learning rate)."""
    x, y, C = _check_xy(x, y, n_classes)
    if hidden < 1 or epochs < 1 or batch_size < 1:
        raise ValueError(f"need hidden, epochs, batch_size >= 1; got {hidden}, {epochs}, {batch_size}")
    P, d = x.shape
    S = y.shape[1]
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        probe = MLPProbe(d, S, C, hidden)
    _, mean, std = _standardize(x)
    probe.mean.copy_(mean)
    probe.std.copy_(std)
    opt = torch.optim.AdamW(probe.net.parameters(), lr=lr, weight_decay=weight_decay)
    n_batches = math.ceil(P / batch_size)
    total = epochs * n_batches
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.5 * (1 + math.cos(math.pi * min(i, total) / total)))
    probe.train()
    for _ in range(epochs):
        perm = torch.randperm(P, generator=g)
        for i in range(n_batches):
            idx = perm[i * batch_size : (i + 1) * batch_size]
            loss = F.cross_entropy(probe.logits(x[idx]).reshape(-1, C), y[idx].reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    probe.eval()
    for p in probe.parameters():
        p.requires_grad_(False)
    return probe


def fit_probe(kind: str, x: torch.Tensor, y: torch.Tensor, n_classes: int | None = None, **kwargs):
    """``kind`` in ``PROBE_KINDS``: "linear" (logistic), "ridge" (closed form) or "mlp"."""
    if kind == "linear":
        return fit_logistic_probe(x, y, n_classes, **kwargs)
    if kind == "ridge":
        return fit_ridge_probe(x, y, n_classes, **kwargs)
    if kind == "mlp":
        return fit_mlp_probe(x, y, n_classes, **kwargs)
    raise ValueError(f"kind must be one of {PROBE_KINDS}; got {kind!r}")


# -- scoring --------------------------------------------------------------------------------------
@torch.no_grad()
def probe_accuracy(probe, x: torch.Tensor, y: torch.Tensor, nonempty_only: bool = False) -> float:
    """Fraction of (example, output) labels predicted right; ``nonempty_only`` scores only labels
    that are not class 0 (occupied squares, for the board encodings)."""
    if y.ndim == 1:
        y = y[:, None]
    if y.shape != (len(x), probe.n_outputs):
        raise ValueError(f"y must be ({len(x)}, {probe.n_outputs}); got {tuple(y.shape)}")
    ok = probe.predict(x) == y
    if nonempty_only:
        keep = y != _EMPTY
        if not keep.any():
            raise ValueError("nonempty_only: every label is class 0")
        return ok[keep].float().mean().item()
    return ok.float().mean().item()


def majority_baseline(y_train: torch.Tensor, y_test: torch.Tensor, n_classes: int | None = None,
                      nonempty_only: bool = False) -> float:
    """Accuracy on ``y_test`` of predicting, per output, the most frequent training class (among
    nonzero classes when ``nonempty_only``: the best a probe blind to the input can do there)."""
    if y_train.ndim == 1:
        y_train, y_test = y_train[:, None], y_test[:, None]
    if y_train.ndim != 2 or y_test.ndim != 2 or y_train.shape[1] != y_test.shape[1]:
        raise ValueError(f"y_train and y_test must be (N, S) with the same S; got {tuple(y_train.shape)}, {tuple(y_test.shape)}")
    C = n_classes or int(max(y_train.max(), y_test.max())) + 1
    counts = F.one_hot(y_train.long(), C).sum(0).float()  # (S, C)
    if nonempty_only:
        counts[:, _EMPTY] = -1
    pred = counts.argmax(-1)  # (S,)
    ok = y_test == pred[None]
    if nonempty_only:
        keep = y_test != _EMPTY
        return ok[keep].float().mean().item()
    return ok.float().mean().item()


# -- the table ------------------------------------------------------------------------------------
def random_init_model(model_or_cfg, seed: int = 0) -> GPT:
    """A GPT with the same config, freshly initialized from ``seed`` (global RNG untouched), in eval mode."""
    cfg = model_or_cfg.cfg if isinstance(model_or_cfg, GPT) else model_or_cfg
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        m = GPT(cfg)
    return m.eval()


def probe_table(model: GPT, games: list[list[int]] | None = None, data: ProbeData | None = None,
                layers=None, encodings=("bw", "mt"), kinds=("linear", "mlp"), control: bool = True,
                control_seed: int = 0, frac_train: float = 0.8, probe_kwargs: dict | None = None,
                progress=None) -> list[dict]:
    """Per-layer held-out probe accuracies, as rows of dicts.

    Each row: ``model`` ("trained" or "random_init"), ``layer`` (0 = embeddings, l = after block l),
    ``encoding`` ("bw" / "mt"), ``probe`` (a kind from ``PROBE_KINDS``), ``train_acc``, ``test_acc``,
    ``test_acc_nonempty`` and the majority-class baselines ``majority_acc`` /
    ``majority_acc_nonempty``. Give ``games`` (activations are cached here) or a ready ``data``
    (then ``control`` needs ``games`` too). The split is by game (``ProbeData.split``).
    ``probe_kwargs``: {kind: kwargs for ``fit_probe``}.
    """
    if games is None and data is None:
        raise ValueError("give games or data")
    if control and games is None:
        raise ValueError("the random-init control needs games (its activations are computed here)")
    bad = [k for k in kinds if k not in PROBE_KINDS]
    if bad or not kinds:
        raise ValueError(f"kinds must be a non-empty subset of {PROBE_KINDS}; got {kinds}")
    bad = [e for e in encodings if e not in ("bw", "mt")]
    if bad or not encodings:
        raise ValueError(f"encodings must be a non-empty subset of ('bw', 'mt'); got {encodings}")
    if not 0 < frac_train < 1:
        raise ValueError(f"frac_train must be in (0, 1); got {frac_train}")
    n_layers = model.cfg.n_layer + 1
    layers = list(range(n_layers)) if layers is None else list(layers)
    if not layers or any(not 0 <= l < n_layers for l in layers):
        raise ValueError(f"layers must lie in 0..{n_layers - 1}; got {layers}")
    probe_kwargs = probe_kwargs or {}
    models = [("trained", model)] + ([("random_init", random_init_model(model, control_seed))] if control else [])
    rows = []
    for name, m in models:
        d = data if (name == "trained" and data is not None) else probe_dataset(m, games)
        train, test = d.split(frac_train)
        for enc in encodings:
            ytr, yte = train.labels(enc), test.labels(enc)
            maj = majority_baseline(ytr, yte, 3)
            maj_ne = majority_baseline(ytr, yte, 3, nonempty_only=True)
            for layer in layers:
                for kind in kinds:
                    probe = fit_probe(kind, train.acts[layer], ytr, 3, **probe_kwargs.get(kind, {}))
                    row = dict(model=name, layer=layer, encoding=enc, probe=kind,
                               train_acc=probe_accuracy(probe, train.acts[layer], ytr),
                               test_acc=probe_accuracy(probe, test.acts[layer], yte),
                               test_acc_nonempty=probe_accuracy(probe, test.acts[layer], yte, nonempty_only=True),
                               majority_acc=maj, majority_acc_nonempty=maj_ne)
                    rows.append(row)
                    if progress:
                        progress(row)
    return rows


def format_table(rows: list[dict], value: str = "test_acc_nonempty") -> str:
    """A plain-text pivot: one line per (model, encoding, probe), one column per layer."""
    layers = sorted({r["layer"] for r in rows})
    keys = []
    for r in rows:
        k = (r["model"], r["encoding"], r["probe"])
        if k not in keys:
            keys.append(k)
    lines = [f"{value}: model / encoding / probe | " + " ".join(f"L{l:<5d}" for l in layers) + " | majority"]
    for k in keys:
        vals = {r["layer"]: r[value] for r in rows if (r["model"], r["encoding"], r["probe"]) == k}
        maj_key = "majority_acc_nonempty" if value.endswith("nonempty") else "majority_acc"
        maj = next(r[maj_key] for r in rows if (r["model"], r["encoding"], r["probe"]) == k)
        cells = " ".join(f"{vals[l]:.3f} " if l in vals else "  -    " for l in layers)
        lines.append(f"{k[0]:>11s} / {k[1]} / {k[2]:6s} | {cells} | {maj:.3f}")
    return "\n".join(lines)
