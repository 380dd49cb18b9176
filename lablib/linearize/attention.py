"""The linearized attention layer: a teacher's own projections, a feature map per head, and an
optional sliding window of softmax attention beside the linear part (LoLCATs' hybrid).

For query i and key j (both allowed by the causal / padding mask), with ``s_ij = q_i . k_j / sqrt(D)``:

* inside the window (``|i - j| < window``):  ``a_ij = gamma_h * exp(s_ij - m_i)``, ``m_i`` the row's
  largest windowed score, ``gamma_h = sigmoid(window_logit_h)`` a learned per-head mixing factor;
* outside it:                              ``a_ij = phi_q(q_i) . phi_k(k_j)`` (linear attention);
* the weights are the row-normalized ``A_ij = a_ij / sum_l a_il``, the output ``y_i = sum_j A_ij v_j``.

``window = 0`` is pure linear attention; a window as long as the sequence leaves no linear part, and
then ``gamma_h`` cancels and ``A`` is the teacher's softmax exactly (``tests/test_linearize.py``). The
weights are formed as a (T x T) matrix, as in LoLCATs' didactic ``hybrid_attention_quadratic``: our
sequences are short (32 moves, about 15 WordPiece tokens), and the matrix is what the chapter measures.
The linear part could run as a recurrence (``lablib.attention.linear``); a test checks the two agree.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lablib._checks import check_sequence_tensor
from lablib.attention.feature_maps import HedgehogFeatureMap, resolve_feature_map

__all__ = ["FULL_WINDOW", "WINDOW_INIT", "LinearizedAttention", "hybrid_weights", "softmax_weights"]

FULL_WINDOW = 1 << 20  # a window longer than any sequence here: exact softmax attention
WINDOW_INIT = math.log(0.1 / 0.9)  # logit of the window's initial mixing factor 0.1 (LoLCATs' -2.197)


def _allowed(T: int, causal: bool, allowed: torch.Tensor | None, device) -> torch.Tensor:
    """(B or 1, 1, T, T) bool: key j may be read by query i (causal and padding masks combined)."""
    mask = torch.ones(T, T, dtype=torch.bool, device=device)
    if causal:
        mask = mask.tril()
    mask = mask[None, None]
    if allowed is not None:
        if allowed.dtype != torch.bool or allowed.ndim != 4 or allowed.shape[-2:] != (T, T):
            raise ValueError(f"allowed must be a bool mask (B, 1, T={T}, T={T}); got {tuple(allowed.shape)} {allowed.dtype}")
        mask = mask & allowed
    return mask


def softmax_weights(q: torch.Tensor, k: torch.Tensor, *, causal: bool, allowed: torch.Tensor | None = None) -> torch.Tensor:
    """The teacher's attention weights softmax_j(q_i . k_j / sqrt(D)) over allowed keys: (B, H, T, T).

    q, k (B, H, T, D); ``allowed`` an optional bool (B, 1, T, T) padding mask (True = may attend).
    """
    check_sequence_tensor(q, "q")
    check_sequence_tensor(k, "k")
    mask = _allowed(q.shape[2], causal, allowed, q.device)
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    return scores.masked_fill(~mask, float("-inf")).softmax(-1)


def hybrid_weights(
    q: torch.Tensor,
    k: torch.Tensor,
    fq: torch.Tensor | None,
    fk: torch.Tensor | None,
    *,
    window: int,
    gamma: torch.Tensor | None = None,
    causal: bool,
    allowed: torch.Tensor | None = None,
    drop_linear: bool = False,
    eps: float = 1e-12,
) -> torch.Tensor:
    """Row-normalized weights of sliding-window softmax plus linear attention (module docstring): (B, H, T, T).

    q, k (B, H, T, D); fq, fk (B, H, T, F) their features (unused, may be None, when there is no
    linear part: ``drop_linear`` or a window covering the sequence); ``window`` >= 0; ``gamma``
    (H,) the window's mixing factor in (0, 1) (default 1/2); ``allowed`` optional bool (B, 1, T, T).
    ``drop_linear=True`` zeroes the linear part (what a hybrid is worth without it).
    """
    check_sequence_tensor(q, "q")
    check_sequence_tensor(k, "k")
    if q.shape != k.shape:
        raise ValueError(f"q and k must have one shape (B, H, T, D); got {tuple(q.shape)} and {tuple(k.shape)}")
    if isinstance(window, bool) or not isinstance(window, int) or window < 0:
        raise ValueError(f"window must be an int >= 0; got {window!r}")
    B, H, T, D = q.shape
    mask = _allowed(T, causal, allowed, q.device)
    offset = torch.arange(T, device=q.device)
    near = ((offset[:, None] - offset[None, :]).abs() < window)[None, None] & mask
    far = mask & ~near
    a = q.new_zeros(B, H, T, T)
    if window > 0:
        scores = ((q @ k.transpose(-1, -2)) / math.sqrt(D)).masked_fill(~near, float("-inf"))
        top = scores.amax(-1, keepdim=True).clamp_min(-1e30)  # rows with no windowed key stay finite
        g = q.new_full((H,), 0.5) if gamma is None else gamma.to(q.dtype)
        a = a + g[None, :, None, None] * torch.exp(scores - top)  # exp(-inf) = 0 outside the window
    if not drop_linear and bool(far.any()):
        if fq is None or fk is None:
            raise ValueError("the linear part needs the features fq and fk")
        if fq.shape[:3] != (B, H, T) or fk.shape != fq.shape:
            raise ValueError(f"fq and fk must be (B={B}, H={H}, T={T}, F); got {tuple(fq.shape)} and {tuple(fk.shape)}")
        a = a + (fq @ fk.transpose(-1, -2)).masked_fill(~far, 0.0)
    return a / (a.sum(-1, keepdim=True) + eps)


class LinearizedAttention(nn.Module):
    """Multi-head attention built from a trained softmax layer's projections, with linear attention.

    Holds ``q``, ``k``, ``v`` (``nn.Linear`` d_model -> H * D, copies of the teacher's), an output
    projection ``out`` (the GPT's; ``None`` for BERT, whose output dense sits in ``BertSelfOutput``),
    the feature maps ``phi_q`` and ``phi_k`` (one :class:`HedgehogFeatureMap` each, per head, or one
    fixed map by name, e.g. ``"elu+1"``), ``window`` and the mixing logits ``window_logit`` (H,),
    initialized to ``window_init`` (logit(0.1): gamma = 0.1, LoLCATs' ``init_window_factor``).
    Hedgehog maps without bias (as LoLCATs' configs), one for queries and one for keys (untied).
    Switches: ``drop_linear`` (keep only the window).

    ``forward(x, attention_mask=None)``: x (B, T, d_model). ``style="gpt"`` returns the (B, T, d_model)
    output, causal; ``style="bert"`` returns ``(context, None)`` as ``BertSelfAttention`` does, reading
    ``attention_mask`` as the bool (B, 1, T, T) mask (True = attend), a float additive mask, or None.
    """

    def __init__(self, d_model: int, n_heads: int, *, style: str, feature_map="hedgehog",
                 feature_dim: int | None = None, window: int = 0, out: bool = True,
                 window_init: float = WINDOW_INIT):
        super().__init__()
        if style not in ("gpt", "bert"):
            raise ValueError(f"style must be 'gpt' or 'bert'; got {style!r}")
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} is not a multiple of n_heads {n_heads}")
        self.style, self.causal = style, style == "gpt"
        self.n_heads, self.head_dim = n_heads, d_model // n_heads
        self.q, self.k, self.v = (nn.Linear(d_model, d_model) for _ in range(3))
        self.out = nn.Linear(d_model, d_model) if out else None
        self.feature_map_name = feature_map if isinstance(feature_map, str) else type(feature_map).__name__
        if feature_map == "hedgehog":
            self.phi_q = HedgehogFeatureMap(n_heads, self.head_dim, feature_dim, bias=False)
            self.phi_k = HedgehogFeatureMap(n_heads, self.head_dim, feature_dim, bias=False)
        else:
            self.phi_q = self.phi_k = resolve_feature_map(feature_map)
        self.window = window
        self.window_logit = nn.Parameter(torch.full((n_heads,), float(window_init)))
        self.drop_linear = False

    @classmethod
    def from_gpt(cls, attn: nn.Module, **kwargs) -> "LinearizedAttention":
        """From a :class:`lablib.world.model.CausalSelfAttention` (fused ``qkv``, ``out``); weights copied."""
        D = attn.out.in_features
        new = cls(D, attn.n_head, style="gpt", **kwargs).to(attn.qkv.weight.dtype)
        with torch.no_grad():
            for lin, w, b in zip((new.q, new.k, new.v), attn.qkv.weight.split(D), attn.qkv.bias.split(D)):
                lin.weight.copy_(w)
                lin.bias.copy_(b)
            new.out.load_state_dict(attn.out.state_dict())
        return new

    @classmethod
    def from_bert(cls, attn: nn.Module, **kwargs) -> "LinearizedAttention":
        """From a ``transformers`` ``BertSelfAttention`` (``query``, ``key``, ``value``); weights copied."""
        new = cls(attn.query.in_features, attn.num_attention_heads, style="bert", out=False, **kwargs)
        new = new.to(attn.query.weight.dtype)
        with torch.no_grad():
            for lin, old in zip((new.q, new.k, new.v), (attn.query, attn.key, attn.value)):
                lin.load_state_dict(old.state_dict())
        return new

    @property
    def gamma(self) -> torch.Tensor:
        """(H,) the window's mixing factor sigmoid(window_logit)."""
        return torch.sigmoid(self.window_logit)

    def project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, T, d_model) -> q, k, v, each (B, H, T, D)."""
        if not isinstance(x, torch.Tensor) or x.ndim != 3 or x.shape[-1] != self.q.in_features:
            raise ValueError(f"x must be (B, T, d_model={self.q.in_features}); got {tuple(getattr(x, 'shape', ()))}")
        B, T, _ = x.shape
        return tuple(p(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2) for p in (self.q, self.k, self.v))

    def weights(self, q: torch.Tensor, k: torch.Tensor, allowed: torch.Tensor | None = None) -> torch.Tensor:
        """This layer's attention weights (B, H, T, T) for its own queries and keys (B, H, T, D)."""
        linear = not self.drop_linear and self.window < q.shape[2]
        fq, fk = (self.phi_q(q), self.phi_k(k)) if linear else (None, None)
        return hybrid_weights(q, k, fq, fk, window=self.window, gamma=self.gamma, causal=self.causal,
                              allowed=allowed, drop_linear=self.drop_linear)

    def heads(self, x: torch.Tensor, allowed: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(per-head outputs (B, H, T, D), weights (B, H, T, T)) for hidden states x (B, T, d_model)."""
        q, k, v = self.project(x)
        a = self.weights(q, k, allowed)
        return a @ v, a

    def merge(self, y: torch.Tensor) -> torch.Tensor:
        """Per-head outputs (B, H, T, D) -> (B, T, d_model), through ``out`` if the layer has one."""
        B, H, T, D = y.shape
        y = y.transpose(1, 2).reshape(B, T, H * D)
        return self.out(y) if self.out is not None else y

    @staticmethod
    def bool_mask(attention_mask) -> torch.Tensor | None:
        """A BERT attention mask (bool (B, 1, T, T) True = attend, additive float, or None) as bool or None."""
        if attention_mask is None or attention_mask.dtype == torch.bool:
            return attention_mask
        return attention_mask > torch.finfo(attention_mask.dtype).min / 2

    def forward(self, x: torch.Tensor, attention_mask=None, *args, **kwargs):
        allowed = self.bool_mask(attention_mask) if self.style == "bert" else None
        if allowed is not None and allowed.shape[-2] == 1:  # a (B, 1, 1, T) key mask
            allowed = allowed.expand(-1, -1, x.shape[1], -1)
        y, _ = self.heads(x, allowed)
        out = self.merge(y)
        return (out, None) if self.style == "bert" else out

    def trainable_state(self) -> dict:
        """The parameters attention transfer trains (feature maps, mixing logits), for saving."""
        return {n: p.detach().clone() for n, p in self.named_parameters() if n.startswith(("phi_", "window_logit"))}

    def extra_repr(self) -> str:
        return f"style={self.style}, heads={self.n_heads}, feature_map={self.feature_map_name}, window={self.window}"
