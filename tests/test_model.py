import pytest
import torch

from course_lib import Transformer, TransformerConfig, count_from_config, count_parameters
from course_lib.params import PAPER_BASE_PARAMS, PAPER_BIG_PARAMS, per_head_attention_params


def small(**kw):
    kw = {
        "d_model": 16,
        "n_heads": 4,
        "n_encoder_layers": 2,
        "n_decoder_layers": 2,
        "d_ff": 32,
        "dropout": 0.0,
        "max_len": 64,
        **kw,
    }
    return TransformerConfig(11, 13, **kw)


@pytest.mark.parametrize("kw", [{}, {"norm_first": True}, {"tie_output": False}, {"positional": "learned"}])
def test_analytic_count_equals_model(kw):
    cfg = small(**kw)
    assert count_parameters(Transformer(cfg)) == count_from_config(cfg)["total"]


def test_shared_embeddings_and_tied_output():
    cfg = TransformerConfig(
        20, d_model=16, n_heads=2, d_ff=32, n_encoder_layers=1, n_decoder_layers=1, share_embeddings=True
    )
    m = Transformer(cfg)
    assert m.src_embed is m.tgt_embed and m.generator.weight is m.tgt_embed.weight
    assert count_parameters(m) == count_from_config(cfg)["total"]


def test_paper_base_and_big_within_5_percent():
    base = count_from_config(TransformerConfig.base())["total"]
    big = count_from_config(TransformerConfig.big())["total"]
    assert abs(base / PAPER_BASE_PARAMS - 1) < 0.05, base
    assert abs(big / PAPER_BIG_PARAMS - 1) < 0.05, big


def test_gpt3_attention_parameters():
    per_head = per_head_attention_params(12288, 96)
    assert round(per_head / 1e6, 1) == 6.3
    assert round(96 * 96 * per_head / 1e9) == 58


def test_forward_shapes_and_decode_with_cache_matches(gen):
    torch.manual_seed(0)
    m = Transformer(small()).eval()
    src = torch.randint(1, 11, (3, 7), generator=gen)
    src[0, 5:] = 0
    tgt = torch.randint(1, 13, (3, 6), generator=gen)
    logits = m(src, tgt)
    assert logits.shape == (3, 6, 13)
    memory = m.encode(src)
    src_mask = (src != 0)[:, None, None, :]
    full = m.decode(tgt, memory, src_mask)
    cache = m.new_cache()
    steps = [m.decode(tgt[:, t : t + 1], memory, src_mask, cache=cache) for t in range(6)]
    assert (torch.cat(steps, 1) - full).abs().max() < 1e-5


def test_padding_does_not_change_real_outputs(gen):
    torch.manual_seed(1)
    m = Transformer(small()).eval()
    src = torch.randint(1, 11, (1, 5), generator=gen)
    tgt = torch.randint(1, 13, (1, 4), generator=gen)
    padded = torch.cat([src, torch.zeros(1, 3, dtype=torch.long)], 1)
    assert (m(src, tgt) - m(padded, tgt)).abs().max() < 1e-5
