"""The reference a practitioner would pick: `torch.nn.Transformer`, wrapped with the same
embeddings, positions and output layer as course_lib's model, and the same interface
(`encode`, `decode`, `generator`, `cfg`) so course_lib.decode can run it.

Masks arrive in the course convention (boolean, True = may attend) and are converted at
this boundary to torch's (True = blocked).
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from course_lib.masks import causal_mask, padding_mask, to_key_padding_mask
from course_lib.model import TransformerConfig
from course_lib.positional import SinusoidalPositionalEncoding


class TorchSeq2Seq(nn.Module):
    """nn.Transformer of the size `cfg` describes (post-LN or pre-LN, the same dropout),
    with token embeddings scaled by sqrt(d_model), sinusoidal positions and a tied output."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.cfg = c = cfg
        self.src_embed = nn.Embedding(c.src_vocab_size, c.d_model)
        self.tgt_embed = self.src_embed if c.share_embeddings else nn.Embedding(c.tgt_vocab_size, c.d_model)
        for emb in {self.src_embed, self.tgt_embed}:
            nn.init.normal_(emb.weight, std=c.d_model**-0.5)  # as course_lib's TokenEmbedding
        self.src_pos = SinusoidalPositionalEncoding(c.d_model, c.max_len, c.dropout)
        self.tgt_pos = SinusoidalPositionalEncoding(c.d_model, c.max_len, c.dropout)
        self.transformer = nn.Transformer(
            c.d_model,
            c.n_heads,
            c.n_encoder_layers,
            c.n_decoder_layers,
            c.d_ff,
            c.dropout,
            batch_first=True,
            norm_first=c.norm_first,
        )
        self.generator = nn.Linear(c.d_model, c.tgt_vocab_size, bias=False)
        if c.tie_output:
            self.generator.weight = self.tgt_embed.weight

    def _embed(self, emb: nn.Embedding, pos: nn.Module, ids: Tensor, offset: int = 0) -> Tensor:
        return pos(emb(ids) * math.sqrt(self.cfg.d_model), offset=offset)

    @staticmethod
    def _key_padding(mask: Tensor | None) -> Tensor | None:
        """Course padding mask (B, 1, 1, S), True = real token -> torch's (B, S), True = padding."""
        return None if mask is None else ~mask.reshape(mask.size(0), mask.size(-1))

    def encode(self, src: Tensor, src_mask: Tensor | None = None) -> Tensor:
        src_mask = padding_mask(src, self.cfg.pad_id) if src_mask is None else src_mask
        x = self._embed(self.src_embed, self.src_pos, src)
        return self.transformer.encoder(x, src_key_padding_mask=self._key_padding(src_mask))

    def decode(
        self,
        tgt: Tensor,
        memory: Tensor,
        src_mask: Tensor | None = None,
        tgt_mask: Tensor | None = None,
        cache: object = None,
    ) -> Tensor:
        """No KV cache: nn.Transformer has none, so the baseline always reruns the prefix."""
        if cache is not None:
            raise ValueError("TorchSeq2Seq has no KV cache: decode with use_cache=False")
        T = tgt.size(1)
        if tgt_mask is None:  # causal, and no padding keys of the target (as course_lib's default)
            causal, pad = causal_mask(T, tgt.device), to_key_padding_mask(tgt, self.cfg.pad_id)
        elif tgt_mask.dim() == 2:
            causal, pad = tgt_mask, None
        else:
            raise ValueError(f"TorchSeq2Seq takes a (T, T) tgt_mask, got {tuple(tgt_mask.shape)}")
        x = self._embed(self.tgt_embed, self.tgt_pos, tgt)
        return self.transformer.decoder(
            x,
            memory,
            tgt_mask=~causal,
            tgt_key_padding_mask=pad,
            memory_key_padding_mask=self._key_padding(src_mask),
        )

    def new_cache(self) -> None:
        raise ValueError("TorchSeq2Seq has no KV cache: decode with use_cache=False")

    def forward(
        self, src: Tensor, tgt: Tensor, src_mask: Tensor | None = None, tgt_mask: Tensor | None = None
    ) -> Tensor:
        src_mask = padding_mask(src, self.cfg.pad_id) if src_mask is None else src_mask
        memory = self.encode(src, src_mask)
        return self.generator(self.decode(tgt, memory, src_mask, tgt_mask))  # (B, T, V)
