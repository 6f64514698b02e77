"""Checkers for lesson 08, encoder, decoder and cross-attention.

check_cross_attention_shapes(shapes)   shapes(B, S, T, d_model, n_heads) -> dict of shapes:
                                       "Q", "K", "V" per head, "weights", "out"
check_decoder_layer_params(count)      count(d_model, d_ff) -> parameters of one decoder layer
check_model_params(count)              count(vocab_size, d_model, d_ff, n_layers, share_embeddings,
                                       tie_output) -> parameters of the whole Transformer
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..attention import MultiHeadAttention
from ..layers import DecoderLayer
from ..model import Transformer, TransformerConfig
from ..params import count_from_config, count_parameters
from . import CheckResult, checker, fresh_generator, run_trials


def _randint(g: torch.Generator, lo: int, hi: int) -> int:
    """An int in [lo, hi]."""
    return int(torch.randint(lo, hi + 1, (1,), generator=g))


def _distinct_sizes(g: torch.Generator) -> tuple[int, int, int, int, int]:
    """B, S, T, n_heads, d_k all different, so that a swapped axis cannot hide."""
    while True:
        B, S, T, h, d_k = (_randint(g, 2, 9) for _ in range(5))
        if len({B, S, T, h, d_k}) == 5:
            return B, S, T, h * d_k, h


KEYS = ("Q", "K", "V", "weights", "out")


def reference_cross_attention_shapes(B: int, S: int, T: int, d_model: int, n_heads: int) -> dict:
    """The shapes a real cross-attention produces: queries from T decoder positions,
    keys and values from S encoder positions."""
    mha = MultiHeadAttention(d_model, n_heads)
    x, memory = torch.randn(B, T, d_model), torch.randn(B, S, d_model)  # decoder states, encoder output
    with torch.no_grad():
        out = mha(x, memory, memory, need_weights=True)
        return {
            "Q": tuple(mha.split_heads(mha.w_q(x)).shape),  # (B, h, T, d_k)
            "K": tuple(mha.split_heads(mha.w_k(memory)).shape),  # (B, h, S, d_k)
            "V": tuple(mha.split_heads(mha.w_v(memory)).shape),  # (B, h, S, d_k)
            "weights": tuple(mha.attn_weights.shape),  # (B, h, T, S)
            "out": tuple(out.shape),  # (B, T, d_model)
        }


@checker()
def check_cross_attention_shapes(shapes: Callable[[int, int, int, int, int], dict]) -> CheckResult:
    """`shapes(B, S, T, d_model, n_heads)` against a real cross-attention, on fresh random sizes."""
    g = fresh_generator()

    def trial(B: int, S: int, T: int, d_model: int, h: int) -> Callable[[], str | None]:
        def run() -> str | None:
            got = shapes(B, S, T, d_model, h)
            if not isinstance(got, dict) or any(k not in got for k in KEYS):
                return f"return a dict with the keys {KEYS}, got {got!r}"
            exp = reference_cross_attention_shapes(B, S, T, d_model, h)
            where = f"B={B}, S={S}, T={T}, d_model={d_model}, n_heads={h}"
            for key in KEYS:
                try:
                    g_shape = tuple(int(n) for n in got[key])
                except TypeError:
                    return f"{key!r} should be a tuple of ints, got {got[key]!r}"
                if g_shape == exp[key]:
                    continue
                d_k = d_model // h
                if key in ("K", "V") and g_shape == (B, h, T, d_k):
                    return (
                        f"{key} has T={T} positions, but K and V are projections of the encoder output "
                        f"(the memory), so they have one row per SOURCE position: S={S} ({where})"
                    )
                if key == "Q" and g_shape == (B, h, S, d_k):
                    return f"Q comes from the decoder: one query per TARGET position, T={T}, not S ({where})"
                if key == "weights" and g_shape == (B, h, S, T):
                    return (
                        "the weights are transposed: one row per query (target position) and one column "
                        f"per key (source position), so (B, h, T, S) ({where})"
                    )
                if key == "out" and g_shape[:2] == (B, S):
                    return f"the output has one vector per query, so T={T} positions, not S ({where})"
                return f"{key!r} should be {exp[key]} for {where}, got {g_shape}"
            return None

        return run

    sizes = [_distinct_sizes(g) for _ in range(4)]
    return run_trials(
        "cross-attention shapes",
        [trial(*s) for s in sizes],
        "right on 4 fresh random sizes: T queries from the decoder, S keys and values from the encoder.",
    )


@checker(count_parameters, DecoderLayer)
def check_decoder_layer_params(count: Callable[[int, int], int]) -> CheckResult:
    """`count(d_model, d_ff)` against the parameters of a real `DecoderLayer`."""
    g = fresh_generator()

    def trial(d_model: int, d_ff: int) -> Callable[[], str | None]:
        def run() -> str | None:
            got = count(d_model, d_ff)
            expected = count_parameters(DecoderLayer(d_model, 2, d_ff, dropout=0.0))
            if isinstance(got, bool) or not isinstance(got, int):
                return f"return an int, got {type(got).__name__} {got!r}"
            if got == expected:
                return None
            d, f = d_model, d_ff
            attn, ffn, ln = 4 * d * d + 4 * d, 2 * d * f + f + d, 2 * d
            where = f"(d_model={d}, d_ff={f}: expected {expected}, got {got})"
            if got == attn + ffn + 2 * ln:
                return f"that is an encoder layer: a decoder layer has a second attention block, cross-attention {where}"
            if got == 2 * attn + ffn + 2 * ln:
                return f"a decoder layer has three LayerNorms (one per sublayer), each with gamma and beta {where}"
            if got == 2 * attn + ffn:
                return f"the three LayerNorms are missing: each has gamma and beta, 2 * d_model {where}"
            if got == 2 * (4 * d * d) + 2 * d * f + 3 * ln:
                return f"the biases are missing: 4 * d_model per attention block, d_ff + d_model in the FFN {where}"
            if got == 2 * 3 * d * d + 2 * 3 * d + ffn + 3 * ln:
                return f"W_O is missing: each attention block has four d_model x d_model matrices {where}"
            return f"not the count of DecoderLayer {where}"

        return run

    sizes = [(8 * _randint(g, 1, 32), 16 * _randint(g, 1, 64)) for _ in range(4)]
    return run_trials(
        "decoder layer parameters",
        [trial(*s) for s in sizes],
        "right on 4 fresh (d_model, d_ff): two attention blocks, one FFN, three LayerNorms.",
    )


@checker(count_from_config, count_parameters, Transformer)
def check_model_params(count: Callable[..., int]) -> CheckResult:
    """`count(vocab_size, d_model, d_ff, n_layers, share_embeddings, tie_output)` against
    `count_from_config` (itself tested against the parameters of a built `Transformer`)."""
    g = fresh_generator()

    def trial(V: int, d: int, f: int, N: int, share: bool, tie: bool) -> Callable[[], str | None]:
        def run() -> str | None:
            got = count(V, d, f, N, share, tie)
            cfg = TransformerConfig(
                V,
                d_model=d,
                d_ff=f,
                n_heads=2,
                n_encoder_layers=N,
                n_decoder_layers=N,
                share_embeddings=share,
                tie_output=tie,
            )
            expected = count_from_config(cfg)["total"]
            if isinstance(got, bool) or not isinstance(got, int):
                return f"return an int, got {type(got).__name__} {got!r}"
            if got == expected:
                return None
            where = (
                f"(vocab_size={V}, d_model={d}, d_ff={f}, N={N}, share_embeddings={share}, "
                f"tie_output={tie}: expected {expected}, got {got})"
            )
            table = V * d
            if got == expected + table and (share or tie):
                return f"one vocabulary table counted twice: a shared or tied matrix is one set of parameters {where}"
            if got == expected - table:
                return f"one vocabulary table is missing: untied or unshared matrices each count {where}"
            if abs(got - expected) == 2 * table:
                return f"two vocabulary tables off: count one per distinct matrix (embeddings, generator) {where}"
            dec_ln = 2 * d
            if abs(got - expected) in (N * dec_ln, 2 * N * dec_ln):
                return f"check the LayerNorms: two per encoder layer, three per decoder layer {where}"
            return f"not the count of Transformer(cfg) {where}"

        return run

    flags = [(True, True), (False, True), (False, False), (True, False)]
    cases = [
        (_randint(g, 20, 500), 8 * _randint(g, 1, 16), 16 * _randint(g, 1, 32), _randint(g, 1, 6), s, t)
        for s, t in flags
    ]
    return run_trials(
        "Transformer parameters",
        [trial(*c) for c in cases],
        "right on 4 fresh configs, with and without shared embeddings and a tied output layer.",
    )
