from __future__ import annotations

import torch

from course_lib.exercises.lesson13 import check_block, check_generate
from course_lib.gpt import greedy


# --- check_block -------------------------------------------------------------------------------
def block_right(block, x, mask):
    h = block.norm1(x)
    x = x + block.self_attn(h, h, h, mask)
    return x + block.ff(block.norm2(x))


def block_post_ln(block, x, mask):
    x = block.norm1(x + block.self_attn(x, x, x, mask))
    return block.norm2(x + block.ff(x))


def block_no_mask(block, x, mask):
    return block_right(block, x, None)


def block_no_residual(block, x, mask):
    h = block.norm1(x)
    x = block.self_attn(h, h, h, mask)
    return x + block.ff(block.norm2(x))


def test_block_accepts_right_answers():
    r = check_block(block_right)
    assert r.passed and str(r).startswith("✅"), r.message
    for fn in (lambda b, x, m: b(x, m), lambda b, x, m: b.forward(x, m)):
        r = check_block(fn)  # the block's own forward, through torch's module call: refused at run time
        assert not r.passed and "GPTBlock.forward: write it yourself" in r.message


def test_block_rejects_wrong_answers():
    for fn in (block_post_ln, block_no_mask, block_no_residual):
        r = check_block(fn)
        assert not r.passed and str(r).startswith("❌") and "differs" in r.message, fn.__name__
    r = check_block(lambda b, x, m: x[:, :-1])
    assert not r.passed and "shape" in r.message
    r = check_block(lambda b, x, m: 1 / 0)
    assert not r.passed and "ZeroDivisionError" in r.message and "\n" not in str(r)


# --- check_generate ----------------------------------------------------------------------------
def generate_right(model, prompt, n_new):
    cache = model.new_cache()
    logits = model(prompt, cache=cache)[:, -1]
    out = []
    for _ in range(n_new):
        nxt = logits.argmax(-1)
        out.append(nxt)
        logits = model(nxt[:, None], cache=cache)[:, -1]
    return torch.stack(out, 1)


def generate_no_cache(model, prompt, n_new):
    seq = prompt
    for _ in range(n_new):
        nxt = model(seq)[:, -1].argmax(-1)
        seq = torch.cat([seq, nxt[:, None]], 1)
    return seq[:, prompt.size(1) :]


def generate_with_prompt(model, prompt, n_new):
    return torch.cat([prompt, generate_right(model, prompt, n_new)], 1)


def generate_argmin(model, prompt, n_new):
    cache = model.new_cache()
    logits = model(prompt, cache=cache)[:, -1]
    out = []
    for _ in range(n_new):
        nxt = logits.argmin(-1)
        out.append(nxt)
        logits = model(nxt[:, None], cache=cache)[:, -1]
    return torch.stack(out, 1)


def test_generate_accepts_right_answers():
    for fn in (generate_right, lambda m, p, n: generate_right(m, p, n)[0]):
        r = check_generate(fn)
        assert r.passed and str(r).startswith("✅"), r.message
    for fn in (greedy, lambda m, p, n: greedy(m, p, n)):
        r = check_generate(fn)
        assert not r.passed and "greedy: write it yourself" in r.message


def test_generate_rejects_wrong_answers():
    r = check_generate(generate_no_cache)
    assert not r.passed and "with the cache" in r.message
    r = check_generate(generate_with_prompt)
    assert not r.passed and "only the new tokens" in r.message
    r = check_generate(generate_argmin)
    assert not r.passed and "differs" in r.message
    r = check_generate(lambda m, p, n: None)
    assert not r.passed and "tensor" in r.message
