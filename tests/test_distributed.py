"""Data parallelism (lesson 15): sharded batches, DDP and gradient accumulation equal the large batch,
and `torchrun -m course_lib.train` trains, saves and resumes like one process with the same global batch.

Every test that starts processes ends them: `run_workers` terminates its forked workers in a
`finally`, and torchrun runs in its own process group, killed as a whole on a timeout or a failure.
torchrun's --standalone rendezvous picks a free local port itself, so parallel runs never collide.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from course_lib.checkpoint import load_checkpoint
from course_lib.data import batch_at
from course_lib.distributed import (
    adam_mixed_precision_bytes,
    ring_all_reduce_bytes,
    run_workers,
    shard_loss_scale,
    shard_rows,
)
from course_lib.train import TrainConfig, Trainer, main, model_for_task

TORCHRUN = Path(sys.executable).with_name("torchrun")
TINY = "--task reversal --d-model 16 --heads 2 --layers 1 --d-ff 32 --batch-size 8".split()
# a learning rate of about 1e-2 (equation (3) with warm-up 1): the parameters move by ~1e-2 a step,
# far more than the tolerance below, so equal parameters mean equal training
FAST = "--warmup 1 --lr-scale 0.04 --seed 3".split()
QUIET = "--eval-n 5 --eval-every 0 --no-progress --device cpu --threads 1".split()


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Tiny models: one torch thread."""


def _float64_trainer(accum_steps: int = 1) -> Trainer:
    model = model_for_task("reversal", d_model=16, n_heads=2, layers=1, d_ff=32, seed=0).double()
    # 7 rows: 2 processes get 4 and 3 rows, 3 micro-batches 3, 2 and 2, so the pieces hold different
    # numbers of target tokens, the case the global token count is for
    cfg = TrainConfig(task="reversal", batch_size=7, clip_norm=None, accum_steps=accum_steps, seed=5)
    return Trainer(model, cfg, "cpu")


def _one_step(trainer: Trainer) -> tuple[dict, dict]:
    """Gradients and parameters after one train_step on the global batch of step 0."""
    batch = batch_at(trainer.task, "train", trainer.config.batch_size, trainer.config.seed, 0)
    trainer.train_step(batch)
    grads = {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}
    params = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    return grads, params


def _ddp_worker(rank: int, world_size: int) -> tuple[dict, dict]:
    return _one_step(_float64_trainer())  # the Trainer sees the process group and wraps DDP


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def test_shards_partition_the_batch():
    batch = batch_at("reversal", "train", 10, 0, 7)
    for parts in (1, 2, 3):
        shards = [shard_rows(batch, r, parts) for r in range(parts)]
        assert sum(len(s) for s in shards) == len(batch)
        assert sum(s.n_tokens for s in shards) == batch.n_tokens
        assert sorted(p for s in shards for p in s.pairs) == sorted(batch.pairs)
    with pytest.raises(ValueError, match="cannot be split"):
        shard_rows(batch, 0, 11)
    with pytest.raises(ValueError, match=r"expected an integer index in \[0, 1\], got index=2"):
        shard_rows(batch, 2, 2)
    assert shard_loss_scale(100, 4) == 0.04


def test_cost_formulas():
    assert ring_all_reduce_bytes(1000, 1) == 0
    assert ring_all_reduce_bytes(1000, 2) == 4000  # 2 (N-1)/N = 1 for N = 2
    assert ring_all_reduce_bytes(1000, 8, 2) == 2 * 7 / 8 * 2000
    assert sum(adam_mixed_precision_bytes(10).values()) == 160  # 16 bytes a parameter


def test_ddp_gradients_equal_the_whole_batch():
    """2 gloo processes with half a batch each (and different token counts) end with the gradient and
    the parameters of one process on the whole batch, in float64 to round-off."""
    (g0, p0), (g1, p1) = run_workers(_ddp_worker, 2, timeout=60)
    g, p = _one_step(_float64_trainer())
    assert _max_diff(g0, g1) == 0 and _max_diff(p0, p1) == 0  # DDP: the ranks agree exactly
    assert _max_diff(g0, g) < 1e-12
    assert _max_diff(p0, p) < 1e-12


def test_shards_have_different_token_counts():
    """The case the global token count is for: a plain mean per rank would weight tokens unequally."""
    batch = batch_at("reversal", "train", 7, 5, 0)
    assert shard_rows(batch, 0, 2).n_tokens != shard_rows(batch, 1, 2).n_tokens


@pytest.mark.parametrize("accum_steps", [2, 3, 7])
def test_accumulation_equals_the_whole_batch(accum_steps):
    g, p = _one_step(_float64_trainer())
    ga, pa = _one_step(_float64_trainer(accum_steps))
    assert _max_diff(ga, g) < 1e-12 and _max_diff(pa, p) < 1e-12


def test_accumulation_is_validated():
    with pytest.raises(ValueError, match="accum_steps"):
        TrainConfig(batch_size=4, accum_steps=5)
    with pytest.raises(ValueError, match="accum_steps"):
        TrainConfig(accum_steps=0)


# --- the training command under torchrun -----------------------------------------------------------
def _torchrun(args: list[str], timeout: float = 90) -> subprocess.CompletedProcess:
    """torchrun --standalone --nproc_per_node=2 -m course_lib.train ARGS, in its own process group."""
    cmd = [str(TORCHRUN), "--standalone", "--nproc_per_node=2", "-m", "course_lib.train", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # torchrun and any worker left, whatever happened
        except ProcessLookupError:
            pass
        proc.wait()
    result = subprocess.CompletedProcess(cmd, proc.returncode, out, "")
    assert result.returncode == 0, out[-3000:]
    return result


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One process, 4 steps; torchrun with 2 processes, 4 steps; torchrun 2 steps, then resumed to 4."""
    d = tmp_path_factory.mktemp("ddp")
    main([*TINY, *FAST, *QUIET, "--steps", "4", "--out", str(d / "single.pt")])
    ddp = _torchrun([*TINY, *FAST, *QUIET, "--steps", "4", "--out", str(d / "ddp.pt")])
    _torchrun([*TINY, *FAST, *QUIET, "--steps", "2", "--out", str(d / "resumed.pt")])
    resumed = _torchrun(
        ["--resume", str(d / "resumed.pt"), "--steps", "4", "--out", str(d / "resumed.pt"), *QUIET]
    )
    return d, ddp.stdout, resumed.stdout


def _same_training(path_a: Path, path_b: Path) -> None:
    """Two float32 runs of the same global batches trained alike.

    A different summation order (two shards and an all-reduce, or micro-batches) changes the
    gradients by round-off, ~1e-7 relative: the per-step losses and gradient norms (recorded in the
    checkpoints, computed from the whole batch's gradient) must agree to 1e-5 relative. The
    parameters cannot be compared that tightly: Adam's update is m / (sqrt(v) + 1e-9), and at the
    first step that is sign(g) x lr whatever |g| is, so a coordinate whose gradient is itself
    round-off-sized (~1e-9) may move by +lr in one run and -lr in the other. Adam's step is at most
    lr per coordinate (Kingma and Ba, 2015, since 1 - beta1 < sqrt(1 - beta2)), so no coordinate may
    differ by more than 2 x the sum of the learning rates; about 1% of them do differ by more than
    1e-5 (measured), so at least 95% must agree to 1e-5."""
    a, b = load_checkpoint(path_a), load_checkpoint(path_b)
    ha, hb = a["extra"]["history"], b["extra"]["history"]
    assert ha["step"] == hb["step"] and ha["lr"] == hb["lr"]
    for key in ("loss", "cross_entropy", "grad_norm"):
        assert ha[key] == pytest.approx(hb[key], rel=1e-5), key
    diff = torch.cat([(a["model"][k] - b["model"][k]).abs().flatten() for k in a["model"]])
    assert float(diff.max()) <= 2 * sum(ha["lr"])
    assert float((diff < 1e-5).double().mean()) >= 0.95


def test_torchrun_equals_one_process(runs):
    d, out, _ = runs
    _same_training(d / "single.pt", d / "ddp.pt")
    single = load_checkpoint(d / "single.pt")["model"]
    init = model_for_task("reversal", d_model=16, n_heads=2, layers=1, d_ff=32, seed=3).state_dict()
    moved = torch.cat([(single[k] - init[k]).abs().flatten() for k in single])
    assert float((moved > 1e-3).double().mean()) > 0.5  # it did train: most weights moved by > 100 x 1e-5
    assert out.count("task reversal") == 1 and "2 processes (DDP)" in out  # rank 0 alone prints
    assert out.count("held-out") == 1 and out.count("saved ") == 1
    trainer = Trainer.load(d / "ddp.pt", "cpu")
    assert trainer.step == 4 and trainer.dist.world_size == 1


def test_resume_under_torchrun(runs):
    d, _, out = runs
    assert "resumed from" in out and "at step 2" in out
    _same_training(d / "single.pt", d / "resumed.pt")
    assert load_checkpoint(d / "resumed.pt")["step"] == 4


def test_cli_accumulation_equals_the_large_batch(tmp_path):
    main([*TINY, *FAST, *QUIET, "--steps", "3", "--out", str(tmp_path / "a.pt")])
    main([*TINY, *FAST, *QUIET, "--steps", "3", "--accum-steps", "3", "--out", str(tmp_path / "b.pt")])
    _same_training(tmp_path / "a.pt", tmp_path / "b.pt")
    assert load_checkpoint(tmp_path / "b.pt")["extra"]["train_config"]["accum_steps"] == 3


@pytest.mark.parametrize(
    "args, message",
    [
        ("--accum-steps 0", "argument --accum-steps: expected an integer >= 1, got '0'"),
        ("--accum-steps 9", "argument --accum-steps: a batch of 8 rows"),
    ],
)
def test_accum_steps_refused(args, message, capsys):
    with pytest.raises(SystemExit) as info:
        main([*TINY, *QUIET, "--steps", "2", *args.split()])
    assert info.value.code == 2 and message in capsys.readouterr().err
