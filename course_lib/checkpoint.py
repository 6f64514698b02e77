"""Checkpoints holding only tensors and plain data, loaded with `torch.load(weights_only=True)`.

A `.pt` file is a pickle, and unpickling an arbitrary file can run arbitrary code. With
`weights_only=True` torch only rebuilds tensors and plain containers (dict, list, tuple,
str, int, float, bool, None); anything else is refused. So everything we save is plain
data: the model's `state_dict`, the optimiser's and scheduler's state dicts, the step,
the RNG state (a uint8 tensor), `TransformerConfig.to_dict()` and `CharVocab.to_dict()`.

Layout of a checkpoint (a dict):
    format        "course_lib.checkpoint/1"
    model_config  TransformerConfig as a dict
    model         model.state_dict()
    src_vocab, tgt_vocab   {"chars": ...}
    step          optimisation steps done
    rng           {"torch": ByteTensor, "cuda": [ByteTensor, ...]}
    optimizer, scheduler   state dicts (optional: absent in a model-only checkpoint)
    extra         plain data (task name, training config, history, metrics)
"""

from __future__ import annotations

import pickle
from collections import OrderedDict
from pathlib import Path

import torch

from .data import CharVocab
from .device import pick_device
from .model import Transformer, TransformerConfig

FORMAT = "course_lib.checkpoint/1"
DATES_CHECKPOINT = Path(__file__).resolve().parent.parent / "assets" / "dates_model.pt"


_PLAIN = (str, int, float, bool, type(None))


def check_plain(obj: object, where: str = "checkpoint") -> None:
    """Raise ValueError unless `obj` is tensors and plain data only (what weights_only loads)."""
    if type(obj) in _PLAIN or isinstance(obj, torch.Tensor):
        return
    if type(obj) in (dict, OrderedDict):
        for k, v in obj.items():
            if type(k) not in _PLAIN:
                raise ValueError(
                    f"{where} has a key of type {type(k).__name__}: only plain keys can be saved"
                )
            check_plain(v, f"{where}[{k!r}]")
        return
    if type(obj) in (list, tuple):
        for i, v in enumerate(obj):
            check_plain(v, f"{where}[{i}]")
        return
    raise ValueError(
        f"{where} is a {type(obj).__module__}.{type(obj).__qualname__}: a checkpoint may hold only "
        f"tensors, dicts, lists, tuples, str, int, float, bool and None (convert it, e.g. with to_dict())"
    )


def save_checkpoint(
    path: str | Path,
    model: Transformer,
    src_vocab: CharVocab,
    tgt_vocab: CharVocab,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    step: int = 0,
    extra: dict | None = None,
) -> None:
    """Write a checkpoint of plain data and tensors (see the module docstring)."""
    if not isinstance(model, Transformer):
        raise ValueError(f"save_checkpoint expects a course_lib Transformer, got {type(model).__name__}")
    ckpt = {
        "format": FORMAT,
        "model_config": model.cfg.to_dict(),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "src_vocab": src_vocab.to_dict(),
        "tgt_vocab": tgt_vocab.to_dict(),
        "step": int(step),
        "rng": {"torch": torch.get_rng_state()},
        "extra": extra or {},
    }
    if torch.cuda.is_available():
        ckpt["rng"]["cuda"] = torch.cuda.get_rng_state_all()
    if optimizer is not None:
        ckpt["optimizer"] = optimizer.state_dict()
    if scheduler is not None:
        ckpt["scheduler"] = scheduler.state_dict()
    check_plain(ckpt)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint with `weights_only=True`; refuse anything but tensors and plain data."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no checkpoint at {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        found = [
            line.strip() for line in str(e).splitlines() if "Unsupported" in line or "global" in line.lower()
        ]
        detail = found[0].split(" was not")[0] if found else type(e).__name__
        raise ValueError(
            f"refusing to load {path}: it holds objects other than tensors and plain data, which "
            f"torch.load(weights_only=True) will not rebuild ({detail}). Unpickling it fully could "
            f"run code hidden in the file: do that only for a file you made yourself."
        ) from None
    except (RuntimeError, EOFError, OSError) as e:
        raise ValueError(f"{path} is not a readable torch checkpoint: {e}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        got = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ValueError(f"{path} is not a course_lib checkpoint: expected format {FORMAT!r}, got {got!r}")
    for key in ("model_config", "model", "src_vocab", "tgt_vocab", "step"):
        if key not in ckpt:
            raise ValueError(f"{path} is missing {key!r}: not a complete course_lib checkpoint")
    return ckpt


def model_from_checkpoint(ckpt: dict) -> Transformer:
    """Rebuild the Transformer of a loaded checkpoint dict (in eval mode, on the CPU)."""
    model = Transformer(TransformerConfig(**ckpt["model_config"]))
    model.load_state_dict(ckpt["model"])
    return model.eval()


def load_model(
    path: str | Path = DATES_CHECKPOINT, device: torch.device | str | None = None
) -> tuple[Transformer, CharVocab, CharVocab]:
    """(model, src_vocab, tgt_vocab) from a checkpoint; by default the shipped dates model.

    The model comes back in eval mode, on `device` (default: `pick_device()`)."""
    ckpt = load_checkpoint(path)
    model = model_from_checkpoint(ckpt)
    device = pick_device(device) if device is None or isinstance(device, str) else device
    return (
        model.to(device),
        CharVocab.from_dict(ckpt["src_vocab"]),
        CharVocab.from_dict(ckpt["tgt_vocab"]),
    )


def checkpoint_info(path: str | Path = DATES_CHECKPOINT) -> dict:
    """Step, sizes and stored metrics of a checkpoint, as plain data (for a notebook to print)."""
    ckpt = load_checkpoint(path)
    extra = ckpt.get("extra", {})
    n = sum(
        v.numel()
        for k, v in ckpt["model"].items()
        if k != "generator.weight" or not ckpt["model_config"]["tie_output"]
    )
    return {
        "step": ckpt["step"],
        "task": extra.get("task"),
        "parameters": n,
        "model_config": ckpt["model_config"],
        "train_config": extra.get("train_config", {}),
        "metrics": extra.get("metrics", {}),
        "has_optimizer": "optimizer" in ckpt,
    }
