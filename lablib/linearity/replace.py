"""Put a fitted linear map in place of a block inside a model.

``linear_replacement(block, fit)`` is a context manager: while it is open, a forward hook on
``block`` throws the block's output away and returns ``fit(x)`` instead, ``x`` being the block's first
input (its hidden states). Everything else in the model runs unchanged, so the model's own metric
(legal moves, sentence similarity) measures what the block's nonlinear part was worth. The block
still runs (its output is discarded): simple and safe for any module whose first argument is the
hidden-state tensor and whose output is that tensor (or a tuple starting with it), as for
``lablib.world.GPT`` blocks and the BERT layers of ``transformers`` 5.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from lablib.linearity.score import AffineMap

__all__ = ["linear_replacement"]


@contextlib.contextmanager
def linear_replacement(block: nn.Module, fit: AffineMap):
    """Inside the ``with``, ``block(x, ...)`` returns ``fit(x)`` (same dtype and device as ``x``).

    block: a module whose first positional argument (or ``hidden_states`` keyword) is a
    (..., d_in) tensor. fit: an :class:`~lablib.linearity.AffineMap` with ``A`` (d_in, d_out).
    If the block returns a tuple, its first element is replaced and the rest kept. The hook is
    removed on exit, also when the body raises. Raises ``ValueError`` for a non-module or a non-map,
    and at call time for an input of the wrong width.
    """
    if not isinstance(block, nn.Module):
        raise ValueError(f"block must be a torch.nn.Module; got {type(block).__name__}")
    if not isinstance(fit, AffineMap):
        raise ValueError(f"fit must be an AffineMap (lablib.linearity.fit_affine); got {type(fit).__name__}")

    def hook(_module, args, kwargs, output):
        x = args[0] if args else kwargs.get("hidden_states")
        if not isinstance(x, torch.Tensor):
            raise ValueError("the replaced block's first input must be its hidden-state tensor")
        y = fit(x)
        if isinstance(output, tuple):
            return (y,) + tuple(output[1:])
        return y

    handle = block.register_forward_hook(hook, with_kwargs=True)
    try:
        yield block
    finally:
        handle.remove()
