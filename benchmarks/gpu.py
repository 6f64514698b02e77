"""Row 7: the paper's base model (d_model=512, 6+6 layers) training on sequences of 256
tokens with bf16 autocast, the fused attention path and torch.compile: tokens per second,
and model FLOP utilisation (MFU) against the bf16 matmul peak measured in the same run.

MFU = (analytic FLOPs of a training step, course_lib.flops) / step time / peak FLOP rate.
The code takes the device as an argument, so its logic can be checked on the CPU (without
compile) by the smoke test; the row itself is measured only where CUDA is present.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from course_lib.flops import matmul_flops, training_step_flops
from course_lib.model import Transformer, TransformerConfig

from .table import Line
from .timing import synchronize

TARGET_MFU = 0.35


@dataclass
class Throughput:
    seconds_per_step: float
    tokens_per_second: float  # source + target tokens
    flops_per_second: float  # analytic model FLOPs


def matmul_peak_flops(device: torch.device, dtype: torch.dtype, n: int = 8192, repeats: int = 10) -> float:
    """FLOP/s of a large square matmul at `dtype`: the most this device does at that precision."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        torch.mm(a, b)
    times = []
    for _ in range(repeats):
        synchronize(device)
        t0 = time.perf_counter()
        for _ in range(5):
            torch.mm(a, b)
        synchronize(device)
        times.append((time.perf_counter() - t0) / 5)
    return matmul_flops(n, n, n) / statistics.median(times)


def training_throughput(
    cfg: TransformerConfig,
    batch_size: int,
    seq_len: int,
    device: torch.device,
    bf16: bool = True,
    compile: bool = True,
    steps: int = 10,
    warmup: int = 3,
) -> Throughput:
    """Train on random full-length sequences (no padding) and time the steady state."""
    torch.manual_seed(0)
    model = Transformer(cfg).to(device).train()  # MultiHeadAttention's fused path is the default
    fused_adam = {"fused": True} if device.type == "cuda" else {}
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.98), eps=1e-9, **fused_adam)
    forward = torch.compile(model) if compile else model
    V = cfg.tgt_vocab_size
    src = torch.randint(3, cfg.src_vocab_size, (batch_size, seq_len), device=device)
    tgt = torch.randint(3, V, (batch_size, seq_len + 1), device=device)
    tgt_in, tgt_out = tgt[:, :-1], tgt[:, 1:]

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        amp = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        with amp:
            logits = forward(src, tgt_in)  # (B, T, V)
        loss = F.cross_entropy(logits.float().flatten(0, 1), tgt_out.flatten())
        loss.backward()
        opt.step()

    for _ in range(warmup):  # the first calls compile
        step()
    times = []
    for _ in range(steps):
        synchronize(device)
        t0 = time.perf_counter()
        step()
        synchronize(device)
        times.append(time.perf_counter() - t0)
    t = statistics.median(times)
    flops = training_step_flops(cfg, seq_len, seq_len, batch_size)
    return Throughput(t, 2 * batch_size * seq_len / t, flops / t)


def gpu_lines(quick: bool) -> list[Line]:
    """Row 7 where CUDA is present; otherwise one line saying it is unmeasured."""
    what = "base model (d_model 512, 6+6 layers, seq 256), bf16 autocast + fused attention + torch.compile"
    if not torch.cuda.is_available():
        return [Line(7, what, "no CUDA device: unmeasured", f">= {TARGET_MFU:.0%} MFU", None)]
    device = torch.device("cuda")
    if quick:  # a small model, no compile: checks the path, not the figure
        cfg = TransformerConfig(
            1000, d_model=128, n_heads=4, d_ff=512, n_encoder_layers=2, n_decoder_layers=2
        )
        batch, seq, compile_, what = 8, 64, False, "quick: small model, bf16 autocast, no compile"
    else:
        cfg = TransformerConfig.base(vocab_size=37000)  # the paper's base model
        batch, seq, compile_ = 64, 256, True
    peak = matmul_peak_flops(device, torch.bfloat16, n=2048 if quick else 8192)
    fp32 = training_throughput(cfg, batch, seq, device, bf16=False, compile=False, steps=3 if quick else 10)
    bf16 = training_throughput(cfg, batch, seq, device, bf16=True, compile=False, steps=3 if quick else 10)
    best = training_throughput(cfg, batch, seq, device, bf16=True, compile=compile_, steps=3 if quick else 10)
    mfu = best.flops_per_second / peak
    name = torch.cuda.get_device_name(device)
    return [
        Line(
            7,
            f"{what}, {name}, batch {batch}",
            f"MFU {mfu:.0%}: {best.tokens_per_second:,.0f} tokens/s, {best.flops_per_second / 1e12:.1f} "
            f"of {peak / 1e12:.0f} TFLOP/s (bf16 matmul peak measured)",
            f">= {TARGET_MFU:.0%} MFU",
            None if quick else mfu >= TARGET_MFU,
        ),
        Line(
            7,
            "the same model without compile: bf16 eager / float32 eager",
            f"{bf16.tokens_per_second:,.0f} / {fp32.tokens_per_second:,.0f} tokens/s "
            f"(MFU {bf16.flops_per_second / peak:.0%} / {fp32.flops_per_second / peak:.0%})",
            "(for comparison)",
            None,
        ),
    ]
