"""Data parallelism (lesson 15): sharding a batch, the process group, and a launcher for notebooks.

* `shard_rows(batch, index, parts)` keeps rows index, index + parts, ... of a batch: rank r of N
  takes `shard_rows(global_batch, r, N)`, so the N shards together are exactly the global batch and
  no two ranks see the same example. Gradient accumulation splits a rank's shard the same way.
* The loss is a mean over the real (non-padding) target tokens of the *global* batch: each rank
  (and each micro-batch) sums its per-token losses and divides by the global token count, times
  the world size because DistributedDataParallel (DDP) averages the ranks' gradients. The sum of
  the pieces' gradients is then the gradient of the single-process loss, whatever the shards'
  token counts (`shard_loss_scale`).
* `init_from_env()` joins the process group that `torchrun` describes in the environment
  (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT): gloo on the CPU, nccl on CUDA.
* `run_workers(fn, world_size)` starts `world_size` local processes with the "fork" start method
  (so that `fn` may be defined in a notebook: nothing is pickled on the way in), joins them in a
  gloo group on a free local port, returns each rank's result, and always ends the processes,
  also after an error or a timeout.
* `ring_all_reduce_bytes` and `adam_mixed_precision_bytes` are the lesson's cost formulas.
"""

from __future__ import annotations

import contextlib
import io
import multiprocessing as mp
import os
import queue
import socket
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .data import PAD, Batch
from .validate import check_int


# --- sharding -----------------------------------------------------------------------------
def shard_rows(batch: Batch, index: int, parts: int) -> Batch:
    """Rows index, index + parts, index + 2 parts, ... of `batch` (rank `index` of `parts`).

    The padded width stays that of the whole batch (padding is masked, so it changes nothing but
    round-off); n_tokens is recounted for the rows kept."""
    check_int(parts, "parts", 1)
    check_int(index, "index", 0, parts - 1)
    if len(batch) < parts:
        raise ValueError(f"a batch of {len(batch)} rows cannot be split into {parts} non-empty shards")
    rows = slice(index, None, parts)
    tgt_out = batch.tgt_out[rows]
    return Batch(
        batch.src[rows],
        batch.tgt_in[rows],
        tgt_out,
        batch.src_mask[rows],
        batch.tgt_mask[rows],
        int((tgt_out != PAD).sum()),
        batch.pairs[rows],
    )


def shard_loss_scale(global_tokens: int, world_size: int) -> float:
    """The factor on a shard's *summed* token loss so that DDP's average of the ranks' gradients is
    the gradient of the global mean: world_size / global_tokens."""
    if global_tokens < 1 or world_size < 1:
        raise ValueError(f"need global_tokens >= 1 and world_size >= 1, got {global_tokens}, {world_size}")
    return world_size / global_tokens


# --- the process group --------------------------------------------------------------------
@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def info() -> DistInfo:
    """This process's place in the process group (rank 0 of 1 without one)."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    return DistInfo()


def launched_by_torchrun() -> bool:
    """True when the environment describes a process group (torchrun sets WORLD_SIZE and RANK)."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ and int(os.environ["WORLD_SIZE"]) >= 1


def backend_for(device: torch.device) -> str:
    """nccl for CUDA devices, gloo otherwise (the CPU)."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def init_from_env(device: torch.device) -> tuple[DistInfo, torch.device]:
    """Join the process group torchrun describes; returns (info, this rank's device).

    On CUDA each process drives the GPU numbered LOCAL_RANK on its node."""
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend_for(device))
    return info(), device


def all_reduce_sum(values: list[float], device: torch.device | str = "cpu") -> list[float]:
    """The sums over all ranks of a few numbers (float64); the numbers themselves without a group."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [float(v) for v in values]
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


# --- a launcher for notebooks and tests ---------------------------------------------------
def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(fn: Callable, rank: int, world_size: int, port: int, args: tuple, results: mp.Queue) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world_size),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    try:
        dist.init_process_group("gloo", rank=rank, world_size=world_size)
        try:
            out = fn(rank, world_size, *args)
        finally:
            dist.destroy_process_group()
        buffer = io.BytesIO()
        torch.save(out, buffer)  # plain bytes: torch's own queue pickling would share memory with a
        results.put((rank, True, buffer.getvalue()))  # process about to exit
    except BaseException:
        results.put((rank, False, traceback.format_exc()))


def _end(procs: list) -> None:
    """Ask, then force, every process still alive to stop; reap them all."""
    for p in procs:
        if p.is_alive():
            p.terminate()
    deadline = time.monotonic() + 5
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
        if p.is_alive():
            p.kill()
            p.join()


def run_workers(fn: Callable, world_size: int = 2, *args: object, timeout: float = 120.0) -> list:
    """Run fn(rank, world_size, *args) in `world_size` forked processes joined in a gloo group;
    returns the results in rank order (they travel back pickled: tensors, numbers, dicts).

    A worker's exception is raised here as a RuntimeError with its traceback. The processes are
    always ended, also on a timeout or a KeyboardInterrupt. Linux and macOS only ("fork")."""
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    import torch._dynamo  # noqa: F401  DDP imports it when built (seconds): once here, inherited by the fork

    ctx = mp.get_context("fork")
    results = ctx.Queue()
    port = free_port()
    procs = [
        ctx.Process(target=_worker, args=(fn, r, world_size, port, args, results), daemon=True)
        for r in range(world_size)
    ]
    out: dict[int, object] = {}
    try:
        for p in procs:
            p.start()
        deadline = time.monotonic() + timeout
        while len(out) < world_size:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(
                    f"{world_size - len(out)} of {world_size} workers did not finish in {timeout} s"
                )
            try:
                rank, good, value = results.get(timeout=min(left, 0.5))
            except queue.Empty:
                dead = [p for p in procs if p.exitcode not in (None, 0)]
                if dead and results.empty():
                    raise RuntimeError(f"a worker died with exit code {dead[0].exitcode}") from None
                continue
            if not good:
                raise RuntimeError(f"worker {rank} failed:\n{value}")
            out[rank] = torch.load(io.BytesIO(value), weights_only=False)
    finally:
        _end(procs)
        results.close()
    return [out[r] for r in range(world_size)]


@contextlib.contextmanager
def single_process_group() -> Iterator[None]:
    """A gloo group of one process (world_size = 1) for code that needs a group but no peers."""
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ["MASTER_PORT"] = str(free_port())
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


# --- costs --------------------------------------------------------------------------------
def ring_all_reduce_bytes(n_params: int, world_size: int, bytes_per_value: int = 4) -> float:
    """Bytes each rank sends (and receives) in a ring all-reduce of n_params values:
    2 (N - 1) / N x the gradient's bytes (a reduce-scatter, then an all-gather)."""
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    return 2 * (world_size - 1) / world_size * n_params * bytes_per_value


def adam_mixed_precision_bytes(n_params: int) -> dict[str, int]:
    """Memory per model for Adam in mixed precision (Rajbhandari et al., 2020): 16 bytes a parameter."""
    parts = {
        "weights (bf16)": 2,
        "gradients (bf16)": 2,
        "fp32 master weights": 4,
        "Adam first moment (fp32)": 4,
        "Adam second moment (fp32)": 4,
    }
    return {k: v * n_params for k, v in parts.items()}
