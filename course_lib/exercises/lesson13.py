"""Checkers for lesson 13, "A decoder-only GPT on text".

check_block(fn)      fn(block: GPTBlock, x (B, T, d_model), mask) -> (B, T, d_model): the pre-LN
                     decoder-only block's forward, compared with `GPTBlock.forward`
check_generate(fn)   fn(model: GPT, prompt (1, T), n_new: int) -> ids (1, n_new): greedy generation
                     with the KV cache, compared with `course_lib.gpt.greedy`; the checker also
                     counts the positions fed to the model, so a loop that re-reads the whole
                     sequence every step is told to use the cache

Both run on fresh random models and inputs (random sizes, random weights, random prompts).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ..gpt import GPT, GPTBlock, GPTConfig, generate, greedy
from ..masks import causal_mask
from . import CheckResult, checker, compare, fresh_generator, run_trials


def _randint(g: torch.Generator, lo: int, hi: int) -> int:
    return int(torch.randint(lo, hi + 1, (1,), generator=g))


def _random_block(g: torch.Generator) -> GPTBlock:
    h = _randint(g, 1, 4)
    d = h * _randint(g, 2, 6)
    torch.manual_seed(_randint(g, 0, 2**31 - 1))
    block = GPTBlock(d, h, _randint(g, 4, 24)).double().eval()
    with torch.no_grad():  # LayerNorm's gamma and beta away from 1 and 0, so that forgetting one shows
        for m in (block.norm1, block.norm2):
            m.gamma.copy_(1 + 0.5 * torch.randn(d, generator=g, dtype=torch.float64))
            m.beta.copy_(0.5 * torch.randn(d, generator=g, dtype=torch.float64))
    return block


@checker(GPTBlock.forward)
def check_block(fn: Callable[[GPTBlock, Tensor, Tensor | None], Tensor]) -> CheckResult:
    """The decoder-only block's forward on fresh random blocks and inputs, causal mask included."""
    g = fresh_generator()

    def trial() -> str | None:
        block = _random_block(g)
        B, T = _randint(g, 1, 3), _randint(g, 2, 9)
        x = 2 * torch.randn(B, T, block.norm1.d_model, generator=g, dtype=torch.float64) + 1
        mask = causal_mask(T)
        with torch.no_grad():
            want = block(x, mask)
            got = fn(block, x.clone(), mask)
        return compare(got, want, "the block's output", atol=1e-8, rtol=1e-8)

    return run_trials("decoder-only block", [trial] * 4, "matches GPTBlock on random blocks and inputs.")


def _random_gpt(g: torch.Generator) -> GPT:
    h = _randint(g, 1, 3)
    cfg = GPTConfig(
        vocab_size=_randint(g, 5, 30),
        d_model=h * _randint(g, 2, 6),
        n_heads=h,
        n_layers=_randint(g, 1, 3),
        d_ff=_randint(g, 4, 24),
        max_len=40,
    )
    torch.manual_seed(_randint(g, 0, 2**31 - 1))
    model = GPT(cfg).double().eval()
    with torch.no_grad():  # sharper logits than at initialisation, so that the argmax is clear
        model.embed.weight.mul_(3.0)
    return model


@checker(greedy, generate)
def check_generate(fn: Callable[[GPT, Tensor, int], Tensor]) -> CheckResult:
    """Greedy generation with the KV cache on fresh random models and prompts."""
    g = fresh_generator()

    def trial() -> str | None:
        model = _random_gpt(g)
        T, n = _randint(g, 1, 8), _randint(g, 2, 12)
        prompt = torch.randint(0, model.cfg.vocab_size, (1, T), generator=g)
        want = greedy(model, prompt, n)
        fed: list[int] = []
        hook = model.register_forward_pre_hook(lambda _m, args, kwargs=None: fed.append(args[0].size(1)))
        try:
            with torch.no_grad():
                got = fn(model, prompt.clone(), n)
        finally:
            hook.remove()
        if not isinstance(got, Tensor):
            return f"return a tensor of ids (1, {n}), got {type(got).__name__}"
        if got.dim() == 1:
            got = got[None]
        if tuple(got.shape) != (1, n):
            return f"the ids have shape {tuple(got.shape)}, expected (1, {n}): only the new tokens"
        if not torch.equal(got.long(), want):
            i = int((got.long() != want).nonzero()[0, 1])
            return f"token {i} differs: got {int(got[0, i])}, expected {int(want[0, i])} (the argmax)"
        if sum(fed) > T + n:
            return (
                f"the right tokens, but the model read {sum(fed)} positions for a prompt of {T} and {n} "
                f"new tokens: with the cache, feed the prompt once and then only the newest token"
            )
        return None

    return run_trials(
        "generation with the cache", [trial] * 4, "the same tokens as greedy(), reading each once."
    )
