"""Follow one batch through the Transformer and record the tensor shapes at every stage.

`trace_shapes(model, src, tgt)` runs `model(src, tgt)` once with forward hooks on its parts
(positional encodings, each encoder and decoder layer's attention, feed-forward and output,
the memory, the generator) and returns one `ShapeRow` per stage, in the order they ran.
`format_shape_table(rows, names)` prints them as a text table, with the sizes replaced by
their names (B, S, T, d_model, ...) when `names` is given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .attention import MultiHeadAttention, keep_attention_weights
from .model import Transformer
from .validate import check_token_ids


@dataclass(frozen=True)
class ShapeRow:
    """One stage of the forward pass: what went in, what came out, and what sits inside."""

    stage: str
    inputs: dict[str, tuple[int, ...]]
    output: tuple[int, ...]
    inside: dict[str, tuple[int, ...]]


def _arg(args: tuple, kwargs: dict, i: int, name: str) -> Tensor | None:
    return args[i] if len(args) > i else kwargs.get(name)


def trace_shapes(
    model: Transformer,
    src: Tensor,
    tgt: Tensor,
    src_mask: Tensor | None = None,
    tgt_mask: Tensor | None = None,
) -> list[ShapeRow]:
    """Run `model(src, tgt)` once (no gradients) and return the shape at every stage.

    src (B, S) and tgt (B, T) are token ids. The model's weights, mode and hooks are left
    as they were.
    """
    if not isinstance(model, Transformer):
        raise ValueError(f"trace_shapes expects a course_lib Transformer, got {type(model).__name__}")
    check_token_ids(src, "src", model.cfg.src_vocab_size)
    check_token_ids(tgt, "tgt", model.cfg.tgt_vocab_size)

    rows: list[ShapeRow] = []
    hidden: dict[int, tuple[int, ...]] = {}  # id(FeedForward) -> (B, T, d_ff) of its last call
    handles = []

    def add(stage: str, inputs: dict, output: Tensor, inside: dict | None = None) -> None:
        rows.append(ShapeRow(stage, inputs, tuple(output.shape), inside or {}))

    def on_pos(stage: str):
        def hook(mod: nn.Module, args: tuple, out: Tensor) -> None:
            add(f"{stage} token embedding (x sqrt(d_model))", {"ids": ids_of[stage]}, args[0])
            add(f"{stage} + positional encoding", {"x": tuple(args[0].shape)}, out)

        return hook

    def on_attn(stage: str):
        def hook(mod: MultiHeadAttention, args: tuple, kwargs: dict, out: Tensor) -> None:
            q, k = _arg(args, kwargs, 0, "query"), _arg(args, kwargs, 1, "key")
            k = q if k is None else k
            B, T_q, _ = q.shape
            T_k = k.size(1)
            if k is q:
                inputs = {"Q, K, V from x": tuple(q.shape)}
            else:
                inputs = {"Q from decoder": tuple(q.shape), "K, V from memory": tuple(k.shape)}
            inside = {
                "Q heads": (B, mod.n_heads, T_q, mod.d_k),
                "K, V heads": (B, mod.n_heads, T_k, mod.d_k),
                "weights": tuple(mod.attn_weights.shape),
            }
            add(stage, inputs, out, inside)

        return hook

    def on_w1(mod: nn.Module, args: tuple, out: Tensor) -> None:
        hidden[id(mod)] = tuple(out.shape)

    def on_ff(stage: str):
        def hook(mod: nn.Module, args: tuple, out: Tensor) -> None:
            add(stage, {"x": tuple(args[0].shape)}, out, {"hidden": hidden[id(mod.w_1)]})

        return hook

    def on_layer(stage: str):
        def hook(mod: nn.Module, args: tuple, out: Tensor) -> None:
            add(stage, {"x": tuple(args[0].shape)}, out)

        return hook

    def on_generator(mod: nn.Module, args: tuple, out: Tensor) -> None:
        tied = " (generator, tied to the embedding)" if model.cfg.tie_output else " (generator)"
        add("logits" + tied, {"x": tuple(args[0].shape)}, out)

    def on_memory(mod: nn.Module, args: tuple, out: Tensor) -> None:
        add("memory (encoder output)", {"x": tuple(args[0].shape)}, out)

    def on_dec_out(mod: nn.Module, args: tuple, out: Tensor) -> None:
        add("decoder output", {"x": tuple(args[0].shape)}, out)

    ids_of = {"source": tuple(src.shape), "target": tuple(tgt.shape)}
    reg = [
        (model.src_pos, on_pos("source")),
        (model.tgt_pos, on_pos("target")),
        (model.encoder_norm, on_memory),
        (model.decoder_norm, on_dec_out),
        (model.generator, on_generator),
    ]
    for i, layer in enumerate(model.encoder_layers):
        reg += [
            (layer.self_attn, on_attn(f"encoder[{i}] self-attention")),
            (layer.ff.w_1, on_w1),
            (layer.ff, on_ff(f"encoder[{i}] feed-forward")),
            (layer, on_layer(f"encoder[{i}] output")),
        ]
    for i, layer in enumerate(model.decoder_layers):
        reg += [
            (layer.self_attn, on_attn(f"decoder[{i}] masked self-attention")),
            (layer.cross_attn, on_attn(f"decoder[{i}] cross-attention")),
            (layer.ff.w_1, on_w1),
            (layer.ff, on_ff(f"decoder[{i}] feed-forward")),
            (layer, on_layer(f"decoder[{i}] output")),
        ]
    try:
        for mod, hook in reg:
            if isinstance(mod, MultiHeadAttention):
                handles.append(mod.register_forward_hook(hook, with_kwargs=True))
            else:
                handles.append(mod.register_forward_hook(hook))
        with torch.no_grad(), keep_attention_weights(model):
            model(src, tgt, src_mask, tgt_mask)
    finally:
        for h in handles:
            h.remove()
    return rows


def _fmt(shape: tuple[int, ...], names: Mapping[int, str] | None) -> str:
    if names is None:
        return str(tuple(shape))
    return "(" + ", ".join(names.get(s, str(s)) for s in shape) + ")"


def format_shape_table(rows: Sequence[ShapeRow], names: Mapping[int, str] | None = None) -> str:
    """A plain-text table: stage | input shape(s) | output shape | inside.

    names maps sizes to symbols, e.g. {2: "B", 7: "S", 5: "T", 32: "d_model"}; pick sizes that
    differ from one another so that each symbol is unambiguous.
    """
    if names is not None and len(set(names.values())) != len(names):
        raise ValueError(f"names must give each size its own symbol, got {dict(names)}")

    def join(d: dict) -> str:
        return "; ".join(f"{k} {_fmt(v, names)}" for k, v in d.items())

    table = [("stage", "input shape(s)", "output shape", "inside")]
    table += [(r.stage, join(r.inputs), _fmt(r.output, names), join(r.inside)) for r in rows]
    widths = [max(len(row[c]) for row in table) for c in range(3)]
    lines = []
    for n, row in enumerate(table):
        cells = [row[c].ljust(widths[c]) for c in range(3)] + [row[3]]
        lines.append(" | ".join(cells).rstrip())
        if n == 0:
            lines.append("-+-".join("-" * w for w in widths) + "-+-" + "-" * max(len(r[3]) for r in table))
    return "\n".join(lines)
