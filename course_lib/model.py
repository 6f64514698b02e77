"""The complete encoder-decoder Transformer (figure 1 of the paper), built from a config."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from .layers import DecoderCache, DecoderLayer, EncoderLayer, LayerNorm
from .masks import causal_mask, decoder_mask, padding_mask
from .positional import LearnedPositionalEncoding, SinusoidalPositionalEncoding
from .validate import (
    InputTypeError,
    check_divisible,
    check_dropout,
    check_int,
    check_pad_id,
    check_sizes,
    check_token_ids,
    checks_skipped,
)


@dataclass
class TransformerConfig:
    """Every size and switch of the model.

    The defaults have the sizes of the paper's base model (Table 3: N=6, d_model=512, d_ff=2048,
    h=8, dropout 0.1) but not its weight sharing: they keep separate source and target
    embeddings (share_embeddings=False), so that the two sides may have different vocabularies,
    and tie only the output layer to the target embedding. The paper's base model shares one
    matrix among all three (section 3.4): that is `TransformerConfig.base()`, and
    `TransformerConfig.big()` is the big model.
    """

    src_vocab_size: int
    tgt_vocab_size: int | None = None  # None: same as the source vocabulary
    d_model: int = 512
    n_heads: int = 8
    n_encoder_layers: int = 6
    n_decoder_layers: int = 6
    d_ff: int = 2048
    dropout: float = 0.1
    max_len: int = 512
    share_embeddings: bool = False  # one embedding table for source and target (needs one vocabulary)
    tie_output: bool = True  # the output projection reuses the target embedding matrix
    norm_first: bool = False  # False: post-LN as in the paper; True: pre-LN
    positional: str = "sinusoidal"  # or "learned"
    pad_id: int = 0

    def __post_init__(self) -> None:
        if self.tgt_vocab_size is None:
            self.tgt_vocab_size = self.src_vocab_size
        check_divisible(self.d_model, self.n_heads)
        for name in ("src_vocab_size", "tgt_vocab_size", "d_ff", "max_len"):
            check_int(getattr(self, name), name, 1)
        for name in ("n_encoder_layers", "n_decoder_layers"):
            check_int(getattr(self, name), name, 0)
        V = min(self.src_vocab_size, self.tgt_vocab_size)
        check_pad_id(self.pad_id, V, why=" (an id of both vocabularies)")
        if self.share_embeddings and self.src_vocab_size != self.tgt_vocab_size:
            raise ValueError(
                "share_embeddings=True needs one vocabulary: src_vocab_size="
                f"{self.src_vocab_size} and tgt_vocab_size={self.tgt_vocab_size} differ"
            )
        if self.positional not in ("sinusoidal", "learned"):
            raise ValueError(f"positional must be 'sinusoidal' or 'learned', got {self.positional!r}")
        check_dropout(self.dropout)

    @classmethod
    def base(cls, vocab_size: int = 37000, **kw) -> TransformerConfig:
        """The paper's base model: N=6, d_model=512, d_ff=2048, h=8, shared vocabulary."""
        return cls(vocab_size, vocab_size, share_embeddings=True, **kw)

    @classmethod
    def big(cls, vocab_size: int = 37000, **kw) -> TransformerConfig:
        """The paper's big model: d_model=1024, d_ff=4096, h=16, dropout 0.3."""
        kw = {"d_model": 1024, "d_ff": 4096, "n_heads": 16, "dropout": 0.3, **kw}
        return cls(vocab_size, vocab_size, share_embeddings=True, **kw)

    def to_dict(self) -> dict:
        return asdict(self)


class TokenEmbedding(nn.Module):
    """ids (B, T) -> vectors (B, T, d_model), multiplied by sqrt(d_model) (section 3.4)."""

    def __init__(self, vocab_size: int, d_model: int) -> None:
        super().__init__()
        check_sizes(vocab_size=vocab_size, d_model=d_model)
        self.vocab_size, self.d_model = vocab_size, d_model
        self.weight = nn.Parameter(torch.empty(vocab_size, d_model))
        nn.init.normal_(self.weight, std=d_model**-0.5)

    def forward(self, ids: Tensor, name: str = "ids", validated: bool = False) -> Tensor:
        if not validated:  # the model checks its ids once per call, then passes validated=True
            check_token_ids(ids, name, self.vocab_size)
        return self.weight[ids] * math.sqrt(self.d_model)


def _positional(cfg: TransformerConfig) -> nn.Module:
    kind = SinusoidalPositionalEncoding if cfg.positional == "sinusoidal" else LearnedPositionalEncoding
    return kind(cfg.d_model, cfg.max_len, cfg.dropout)


class Transformer(nn.Module):
    """Encoder-decoder Transformer.

    forward(src, tgt) -> logits (B, T_tgt, tgt_vocab_size). `encode` and `decode` can be
    called separately: at inference the encoder runs once and the decoder once per token.
    Masks follow the course convention (boolean, True = may attend); when omitted they
    are built from `cfg.pad_id` (padding) and, for the decoder, the causal rule.
    """

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c = cfg
        self.src_embed = TokenEmbedding(c.src_vocab_size, c.d_model)
        self.tgt_embed = self.src_embed if c.share_embeddings else TokenEmbedding(c.tgt_vocab_size, c.d_model)
        self.src_pos, self.tgt_pos = _positional(c), _positional(c)
        self.encoder_layers = nn.ModuleList(
            EncoderLayer(c.d_model, c.n_heads, c.d_ff, c.dropout, c.norm_first)
            for _ in range(c.n_encoder_layers)
        )
        self.decoder_layers = nn.ModuleList(
            DecoderLayer(c.d_model, c.n_heads, c.d_ff, c.dropout, c.norm_first)
            for _ in range(c.n_decoder_layers)
        )
        # pre-LN stacks end with one more LayerNorm; post-LN layers already end with one
        self.encoder_norm = LayerNorm(c.d_model) if c.norm_first else nn.Identity()
        self.decoder_norm = LayerNorm(c.d_model) if c.norm_first else nn.Identity()
        self.generator = nn.Linear(c.d_model, c.tgt_vocab_size, bias=False)
        self._init_weights()
        if c.tie_output:
            self.generator.weight = self.tgt_embed.weight  # (V, d_model), the same tensor

    def _init_weights(self) -> None:
        """Xavier-uniform (Glorot) weight matrices for every nn.Linear, chosen by module type.

        That covers w_q, w_k, w_v, w_o, the FFN's w_1 and w_2, and the generator (unless it
        already shares a TokenEmbedding's table). Everything else keeps what its constructor
        set: TokenEmbedding normal(0, d_model**-0.5), a learned positional table
        normal(0, 0.02), LayerNorm gamma 1 and beta 0, and the Linear biases torch's default
        uniform(+-1/sqrt(fan_in)), not zero. The matrices are drawn in the same order as by
        the earlier name-based rule (in __init__ this runs before the output is tied, so the
        generator is drawn even when tied), which keeps every seeded model bit for bit.
        """
        tables = [m.weight for m in self.modules() if isinstance(m, TokenEmbedding)]
        for module in self.modules():
            if isinstance(module, nn.Linear) and not any(module.weight is t for t in tables):
                nn.init.xavier_uniform_(module.weight)

    # --- the two halves -------------------------------------------------------------
    def encode(self, src: Tensor, src_mask: Tensor | None = None) -> Tensor:
        """src ids (B, S) -> memory (B, S, d_model)."""
        check_token_ids(src, "src", self.cfg.src_vocab_size)
        return self._encode(src, src_mask)

    def _encode(self, src: Tensor, src_mask: Tensor | None) -> Tensor:
        """`encode` for ids already checked (each public call reads the ids back once)."""
        if src_mask is None:
            src_mask = padding_mask(src, self.cfg.pad_id)
        x = self.src_pos(self.src_embed(src, "src", validated=True))  # (B, S, d_model)
        for layer in self.encoder_layers:
            x = layer(x, src_mask)
        return self.encoder_norm(x)

    def decode(
        self,
        tgt: Tensor,
        memory: Tensor,
        src_mask: Tensor | None = None,
        tgt_mask: Tensor | None = None,
        cache: list[DecoderCache] | None = None,
    ) -> Tensor:
        """tgt ids (B, T) and memory (B, S, d_model) -> decoder states (B, T, d_model).

        src_mask: source padding, broadcastable to (B, h, T, S); None attends to all of memory.
        With `cache` (from `new_cache()`), tgt holds only the new tokens; their positions
        continue where the cache stops.
        """
        check_token_ids(tgt, "tgt", self.cfg.tgt_vocab_size)
        self._check_cache(cache)
        return self._decode(tgt, memory, src_mask, tgt_mask, cache)

    def _check_cache(self, cache: object) -> None:
        """A decoding cache is `new_cache()`'s list: one DecoderCache per decoder layer."""
        if cache is None or checks_skipped():
            return
        n = len(self.decoder_layers)
        want = f"cache must come from model.new_cache(): a list of {n} DecoderCache (one per decoder layer)"
        if not isinstance(cache, list) or not all(isinstance(c, DecoderCache) for c in cache):
            raise InputTypeError(f"{want}, got {type(cache).__name__}")
        if len(cache) != n:
            raise ValueError(f"{want}, got a list of {len(cache)}")

    def _decode(
        self,
        tgt: Tensor,
        memory: Tensor,
        src_mask: Tensor | None,
        tgt_mask: Tensor | None,
        cache: list[DecoderCache] | None = None,
    ) -> Tensor:
        """`decode` for ids already checked."""
        offset = len(cache[0].self_kv) if cache else 0
        T = tgt.size(1)
        if tgt_mask is None and not cache:
            tgt_mask = decoder_mask(tgt, self.cfg.pad_id)  # (B, 1, T, T): causal, no padding keys
        elif tgt_mask is None and T > 1:  # one new token may see every cached key: no mask
            tgt_mask = causal_mask(T, tgt.device, offset)  # (T, offset + T)
        x = self.tgt_pos(self.tgt_embed(tgt, "tgt", validated=True), offset=offset)  # (B, T, d_model)
        for i, layer in enumerate(self.decoder_layers):
            x = layer(x, memory, tgt_mask, src_mask, cache=cache[i] if cache else None)
        return self.decoder_norm(x)

    def new_cache(self) -> list[DecoderCache]:
        """One empty cache per decoder layer, for token-by-token generation."""
        return [DecoderCache() for _ in self.decoder_layers]

    def forward(
        self, src: Tensor, tgt: Tensor, src_mask: Tensor | None = None, tgt_mask: Tensor | None = None
    ) -> Tensor:
        """src (B, S), tgt (B, T) -> logits (B, T, tgt_vocab_size)."""
        check_token_ids(src, "src", self.cfg.src_vocab_size)
        check_token_ids(tgt, "tgt", self.cfg.tgt_vocab_size)
        if src_mask is None:
            src_mask = padding_mask(src, self.cfg.pad_id)
        memory = self._encode(src, src_mask)
        return self.generator(self._decode(tgt, memory, src_mask, tgt_mask))
