"""Checkpoints holding only tensors and plain data, written atomically and verified on load.

A `.pt` file is a pickle, and unpickling an arbitrary file can run arbitrary code. With
`weights_only=True` torch only rebuilds tensors and plain containers (dict, list, tuple,
str, int, float, bool, None); anything else is refused. So everything we save is plain
data: the model's `state_dict`, the optimiser's and scheduler's state dicts, the step,
the RNG state (a uint8 tensor), `TransformerConfig.to_dict()` and `CharVocab.to_dict()`.

Layout of a checkpoint (a dict):
    format        "course_lib.checkpoint/2"
    model_config  TransformerConfig as a dict
    model         model.state_dict()
    src_vocab, tgt_vocab   {"chars": ...}
    step          optimisation steps done
    rng           {"torch": ByteTensor, "cuda": [ByteTensor, ...]}
    optimizer, scheduler   state dicts (optional: absent in a model-only checkpoint)
    extra         plain data (task name, training config, history, metrics)
    checksum      "sha256:<hex>" of everything above (see `checkpoint_checksum`)

Safety:
  * `save_checkpoint` writes a temporary file in the target's folder, flushes and fsyncs it,
    then renames it over the target (`os.replace`, atomic) and fsyncs the folder: a run
    killed while saving (SIGKILL, Ctrl-C, a power cut) leaves the previous checkpoint whole.
    A temporary file left by a killed process (`.NAME.tmp-PID-...`) is removed by the
    next save to the same folder. A model with NaN or infinite weights is never saved.
  * `load_checkpoint` recomputes the checksum (every tensor's name, dtype, shape and bytes,
    and every plain value) and refuses a file whose bytes changed after it was written, a
    truncated file, and a model whose weights hold NaN or infinity. The checksum describes
    the file, not the run: the dict it returns holds every key above except "checksum".
  * Format 1 (course_lib before checksums) had no checksum, so its weights cannot be
    verified; loading one is refused with the command that upgrades it in place:
        python -m course_lib.checkpoint upgrade PATH
    `upgrade_checkpoint` keeps every field and tensor bit for bit, adds the checksum and
    saves atomically. `python -m course_lib.checkpoint verify PATH` checks a file.
"""

from __future__ import annotations

import argparse
import hashlib
import pickle
import sys
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import torch

from .atomic import atomic_write
from .data import CharVocab
from .device import pick_device
from .model import Transformer, TransformerConfig

FORMAT = "course_lib.checkpoint/2"
FORMAT_V1 = "course_lib.checkpoint/1"  # no checksum: `upgrade_checkpoint` converts it
DATES_CHECKPOINT = Path(__file__).resolve().parent.parent / "assets" / "dates_model.pt"
REQUIRED = ("model_config", "model", "src_vocab", "tgt_vocab", "step")

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


# --- checksum and finiteness ---------------------------------------------------------------
def _feed(h: Any, obj: object, where: str) -> None:
    """Hash `obj` canonically: dicts by sorted key, tensors by dtype, shape and raw bytes."""
    if isinstance(obj, torch.Tensor):
        flat = obj.detach().cpu().contiguous().reshape(-1)
        h.update(f"T{where}|{flat.dtype}|{tuple(obj.shape)}|".encode())
        h.update(flat.view(torch.uint8).numpy())  # the exact bytes (bf16 and bool included)
    elif isinstance(obj, dict):
        h.update(f"D{where}|{len(obj)}|".encode())
        for k in sorted(obj, key=lambda k: (type(k).__name__, repr(k))):
            _feed(h, obj[k], f"{where}[{k!r}]")
    elif isinstance(obj, list | tuple):  # a tuple may come back as a list: the same data
        h.update(f"L{where}|{len(obj)}|".encode())
        for i, v in enumerate(obj):
            _feed(h, v, f"{where}[{i}]")
    else:  # plain: repr is exact for int, str, bool, None and float (shortest round trip)
        h.update(f"V{where}|{type(obj).__name__}|{obj!r}|".encode())


def checkpoint_checksum(ckpt: dict) -> str:
    """The checksum of a checkpoint dict, "sha256:<hex>", over every entry but "checksum" itself: each
    tensor's name, dtype, shape and bytes, and each plain value. Bit-identical contents, same string."""
    h = hashlib.sha256()
    _feed(h, {k: v for k, v in ckpt.items() if k != "checksum"}, "")
    return "sha256:" + h.hexdigest()


class NonFiniteWeightsError(ValueError):
    """A model whose weights hold NaN or infinity: refused by `save_checkpoint` and `load_checkpoint`."""


def non_finite_weights(state: dict) -> list[str]:
    """Names of the floating-point tensors of a state dict that hold NaN or +-inf, with counts."""
    bad = []
    for name, t in state.items():
        if isinstance(t, torch.Tensor) and t.is_floating_point() and not bool(torch.isfinite(t).all()):
            n_nan = int(torch.isnan(t).sum())
            bad.append(f"{name} ({n_nan} NaN, {int(torch.isinf(t).sum())} infinite of {t.numel()})")
    return bad


# --- atomic writes ---------------------------------------------------------------------------
class _Sink:
    """The file object torch.save writes to. After `close()` writes are dropped: interrupted halfway
    (Ctrl-C), torch's zip writer writes its end record from a destructor, after we closed the file,
    and a write to a closed file there aborts the process."""

    def __init__(self, f: Any) -> None:
        self._f = f

    def write(self, data: bytes) -> int:
        return len(data) if self._f is None else self._f.write(data)

    def flush(self) -> None:
        if self._f is not None:
            self._f.flush()

    def close(self) -> None:
        self._f = None


def atomic_torch_save(obj: object, path: str | Path, verify: Callable[[Path], None] | None = None) -> None:
    """`torch.save(obj, path)` that never leaves a partial file at `path` (`atomic.atomic_write`:
    a temporary file in the same folder, fsynced, `verify(tmp)` if given, then renamed over `path`)."""

    def write(f: BinaryIO) -> None:
        sink = _Sink(f)
        try:
            torch.save(obj, sink)
        except Exception as e:  # torch's cleanup turns a Ctrl-C halfway into a RuntimeError
            cause = e.__context__
            if isinstance(cause, KeyboardInterrupt):
                raise cause from None
            raise
        finally:
            sink.close()

    atomic_write(path, write, verify)


# --- save and load -----------------------------------------------------------------------------
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
    """Write a checkpoint of plain data and tensors, atomically (see the module docstring).

    Refuses (ValueError, before touching the file) a model whose weights hold NaN or infinity."""
    if not isinstance(model, Transformer):
        raise ValueError(f"save_checkpoint expects a course_lib Transformer, got {type(model).__name__}")
    weights = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    bad = non_finite_weights(weights)
    if bad:
        raise NonFiniteWeightsError(
            f"refusing to save a model with non-finite weights to {path} (the file is left as it was): "
            f"{', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''}"
        )
    ckpt = {
        "format": FORMAT,
        "model_config": model.cfg.to_dict(),
        "model": weights,
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
    ckpt["checksum"] = checkpoint_checksum(ckpt)
    atomic_torch_save(ckpt, path)


def _read(path: Path, map_location: str | torch.device = "cpu") -> object:
    """torch.load(weights_only=True), with its errors turned into one-line ValueErrors."""
    if not path.is_file():
        raise ValueError(f"no checkpoint at {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if "global" not in str(e).lower():  # not a class reference: bytes that are no pickle at all
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ValueError(
                f"{path} is not a readable torch checkpoint (truncated or damaged?): {first}"
            ) from None
        found = [
            line.strip() for line in str(e).splitlines() if "Unsupported" in line or "global" in line.lower()
        ]
        detail = found[0].split(" was not")[0] if found else type(e).__name__
        raise ValueError(
            f"refusing to load {path}: it holds objects other than tensors and plain data, which "
            f"torch.load(weights_only=True) will not rebuild ({detail}). Unpickling it fully could "
            f"run code hidden in the file: do that only for a file you made yourself."
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, IndexError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(
            f"{path} is not a readable torch checkpoint (truncated or damaged?): {first}"
        ) from None


def _check_layout(path: Path, ckpt: object) -> dict:
    """The format and the required keys; a format-1 file gets the command that upgrades it."""
    got = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
    if got == FORMAT_V1:
        raise ValueError(
            f"{path} is a course_lib checkpoint of the old format {FORMAT_V1!r}, which has no checksum "
            f"to verify its weights; upgrade it once with: python -m course_lib.checkpoint upgrade {path}"
        )
    if got != FORMAT:
        raise ValueError(f"{path} is not a course_lib checkpoint: expected format {FORMAT!r}, got {got!r}")
    for key in (*REQUIRED, "checksum"):
        if key not in ckpt:
            raise ValueError(f"{path} is missing {key!r}: not a complete course_lib checkpoint")
    return ckpt


def save_model_file(
    path: str | Path,
    fmt: str,
    model: torch.nn.Module,
    fields: dict | None = None,
    verify: Callable[[Path], None] | None = None,
) -> None:
    """One model of the later lessons (GPT, induction) in its own format: `fmt`, its config
    (`model.cfg.to_dict()`), its weights and plain-data `fields`, with a checksum, written
    atomically (`verify` reads the temporary file back first). Refuses non-finite weights."""
    weights = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    bad = non_finite_weights(weights)
    if bad:
        raise NonFiniteWeightsError(f"refusing to save a model with non-finite weights to {path}: {bad[0]}")
    ckpt = {"format": fmt, "model_config": model.cfg.to_dict(), "model": weights, **(fields or {})}
    check_plain(ckpt)
    ckpt["checksum"] = checkpoint_checksum(ckpt)
    atomic_torch_save(ckpt, path, verify=verify)


def read_model_file(
    path: str | Path, fmt: str, what: str, keys: tuple[str, ...] = (), map_location: str = "cpu"
) -> dict:
    """A `save_model_file` file, read with weights_only=True and checked: its format, the `keys`
    it must hold, its checksum and finite weights; a one-line ValueError otherwise."""
    path = Path(path)
    ckpt = _read(path, map_location)
    if not isinstance(ckpt, dict) or ckpt.get("format") != fmt:
        raise ValueError(f"{path} is not a course_lib {what} checkpoint (format {fmt!r})")
    for key in ("model_config", "model", "checksum", *keys):
        if key not in ckpt:
            raise ValueError(f"{path} is missing {key!r}: not a complete {what} checkpoint")
    if ckpt["checksum"] != checkpoint_checksum(ckpt):
        raise ValueError(f"{path} fails its checksum: the file changed after it was written")
    bad = non_finite_weights(ckpt["model"])
    if bad:
        raise NonFiniteWeightsError(f"{path} holds non-finite weights: {bad[0]}")
    return ckpt


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint with `weights_only=True` and verify it.

    Refuses (ValueError) anything but tensors and plain data, a truncated or damaged file, a
    file whose checksum does not match its contents, a format-1 file (see `upgrade_checkpoint`)
    and NaN or infinite weights. Returns the dict without its "checksum" entry."""
    path = Path(path)
    ckpt = _check_layout(path, _read(path, map_location))
    want, got = ckpt.pop("checksum"), checkpoint_checksum(ckpt)
    if want != got:
        raise ValueError(
            f"{path} is corrupted: its contents do not match the checksum stored in it "
            f"(stored {str(want)[:19]}..., computed {got[:19]}...); use another checkpoint or retrain"
        )
    bad = non_finite_weights(ckpt["model"])
    if bad:
        raise NonFiniteWeightsError(
            f"refusing to load {path}: the model's weights hold NaN or infinity, the run diverged "
            f"before it was saved: {', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''}"
        )
    return ckpt


def upgrade_checkpoint(path: str | Path, out: str | Path | None = None) -> bool:
    """Rewrite a format-1 checkpoint in the current format: every field and tensor bit for bit,
    plus the checksum; saved atomically to `out` (default: over `path`) after reading the new
    file back. Returns False, writing nothing, for a file already in the current format.

    The checksum certifies the bytes as they are now: upgrade only a file you trust."""
    path = Path(path)
    out = Path(out) if out is not None else path
    raw = _read(path)
    if isinstance(raw, dict) and raw.get("format") == FORMAT:
        load_checkpoint(path)  # verifies it
        if out.resolve() == path.resolve():
            return False
        new = raw
    else:
        got = raw.get("format") if isinstance(raw, dict) else type(raw).__name__
        if got != FORMAT_V1:
            raise ValueError(f"cannot upgrade {path}: expected format {FORMAT_V1!r}, got {got!r}")
        missing = [k for k in REQUIRED if k not in raw]
        if missing:
            raise ValueError(f"cannot upgrade {path}: it is missing {missing}")
        check_plain(raw)
        bad = non_finite_weights(raw["model"])
        if bad:
            raise ValueError(f"cannot upgrade {path}: its weights hold NaN or infinity: {', '.join(bad[:3])}")
        new = {k: (FORMAT if k == "format" else v) for k, v in raw.items()}
    new["checksum"] = checkpoint_checksum(new)
    atomic_torch_save(new, out, verify=load_checkpoint)
    return True


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
    cfg = ckpt["model_config"]
    shared = {"generator.weight"} if cfg.get("tie_output") else set()  # the same tensor as an embedding
    if cfg.get("share_embeddings"):
        shared.add("tgt_embed.weight")  # one table for source and target
    n = sum(v.numel() for k, v in ckpt["model"].items() if k not in shared)
    return {
        "step": ckpt["step"],
        "task": extra.get("task"),
        "parameters": n,
        "model_config": ckpt["model_config"],
        "train_config": extra.get("train_config", {}),
        "metrics": extra.get("metrics", {}),
        "has_optimizer": "optimizer" in ckpt,
    }


# --- command line ------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """`python -m course_lib.checkpoint upgrade PATH [--out OUT]` or `verify PATH [PATH ...]`."""
    p = argparse.ArgumentParser(
        prog="python -m course_lib.checkpoint", description="Check or upgrade course_lib checkpoints."
    )
    sub = p.add_subparsers(dest="command", required=True)
    up = sub.add_parser("upgrade", help=f"rewrite a {FORMAT_V1} file as {FORMAT} (adds the checksum)")
    up.add_argument("path")
    up.add_argument("--out", default=None, help="write here instead of over PATH")
    ver = sub.add_parser("verify", help="load each file, checking its checksum and weights")
    ver.add_argument("paths", nargs="+")
    a = p.parse_args(argv)
    try:
        if a.command == "upgrade":
            done = upgrade_checkpoint(a.path, a.out)
            target = a.out or a.path
            print(f"upgraded {a.path} to {FORMAT}: {target}" if done else f"{a.path} is already {FORMAT}")
        else:
            for path in a.paths:
                info = checkpoint_info(path)
                print(f"ok: {path} ({FORMAT}, step {info['step']}, {info['parameters']:,} parameters)")
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
