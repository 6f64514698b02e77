"""Checkers for lesson 08, encoder, decoder and cross-attention.

check_cross_attention_shapes(shapes)   shapes(B, S, T, d_model, n_heads) -> dict of shapes:
                                       "Q", "K", "V" per head, "weights", "out"
check_decoder_layer_params(count)      count(d_model, d_ff) -> parameters of one decoder layer
check_model_params(count)              count(vocab_size, d_model, d_ff, n_layers, share_embeddings,
                                       tie_output) -> parameters of the whole Transformer
check_decoder_layer(fn)                fn(layer, x, memory, src_keep) -> a post-LN decoder layer's output
                                       from its weights, against DecoderLayer and nn.TransformerDecoderLayer
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..attention import MultiHeadAttention, copy_mha_to_torch, scaled_dot_product_attention
from ..layers import DecoderLayer, FeedForward, LayerNorm
from ..masks import causal_mask
from ..model import Transformer, TransformerConfig
from ..params import count_from_config, count_parameters
from . import CheckResult, checker, compare, fresh_generator, run_trials


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


def _torch_decoder_layer(ours: DecoderLayer) -> nn.TransformerDecoderLayer:
    """PyTorch's decoder layer with `ours`' weights (post-LN, no dropout, float64)."""
    d_model, h, d_ff = ours.self_attn.d_model, ours.self_attn.n_heads, ours.ff.w_1.out_features
    theirs = nn.TransformerDecoderLayer(d_model, h, d_ff, dropout=0.0, batch_first=True).double().eval()
    with torch.no_grad():
        copy_mha_to_torch(ours.self_attn, theirs.self_attn)
        copy_mha_to_torch(ours.cross_attn, theirs.multihead_attn)
        for mine, their in ((ours.ff.w_1, theirs.linear1), (ours.ff.w_2, theirs.linear2)):
            their.weight.copy_(mine.weight)
            their.bias.copy_(mine.bias)
        for i in (1, 2, 3):
            getattr(theirs, f"norm{i}").weight.copy_(getattr(ours, f"norm{i}").gamma)
            getattr(theirs, f"norm{i}").bias.copy_(getattr(ours, f"norm{i}").beta)
    return theirs


@checker(
    DecoderLayer,
    MultiHeadAttention,
    FeedForward,
    LayerNorm,
    scaled_dot_product_attention,
    nn.TransformerDecoderLayer,
    nn.TransformerDecoder,
    nn.MultiheadAttention,
    F.multi_head_attention_forward,
    F.scaled_dot_product_attention,
    label="decoder layer",
)
def check_decoder_layer(fn: Callable[[DecoderLayer, Tensor, Tensor, Tensor], Tensor]) -> CheckResult:
    """fn(layer, x (B, T, d_model), memory (B, S, d_model), src_keep (B, S) bool) -> (B, T, d_model):
    the post-LN decoder layer computed from `layer`'s weights, against course_lib's DecoderLayer
    and PyTorch's nn.TransformerDecoderLayer on the same weights, in float64."""
    g = fresh_generator()

    def trial() -> str | None:
        B, S, T = _randint(g, 2, 4), _randint(g, 3, 7), _randint(g, 3, 7)
        h, d_k = _randint(g, 2, 4), _randint(g, 2, 5)
        d_model, d_ff = h * d_k, _randint(g, 8, 24)
        with torch.random.fork_rng():
            torch.manual_seed(_randint(g, 0, 2**31 - 2))
            layer = DecoderLayer(d_model, h, d_ff, dropout=0.0).double().eval()
            with torch.no_grad():  # gamma and beta away from 1 and 0, so that a mix-up cannot hide
                for norm in (layer.norm1, layer.norm2, layer.norm3):
                    norm.gamma.add_(0.3 * torch.randn(d_model, dtype=torch.float64))
                    norm.beta.add_(0.3 * torch.randn(d_model, dtype=torch.float64))
        x = torch.randn(B, T, d_model, generator=g, dtype=torch.float64)
        memory = torch.randn(B, S, d_model, generator=g, dtype=torch.float64)
        lengths = torch.randint(1, S + 1, (B,), generator=g)
        lengths[0] = S - 1  # at least one row with padding
        src_keep = torch.arange(S)[None, :] < lengths[:, None]  # (B, S) True = a real source token
        causal, mem_mask = causal_mask(T), src_keep[:, None, None, :]
        with torch.no_grad():
            expected = layer(x, memory, causal, mem_mask)
            ref = _torch_decoder_layer(layer)(
                x, memory, tgt_mask=~causal, memory_key_padding_mask=~src_keep
            )  # torch's masks: True = blocked
            assert torch.allclose(expected, ref, atol=1e-10), "course_lib and torch disagree"
            got = fn(layer, x.clone(), memory.clone(), src_keep.clone())
        where = f"(B={B}, T={T}, S={S}, d_model={d_model}, h={h})"
        hint = compare(got, ref, f"the output {where}", atol=1e-8, rtol=1e-6)
        if hint is None or not isinstance(got, Tensor) or got.shape != ref.shape:
            return hint
        got = got.detach().double()

        def close(y: Tensor) -> bool:
            return torch.allclose(got, y, atol=1e-8, rtol=1e-6)

        with torch.no_grad():
            pre = DecoderLayer(d_model, h, d_ff, dropout=0.0, norm_first=True).double().eval()
            pre.load_state_dict(layer.state_dict())
            if close(pre(x, memory, causal, mem_mask)):
                return (
                    "that is a pre-LN layer (x + Sublayer(LayerNorm(x))); the paper's layer is post-LN: "
                    "x = LayerNorm(x + Sublayer(x)) after each of the three sublayers"
                )
            if close(layer(x, memory, None, mem_mask)):
                return "position i sees the positions after it: mask self-attention with the causal mask"
            if close(layer(x, memory, causal, None)):
                return "padded source positions receive attention: mask cross-attention's keys with src_keep"
            if close(layer(x, memory, None, None)):
                return "no masks used: self-attention needs the causal mask, cross-attention src_keep"
        return hint

    return run_trials(
        "decoder layer",
        [trial] * 3,
        "equal to course_lib's DecoderLayer and PyTorch's nn.TransformerDecoderLayer (float64). Well done!",
    )
