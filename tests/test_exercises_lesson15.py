"""Lesson 15's checkers: the sharding rule, and the gradient all-reduce by hand in 2 gloo processes."""

import torch
import torch.distributed as dist

from course_lib.exercises.lesson15 import check_average_gradients, check_shard, reference_shard


def test_reference_shard_partitions():
    x = torch.arange(10)[:, None]
    shards = [reference_shard(x, r, 3) for r in range(3)]
    assert sorted(torch.cat(shards)[:, 0].tolist()) == list(range(10))
    assert [len(s) for s in shards] == [4, 3, 3]


def test_shard_checker():
    assert check_shard(lambda x, r, n: x[r::n])
    # contiguous blocks are a valid rule too
    assert check_shard(lambda x, r, n: torch.tensor_split(x, n)[r])
    res = check_shard(lambda x, r, n: x[: len(x) // n])  # every rank the first rows
    assert not res and "two ranks" in res.message
    res = check_shard(lambda x, r, n: x[r * (len(x) // n) : (r + 1) * (len(x) // n)])  # drops the remainder
    assert not res and ("no rank" in res.message)
    res = check_shard(lambda x, r, n: x[r::n].flatten())
    assert not res and "shape" in res.message
    res = check_shard(lambda x, r, n: x[r::n].tolist())
    assert not res and "tensor" in res.message


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
