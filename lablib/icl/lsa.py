"""Linear self-attention on the prompt matrix Z, and the weights that make it run gradient descent.

One layer (von Oswald et al., 2023; Ahn et al., 2023; Mahankali et al., 2023; Zhang, Frei &
Bartlett, 2023), on Z (B, d+1, N+1) whose columns are tokens z_j = (x_j, y_j), the query last:

    f(Z) = Z + (1/N) W_PV Z M (Z^T W_KQ Z),      M = diag(1, ..., 1, 0)   ((N+1) x (N+1))

Read column j of the update: (1/N) sum_{i <= N} W_PV z_i (z_i^T W_KQ z_j), attention with no
softmax; score z_i^T W_KQ z_j (W_KQ = W_K^T W_Q merged), value W_PV z_i (W_PV = W_P W_V merged).
M drops the query column from the keys and values, so the query's unknown label never leaks
into the training tokens. W_KQ and W_PV are (d+1, d+1).

Convention (the papers'): the prediction is *minus* the query's label slot after the last layer,

    yhat = -f(Z)[d, N]      (0-based: bottom-right entry)

so that the same weights make every layer one GD step. With

    W_KQ = [[-Gamma^T, 0],      W_PV = [[0, 0],
            [ 0,       0]]               [0, 1]]

the layer adds -(x_j^T Gamma h) to every token's label slot, h = (1/N) sum_i y_i x_i:
the query's slot becomes -x_q^T Gamma h (so yhat = x_q^T Gamma h, one preconditioned GD step from
w = 0, see ``lablib.icl.baselines``) and each training label y_j becomes the residual
y_j - w_1^T x_j. The next layer then computes the gradient at w_1 from those residuals: a stack
of k such layers is k steps of preconditioned GD (``lsa_from_gd``).

The query column never feeds the keys or values, so its final value is a *linear* function of
x_q, whatever the depth: a trained LSA stack always predicts w_eff^T x_q for some w_eff that
depends on the prompt (``lablib.icl.train.implied_weights`` reads it off).

``SoftmaxSelfAttention`` is the same layer with the scores softmax-normalized over the N keys,
for contrast: it weighs examples by similarity, a kernel smoother, not a gradient step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from lablib.icl.tasks import _check_tensor, check_prompts, to_prompt_matrix

__all__ = [
    "LinearSelfAttention",
    "SoftmaxSelfAttention",
    "PromptTransformer",
    "LinearTransformer",
    "SoftmaxTransformer",
    "lsa_from_gd",
    "lsa_from_gd_plus_plus",
    "effective_preconditioner",
]


def _check_Z(Z: torch.Tensor, d: int) -> int:
    """Check Z (B, d+1, N+1); return N."""
    _check_tensor(Z, "Z", 3, "(B, d+1, N+1)")
    if Z.shape[1] != d + 1:
        raise ValueError(f"Z must have d+1 = {d + 1} rows (this layer was built for d = {d}); got shape {tuple(Z.shape)}")
    if Z.shape[2] < 2:
        raise ValueError(f"Z needs at least one example column besides the query (N >= 1); got shape {tuple(Z.shape)}")
    return Z.shape[2] - 1


def _check_d(d) -> int:
    if isinstance(d, bool) or not isinstance(d, int) or d < 1:
        raise ValueError(f"d must be a positive integer; got {d!r}")
    return d


class _ZAttention(nn.Module):
    """Shared parameters of the Z-form layers: W_KQ, W_PV (d+1, d+1), full or restricted to the GD form."""

    def __init__(self, d: int, *, restricted: bool = False, init_std: float = 0.02, generator=None, dtype=torch.float32):
        super().__init__()
        self.d = _check_d(d)
        self.restricted = bool(restricted)
        init_std = float(init_std)
        if not math.isfinite(init_std) or init_std < 0:
            raise ValueError(f"init_std must be a finite, non-negative number; got {init_std!r}")

        def randn(*shape):
            return init_std * torch.randn(*shape, generator=generator, dtype=torch.float64).to(dtype)

        if self.restricted:
            # Only Gamma is learned; W_PV is fixed to pick the label row (Ahn et al.'s sparse form).
            # A restricted stack of k layers is exactly k steps of preconditioned GD.
            self.gamma = nn.Parameter(randn(d, d))
            pv = torch.zeros(d + 1, d + 1, dtype=dtype)
            pv[d, d] = 1
            self.register_buffer("_pv_fixed", pv)
        else:
            self.kq = nn.Parameter(randn(d + 1, d + 1))
            self.pv = nn.Parameter(randn(d + 1, d + 1))

    @property
    def W_KQ(self) -> torch.Tensor:
        """(d+1, d+1): the merged key-query matrix; scores are z_i^T W_KQ z_j."""
        if self.restricted:
            return nn.functional.pad(-self.gamma.T, (0, 1, 0, 1))
        return self.kq

    @property
    def W_PV(self) -> torch.Tensor:
        """(d+1, d+1): the merged value-projection matrix; token i contributes W_PV z_i."""
        return self._pv_fixed if self.restricted else self.pv

    @torch.no_grad()
    def set_weights(self, W_KQ: torch.Tensor, W_PV: torch.Tensor) -> "_ZAttention":
        """Overwrite the weights (full layers only); returns self."""
        if self.restricted:
            raise ValueError("set_weights needs a full (restricted=False) layer; set .gamma on a restricted one")
        for name, W, P in (("W_KQ", W_KQ, self.kq), ("W_PV", W_PV, self.pv)):
            _check_tensor(W, name, 2, f"(d+1, d+1) = ({self.d + 1}, {self.d + 1})")
            if W.shape != P.shape:
                raise ValueError(f"{name} must have shape {tuple(P.shape)}; got {tuple(W.shape)}")
            P.copy_(W)
        return self

    def extra_repr(self) -> str:
        return f"d={self.d}, restricted={self.restricted}"


class LinearSelfAttention(_ZAttention):
    """One layer of linear self-attention: Z (B, d+1, N+1) -> Z + (1/N) W_PV Z M (Z^T W_KQ Z).

    restricted=False: W_KQ and W_PV are full learnable (d+1, d+1) matrices, drawn N(0, init_std^2).
    restricted=True: only a (d, d) Gamma is learned, W_KQ = [[-Gamma^T, 0], [0, 0]] and
    W_PV = [[0, 0], [0, 1]]: the layer is one preconditioned GD step by construction.
    """

    def forward(self, Z: torch.Tensor) -> torch.Tensor:
        N = _check_Z(Z, self.d)
        keys = Z[:, :, :N]  # (B, d+1, N): Z M without the zero column; the query is not a key
        scores = keys.transpose(1, 2) @ self.W_KQ @ Z  # (B, N, N+1): z_i^T W_KQ z_j, no softmax
        return Z + self.W_PV @ (keys @ scores) / N


class SoftmaxSelfAttention(_ZAttention):
    """Softmax attention in the same Z form: Z + W_PV Z M softmax_keys(Z^T W_KQ Z).

    Each column j mixes the N example tokens with weights softmax_i(z_i^T W_KQ z_j) summing to 1
    (no 1/N: the softmax already averages). Same parameters and options as ``LinearSelfAttention``.
    """

    def forward(self, Z: torch.Tensor) -> torch.Tensor:
        N = _check_Z(Z, self.d)
        keys = Z[:, :, :N]
        scores = keys.transpose(1, 2) @ self.W_KQ @ Z  # (B, N, N+1)
        return Z + self.W_PV @ (keys @ scores.softmax(dim=1))  # normalized over the N keys


class PromptTransformer(nn.Module):
    """A residual stack of Z-form attention layers; ``predict`` reads yhat = -Z_out[d, N].

    ``forward(Z)`` maps Z (B, d+1, N+1) to the last layer's Z; ``predict(xs, ys, x_query)`` builds Z
    from xs (B, N, d), ys (B, N), x_query (B, d) and returns predictions (B,). No MLPs, no
    layer norm: the papers' setting, in which every layer can be read as one optimizer step.
    """

    def __init__(self, layers: Sequence[nn.Module]):
        super().__init__()
        layers = list(layers)
        if not layers:
            raise ValueError("a PromptTransformer needs at least one layer")
        ds = {getattr(layer, "d", None) for layer in layers}
        if len(ds) != 1 or None in ds:
            raise ValueError(f"all layers must be Z-form attention layers with the same d; got d values {ds}")
        self.d = ds.pop()
        self.layers = nn.ModuleList(layers)

    def forward(self, Z: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            Z = layer(Z)
        return Z

    def predict(self, xs: torch.Tensor, ys: torch.Tensor, x_query: torch.Tensor) -> torch.Tensor:
        """Predictions (B,): minus the query's label slot after the last layer (the papers' sign convention)."""
        B, N, d = check_prompts(xs, ys, x_query)
        if d != self.d:
            raise ValueError(f"this model was built for d = {self.d}; the prompts have d = {d}")
        return -self(to_prompt_matrix(xs, ys, x_query))[:, d, N]


def _stack(layer_cls, d, n_layers, restricted, init_std, seed, dtype):
    _check_d(d)
    if isinstance(n_layers, bool) or not isinstance(n_layers, int) or n_layers < 1:
        raise ValueError(f"n_layers must be a positive integer; got {n_layers!r}")
    g = torch.Generator().manual_seed(seed)
    return [layer_cls(d, restricted=restricted, init_std=init_std, generator=g, dtype=dtype) for _ in range(n_layers)]


class LinearTransformer(PromptTransformer):
    """``n_layers`` LinearSelfAttention layers with weights drawn from ``seed`` (see LinearSelfAttention)."""

    def __init__(self, d: int, n_layers: int = 1, *, restricted: bool = False, init_std: float = 0.02, seed: int = 0,
                 dtype: torch.dtype = torch.float32):
        super().__init__(_stack(LinearSelfAttention, d, n_layers, restricted, init_std, seed, dtype))


class SoftmaxTransformer(PromptTransformer):
    """``n_layers`` SoftmaxSelfAttention layers with weights drawn from ``seed`` (see SoftmaxSelfAttention)."""

    def __init__(self, d: int, n_layers: int = 1, *, restricted: bool = False, init_std: float = 0.02, seed: int = 0,
                 dtype: torch.dtype = torch.float32):
        super().__init__(_stack(SoftmaxSelfAttention, d, n_layers, restricted, init_std, seed, dtype))


def lsa_from_gd(d: int, gammas, *, dtype: torch.dtype = torch.float64) -> LinearTransformer:
    """The hand-set LinearTransformer whose layer t is GD step t: W_KQ = [[-Gamma_t^T, 0], [0, 0]], W_PV = e_d e_d^T.

    gammas: a number eta (one plain GD step, Gamma = eta I), a (d, d) matrix (one preconditioned
    step), a (k, d, d) tensor or a list of k numbers / (d, d) matrices (k layers = k steps).
    Layers are full (restricted=False), so this exercises the general forward pass; its
    predictions equal ``baselines.preconditioned_gd`` followed by ``predict``.
    """
    _check_d(d)
    if isinstance(gammas, torch.Tensor) and gammas.ndim == 3:
        gammas = list(gammas)
    elif not isinstance(gammas, (list, tuple)):
        gammas = [gammas]
    if not gammas:
        raise ValueError("need at least one step size or preconditioner")
    model = LinearTransformer(d, len(gammas), init_std=0.0, dtype=dtype)
    for t, (layer, G) in enumerate(zip(model.layers, gammas)):
        if isinstance(G, torch.Tensor) and G.ndim == 2:
            _check_tensor(G, f"gammas[{t}]", 2, f"(d, d) = ({d}, {d})")
            if G.shape != (d, d):
                raise ValueError(f"gammas[{t}] must have shape (d, d) = ({d}, {d}); got {tuple(G.shape)}")
            G = G.to(dtype)
        else:
            eta = float(G)
            if not math.isfinite(eta):
                raise ValueError(f"step size {t} must be finite; got {eta}")
            G = eta * torch.eye(d, dtype=dtype)
        W_KQ = torch.zeros(d + 1, d + 1, dtype=dtype)
        W_KQ[:d, :d] = -G.T
        W_PV = torch.zeros(d + 1, d + 1, dtype=dtype)
        W_PV[d, d] = 1
        layer.set_weights(W_KQ, W_PV)
    return model


def lsa_from_gd_plus_plus(d: int, etas, gammas, *, dtype: torch.dtype = torch.float64) -> LinearTransformer:
    """The hand-set LinearTransformer computing ``baselines.gd_plus_plus``: layer t has
    W_KQ = [[I, 0], [0, 0]] and W_PV = [[-gamma_t I, 0], [0, -eta_t]].

    The label row does a GD step with step eta_t (as in ``lsa_from_gd``, with the sign moved from
    W_KQ to W_PV); the new top-left block of W_PV also moves every token's x by -gamma_t S x, the
    data transform x <- (I - gamma_t S) x. Only full layers can do this: the restricted GD form
    fixes W_PV's top-left block to 0. etas, gammas: k numbers each.
    """
    _check_d(d)
    etas = torch.as_tensor(etas, dtype=torch.float64).reshape(-1)
    gammas = torch.as_tensor(gammas, dtype=torch.float64).reshape(-1)
    if etas.numel() < 1 or etas.shape != gammas.shape or not (etas.isfinite().all() and gammas.isfinite().all()):
        raise ValueError(f"etas and gammas must be finite, non-empty and of equal length; got {etas.tolist()} and {gammas.tolist()}")
    model = LinearTransformer(d, etas.numel(), init_std=0.0, dtype=dtype)
    for layer, eta, gam in zip(model.layers, etas.tolist(), gammas.tolist()):
        W_KQ = torch.zeros(d + 1, d + 1, dtype=dtype)
        W_KQ[:d, :d] = torch.eye(d, dtype=dtype)
        W_PV = torch.zeros(d + 1, d + 1, dtype=dtype)
        W_PV[:d, :d] = -gam * torch.eye(d, dtype=dtype)
        W_PV[d, d] = -eta
        layer.set_weights(W_KQ, W_PV)
    return model


def effective_preconditioner(layer: nn.Module) -> torch.Tensor:
    """The Gamma (d, d) that a layer's weights apply to h = (1/N) sum_i y_i x_i: Gamma = -W_PV[d, d] W_KQ[:d, :d]^T.

    For a one-layer model, yhat = -(1/N) sum_i (u^T x_i + p y_i)(x_i^T A x_q + y_i b^T x_q) with
    A = W_KQ[:d, :d], b = W_KQ[d, :d], u = W_PV[d, :d], p = W_PV[d, d]. Only the p y_i x_i^T A x_q
    term is odd in w (flip w and every y flips sign); the others cannot correlate with y_q and a
    trained model drives them to 0, leaving yhat = x_q^T (-p A^T) h: one GD step with this
    Gamma. The p-versus-A scale ambiguity cancels in the product.
    """
    if not isinstance(layer, _ZAttention):
        raise ValueError(f"layer must be a LinearSelfAttention or SoftmaxSelfAttention; got {type(layer).__name__}")
    d = layer.d
    return (-layer.W_PV[d, d] * layer.W_KQ[:d, :d].T).detach()
