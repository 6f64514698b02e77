"""Checkpoints survive kills and refuse damaged or diverged contents (course_lib.checkpoint, --out saves).

The kill tests run a helper process (one `python -c`, so torch is imported once) that forks a child
per try: the child saves, the helper kills it (or the child kills itself at an exact point of the
save), then the helper loads the checkpoint and reports. Forking from a fresh single-threaded process
is safe; forking pytest's own process (which may have used OpenMP threads) would not be.
"""

from __future__ import annotations

import json
import os
import random
import re
import shlex
import signal
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch

import course_lib.checkpoint as ckpt_mod
from course_lib.checkpoint import (
    DATES_CHECKPOINT,
    FORMAT,
    FORMAT_V1,
    NonFiniteWeightsError,
    checkpoint_checksum,
    checkpoint_info,
    load_checkpoint,
    save_checkpoint,
    upgrade_checkpoint,
)
from course_lib.data import get_task
from course_lib.train import NonFiniteLossError, TrainConfig, Trainer, main, model_for_task

ROOT = Path(__file__).resolve().parent.parent
TINY = {"d_model": 16, "n_heads": 2, "layers": 1, "d_ff": 32}
TINY_ARGS = "--task reversal --d-model 16 --heads 2 --layers 1 --d-ff 32 --batch-size 8".split()
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
posix_only = pytest.mark.skipif(os.name != "posix", reason="fork and POSIX signals")

# The helper process. argv[1]: JSON {"mode", "folder", "seed", ...}; prints one JSON line per try.
HELPER = r"""
import json, os, random, signal, sys, time
from pathlib import Path
import torch
torch.set_num_threads(1)  # before any op: no OpenMP pool, so fork() is safe
import course_lib.checkpoint as ck
from course_lib.data import get_task
from course_lib.train import model_for_task

args = json.loads(sys.argv[1])
folder = Path(args["folder"]); path = folder / "run.pt"
task = get_task("reversal")
model = model_for_task("reversal", d_model=args["d_model"], n_heads=4, layers=2, d_ff=4 * args["d_model"], seed=0)
emb = model.src_embed.weight
real_save, real_fsync, real_replace = torch.save, os.fsync, os.replace

def save(step):
    with torch.no_grad():
        emb.fill_(float(step))  # the file of step k holds k in this tensor: a mixed file would show
    ck.save_checkpoint(path, model, task.src_vocab, task.tgt_vocab, step=step, extra={"k": step})

def naive(obj, p, verify=None):  # what torch.save(ckpt, path) did before: truncate, then write
    with open(p, "wb") as f:
        torch.save(obj, f)

def die():
    os.kill(os.getpid(), signal.SIGKILL)

def arm(point, size):
    if point.startswith("byte:"):
        limit = int(float(point[5:]) * size)
        class Writer:
            def __init__(self, f): self.f, self.n = f, 0
            def write(self, b):
                b = bytes(b)
                if self.n + len(b) > limit:
                    self.f.write(b[: limit - self.n]); self.f.flush(); die()
                self.n += len(b)
                return self.f.write(b)
            def flush(self): self.f.flush()
        torch.save = lambda obj, f, *a, **k: real_save(obj, Writer(f), *a, **k)
    elif point == "before-fsync":
        os.fsync = lambda fd: die()
    elif point == "before-replace":
        os.replace = lambda a, b: die()
    elif point == "after-replace":
        os.replace = lambda a, b: (real_replace(a, b), die())

def child(body):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(r); os.write(w, b"r")  # running: a signal now reaches `body`, not fork's own hooks
            body()
        except KeyboardInterrupt:
            code = 130
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    assert os.read(r, 1) == b"r"
    os.close(r)
    return pid

def report(**kw):
    temps = sorted(p.name for p in folder.glob(".*.tmp-*"))
    try:
        c = ck.load_checkpoint(path)
        kw.update(ok=True, step=c["step"], consistent=bool((c["model"]["src_embed.weight"] == c["step"]).all()))
    except ValueError as e:
        kw.update(ok=False, error=str(e))
    print(json.dumps({**kw, "temps": temps}), flush=True)

if args["mode"] == "points":
    import io
    buf = io.BytesIO(); save(0); real_save(torch.load(path, weights_only=True), buf); size = buf.tell()
    for writer in ("atomic", "naive"):
        for point in args["points"]:
            save(0)  # the good checkpoint the kill must not destroy
            def body():
                if writer == "naive":
                    ck.atomic_torch_save = naive
                arm(point, size)
                save(1)
            pid = child(body)
            _, status = os.waitpid(pid, 0)
            report(writer=writer, point=point, killed=os.WIFSIGNALED(status))
else:
    rng = random.Random(args["seed"])
    save(0)
    t0 = time.perf_counter(); save(0); per_save = time.perf_counter() - t0
    step = 0
    for i, sig in enumerate(args["signals"]):
        def body(start=step):
            k = start
            while True:
                k += 1
                save(k)
        pid = child(body)
        delay = rng.uniform(0.0, 4 * per_save)
        time.sleep(delay)
        os.kill(pid, getattr(signal, sig))
        deadline, done, status = time.time() + 20, 0, 0
        while not done and time.time() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            time.sleep(0.002)
        if not done:  # the signal was lost: report it, and do not leave the child running
            os.kill(pid, signal.SIGKILL); os.waitpid(pid, 0)
        report(signal=sig, delay=delay, per_save=per_save, pid=pid, status=status, hung=not done)
        try:
            step = ck.load_checkpoint(path)["step"]
        except ValueError:
            pass
save(10_000)  # a save by another process removes the temporaries of the killed ones
print(json.dumps({"final_temps": sorted(p.name for p in folder.glob(".*.tmp-*"))}), flush=True)
"""


def _helper(tmp_path: Path, **args) -> list[dict]:
    run = subprocess.run(
        [sys.executable, "-c", HELPER, json.dumps({"folder": str(tmp_path), **args})],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]


POINTS = ["byte:0", "byte:0.001", "byte:0.3", "byte:0.7", "byte:0.999", "before-fsync", "before-replace"]


@posix_only
def test_kill_at_every_point_of_a_save_keeps_a_complete_checkpoint(tmp_path):
    rows = _helper(tmp_path, mode="points", d_model=32, points=[*POINTS, "after-replace"])
    *tries, final = rows
    assert len(tries) == 2 * (len(POINTS) + 1)
    for r in tries:
        if r["writer"] == "atomic" or r["point"].startswith("byte:"):
            assert r["killed"], r  # the child really died at that point (the plain writer never fsyncs)
        if r["writer"] == "atomic":
            # the old checkpoint (step 0), or after the rename the new one (step 1), complete and verified
            assert r["ok"] and r["consistent"], r
            assert r["step"] == (1 if r["point"] == "after-replace" else 0), r
            if r["point"] != "after-replace":
                assert r["temps"], r  # it was killed halfway through: a partial temporary file is left
        elif r["point"].startswith("byte:"):
            # the control: a plain torch.save(ckpt, path) killed while writing destroys the old file
            assert not r["ok"] and "not a readable torch checkpoint" in r["error"], r
    assert final["final_temps"] == []


@posix_only
def test_random_kills_and_signals_while_saving_in_a_loop(tmp_path):
    seed = random.randrange(2**32)
    print(f"seed {seed}")
    signals = ["SIGKILL"] * 6 + ["SIGINT"] * 3 + ["SIGTERM"] * 3
    random.Random(seed).shuffle(signals)
    *tries, final = _helper(tmp_path, mode="signals", d_model=128, seed=seed, signals=signals)
    assert [r["signal"] for r in tries] == signals
    midway = sum(any(f".tmp-{r['pid']}-" in t for t in r["temps"]) for r in tries)
    print(f"{midway} of {len(tries)} kills left a partial temporary file (they landed inside the write)")
    last = 0
    for r in tries:
        assert not r["hung"], r  # the child ended on the signal
        assert r["ok"] and r["consistent"], r  # the old checkpoint or a newer complete one
        assert r["step"] >= last, r  # never back to an older one
        last = r["step"]
        if (
            r["signal"] == "SIGINT"
        ):  # KeyboardInterrupt, even inside torch.save: its temporary file is removed
            assert os.WIFEXITED(r["status"]) and os.WEXITSTATUS(r["status"]) == 130, r
            assert not [t for t in r["temps"] if f".tmp-{r['pid']}-" in t], r
    assert last > 0  # the children did save
    assert final["final_temps"] == []


def _save_tiny(path: Path, **kw) -> Trainer:
    trainer = Trainer(
        model_for_task("reversal", **TINY, seed=0), TrainConfig(task="reversal", batch_size=8), "cpu"
    )
    trainer.run(2, progress=False)
    trainer.save(path, **kw)
    return trainer


def _entries(path: Path) -> list[zipfile.ZipInfo]:
    with zipfile.ZipFile(path) as z:
        return [i for i in z.infolist() if "/data/" in i.filename and i.file_size >= 64]


def test_flipped_bytes_in_place_are_refused(tmp_path):
    seed = random.randrange(2**32)
    print(f"seed {seed}")
    rng = random.Random(seed)
    path = tmp_path / "run.pt"
    _save_tiny(path, include_optimizer=False)  # the data entries: model weights and the RNG state
    before = load_checkpoint(path)
    raw = bytearray(path.read_bytes())
    entry = rng.choice([e for e in _entries(path) if e.file_size % 4 == 0 and e.file_size > 256])
    name_len, extra_len = struct.unpack("<HH", raw[entry.header_offset + 26 : entry.header_offset + 30])
    start = entry.header_offset + 30 + name_len + extra_len
    at = start + 4 * rng.randrange(entry.file_size // 4) + 3  # the sign/exponent byte of a float32
    raw[at] ^= 0x70
    path.write_bytes(bytes(raw))
    damaged = torch.load(path, weights_only=True)  # torch itself reads it without complaint
    changed = [
        k
        for k, v in damaged["model"].items()
        if v.is_floating_point() and not torch.equal(v, before["model"][k])
    ]
    assert changed or not torch.equal(damaged["rng"]["torch"], before["rng"]["torch"])
    with pytest.raises(ValueError, match=r"run.pt is corrupted: its contents do not match the checksum"):
        load_checkpoint(path)


def test_a_rewritten_zip_entry_is_refused(tmp_path):
    seed = random.randrange(2**32)
    print(f"seed {seed}")
    rng = random.Random(seed)
    good, bad = tmp_path / "good.pt", tmp_path / "bad.pt"
    _save_tiny(good)
    target = rng.choice(_entries(good))
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bad, "w") as out:
        for info in src.infolist():
            data = bytearray(src.read(info.filename))
            if info.filename == target.filename:
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)  # one bit
            out.writestr(info, bytes(data))  # a valid zip with correct CRCs around the damage
    torch.load(bad, weights_only=True)  # readable
    with pytest.raises(ValueError, match="is corrupted"):
        load_checkpoint(bad)
    load_checkpoint(good)


def test_changed_plain_data_is_refused(tmp_path):
    path = tmp_path / "run.pt"
    _save_tiny(path)
    raw = torch.load(path, weights_only=True)
    raw["extra"]["train_config"]["lr_scale"] = 5.0  # plain data is covered too, not only tensors
    torch.save(raw, path)
    with pytest.raises(ValueError, match="is corrupted"):
        load_checkpoint(path)


@pytest.mark.parametrize("keep", [0, 1, 100, 0.5, -10])
def test_truncated_files_are_refused(tmp_path, keep):
    path = tmp_path / "run.pt"
    _save_tiny(path)
    data = path.read_bytes()
    cut = keep if isinstance(keep, int) and keep >= 0 else len(data) + keep
    cut = int(len(data) * keep) if isinstance(keep, float) else cut
    path.write_bytes(data[:cut])
    with pytest.raises(ValueError, match=r"not a readable torch checkpoint \(truncated or damaged\?\)"):
        load_checkpoint(path)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_weights_are_neither_saved_nor_loaded(tmp_path, value):
    task = get_task("reversal")
    model = model_for_task("reversal", **TINY)
    path = tmp_path / "run.pt"
    save_checkpoint(path, model, task.src_vocab, task.tgt_vocab, step=1)
    before = path.read_bytes()
    name, param = next(iter(model.named_parameters()))
    with torch.no_grad():
        param.view(-1)[3] = value
    with pytest.raises(NonFiniteWeightsError, match=r"refusing to save a model with non-finite weights"):
        save_checkpoint(path, model, task.src_vocab, task.tgt_vocab, step=2)
    assert path.read_bytes() == before
    # a file with such weights and a matching checksum (made by hand) is refused on load
    raw = torch.load(path, weights_only=True)
    raw["model"] = {k: v.clone() for k, v in model.state_dict().items()}
    raw["checksum"] = checkpoint_checksum(raw)
    torch.save(raw, path)
    with pytest.raises(NonFiniteWeightsError, match=rf"weights hold NaN or infinity.*{name}"):
        load_checkpoint(path)


def test_a_nan_run_leaves_the_previous_checkpoint_byte_identical(tmp_path, capsys):
    out = tmp_path / "run.pt"
    common = [*TINY_ARGS, "--eval-n", "5", "--eval-every", "0", "--no-progress", "--device", "cpu"]
    main([*common, "--steps", "4", "--out", str(out)])
    before = out.read_bytes()
    capsys.readouterr()
    # a learning rate of ~1e37 sends the weights to ~1e37 in one step (finite, but the next loss is NaN);
    # --save-every 1 tries to save them after step 1: Trainer.save checks the loss first and refuses
    with pytest.raises(SystemExit) as exit_info:
        main([*common, "--steps", "20", "--out", str(out), "--lr-scale", "3e41", "--save-every", "1"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "not saved" in err and len(err.strip().splitlines()) == 1
    assert "non-finite" in err or "diverged" in err
    assert out.read_bytes() == before
    # the same without periodic saves: the loss becomes NaN at step 2, the loop stops there
    with pytest.raises(SystemExit) as exit_info:
        main([*common, "--steps", "20", "--out", str(out), "--lr-scale", "3e41", "--save-every", "0"])
    assert exit_info.value.code == 1
    assert re.search(r"training diverged at step 2: the loss is (nan|inf)", capsys.readouterr().err)
    assert out.read_bytes() == before
    assert checkpoint_info(out)["step"] == 4


def test_trainer_stops_before_a_nan_step_changes_the_weights():
    trainer = Trainer(
        model_for_task("reversal", **TINY, seed=0), TrainConfig(task="reversal", batch_size=8), "cpu"
    )
    trainer.run(1, progress=False)
    with torch.no_grad():
        trainer.model.src_embed.weight[5] = float("nan")
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    with pytest.raises(NonFiniteLossError, match="training diverged at step 2: the loss is nan"):
        trainer.run(5, progress=False)
    assert trainer.step == 1 and len(trainer.history["loss"]) == 1
    after = trainer.model.state_dict()
    for k, v in before.items():  # no update was applied (nan_to_num: NaN != NaN)
        assert torch.equal(v.nan_to_num(), after[k].nan_to_num()), k


def _v1_copy(src: Path, dst: Path) -> dict:
    raw = torch.load(src, weights_only=True)
    raw.pop("checksum")
    raw["format"] = FORMAT_V1
    torch.save(raw, dst)
    return raw


def _assert_identical(a: object, b: object, where: str = "") -> None:
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for k in a:
            _assert_identical(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, list | tuple):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_identical(x, y, f"{where}[{i}]")
    else:
        assert type(a) is type(b) and a == b, where


def test_format_1_is_refused_with_the_upgrade_command_and_upgrades_bit_for_bit(tmp_path, capsys):
    old = tmp_path / "old.pt"
    _save_tiny(tmp_path / "new.pt")
    v1 = _v1_copy(tmp_path / "new.pt", old)
    with pytest.raises(
        ValueError, match=r"old format 'course_lib.checkpoint/1'.*python -m course_lib.checkpoint upgrade"
    ):
        load_checkpoint(old)
    assert ckpt_mod.main(["verify", str(old)]) == 1
    assert "upgrade it once with" in capsys.readouterr().err
    assert ckpt_mod.main(["upgrade", str(old)]) == 0
    assert f"upgraded {old} to {FORMAT}" in capsys.readouterr().out
    raw = torch.load(old, weights_only=True)
    assert raw["format"] == FORMAT and raw.pop("checksum").startswith("sha256:")
    _assert_identical({**v1, "format": FORMAT}, raw)  # every field and tensor unchanged
    assert not upgrade_checkpoint(old)  # already current: nothing written
    assert ckpt_mod.main(["verify", str(old)]) == 0
    assert Trainer.load(old, "cpu").step == 2


def test_shipped_checkpoint_is_format_2_with_a_valid_checksum():
    raw = torch.load(DATES_CHECKPOINT, weights_only=True)
    assert raw["format"] == FORMAT and raw["checksum"] == checkpoint_checksum(raw)
    info = checkpoint_info()
    assert info["step"] == 3000 and info["parameters"] == 672_128 and not info["has_optimizer"]
    assert info["train_config"]["lr_scale"] == 0.5 and info["metrics"]["heldout_exact_match"] == 1.0


def test_save_keeps_permissions_and_cleans_up_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "run.pt"
    _save_tiny(path)
    os.chmod(path, 0o640)
    before = path.read_bytes()

    def broken_save(obj, f, *a, **k):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        _save_tiny(path)
    monkeypatch.undo()
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["run.pt"]
    _save_tiny(path)
    assert (path.stat().st_mode & 0o777) == 0o640 and path.read_bytes() != before


@posix_only
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_to_the_training_command_saves_a_resumable_checkpoint(tmp_path, sig, code, capsys):
    out = tmp_path / "run.pt"
    args = [*TINY_ARGS, "--steps", "100000", "--out", str(out), "--save-every", "7", "--eval-every", "0"]
    args += ["--eval-n", "5", "--threads", "1", "--no-progress", "--device", "cpu"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "course_lib.train", *args],
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = proc.stdout.readline()
        assert first.startswith("task reversal | device cpu"), first + proc.stderr.read()
        time.sleep(0.4)  # some steps and periodic saves
        proc.send_signal(sig)
        rest, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == code, err[-2000:]
    lines = [line for line in rest.splitlines() if line.strip() and not line.startswith("step ")]
    assert len(lines) == 1, rest  # one line, after the "step k: saved" lines of the periodic saves
    name = signal.Signals(sig).name
    assert lines[0].startswith(f"{name}: stopped at step ") and f" of 100000 and saved {out}; " in lines[0]
    hint = lines[0].split("resume with: ")[1]
    argv = shlex.split(hint)
    assert argv[:3] == ["python", "-m", "course_lib.train"] and argv[3:9] == [
        "--resume",
        str(out),
        "--steps",
        "100000",
        "--out",
        str(out),
    ]
    step = int(lines[0].split("stopped at step ")[1].split()[0])
    info = checkpoint_info(out)
    assert info["has_optimizer"] and info["step"] == step and step >= 1
    # resume as the hint says, for two more steps
    argv[argv.index("--steps") + 1] = str(step + 2)
    threads = torch.get_num_threads()
    try:
        main(argv[3:])  # in this process: its --threads 1 must not outlive the test
    finally:
        torch.set_num_threads(threads)
    assert f"resumed from {out} at step {step}" in capsys.readouterr().out
    assert checkpoint_info(out)["step"] == step + 2
