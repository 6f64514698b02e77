"""Lesson 15's checkers: each rank's share of a shuffled epoch (against torch's DistributedSampler), and
the gradient all-reduce by hand in 2 gloo processes."""

import random

import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler

from course_lib.distributed import shard_rows
from course_lib.exercises.lesson15 import (
    check_average_gradients,
    check_epoch_indices,
    reference_epoch_indices,
)


# --- each rank's share of a shuffled epoch ----------------------------------------------------------
def epoch_indices(n, rank, world_size, epoch, seed=0, *, by="seed+epoch", pad=True, split="strided"):
    """The right answer, and (through the keywords) the typical mistakes."""
    if by == "none":  # no shuffle
        order = list(range(n))
    elif by == "global":  # the global random state: every rank its own permutation
        order = torch.randperm(n).tolist()
    else:
        seeds = {"seed+epoch": seed + epoch, "rank": seed + epoch + rank, "seed": seed, "epoch": epoch}
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seeds[by])).tolist()
    per_rank = -(-n // world_size)
    total = per_rank * world_size
    if pad == "once":  # pads by at most n: too little when n < world_size
        order += order[: total - n]
    elif pad == "drop":  # drops the remainder instead
        total = (n // world_size) * world_size
        order = order[:total]
    elif pad:
        while len(order) < total:
            order += order[: total - len(order)]
    if split == "blocks":
        return order[rank * per_rank : (rank + 1) * per_rank]
    return order[rank::world_size]


def test_reference_is_the_sampler_with_padding():
    shares = [reference_epoch_indices(10, r, 3, epoch=1, seed=0) for r in range(3)]
    assert [len(s) for s in shares] == [4, 4, 4]
    assert set(sum(shares, [])) == set(range(10))
    tiny = [reference_epoch_indices(2, r, 5, epoch=0) for r in range(5)]  # padded more than once
    assert [len(s) for s in tiny] == [1] * 5 and sorted(sum(tiny, [])) in ([0, 0, 0, 1, 1], [0, 0, 1, 1, 1])
    assert reference_epoch_indices(9, 0, 1, epoch=2, seed=7) != reference_epoch_indices(
        9, 0, 1, epoch=3, seed=7
    )


def test_epoch_indices_accepts_the_right_answer():
    r = check_epoch_indices(epoch_indices, repeat=2)
    assert r.passed and str(r).startswith("✅"), r.message
    assert "tensor" not in r.message


def test_epoch_indices_accepts_a_tensor_and_says_a_list_is_expected():
    r = check_epoch_indices(
        lambda n, r, w, e, s=0: torch.tensor(epoch_indices(n, r, w, e, s), dtype=torch.long)
    )
    assert r.passed and "list of ints" in r.message and "tensor is fine" in r.message
    assert check_epoch_indices(lambda n, r, w, e, s=0: tuple(epoch_indices(n, r, w, e, s)))


def test_epoch_indices_accepts_the_global_generator_seeded_the_same_way():
    def seeded_globally(n, rank, world_size, epoch, seed=0):
        torch.manual_seed(seed + epoch)
        order = torch.randperm(n).tolist()
        while len(order) % world_size:
            order += order[: world_size - len(order) % world_size]
        return order[rank::world_size]

    with torch.random.fork_rng():
        r = check_epoch_indices(seeded_globally)
    assert r.passed, r.message


def test_epoch_indices_catches_a_permutation_per_rank():
    for by in ("rank", "global"):
        r = check_epoch_indices(lambda n, r, w, e, s=0, by=by: epoch_indices(n, r, w, e, s, by=by))
        assert not r.passed and "overlap" in r.message and "read by no rank" in r.message, r.message
        assert "same permutation" in r.message and "seed + epoch" in r.message


def test_epoch_indices_catches_an_ignored_epoch_and_seed():
    r = check_epoch_indices(lambda n, r, w, e, s=0: epoch_indices(n, r, w, e, s, by="seed"))
    assert not r.passed and "same in every epoch" in r.message and "set_epoch" in r.message
    r = check_epoch_indices(lambda n, r, w, e, s=0: epoch_indices(n, r, w, e, s, by="epoch"))
    assert not r.passed and "seed argument is ignored" in r.message


def test_epoch_indices_catches_missing_padding():
    r = check_epoch_indices(lambda n, r, w, e, s=0: epoch_indices(n, r, w, e, s, pad=False))
    assert (
        not r.passed and "different lengths [13, 13, 12, 12]" in r.message and "DDP would hang" in r.message
    )
    r = check_epoch_indices(lambda n, r, w, e, s=0: epoch_indices(n, r, w, e, s, pad="once"))
    assert not r.passed and "DDP would hang" in r.message and "more than once if n < world_size" in r.message
    assert "n=2, world_size=5" in r.message
    r = check_epoch_indices(lambda n, r, w, e, s=0: epoch_indices(n, r, w, e, s, pad="drop"))
    assert not r.passed and "don't drop" in r.message and "= 13 indices, got 12" in r.message


def test_epoch_indices_names_contiguous_blocks_a_valid_split_but_not_the_samplers():
    r = check_epoch_indices(lambda n, r, w, e, s=0: epoch_indices(n, r, w, e, s, split="blocks"))
    assert not r.passed and "contiguous block" in r.message and "valid split" in r.message
    assert "not the sampler's" in r.message


def test_epoch_indices_catches_no_shuffle():
    for split in ("strided", "blocks"):
        r = check_epoch_indices(
            lambda n, r, w, e, s=0, sp=split: epoch_indices(n, r, w, e, s, by="none", split=sp)
        )
        assert not r.passed and "not shuffled" in r.message and "torch.randperm" in r.message


def test_epoch_indices_names_the_first_difference_of_another_shuffle():
    def python_shuffle(n, rank, world_size, epoch, seed=0):
        order = list(range(n))
        random.Random(seed + epoch).shuffle(order)
        while len(order) % world_size:
            order += order[: world_size - len(order) % world_size]
        return order[rank::world_size]

    r = check_epoch_indices(python_shuffle)
    assert (
        not r.passed
        and "differ from the sampler's at position" in r.message
        and "torch.randperm" in r.message
    )


def test_epoch_indices_explains_wrong_types_and_values():
    r = check_epoch_indices(lambda n, r, w, e, s=0: None)
    assert not r.passed and "forget the return" in r.message
    r = check_epoch_indices(lambda n, r, w, e, s=0: set(epoch_indices(n, r, w, e, s)))
    assert not r.passed and "list of ints" in r.message and "got set" in r.message
    r = check_epoch_indices(
        lambda n, r, w, e, s=0: torch.tensor(epoch_indices(n, r, w, e, s), dtype=torch.float32)
    )
    assert not r.passed and "torch.float32" in r.message
    r = check_epoch_indices(lambda n, r, w, e, s=0: [i + 1 for i in epoch_indices(n, r, w, e, s)])
    assert not r.passed and "is not in a dataset of 50 examples" in r.message
    r = check_epoch_indices(lambda n, r, w, e, s=0: 1 / 0)
    assert not r.passed and "ZeroDivisionError" in r.message and "\n" not in r.message


def test_epoch_indices_refuses_the_sampler_and_shard_rows():
    def with_sampler(n, rank, world_size, epoch, seed=0):
        sampler = DistributedSampler(range(n), num_replicas=world_size, rank=rank, seed=seed)
        sampler.set_epoch(epoch)
        return list(sampler)

    def with_torch_path(n, rank, world_size, epoch, seed=0):
        sampler = torch.utils.data.DistributedSampler(range(n), num_replicas=world_size, rank=rank, seed=seed)
        sampler.set_epoch(epoch)
        return list(sampler)

    def with_shard_rows(n, rank, world_size, epoch, seed=0):
        shard_rows(None, rank, world_size)
        return epoch_indices(n, rank, world_size, epoch, seed)

    for answer in (with_sampler, with_torch_path, with_shard_rows, DistributedSampler):
        r = check_epoch_indices(answer)
        assert not r.passed and "write it yourself" in r.message, r.message


def test_epoch_indices_greets_a_stub():
    def stub(n, rank, world_size, epoch, seed=0):
        raise NotImplementedError()

    r = check_epoch_indices(stub)
    assert not r.passed and "not written yet" in r.message


def test_epoch_indices_uses_fresh_inputs():
    seen = []

    def spy(n, rank, world_size, epoch, seed=0):
        seen.append((n, world_size, epoch, seed))
        return epoch_indices(n, rank, world_size, epoch, seed)

    check_epoch_indices(spy)
    first = list(dict.fromkeys(seen))
    seen.clear()
    check_epoch_indices(spy)
    second = list(dict.fromkeys(seen))
    assert first[:4] == second[:4]  # the fixed configurations that expose the typical mistakes
    assert first[4:] != second[4:]  # then fresh ones


# --- the gradient all-reduce by hand --------------------------------------------------------------
def right(model, world_size):
    for p in model.parameters():
        dist.all_reduce(p.grad)
        p.grad /= world_size


def summed(model, world_size):
    for p in model.parameters():
        dist.all_reduce(p.grad)


def untouched(model, world_size):
    pass


def broken(model, world_size):
    raise RuntimeError("not yet")


def test_average_gradients_checker():
    """One launch of 2 processes per call: the right answer and three typical mistakes."""
    assert check_average_gradients(right)
    res = check_average_gradients(summed)
    assert not res and "divide by world_size" in res.message
    res = check_average_gradients(untouched)
    assert not res and "still this rank's own" in res.message
    res = check_average_gradients(broken)
    assert not res and "RuntimeError: not yet" in res.message


def test_average_gradients_checker_accepts_a_closure():
    """Functions defined anywhere (a notebook cell, a closure) reach the forked processes unpickled."""
    scale = {"by": 2}

    def closure(model, world_size):
        for p in model.parameters():
            dist.all_reduce(p.grad)
            p.grad /= scale["by"]

    assert check_average_gradients(closure)
