"""course_lib: the Transformer of "Attention Is All You Need", built lesson by lesson.

One module per concept, in lesson order: attention, positional, layers, masks, model,
params; then data, train, decode, device; and the visual side in viz and widgets.
"""

from .attention import KVCache, MultiHeadAttention, keep_attention_weights, scaled_dot_product_attention
from .device import autocast, describe_device, pick_device, set_seed
from .layers import DecoderLayer, EncoderLayer, FeedForward, LayerNorm
from .masks import causal_mask, combine_masks, padding_mask
from .model import Transformer, TransformerConfig
from .params import count_from_config, count_parameters
from .positional import LearnedPositionalEncoding, SinusoidalPositionalEncoding, sinusoidal_encoding
from .show import show_source

__version__ = "0.1.0"

__all__ = [
    "KVCache",
    "MultiHeadAttention",
    "keep_attention_weights",
    "scaled_dot_product_attention",
    "autocast",
    "describe_device",
    "pick_device",
    "set_seed",
    "DecoderLayer",
    "EncoderLayer",
    "FeedForward",
    "LayerNorm",
    "causal_mask",
    "combine_masks",
    "padding_mask",
    "Transformer",
    "TransformerConfig",
    "count_from_config",
    "count_parameters",
    "LearnedPositionalEncoding",
    "SinusoidalPositionalEncoding",
    "sinusoidal_encoding",
    "show_source",
]
