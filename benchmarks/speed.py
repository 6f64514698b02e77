"""Rows 3 to 6: attention, a training step, cached generation, and the FLOP rate,
each against a reference measured in the same run (interleaved)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib.attention import MultiHeadAttention, copy_mha_to_torch
from course_lib.decode import greedy_decode
from course_lib.device import one_thread
from course_lib.flops import generation_flops, matmul_flops, training_step_flops
from course_lib.layers import LayerNorm
from course_lib.model import Transformer, TransformerConfig

from .baseline import TorchSeq2Seq
from .table import Line
from .timing import fmt_seconds, interleaved

PAD = 0


# --- row 3: multi-head attention -------------------------------------------------------
def _attention_timings(B: int, T: int, d: int, h: int, repeats: int, device: torch.device):
    torch.manual_seed(0)
    fast = MultiHeadAttention(d, h).to(device)
    naive = MultiHeadAttention(d, h, fused=False).to(device)
    naive.load_state_dict(fast.state_dict())
    ref = nn.MultiheadAttention(d, h, batch_first=True).to(device)
    copy_mha_to_torch(fast, ref)
    x = torch.randn(B, T, d, device=device, requires_grad=True)
    grad = torch.randn(B, T, d, device=device)
    with torch.no_grad():  # the three compute the same function
        want = ref(x, x, x, need_weights=False)[0]
        for m in (fast, naive):
            err = (m(x) - want).abs().max().item()
            if err > 1e-4:
                raise AssertionError(f"MultiHeadAttention differs from nn.MultiheadAttention by {err}")

    def fwd_bwd(module: nn.Module, call: Callable[[], Tensor]) -> Callable[[], None]:
        def run() -> None:
            module.zero_grad(set_to_none=True)
            x.grad = None
            call().backward(grad)

        return run

    return interleaved(
        {
            "torch": fwd_bwd(ref, lambda: ref(x, x, x, need_weights=False)[0]),
            "fast": fwd_bwd(fast, lambda: fast(x)),
            "naive": fwd_bwd(naive, lambda: naive(x)),
        },
        repeats=repeats,
        device=device,
    )


def attention_lines(
    shapes: list[tuple[int, int, int, int]], repeats: int, device: torch.device
) -> list[Line]:
    """Self-attention forward + backward (into the input and every weight), no mask."""
    lines = []
    for B, T, d, h in shapes:
        t = _attention_timings(B, T, d, h, repeats, device)
        shape = f"B={B}, T={T}, d_model={d}, h={h}"
        torch_ms = fmt_seconds(t.median("torch"))
        r = t.ratio("fast", "torch")
        lines.append(
            Line(
                3,
                f"MultiHeadAttention fwd+bwd, fast path / nn.MultiheadAttention ({shape})",
                f"{r:.2f}x ({fmt_seconds(t.median('fast'))} vs {torch_ms})",
                "<= 1.05x",
                r <= 1.05,
            )
        )
        r = t.ratio("naive", "torch")
        lines.append(
            Line(
                3,
                f"MultiHeadAttention fwd+bwd, teaching path / nn.MultiheadAttention ({shape})",
                f"{r:.2f}x ({fmt_seconds(t.median('naive'))} vs {torch_ms})",
                "(readable path, no target)",
                None,
            )
        )
    return lines


# --- rows 4 and 6: one training step ------------------------------------------------------
@dataclass
class StepBatch:
    src: Tensor  # (B, S)
    tgt_in: Tensor  # (B, T)
    tgt_out: Tensor  # (B, T)


def random_batch(
    cfg: TransformerConfig, B: int, S: int, T: int, device: torch.device, seed: int = 0
) -> StepBatch:
    """Random ids with some padding at the end of each row, like a real batch."""
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(3, cfg.src_vocab_size, (B, S), generator=g)
    tgt = torch.randint(3, cfg.tgt_vocab_size, (B, T + 1), generator=g)
    for i in range(B):
        src[i, S - int(torch.randint(0, S // 4 + 1, (1,), generator=g)) :] = PAD
        tgt[i, T + 1 - int(torch.randint(0, T // 4 + 1, (1,), generator=g)) :] = PAD
    tgt[:, 0] = 1  # SOS
    return StepBatch(src.to(device), tgt[:, :-1].contiguous().to(device), tgt[:, 1:].contiguous().to(device))


def make_step(model: nn.Module, batch: StepBatch) -> Callable[[], float]:
    """forward, cross-entropy over real tokens, backward, Adam: one training step."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.98), eps=1e-9)
    model.train()

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        logits = model(batch.src, batch.tgt_in)  # (B, T, V)
        loss = F.cross_entropy(logits.flatten(0, 1), batch.tgt_out.flatten(), ignore_index=PAD)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def with_teaching_layernorm(model: nn.Module) -> nn.Module:
    for m in model.modules():
        if isinstance(m, LayerNorm):
            m.fused = False
    return model


def training_step_lines(
    cfg: TransformerConfig, batch: StepBatch, repeats: int, device: torch.device, label: str
) -> tuple[list[Line], float, float]:
    """Row 4. Returns the lines, our median step time, and the torch step time."""
    torch.manual_seed(0)
    ours = Transformer(cfg).to(device)
    torch.manual_seed(0)
    before = with_teaching_layernorm(Transformer(cfg).to(device))
    theirs = TorchSeq2Seq(cfg).to(device)
    t = interleaved(
        {
            "torch": make_step(theirs, batch),
            "ours": make_step(ours, batch),
            "ours, step-by-step LayerNorm": make_step(before, batch),
        },
        repeats=repeats,
        device=device,
    )
    torch_s = fmt_seconds(t.median("torch"))
    r = t.ratio("ours", "torch")
    lines = [
        Line(
            4,
            f"training step (fwd+bwd+Adam), course Transformer / nn.Transformer ({label})",
            f"{r:.2f}x ({fmt_seconds(t.median('ours'))} vs {torch_s})",
            "<= 1.05x",
            r <= 1.05,
        ),
        Line(
            4,
            "the same with the step-by-step LayerNorm (before the change in docs/benchmarks.md)",
            f"{t.ratio('ours, step-by-step LayerNorm', 'torch'):.2f}x",
            "(for comparison)",
            None,
        ),
    ]
    return lines, t.median("ours"), t.median("torch")


def matmul_peak(
    device: torch.device, dtype: torch.dtype = torch.float32, n: int = 2048
) -> Callable[[], None]:
    """A large square matmul: the best FLOP rate this device reaches at this precision."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    return lambda: torch.mm(a, b)


def flop_rate_lines(
    configs: list[tuple[str, TransformerConfig, StepBatch]], repeats: int, device: torch.device, n: int
) -> list[Line]:
    """Row 6: the analytic FLOPs of a training step per second, as a share of the matmul peak,
    the two timed interleaved (pairwise ratios)."""
    lines = []
    peak_fn = matmul_peak(device, n=n)
    peak_flops = matmul_flops(n, n, n)
    for label, cfg, batch in configs:
        torch.manual_seed(0)
        step = make_step(Transformer(cfg).to(device), batch)
        B, S = batch.src.shape
        flops = training_step_flops(cfg, S, batch.tgt_in.size(1), B)
        t = interleaved({"step": step, "peak": peak_fn}, repeats=repeats, device=device)
        share = t.ratio("peak", "step") * flops / peak_flops  # (flops / t_step) / (peak / t_peak)
        rate = flops / t.median("step") / 1e9
        peak = peak_flops / t.median("peak") / 1e9
        lines.append(
            Line(
                6,
                f"training-step FLOP rate / float32 matmul peak ({label})",
                f"{share:.0%} ({rate:.1f} of {peak:.1f} GFLOP/s; {flops / 1e9:.2f} GFLOP per step)",
                "(no target)",
                None,
            )
        )
    return lines


# --- row 5: generation with and without the KV cache -------------------------------------
def generation_lines(
    cfg: TransformerConfig, src: Tensor, n_tokens: int, repeats: int, device: torch.device, label: str
) -> list[Line]:
    """Greedy generation of exactly n_tokens (no end token), with the cache and without; on the
    CPU with torch's threads and with one thread (a decoding step is a few small matmuls)."""
    cfg = replace(cfg, max_len=max(cfg.max_len, n_tokens + 1), dropout=0.0)
    torch.manual_seed(0)
    model = Transformer(cfg).to(device).eval()
    src = src.to(device)

    def run(use_cache: bool) -> Callable[[], Tensor]:
        return lambda: greedy_decode(model, src, 1, None, n_tokens, use_cache=use_cache)

    same = torch.equal(run(True)(), run(False)())
    S = src.size(1)
    flop_ratio = generation_flops(cfg, S, n_tokens, use_cache=False) / generation_flops(cfg, S, n_tokens)
    settings = [(f"{torch.get_num_threads()} threads", contextlib.nullcontext)]
    if device.type == "cpu" and torch.get_num_threads() > 1:
        settings.append(("1 thread", one_thread))
    lines = []
    for threads, context in settings:
        with context():
            t = interleaved(
                {"cache": run(True), "no cache": run(False)}, repeats=repeats, warmup=1, device=device
            )
        r = t.ratio("no cache", "cache")
        lines.append(
            Line(
                5,
                f"greedy generation of {n_tokens} tokens, speed-up of the KV cache ({label}, {threads})",
                f"{r:.1f}x ({fmt_seconds(t.median('cache'))} vs {fmt_seconds(t.median('no cache'))}, "
                f"{t.median('cache') / n_tokens * 1e3:.2f} ms per cached token; {flop_ratio:.0f}x fewer FLOPs; "
                f"same tokens: {same})",
                ">= 5x",
                r >= 5 and same,
            )
        )
    return lines
