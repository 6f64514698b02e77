"""Pick the best available device and the matching precision."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


def pick_device(prefer: str | None = None) -> torch.device:
    """CUDA if present, else Apple's MPS, else the CPU. `prefer` forces one ("cpu", "cuda", "mps")."""
    if prefer is not None:
        if prefer == "cuda" and not torch.cuda.is_available():
            raise ValueError("prefer='cuda' but torch sees no CUDA device")
        if prefer == "mps" and not (torch.backends.mps.is_available()):
            raise ValueError("prefer='mps' but torch sees no Apple MPS device")
        if prefer not in ("cpu", "cuda", "mps"):
            raise ValueError(f"prefer must be 'cpu', 'cuda' or 'mps', got {prefer!r}")
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def device_of(model: torch.nn.Module) -> torch.device:
    """Where a model's parameters live (inputs must go there too)."""
    return next(model.parameters()).device


def describe_device(device: torch.device) -> str:
    """One line naming the device, for notebooks and benchmark tables."""
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    if device.type == "mps":
        return "mps: Apple GPU"
    return f"cpu: {torch.get_num_threads()} threads"


def autocast(device: torch.device, enabled: bool = True) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA (where matmuls run on tensor cores); a no-op elsewhere."""
    if enabled and device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def set_seed(seed: int) -> None:
    """Seed Python's, numpy's and torch's generators (CPU and CUDA) for a reproducible run."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run tiny models on one CPU thread: they are too small to gain from more, a busy
    machine slows a multi-threaded loop down badly, and the numbers no longer depend on
    how many cores the machine has."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
