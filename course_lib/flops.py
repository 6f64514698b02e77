"""Counting the floating-point operations of the Transformer analytically, from its config.

Convention (the one used for "model FLOP utilisation", Chowdhery et al., 2022, appendix B):
only matrix multiplications are counted, and one multiply-add is 2 FLOPs, so
(m x k) @ (k x n) costs 2 m k n. Softmax, LayerNorm, dropout and the other element-wise
operations are left out: they are a few percent of the total at any useful size. The
attention scores are counted for the full T_q x T_k grid, masked or not, since that is what
the kernels compute.

Backward costs twice the forward: each matmul y = x W needs one matmul of the same size for
dL/dx and one for dL/dW, so a training step is 3 x forward (Kaplan et al., 2020 write it as
6 N FLOPs per token for a model with N parameters, the `approx_training_flops` rule).
"""

from __future__ import annotations

from .model import TransformerConfig
from .validate import check_int


def _check_len(value: object, name: str) -> int:
    return check_int(value, name, 1)


def matmul_flops(m: int, k: int, n: int) -> int:
    """(m x k) @ (k x n): m n dot products of length k, 2 m k n FLOPs."""
    return 2 * m * k * n


def attention_flops(d_model: int, t_q: int, t_k: int, t_kv_new: int | None = None) -> int:
    """One multi-head attention block (section 3.2.2) for t_q queries over t_k keys.

    t_kv_new: how many keys/values are projected in this call (default t_k); with a KV
    cache only the new tokens are (self-attention: 1 per step; cached cross-attention: 0).
    The head count does not matter: h heads of width d_k = d_model / h cost the same.
    """
    t_kv_new = t_k if t_kv_new is None else t_kv_new
    d = d_model
    projections = matmul_flops(t_q, d, d) * 2 + matmul_flops(t_kv_new, d, d) * 2  # W_Q, W_O; W_K, W_V
    scores = matmul_flops(t_q, d, t_k)  # Q K^T, all heads together
    mix = matmul_flops(t_q, t_k, d)  # weights @ V
    return projections + scores + mix


def feed_forward_flops(d_model: int, d_ff: int, t: int) -> int:
    """FFN(x) = max(0, x W_1 + b_1) W_2 + b_2 at t positions (equation 2)."""
    return matmul_flops(t, d_model, d_ff) + matmul_flops(t, d_ff, d_model)


def forward_flops(cfg: TransformerConfig, src_len: int, tgt_len: int, batch_size: int = 1) -> dict[str, int]:
    """FLOPs of `Transformer(cfg)(src, tgt)` for src (B, src_len) and tgt (B, tgt_len), by part.

    Keys: encoder_attention, encoder_ffn, decoder_self_attention, decoder_cross_attention,
    decoder_ffn, generator (the output projection to the vocabulary), and total.
    """
    S, T, B = (
        _check_len(src_len, "src_len"),
        _check_len(tgt_len, "tgt_len"),
        _check_len(batch_size, "batch_size"),
    )
    d, n_enc, n_dec = cfg.d_model, cfg.n_encoder_layers, cfg.n_decoder_layers
    parts = {
        "encoder_attention": n_enc * attention_flops(d, S, S),
        "encoder_ffn": n_enc * feed_forward_flops(d, cfg.d_ff, S),
        "decoder_self_attention": n_dec * attention_flops(d, T, T),
        "decoder_cross_attention": n_dec * attention_flops(d, T, S),
        "decoder_ffn": n_dec * feed_forward_flops(d, cfg.d_ff, T),
        "generator": matmul_flops(T, d, cfg.tgt_vocab_size),
    }
    parts = {k: B * v for k, v in parts.items()}
    parts["total"] = sum(parts.values())
    return parts


def training_step_flops(cfg: TransformerConfig, src_len: int, tgt_len: int, batch_size: int = 1) -> int:
    """Forward plus backward of one batch: 3 x the forward (backward = 2 x forward)."""
    return 3 * forward_flops(cfg, src_len, tgt_len, batch_size)["total"]


def generation_flops(
    cfg: TransformerConfig, src_len: int, n_tokens: int, use_cache: bool = True, batch_size: int = 1
) -> int:
    """Greedy generation of n_tokens after the start token: the encoder once, then one decoder
    call per token, each followed by the output projection of the last position only.

    With the cache, step t (t = 1 .. n_tokens) feeds one token: self-attention projects it
    and attends over t keys; cross-attention projects the encoder output once (first step)
    and reuses it. Without the cache, step t runs the decoder again over the whole prefix of t.
    """
    S, N, B = (
        _check_len(src_len, "src_len"),
        _check_len(n_tokens, "n_tokens"),
        _check_len(batch_size, "batch_size"),
    )
    d, n_enc, n_dec = cfg.d_model, cfg.n_encoder_layers, cfg.n_decoder_layers
    total = n_enc * (attention_flops(d, S, S) + feed_forward_flops(d, cfg.d_ff, S))
    for t in range(1, N + 1):
        if use_cache:
            cross_new = S if t == 1 else 0
            layer = attention_flops(d, 1, t, 1) + attention_flops(d, 1, S, cross_new)
            layer += feed_forward_flops(d, cfg.d_ff, 1)
        else:
            layer = attention_flops(d, t, t) + attention_flops(d, t, S) + feed_forward_flops(d, cfg.d_ff, t)
        total += n_dec * layer + matmul_flops(1, d, cfg.tgt_vocab_size)
    return B * total


def approx_training_flops(n_params: int, n_tokens: int) -> int:
    """The rule of thumb C = 6 N D (Kaplan et al., 2020): 2 N per token forward, 4 N backward.

    It leaves out the attention scores (which grow with the sequence length) and counts the
    embedding lookups as if they were matmuls. In an encoder-decoder a source token meets only
    the encoder's parameters and a target token only the decoder's, so with equal lengths
    D is the number of tokens on one side.
    """
    return 6 * n_params * n_tokens
