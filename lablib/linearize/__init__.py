"""Track 1, chapter t1_07: turn a trained softmax transformer into a linear-attention one, in stages.

* ``attention``: :class:`LinearizedAttention` (the teacher's projections, a feature map per head,
  an optional sliding window of softmax with a learned mixing factor, a ``drop_linear`` switch),
  :func:`hybrid_weights`, :func:`softmax_weights`.
* ``convert``: :func:`linearize` (a copy of the Othello GPT or a BERT model with its attention
  swapped), :func:`attention_inputs` (what each attention layer receives), :func:`lora_targets`.
* ``transfer``: :func:`attention_transfer` (train the feature maps layer by layer, teacher frozen,
  on attention weights (cross-entropy) or outputs (MSE)), :func:`transfer_loss`.
* ``lora``: :class:`LoRALinear`, :func:`add_lora` (base frozen, B = 0 at the start), :func:`lora_finetune`.
* ``metrics``: per-layer attention KL and output cosine, legal-move and sentence-embedding metrics.
* ``experiment``: the chapter's run; ``python -m lablib.linearize.experiment`` writes
  ``results/linearize.json`` and the trained parameters ``results/*.pt``.
* ``charts``: the chapter's Altair charts.
"""

from lablib.linearize.attention import FULL_WINDOW, LinearizedAttention, hybrid_weights, softmax_weights
from lablib.linearize.convert import attention_inputs, attention_layers, linearize, linearized_layers, lora_targets
from lablib.linearize.lora import LoRALinear, add_lora, lora_finetune, lora_parameters
from lablib.linearize.transfer import attention_transfer, transfer_loss

__all__ = [
    "FULL_WINDOW",
    "LinearizedAttention",
    "LoRALinear",
    "add_lora",
    "attention_inputs",
    "attention_layers",
    "attention_transfer",
    "hybrid_weights",
    "linearize",
    "linearized_layers",
    "lora_finetune",
    "lora_parameters",
    "lora_targets",
    "softmax_weights",
    "transfer_loss",
]
