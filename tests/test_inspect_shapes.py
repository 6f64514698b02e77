import pytest
import torch

from course_lib.inspect_shapes import ShapeRow, format_shape_table, trace_shapes
from course_lib.model import Transformer, TransformerConfig


def _randint(gen, lo, hi):
    return int(torch.randint(lo, hi + 1, (1,), generator=gen))


def _model(gen, **kw):
    h = _randint(gen, 1, 4)
    cfg = TransformerConfig(
        _randint(gen, 5, 40),
        _randint(gen, 5, 40),
        d_model=h * _randint(gen, 1, 6) * 2,
        n_heads=h,
        n_encoder_layers=_randint(gen, 1, 3),
        n_decoder_layers=_randint(gen, 1, 3),
        d_ff=_randint(gen, 4, 40),
        dropout=0.0,
        max_len=32,
        **kw,
    )
    return Transformer(cfg).eval()


def _ids(gen, B, T, V):
    return torch.randint(1, V, (B, T), generator=gen)


@pytest.mark.parametrize("kw", [{}, {"norm_first": True}, {"tie_output": False}])
def test_shapes_at_every_stage(gen, kw):
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
    m = _model(gen, **kw)
    c = m.cfg
    B, S, T = _randint(gen, 1, 3), _randint(gen, 1, 9), _randint(gen, 1, 9)
    src, tgt = _ids(gen, B, S, c.src_vocab_size), _ids(gen, B, T, c.tgt_vocab_size)
    rows = trace_shapes(m, src, tgt)
    n_enc, n_dec = c.n_encoder_layers, c.n_decoder_layers
    assert len(rows) == 2 + 3 * n_enc + 1 + 2 + 4 * n_dec + 1 + 1
    by = {r.stage: r for r in rows}
    d, h, d_k = c.d_model, c.n_heads, c.d_model // c.n_heads
    assert by["source token embedding (x sqrt(d_model))"].inputs == {"ids": (B, S)}
    assert by["memory (encoder output)"].output == tuple(m.encode(src).shape) == (B, S, d)
    for i in range(n_enc):
        sa = by[f"encoder[{i}] self-attention"]
        assert sa.inside["weights"] == (B, h, S, S)
        assert by[f"encoder[{i}] feed-forward"].inside["hidden"] == (B, S, c.d_ff)
    for i in range(n_dec):
        assert by[f"decoder[{i}] masked self-attention"].inside["weights"] == (B, h, T, T)
        ca = by[f"decoder[{i}] cross-attention"]
        assert ca.inputs == {"Q from decoder": (B, T, d), "K, V from memory": (B, S, d)}
        assert ca.inside == {"Q heads": (B, h, T, d_k), "K, V heads": (B, h, S, d_k), "weights": (B, h, T, S)}
        assert ca.output == (B, T, d)
    assert rows[-1].stage.startswith("logits") and rows[-1].output == (B, T, c.tgt_vocab_size)
    assert ("tied" in rows[-1].stage) == c.tie_output
    # the order is the order of the forward pass
    stages = [r.stage for r in rows]
    assert stages.index("memory (encoder output)") < stages.index("target + positional encoding")


def test_model_left_as_it_was(gen):
    torch.manual_seed(0)
    m = _model(gen)
    src, tgt = _ids(gen, 2, 6, m.cfg.src_vocab_size), _ids(gen, 2, 4, m.cfg.tgt_vocab_size)
    before = m(src, tgt)
    trace_shapes(m, src, tgt)
    assert all(not mod._forward_hooks for mod in m.modules())
    assert all(not mod.keep_weights for mod in m.modules() if hasattr(mod, "keep_weights"))
    assert torch.equal(before, m(src, tgt))


def test_bad_inputs_raise_clear_errors(gen):
    m = _model(gen)
    src = _ids(gen, 2, 6, m.cfg.src_vocab_size)
    with pytest.raises(ValueError, match="course_lib Transformer"):
        trace_shapes(torch.nn.Linear(2, 2), src, src)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        trace_shapes(m, src, src + 1000)
    assert all(not mod._forward_hooks for mod in m.modules())


def test_format_names_sizes():
    rows = [ShapeRow("cross", {"Q from decoder": (2, 5, 8)}, (2, 5, 8), {"weights": (2, 4, 5, 7)})]
    text = format_shape_table(rows, {2: "B", 5: "T", 7: "S", 8: "d_model", 4: "h"})
    header, rule, line = text.splitlines()
    assert header.split(" | ")[0].strip() == "stage" and set(rule) <= {"-", "+"}
    assert "Q from decoder (B, T, d_model)" in line and "weights (B, h, T, S)" in line
    assert "(2, 5, 8)" in format_shape_table(rows)
    with pytest.raises(ValueError, match="own symbol"):
        format_shape_table(rows, {2: "B", 5: "B"})
