"""Feature maps phi for the kernel trick: sim(q, k) = phi(q) . phi(k).

Softmax attention's similarity exp(q . k) is a kernel whose feature map is infinite
dimensional. Linear attention swaps it for a finite map phi: R^D -> R^F, applied to each
query and key vector independently (last dim), which is what lets the sum over keys be
regrouped into a running state of size F x D_v.

Parameter-free maps, by name in ``FEATURE_MAPS`` (any shape (..., D)):

* ``elu+1``, ``relu``, ``identity``                   F = D
* ``taylor``    Based's 2nd-order Taylor map           F = 1 + D + D^2

Maps with settings or parameters, as ``nn.Module`` objects (pass the object itself as
``feature_map=``; ``lablib.layers.LinearAttention`` registers it, so a learned map trains with
the layer):

* ``CosFormerFeatureMap(max_len)``    cosFormer's relu + cos reweighting       F = 2 D   (needs positions)
* ``PerformerFeatureMap(dim, m)``     Performer's FAVOR+ positive random features  F = m
* ``HedgehogFeatureMap(H, D, F)``     Hedgehog's learned softmax map            F_out = 2 F

and the helpers that compare a map with softmax: ``softmax_attention_weights``,
``linear_attention_weights``, ``attention_cross_entropy``, and ``distill_hedgehog``, which trains
a Hedgehog map to reproduce a softmax head's attention weights.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

FeatureMap = Callable[[torch.Tensor], torch.Tensor]

__all__ = [
    "FeatureMap",
    "elu_plus_one",
    "relu",
    "identity",
    "taylor",
    "FEATURE_MAPS",
    "resolve_feature_map",
    "CosFormerFeatureMap",
    "cosformer",
    "orthogonal_gaussian_projection",
    "PerformerFeatureMap",
    "HedgehogFeatureMap",
    "softmax_attention_weights",
    "linear_attention_weights",
    "attention_cross_entropy",
    "distill_hedgehog",
]


def elu_plus_one(x: torch.Tensor) -> torch.Tensor:
    """elu(x) + 1 (Katharopoulos et al., 2020): positive everywhere, so normalizers never vanish."""
    return F.elu(x) + 1.0


def relu(x: torch.Tensor) -> torch.Tensor:
    """max(x, 0): non-negative but can be exactly zero, so normalized attention needs an eps."""
    return F.relu(x)


def identity(x: torch.Tensor) -> torch.Tensor:
    """phi(x) = x: plain (unnormalized) linear attention, the form used by most modern variants."""
    return x


def taylor(x: torch.Tensor) -> torch.Tensor:
    """Based's second-order Taylor map (Arora et al., 2024): (..., D) -> (..., 1 + D + D^2).

        phi(x) = [1, x / D^(1/4), vec(x x^T) / (sqrt(2) sqrt(D))]
        phi(q) . phi(k) = 1 + q.k / sqrt(D) + (q.k)^2 / (2 D)

    the first three terms of exp(q.k / sqrt(D)). Always >= 1/2 (a quadratic with no real root
    above it), so the normalizer never vanishes. Based applies it to a small projected key
    (D = 16: 273 features); the state grows as D^2.
    """
    D = x.shape[-1]
    outer = (x.unsqueeze(-1) * x.unsqueeze(-2)).flatten(-2) / (2.0 ** 0.5 * D ** 0.5)
    return torch.cat([torch.ones_like(x[..., :1]), x / D ** 0.25, outer], dim=-1)


FEATURE_MAPS: dict[str, FeatureMap] = {"elu+1": elu_plus_one, "relu": relu, "identity": identity, "taylor": taylor}


def resolve_feature_map(feature_map: str | FeatureMap) -> FeatureMap:
    """Return the callable for a name in ``FEATURE_MAPS`` or pass a callable through."""
    if callable(feature_map):
        return feature_map
    try:
        return FEATURE_MAPS[feature_map]
    except KeyError:
        raise ValueError(
            f"unknown feature map {feature_map!r}; choose one of {sorted(FEATURE_MAPS)} or pass a callable "
            "(e.g. CosFormerFeatureMap(max_len), PerformerFeatureMap(dim, m), HedgehogFeatureMap(H, D))"
        ) from None


def _check_float(x: torch.Tensor, name: str, min_ndim: int, shape_doc: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} takes a torch.Tensor of shape {shape_doc}; got {type(x).__name__}")
    if x.ndim < min_ndim:
        raise ValueError(f"{name} takes a tensor of shape {shape_doc}; got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} takes a floating-point tensor; got dtype {x.dtype}")


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int; got {value!r}")
    return value


# --------------------------------------------------------------------------- cosFormer


class CosFormerFeatureMap(nn.Module):
    """cosFormer's map (Qin et al., 2022, "cosFormer: Rethinking Softmax in Attention"): (..., T, D) -> (..., T, 2 D).

    For the token at absolute position i (counted along the time dim, -2, from ``offset``):

        phi(x_i) = [relu(x_i) sin(pi i / (2 M)),  relu(x_i) cos(pi i / (2 M))]
        phi(q_i) . phi(k_j) = relu(q_i) . relu(k_j) cos(pi (i - j) / (2 M))

    (sin sin + cos cos = cos of the difference). The relu keeps weights non-negative; the cosine
    re-weights them towards nearby tokens (a locality bias, largest at i = j), and because it is
    a sum of two products it keeps the linear (state) form. ``M = max_len`` must bound every
    position, 0 <= i < M, so that |i - j| < M and the cosine stays positive.

    It is the only map here that needs **absolute positions**: applied to each piece of a
    sequence separately it would restart at position 0. ``forward(x, offset=t0)`` gives the
    tokens positions t0, t0 + 1, ...; ``at(t0)`` returns that as a one-argument callable for
    ``feature_map=`` arguments, so a sequence continued in pieces (with the state carried
    over) gives the same result as one call. ``lablib.layers.LinearAttention`` calls
    ``at(position)`` and carries the position in its state, so its ``step`` decoding and
    chained forwards match one call.

    Parameter-free but it has a setting (M), so it is a module, not a ``FEATURE_MAPS`` name.
    The paper's code counts positions from 1 with M the sequence length; the weights depend
    only on i - j, so where counting starts changes nothing.
    """

    def __init__(self, max_len: int):
        super().__init__()
        self.max_len = _positive_int(max_len, "max_len (M)")

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        """x (..., T, D), positions offset .. offset + T - 1 along dim -2 -> (..., T, 2 D)."""
        _check_float(x, "CosFormerFeatureMap", 2, "(..., T, D)")
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise ValueError(f"offset must be an int >= 0 (the position of x's first token); got {offset!r}")
        T = x.shape[-2]
        if offset + T > self.max_len:
            raise ValueError(
                f"cosFormer positions must stay below max_len M = {self.max_len}; got offset {offset} + T {T} "
                f"(x of shape {tuple(x.shape)}): build the map with a larger max_len"
            )
        angle = (math.pi / (2 * self.max_len)) * torch.arange(offset, offset + T, dtype=torch.float64, device=x.device)
        r = F.relu(x)
        return torch.cat([r * angle.sin().to(x.dtype)[:, None], r * angle.cos().to(x.dtype)[:, None]], dim=-1)

    def at(self, offset: int) -> FeatureMap:
        """The map for a piece whose first token sits at absolute position ``offset``."""
        return partial(self.forward, offset=offset)

    def extra_repr(self) -> str:
        return f"max_len={self.max_len}"


def cosformer(max_len: int) -> CosFormerFeatureMap:
    """The cosFormer map for sequences of at most ``max_len`` tokens (see ``CosFormerFeatureMap``)."""
    return CosFormerFeatureMap(max_len)


# --------------------------------------------------------------------------- Performer (FAVOR+)


def orthogonal_gaussian_projection(
    n_features: int, dim: int, *, generator: torch.Generator | None = None, orthogonal: bool = True
) -> torch.Tensor:
    """Random projection W (n_features, dim), float64, whose rows w_i are each marginally N(0, I_dim).

    ``orthogonal=True`` (Performer's ORF): rows come in blocks of ``dim`` mutually orthogonal
    directions (Q of the QR of a Gaussian matrix, signs fixed by diag(R) so Q is Haar-uniform),
    each row rescaled by an independent chi(dim) length (the norm of a Gaussian vector), the last
    block cut to size. Each row is still exactly Gaussian, so estimators stay unbiased, but the
    rows of a block cannot point the same way, which lowers the variance. ``False``: iid rows.
    """
    n_features, dim = _positive_int(n_features, "n_features (m)"), _positive_int(dim, "dim")
    if not orthogonal:
        return torch.randn(n_features, dim, generator=generator, dtype=torch.float64)
    blocks = []
    for _ in range(-(-n_features // dim)):
        Q, R = torch.linalg.qr(torch.randn(dim, dim, generator=generator, dtype=torch.float64))
        Q = Q * torch.sign(torch.diagonal(R))  # Haar: column j times sign(R_jj)
        blocks.append(Q.T)  # rows orthonormal
    directions = torch.cat(blocks)[:n_features]
    lengths = torch.randn(n_features, dim, generator=generator, dtype=torch.float64).norm(dim=1)  # chi(dim)
    return lengths[:, None] * directions


class PerformerFeatureMap(nn.Module):
    """Performer's positive random features, FAVOR+ (Choromanski et al., 2021): (..., D) -> (..., m).

        phi(x) = exp(W x' - |x'|^2 / 2) / sqrt(m),    x' = scale * x,   W (m, D) rows w_i ~ N(0, I)

    Since E_w[exp(w.q - |q|^2/2) exp(w.k - |k|^2/2)] = exp(q.k) for w ~ N(0, I),
    phi(q) . phi(k) is an **unbiased estimator of exp(scale^2 q.k)** with variance falling as
    1/m, and every feature is positive (no cancellations, normalizers stay > 0; the
    trigonometric features of random Fourier features can go negative). ``scale=1`` estimates
    exp(q.k); ``scale = D^(-1/4)`` estimates softmax attention's exp(q.k / sqrt(D)) (the
    Performer code's data normalizer). W is drawn once from ``seed`` by
    ``orthogonal_gaussian_projection`` and kept as a buffer (saved with the state dict, moved
    with ``.to``), the same for every head; ``redraw`` draws a new one (the paper redraws
    periodically during training). The estimate's spread grows fast with |q| and |k|
    (variance ~ exp(|q + k|^2)), which is why Performer needs small or normalized inputs.

    No max-subtraction stabilizer: the Performer code subtracts a data-dependent max, which
    would make a key's features depend on the other keys and break the streaming (RNN) form.
    """

    projection: torch.Tensor

    def __init__(self, dim: int, n_features: int = 64, *, seed: int = 0, orthogonal: bool = True, scale: float = 1.0):
        super().__init__()
        self.dim = _positive_int(dim, "dim (D)")
        self.n_features = _positive_int(n_features, "n_features (m)")
        if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
            raise ValueError(f"scale must be a finite float > 0; got {scale!r}")
        self.orthogonal, self.scale = bool(orthogonal), float(scale)
        self.register_buffer("projection", torch.empty(self.n_features, self.dim))
        self.redraw(seed)

    @torch.no_grad()
    def redraw(self, seed: int | None = None) -> "PerformerFeatureMap":
        """Draw a new projection from ``seed`` (None: the previous seed + 1); returns self."""
        self.seed = (self.seed + 1) if seed is None else int(seed)
        g = torch.Generator().manual_seed(self.seed)
        W = orthogonal_gaussian_projection(self.n_features, self.dim, generator=g, orthogonal=self.orthogonal)
        self.projection.copy_(W.to(self.projection.dtype))
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., D) -> phi(x) (..., m), positive."""
        _check_float(x, "PerformerFeatureMap", 1, f"(..., D={self.dim})")
        if x.shape[-1] != self.dim:
            raise ValueError(f"PerformerFeatureMap was built for D = {self.dim}; got x of shape {tuple(x.shape)}")
        x = x * self.scale
        W = self.projection.to(device=x.device, dtype=x.dtype)
        return torch.exp(x @ W.T - 0.5 * (x * x).sum(-1, keepdim=True)) / math.sqrt(self.n_features)

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, n_features={self.n_features}, orthogonal={self.orthogonal}, scale={self.scale:g}, "
                f"seed={self.seed}")


# --------------------------------------------------------------------------- Hedgehog


class HedgehogFeatureMap(nn.Module):
    """Hedgehog's learnable map (Zhang et al., 2024, "The Hedgehog & the Porcupine"): (..., H, T, D) -> (..., H, T, 2 F).

    Per head h, with a weight W_h (D, F) and bias b_h (F,):

        z = x W_h + b_h,    phi(x) = [softmax(z), softmax(-z)]      (softmax over the F features)

    With exp(z) and exp(-z) in place of the softmaxes the features would be unbounded;
    normalizing each half over the features (as the Hedgehog and LoLCATs code do) rescales each
    half of phi(q) . phi(k) by factors that depend on q alone and on k alone, and keeps every
    feature in (0, 1), so nothing overflows. The exponentials are there to make the weights
    "spiky" and monotone in q.k, the two properties the paper found simple maps (elu+1, relu,
    ...) lack; the +- halves let it respond to negative as well as positive projections.

    Initialized as in the paper's code: W_h = identity (D = F; ``eye`` of the (D, F) rectangle
    otherwise) and b_h = 0, so before training phi(x) = [softmax(x), softmax(-x)]. Train it
    with ``distill_hedgehog`` (attention distillation) or end to end inside a layer. The input
    needs its head axis at dim -3 with ``n_heads`` entries; the output has 2 F features.
    """

    def __init__(self, n_heads: int, head_dim: int, feature_dim: int | None = None, *, bias: bool = True):
        super().__init__()
        self.n_heads = _positive_int(n_heads, "n_heads (H)")
        self.head_dim = _positive_int(head_dim, "head_dim (D)")
        self.feature_dim = self.head_dim if feature_dim is None else _positive_int(feature_dim, "feature_dim (F)")
        eye = torch.eye(self.head_dim, self.feature_dim)
        self.weight = nn.Parameter(eye.repeat(self.n_heads, 1, 1))  # (H, D, F)
        self.bias = nn.Parameter(torch.zeros(self.n_heads, self.feature_dim)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., H, T, D) -> phi(x) (..., H, T, 2 F), each half a softmax over F features."""
        shape_doc = f"(..., H={self.n_heads}, T, D={self.head_dim})"
        _check_float(x, "HedgehogFeatureMap", 3, shape_doc)
        if x.shape[-3] != self.n_heads or x.shape[-1] != self.head_dim:
            raise ValueError(f"HedgehogFeatureMap takes x of shape {shape_doc}; got {tuple(x.shape)}")
        z = torch.einsum("...htd,hdf->...htf", x, self.weight.to(x.dtype))
        if self.bias is not None:
            z = z + self.bias.to(x.dtype)[:, None, :]
        return torch.cat([torch.softmax(z, dim=-1), torch.softmax(-z, dim=-1)], dim=-1)

    def extra_repr(self) -> str:
        return (f"n_heads={self.n_heads}, head_dim={self.head_dim}, feature_dim={self.feature_dim}, "
                f"bias={self.bias is not None}")


# --------------------------------------------------------------------------- attention weights


def _check_qk(q: torch.Tensor, k: torch.Tensor, causal: bool) -> None:
    for name, x in (("q", q), ("k", k)):
        _check_float(x, name, 2, "(..., T, D)")
    if q.shape[:-2] != k.shape[:-2] or q.shape[-1] != k.shape[-1] or q.dtype != k.dtype:
        raise ValueError(f"q and k must share leading dims, D and dtype; got q {tuple(q.shape)} {q.dtype}, "
                         f"k {tuple(k.shape)} {k.dtype}")
    if causal and q.shape[-2] != k.shape[-2]:
        raise ValueError(f"causal weights need as many queries as keys; got q {tuple(q.shape)} and k {tuple(k.shape)}")


def _causal_mask(T: int, device) -> torch.Tensor:
    return torch.ones(T, T, dtype=torch.bool, device=device).tril()


def softmax_attention_weights(
    q: torch.Tensor, k: torch.Tensor, *, scale: float | None = None, causal: bool = True
) -> torch.Tensor:
    """Softmax attention's weights A_ij = softmax_j(scale q_i . k_j) (j <= i if causal); rows sum to 1.

    q (..., T_q, D), k (..., T, D) -> (..., T_q, T). ``scale`` defaults to 1 / sqrt(D).
    """
    _check_qk(q, k, causal)
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    scores = scale * (q @ k.transpose(-1, -2))
    if causal:
        scores = scores.masked_fill(~_causal_mask(q.shape[-2], q.device), float("-inf"))
    return torch.softmax(scores, dim=-1)


def linear_attention_weights(
    q: torch.Tensor, k: torch.Tensor, feature_map: str | FeatureMap, *, causal: bool = True, eps: float = 1e-12
) -> torch.Tensor:
    """Linear attention's weights A_ij = phi(q_i).phi(k_j) / sum_l phi(q_i).phi(k_l) (j, l <= i if causal).

    q (..., T_q, D), k (..., T, D) -> (..., T_q, T); rows sum to 1 when the similarities are
    non-negative (every map here except ``identity``). This is the matrix normalized linear
    attention applies to the values: ``linear_attention_parallel`` computes A V without forming A.
    """
    _check_qk(q, k, causal)
    phi = resolve_feature_map(feature_map)
    sim = phi(q) @ phi(k).transpose(-1, -2)
    if causal:
        sim = sim.masked_fill(~_causal_mask(q.shape[-2], q.device), 0.0)
    return sim / (sim.sum(-1, keepdim=True) + eps)


def attention_cross_entropy(target: torch.Tensor, pred: torch.Tensor, *, eps: float = 1e-12) -> torch.Tensor:
    """Mean over rows of -sum_j target_ij log(pred_ij + eps): how well ``pred`` rows explain ``target`` rows.

    target, pred (..., T_q, T), rows summing to 1 (zeros outside a causal mask contribute 0).
    The minimum over pred is the target's own entropy, reached at pred = target.
    """
    if not isinstance(target, torch.Tensor) or not isinstance(pred, torch.Tensor) or target.shape != pred.shape:
        raise ValueError(f"target and pred must be tensors of one shape (..., T_q, T); got "
                         f"{tuple(getattr(target, 'shape', ()))} and {tuple(getattr(pred, 'shape', ()))}")
    return -(target * torch.log(pred + eps)).sum(-1).mean()


def distill_hedgehog(
    feature_map: HedgehogFeatureMap,
    q: torch.Tensor,
    k: torch.Tensor,
    *,
    steps: int = 300,
    lr: float = 1e-2,
    scale: float | None = None,
    causal: bool = True,
    progress: bool = True,
) -> list[float]:
    """Train a Hedgehog map by attention distillation on fixed queries and keys; returns the loss curve.

    q, k (B, H, T, D): a softmax head's queries and keys (detached; the map's parameters are the
    only thing trained). The target is that head's causal softmax weights
    ``softmax_attention_weights(q, k, scale=scale)``; the prediction is the linear attention weights
    phi(q_i).phi(k_j) / sum_l phi(q_i).phi(k_l); the loss is their cross-entropy
    (``attention_cross_entropy``), minimized with Adam(lr) for ``steps`` full-batch steps (tqdm bar
    unless ``progress=False``). Returns ``steps + 1`` losses: before each step, then after the
    last. The parameters are updated in place. Deterministic: no sampling.
    """
    if not isinstance(feature_map, HedgehogFeatureMap):
        raise TypeError(f"distill_hedgehog trains a HedgehogFeatureMap; got {type(feature_map).__name__}")
    _check_qk(q, k, causal)
    if q.ndim != 4:
        raise ValueError(f"q and k must have shape (B, H, T, D); got {tuple(q.shape)}")
    steps = _positive_int(steps, "steps")
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise ValueError(f"lr must be > 0; got {lr!r}")
    from tqdm.auto import tqdm

    q, k = q.detach(), k.detach()
    with torch.no_grad():
        target = softmax_attention_weights(q, k, scale=scale, causal=causal)
    params = [p for p in feature_map.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)

    def loss_now() -> torch.Tensor:
        return attention_cross_entropy(target, linear_attention_weights(q, k, feature_map, causal=causal))

    losses = []
    bar = tqdm(range(steps), desc="distill hedgehog", unit="step", disable=not progress, mininterval=0.5)
    for _ in bar:
        opt.zero_grad()
        loss = loss_now()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        bar.set_postfix(ce=f"{losses[-1]:.4f}", refresh=False)
    with torch.no_grad():
        losses.append(loss_now().item())
    return losses
