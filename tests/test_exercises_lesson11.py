import torch

from course_lib.exercises.lesson11 import (
    check_checkpoint_roundtrip,
    check_choose_device,
    check_training_hours,
    reference_training_hours,
)
from course_lib.model import Transformer, TransformerConfig


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


def right_roundtrip(model, path):
    torch.save({"config": model.cfg.to_dict(), "state": model.state_dict()}, path)
    ckpt = torch.load(path, weights_only=True)
    new = Transformer(TransformerConfig(**ckpt["config"]))
    new.load_state_dict(ckpt["state"])
    return new


def test_checkpoint_checker():
    assert check_checkpoint_roundtrip(right_roundtrip)
    res = check_checkpoint_roundtrip(lambda m, p: (torch.save(m, p), m)[1])
    assert not res and "weights_only" in res.message
    res = check_checkpoint_roundtrip(lambda m, p: (torch.save(m.state_dict(), p), m)[1])
    assert not res and "same model object" in res.message

    def no_weights(model, path):
        torch.save({"config": model.cfg.to_dict()}, path)
        return Transformer(TransformerConfig(**torch.load(path, weights_only=True)["config"]))

    res = check_checkpoint_roundtrip(no_weights)
    assert not res and "state_dict" in res.message
    res = check_checkpoint_roundtrip(lambda m, p: m)
    assert not res and "nothing was written" in res.message
