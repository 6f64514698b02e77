"""Checkers for lesson 15 (training in parallel): sharding a batch, and the gradient all-reduce by hand.

`check_average_gradients` runs the learner's function inside 2 real gloo processes. They are
started with the "fork" start method (`course_lib.distributed.run_workers`), so a function defined
in a notebook reaches them without being pickled; in every process a toy model gets its half of a
fresh random batch, and the learner's all-reduce must leave the same gradients as DDP's.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..distributed import all_reduce_sum, run_workers, shard_rows
from . import NOT_WRITTEN, CheckResult, checker, fail, fresh_generator, ok, run_trials


def reference_shard(x: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """Rows rank, rank + world_size, ... of x: the library's rule (`shard_rows`)."""
    return x[rank::world_size]


@checker(shard_rows)
def check_shard(fn: Callable[[torch.Tensor, int, int], torch.Tensor]) -> CheckResult:
    """fn(x, rank, world_size) -> this rank's rows of x. Any rule passes that gives every row to
    exactly one rank, keeps the rows whole, and gives the ranks sizes that differ by at most one."""
    g = fresh_generator()

    def trial(uneven: bool = False) -> str | None:
        n = int(torch.randint(2, 40, (), generator=g))
        world = int(torch.randint(1, min(n, 8) + 1, (), generator=g))
        if uneven:  # a batch that does not split evenly: n = 7, 3 ranks
            n, world = 7, 3
        ids = torch.randperm(1000, generator=g)[:n]
        x = torch.stack([ids, -ids], dim=1)  # (n, 2) rows with distinct ids
        shards = []
        for r in range(world):
            s = fn(x.clone(), r, world)
            if not isinstance(s, torch.Tensor):
                return f"return a tensor of rows, got {type(s).__name__}"
            if s.dim() != 2 or s.shape[1] != 2:
                return f"for x of shape {tuple(x.shape)} a shard should have shape (rows, 2), got {tuple(s.shape)}"
            shards.append(s)
        rows = torch.cat(shards)[:, 0].tolist()
        if len(rows) != len(set(rows)):
            return f"with {world} ranks and {n} rows, some rows go to two ranks (or twice to one)"
        if sorted(rows) != sorted(ids.tolist()):
            return f"with {world} ranks and {n} rows, some rows go to no rank"
        if not all(bool((s[:, 1] == -s[:, 0]).all()) for s in shards):
            return "keep every row whole: take rows of x, not single numbers"
        sizes = [len(s) for s in shards]
        if max(sizes) - min(sizes) > 1:
            return f"the ranks' shares should differ by at most one row, got sizes {sizes} for {n} rows"
        return None

    return run_trials(
        "sharding",
        [lambda: trial(uneven=True)] + [trial] * 7,
        "every row goes to exactly one rank, in balanced shares.",
    )


# --- the gradient all-reduce by hand --------------------------------------------------------------
def toy_model(seed: int) -> nn.Module:
    """A small MLP, float64, the same on every rank for the same seed."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3)).double()


def _toy_batch(seed: int, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed + 1)
    return torch.randn(rows, 6, generator=g, dtype=torch.float64), torch.randn(
        rows, 3, generator=g, dtype=torch.float64
    )


def _grads(model: nn.Module) -> list[torch.Tensor]:
    return [p.grad.detach().clone() for p in model.parameters()]


def _average_gradients_trials(rank: int, world_size: int, fn: Callable, seeds: list[int], rows: int) -> list:
    """In each process: the learner's all-reduce and DDP's on this rank's half of each batch."""
    from torch.nn.parallel import DistributedDataParallel

    out = []
    for seed in seeds:
        x, y = _toy_batch(seed, rows)
        x, y = x[rank::world_size], y[rank::world_size]
        mine = toy_model(seed)
        nn.functional.mse_loss(mine(x), y).backward()  # the mean over this rank's rows
        before = _grads(mine)
        try:
            fn(mine, world_size)
            error = None
        except Exception as e:  # reported to the learner in one line
            error = f"{type(e).__name__}: {e}"
        ddp = DistributedDataParallel(toy_model(seed))
        nn.functional.mse_loss(ddp(x), y).backward()
        out.append((before, _grads(mine), _grads(ddp.module), error))
    return out


def _whole_batch_grads(seed: int, rows: int) -> list[torch.Tensor]:
    model = toy_model(seed)
    x, y = _toy_batch(seed, rows)
    nn.functional.mse_loss(model(x), y).backward()
    return _grads(model)


def _largest(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return max(float((p - q).abs().max()) for p, q in zip(a, b))


@checker(all_reduce_sum, torch.nn.parallel.DistributedDataParallel)
def check_average_gradients(fn: Callable[[nn.Module, int], None], world_size: int = 2) -> CheckResult:
    """fn(model, world_size) runs after loss.backward() in every process of a gloo group and must
    leave in each parameter's .grad the average over the ranks (what DDP leaves there)."""
    g = fresh_generator()
    seeds = [int(s) for s in torch.randint(0, 2**31 - 1, (3,), generator=g)]
    rows = 2 * world_size * int(torch.randint(1, 5, (), generator=g))  # equal halves: mean of means
    try:
        results = run_workers(_average_gradients_trials, world_size, fn, seeds, rows, timeout=60)
    except Exception as e:
        first = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        return fail(f"all-reduce by hand: the processes failed ({first})")
    for seed, per_rank in zip(seeds, zip(*results)):
        whole = _whole_batch_grads(seed, rows)
        for rank, (before, got, ddp, error) in enumerate(per_rank):
            if error is not None and error.startswith("NotImplementedError"):
                return fail(f"all-reduce by hand: {NOT_WRITTEN}")
            if error is not None:
                return fail(f"all-reduce by hand: your code raised {error} on rank {rank}")
            if _largest(got, ddp) < 1e-12:
                continue
            if _largest(got, before) == 0:
                return fail(
                    "all-reduce by hand: the gradients are still this rank's own: all_reduce every p.grad"
                )
            summed = [world_size * d for d in ddp]
            if _largest(got, summed) < 1e-12:
                return fail(
                    "all-reduce by hand: all_reduce adds the ranks' gradients: divide by world_size "
                    "to average them, as DDP does"
                )
            return fail(
                f"all-reduce by hand: on rank {rank} the gradients differ from DDP's by up to "
                f"{_largest(got, ddp):.3g}"
            )
        if _largest(per_rank[0][2], whole) > 1e-12:  # pragma: no cover - a property of DDP itself
            return fail("all-reduce by hand: DDP disagrees with the whole batch (unexpected)")
    return ok(
        f"all-reduce by hand: in {world_size} processes your gradients equal DDP's and the whole "
        "batch's on 3 fresh batches."
    )
