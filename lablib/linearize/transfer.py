"""Attention transfer: train each linearized layer's feature maps (and window mixing factor) to
reproduce its softmax teacher, layer by layer, on the hidden states the *teacher* feeds that layer.

Only ``phi_q``, ``phi_k`` and ``window_logit`` train; the projections are the teacher's, frozen, so
a layer's queries, keys and values are exactly the teacher's and the target is the teacher's own
softmax on them. Two losses (``transfer_loss``):

* ``"ce"``: cross-entropy of the linear weights against the softmax weights (Hedgehog's attention
  distillation; the same loss as :func:`lablib.attention.distill_hedgehog`);
* ``"mse"``: mean squared error between the per-head outputs ``A v`` (LoLCATs' attention transfer).

Averages run over real (non-padding) queries only.
"""

from __future__ import annotations

import torch
from torch import nn

from lablib.linearize.attention import LinearizedAttention, softmax_weights
from lablib.linearize.training import fit

__all__ = ["LOSSES", "attention_transfer", "transfer_loss", "transfer_parameters"]

LOSSES = ("ce", "mse")


def _query_mask(allowed: torch.Tensor | None, shape) -> torch.Tensor:
    """(B, 1, T) float: 1 for a real query (its own key is allowed), 0 for padding."""
    B, _, T, _ = shape
    if allowed is None:
        return torch.ones(B, 1, T)
    return allowed.diagonal(dim1=-2, dim2=-1).float().expand(B, 1, T)


def transfer_loss(layer: LinearizedAttention, x: torch.Tensor, allowed: torch.Tensor | None = None,
                  loss: str = "mse") -> torch.Tensor:
    """The attention-transfer loss of one layer on the teacher's hidden states x (B, T, d_model).

    The teacher is the softmax over the layer's own (frozen, teacher's) queries and keys; ``allowed``
    the bool (B, 1, T, T) padding mask or None. ``loss``: "ce" or "mse" (module docstring).
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}; got {loss!r}")
    q, k, v = layer.project(x)
    with torch.no_grad():
        target = softmax_weights(q, k, causal=layer.causal, allowed=allowed)
    pred = layer.weights(q, k, allowed)
    rows = _query_mask(allowed, pred.shape)  # (B, 1, T)
    if loss == "ce":
        per_row = -(target * torch.log(pred + 1e-12)).sum(-1)  # (B, H, T)
    else:
        per_row = ((pred @ v - target @ v) ** 2).mean(-1)
    return (per_row * rows).sum() / (rows.sum() * per_row.shape[1])


def transfer_parameters(layer: LinearizedAttention) -> list[nn.Parameter]:
    """The parameters attention transfer trains in ``layer``: the learned feature maps, and the
    window's mixing logits when the layer has both a window and a linear part."""
    params = [p for m in (layer.phi_q, layer.phi_k) if isinstance(m, nn.Module) for p in m.parameters()]
    if layer.window > 0:
        params.append(layer.window_logit)
    return list(dict.fromkeys(params))


def attention_transfer(
    layers: list[LinearizedAttention],
    inputs: list[list[tuple[torch.Tensor, torch.Tensor | None]]],
    *,
    loss: str = "mse",
    steps: int = 300,
    lr: float = 1e-2,
    seed: int = 0,
    progress: bool = True,
) -> list[dict]:
    """Train every layer in turn on its recorded inputs; returns one dict per layer with
    ``layer``, ``loss_before`` and ``loss_after`` (mean over all recorded batches) and ``curve``.

    layers: the model's :class:`LinearizedAttention` layers (``linearized_layers``); inputs: per
    layer a list of ``(x, allowed)`` batches (:func:`lablib.linearize.attention_inputs` of the
    *teacher*). Each step draws one batch (seeded), Adam(lr). Layers are independent: each sees
    the teacher's inputs, not its linearized predecessors' outputs (as in LoLCATs' transfer).
    """
    if len(layers) != len(inputs) or not layers:
        raise ValueError(f"need one list of inputs per layer; got {len(layers)} layers and {len(inputs)} input lists")
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}; got {loss!r}")
    gen = torch.Generator().manual_seed(seed)
    out = []
    for i, (layer, batches) in enumerate(zip(layers, inputs)):
        params = transfer_parameters(layer)
        if not params:
            raise ValueError(f"layer {i} has nothing to train (a fixed feature map and no window)")

        def mean_loss():
            with torch.no_grad():
                return sum(transfer_loss(layer, x, a, loss).item() for x, a in batches) / len(batches)

        before = mean_loss()

        def step_loss(_step):
            x, a = batches[int(torch.randint(len(batches), (1,), generator=gen))]
            return transfer_loss(layer, x, a, loss)

        curve = fit(params, step_loss, steps=steps, lr=lr, desc=f"transfer layer {i} ({loss})", progress=progress)
        out.append({"layer": i + 1, "loss_before": before, "loss_after": mean_loss(), "curve": curve})
    return out
