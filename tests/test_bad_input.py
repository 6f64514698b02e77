"""Bad input gets one clear line naming what was expected, never a deep traceback from torch.

`CASES` is the table: (case name, callable, expected exception type, regex the message must
match). A wrong *type* raises TypeError (the library's `InputTypeError`, which `except
ValueError` also catches); a wrong value, dtype or shape raises a ValueError that is not a
TypeError. The widgets, the call count of the token-id check, and the inputs that must keep
working (int32 ids, autocast) have their own tests below.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch

import course_lib.model as model_module
from course_lib.attention import (
    KVCache,
    MultiHeadAttention,
    keep_attention_weights,
    scaled_dot_product_attention,
)
from course_lib.decode import beam_search, greedy_decode, next_token_distribution, sample
from course_lib.layers import DecoderLayer, EncoderLayer, FeedForward, LayerNorm
from course_lib.masks import (
    causal_mask,
    combine_masks,
    padding_mask,
    to_key_padding_mask,
    to_torch_attn_mask,
)
from course_lib.model import TokenEmbedding, Transformer, TransformerConfig
from course_lib.params import per_head_attention_params
from course_lib.positional import (
    LearnedPositionalEncoding,
    SinusoidalPositionalEncoding,
    apply_rope,
    sinusoidal_encoding,
)
from course_lib.validate import InputTypeError
from course_lib.widgets import (
    AttentionExplorer,
    PatternExplorer,
    PositionalEncodingExplorer,
    SamplingExplorer,
    word_embedder,
)

NAN, INF = float("nan"), float("inf")
SOS, EOS = 1, 2


def small_cfg(**kw) -> TransformerConfig:
    kw = {"d_model": 8, "n_heads": 2, "d_ff": 16, "n_encoder_layers": 1, "n_decoder_layers": 1, **kw}
    return TransformerConfig(10, 12, **kw)


def small_model(**kw) -> Transformer:
    torch.manual_seed(0)
    return Transformer(small_cfg(dropout=0.0, **kw)).eval()


MODEL = small_model()
SRC = torch.tensor([[3, 4, 5, 0]])
TGT = torch.tensor([[1, 6, 7]])


def x(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(*shape).to(dtype)


def qkv(dq=torch.float32, dk=torch.float32, dv=torch.float32, d=4):
    return x(2, 3, d, dtype=dq), x(2, 5, d, dtype=dk), x(2, 5, d, dtype=dv)


def filled_cache(mha: MultiHeadAttention, B: int = 2, dtype: torch.dtype = torch.float32) -> KVCache:
    cache = KVCache()
    with torch.no_grad():
        mha(x(B, 1, mha.d_model, dtype=dtype), cache=cache)
    return cache


def reuse_cache(fill: MultiHeadAttention, use: MultiHeadAttention, B: int, dtype=torch.float32) -> None:
    cache = filled_cache(fill)
    use(x(B, 1, use.d_model, dtype=dtype), cache=cache)


def model_cache_other_batch() -> None:
    memory = MODEL.encode(torch.tensor([[3, 4], [5, 6]]))
    cache = MODEL.new_cache()
    MODEL.decode(torch.tensor([[1], [1]]), memory, cache=cache)
    MODEL.decode(torch.tensor([[1], [1], [1]]), MODEL.encode(torch.tensor([[3, 4]] * 3)), cache=cache)


def nan_model_sample() -> None:
    m = small_model()
    with torch.no_grad():
        m.generator.weight.fill_(NAN)  # tied to the target embedding: NaN logits
    sample(m, SRC, SOS, EOS, 4)


def enter(cm) -> None:
    with cm:
        pass


V = ValueError
T = TypeError
F32, F64, F16 = torch.float32, torch.float64, torch.float16
EXPECT_ID_DTYPE = r"must hold integer token ids of dtype torch\.long"
EXPECT_FLOAT = r"must be a floating-point tensor \(e\.g\. torch\.float32\).*\.float\(\)"
EXPECT_F32 = r"expected torch\.float32; convert the input with .*\.to\(torch\.float32\)"
EXPECT_DROPOUT = r"dropout must be a probability in \[0, 1\)"
EXPECT_FINITE = r"expected finite scores"
EXPECT_CACHE = r"expected the same batch size, heads, d_k, dtype and device.*model\.new_cache\(\)"

Case = tuple[str, Callable[[], object], type[Exception], str]
CASES: list[Case] = [
    # --- wrong dtypes into attention and LayerNorm ----------------------------------------
    ("sdpa int q", lambda: scaled_dot_product_attention(*qkv(dq=torch.long)), V, "q " + EXPECT_FLOAT),
    ("sdpa bool k", lambda: scaled_dot_product_attention(*qkv(dk=torch.bool)), V, "k " + EXPECT_FLOAT),
    ("sdpa int v", lambda: scaled_dot_product_attention(*qkv(dv=torch.int32)), V, "v " + EXPECT_FLOAT),
    (
        "sdpa float16 q, float64 k",
        lambda: scaled_dot_product_attention(*qkv(dq=F16, dk=F64)),
        V,
        r"q, k and v must share one dtype.*expected one float dtype",
    ),
    (
        "mha int input",
        lambda: MultiHeadAttention(8, 2)(torch.ones(2, 3, 8, dtype=torch.long)),
        V,
        EXPECT_FLOAT,
    ),
    (
        "mha bool input",
        lambda: MultiHeadAttention(8, 2)(torch.ones(2, 3, 8, dtype=torch.bool)),
        V,
        EXPECT_FLOAT,
    ),
    (
        "mha float64 input, float32 module",
        lambda: MultiHeadAttention(8, 2)(x(2, 3, 8, dtype=F64)),
        V,
        EXPECT_F32,
    ),
    (
        "mha float64 key, float32 module",
        lambda: MultiHeadAttention(8, 2)(x(2, 3, 8), x(2, 4, 8, dtype=F64)),
        V,
        r"key has dtype torch\.float64 .* expected torch\.float32.*model\.double\(\)",
    ),
    ("layernorm int input", lambda: LayerNorm(8)(torch.ones(2, 8, dtype=torch.long)), V, "x " + EXPECT_FLOAT),
    (
        "layernorm bool input",
        lambda: LayerNorm(8)(torch.ones(2, 8, dtype=torch.bool)),
        V,
        "x " + EXPECT_FLOAT,
    ),
    (
        "layernorm (teaching path) int input",
        lambda: LayerNorm(8, fused=False)(torch.ones(2, 8, dtype=torch.int8)),
        V,
        EXPECT_FLOAT,
    ),
    ("layernorm float64 input, float32 module", lambda: LayerNorm(8)(x(2, 8, dtype=F64)), V, EXPECT_F32),
    ("feedforward float16 input", lambda: FeedForward(8, 16)(x(2, 3, 8, dtype=F16)), V, EXPECT_F32),
    (
        "feedforward int input",
        lambda: FeedForward(8, 16)(torch.ones(2, 3, 8, dtype=torch.long)),
        V,
        EXPECT_FLOAT,
    ),
    (
        "learned PE float64 input",
        lambda: LearnedPositionalEncoding(8, 10)(x(1, 3, 8, dtype=F64)),
        V,
        EXPECT_F32,
    ),
    (
        "sinusoidal PE int input",
        lambda: SinusoidalPositionalEncoding(8, 10)(torch.ones(1, 3, 8, dtype=torch.long)),
        V,
        EXPECT_FLOAT,
    ),
    ("rope int input", lambda: apply_rope(torch.ones(3, 8, dtype=torch.long)), V, EXPECT_FLOAT),
    # --- token ids: torch.long (int32 works too) ------------------------------------------
    ("forward uint8 src", lambda: MODEL(SRC.to(torch.uint8), TGT), V, "src " + EXPECT_ID_DTYPE),
    ("forward int8 tgt", lambda: MODEL(SRC, TGT.to(torch.int8)), V, "tgt " + EXPECT_ID_DTYPE),
    ("forward int16 src", lambda: MODEL(SRC.to(torch.int16), TGT), V, "src " + EXPECT_ID_DTYPE),
    ("forward bool src", lambda: MODEL(SRC.bool(), TGT), V, EXPECT_ID_DTYPE),
    ("forward float src", lambda: MODEL(SRC.float(), TGT), V, EXPECT_ID_DTYPE),
    ("encode uint8 src", lambda: MODEL.encode(SRC.to(torch.uint8)), V, EXPECT_ID_DTYPE + r".*src\.long\(\)"),
    ("decode int8 tgt", lambda: MODEL.decode(TGT.to(torch.int8), x(1, 4, 8)), V, EXPECT_ID_DTYPE),
    ("token embedding uint8", lambda: TokenEmbedding(10, 8)(SRC.to(torch.uint8)), V, EXPECT_ID_DTYPE),
    (
        "greedy_decode uint8 src",
        lambda: greedy_decode(MODEL, SRC.to(torch.uint8), SOS, EOS, 3),
        V,
        EXPECT_ID_DTYPE,
    ),
    ("forward list src", lambda: MODEL([[3, 4]], TGT), T, r"src must be a torch\.Tensor, got list"),
    # --- a negative (or fractional) positional offset -------------------------------------
    (
        "sinusoidal PE offset -1",
        lambda: SinusoidalPositionalEncoding(8, 10)(x(1, 3, 8), offset=-1),
        V,
        r"expected an integer offset >= 0, got offset=-1",
    ),
    (
        "learned PE offset -2",
        lambda: LearnedPositionalEncoding(8, 10)(x(1, 3, 8), offset=-2),
        V,
        r"expected an integer offset >= 0",
    ),
    (
        "sinusoidal PE offset 1.5",
        lambda: SinusoidalPositionalEncoding(8, 10)(x(1, 3, 8), offset=1.5),
        T,
        r"expected an integer offset >= 0, got offset=1\.5 \(a float\)",
    ),
    ("rope offset -1", lambda: apply_rope(x(3, 8), offset=-1), V, r"expected an integer offset >= 0"),
    ("causal_mask offset -1", lambda: causal_mask(3, offset=-1), V, r"expected an integer offset >= 0"),
    ("causal_mask offset 0.5", lambda: causal_mask(3, offset=0.5), T, r"expected an integer offset >= 0"),
    # --- pad_id outside the vocabulary ----------------------------------------------------
    (
        "config pad_id = vocab size",
        lambda: small_cfg(pad_id=10),
        V,
        r"expected an integer pad_id in \[0, 9\]",
    ),
    ("config pad_id -1", lambda: small_cfg(pad_id=-1), V, r"expected an integer pad_id in \[0, 9\]"),
    (
        "config pad_id outside the smaller vocabulary",
        lambda: TransformerConfig(20, 10, d_model=8, n_heads=2, pad_id=15),
        V,
        r"expected an integer pad_id in \[0, 9\] \(an id of both vocabularies\), got pad_id=15",
    ),
    ("config pad_id 0.0", lambda: small_cfg(pad_id=0.0), T, r"expected an integer pad_id in \[0, 9\]"),
    ("padding_mask pad_id -1", lambda: padding_mask(SRC, -1), V, r"expected an integer pad_id >= 0"),
    ("padding_mask pad_id 0.5", lambda: padding_mask(SRC, 0.5), T, r"expected an integer pad_id >= 0"),
    (
        "to_key_padding_mask pad_id -3",
        lambda: to_key_padding_mask(SRC, -3),
        V,
        r"expected an integer pad_id >= 0",
    ),
    # --- d_k = 0 ---------------------------------------------------------------------------
    (
        "mha d_model < n_heads",
        lambda: MultiHeadAttention(2, 4),
        V,
        r"d_k = d_model // n_heads = 0.*expected d_model >= n_heads",
    ),
    ("config d_model < n_heads", lambda: small_cfg(d_model=4, n_heads=8), V, r"expected d_model >= n_heads"),
    (
        "per-head params d_model < n_heads",
        lambda: per_head_attention_params(3, 4),
        V,
        r"expected d_model >= n_heads",
    ),
    (
        "sdpa q and k with last dim 0",
        lambda: scaled_dot_product_attention(x(2, 3, 0), x(2, 5, 0), x(2, 5, 4)),
        V,
        r"d_k = 0 .*expected d_k >= 1",
    ),
    # --- zero or negative sizes ------------------------------------------------------------
    ("layernorm d_model 0", lambda: LayerNorm(0), V, r"expected an integer d_model >= 1, got d_model=0"),
    ("layernorm d_model -4", lambda: LayerNorm(-4), V, r"expected an integer d_model >= 1"),
    ("feedforward d_ff 0", lambda: FeedForward(16, 0), V, r"expected an integer d_ff >= 1"),
    ("feedforward d_model -1", lambda: FeedForward(-1, 32), V, r"expected an integer d_model >= 1"),
    ("mha d_model 0", lambda: MultiHeadAttention(0, 2), V, r"expected an integer d_model >= 1"),
    ("mha n_heads 0", lambda: MultiHeadAttention(8, 0), V, r"expected an integer n_heads >= 1"),
    ("mha n_heads -2", lambda: MultiHeadAttention(8, -2), V, r"expected an integer n_heads >= 1"),
    ("encoder layer d_ff 0", lambda: EncoderLayer(16, 4, 0), V, r"expected an integer d_ff >= 1"),
    (
        "sinusoidal PE d_model 0",
        lambda: SinusoidalPositionalEncoding(0),
        V,
        r"expected an integer d_model >= 1",
    ),
    (
        "sinusoidal PE max_len 0",
        lambda: SinusoidalPositionalEncoding(8, 0),
        V,
        r"expected an integer max_len >= 1",
    ),
    (
        "learned PE max_len -1",
        lambda: LearnedPositionalEncoding(8, -1),
        V,
        r"expected an integer max_len >= 1",
    ),
    (
        "learned PE d_model 0",
        lambda: LearnedPositionalEncoding(0, 10),
        V,
        r"expected an integer d_model >= 1",
    ),
    (
        "sinusoidal_encoding max_len 0",
        lambda: sinusoidal_encoding(0, 8),
        V,
        r"expected an integer max_len >= 1",
    ),
    ("sinusoidal_encoding odd d_model", lambda: sinusoidal_encoding(5, 7), V, r"d_model must be even"),
    ("token embedding vocab 0", lambda: TokenEmbedding(0, 8), V, r"expected an integer vocab_size >= 1"),
    ("config d_ff 0", lambda: small_cfg(d_ff=0), V, r"expected an integer d_ff >= 1"),
    (
        "config n_encoder_layers -1",
        lambda: small_cfg(n_encoder_layers=-1),
        V,
        r"expected an integer n_encoder_layers >= 0",
    ),
    ("causal_mask T 0", lambda: causal_mask(0), V, r"expected an integer T >= 1 \(the sequence length\)"),
    # --- floats (and bools) where ints belong -----------------------------------------------
    (
        "mha d_model 8.0",
        lambda: MultiHeadAttention(8.0, 2),
        T,
        r"expected an integer d_model >= 1, got d_model=8\.0 \(a float\)",
    ),
    ("mha n_heads 2.0", lambda: MultiHeadAttention(8, 2.0), T, r"expected an integer n_heads >= 1"),
    (
        "mha d_model True",
        lambda: MultiHeadAttention(True, 1),
        T,
        r"expected an integer d_model >= 1, got d_model=True \(a bool\)",
    ),
    ("causal_mask 2.5", lambda: causal_mask(2.5), T, r"expected an integer T >= 1"),
    ("causal_mask True", lambda: causal_mask(True), T, r"expected an integer T >= 1"),
    ("layernorm 16.0", lambda: LayerNorm(16.0), T, r"expected an integer d_model >= 1"),
    ("layernorm True", lambda: LayerNorm(True), T, r"expected an integer d_model >= 1"),
    ("feedforward d_ff 32.0", lambda: FeedForward(16, 32.0), T, r"expected an integer d_ff >= 1"),
    ("feedforward d_ff True", lambda: FeedForward(16, True), T, r"expected an integer d_ff >= 1"),
    (
        "sinusoidal PE d_model 16.0",
        lambda: SinusoidalPositionalEncoding(16.0),
        T,
        r"expected an integer d_model >= 1",
    ),
    (
        "sinusoidal_encoding max_len 10.0",
        lambda: sinusoidal_encoding(10.0, 8),
        T,
        r"expected an integer max_len >= 1",
    ),
    ("token embedding d_model 8.0", lambda: TokenEmbedding(10, 8.0), T, r"expected an integer d_model >= 1"),
    ("config d_model 16.0", lambda: small_cfg(d_model=16.0), T, r"expected an integer d_model >= 1"),
    (
        "config src_vocab_size 10.0",
        lambda: TransformerConfig(10.0),
        T,
        r"expected an integer src_vocab_size >= 1",
    ),
    (
        "config layers 1.5",
        lambda: small_cfg(n_decoder_layers=1.5),
        T,
        r"expected an integer n_decoder_layers >= 0",
    ),
    ("config max_len True", lambda: small_cfg(max_len=True), T, r"expected an integer max_len >= 1"),
    (
        "sampling top_k 2.5",
        lambda: next_token_distribution(x(5), top_k=2.5),
        T,
        r"expected an integer top_k >= 1",
    ),
    (
        "sampling top_k True",
        lambda: next_token_distribution(x(5), top_k=True),
        T,
        r"expected an integer top_k >= 1",
    ),
    (
        "beam_size 2.0",
        lambda: beam_search(MODEL, SRC, SOS, EOS, 3, beam_size=2.0),
        T,
        r"expected an integer beam_size >= 1",
    ),
    # --- masks -----------------------------------------------------------------------------
    (
        "combine_masks (3, 3) and (4, 4)",
        lambda: combine_masks(causal_mask(3), causal_mask(4)),
        V,
        r"shapes \(3, 3\), \(4, 4\) do not broadcast together: expected shapes that broadcast",
    ),
    (
        "combine_masks padding (2, 1, 1, 5) and causal (3, 3)",
        lambda: combine_masks(padding_mask(torch.ones(2, 5, dtype=torch.long), 0), causal_mask(3)),
        V,
        r"do not broadcast together: expected shapes that broadcast",
    ),
    (
        "combine_masks float mask",
        lambda: combine_masks(causal_mask(3), torch.ones(3, 3)),
        V,
        r"masks must be boolean \(True = may attend\)",
    ),
    (
        "combine_masks int mask",
        lambda: combine_masks(torch.ones(3, 3, dtype=torch.long)),
        V,
        r"masks must be boolean",
    ),
    (
        "combine_masks list",
        lambda: combine_masks(causal_mask(3), [[True]]),
        T,
        r"masks must be boolean torch\.Tensors \(or None\), got list",
    ),
    (
        "mha float mask",
        lambda: MultiHeadAttention(8, 2)(x(2, 3, 8), mask=torch.ones(3, 3)),
        V,
        r"mask must be a boolean tensor \(True = may attend\)",
    ),
    (
        "sdpa uint8 mask",
        lambda: scaled_dot_product_attention(*qkv(), mask=torch.ones(3, 5, dtype=torch.uint8)),
        V,
        r"mask must be a boolean tensor",
    ),
    (
        "sdpa mask of the wrong shape",
        lambda: scaled_dot_product_attention(*qkv(), mask=causal_mask(3)),
        V,
        r"does not broadcast to \(B, h, T_q, T_k\)",
    ),
    (
        "to_torch_attn_mask float",
        lambda: to_torch_attn_mask(torch.ones(3, 3)),
        V,
        r"mask must be a boolean tensor",
    ),
    # --- a KVCache reused by another run ---------------------------------------------------
    (
        "kv cache, another batch size",
        lambda: reuse_cache(m := MultiHeadAttention(8, 2), m, B=3),
        V,
        r"it holds batch size 2 \(this call: 3\); " + EXPECT_CACHE,
    ),
    (
        "kv cache, another number of heads",
        lambda: reuse_cache(MultiHeadAttention(8, 2), MultiHeadAttention(8, 4), B=2),
        V,
        r"heads 2 \(this call: 4\).*" + EXPECT_CACHE,
    ),
    (
        "kv cache, another d_k",
        lambda: reuse_cache(MultiHeadAttention(8, 2), MultiHeadAttention(16, 2), B=2),
        V,
        r"d_k 4 \(this call: 8\).*" + EXPECT_CACHE,
    ),
    (
        "kv cache, another dtype",
        lambda: reuse_cache(MultiHeadAttention(8, 2), MultiHeadAttention(8, 2).double(), B=2, dtype=F64),
        V,
        r"dtype torch\.float32 \(this call: torch\.float64\).*" + EXPECT_CACHE,
    ),
    ("model cache, another batch size", model_cache_other_batch, V, EXPECT_CACHE),
    (
        "model cache of another model",
        lambda: MODEL.decode(TGT, x(1, 4, 8), cache=small_model(n_decoder_layers=2).new_cache()),
        V,
        r"cache must come from model\.new_cache\(\): a list of 1 DecoderCache",
    ),
    (
        "model cache not a list",
        lambda: MODEL.decode(TGT, x(1, 4, 8), cache=KVCache()),
        T,
        r"cache must come from model\.new_cache\(\)",
    ),
    (
        "mha cache not a KVCache",
        lambda: MultiHeadAttention(8, 2)(x(1, 2, 8), cache=[]),
        T,
        r"cache must be a KVCache, got list",
    ),
    # --- dropout outside [0, 1) ------------------------------------------------------------
    ("mha dropout 1.0", lambda: MultiHeadAttention(8, 2, dropout=1.0), V, EXPECT_DROPOUT + ", got 1\\.0"),
    ("mha dropout -0.1", lambda: MultiHeadAttention(8, 2, dropout=-0.1), V, EXPECT_DROPOUT),
    ("mha dropout NaN", lambda: MultiHeadAttention(8, 2, dropout=NAN), V, EXPECT_DROPOUT),
    ("mha dropout '0.1'", lambda: MultiHeadAttention(8, 2, dropout="0.1"), T, EXPECT_DROPOUT),
    ("feedforward dropout 1.5", lambda: FeedForward(8, 16, dropout=1.5), V, EXPECT_DROPOUT),
    ("encoder layer dropout 1.0", lambda: EncoderLayer(8, 2, 16, dropout=1.0), V, EXPECT_DROPOUT),
    ("decoder layer dropout -1", lambda: DecoderLayer(8, 2, 16, dropout=-1), V, EXPECT_DROPOUT),
    ("sinusoidal PE dropout 1.0", lambda: SinusoidalPositionalEncoding(8, dropout=1.0), V, EXPECT_DROPOUT),
    ("learned PE dropout 2", lambda: LearnedPositionalEncoding(8, 10, dropout=2), V, EXPECT_DROPOUT),
    ("config dropout 1.0", lambda: small_cfg(dropout=1.0), V, EXPECT_DROPOUT),
    ("config dropout True", lambda: small_cfg(dropout=True), T, EXPECT_DROPOUT),
    (
        "sdpa dropout_p 1.0",
        lambda: scaled_dot_product_attention(*qkv(), dropout_p=1.0),
        V,
        r"dropout_p must be a probability in \[0, 1\)",
    ),
    (
        "sdpa dropout_p -0.5",
        lambda: scaled_dot_product_attention(*qkv(), dropout_p=-0.5),
        V,
        r"dropout_p must be a probability in \[0, 1\)",
    ),
    # --- sampling --------------------------------------------------------------------------
    (
        "logits all -inf",
        lambda: next_token_distribution(torch.full((5,), -INF)),
        V,
        r"rule out every token \(all -inf\): expected at least one finite score",
    ),
    (
        "logits with one row all -inf",
        lambda: next_token_distribution(torch.tensor([[0.0, 1.0], [-INF, -INF]])),
        V,
        r"in row \(1,\) \(all -inf\): expected at least one finite score per row",
    ),
    (
        "logits with +inf",
        lambda: next_token_distribution(torch.tensor([0.0, INF, 1.0])),
        V,
        r"contain \+inf .*" + EXPECT_FINITE,
    ),
    (
        "logits with NaN",
        lambda: next_token_distribution(torch.tensor([0.0, NAN, 1.0])),
        V,
        r"contain NaN .*" + EXPECT_FINITE,
    ),
    ("logits of a NaN model, sampled", nan_model_sample, V, r"logits contain NaN .*" + EXPECT_FINITE),
    (
        "int logits",
        lambda: next_token_distribution(torch.tensor([1, 2, 3])),
        V,
        r"logits must be floating point",
    ),
    (
        "temperature 0",
        lambda: next_token_distribution(x(5), temperature=0.0),
        V,
        r"temperature must be a finite number > 0",
    ),
    (
        "temperature -1",
        lambda: next_token_distribution(x(5), temperature=-1),
        V,
        r"temperature must be a finite number > 0",
    ),
    (
        "temperature NaN",
        lambda: next_token_distribution(x(5), temperature=NAN),
        V,
        r"temperature must be a finite number > 0",
    ),
    (
        "temperature inf",
        lambda: next_token_distribution(x(5), temperature=INF),
        V,
        r"temperature must be a finite number > 0",
    ),
    (
        "temperature 'hot'",
        lambda: next_token_distribution(x(5), temperature="hot"),
        T,
        r"temperature must be a finite number > 0",
    ),
    (
        "top_k 0",
        lambda: next_token_distribution(x(5), top_k=0),
        V,
        r"expected an integer top_k >= 1 \(None = off\)",
    ),
    ("top_k -3", lambda: next_token_distribution(x(5), top_k=-3), V, r"expected an integer top_k >= 1"),
    ("top_p 0", lambda: next_token_distribution(x(5), top_p=0.0), V, r"top_p must be a number in \(0, 1\]"),
    ("top_p 1.5", lambda: next_token_distribution(x(5), top_p=1.5), V, r"top_p must be a number in \(0, 1\]"),
    (
        "top_p -0.1",
        lambda: next_token_distribution(x(5), top_p=-0.1),
        V,
        r"top_p must be a number in \(0, 1\]",
    ),
    ("top_p NaN", lambda: next_token_distribution(x(5), top_p=NAN), V, r"top_p must be a number in \(0, 1\]"),
    (
        "top_p '0.9'",
        lambda: next_token_distribution(x(5), top_p="0.9"),
        T,
        r"top_p must be a number in \(0, 1\]",
    ),
    (
        "sample temperature 0",
        lambda: sample(MODEL, SRC, SOS, EOS, 3, temperature=0),
        V,
        r"temperature must be a finite number > 0",
    ),
    (
        "sample top_p 2",
        lambda: sample(MODEL, SRC, SOS, EOS, 3, top_p=2),
        V,
        r"top_p must be a number in \(0, 1\]",
    ),
    (
        "sampling widget NaN logits",
        lambda: SamplingExplorer(torch.tensor([0.0, NAN]), ["a", "b"]),
        V,
        EXPECT_FINITE,
    ),
    # --- other wrong types -----------------------------------------------------------------
    (
        "mha list input",
        lambda: MultiHeadAttention(8, 2)([[0.0] * 8]),
        T,
        r"query must be a torch\.Tensor, got list",
    ),
    (
        "layernorm numpy input",
        lambda: LayerNorm(8)(np.zeros((2, 8))),
        T,
        r"x must be a torch\.Tensor, got ndarray",
    ),
    (
        "keep_attention_weights of a string",
        lambda: enter(keep_attention_weights("model")),
        T,
        r"model must be a torch nn\.Module",
    ),
    ("rope 1-D x", lambda: apply_rope(x(8)), V, r"x must have at least 2 dimensions"),
    (
        "rope positions of the wrong length",
        lambda: apply_rope(x(3, 8), torch.arange(4)),
        V,
        r"positions must be a real tensor of shape \(T,\) = \(3,\)",
    ),
]


@pytest.mark.parametrize("call, expected, pattern", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_names_what_was_expected(call, expected, pattern):
    with pytest.raises(Exception) as info:  # noqa: PT011 -- the type is checked exactly below
        call()
    err = info.value
    if expected is TypeError:
        assert isinstance(err, InputTypeError), f"expected a TypeError, got {type(err).__name__}: {err}"
    else:
        assert isinstance(err, expected) and not isinstance(err, TypeError), f"{type(err).__name__}: {err}"
    message = str(err)
    assert "\n" not in message, f"one line expected, got {message!r}"
    info.match(pattern)
    assert "course_lib" in str(info.traceback[-1].path), (
        f"raised inside {info.traceback[-1].path}, not by course_lib"
    )


def test_the_table_is_big_and_its_names_unique():
    names = [c[0] for c in CASES]
    assert len(names) == len(set(names)) and len(names) >= 100


def test_type_errors_are_value_errors_too():
    """Code that catches the library's documented ValueError still catches a wrong type."""
    with pytest.raises(ValueError, match="d_model"):
        MultiHeadAttention(8.0, 2)
    assert issubclass(InputTypeError, TypeError) and issubclass(InputTypeError, ValueError)


# --- what must keep working --------------------------------------------------------------------
def test_int32_ids_give_the_same_logits_as_long():
    assert torch.equal(MODEL(SRC.int(), TGT.int()), MODEL(SRC, TGT))


def test_autocast_inputs_are_not_refused():
    """Under torch.autocast modules legitimately receive lower-precision inputs."""
    torch.manual_seed(0)
    mha, ln, ff = MultiHeadAttention(8, 2).eval(), LayerNorm(8), FeedForward(8, 16)
    xb = x(2, 3, 8, dtype=torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        for fused in (True, False):
            mha.fused = fused
            out = mha(xb, mask=causal_mask(3))
            assert out.shape == (2, 3, 8) and torch.isfinite(out.float()).all()
        assert ln(xb).shape == (2, 3, 8) and ff(xb).shape == (2, 3, 8)
        q, k, v = qkv(dq=torch.bfloat16)  # mixed dtypes: autocast casts them
        assert scaled_dot_product_attention(q, k, v)[0].shape == (2, 3, 4)
        cache = KVCache()
        for _ in range(3):  # the cache keeps autocast's dtype from step to step
            mha(x(2, 1, 8), cache=cache)
        logits = MODEL(SRC, TGT)
    assert torch.isfinite(logits.float()).all()
    with pytest.raises(ValueError, match="expected torch.float32"):  # outside autocast: refused
        mha(xb)


# --- token ids are checked once per public call ------------------------------------------------
@pytest.fixture
def id_checks(monkeypatch):
    """Count the token-id checks (by name) and the device read-backs (torch.aminmax) they make."""
    calls = {"names": [], "aminmax": 0}
    check = model_module.check_token_ids
    aminmax = torch.aminmax

    def counting_check(ids, name, vocab_size):
        calls["names"].append(name)
        return check(ids, name, vocab_size)

    def counting_aminmax(*args, **kwargs):
        calls["aminmax"] += 1
        return aminmax(*args, **kwargs)

    monkeypatch.setattr(model_module, "check_token_ids", counting_check)
    monkeypatch.setattr(torch, "aminmax", counting_aminmax)
    return calls


def test_each_public_call_checks_each_ids_tensor_once(id_checks):
    memory = MODEL.encode(SRC)
    assert sorted(id_checks["names"]) == ["src"] and id_checks["aminmax"] == 1
    for src_mask in (None, padding_mask(SRC, 0)):
        id_checks["names"].clear()
        id_checks["aminmax"] = 0
        MODEL(SRC, TGT, src_mask)
        assert sorted(id_checks["names"]) == ["src", "tgt"] and id_checks["aminmax"] == 2
        id_checks["names"].clear()
        id_checks["aminmax"] = 0
        MODEL.encode(SRC, src_mask)
        assert id_checks["names"] == ["src"] and id_checks["aminmax"] == 1
    id_checks["names"].clear()
    id_checks["aminmax"] = 0
    MODEL.decode(TGT, memory)
    assert id_checks["names"] == ["tgt"] and id_checks["aminmax"] == 1
    cache = MODEL.new_cache()
    for t in range(TGT.size(1)):
        id_checks["names"].clear()
        id_checks["aminmax"] = 0
        MODEL.decode(TGT[:, t : t + 1], memory, cache=cache)
        assert id_checks["names"] == ["tgt"] and id_checks["aminmax"] == 1


def test_token_embedding_alone_still_checks(id_checks):
    emb = TokenEmbedding(10, 8)
    emb(SRC)
    assert id_checks["names"] == ["ids"] and id_checks["aminmax"] == 1
    with pytest.raises(ValueError, match="outside the vocabulary"):
        emb(SRC + 20)


# --- widgets: a message, then recovery on the next good value ----------------------------------
def test_sampling_widget_recovers_from_nan():
    logits = torch.tensor([2.0, 1.0, 0.5, -1.0])
    ex = SamplingExplorer(logits, list("abcd"))
    probs, png = ex.probs.clone(), ex.image.value
    ex.temperature.value = NAN  # from code, through the slider's callback: no exception
    assert "temperature" in ex.message and "cannot draw" in ex.info.value
    assert torch.equal(ex.probs, probs) and ex.image.value == png
    ex.temperature.value = 0.5
    assert ex.message == "" and torch.allclose(ex.probs, next_token_distribution(logits, 0.5))
    assert "kept 4 of 4" in ex.info.value
    ex.top_p.value = NAN
    assert "top_p" in ex.message
    ex.top_p.value = 0.5
    assert ex.message == "" and torch.allclose(ex.probs, next_token_distribution(logits, 0.5, None, 0.5))
    assert torch.equal(ex.set(temperature=NAN), ex.probs) and "temperature" in ex.message
    ex.set(temperature=1.0, top_p=1.0)
    assert ex.message == ""
    good = ex.probs.clone()
    for bad in (
        torch.tensor([0.0, NAN, 1.0, 2.0]),
        torch.tensor([0.0, INF, 1.0, 2.0]),
        torch.full((4,), -INF),
    ):
        assert torch.equal(ex.set_logits(bad), good) and "expected" in ex.message
        assert torch.equal(ex.logits, logits)
    new = torch.tensor([0.0, 0.0, 3.0, 0.0])
    assert torch.allclose(ex.set_logits(new), new.softmax(-1)) and ex.message == ""


def test_pattern_explorer_recovers_from_nan_temperature():
    ex = PatternExplorer("the cat sat on the mat")
    w, png = ex.current_weights.copy(), ex.png
    ex.temperature.value = NAN
    assert "temperature must be a finite number > 0" in ex.message and "temperature" in ex.status.value
    assert np.array_equal(ex.current_weights, w) and ex.png == png
    ex.temperature.value = 2.0
    assert ex.message == "" and ex.status.value == ""
    assert not np.allclose(ex.current_weights, w) and np.allclose(ex.current_weights.sum(-1), 1)


def test_attention_explorer_recovers_from_nan_attention():
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 2)
    words = word_embedder(16)

    def embed(text):
        vecs, labels = words(text)
        if "boom" in labels:
            vecs = vecs.clone()
            vecs[labels.index("boom")] = NAN
        return vecs, labels

    ex = AttentionExplorer(mha, embed=embed, text="the cat sat")
    w, png = ex.current_weights.copy(), ex.png
    ex.set_text("the boom sat")  # the module runs, its attention weights are NaN
    assert "NaN" in ex.message and "expected finite weights" in ex.message
    assert np.array_equal(ex.current_weights, w) and ex.png == png
    ex.set_text("a dog ran far")
    assert ex.message == "" and ex.current_weights.shape == (4, 4)
    assert np.isfinite(ex.current_weights).all()


def test_positional_explorer_recovers(monkeypatch):
    ex = PositionalEncodingExplorer(d_model=16, max_len=20, pos=2, i=1)
    vector = ex.vector.copy()
    ex.set(pos=NAN)
    assert "pos" in ex.message and "cannot show" in ex.readout.value
    assert ex.pos.value == 2 and np.array_equal(ex.vector, vector)
    ex.set(pos=5, i=INF)
    assert "expected an integer i" in ex.message and ex.pos.value == 2
    ex.set(pos=5)
    assert ex.message == "" and ex.pos.value == 5 and "PE(5, 2)" in ex.readout.value

    def broken(p, i):
        raise ValueError("cannot draw")

    monkeypatch.setattr(ex, "_draw", broken)
    ex.pos.value = 6  # a failing redraw inside the slider's callback: a note, no exception
    assert "cannot draw" in ex.message
    monkeypatch.undo()
    ex.pos.value = 7
    assert ex.message == "" and "PE(7, 2)" in ex.readout.value
    assert math.isclose(ex.pair[0], math.sin(7 * float(ex.w[1])), abs_tol=1e-6)
