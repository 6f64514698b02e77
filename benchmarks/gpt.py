"""The decoder-only GPT (course_lib.gpt) against the same network built from torch's modules,
and generation with the KV cache against generation without it.

    python -m benchmarks.gpt                 # the shipped model's sizes, 256 generated tokens
    python -m benchmarks.gpt --quick         # tiny sizes: checks that it runs

Training step: one forward, backward and AdamW step on a batch of token windows, ours (GPT) and
torch's (TorchGPT: nn.TransformerEncoderLayer, norm_first=True, with a causal mask; same sizes,
same weights copied), interleaved; the ratio is the median of the paired per-repeat ratios.
Generation: greedy, one prompt of 8 tokens continued by N tokens, with and without the cache.
Both run on the threads torch has (set them with --threads).
"""

from __future__ import annotations

import argparse
import sys

import torch

from course_lib.gpt import GPT, GPTConfig, greedy, lm_loss, torch_reference

from .table import Line, markdown_table
from .timing import fmt_seconds, interleaved

ROW = 9  # the row number this benchmark takes in `make bench`'s table


def _config(quick: bool, n_new: int) -> GPTConfig:
    if quick:
        return GPTConfig(64, 32, 2, 2, 64, max_len=max(64, n_new + 8))
    return GPTConfig(512, 128, 4, 4, 512, max_len=max(128, n_new + 8))


def measure(quick: bool = False, n_new: int = 256, repeats: int = 7, batch: int = 16) -> dict[str, float]:
    torch.manual_seed(0)
    cfg = _config(quick, n_new)
    ours = GPT(cfg)
    theirs = torch_reference(ours)
    T = 128 if not quick else 32
    ids = torch.randint(0, cfg.vocab_size, (batch, T + 1))
    opts = {
        "ours": torch.optim.AdamW(ours.parameters(), lr=1e-4),
        "torch": torch.optim.AdamW(theirs.parameters(), lr=1e-4),
    }
    models = {"ours": ours.train(), "torch": theirs.train()}

    def step(name: str) -> None:
        loss = lm_loss(models[name], ids)
        opts[name].zero_grad(set_to_none=True)
        loss.backward()
        opts[name].step()

    t_step = interleaved({n: (lambda n=n: step(n)) for n in models}, repeats=repeats, warmup=2)
    ours.eval()
    prompt = torch.randint(0, cfg.vocab_size, (1, 8))
    t_gen = interleaved(
        {
            "cache": lambda: greedy(ours, prompt, n_new),
            "no cache": lambda: greedy(ours, prompt, n_new, use_cache=False),
        },
        repeats=max(3, repeats // 2),
        warmup=1,
    )
    return {
        "step_ours": t_step.median("ours"),
        "step_torch": t_step.median("torch"),
        "step_ratio": t_step.ratio("ours", "torch"),
        "gen_cache": t_gen.median("cache"),
        "gen_no_cache": t_gen.median("no cache"),
        "gen_speedup": t_gen.ratio("no cache", "cache"),
        "n_new": n_new,
        "label": f"d_model {cfg.d_model}, {cfg.n_layers} layers, h {cfg.n_heads}, d_ff {cfg.d_ff}, V {cfg.vocab_size}",
        "batch": f"batch {batch} x {T} tokens",
    }


def lines(quick: bool = False, repeats: int = 7) -> list[Line]:
    """Table lines (row 9 of `make bench`)."""
    n_new = 32 if quick else 256
    r = measure(quick, n_new, repeats=3 if quick else repeats)
    return [
        Line(
            ROW,
            f"GPT training step, ours / torch's TransformerEncoderLayer stack ({r['label']}; {r['batch']})",
            f"{r['step_ratio']:.3f}x ({fmt_seconds(r['step_ours'])} vs {fmt_seconds(r['step_torch'])})",
            "<= 1.05x",
            r["step_ratio"] <= 1.05,
        ),
        Line(
            ROW,
            f"GPT greedy generation of {r['n_new']} tokens, without / with the KV cache",
            f"{r['gen_speedup']:.1f}x ({fmt_seconds(r['gen_no_cache'])} vs {fmt_seconds(r['gen_cache'])})",
            ">= 5x" if not quick else "-",
            r["gen_speedup"] >= 5 if not quick else None,
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpt", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes (seconds)")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    print(markdown_table(lines(a.quick, a.repeats)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
