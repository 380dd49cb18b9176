"""Track 1: attention, softmax and linear, in the forms the chapters build up.

Every function takes (B, H, T, D) tensors; see each docstring for the exact shapes.
"""

from lablib.attention.delta import delta_rule_chunkwise, delta_rule_recurrent
from lablib.attention.gated import gla_chunkwise, gla_recurrent, scalar_gated_chunkwise, scalar_gated_recurrent
from lablib.attention.decoding import LinearAttentionDecoder, SoftmaxKVCacheDecoder
from lablib.attention.inputs import random_qkv
from lablib.attention.feature_maps import FEATURE_MAPS, elu_plus_one, identity, relu, resolve_feature_map
from lablib.attention.linear import (
    LinearAttentionState,
    linear_attention,
    linear_attention_chunkwise,
    linear_attention_parallel,
    linear_attention_recurrent,
    linear_attention_reference,
)
from lablib.attention.softmax import softmax_attention

__all__ = [
    "FEATURE_MAPS",
    "LinearAttentionDecoder",
    "LinearAttentionState",
    "SoftmaxKVCacheDecoder",
    "delta_rule_chunkwise",
    "delta_rule_recurrent",
    "elu_plus_one",
    "gla_chunkwise",
    "gla_recurrent",
    "identity",
    "linear_attention",
    "linear_attention_chunkwise",
    "linear_attention_parallel",
    "linear_attention_recurrent",
    "linear_attention_reference",
    "random_qkv",
    "relu",
    "resolve_feature_map",
    "scalar_gated_chunkwise",
    "scalar_gated_recurrent",
    "softmax_attention",
]
