"""Fair timings on a shared, noisy machine: warm up, then interleave the contenders.

Each repeat runs every contender once (A, B, C, then C, B, A on the next repeat, so none
always goes first), and a ratio is the median over repeats of the *paired* ratios
t_A / t_B: a burst of load from another process slows both members of a pair.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch


def use_all_cores() -> int:
    """torch.set_num_threads to the cores this process may use; returns the count."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    torch.set_num_threads(n)
    return n


def synchronize(device: torch.device | str | None) -> None:
    """Wait for queued GPU work, so a wall-clock time covers it."""
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Timings:
    """Seconds per call of each contender, one entry per repeat, in interleaved order."""

    times: dict[str, list[float]] = field(default_factory=dict)

    def median(self, name: str) -> float:
        return statistics.median(self.times[name])

    def ratio(self, a: str, b: str) -> float:
        """Median over repeats of t_a / t_b (paired: both measured back to back)."""
        return statistics.median(x / y for x, y in zip(self.times[a], self.times[b]))


def interleaved(
    fns: dict[str, Callable[[], object]],
    repeats: int = 7,
    warmup: int = 2,
    device: torch.device | str | None = None,
) -> Timings:
    """Time each function `repeats` times after `warmup` untimed calls, interleaving them."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got {repeats} and {warmup}")
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    synchronize(device)
    out = Timings({name: [] for name in names})
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            t0 = time.perf_counter()
            fns[name]()
            synchronize(device)
            out.times[name].append(time.perf_counter() - t0)
    return out


def fmt_seconds(t: float) -> str:
    """A readable duration: 812 us, 45.3 ms, 3.21 s, 4 min 05 s."""
    if t < 1e-3:
        return f"{t * 1e6:.0f} us"
    if t < 1:
        return f"{t * 1e3:.1f} ms"
    if t < 120:
        return f"{t:.2f} s"
    return f"{int(t // 60)} min {t % 60:04.1f} s"
