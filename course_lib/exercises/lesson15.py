"""Checkers for lesson 15 (training in parallel): each rank's share of a shuffled epoch, and the
gradient all-reduce by hand.

check_epoch_indices(fn)        fn(n, rank, world_size, epoch, seed) -> the list of dataset indices that
                               rank `rank` reads in epoch `epoch`, exactly as torch's DistributedSampler
                               (shuffle=True, drop_last=False) yields them after set_epoch(epoch);
                               every rank of each fresh (n, world_size, epoch, seed) is compared
check_average_gradients(fn)    fn(model, world_size) after backward(), inside 2 real gloo processes:
                               every .grad must hold the average over the ranks, as DDP leaves it

`check_average_gradients` starts its processes with the "fork" start method
(`course_lib.distributed.run_workers`), so a function defined in a notebook reaches them without
being pickled; in every process a toy model gets its half of a fresh random batch, and the learner's
all-reduce must leave the same gradients as DDP's.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable

import torch
from torch import nn
from torch.utils.data import DistributedSampler

from ..distributed import all_reduce_sum, run_workers, shard_rows
from . import NOT_WRITTEN, CheckResult, checker, fail, fresh_generator, ok, run_trials


def _randint(g: torch.Generator, lo: int, hi: int) -> int:
    """An int in [lo, hi]."""
    return int(torch.randint(lo, hi + 1, (1,), generator=g))


# --- each rank's share of a shuffled epoch ----------------------------------------------------------
def reference_epoch_indices(n: int, rank: int, world_size: int, epoch: int, seed: int = 0) -> list[int]:
    """What torch's DistributedSampler over a dataset of n examples yields on `rank` in `epoch`."""
    sampler = DistributedSampler(
        range(n), num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=False
    )
    sampler.set_epoch(epoch)
    return list(sampler)


def _padded_order(n: int, world_size: int, generator_seed: int | None) -> list[int]:
    """The epoch's order (a permutation from a generator seeded with `generator_seed`, or 0..n-1 when
    None), padded to a multiple of world_size by repeating it from its start."""
    if generator_seed is None:
        order = list(range(n))
    else:
        order = torch.randperm(n, generator=torch.Generator().manual_seed(generator_seed)).tolist()
    total = -(-n // world_size) * world_size
    while len(order) < total:
        order += order[: total - len(order)]
    return order


def _strided(order: list[int], world_size: int) -> list[list[int]]:
    """Every rank's share as the sampler takes it: every world_size-th index from position rank."""
    return [order[r::world_size] for r in range(world_size)]


def _blocks(order: list[int], world_size: int) -> list[list[int]]:
    """Every rank's share as a contiguous block of the order (a valid split, not the sampler's)."""
    k = len(order) // world_size
    return [order[r * k : (r + 1) * k] for r in range(world_size)]


def _as_ints(out: object) -> tuple[list[int] | None, str | None]:
    """The learner's answer as a list of ints (lists, tuples and 1-D integer tensors are accepted),
    or a hint saying what was returned instead."""
    expected = "return a list of ints (a 1-D tensor of ints is accepted too)"
    if out is None:
        return None, f"{expected}, got None: did you forget the return?"
    if type(out).__module__ == "numpy" and hasattr(out, "tolist"):
        out = out.tolist()
    if isinstance(out, torch.Tensor):
        if out.dim() != 1:
            return None, f"{expected}, got a tensor of shape {tuple(out.shape)}"
        if out.is_floating_point() or out.is_complex() or out.dtype == torch.bool:
            return None, f"{expected}, got a tensor of {out.dtype}"
        return [int(v) for v in out.tolist()], None
    if not isinstance(out, list | tuple):
        return None, f"{expected}, got {type(out).__name__}"
    values = []
    for v in out:
        if isinstance(v, torch.Tensor) and v.dim() == 0 and not v.is_floating_point():
            v = v.item()
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            return None, f"{expected}, got an element of type {type(v).__name__}"
        values.append(int(v))
    return values, None


@checker(
    DistributedSampler,
    DistributedSampler.__iter__,
    DistributedSampler.set_epoch,
    shard_rows,
    label="each rank's share of an epoch",
)
def check_epoch_indices(fn: Callable[[int, int, int, int, int], list[int]]) -> CheckResult:
    """fn(n, rank, world_size, epoch, seed) for every rank of fresh configurations, against torch's
    DistributedSampler(range(n), num_replicas=world_size, rank=rank, shuffle=True, seed=seed) after
    set_epoch(epoch). Fixed first configurations expose the typical mistakes: n = 50 on 4 ranks in
    epoch 3 (padding, the same permutation on every rank, the epoch, the strided split, the shuffle),
    n = 2 on 5 ranks (padding more than once), one rank with seed 7 (the seed), n = 12 on 3 ranks."""
    g = fresh_generator()
    tensors: list[bool] = []

    def trial(n: int, world: int, epoch: int, seed: int) -> Callable[[], str | None]:
        def run() -> str | None:
            where = f"n={n}, world_size={world}, epoch={epoch}, seed={seed}"
            got = []
            for rank in range(world):
                out = fn(n, rank, world, epoch, seed)
                ints, hint = _as_ints(out)
                if hint is not None:
                    return f"{hint} (rank {rank}; {where})"
                tensors.append(isinstance(out, torch.Tensor))
                got.append(ints)
            expected = [reference_epoch_indices(n, r, world, epoch, seed) for r in range(world)]
            if got == expected:
                return None
            outside = [i for share in got for i in share if not 0 <= i < n]
            if outside:
                return f"index {outside[0]} is not in a dataset of {n} examples (0 to {n - 1}; {where})"
            lengths, per_rank = [len(share) for share in got], len(expected[0])
            if len(set(lengths)) > 1:
                return (
                    f"the ranks' shares have different lengths {lengths} ({where}): DDP would hang, "
                    "as a rank with fewer batches ends its epoch early and the others wait for ever in an "
                    "all-reduce it never joins. Pad the shuffled order to a multiple of world_size by "
                    "repeating it from its start (more than once if n < world_size), so that every rank "
                    f"reads {per_rank} {'index' if per_rank == 1 else 'indices'}"
                )
            if lengths[0] < per_rank:
                return (
                    f"every rank should read ceil(n / world_size) = {per_rank} indices, got {lengths[0]} "
                    f"({where}): pad the order to a multiple of world_size, don't drop the last examples"
                )
            if lengths[0] > per_rank:
                return (
                    f"every rank should read ceil(n / world_size) = {per_rank} indices, got {lengths[0]} "
                    f"({where}): a rank reads only its share of the epoch"
                )
            missed = sorted(set(range(n)) - {i for share in got for i in share})
            if missed:
                return (
                    f"the ranks' shares overlap and {len(missed)} of the {n} examples are read by no rank "
                    f"({where}): every rank must draw the same permutation, from a torch.Generator seeded "
                    "with seed + epoch (not with the rank, and not the global random state)"
                )
            plain = _padded_order(n, world, None)
            if got in (_strided(plain, world), _blocks(plain, world)):
                return (
                    f"the order is not shuffled ({where}): draw it with torch.randperm(n, generator=g), "
                    "g a torch.Generator seeded with seed + epoch"
                )
            if got == _blocks(_padded_order(n, world, seed + epoch), world):
                return (
                    f"each rank reads a contiguous block of the shuffled order ({where}): a valid split "
                    "(every example once), but not the sampler's. DistributedSampler gives rank r every "
                    "world_size-th index of the padded order, starting at position r"
                )
            if epoch != 0 and got == _strided(_padded_order(n, world, seed), world):
                return (
                    f"your order is the same in every epoch ({where} gives epoch 0's order): seed the "
                    "generator with seed + epoch, so that each epoch (set_epoch) reshuffles"
                )
            if seed != 0 and got == _strided(_padded_order(n, world, epoch), world):
                return f"the seed argument is ignored ({where}): seed the generator with seed + epoch"
            rank = next(r for r in range(world) if got[r] != expected[r])
            i = next(j for j, (a, b) in enumerate(zip(got[rank], expected[rank])) if a != b)
            return (
                f"rank {rank}'s indices differ from the sampler's at position {i} (got {got[rank][i]}, "
                f"expected {expected[rank][i]}; {where}): the order is torch.randperm(n) drawn from a "
                "torch.Generator seeded with seed + epoch, padded by repeating its start, and rank r "
                "takes every world_size-th index from position r"
            )

        return run

    fixed = [(50, 4, 3, 0), (2, 5, 1, 3), (9, 1, 2, 7), (12, 3, 0, 0)]
    fresh = [
        (_randint(g, 1, 60), _randint(g, 1, 8), _randint(g, 0, 30), _randint(g, 0, 10_000)) for _ in range(6)
    ]
    result = run_trials(
        "each rank's share of an epoch",
        [trial(*c) for c in fixed + fresh],
        f"every rank reads what DistributedSampler gives it, on {len(fixed + fresh)} epochs "
        "(padding, a single rank and fresh sizes, seeds and epochs included).",
    )
    if result.passed and any(tensors):
        return ok(
            f"{result.message[:-1]}; a list of ints is what the sampler yields, your tensor is fine too."
        )
    return result


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
