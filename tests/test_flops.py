"""The analytic FLOP counts against torch's own FLOP counter on the real model."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from course_lib.attention import keep_attention_weights
from course_lib.flops import (
    approx_training_flops,
    attention_flops,
    feed_forward_flops,
    forward_flops,
    generation_flops,
    matmul_flops,
    training_step_flops,
)
from course_lib.model import Transformer, TransformerConfig
from course_lib.params import count_parameters


def random_config(gen, **kw):
    h = int(torch.randint(1, 4, (1,), generator=gen))
    d_k = 2 * int(torch.randint(2, 6, (1,), generator=gen))
    kw = {
        "d_model": h * d_k,
        "n_heads": h,
        "n_encoder_layers": int(torch.randint(0, 3, (1,), generator=gen)),
        "n_decoder_layers": int(torch.randint(1, 3, (1,), generator=gen)),
        "d_ff": int(torch.randint(4, 40, (1,), generator=gen)),
        "dropout": 0.0,
        "max_len": 64,
        **kw,
    }
    return TransformerConfig(int(torch.randint(5, 30, (1,), generator=gen)), **kw)


def counted(fn) -> int:
    with FlopCounterMode(display=False) as fc:
        fn()
    return fc.get_total_flops()


def test_matmul_flops_matches_torch_counter(gen):
    m, k, n = (int(v) for v in torch.randint(1, 50, (3,), generator=gen))
    a, b = torch.randn(m, k, generator=gen), torch.randn(k, n, generator=gen)
    assert matmul_flops(m, k, n) == counted(lambda: a @ b) == 2 * m * k * n


@pytest.mark.parametrize("trial", range(4))
def test_forward_and_training_step_match_torch_counter(gen, trial):
    torch.manual_seed(trial)
    cfg = random_config(gen, norm_first=bool(trial % 2), tie_output=trial < 2)
    B, S, T = (int(v) for v in torch.randint(1, 12, (3,), generator=gen))
    model = Transformer(cfg)
    src = torch.randint(1, cfg.src_vocab_size, (B, S), generator=gen)
    tgt = torch.randint(1, cfg.tgt_vocab_size, (B, T), generator=gen)
    with keep_attention_weights(model):  # the teaching path: every matmul visible to the counter
        fwd = counted(lambda: model(src, tgt))
        logits = model(src, tgt)
        bwd = counted(lambda: logits.sum().backward())
    assert forward_flops(cfg, S, T, B)["total"] == fwd
    assert training_step_flops(cfg, S, T, B) == fwd + bwd == 3 * fwd


def test_forward_parts_sum_to_total():
    cfg = TransformerConfig.base()
    parts = forward_flops(cfg, 25, 25, 2)
    assert sum(v for k, v in parts.items() if k != "total") == parts["total"]
    # the FFN outweighs attention at the paper's sizes and short sentences (d_ff = 4 d_model)
    assert parts["encoder_ffn"] > parts["encoder_attention"]


@pytest.mark.parametrize("use_cache", [True, False])
def test_generation_flops_match_torch_counter(gen, use_cache):
    torch.manual_seed(3)
    cfg = random_config(gen)
    S, N = (int(v) for v in torch.randint(1, 10, (2,), generator=gen))
    model = Transformer(cfg).eval()
    src = torch.randint(1, cfg.src_vocab_size, (1, S), generator=gen)

    def generate() -> None:
        memory = model.encode(src)
        ys = torch.ones(1, 1, dtype=torch.long)
        cache = model.new_cache() if use_cache else None
        for _ in range(N):
            inp = ys[:, -1:] if use_cache else ys
            h = model.decode(inp, memory, cache=cache)
            nxt = model.generator(h[:, -1]).argmax(-1, keepdim=True)  # (1, 1)
            ys = torch.cat([ys, nxt.clamp(min=1)], 1)

    with torch.no_grad(), keep_attention_weights(model):
        assert generation_flops(cfg, S, N, use_cache=use_cache) == counted(generate)


def test_cache_saves_flops_and_quadratic_without():
    cfg = TransformerConfig(20, d_model=64, n_heads=4, d_ff=128, n_encoder_layers=1, n_decoder_layers=2)
    with_cache = generation_flops(cfg, 16, 256, use_cache=True)
    without = generation_flops(cfg, 16, 256, use_cache=False)
    assert without > 20 * with_cache


def test_attention_cost_does_not_depend_on_heads_and_ffn_formula():
    assert attention_flops(64, 5, 7) == 2 * (2 * 5 * 64 * 64 + 2 * 7 * 64 * 64 + 2 * 5 * 7 * 64)
    assert feed_forward_flops(8, 32, 3) == 2 * 2 * 3 * 8 * 32


def test_six_n_rule_is_a_rough_estimate():
    # the paper's base model on a pair of 25-token sentences: a source token meets only the
    # encoder's parameters and a target token only the decoder's, so D counts one side
    cfg = TransformerConfig.base(vocab_size=1000)
    exact = training_step_flops(cfg, 25, 25, 1)
    rough = approx_training_flops(count_parameters(Transformer(cfg)), 25)
    assert 0.9 < rough / exact < 1.1


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "8"])
def test_bad_lengths_raise_clear_errors(bad):
    cfg = TransformerConfig(10, d_model=8, n_heads=2, d_ff=16)
    with pytest.raises(ValueError, match="expected an integer src_len >= 1"):
        forward_flops(cfg, bad, 4)
    with pytest.raises(ValueError, match="expected an integer n_tokens >= 1"):
        generation_flops(cfg, 4, bad)
