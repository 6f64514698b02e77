"""The whole course Transformer against torch.nn.Transformer on copied weights, in float64.

nn.Transformer has no embeddings and no output layer, so the reference wraps it with its own
(copied) embedding tables, positional encoding and generator; the comparison then covers every
encoder and decoder layer, the final norms (pre-LN) and both ends. The paper's post-LN model has
no final norms: there torch's are replaced by nn.Identity().
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch import Tensor, nn

from course_lib import LayerNorm, Transformer, TransformerConfig
from course_lib.masks import causal_mask, to_key_padding_mask, to_torch_attn_mask
from course_lib.positional import sinusoidal_encoding

D = torch.float64
PAD = 0
# float64 rounding in these small models stays near 1e-14; a misplaced op shows at 1e-3 or more
TOL = 1e-10

VARIANTS = {
    "separate": {"src_vocab_size": 11, "tgt_vocab_size": 13, "share_embeddings": False, "tie_output": False},
    "shared_tied_learned": {
        "src_vocab_size": 13,
        "tgt_vocab_size": 13,
        "share_embeddings": True,
        "tie_output": True,
        "positional": "learned",
    },
}


def _config(variant: str, norm_first: bool) -> TransformerConfig:
    return TransformerConfig(
        d_model=16,
        n_heads=4,
        n_encoder_layers=2,
        n_decoder_layers=2,
        d_ff=32,
        dropout=0.0,
        max_len=32,
        norm_first=norm_first,
        pad_id=PAD,
        **VARIANTS[variant],
    )


class Reference(nn.Module):
    """torch's nn.Transformer between embeddings, positions and an output layer of its own."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.src_embed = nn.Embedding(cfg.src_vocab_size, d)
        self.tgt_embed = self.src_embed if cfg.share_embeddings else nn.Embedding(cfg.tgt_vocab_size, d)
        if cfg.positional == "learned":
            self.src_pos, self.tgt_pos = nn.Embedding(cfg.max_len, d), nn.Embedding(cfg.max_len, d)
        else:
            # the table itself is tested in test_positional.py; the course stores it in float32
            self.register_buffer("pe", sinusoidal_encoding(cfg.max_len, d))
        with warnings.catch_warnings():  # pre-LN: torch notes that it skips its nested-tensor fast path
            warnings.simplefilter("ignore", UserWarning)
            self.core = nn.Transformer(
                d,
                cfg.n_heads,
                cfg.n_encoder_layers,
                cfg.n_decoder_layers,
                cfg.d_ff,
                dropout=0.0,
                batch_first=True,
                norm_first=cfg.norm_first,
            )
        if not cfg.norm_first:  # the paper's post-LN stacks end with the last layer's own norm
            self.core.encoder.norm = nn.Identity()
            self.core.decoder.norm = nn.Identity()
        self.generator = nn.Linear(d, cfg.tgt_vocab_size, bias=False)
        if cfg.tie_output:
            self.generator.weight = self.tgt_embed.weight
        self.inputs: list[Tensor] = []

    def _embed(self, ids: Tensor, table: nn.Embedding, pos: nn.Embedding | None) -> Tensor:
        T = ids.size(1)
        where = pos.weight[:T] if pos is not None else self.pe[:T]
        x = table(ids) * math.sqrt(self.cfg.d_model) + where  # (B, T, d_model)
        x.retain_grad()
        self.inputs.append(x)
        return x

    def memory(self, src: Tensor) -> Tensor:
        x = self._embed(src, self.src_embed, getattr(self, "src_pos", None))
        return self.core.encoder(x, src_key_padding_mask=to_key_padding_mask(src, PAD))

    def forward(self, src: Tensor, tgt: Tensor) -> Tensor:
        self.inputs = []
        x = self._embed(src, self.src_embed, getattr(self, "src_pos", None))
        y = self._embed(tgt, self.tgt_embed, getattr(self, "tgt_pos", None))
        out = self.core(
            x,
            y,
            tgt_mask=to_torch_attn_mask(causal_mask(tgt.size(1))),  # True = blocked, in torch
            src_key_padding_mask=to_key_padding_mask(src, PAD),
            tgt_key_padding_mask=to_key_padding_mask(tgt, PAD),
            memory_key_padding_mask=to_key_padding_mask(src, PAD),
        )
        return self.generator(out)  # (B, T, tgt_vocab_size)


def _add_mha(table: dict, prefix: str, mha: nn.MultiheadAttention, d: int) -> None:
    for j, n in enumerate("qkv"):
        rows = slice(j * d, (j + 1) * d)
        table[f"{prefix}w_{n}.weight"] = (mha.in_proj_weight, rows)
        table[f"{prefix}w_{n}.bias"] = (mha.in_proj_bias, rows)
    table[f"{prefix}w_o.weight"] = (mha.out_proj.weight, slice(None))
    table[f"{prefix}w_o.bias"] = (mha.out_proj.bias, slice(None))


def _add_norm(table: dict, prefix: str, norm: nn.LayerNorm) -> None:
    table[f"{prefix}gamma"] = (norm.weight, slice(None))
    table[f"{prefix}beta"] = (norm.bias, slice(None))


def _add_ff(table: dict, prefix: str, layer: nn.Module) -> None:
    for ours, theirs in (("w_1", layer.linear1), ("w_2", layer.linear2)):
        table[f"{prefix}ff.{ours}.weight"] = (theirs.weight, slice(None))
        table[f"{prefix}ff.{ours}.bias"] = (theirs.bias, slice(None))


def corresponding(ref: Reference) -> dict[str, tuple[Tensor, slice]]:
    """course parameter name -> (reference parameter, the rows of it that hold the same numbers)."""
    d, every = ref.cfg.d_model, slice(None)
    table = {
        "src_embed.weight": (ref.src_embed.weight, every),
        "tgt_embed.weight": (ref.tgt_embed.weight, every),
        "generator.weight": (ref.generator.weight, every),
    }
    if ref.cfg.positional == "learned":
        table["src_pos.embedding.weight"] = (ref.src_pos.weight, every)
        table["tgt_pos.embedding.weight"] = (ref.tgt_pos.weight, every)
    for i, layer in enumerate(ref.core.encoder.layers):
        p = f"encoder_layers.{i}."
        _add_mha(table, p + "self_attn.", layer.self_attn, d)
        _add_ff(table, p, layer)
        for k in (1, 2):
            _add_norm(table, f"{p}norm{k}.", getattr(layer, f"norm{k}"))
    for i, layer in enumerate(ref.core.decoder.layers):
        p = f"decoder_layers.{i}."
        _add_mha(table, p + "self_attn.", layer.self_attn, d)
        _add_mha(table, p + "cross_attn.", layer.multihead_attn, d)
        _add_ff(table, p, layer)
        for k in (1, 2, 3):
            _add_norm(table, f"{p}norm{k}.", getattr(layer, f"norm{k}"))
    if ref.cfg.norm_first:
        _add_norm(table, "encoder_norm.", ref.core.encoder.norm)
        _add_norm(table, "decoder_norm.", ref.core.decoder.norm)
    return table


def _pair_models(cfg: TransformerConfig, gen: torch.Generator) -> tuple[Transformer, Reference, dict]:
    with torch.random.fork_rng():
        torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
        ours = Transformer(cfg).double().eval()
        ref = Reference(cfg).double().eval()
    with torch.no_grad():
        for m in ours.modules():  # LayerNorms start at gamma 1, beta 0: move them so they matter
            if isinstance(m, LayerNorm):
                m.gamma.add_(0.1 * torch.randn(m.gamma.shape, generator=gen, dtype=D))
                m.beta.add_(0.1 * torch.randn(m.beta.shape, generator=gen, dtype=D))
        for p in ref.parameters():
            p.fill_(float("nan"))
        table = corresponding(ref)
        named = dict(ours.named_parameters())
        assert set(named) <= set(table), set(named) - set(table)
        for name, p in named.items():
            theirs, rows = table[name]
            theirs[rows].copy_(p)
    for name, p in ref.named_parameters():  # every reference number came from a course parameter
        assert not p.isnan().any(), f"reference parameter {name} not covered by the copy"
    return ours, ref, table


def _batch(cfg: TransformerConfig, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    src = torch.randint(1, cfg.src_vocab_size, (3, 7), generator=gen)
    src[1, 5:], src[2, 3:] = PAD, PAD  # two padded source sequences
    tgt = torch.randint(1, cfg.tgt_vocab_size, (3, 6), generator=gen)
    tgt[0, 5:], tgt[2, 2:] = PAD, PAD  # and two padded targets (position 0 is always real)
    return src, tgt


def _close(a: Tensor, b: Tensor, what: str) -> None:
    err = (a - b).abs().max().item()
    assert err < TOL * max(1.0, b.abs().max().item()), f"{what}: max |difference| {err:.3g}"


@pytest.mark.parametrize("norm_first", [False, True], ids=["post_ln", "pre_ln"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_forward_and_gradients_match_nn_transformer(gen, one_thread, variant, norm_first):
    cfg = _config(variant, norm_first)
    ours, ref, table = _pair_models(cfg, gen)
    src, tgt = _batch(cfg, gen)

    inputs: list[Tensor] = []  # what the course's two stacks receive: embedding * sqrt(d) + position

    def keep(_module: nn.Module, _args: tuple, out: Tensor) -> None:
        out.retain_grad()
        inputs.append(out)

    hooks = [ours.src_pos.register_forward_hook(keep), ours.tgt_pos.register_forward_hook(keep)]
    try:
        logits = ours(src, tgt)  # masks built by the model from pad_id: padding and causal
    finally:
        for h in hooks:
            h.remove()
    ref_logits = ref(src, tgt)
    assert logits.shape == ref_logits.shape == (3, 6, cfg.tgt_vocab_size)
    _close(logits, ref_logits, "logits")
    assert logits.abs().max() > 0.1  # not a degenerate all-zero output

    # memory on the real source positions (torch may zero padded rows on its fast path)
    real = src != PAD
    _close(ours.encode(src)[real], ref.memory(src)[real], "encoder output")

    # gradients of one scalar loss that weights every logit differently
    w = torch.randn(logits.shape, generator=gen, dtype=D)
    (logits * w).sum().backward()
    (ref_logits * w).sum().backward()
    for ours_in, ref_in, side in zip(inputs, ref.inputs, ("source", "target")):
        _close(ours_in.grad, ref_in.grad, f"gradient w.r.t. the {side} stack input")
    for name, p in ours.named_parameters():
        theirs, rows = table[name]
        assert p.grad is not None and theirs.grad is not None, name
        _close(p.grad, theirs.grad[rows], f"gradient of {name}")
    assert sum(p.grad.abs().sum() for p in ours.parameters()) > 0
