"""Where dropout sits, checked structurally with deterministic stand-ins.

Every nn.Dropout is replaced by a `FrozenDropout`: a fixed 0 or 1/(1-p) mask that depends
only on the site and the input's shape, so a hand computation from the sublayers can apply the
very same mask. (A constant factor would not do: LayerNorm(c * y) == LayerNorm(y) up to eps, so
a post-LN dropout moved after the residual add would go unnoticed.) The functional dropout on
the attention weights in course_lib.attention is replaced the same way.

Paper (section 5.4): dropout on each sublayer's output before the residual add and norm, and on
the sums of embeddings and positional encodings. Later practice, also in the library: dropout
on the attention weights and on the FFN's hidden layer.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import course_lib.attention as attention_module
from course_lib import (
    DecoderLayer,
    EncoderLayer,
    LayerNorm,
    MultiHeadAttention,
    Transformer,
    TransformerConfig,
)
from course_lib.layers import FeedForward
from course_lib.masks import causal_mask, decoder_mask, padding_mask

D = torch.float64
P = 0.3  # a high rate: about a third of every mask is zero
ATTN_SITE = 999  # the one mask family of the functional dropout on attention weights
TOL = 1e-12  # the hand computations repeat the library's operations: float64 rounding only
MOVED = 1e-3  # a misplaced or missing dropout changes outputs by far more than this


def frozen_mask(site: int, shape: torch.Size, p: float, dtype: torch.dtype) -> Tensor:
    """A fixed dropout mask: 0 with probability p, else 1/(1-p); the same for the same site and shape."""
    g = torch.Generator().manual_seed(10_000 + site)
    keep = torch.rand(shape, generator=g, dtype=torch.float64) >= p
    return keep.to(dtype) / (1.0 - p)


class FrozenDropout(nn.Module):
    """Stands in for one nn.Dropout; counts its calls."""

    def __init__(self, p: float, site: int) -> None:
        super().__init__()
        self.p, self.site, self.calls = p, site, 0

    def forward(self, x: Tensor) -> Tensor:
        self.calls += 1
        return frozen(self, x)


def frozen(site: FrozenDropout, x: Tensor) -> Tensor:
    """What `site` does to x, for the hand computations (without counting a call)."""
    return x * frozen_mask(site.site, x.shape, site.p, x.dtype)


class AttentionF:
    """torch.nn.functional as course_lib.attention sees it, with a frozen `dropout`."""

    def __init__(self) -> None:
        self.dropout_ps: list[float] = []
        self.fused_ps: list[float] = []

    def __getattr__(self, name: str):
        return getattr(F, name)

    def dropout(self, x: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
        assert training and not inplace
        self.dropout_ps.append(p)
        return x * frozen_mask(ATTN_SITE, x.shape, p, x.dtype)

    def scaled_dot_product_attention(self, *args, dropout_p: float = 0.0, **kw) -> Tensor:
        self.fused_ps.append(dropout_p)
        return F.scaled_dot_product_attention(*args, dropout_p=dropout_p, **kw)


@pytest.fixture
def attn_f(monkeypatch: pytest.MonkeyPatch) -> AttentionF:
    shim = AttentionF()
    monkeypatch.setattr(attention_module, "F", shim)
    return shim


def freeze(model: nn.Module) -> dict[str, FrozenDropout]:
    """Replace every nn.Dropout in `model` by a FrozenDropout (site numbers in module order);
    the multi-head attentions take their explicit path so that their dropout is F.dropout."""
    sites: dict[str, FrozenDropout] = {}
    for name, m in list(model.named_modules()):
        if isinstance(m, nn.Dropout):
            parent_name, _, attr = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            sites[name] = FrozenDropout(m.p, len(sites))
            setattr(parent, attr, sites[name])
        if isinstance(m, MultiHeadAttention):
            m.fused = False
    model.train()
    return sites


def _seeded(gen: torch.Generator, build: Callable[[], nn.Module]) -> nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
        module = build().double()
    with torch.no_grad():  # LayerNorms start at gamma 1, beta 0: move them so they matter
        for m in module.modules():
            if isinstance(m, LayerNorm):
                m.gamma.add_(0.1 * torch.randn(m.gamma.shape, generator=gen, dtype=D))
                m.beta.add_(0.1 * torch.randn(m.beta.shape, generator=gen, dtype=D))
    return module


def _err(a: Tensor, b: Tensor) -> float:
    return (a - b).abs().max().item()


# --- inside the sublayers: attention weights and the FFN hidden layer ----------------------


def mha_by_hand(mha: MultiHeadAttention, q_in: Tensor, kv_in: Tensor, mask: Tensor, p: float) -> Tensor:
    """Equation (1) per head, with the attention weights dropped out after the softmax."""
    B, h, d_k = q_in.size(0), mha.n_heads, mha.d_k

    def heads(x: Tensor) -> Tensor:
        return x.view(B, -1, h, d_k).transpose(1, 2)

    q, k, v = heads(mha.w_q(q_in)), heads(mha.w_k(kv_in)), heads(mha.w_v(kv_in))
    scores = (q @ k.transpose(-2, -1) / math.sqrt(d_k)).masked_fill(~mask, float("-inf"))
    weights = scores.softmax(-1)
    weights = weights * frozen_mask(ATTN_SITE, weights.shape, p, weights.dtype)
    return mha.w_o((weights @ v).transpose(1, 2).reshape(B, -1, h * d_k))


def test_attention_weights_are_dropped_after_softmax(gen, one_thread, attn_f):
    mha = _seeded(gen, lambda: MultiHeadAttention(16, 4, dropout=P, fused=False)).train()
    q, kv = torch.randn(2, 5, 16, generator=gen, dtype=D), torch.randn(2, 7, 16, generator=gen, dtype=D)
    mask = padding_mask(torch.tensor([[1] * 7, [1] * 4 + [0] * 3]), 0)
    out = mha(q, kv, kv, mask)
    assert attn_f.dropout_ps == [P]  # one call, at the module's rate
    assert _err(out, mha_by_hand(mha, q, kv, mask, P)) < TOL
    assert _err(out, mha_by_hand(mha, q, kv, mask, 0.0)) > MOVED  # the dropout is really there
    mha.eval()
    attn_f.dropout_ps.clear()
    assert _err(mha(q, kv, kv, mask), mha_by_hand(mha, q, kv, mask, 0.0)) < TOL
    assert attn_f.dropout_ps == []  # none in evaluation


def test_fused_path_passes_the_rate_in_training_only(gen, one_thread, attn_f):
    """On the fused path torch's kernel drops the attention weights itself: check the rate it gets."""
    mha = _seeded(gen, lambda: MultiHeadAttention(16, 4, dropout=P)).train()
    x = torch.randn(2, 5, 16, generator=gen, dtype=D)
    mha(x)
    mha.eval()
    mha(x)
    assert attn_f.fused_ps == [P, 0.0] and attn_f.dropout_ps == []


def test_ffn_drops_its_hidden_layer(gen, one_thread):
    ff = _seeded(gen, lambda: FeedForward(16, 32, dropout=P))
    (site,) = freeze(ff).values()
    x = torch.randn(2, 5, 16, generator=gen, dtype=D)
    out = ff(x)
    assert site.calls == 1 and site.p == P
    hidden = torch.relu(ff.w_1(x))  # (B, T, d_ff): the site is between the two linear maps
    assert _err(out, ff.w_2(frozen(site, hidden))) < TOL
    assert _err(out, ff.w_2(hidden)) > MOVED
    assert _err(out, frozen(site, ff.w_2(hidden))) > MOVED


# --- residual dropout: every sublayer of the encoder and decoder layers ----------------------


def encoder_by_hand(layer: EncoderLayer, x: Tensor, mask: Tensor, norm_first: bool) -> Tensor:
    """Post-LN: LayerNorm(x + Dropout(Sublayer(x))); pre-LN: x + Dropout(Sublayer(LayerNorm(x)))."""

    def sa(h: Tensor) -> Tensor:
        return layer.self_attn(h, h, h, mask)

    if norm_first:
        x = x + frozen(layer.dropout1, sa(layer.norm1(x)))
        return x + frozen(layer.dropout2, layer.ff(layer.norm2(x)))
    x = layer.norm1(x + frozen(layer.dropout1, sa(x)))
    return layer.norm2(x + frozen(layer.dropout2, layer.ff(x)))


def decoder_by_hand(
    layer: DecoderLayer, y: Tensor, mem: Tensor, tgt_mask: Tensor, mem_mask: Tensor, norm_first: bool
) -> Tensor:
    sublayers = (
        lambda h: layer.self_attn(h, h, h, tgt_mask),
        lambda h: layer.cross_attn(h, mem, mem, mem_mask),
        layer.ff,
    )
    for i, sub in enumerate(sublayers, start=1):
        norm, drop = getattr(layer, f"norm{i}"), getattr(layer, f"dropout{i}")
        y = y + frozen(drop, sub(norm(y))) if norm_first else norm(y + frozen(drop, sub(y)))
    return y


class DropoutAfterAdd(EncoderLayer):
    """A wrong placement: dropout on the residual sum instead of on the sublayer output."""

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        if self.norm_first:
            h = self.norm1(x)
            x = self.dropout1(x + self.self_attn(h, h, h, mask))
            return self.dropout2(x + self.ff(self.norm2(x)))
        x = self.norm1(self.dropout1(x + self.self_attn(x, x, x, mask)))
        return self.norm2(self.dropout2(x + self.ff(x)))


class DropoutOnSublayerInput(EncoderLayer):
    """Another wrong placement: dropout on what enters the sublayer."""

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        if self.norm_first:
            h = self.dropout1(self.norm1(x))
            x = x + self.self_attn(h, h, h, mask)
            return x + self.ff(self.dropout2(self.norm2(x)))
        h = self.dropout1(x)
        x = self.norm1(x + self.self_attn(h, h, h, mask))
        return self.norm2(x + self.ff(self.dropout2(x)))


class NoResidualDropout(EncoderLayer):
    """Residual dropout removed."""

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        self.dropout1 = self.dropout2 = nn.Identity()
        return super().forward(x, mask)


def _encoder_case(gen: torch.Generator, kind: type[EncoderLayer], norm_first: bool):
    layer = _seeded(gen, lambda: kind(16, 4, 32, dropout=P, norm_first=norm_first))
    sites = freeze(layer)
    x = torch.randn(3, 6, 16, generator=gen, dtype=D)
    mask = padding_mask(torch.tensor([[1] * 6, [1] * 4 + [0] * 2, [1] * 2 + [0] * 4]), 0)
    expected = encoder_by_hand(layer, x, mask, norm_first)  # computed first: the mutant may edit itself
    return layer, sites, layer(x, mask), expected


@pytest.mark.parametrize("norm_first", [False, True], ids=["post_ln", "pre_ln"])
def test_encoder_layer_residual_dropout(gen, one_thread, attn_f, norm_first):
    layer, sites, out, expected = _encoder_case(gen, EncoderLayer, norm_first)
    assert sorted(sites) == ["dropout1", "dropout2", "ff.dropout"]
    assert all(s.p == P and s.calls >= 1 for s in sites.values())
    assert sites["dropout1"].calls == sites["dropout2"].calls == 1
    assert attn_f.dropout_ps and set(attn_f.dropout_ps) == {P}
    assert _err(out, expected) < TOL


@pytest.mark.parametrize("norm_first", [False, True], ids=["post_ln", "pre_ln"])
@pytest.mark.parametrize("mutant", [DropoutAfterAdd, DropoutOnSublayerInput, NoResidualDropout])
def test_a_moved_or_missing_dropout_is_caught(gen, one_thread, attn_f, mutant, norm_first):
    """The check above, run on wrong layers, must see a large difference."""
    _, _, out, expected = _encoder_case(gen, mutant, norm_first)
    assert _err(out, expected) > MOVED


@pytest.mark.parametrize("norm_first", [False, True], ids=["post_ln", "pre_ln"])
def test_decoder_layer_residual_dropout(gen, one_thread, attn_f, norm_first):
    layer = _seeded(gen, lambda: DecoderLayer(16, 4, 32, dropout=P, norm_first=norm_first))
    sites = freeze(layer)
    y, mem = torch.randn(2, 5, 16, generator=gen, dtype=D), torch.randn(2, 7, 16, generator=gen, dtype=D)
    tgt_mask = decoder_mask(torch.tensor([[1] * 5, [1] * 3 + [0] * 2]), 0)
    mem_mask = padding_mask(torch.tensor([[1] * 7, [1] * 4 + [0] * 3]), 0)
    out = layer(y, mem, tgt_mask, mem_mask)
    assert sorted(sites) == ["dropout1", "dropout2", "dropout3", "ff.dropout"]
    assert all(s.p == P and s.calls == 1 for s in sites.values())
    assert attn_f.dropout_ps == [P, P]  # self- and cross-attention weights
    assert _err(out, decoder_by_hand(layer, y, mem, tgt_mask, mem_mask, norm_first)) < TOL
    # the same hand computation without the residual dropouts is far off
    for i in (1, 2, 3):
        setattr(layer, f"dropout{i}", FrozenDropout(0.0, 0))
    assert _err(out, decoder_by_hand(layer, y, mem, tgt_mask, mem_mask, norm_first)) > MOVED


# --- the whole model: embeddings + positions, and no other site --------------------------


def _model_config(positional: str, norm_first: bool) -> TransformerConfig:
    return TransformerConfig(
        11,
        13,
        d_model=16,
        n_heads=4,
        n_encoder_layers=2,
        n_decoder_layers=2,
        d_ff=32,
        dropout=P,
        max_len=32,
        norm_first=norm_first,
        positional=positional,
    )


def _positions(pos: nn.Module, T: int) -> Tensor:
    return pos.pe[:T] if hasattr(pos, "pe") else pos.embedding.weight[:T]


def test_dropout_sites_and_rates():
    cfg = _model_config("sinusoidal", False)
    model = Transformer(cfg)
    sites = {n: m.p for n, m in model.named_modules() if isinstance(m, nn.Dropout)}
    expected = {"src_pos.dropout", "tgt_pos.dropout"}
    for i in range(cfg.n_encoder_layers):
        expected |= {f"encoder_layers.{i}.{s}" for s in ("dropout1", "dropout2", "ff.dropout")}
    for i in range(cfg.n_decoder_layers):
        expected |= {f"decoder_layers.{i}.{s}" for s in ("dropout1", "dropout2", "dropout3", "ff.dropout")}
    assert set(sites) == expected and set(sites.values()) == {P}
    rates = [m.dropout for m in model.modules() if isinstance(m, MultiHeadAttention)]
    assert len(rates) == cfg.n_encoder_layers + 2 * cfg.n_decoder_layers and set(rates) == {P}


@pytest.mark.parametrize("norm_first", [False, True], ids=["post_ln", "pre_ln"])
@pytest.mark.parametrize("positional", ["sinusoidal", "learned"])
def test_model_drops_embedding_sums_and_nothing_else(gen, one_thread, attn_f, positional, norm_first):
    cfg = _model_config(positional, norm_first)
    model = _seeded(gen, lambda: Transformer(cfg))
    sites = freeze(model)
    src = torch.randint(1, 11, (3, 7), generator=gen)
    src[1, 5:], src[2, 3:] = 0, 0
    tgt = torch.randint(1, 13, (3, 6), generator=gen)
    tgt[2, 4:] = 0

    stack_inputs: dict[str, Tensor] = {}

    def keeper(key: str) -> Callable[[nn.Module, tuple], None]:
        def keep(_module: nn.Module, args: tuple) -> None:
            stack_inputs[key] = args[0]  # what the first layer of the stack receives

        return keep

    hooks = [
        model.encoder_layers[0].register_forward_pre_hook(keeper("src")),
        model.decoder_layers[0].register_forward_pre_hook(keeper("tgt")),
    ]
    try:
        logits = model(src, tgt)
    finally:
        for h in hooks:
            h.remove()
    assert all(s.calls == 1 for s in sites.values())  # every site used, once
    assert attn_f.dropout_ps == [P] * (cfg.n_encoder_layers + 2 * cfg.n_decoder_layers)

    # section 5.4: dropout on the sum of the (scaled) embedding and the positional encoding
    for key, ids, embed, pos in (
        ("src", src, model.src_embed, model.src_pos),
        ("tgt", tgt, model.tgt_embed, model.tgt_pos),
    ):
        summed = embed(ids) + _positions(pos, ids.size(1))
        assert _err(stack_inputs[key], frozen(pos.dropout, summed)) < TOL
        assert _err(stack_inputs[key], frozen(pos.dropout, embed(ids)) + _positions(pos, ids.size(1))) > MOVED
        assert _err(stack_inputs[key], summed) > MOVED

    # the rest of the model, by hand from its layers: no dropout site beyond the ones above
    src_mask = padding_mask(src, cfg.pad_id)
    x = frozen(model.src_pos.dropout, model.src_embed(src) + _positions(model.src_pos, src.size(1)))
    for layer in model.encoder_layers:
        x = layer(x, src_mask)
    memory = model.encoder_norm(x)
    y = frozen(model.tgt_pos.dropout, model.tgt_embed(tgt) + _positions(model.tgt_pos, tgt.size(1)))
    for layer in model.decoder_layers:
        y = layer(y, memory, decoder_mask(tgt, cfg.pad_id), src_mask)
    assert _err(logits, model.generator(model.decoder_norm(y))) < TOL
    assert torch.equal(decoder_mask(tgt, 0)[0, 0], causal_mask(6))  # row 0 has no padding
