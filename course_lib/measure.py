"""Measuring what a computation costs on the CPU: the bytes of its tensors, and its time.

`tensor_memory(fn, ...)` counts memory at the level of torch's operators. While `fn` runs, every
tensor an operator returns is recorded (through a `TorchDispatchMode`, torch's hook under every
operator call), with the bytes of the storage it lives in; a storage counts as freed when the last
tensor using it is garbage. That gives two honest, machine-independent numbers:

  * `peak_bytes`: the most bytes of such tensors alive at one moment;
  * `largest_bytes`: the bytes of the largest single tensor an operator produced.

What it does not see: scratch memory a kernel allocates and frees inside one operator, the inputs
given to `fn` (they existed before), and the allocator's caching. It counts what the algorithm
*keeps*, which is what FlashAttention's tiling changes, and it gives the same count on every machine.
On a GPU one would read `torch.cuda.max_memory_allocated()` instead.
"""

from __future__ import annotations

import statistics
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from .validate import InputTypeError, check_int


@dataclass(frozen=True)
class MemoryReport:
    """Bytes counted while a function ran (see the module docstring)."""

    peak_bytes: int  # most bytes of operator outputs alive at once
    largest_bytes: int  # the largest single operator output
    largest_shape: tuple[int, ...]  # its shape


class _Counter(TorchDispatchMode):
    def __init__(self, inputs: set[tuple[int, int]]) -> None:
        super().__init__()
        self.inputs = inputs  # storages that existed before (the arguments): not counted
        self.refs: dict[tuple[int, int], int] = {}  # storage -> number of live tensors using it
        self.sizes: dict[tuple[int, int], int] = {}
        self.live = self.peak = self.largest = 0
        self.largest_shape: tuple[int, ...] = ()

    def _release(self, key: tuple[int, int]) -> None:
        self.refs[key] -= 1
        if self.refs[key] == 0:
            self.live -= self.sizes.pop(key)
            del self.refs[key]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor) or t.device.type == "meta":
                continue
            storage = t.untyped_storage()
            key = (storage.data_ptr(), storage.nbytes())
            if key in self.inputs:
                continue  # a view of an input: no new memory
            if key not in self.refs:
                self.refs[key], self.sizes[key] = 0, storage.nbytes()
                self.live += storage.nbytes()
                self.peak = max(self.peak, self.live)
            self.refs[key] += 1
            weakref.finalize(t, self._release, key)
            nbytes = t.numel() * t.element_size()
            if nbytes > self.largest:
                self.largest, self.largest_shape = nbytes, tuple(t.shape)
        return out


def tensor_memory(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> MemoryReport:
    """Run `fn(*args, **kwargs)` (under no_grad) and report the bytes of the tensors it made.

    Pass the inputs as arguments: tensors among them (and their views) are not counted."""
    if not callable(fn):
        raise InputTypeError(f"fn must be callable, got {type(fn).__name__}")
    inputs = {
        (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
        for t in tree_flatten((args, kwargs))[0]
        if isinstance(t, torch.Tensor)
    }
    counter = _Counter(inputs)
    with torch.no_grad(), counter:
        result = fn(*args, **kwargs)
        del result  # the result is freed too (torch tensors go as soon as no name holds them)
    return MemoryReport(counter.peak, counter.largest, counter.largest_shape)


def time_call(fn: Callable[..., Any], *args: Any, repeats: int = 5, warmup: int = 1, **kwargs: Any) -> float:
    """Median wall time of `fn(*args, **kwargs)` in seconds, over `repeats` runs after `warmup` runs
    (under no_grad)."""
    if not callable(fn):
        raise InputTypeError(f"fn must be callable, got {type(fn).__name__}")
    check_int(repeats, "repeats", 1)
    check_int(warmup, "warmup", 0)
    times = []
    with torch.no_grad():
        for i in range(warmup + repeats):
            start = time.perf_counter()
            fn(*args, **kwargs)
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return statistics.median(times)


def loglog_slope(x: list[float], y: list[float]) -> float:
    """The slope of log y against log x (least squares): y ~ x^slope."""
    if len(x) != len(y) or len(x) < 2:
        raise ValueError(f"need two lists of the same length >= 2, got {len(x)} and {len(y)} values")
    if min(x) <= 0 or min(y) <= 0:
        raise ValueError("a log-log slope needs positive values")
    lx = torch.tensor(x, dtype=torch.float64).log()
    ly = torch.tensor(y, dtype=torch.float64).log()
    lx, ly = lx - lx.mean(), ly - ly.mean()
    return float((lx * ly).sum() / (lx * lx).sum())
