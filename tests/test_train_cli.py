"""`python -m course_lib.train`: bad input is refused up front; --resume is exact and refuses contradictions."""

from __future__ import annotations

import math
import re
import shlex
import signal

import pytest
import torch

import course_lib.train as train_mod
from course_lib.checkpoint import load_checkpoint
from course_lib.train import TrainConfig, Trainer, evaluate, main, model_for_task

TINY = "--task reversal --d-model 16 --heads 2 --layers 1 --d-ff 32 --batch-size 8".split()
QUIET = "--eval-n 5 --eval-every 0 --no-progress --device cpu".split()


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Tiny models: one torch thread."""


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if a model is built or a checkpoint read: the error must come before any work."""

    def refuse(*args, **kwargs):
        raise AssertionError("work started before the arguments were checked")

    monkeypatch.setattr(train_mod, "model_for_task", refuse)
    monkeypatch.setattr(train_mod.Trainer, "load", refuse)


def _exit_code(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as info:
        main(argv)
    return info.value.code


BAD_ARGS = [
    # (arguments, the flag named, what the message says was expected)
    ("--clip-norm -1", "--clip-norm", "expected a finite number > 0, got '-1'"),
    ("--clip-norm 0", "--clip-norm", "expected a finite number > 0, got '0'"),
    ("--clip-norm nan", "--clip-norm", "expected a finite number > 0, got 'nan'"),
    ("--lr-scale -0.5", "--lr-scale", "expected a finite number > 0, got '-0.5'"),
    ("--lr-scale inf", "--lr-scale", "expected a finite number > 0, got 'inf'"),
    ("--peak-lr 0", "--peak-lr", "expected a finite number > 0, got '0'"),
    ("--steps -5", "--steps", "expected an integer >= 1, got '-5'"),
    ("--steps 0", "--steps", "expected an integer >= 1, got '0'"),
    ("--steps 2.5", "--steps", "expected an integer >= 1, got '2.5'"),
    ("--d-ff 0", "--d-ff", "expected an integer >= 1, got '0'"),
    ("--d-model 0", "--d-model", "expected an integer >= 1, got '0'"),
    ("--heads -2", "--heads", "expected an integer >= 1, got '-2'"),
    ("--layers 0", "--layers", "expected an integer >= 1, got '0'"),
    ("--batch-size 0", "--batch-size", "expected an integer >= 1, got '0'"),
    ("--warmup 0", "--warmup", "expected an integer >= 1, got '0'"),
    ("--eval-every -1", "--eval-every", "expected an integer >= 0, got '-1'"),
    ("--eval-n 0", "--eval-n", "expected an integer >= 1, got '0'"),
    ("--threads -1", "--threads", "expected an integer >= 1, got '-1'"),
    ("--threads 0", "--threads", "expected an integer >= 1, got '0'"),
    ("--seed -1", "--seed", "expected an integer >= 0, got '-1'"),
    ("--save-every -3", "--save-every", "expected an integer >= 0, got '-3'"),
    ("--dropout 1", "--dropout", "expected a number in [0, 1), got '1'"),
    ("--dropout -0.1", "--dropout", "expected a number in [0, 1), got '-0.1'"),
    ("--label-smoothing 1.5", "--label-smoothing", "expected a number in [0, 1), got '1.5'"),
    ("--task poems", "--task", "invalid choice: 'poems'"),
    ("--schedule cosine", "--schedule", "invalid choice: 'cosine'"),
    ("--d-model 128 --heads 3", "--heads", "expected a divisor of --d-model (128), got 3"),
    ("--schedule linear --steps 40 --warmup 40", "--warmup", "needs warm-up < --steps (40), got 40"),
    ("--save-every 10", "--save-every", "needs --out, which was not given"),
]


@pytest.mark.parametrize("args, flag, expected", BAD_ARGS, ids=[a for a, _, _ in BAD_ARGS])
def test_bad_arguments_are_refused_before_any_work(args, flag, expected, capsys, no_work):
    assert _exit_code(args.split()) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"python -m course_lib.train: error: argument {flag}: "), err
    assert expected in err[-1], err[-1]


def test_bad_output_paths_are_refused_before_any_work(tmp_path, capsys, no_work):
    (tmp_path / "a_file").write_text("x")
    for out, expected in [
        (tmp_path, "expected a file path, got the folder"),
        (tmp_path / "a_file" / "model.pt", "expected a path in a folder that can be written"),
    ]:
        assert _exit_code(["--out", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert "error: argument --out: " in err and expected in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def test_missing_output_folder_is_created_before_training(tmp_path, monkeypatch):
    out = tmp_path / "runs" / "today" / "m.pt"
    seen = []
    real_run = Trainer.run

    def run(self, *args, **kwargs):
        seen.append(out.parent.is_dir())  # the folder exists before the first step
        return real_run(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "run", run)
    main([*TINY, *QUIET, "--steps", "2", "--out", str(out)])
    assert seen == [True] and out.is_file()


def test_device_and_resume_errors_name_their_flag(tmp_path, capsys):
    if not torch.cuda.is_available():
        assert _exit_code([*TINY, "--device", "cuda"]) == 2
        assert (
            "error: argument --device: prefer='cuda' but torch sees no CUDA device" in capsys.readouterr().err
        )
    assert _exit_code(["--resume", str(tmp_path / "missing.pt")]) == 2
    assert "error: argument --resume: no checkpoint at" in capsys.readouterr().err


TRAIN_CONFIG_BAD = [
    ({"clip_norm": -1.0}, "clip_norm must be a number > 0, or None for no clipping, got -1.0"),
    ({"clip_norm": 0}, "clip_norm must be a number > 0"),
    ({"clip_norm": float("nan")}, "clip_norm must be a number > 0"),
    ({"lr_scale": -0.5}, "lr_scale must be a finite number > 0, got -0.5"),
    ({"lr_scale": float("inf")}, "lr_scale must be a finite number > 0"),
    ({"peak_lr": 0.0}, "peak_lr must be a finite number > 0"),
    ({"warmup": 0}, "warmup must be an integer >= 1, got 0"),
    ({"batch_size": 0}, "batch_size must be an integer >= 1, got 0"),
    ({"batch_size": 8.0}, "batch_size must be an integer >= 1, got 8.0"),
    ({"label_smoothing": 1.0}, "label_smoothing must be a number in [0, 1), got 1.0"),
    ({"label_smoothing": -0.1}, "label_smoothing must be a number in [0, 1)"),
    ({"seed": -1}, "seed must be an integer >= 0, got -1"),
    ({"eval_every": -1}, "eval_every must be an integer >= 0"),
    ({"eval_n": 0}, "eval_n must be an integer >= 1, got 0"),
    ({"total_steps": -5}, "total_steps must be an integer >= 0"),
    ({"task": "poems"}, "task must be one of ['dates', 'reversal'], got 'poems'"),
    ({"amp": "yes"}, "amp must be True or False"),
]


@pytest.mark.parametrize("kw, expected", TRAIN_CONFIG_BAD, ids=[str(kw) for kw, _ in TRAIN_CONFIG_BAD])
def test_train_config_refuses_what_the_command_line_refuses(kw, expected):
    with pytest.raises(ValueError, match="^" + re.escape("TrainConfig." + expected)):
        TrainConfig(**kw)


def test_train_config_schedules():
    with pytest.raises(ValueError, match="schedule must be one of"):
        TrainConfig(schedule="cosine")
    with pytest.raises(
        ValueError, match=r"needs 1 <= warmup < total_steps .* got warmup=50 and total_steps=50"
    ):
        TrainConfig(schedule="linear", warmup=50, total_steps=50)
    TrainConfig(schedule="linear", warmup=50, total_steps=51)
    assert TrainConfig(clip_norm=None).clip_norm is None  # no clipping is allowed
    assert TrainConfig.from_dict(TrainConfig().to_dict()) == TrainConfig()


@pytest.mark.parametrize("kw", [{"n": 0}, {"n": -3}, {"batch_size": 0}])
def test_evaluate_refuses_empty_sets(kw):
    model = model_for_task("reversal", d_model=16, n_heads=2, layers=1, d_ff=32)
    name = next(iter(kw))
    with pytest.raises(ValueError, match=rf"expected an integer {name} >= 1, got {name}={kw[name]}"):
        evaluate(model, "reversal", **kw)


def test_model_for_task_no_longer_replaces_d_ff_zero():
    with pytest.raises(ValueError, match="d_ff") as info:  # TransformerConfig's message
        model_for_task("reversal", d_model=16, n_heads=2, layers=1, d_ff=0)
    assert ">= 1" in str(info.value) and "0" in str(info.value)
    assert model_for_task("reversal", d_model=16, n_heads=2, layers=1).cfg.d_ff == 64  # None: 4 * d_model


# --- resume ----------------------------------------------------------------------------------------
@pytest.fixture
def saved_run(tmp_path, capsys) -> str:
    """A 4-step reversal run (d_model 16, 2 heads, 1 layer, batch 8, seed 0), saved with its optimiser."""
    out = str(tmp_path / "run.pt")
    main([*TINY, *QUIET, "--steps", "4", "--out", out])
    capsys.readouterr()
    return out


CONFLICTS = [
    ("--task dates", "--task dates but the checkpoint has reversal"),
    ("--d-model 32", "--d-model 32 but the checkpoint has 16"),
    ("--heads 4", "--heads 4 but the checkpoint has 2"),
    ("--layers 2", "--layers 2 but the checkpoint has 1"),
    ("--d-ff 64", "--d-ff 64 but the checkpoint has 32"),
    ("--dropout 0.2", "--dropout 0.2 but the checkpoint has 0.0"),
    ("--batch-size 16", "--batch-size 16 but the checkpoint has 8"),
    ("--schedule linear", "--schedule linear but the checkpoint has paper"),
    ("--warmup 7", "--warmup 7 but the checkpoint has 400"),
    ("--lr-scale 0.25", "--lr-scale 0.25 but the checkpoint has 0.5"),
    ("--peak-lr 0.01", "--peak-lr 0.01 but the checkpoint has 0.003"),
    ("--label-smoothing 0.2", "--label-smoothing 0.2 but the checkpoint has 0.1"),
    ("--clip-norm 2", "--clip-norm 2.0 but the checkpoint has 1.0"),
    ("--seed 5", "--seed 5 but the checkpoint has 0"),
]


@pytest.mark.parametrize("args, expected", CONFLICTS, ids=[a for a, _ in CONFLICTS])
def test_resume_refuses_a_flag_that_contradicts_the_checkpoint(saved_run, args, expected, capsys):
    before = open(saved_run, "rb").read()
    assert _exit_code(["--resume", saved_run, "--steps", "6", *args.split(), *QUIET]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("python -m course_lib.train: error: argument --resume: ") and expected in err, err
    assert open(saved_run, "rb").read() == before


def test_resume_lists_every_conflict_and_accepts_agreeing_flags(saved_run, capsys):
    assert _exit_code(["--resume", saved_run, "--d-model", "32", "--heads", "4", *QUIET]) == 2
    err = capsys.readouterr().err
    assert "--d-model 32 but the checkpoint has 16; --heads 4 but the checkpoint has 2" in err
    # flags that agree with the checkpoint are fine; the log names the task trained, not the default one
    main(
        [
            "--resume",
            saved_run,
            "--steps",
            "6",
            "--d-model",
            "16",
            "--heads",
            "2",
            "--task",
            "reversal",
            *QUIET,
        ]
    )
    out = capsys.readouterr().out
    assert f"resumed from {saved_run} at step 4" in out and "task reversal |" in out
    main(["--resume", saved_run, "--steps", "7", *QUIET])  # no --task: still reversal, not "dates"
    assert "task reversal |" in capsys.readouterr().out


def test_resume_steps_rules(saved_run, tmp_path, capsys):
    assert _exit_code(["--resume", saved_run, "--steps", "3", *QUIET]) == 2
    assert "argument --steps: expected at least the checkpoint's step 4, got 3" in capsys.readouterr().err
    main(["--resume", saved_run, *QUIET])  # --steps left out: the planned total, reached already
    assert load_checkpoint(saved_run)["step"] == 4
    # a linear run resumes up to its planned total, never beyond
    lin = str(tmp_path / "lin.pt")
    main([*TINY, *QUIET, "--schedule", "linear", "--warmup", "2", "--steps", "8", "--out", lin])
    capsys.readouterr()
    assert _exit_code(["--resume", lin, "--steps", "12", *QUIET]) == 2
    err = capsys.readouterr().err
    assert "argument --steps: " in err and "linear schedule" in err and "expected at most 8, got 12" in err
    assert load_checkpoint(lin)["step"] == 8


def _interrupt_at(monkeypatch, step: int) -> None:
    """Send ourselves SIGINT while step `step` + 1 runs: the command stops after it, as after Ctrl-C."""
    real = train_mod.batch_at

    def batch_at(task, split, batch_size, seed, k):
        if k == step:
            signal.raise_signal(signal.SIGINT)
        return real(task, split, batch_size, seed, k)

    monkeypatch.setattr(train_mod, "batch_at", batch_at)


@pytest.mark.parametrize("schedule", ["paper", "linear"])
def test_cli_resume_after_ctrl_c_equals_an_uninterrupted_run(tmp_path, monkeypatch, capsys, schedule):
    run = [*TINY, *QUIET, "--dropout", "0.1", "--schedule", schedule, "--warmup", "3", "--steps", "12"]
    straight, half = str(tmp_path / "straight.pt"), str(tmp_path / "half.pt")
    main([*run, "--out", straight])
    capsys.readouterr()

    _interrupt_at(monkeypatch, 5)
    assert _exit_code([*run, "--out", half]) == 130
    monkeypatch.undo()
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].startswith(f"SIGINT: stopped at step 6 of 12 and saved {half}; resume with: "), out
    saved = load_checkpoint(half)
    assert saved["step"] == 6 and "optimizer" in saved
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler was put back

    hint = shlex.split(out[-1].split("resume with: ")[1])
    assert hint[:9] == ["python", "-m", "course_lib.train", "--resume", half, "--steps", "12", "--out", half]
    torch.manual_seed(1234)  # whatever happens in between must not matter
    main(hint[3:])
    a, b = load_checkpoint(straight), load_checkpoint(half)
    assert a["step"] == b["step"] == 12
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), f"{k} differs after resuming"
    assert a["extra"]["history"]["loss"] == b["extra"]["history"]["loss"]
    assert a["extra"]["history"]["lr"] == b["extra"]["history"]["lr"]


@pytest.mark.parametrize("schedule", ["paper", "linear"])
def test_trainer_save_load_resume_is_exact_for_both_schedules(tmp_path, schedule):
    def fresh() -> Trainer:
        model = model_for_task("reversal", d_model=16, n_heads=2, layers=1, d_ff=32, dropout=0.1, seed=0)
        cfg = TrainConfig(task="reversal", batch_size=8, warmup=3, schedule=schedule, total_steps=12, seed=2)
        return Trainer(model, cfg, "cpu")

    straight = fresh()
    straight.run(12, progress=False)
    first = fresh()
    first.run(6, progress=False)
    first.save(tmp_path / "half.pt")
    torch.manual_seed(99)
    resumed = Trainer.load(tmp_path / "half.pt", "cpu")
    resumed.run(6, progress=False)
    for (k, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), f"{k} differs after resuming"
    assert resumed.history["lr"] == straight.history["lr"]
    if schedule == "linear":  # the decay really ends at step 12: the last rate is the floor
        assert math.isclose(straight.history["lr"][-1], 3e-3 * 0.02, rel_tol=1e-9)
