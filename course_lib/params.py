"""Counting parameters: from a built model, and analytically from a config (Table 3)."""

from __future__ import annotations

from torch import nn

from .model import TransformerConfig
from .validate import check_divisible

# The paper's Table 3 reports the base model at 65M parameters and the big one at 213M.
PAPER_BASE_PARAMS = 65e6
PAPER_BIG_PARAMS = 213e6


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of distinct parameter scalars (a tied weight counts once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def attention_params(d_model: int, bias: bool = True) -> int:
    """One multi-head attention block: W_Q, W_K, W_V, W_O, each d_model x d_model (+ bias)."""
    return 4 * d_model * d_model + (4 * d_model if bias else 0)


def per_head_attention_params(d_model: int, n_heads: int) -> int:
    """One head's share of the four matrices: W_Q^i, W_K^i, W_V^i (d_model x d_k) and
    its d_k rows of W_O (d_k x d_model), biases left out."""
    check_divisible(d_model, n_heads)
    return 4 * d_model * (d_model // n_heads)


def feed_forward_params(d_model: int, d_ff: int) -> int:
    """W_1 (d_model x d_ff) + b_1 + W_2 (d_ff x d_model) + b_2."""
    return 2 * d_model * d_ff + d_ff + d_model


def layer_norm_params(d_model: int) -> int:
    return 2 * d_model  # gamma and beta


def count_from_config(cfg: TransformerConfig) -> dict[str, int]:
    """Analytic parameter count of `Transformer(cfg)`, by part; key 'total' sums them."""
    d = cfg.d_model
    enc_layer = attention_params(d) + feed_forward_params(d, cfg.d_ff) + 2 * layer_norm_params(d)
    dec_layer = 2 * attention_params(d) + feed_forward_params(d, cfg.d_ff) + 3 * layer_norm_params(d)
    parts = {
        "src_embedding": cfg.src_vocab_size * d,
        "tgt_embedding": 0 if cfg.share_embeddings else cfg.tgt_vocab_size * d,
        "positional": 2 * cfg.max_len * d if cfg.positional == "learned" else 0,
        "encoder": cfg.n_encoder_layers * enc_layer,
        "decoder": cfg.n_decoder_layers * dec_layer,
        "final_norms": 2 * layer_norm_params(d) if cfg.norm_first else 0,
        "generator": 0 if cfg.tie_output else cfg.tgt_vocab_size * d,
    }
    parts["total"] = sum(parts.values())
    return parts
