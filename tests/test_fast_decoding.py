"""Token-by-token decoding skips the per-layer checks once its inputs are checked (issue 11):
the lean step must compute exactly what the checked teaching path computes."""

import pytest
import torch

from course_lib.decode import generate, greedy_decode
from course_lib.masks import padding_mask
from course_lib.model import Transformer, TransformerConfig
from course_lib.validate import check_tensor, checks_skipped, inputs_checked

pytestmark = pytest.mark.usefixtures("one_thread")
SOS, EOS, PAD = 1, 2, 0


def model_and_sources(gen, B=3, S=9, dtype=torch.float64):
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
    cfg = TransformerConfig(19, 17, d_model=32, n_heads=4, n_encoder_layers=2, n_decoder_layers=2, d_ff=48)
    model = Transformer(cfg).to(dtype).eval()
    src = torch.randint(3, 19, (B, S), generator=gen)
    src[0, S // 2 :] = PAD  # one padded row
    return model, src


def test_a_cached_step_without_checks_equals_the_checked_step(gen):
    model, src = model_and_sources(gen)
    mask = padding_mask(src, PAD)
    memory = model.encode(src, mask)
    tokens = torch.randint(3, 17, (src.size(0), 6), generator=gen)
    checked, lean = model.new_cache(), model.new_cache()
    with torch.no_grad():
        for t in range(tokens.size(1)):
            step = tokens[:, t : t + 1]
            a = model.decode(step, memory, mask, cache=checked)
            with inputs_checked():
                b = model.decode(step, memory, mask, cache=lean)
            assert torch.equal(a, b), f"step {t}: the lean step differs from the checked one"
    for c, d in zip(checked, lean):
        assert torch.equal(c.self_kv.k, d.self_kv.k) and torch.equal(c.cross_kv.v, d.cross_kv.v)


def test_generate_equals_a_loop_that_checks_every_call(gen):
    """The library's loop (checks skipped inside) against the plainest loop: argmax of the
    whole prefix re-run each step, every call fully checked."""
    model, src = model_and_sources(gen, dtype=torch.float32)
    n = 12
    ours = greedy_decode(model, src, SOS, None, n)
    ys = torch.full((src.size(0), 1), SOS)
    with torch.no_grad():
        for _ in range(n):
            ys = torch.cat([ys, model(src, ys)[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(ours, ys[:, 1:])


def test_checks_come_back_after_the_block_even_after_an_error():
    with pytest.raises(ValueError):
        check_tensor([1, 2], "x")
    assert not checks_skipped()
    with pytest.raises(RuntimeError), inputs_checked():
        assert checks_skipped()
        assert check_tensor([1, 2], "x") == [1, 2]  # skipped inside
        raise RuntimeError("boom")
    assert not checks_skipped()
    with pytest.raises(ValueError, match="must be a torch.Tensor"):
        check_tensor([1, 2], "x")


def test_a_strategy_that_returns_ids_outside_the_vocabulary_is_caught(gen):
    model, src = model_and_sources(gen, dtype=torch.float32)
    V = model.cfg.tgt_vocab_size
    with pytest.raises(ValueError, match=rf"choose must return ids in \[0, {V - 1}\]"):
        generate(model, src, SOS, EOS, 5, lambda logits: logits.argmax(-1) + V)
    with pytest.raises(ValueError, match="integer ids of shape"):
        generate(model, src, SOS, EOS, 5, lambda logits: logits[:, 0])
    assert not checks_skipped()
