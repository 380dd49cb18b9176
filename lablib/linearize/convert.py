"""Swap the attention of a trained model for :class:`LinearizedAttention`, and read what goes into it.

Two models: the Othello GPT (:class:`lablib.world.GPT`, causal, ``blocks[l].attn``) and a BERT
encoder from ``transformers`` such as all-MiniLM-L6-v2 (bidirectional with a padding mask,
``encoder.layer[l].attention.self``). :func:`linearize` returns a frozen deep copy with every
attention layer replaced (the teacher is left as it was); :func:`attention_inputs` records the
hidden states (and masks) each attention layer of a model receives, which is what attention
transfer trains on.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from lablib.linearize.attention import LinearizedAttention

__all__ = ["attention_inputs", "attention_layers", "is_gpt", "linearize", "linearized_layers", "lora_targets"]


def is_gpt(model: nn.Module) -> bool:
    """True for a :class:`lablib.world.GPT`, False for a BERT model; ValueError for anything else."""
    if hasattr(model, "blocks") and hasattr(model, "tok_emb"):
        return True
    if hasattr(model, "encoder") and hasattr(model.encoder, "layer"):
        return False
    raise ValueError(f"expected a lablib.world.GPT or a transformers BERT model; got {type(model).__name__}")


def attention_layers(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """``(parent, attribute)`` of every attention layer, in order (``getattr(parent, attribute)`` is the layer)."""
    if is_gpt(model):
        return [(block, "attn") for block in model.blocks]
    return [(layer.attention, "self") for layer in model.encoder.layer]


def linearized_layers(model: nn.Module) -> list[LinearizedAttention]:
    """The :class:`LinearizedAttention` layers of a model made by :func:`linearize`, in order."""
    layers = [getattr(p, a) for p, a in attention_layers(model)]
    if not all(isinstance(m, LinearizedAttention) for m in layers):
        raise ValueError("the model's attention is not linearized (use lablib.linearize.linearize)")
    return layers


def linearize(model: nn.Module, *, feature_map="hedgehog", feature_dim: int | None = None, window: int = 0) -> nn.Module:
    """A deep copy of ``model`` (GPT or BERT) with each attention layer replaced by a
    :class:`LinearizedAttention` built from its weights. Every parameter of the copy is frozen
    (``requires_grad=False``); the stages unfreeze what they train. ``window`` 0: pure linear; a
    :data:`~lablib.linearize.attention.FULL_WINDOW`: softmax again. ``model`` is not modified."""
    student = copy.deepcopy(model).eval()
    gpt = is_gpt(student)
    for parent, name in attention_layers(student):
        old = getattr(parent, name)
        build = LinearizedAttention.from_gpt if gpt else LinearizedAttention.from_bert
        setattr(parent, name, build(old, feature_map=feature_map, feature_dim=feature_dim, window=window))
    for p in student.parameters():
        p.requires_grad_(False)
    return student


def lora_targets(model: nn.Module) -> list[str]:
    """Names of the q, k, v and output projections of every attention layer of a linearized model
    (the modules LoRA adapts): ``blocks.l.attn.{q,k,v,out}`` for the GPT,
    ``encoder.layer.l.attention.self.{q,k,v}`` and ``encoder.layer.l.attention.output.dense`` for BERT."""
    linearized_layers(model)
    if is_gpt(model):
        return [f"blocks.{i}.attn.{p}" for i in range(len(model.blocks)) for p in ("q", "k", "v", "out")]
    return [name for i in range(len(model.encoder.layer))
            for name in [f"encoder.layer.{i}.attention.self.{p}" for p in ("q", "k", "v")]
            + [f"encoder.layer.{i}.attention.output.dense"]]


@torch.no_grad()
def attention_inputs(model: nn.Module, run: Callable[[nn.Module], object]) -> list[list[tuple[torch.Tensor, torch.Tensor | None]]]:
    """What each attention layer of ``model`` receives while ``run(model)`` executes.

    ``run`` calls the model (any number of times, e.g. once per batch). Returns, per layer, a list
    with one ``(x, allowed)`` per call: x (B, T, d_model) the hidden states, ``allowed`` the bool
    (B, 1, T, T) padding mask (BERT with padding) or None (the GPT; BERT without padding).
    """
    records = [[] for _ in attention_layers(model)]
    hooks = []
    for i, (parent, name) in enumerate(attention_layers(model)):
        def hook(_module, args, kwargs, i=i):
            x = args[0] if args else kwargs["hidden_states"]
            mask = kwargs.get("attention_mask", args[1] if len(args) > 1 else None)
            allowed = LinearizedAttention.bool_mask(mask)
            if allowed is not None and allowed.shape[-2] == 1:
                allowed = allowed.expand(-1, -1, x.shape[1], -1)
            records[i].append((x.detach(), None if allowed is None else allowed.detach()))
        hooks.append(getattr(parent, name).register_forward_pre_hook(hook, with_kwargs=True))
    try:
        run(model)
    finally:
        for h in hooks:
            h.remove()
    return records
