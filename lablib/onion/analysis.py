"""Probes and interventions on the GRU state after the input phase.

Everything here looks at ``h`` ``(n, hidden)``, the state right after the last input token, for
sequences of one fixed length ``L`` (so that "position i" means the same slot in every row).

Three views of how the token at position ``i`` is stored in ``h``:

1. **Linear read-out** (:func:`linear_probe_accuracy`): a closed-form ridge regression from
   ``[h, 1]`` onto the one-hot token at position ``i``, one probe per position; held-out accuracy.
2. **Magnitudes** (:func:`position_contributions`): fit ``h ~ b + sum_i A_i[x_i]`` by least
   squares and measure how large each position's contribution ``A_i`` is. An "onion" stores the
   positions at different orders of magnitude.
3. **Interventions** (:func:`fit_intervention`, :func:`intervention_success`): edit ``h`` so that
   position ``i`` holds a new token and check whether the model's own greedy output changes to the
   edited sequence, exactly (that token replaced, every other token and the EOS unchanged).

   * ``"subspace"`` (the linear-representation hypothesis): each position owns a ``k``-dim
     subspace ``U_i`` (orthonormal columns) and each token a code ``c_{i,v}`` in it. The edit
     replaces what ``h`` has in that subspace: ``h' = h + U_i (c_{i,new} - U_i^T h)``. It does
     not need to know the old token; it only works if position ``i`` really has a subspace of its own.
   * ``"onion"``: one token embedding ``E`` shared by all positions and one positive scale
     ``gamma_i`` per position: ``h' = h + gamma_i (E[new] - E[old])``. The same directions at every
     position; only the magnitude tells positions apart.
   * ``"additive"`` (a reference with many more parameters): a free vector per (position, token):
     ``h' = h + A_i[new] - A_i[old]``. The onion edit is this with ``A_i = gamma_i E``.

   All three are trained the same way, by gradient descent through the frozen model's
   teacher-forced output phase on counterfactual targets.

:func:`analyse` runs everything for one model and returns one dict (the chapter's table).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lablib.onion.model import RepeatConfig, RepeatGRU
from lablib.onion.task import check_tokens, eos_id, fixed_length_batch, sos_id

__all__ = [
    "States",
    "collect_states",
    "linear_probe_accuracy",
    "position_contributions",
    "SubspaceIntervention",
    "AdditiveIntervention",
    "make_intervention",
    "fit_intervention",
    "intervention_success",
    "onion_scales",
    "random_init_like",
    "analyse",
    "save_interventions",
    "load_interventions",
    "ANALYSIS_LENGTH",
]

#: the sequence length the shipped interventions are fitted for (long enough to be interesting,
#: short enough that the shipped 64-unit GRU repeats it almost perfectly)
ANALYSIS_LENGTH = 7


@dataclass
class States:
    """``tokens`` ``(n, L)`` int64 and the matching states ``h`` ``(n, hidden)`` float32."""

    tokens: torch.Tensor
    h: torch.Tensor

    @property
    def length(self) -> int:
        return self.tokens.shape[1]


def _check_model(model) -> RepeatGRU:
    if not isinstance(model, RepeatGRU):
        raise TypeError(f"model must be a RepeatGRU; got {type(model).__name__}")
    return model


def _check_length(model: RepeatGRU, length) -> int:
    if length is None:
        return model.cfg.max_len
    if isinstance(length, bool) or not isinstance(length, int) or not 1 <= length <= model.cfg.max_len:
        raise ValueError(f"length must be an int in 1..{model.cfg.max_len}; got {length!r}")
    return length


@torch.no_grad()
def collect_states(model: RepeatGRU, n: int = 2000, length: int | None = None, *, split: str = "heldout", seed: int = 0) -> States:
    """Encode ``n`` random sequences of one ``length`` (default ``max_len``) from ``split``.

    Returns :class:`States` with ``tokens`` ``(n, length)`` and ``h`` ``(n, hidden)``.
    """
    model = _check_model(model)
    length = _check_length(model, length)
    tokens = fixed_length_batch(n, length, vocab=model.cfg.vocab, split=split, seed=seed)
    return States(tokens=tokens, h=model.encode(tokens).float())


def _check_states(s, name: str) -> States:
    if not isinstance(s, States):
        raise TypeError(f"{name} must be a States (from collect_states); got {type(s).__name__}")
    if s.h.ndim != 2 or s.tokens.ndim != 2 or s.h.shape[0] != s.tokens.shape[0]:
        raise ValueError(f"{name}: h must be (n, hidden) and tokens (n, L) with the same n; got {tuple(s.h.shape)} and {tuple(s.tokens.shape)}")
    return s


def _ridge(X: np.ndarray, Y: np.ndarray, ridge: float) -> np.ndarray:
    X1 = np.hstack([X, np.ones((len(X), 1))])
    reg = ridge * np.eye(X1.shape[1])
    reg[-1, -1] = 0.0  # do not shrink the bias
    return np.linalg.solve(X1.T @ X1 + reg, X1.T @ Y)


def linear_probe_accuracy(train: States, test: States, *, vocab: int | None = None, ridge: float = 1e-3) -> np.ndarray:
    """Held-out accuracy of one linear probe per position: ``(L,)`` floats in [0, 1].

    Probe ``i`` is a ridge regression (penalty ``ridge`` times the number of training rows) from
    ``[h, 1]`` onto the one-hot token at position ``i``, fitted on ``train``; its prediction on
    ``test`` is the argmax. Chance is ``1 / vocab``.
    """
    train, test = _check_states(train, "train"), _check_states(test, "test")
    if train.length != test.length or train.h.shape[1] != test.h.shape[1]:
        raise ValueError("train and test must have the same sequence length and hidden size")
    if not (isinstance(ridge, (int, float)) and ridge >= 0):
        raise ValueError(f"ridge must be a number >= 0; got {ridge!r}")
    V = vocab or int(max(train.tokens.max(), test.tokens.max())) + 1
    L = train.length
    X, Xt = train.h.double().numpy(), test.h.double().numpy()
    Y = F.one_hot(train.tokens, V).reshape(len(X), L * V).double().numpy()
    W = _ridge(X, Y, ridge * len(X))
    pred = (np.hstack([Xt, np.ones((len(Xt), 1))]) @ W).reshape(len(Xt), L, V).argmax(-1)
    return (pred == test.tokens.numpy()).mean(0)


def position_contributions(states: States, *, vocab: int | None = None, ridge: float = 1e-3) -> dict:
    """How large is each position's share of ``h``? Fit ``h ~ b + sum_i A_i[x_i]`` (least squares).

    Returns a dict:

    * ``"norms"`` ``(L,)``: for each position, the root-mean-square over tokens of
      ``||A_i[v] - mean_v A_i[v]||`` (how far ``h`` moves when the token there changes);
    * ``"relative"`` ``(L,)``: ``norms / norms.max()``;
    * ``"r2"``: fraction of the variance of ``h`` the additive fit explains (1 = ``h`` is exactly
      a sum of per-position vectors);
    * ``"A"`` ``(L, V, hidden)``: the centred per-position token vectors.
    """
    states = _check_states(states, "states")
    V = vocab or int(states.tokens.max()) + 1
    L, n = states.length, states.h.shape[0]
    X = F.one_hot(states.tokens, V).reshape(n, L * V).double().numpy()
    Hm = states.h.double().numpy()
    W = _ridge(X, Hm, ridge)
    A = W[:-1].reshape(L, V, -1)
    A = A - A.mean(1, keepdims=True)
    fit = X @ W[:-1] + W[-1]
    r2 = 1.0 - ((Hm - fit) ** 2).sum() / ((Hm - Hm.mean(0)) ** 2).sum()
    norms = np.sqrt((np.linalg.norm(A, axis=-1) ** 2).mean(1))
    return {"norms": norms, "relative": norms / norms.max(), "r2": float(r2), "A": A}


# --------------------------------------------------------------------------------------------
# interventions
# --------------------------------------------------------------------------------------------


class SubspaceIntervention(nn.Module):
    """Replace position ``i``'s subspace content: ``h' = h + U_i (c_{i,new} - U_i^T h)``.

    ``U_i`` ``(hidden, dim)`` has orthonormal columns (a QR of a free matrix); ``c_{i,v}``
    ``(dim,)`` is the learned code of token ``v`` at position ``i``. Initialised from the class
    means of ``h`` (:meth:`init_from_states`), i.e. from the best linear guess before any training.
    """

    def __init__(self, hidden: int, length: int, vocab: int, dim: int):
        super().__init__()
        if not 1 <= dim <= hidden:
            raise ValueError(f"dim must be in 1..{hidden}; got {dim}")
        self.dim = dim
        self.raw_basis = nn.Parameter(torch.randn(length, hidden, dim) / hidden**0.5)
        self.codes = nn.Parameter(torch.zeros(length, vocab, dim))

    def basis(self) -> torch.Tensor:
        """``(L, hidden, dim)`` orthonormal bases, one per position."""
        return torch.linalg.qr(self.raw_basis).Q

    @torch.no_grad()
    def init_from_states(self, states: States) -> "SubspaceIntervention":
        """Basis: top singular directions of the per-token class means at each position; codes:
        the class means expressed in that basis."""
        L, V = self.codes.shape[:2]
        mu_all = states.h.mean(0)
        for i in range(L):
            onehot = F.one_hot(states.tokens[:, i], V).float()
            counts = onehot.sum(0).clamp_min(1)
            mu = (onehot.T @ states.h) / counts[:, None]  # (V, hidden)
            _, _, Vh = torch.linalg.svd(mu - mu_all, full_matrices=False)
            U = Vh[: self.dim].T  # (hidden, dim)
            if U.shape[1] < self.dim:  # fewer tokens than dims: pad with random directions
                U = torch.cat([U, torch.randn(U.shape[0], self.dim - U.shape[1])], 1)
            self.raw_basis[i] = U
            Q = torch.linalg.qr(U).Q
            self.codes[i] = mu @ Q
        return self

    def forward(self, h, pos, old, new):
        """``h`` ``(B, hidden)``, ``pos``/``old``/``new`` ``(B,)`` int64 -> edited ``h'`` ``(B, hidden)``."""
        U = self.basis()[pos]  # (B, hidden, dim)
        coord = torch.einsum("bhd,bh->bd", U, h)
        return h + torch.einsum("bhd,bd->bh", U, self.codes[pos, new] - coord)


class AdditiveIntervention(nn.Module):
    """Add a token difference: ``h' = h + A_i[new] - A_i[old]``.

    ``shared=True`` is the **onion** edit, ``A_i = gamma_i E`` with one embedding ``E``
    ``(vocab, hidden)`` for all positions and a positive scale ``gamma_i = exp(log_scale_i)`` per
    position. ``shared=False`` gives every position its own free table ``A_i`` ``(vocab, hidden)``.
    """

    def __init__(self, hidden: int, length: int, vocab: int, shared: bool = True):
        super().__init__()
        self.shared = shared
        if shared:
            self.embed = nn.Parameter(torch.randn(vocab, hidden) * 0.1)
            self.log_scale = nn.Parameter(torch.zeros(length))
        else:
            self.table = nn.Parameter(torch.randn(length, vocab, hidden) * 0.1)

    def vectors(self) -> torch.Tensor:
        """``(L, vocab, hidden)``: the vector added for each (position, token)."""
        if self.shared:
            return self.log_scale.exp()[:, None, None] * self.embed[None]
        return self.table

    def forward(self, h, pos, old, new):
        """``h`` ``(B, hidden)``, ``pos``/``old``/``new`` ``(B,)`` int64 -> edited ``h'`` ``(B, hidden)``."""
        if self.shared:
            return h + self.log_scale.exp()[pos, None] * (self.embed[new] - self.embed[old])
        return h + self.table[pos, new] - self.table[pos, old]


KINDS = ("subspace", "onion", "additive")


def _interv_length(interv) -> int:
    """The sequence length an intervention was built for."""
    if isinstance(interv, SubspaceIntervention):
        return interv.codes.shape[0]
    if isinstance(interv, AdditiveIntervention):
        return (interv.log_scale if interv.shared else interv.table).shape[0]
    raise TypeError(f"interv must be a SubspaceIntervention or AdditiveIntervention; got {type(interv).__name__}")


def make_intervention(model: RepeatGRU, kind: str, length: int | None = None, dim: int | None = None) -> nn.Module:
    """An untrained intervention of ``kind`` (``"subspace"``, ``"onion"`` or ``"additive"``) sized
    for ``model`` and sequences of ``length``; ``dim`` (subspace only) defaults to ``hidden // length``."""
    model = _check_model(model)
    length = _check_length(model, length)
    H, V = model.cfg.hidden, model.cfg.vocab
    if kind == "subspace":
        return SubspaceIntervention(H, length, V, dim or max(1, H // length))
    if kind == "onion":
        return AdditiveIntervention(H, length, V, shared=True)
    if kind == "additive":
        return AdditiveIntervention(H, length, V, shared=False)
    raise ValueError(f"kind must be one of {KINDS}; got {kind!r}")


def _edits(tokens: torch.Tensor, vocab: int, g: torch.Generator, pos: torch.Tensor | None = None):
    """Random edits: position, old token, a different new token, and the counterfactual sequence."""
    n, L = tokens.shape
    if pos is None:
        pos = torch.randint(0, L, (n,), generator=g)
    old = tokens[torch.arange(n), pos]
    new = (old + torch.randint(1, vocab, (n,), generator=g)) % vocab  # uniform over the other tokens
    cf = tokens.clone()
    cf[torch.arange(n), pos] = new
    return pos, old, new, cf


def fit_intervention(
    model: RepeatGRU,
    kind: str,
    *,
    length: int | None = None,
    steps: int = 300,
    batch_size: int = 256,
    lr: float = 1e-2,
    dim: int | None = None,
    seed: int = 0,
    init_states: States | None = None,
) -> nn.Module:
    """Train an intervention of ``kind`` on training-split sequences; returns it (eval mode).

    Each step: random sequences, a random position and a random different token per row; the
    edited state must make the frozen model's teacher-forced output phase produce the edited
    sequence and EOS (cross-entropy). Only the intervention's parameters move. ``init_states``
    (default: 2000 training-split states) initialises the subspace edit from class means.
    Takes a few seconds for a 64-unit GRU.
    """
    model = _check_model(model)
    length = _check_length(model, length)
    V = model.cfg.vocab
    torch.manual_seed(seed)
    interv = make_intervention(model, kind, length, dim)
    if kind == "subspace":
        interv.init_from_states(init_states or collect_states(model, 2000, length, split="train", seed=seed + 7))
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    g = torch.Generator().manual_seed(seed + 11)
    opt = torch.optim.Adam(interv.parameters(), lr=lr)
    try:
        for step in range(steps):
            for group in opt.param_groups:
                group["lr"] = lr * (0.1 + 0.9 * (1 - step / steps))
            tokens = fixed_length_batch(batch_size, length, vocab=V, split="train", seed=seed * 100_003 + step)
            pos, old, new, cf = _edits(tokens, V, g)
            with torch.no_grad():
                h = model.encode(tokens)
            h2 = interv(h, pos, old, new)
            dec_in = torch.cat([torch.full((batch_size, 1), sos_id(V)), cf], 1)
            target = torch.cat([cf, torch.full((batch_size, 1), eos_id(V))], 1)
            logits = model.decode_logits(h2, dec_in)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    finally:
        for p, f in zip(model.parameters(), flags):
            p.requires_grad_(f)
    interv.eval()
    interv.final_loss = loss.item()
    return interv


@torch.no_grad()
def intervention_success(model: RepeatGRU, interv: nn.Module, tokens: torch.Tensor, *, seed: int = 0) -> dict:
    """Edit every position of every sequence in ``tokens`` ``(n, L)`` to a random different token.

    For each position ``i`` and each row: ``h' = interv(h, i, old, new)``; the model generates
    ``L + 1`` tokens greedily from ``h'``. Returns a dict of ``(L,)`` arrays plus their means:

    * ``"success"``: the output is exactly the edited sequence then EOS (new token at ``i``,
      everything else unchanged);
    * ``"target"``: the output has the new token at ``i`` (whatever happens elsewhere);
    * ``"mean_success"``, ``"mean_target"``: averages over positions.
    """
    model = _check_model(model)
    tokens, _ = check_tokens(tokens, vocab=model.cfg.vocab)
    n, L = tokens.shape
    if _interv_length(interv) != L:
        raise ValueError(f"interv was built for sequences of length {_interv_length(interv)}; tokens have length {L}")
    V = model.cfg.vocab
    g = torch.Generator().manual_seed(seed)
    h = model.encode(tokens)
    success, target = np.zeros(L), np.zeros(L)
    for i in range(L):
        pos = torch.full((n,), i, dtype=torch.long)
        pos, old, new, cf = _edits(tokens, V, g, pos)
        out = model.generate(interv(h, pos, old, new), L + 1)
        want = torch.cat([cf, torch.full((n, 1), eos_id(V))], 1)
        success[i] = (out == want).all(1).float().mean().item()
        target[i] = (out[:, i] == new).float().mean().item()
    return {"success": success, "target": target, "mean_success": float(success.mean()), "mean_target": float(target.mean())}


@torch.no_grad()
def onion_scales(interv: AdditiveIntervention) -> np.ndarray:
    """Typical size of the onion edit at each position: ``gamma_i`` times the RMS norm of the
    centred embedding rows; ``(L,)``. (The embedding's overall scale is arbitrary; this product is not.)"""
    if not isinstance(interv, AdditiveIntervention) or not interv.shared:
        raise TypeError("onion_scales needs an onion intervention (AdditiveIntervention(shared=True))")
    E = interv.embed - interv.embed.mean(0)
    return (interv.log_scale.exp() * E.norm(dim=1).pow(2).mean().sqrt()).numpy()


def random_init_like(model: RepeatGRU, seed: int = 0) -> RepeatGRU:
    """A freshly initialised (untrained) :class:`RepeatGRU` with the same config, for controls."""
    model = _check_model(model)
    torch.manual_seed(seed)
    return RepeatGRU(RepeatConfig(**model.cfg.to_dict())).eval()


def save_interventions(interventions: dict, path, *, length: int, info: dict | None = None) -> None:
    """Save fitted interventions (kind -> module) for sequences of ``length`` to ``path``."""
    blob = {"length": length, "info": info or {}, "kinds": {}}
    for kind, iv in interventions.items():
        if kind not in KINDS:
            raise ValueError(f"unknown intervention kind {kind!r}")
        blob["kinds"][kind] = {"dim": getattr(iv, "dim", None), "state_dict": {k: v.detach().clone() for k, v in iv.state_dict().items()}}
    torch.save(blob, path)


def load_interventions(model: RepeatGRU, path) -> dict:
    """Load interventions written by :func:`save_interventions` for ``model``.

    Returns ``{"length": L, "info": {...}, "interventions": {kind: module}}``.
    """
    model = _check_model(model)
    blob = torch.load(path, map_location="cpu", weights_only=True)
    out = {}
    for kind, entry in blob["kinds"].items():
        iv = make_intervention(model, kind, blob["length"], entry["dim"])
        iv.load_state_dict(entry["state_dict"])
        out[kind] = iv.eval()
    return {"length": blob["length"], "info": blob["info"], "interventions": out}


def analyse(
    model: RepeatGRU,
    *,
    length: int | None = None,
    n_train: int = 3000,
    n_test: int = 1000,
    n_edit: int = 300,
    steps: int = 300,
    kinds: tuple[str, ...] = KINDS,
    control: bool = True,
    seed: int = 0,
    interventions: dict | None = None,
) -> dict:
    """Run the whole analysis for one model on sequences of ``length`` (default
    :data:`ANALYSIS_LENGTH`, capped at the model's ``max_len``).

    Returns a dict: ``"probe"`` ``(L,)`` linear-probe accuracy, ``"probe_random"`` the same on a
    random-init GRU (if ``control``), ``"contributions"`` (see :func:`position_contributions`),
    ``"interventions"`` (kind -> :func:`intervention_success` dict), ``"onion_scales"`` ``(L,)``
    and ``"seconds"``. ``interventions`` (kind -> fitted module, e.g. from
    :func:`load_interventions`) skips the fitting: then the whole call takes about a second;
    fitting three kinds with ``steps=300`` takes about 20 s for a 64-unit GRU on one CPU thread.
    """
    t0 = time.perf_counter()
    model = _check_model(model)
    length = _check_length(model, min(ANALYSIS_LENGTH, model.cfg.max_len) if length is None else length)
    train = collect_states(model, n_train, length, split="train", seed=seed + 1)
    test = collect_states(model, n_test, length, split="heldout", seed=seed + 2)
    out = {"length": length, "hidden": model.cfg.hidden, "vocab": model.cfg.vocab}
    out["probe"] = linear_probe_accuracy(train, test, vocab=model.cfg.vocab)
    if control:
        rnd = random_init_like(model, seed)
        out["probe_random"] = linear_probe_accuracy(
            collect_states(rnd, n_train, length, split="train", seed=seed + 1),
            collect_states(rnd, n_test, length, split="heldout", seed=seed + 2),
            vocab=model.cfg.vocab,
        )
    out["contributions"] = position_contributions(test, vocab=model.cfg.vocab)
    out["interventions"] = {}
    edit_tokens = test.tokens[:n_edit]
    for kind in kinds:
        if interventions is not None and kind in interventions:
            interv = interventions[kind]
        else:
            interv = fit_intervention(model, kind, length=length, steps=steps, seed=seed, init_states=train)
        out["interventions"][kind] = intervention_success(model, interv, edit_tokens, seed=seed + 3)
        if kind == "onion":
            out["onion_scales"] = onion_scales(interv)
    out["seconds"] = time.perf_counter() - t0
    return out
