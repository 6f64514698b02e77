import os
import tempfile
from pathlib import Path

import torch

from course_lib.checkpoint import atomic_torch_save, save_checkpoint
from course_lib.exercises.lesson11 import (
    check_choose_device,
    check_resume,
    check_training_hours,
    reference_training_hours,
)
from course_lib.train import Trainer


def test_reference_training_hours_paper_scale():
    # 6 N D for N = 1e8, D = 1e9 on 8 GPUs at 1e13 FLOP/s, 50% utilisation: 6e17 / 4e13 s
    assert abs(reference_training_hours(1e8, 1e9, 8, 1e13, 0.5) - 6e17 / 4e13 / 3600) < 1e-9


def test_training_hours_checker():
    right = lambda N, D, n, f, u: 6 * N * D / (n * f * u) / 3600
    assert check_training_hours(right)
    res = check_training_hours(lambda N, D, n, f, u: 2 * N * D / (n * f * u) / 3600)
    assert not res and "6 N" in res.message
    res = check_training_hours(lambda N, D, n, f, u: 6 * N * D / (n * f * u))
    assert not res and "3600" in res.message
    res = check_training_hours(lambda N, D, n, f, u: 6 * N * D / (n * f) / 3600)
    assert not res and "utilisation" in res.message
    res = check_training_hours(lambda N, D, n, f, u: "soon")
    assert not res and "number" in res.message


def right_device(cuda, mps, prefer=None):
    if prefer is not None:
        if (
            prefer not in ("cpu", "cuda", "mps")
            or (prefer == "cuda" and not cuda)
            or (prefer == "mps" and not mps)
        ):
            raise ValueError(prefer)
        return prefer
    return "cuda" if cuda else "mps" if mps else "cpu"


def test_device_checker():
    assert check_choose_device(right_device)
    res = check_choose_device(lambda c, m, p=None: "mps" if m else "cuda" if c else "cpu")
    assert not res and "CUDA first" in res.message or "preference" in res.message or "raise" in res.message
    res = check_choose_device(lambda c, m, p=None: p or ("cuda" if c else "mps" if m else "cpu"))
    assert not res and "raise ValueError" in res.message


# --- a checkpoint you can resume from ----------------------------------------------------------------
def save_state(path, model, optimizer, scheduler, step, optim=True, sched=True, rng=True, how="replace"):
    """The right answer, and (by its switches) the mistakes the checker must name."""
    path = Path(path)
    state = {"model": model.state_dict(), "step": int(step)}
    if optim:
        state["optimizer"] = optimizer.state_dict()
    if sched:
        state["scheduler"] = scheduler.state_dict()
    if rng:
        state["rng"] = torch.get_rng_state()
    tmp = path.with_name(path.name + ".tmp")
    if how == "replace":
        torch.save(state, tmp)
        os.replace(tmp, path)
    elif how == "in place":
        torch.save(state, path)
    elif how == "rename":
        torch.save(state, tmp)
        tmp.rename(path)
    elif how == "left behind":
        torch.save(state, tmp)
        torch.save(state, path)
    elif how == "elsewhere":
        fd, other = tempfile.mkstemp(suffix=".pt")  # in the system's temporary folder, not path's
        os.close(fd)
        torch.save(state, other)
        os.replace(other, path)
    elif how == "objects":
        torch.save({**state, "model": model}, tmp)
        os.replace(tmp, path)


def load_state(path, model, optimizer, scheduler, give_step=True):
    state = torch.load(path, weights_only=True)
    model.load_state_dict(state["model"])
    if "optimizer" in state:
        optimizer.load_state_dict(state["optimizer"])
    if "scheduler" in state:
        scheduler.load_state_dict(state["scheduler"])
    if "rng" in state:
        torch.set_rng_state(state["rng"])
    return state["step"] if give_step else None


def test_resume_accepts_right_answer():
    r = check_resume(save_state, load_state, repeat=2)
    assert r.passed and str(r).startswith("✅"), r.message
    assert "bit for bit" in r.message


def test_resume_names_each_forgotten_piece():
    r = check_resume(lambda *a: save_state(*a, optim=False), load_state)
    assert not r.passed and "Adam's moments restart" in r.message and "optimizer.state_dict()" in r.message
    r = check_resume(lambda *a: save_state(*a, sched=False), load_state)
    assert not r.passed and "restarts its warm-up" in r.message and "scheduler.state_dict()" in r.message
    r = check_resume(lambda *a: save_state(*a, rng=False), load_state)
    assert not r.passed and "dropout" in r.message and "torch.get_rng_state()" in r.message
    r = check_resume(save_state, lambda *a: load_state(*a, give_step=False))
    assert not r.passed and "returned None" in r.message and "return the step" in r.message


def test_resume_wants_an_atomic_write_of_plain_data():
    r = check_resume(lambda *a: save_state(*a, how="in place"), load_state)
    assert not r.passed and "in place" in r.message and "os.replace(tmp, path)" in r.message
    r = check_resume(lambda *a: save_state(*a, how="rename"), load_state)
    assert not r.passed and "used os.rename" in r.message
    r = check_resume(lambda *a: save_state(*a, how="left behind"), load_state)
    assert not r.passed and "left behind" in r.message and "run.pt.tmp" in r.message
    r = check_resume(lambda *a: save_state(*a, how="elsewhere"), load_state)
    assert not r.passed and "another folder" in r.message
    r = check_resume(lambda *a: save_state(*a, how="objects"), load_state)
    assert not r.passed and "weights_only=True" in r.message and "plain data" in r.message


def test_resume_needs_a_second_save_over_the_first():
    def refuses_to_overwrite(path, *a):
        if Path(path).exists():
            raise FileExistsError(f"{Path(path).name} exists")
        save_state(path, *a)

    r = check_resume(refuses_to_overwrite, load_state)
    assert not r.passed and "saving over an existing checkpoint raised FileExistsError" in r.message

    def keeps_the_first(path, *a):
        if not Path(path).exists():
            save_state(path, *a)

    r = check_resume(keeps_the_first, load_state)
    assert not r.passed and "left the first file as it was" in r.message


def test_resume_wants_the_state_loaded_into_the_given_objects():
    def load_elsewhere(path, model, optimizer, scheduler):
        state = torch.load(path, weights_only=True)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        return state["step"]  # the model's weights were never loaded

    r = check_resume(save_state, load_elsewhere)
    assert not r.passed and "weights are not the saved ones" in r.message


def test_resume_refuses_the_library():
    def with_save_checkpoint(path, model, optimizer, scheduler, step):
        save_checkpoint(path, model, None, None, optimizer, scheduler, step)

    def with_trainer(path, model, optimizer, scheduler, step):
        Trainer.save(model, path)

    def with_default(path, model, optimizer, scheduler, step, _save=atomic_torch_save):
        _save({"model": model.state_dict(), "step": step}, path)  # caught at run time

    for answer in (with_save_checkpoint, with_trainer, with_default):
        r = check_resume(answer, load_state)
        assert not r.passed and "write it yourself" in r.message, (answer.__name__, r.message)


def test_resume_greets_a_stub_and_reports_errors_in_one_line():
    def stub(*a):
        raise NotImplementedError()

    r = check_resume(stub, load_state)
    assert not r.passed and "not written yet" in r.message
    r = check_resume(save_state, stub)
    assert not r.passed and "not written yet" in r.message
    r = check_resume(save_state, lambda *a: 1 / 0)
    assert not r.passed and "ZeroDivisionError" in r.message and "\n" not in r.message


def test_resume_uses_fresh_inputs_and_leaves_the_callers_rng_alone():
    seen = []

    def spy(path, model, *a):
        seen.append(next(iter(model.state_dict().values())).flatten()[:4].clone())
        save_state(path, model, *a)

    state = torch.get_rng_state()
    assert check_resume(spy, load_state)
    assert torch.equal(torch.get_rng_state(), state)
    first = len(seen)
    assert check_resume(spy, load_state)
    assert not torch.equal(seen[0], seen[first])
