"""Translation with the course's encoder-decoder (lesson 14): data, training, decoding, scoring.

  * `TranslationTask`: sentence pairs split into train / validation / test (and, for the
    synthetic grammar, "compositional"), tokenised with ONE byte-pair vocabulary learned from both
    languages of the training split (the paper's shared source-target vocabulary, section 5.1).
    It is a `course_lib.data.Task`, so lesson 09's `Trainer` trains on it unchanged.
  * `translation_model`: the course `Transformer` with one embedding matrix shared by the encoder,
    the decoder and the output layer (section 3.4); `d_k` below d_model / h for Table 3 row B.
  * `translate_all` / `score`: greedy or beam search (beam 4, alpha 0.6), output length at most
    input length + 50 (section 6.1), BLEU on the detokenised text (`course_lib.bleu`).
  * `average_state_dicts` / `average_checkpoints`: the paper's checkpoint averaging (section 6.1).

The shipped model, assets/translation_model.pt, was made by (CPU, one thread; see TRAIN_RECIPE):

    python -m course_lib.translation train --out assets/translation_model.pt

It holds the average of the last 5 checkpoints (saved every 200 steps) in "model" and the last
checkpoint alone in extra["last_model"], both stored in float16 to halve the file (they are
loaded as float32; the BLEU below was measured after that round trip).

Table 3 in miniature (rows A, B and D, three seeds each) is made by

    python -m course_lib.translation ablate --out assets/translation_ablations.json

which writes the JSON atomically after every run, so a stopped run keeps what it finished.
Both commands score the test split once per final model and do no tuning.
"""

from __future__ import annotations

import argparse
import copy
import math
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from .atomic import atomic_write_text
from .bleu import BLEUScore, corpus_bleu
from .checkpoint import load_checkpoint, save_checkpoint
from .data import EOS, PAD, SOS, Task, make_batch
from .decode import beam_search, greedy_decode, strip_special
from .grammar import sample_pairs
from .model import Transformer, TransformerConfig
from .tokenizer import BPETokenizer
from .validate import check_int

ASSETS = Path(__file__).resolve().parent.parent / "assets"
TRANSLATION_CHECKPOINT = ASSETS / "translation_model.pt"
ABLATIONS_JSON = ASSETS / "translation_ablations.json"

# sizes of the default (synthetic) task
N_TRAIN, N_VALID, N_TEST, N_COMPOSITIONAL = 30_000, 500, 500, 500
VOCAB_SIZE = 1000  # shared BPE vocabulary: 3 specials + 256 bytes + 741 merges
MAX_EXTRA = 50  # section 6.1: "maximum output length to input length + 50"
BEAM_SIZE, ALPHA = 4, 0.6  # section 6.1

# greedy BLEU of the shipped (averaged) model on the synthetic test split (500 sentences), as measured
# by the training command, rounded down to 0.1 (tests/test_translation.py checks the file still scores it)
SHIPPED_TEST_BLEU = 96.3

TRAIN_RECIPE = {
    "d_model": 128,
    "n_heads": 8,
    "layers": 2,
    "d_ff": 512,
    "dropout": 0.1,
    "label_smoothing": 0.1,
    "batch_size": 64,
    "steps": 2400,
    "warmup": 400,
    "lr_scale": 0.7,
    "save_every": 200,
    "average_last": 5,
    "seed": 0,
}


# --- the task ---------------------------------------------------------------------------
def _split_of_pair(src: str, valid_percent: int, test_percent: int) -> str:
    import hashlib

    h = int.from_bytes(hashlib.sha256(src.encode("utf-8")).digest()[:4], "little") % 100
    return "validation" if h < valid_percent else "test" if h < valid_percent + test_percent else "train"


class TranslationTask(Task):
    """Sentence pairs by split, and one shared BPE tokenizer for both sides.

    `sample(rng, n, split)` draws n pairs of a split at random (with replacement): the batches
    of lesson 09's Trainer. `splits[name]` holds the fixed lists of pairs."""

    name = "translation"

    def __init__(self, splits: dict[str, list[tuple[str, str]]], tokenizer: BPETokenizer) -> None:
        if not splits.get("train"):
            raise ValueError("a TranslationTask needs a non-empty 'train' split")
        self.splits = {k: list(v) for k, v in splits.items()}
        self.tokenizer = tokenizer
        self.src_vocab = self.tgt_vocab = tokenizer
        lens = [
            (len(tokenizer.encode(s)), len(tokenizer.encode(t))) for v in self.splits.values() for s, t in v
        ]
        self.max_src_len = max(a for a, _ in lens)
        self.max_tgt_len = max(b for _, b in lens)

    @classmethod
    def from_pairs(
        cls,
        pairs: Sequence[tuple[str, str]],
        vocab_size: int = VOCAB_SIZE,
        valid_percent: int = 2,
        test_percent: int = 2,
    ) -> TranslationTask:
        """Your own pairs (see `course_lib.pairs.load_pairs`): split by a hash of the source
        sentence (so a repeated source never lands on both sides), BPE learned on the training split."""
        splits: dict[str, list[tuple[str, str]]] = {"train": [], "validation": [], "test": []}
        for s, t in pairs:
            splits[_split_of_pair(s, valid_percent, test_percent)].append((s, t))
        for name in ("validation", "test"):
            if not splits[name]:  # a tiny file: give the split one pair rather than none
                splits[name].append(splits["train"].pop())
        tok = BPETokenizer.train([s + "\n" + t for s, t in splits["train"]], vocab_size)
        return cls(splits, tok)

    def sample(self, rng: np.random.Generator, n: int, split: str = "train") -> list[tuple[str, str]]:
        if split not in self.splits:
            raise ValueError(f"split must be one of {sorted(self.splits)}, got {split!r}")
        pool = self.splits[split]
        return [pool[i] for i in rng.integers(0, len(pool), size=n).tolist()]

    def eval_pairs(self, n: int = 1000, split: str = "test") -> list[tuple[str, str]]:
        """The first n pairs of a split (fixed)."""
        return self.splits[split][:n]

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k} {len(v):,}" for k, v in self.splits.items())
        return f"TranslationTask({sizes}; shared BPE of {self.tokenizer.vocab_size} ids)"


def synthetic_splits(
    n_train: int = N_TRAIN,
    n_valid: int = N_VALID,
    n_test: int = N_TEST,
    n_comp: int = N_COMPOSITIONAL,
    seed: int = 0,
) -> dict[str, list[tuple[str, str]]]:
    """The grammar's pairs (course_lib.grammar), deterministic for a seed."""
    return {
        "train": sample_pairs(n_train, "train", seed),
        "validation": sample_pairs(n_valid, "validation", seed),
        "test": sample_pairs(n_test, "test", seed),
        "compositional": sample_pairs(n_comp, "compositional", seed),
    }


def train_tokenizer(train_pairs: Sequence[tuple[str, str]], vocab_size: int = VOCAB_SIZE) -> BPETokenizer:
    """One BPE vocabulary for both languages, learned from the training pairs only."""
    return BPETokenizer.train([s + "\n" + t for s, t in train_pairs], vocab_size)


@cache
def synthetic_task(n_train: int = N_TRAIN, seed: int = 0) -> TranslationTask:
    """The default English -> German task (made once per process)."""
    splits = synthetic_splits(n_train, seed=seed)
    return TranslationTask(splits, train_tokenizer(splits["train"]))


# --- the model ----------------------------------------------------------------------------
def _reduce_key_size(model: Transformer, d_k: int) -> None:
    """Give every attention a key size d_k < d_model / h (Table 3 row B), values unchanged.

    Each head's queries keep only their first d_k features (a fixed 0/1 mask after w_q), scaled
    by sqrt(d_head / d_k): the scores become q'.k' / sqrt(d_k) over d_k features, exactly
    attention with key size d_k. The masked rows of w_q and w_k get no gradient and stay unused."""
    for module in model.modules():
        if hasattr(module, "w_q") and hasattr(module, "n_heads"):
            d_head = module.d_model // module.n_heads
            if d_k > d_head:
                raise ValueError(f"d_k must be at most d_model / n_heads = {d_head}, got {d_k}")
            mask = torch.zeros(module.n_heads, d_head)
            mask[:, :d_k] = math.sqrt(d_head / d_k)
            module.w_q.register_buffer("key_mask", mask.reshape(-1), persistent=False)  # (d_model,)
            module.w_q.register_forward_hook(lambda m, _inp, out: out * m.key_mask.to(out.dtype))


def translation_model(
    task: TranslationTask,
    d_model: int = 128,
    n_heads: int = 8,
    layers: int = 2,
    d_ff: int = 512,
    dropout: float = 0.1,
    d_k: int | None = None,
    seed: int = 0,
) -> Transformer:
    """A course Transformer with one embedding shared by source, target and output (section 3.4).

    max_len leaves room for the longest source + 50 output tokens (section 6.1)."""
    torch.manual_seed(seed)
    V = task.tokenizer.vocab_size
    cfg = TransformerConfig(
        V,
        V,
        d_model=d_model,
        n_heads=n_heads,
        n_encoder_layers=layers,
        n_decoder_layers=layers,
        d_ff=d_ff,
        dropout=dropout,
        max_len=max(task.max_src_len, task.max_tgt_len) + MAX_EXTRA + 2,
        share_embeddings=True,
        pad_id=PAD,
    )
    model = Transformer(cfg)
    if d_k is not None and d_k != d_model // n_heads:
        _reduce_key_size(model, d_k)
    return model


def n_params(model: nn.Module) -> int:
    """Parameters that the model uses, each shared tensor counted once. With a reduced key size
    (`_reduce_key_size`) the masked rows of w_q and w_k are not counted: they never act."""
    total = sum(p.numel() for p in model.parameters())
    for module in model.modules():
        mask = getattr(getattr(module, "w_q", None), "key_mask", None)
        if mask is not None:
            unused_rows = int((mask == 0).sum())
            for lin in (module.w_q, module.w_k):
                total -= unused_rows * (lin.in_features + (1 if lin.bias is not None else 0))
    return total


# --- decoding and scoring -------------------------------------------------------------------
def translate_ids(
    model: Transformer,
    tokenizer: BPETokenizer,
    sources: Sequence[str],
    method: str = "greedy",
    beam_size: int = BEAM_SIZE,
    alpha: float = ALPHA,
    batch_size: int = 250,
) -> list[list[int]]:
    """The generated ids of each translation (EOS and padding removed), at most input length + 50
    tokens each (section 6.1).

    greedy: batched; each row is cut at its own source length + 50.
    beam: one sentence at a time, course_lib.decode.beam_search (beam 4, alpha 0.6 by default)."""
    if method not in ("greedy", "beam"):
        raise ValueError(f"method must be 'greedy' or 'beam', got {method!r}")
    device = next(model.parameters()).device
    limit = model.cfg.max_len
    out: list[list[int]] = []
    model.eval()
    if method == "greedy":
        for i in range(0, len(sources), batch_size):
            chunk = list(sources[i : i + batch_size])
            b = make_batch([(s, "") for s in chunk], tokenizer, tokenizer, device)
            src_lens = (b.src != PAD).sum(1).tolist()
            max_len = min(max(src_lens) + MAX_EXTRA, limit)
            ids = greedy_decode(model, b.src, SOS, EOS, max_len, b.src_mask)  # (B, L)
            for row, n in zip(ids.tolist(), src_lens):
                out.append(strip_special(row[: n + MAX_EXTRA], EOS, PAD, SOS))
        return out
    for s in sources:
        src = torch.tensor([tokenizer.encode(s)], device=device)  # (1, S)
        max_len = min(src.size(1) + MAX_EXTRA, limit)
        ids = beam_search(model, src, SOS, EOS, max_len, beam_size, alpha)  # alpha passed by position
        out.append(strip_special(ids[0].tolist(), EOS, PAD, SOS))
    return out


def translate_all(
    model: Transformer,
    tokenizer: BPETokenizer,
    sources: Sequence[str],
    method: str = "greedy",
    beam_size: int = BEAM_SIZE,
    alpha: float = ALPHA,
    batch_size: int = 250,
) -> list[str]:
    """Translate many sentences to text (see `translate_ids`): greedy (batched) or beam search."""
    with torch.no_grad():
        ids = translate_ids(model, tokenizer, sources, method, beam_size, alpha, batch_size)
    return [tokenizer.decode(row) for row in ids]


def score(
    model: Transformer,
    tokenizer: BPETokenizer,
    pairs: Sequence[tuple[str, str]],
    method: str = "greedy",
    **kw,
) -> tuple[BLEUScore, list[str], float]:
    """(corpus BLEU, the outputs, seconds) of a model on (source, reference) pairs."""
    t0 = time.perf_counter()
    with torch.no_grad():
        hyps = translate_all(model, tokenizer, [s for s, _ in pairs], method, **kw)
    seconds = time.perf_counter() - t0
    return corpus_bleu(hyps, [t for _, t in pairs]), hyps, seconds


@torch.no_grad()
def token_cross_entropy(
    model: Transformer, task: TranslationTask, split: str = "validation", n: int = 500
) -> float:
    """Mean -log p(reference token) per BPE token, teacher forcing, no label smoothing."""
    from .train import batch_loss

    pairs = task.splits[split][:n]
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(pairs), 250):
        loss, k = batch_loss(model, make_batch(pairs[i : i + 250], task.tokenizer, task.tokenizer))
        total, count = total + loss, count + k
    return total / max(count, 1)


# --- checkpoint averaging (section 6.1) -----------------------------------------------------------
def average_state_dicts(states: Sequence[dict[str, Tensor]]) -> dict[str, Tensor]:
    """The element-wise mean of several state dicts of one model (accumulated in float64).

    Floating-point tensors are averaged; any other tensor (an integer buffer) must be the same in
    every state and is kept. Different keys or shapes are a ValueError."""
    if len(states) == 0:
        raise ValueError("average_state_dicts needs at least one state dict")
    keys = list(states[0])
    for i, s in enumerate(states[1:], start=1):
        if list(s) != keys:
            raise ValueError(f"state dict {i} has other keys than state dict 0: not checkpoints of one model")
    out = {}
    for k in keys:
        ts = [s[k] for s in states]
        for i, t in enumerate(ts[1:], start=1):
            if t.shape != ts[0].shape:
                raise ValueError(
                    f"{k!r} has shape {tuple(t.shape)} in state dict {i}, {tuple(ts[0].shape)} in 0"
                )
        if ts[0].is_floating_point():
            mean = torch.stack([t.detach().double() for t in ts]).mean(0)  # (...,) in float64
            out[k] = mean.to(ts[0].dtype)
        else:
            if any(not torch.equal(t, ts[0]) for t in ts[1:]):
                raise ValueError(f"{k!r} is not a floating-point tensor and differs between the checkpoints")
            out[k] = ts[0].clone()
    return out


def average_checkpoints(paths: Sequence[str | Path]) -> dict[str, Tensor]:
    """Average the weights of several course checkpoints of one model (each verified on reading)."""
    ckpts = [load_checkpoint(p) for p in paths]
    for p, c in zip(paths[1:], ckpts[1:]):
        if c["model_config"] != ckpts[0]["model_config"]:
            raise ValueError(f"{p} has another model configuration than {paths[0]}")
    return average_state_dicts([c["model"] for c in ckpts])


# --- saving and loading ---------------------------------------------------------------------
def _half(state: dict[str, Tensor]) -> dict[str, Tensor]:
    return {
        k: v.detach().cpu().half() if v.is_floating_point() else v.detach().cpu() for k, v in state.items()
    }


def save_translation_model(
    path: str | Path, model: Transformer, tokenizer: BPETokenizer, step: int, extra: dict, half: bool = True
) -> None:
    """Save through course_lib.checkpoint (atomic, checksummed); float16 weights with half=True."""
    if half:
        model = copy.deepcopy(model).cpu()
        model.load_state_dict({k: v.float() for k, v in _half(model.state_dict()).items()})
        model.half()
    save_checkpoint(path, model, tokenizer, tokenizer, step=step, extra=extra)


def load_translation_model(
    path: str | Path = TRANSLATION_CHECKPOINT, which: str = "model"
) -> tuple[Transformer, BPETokenizer, dict]:
    """(model in float32 and eval mode, shared tokenizer, extra) of a translation checkpoint.

    which="model": the weights in "model" (the shipped file: the average of the last 5 checkpoints);
    which="last_model": the last checkpoint alone, when the file holds it."""
    ckpt = load_checkpoint(path)
    extra = ckpt.get("extra", {})
    if which == "model":
        state = ckpt["model"]
    elif which == "last_model" and "last_model" in extra:
        state = extra["last_model"]
    else:
        raise ValueError(f"which must be 'model' or 'last_model' (when the file holds one), got {which!r}")
    model = Transformer(TransformerConfig(**ckpt["model_config"]))
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    tok = BPETokenizer.from_dict(ckpt["src_vocab"])
    return model.eval(), tok, {k: v for k, v in extra.items() if k != "last_model"}


# --- training -------------------------------------------------------------------------------
def train_translation(
    task: TranslationTask,
    steps: int,
    d_model: int = 128,
    n_heads: int = 8,
    layers: int = 2,
    d_ff: int = 512,
    dropout: float = 0.1,
    d_k: int | None = None,
    label_smoothing: float = 0.1,
    batch_size: int = 64,
    warmup: int = 400,
    lr_scale: float = 1.0,
    seed: int = 0,
    save_every: int = 0,
    average_last: int = 0,
    progress: bool = True,
    live_plot: bool = False,
    callback: Callable | None = None,
):
    """Train a translation model with lesson 09's Trainer (equation 3, Adam(0.9, 0.98, 1e-9),
    label smoothing). With save_every and average_last, the last `average_last` checkpoints
    (one every `save_every` steps) are kept in memory in `trainer.snapshots` for averaging."""
    from .train import TrainConfig, Trainer

    check_int(steps, "steps", 1)
    model = translation_model(task, d_model, n_heads, layers, d_ff, dropout, d_k, seed)
    config = TrainConfig(
        task=task,
        batch_size=batch_size,
        warmup=warmup,
        lr_scale=lr_scale,
        label_smoothing=label_smoothing,
        seed=seed,
        amp=False,
    )
    trainer = Trainer(model, config, device="cpu")
    trainer.snapshots = []

    def keep(tr, rec) -> None:
        if (
            save_every
            and average_last
            and tr.step % save_every == 0
            and tr.step > steps - save_every * average_last
        ):
            tr.snapshots.append((tr.step, {k: v.detach().clone() for k, v in tr.model.state_dict().items()}))
            tr.snapshots = tr.snapshots[-average_last:]
        if callback is not None:
            callback(tr, rec)

    torch.manual_seed(seed)  # dropout masks
    trainer.run(steps, progress=progress, live_plot=live_plot, callback=keep)
    return trainer


def _fmt(b: BLEUScore) -> str:
    return f"{b.score:.2f}"


def _train_command(a: argparse.Namespace) -> int:
    torch.set_num_threads(a.threads)
    t0 = time.process_time()
    if a.data:
        from .pairs import load_pairs

        task = TranslationTask.from_pairs(
            load_pairs(a.data, columns=tuple(a.columns), keys=tuple(a.keys)), a.vocab_size
        )
    else:
        task = synthetic_task()
    print(task, flush=True)
    r = {**TRAIN_RECIPE, **{k: v for k, v in vars(a).items() if k in TRAIN_RECIPE and v is not None}}
    trainer = train_translation(
        task,
        r["steps"],
        r["d_model"],
        r["n_heads"],
        r["layers"],
        r["d_ff"],
        r["dropout"],
        None,
        r["label_smoothing"],
        r["batch_size"],
        r["warmup"],
        r["lr_scale"],
        r["seed"],
        r["save_every"],
        r["average_last"],
        progress=not a.no_progress,
    )
    train_cpu = time.process_time() - t0
    model, tok = trainer.model.eval(), task.tokenizer
    last = {k: v.detach().clone() for k, v in model.state_dict().items()}
    averaged = average_state_dicts([s for _, s in trainer.snapshots])
    metrics: dict = {
        "train_cpu_seconds": round(train_cpu, 1),
        "averaged_steps": [s for s, _ in trainer.snapshots],
    }
    for name, state in (("last", last), ("averaged", averaged)):
        # the float16 round trip the file applies, so the numbers are those of the file
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in _half(state).items()})
        for split in [s for s in ("validation", "test", "compositional") if s in task.splits]:
            b, _, sec = score(model, tok, task.splits[split])
            metrics[f"{name}_{split}_greedy_bleu"] = round(b.score, 2)
            print(f"{name} checkpoint, {split}, greedy: {b} ({sec:.1f} s)", flush=True)
    # beam search (the paper's setting) for the averaged model on the test split
    b, _, sec = score(model, tok, task.splits["test"], "beam")
    metrics["averaged_test_beam_bleu"] = round(b.score, 2)
    metrics["averaged_test_beam_seconds"] = round(sec, 1)
    print(f"averaged checkpoint, test, beam {BEAM_SIZE} alpha {ALPHA}: {b} ({sec:.1f} s)", flush=True)
    metrics["total_cpu_seconds"] = round(time.process_time() - t0, 1)
    recipe = {**r, "vocab_size": tok.vocab_size, "data": Path(a.data).name if a.data else "synthetic"}
    save_translation_model(
        a.out,
        model,
        tok,
        trainer.step,
        {
            "recipe": recipe,
            "metrics": metrics,
            "last_model": _half(last),
            "history_loss": trainer.history["loss"][::10],
        },
    )
    print(f"saved {a.out}: {metrics}")
    return 0


# --- Table 3 in miniature ----------------------------------------------------------------------
ABLATION_BASE = {
    "d_model": 64,
    "n_heads": 4,
    "layers": 2,
    "d_ff": 256,
    "dropout": 0.1,
    "d_k": None,
    "label_smoothing": 0.1,
}
ABLATION_STEPS = 600
ABLATION_BATCH = 32
ABLATION_WARMUP = 150
ABLATION_LR_SCALE = 0.4
ABLATION_TRAIN_PAIRS = 6_000
ABLATION_SEEDS = (0, 1, 2)
# (row, label, changes to the base): the base is shared by every row
ABLATIONS = (
    ("base", "base: h=4, d_k=16", {}),
    ("A", "h=1, d_k=64", {"n_heads": 1}),
    ("A", "h=8, d_k=8", {"n_heads": 8}),
    ("A", "h=16, d_k=4", {"n_heads": 16}),
    ("B", "d_k=8 (h=4)", {"d_k": 8}),
    ("B", "d_k=4 (h=4)", {"d_k": 4}),
    ("D", "dropout 0", {"dropout": 0.0}),
    ("D", "label smoothing 0", {"label_smoothing": 0.0}),
)


def run_ablations(
    out: str | Path,
    steps: int = ABLATION_STEPS,
    seeds: Sequence[int] = ABLATION_SEEDS,
    n_train: int = ABLATION_TRAIN_PAIRS,
    progress: bool = False,
    only: Sequence[str] | None = None,
) -> dict:
    """Train every configuration of ABLATIONS with every seed; write the results JSON after each run.

    Each run: greedy BLEU on the validation and test splits (each scored once, no tuning) and the
    per-token perplexity on the validation split, like Table 3's PPL (dev) and BLEU (dev) columns."""
    import json

    task = synthetic_task(n_train)
    result: dict = {
        "complete": False,
        "steps": steps,
        "seeds": list(seeds),
        "n_train": n_train,
        "base": {k: v for k, v in ABLATION_BASE.items()},
        "batch_size": ABLATION_BATCH,
        "warmup": ABLATION_WARMUP,
        "lr_scale": ABLATION_LR_SCALE,
        "decode": "greedy, output at most input + 50 tokens",
        "runs": [],
    }
    t_all = time.process_time()
    # seed by seed, so that a run stopped early still has every setting with the first seeds
    for seed in seeds:
        for row, label, change in ABLATIONS:
            if only and row not in only:
                continue
            cfg = {**ABLATION_BASE, **change}
            t0 = time.process_time()
            tr = train_translation(
                task,
                steps,
                cfg["d_model"],
                cfg["n_heads"],
                cfg["layers"],
                cfg["d_ff"],
                cfg["dropout"],
                cfg["d_k"],
                cfg["label_smoothing"],
                batch_size=ABLATION_BATCH,
                warmup=ABLATION_WARMUP,
                lr_scale=ABLATION_LR_SCALE,
                seed=seed,
                progress=progress,
            )
            cpu = time.process_time() - t0
            model = tr.model.eval()
            val, _, _ = score(model, task.tokenizer, task.splits["validation"])
            test, _, _ = score(model, task.tokenizer, task.splits["test"])
            ppl = math.exp(token_cross_entropy(model, task, "validation"))
            run = {
                "row": row,
                "label": label,
                "config": cfg,
                "seed": seed,
                "params": n_params(model),
                "val_bleu": round(val.score, 2),
                "test_bleu": round(test.score, 2),
                "val_ppl": round(ppl, 4),
                "train_cpu_seconds": round(cpu, 1),
            }
            result["runs"].append(run)
            result["total_cpu_seconds"] = round(time.process_time() - t_all, 1)
            atomic_write_text(out, json.dumps(result, indent=1) + "\n")
            print(f"{row} {label} seed {seed}: {run}", flush=True)
    result["complete"] = True
    atomic_write_text(out, json.dumps(result, indent=1) + "\n")
    return result


def summarize(result: dict) -> list[dict]:
    """Per configuration: median and range over seeds of validation BLEU, test BLEU and perplexity."""
    rows: dict[str, dict] = {}
    for r in result["runs"]:
        rows.setdefault(r["label"], {"row": r["row"], "label": r["label"], "runs": []})["runs"].append(r)
    out = []
    for d in rows.values():
        entry = {
            "row": d["row"],
            "label": d["label"],
            "n_seeds": len(d["runs"]),
            "params": d["runs"][0]["params"],
        }
        for key in ("val_bleu", "test_bleu", "val_ppl"):
            xs = [r[key] for r in d["runs"]]
            entry[key] = statistics.median(xs)
            entry[key + "_min"], entry[key + "_max"] = min(xs), max(xs)
        out.append(entry)
    return out


# --- command line ------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    from .cli import fraction, nonneg_int, positive_float, positive_int

    p = argparse.ArgumentParser(prog="python -m course_lib.translation", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a translation model and save it (default: the shipped recipe)")
    t.add_argument("--out", required=True, help="checkpoint to write (.pt)")
    t.add_argument(
        "--data", default=None, help="your pairs: a .tsv or .jsonl file (default: the synthetic grammar)"
    )
    t.add_argument(
        "--columns", type=nonneg_int, nargs=2, default=(0, 1), help="TSV fields of source and target"
    )
    t.add_argument("--keys", nargs=2, default=("src", "tgt"), help="JSONL keys of source and target")
    t.add_argument(
        "--vocab-size", type=positive_int, default=VOCAB_SIZE, help="shared BPE vocabulary (with --data)"
    )
    kinds = {"seed": nonneg_int, "dropout": fraction, "label_smoothing": fraction, "lr_scale": positive_float}
    for name in TRAIN_RECIPE:
        if name == "average_last":
            continue
        t.add_argument(
            "--" + name.replace("_", "-"),
            type=kinds.get(name, positive_int),
            default=None,
            help=f"default {TRAIN_RECIPE[name]}",
        )
    t.add_argument("--threads", type=positive_int, default=1)
    t.add_argument("--no-progress", action="store_true")
    ab = sub.add_parser("ablate", help="Table 3 rows A, B and D in miniature, three seeds each")
    ab.add_argument("--out", default=str(ABLATIONS_JSON))
    ab.add_argument("--steps", type=positive_int, default=ABLATION_STEPS)
    ab.add_argument("--seeds", type=nonneg_int, nargs="+", default=list(ABLATION_SEEDS))
    ab.add_argument(
        "--rows", nargs="+", default=None, choices=["base", "A", "B", "D"], help="only these rows"
    )
    ab.add_argument("--threads", type=positive_int, default=1)
    return p


def main(argv: list[str] | None = None) -> int:
    from .cli import check_out_path

    p = _parser()
    a = p.parse_args(argv)
    check_out_path(p, a.out)  # before any work
    try:
        if a.command == "train":
            return _train_command(a)
        torch.set_num_threads(a.threads)
        run_ablations(a.out, a.steps, a.seeds, only=a.rows)
        return 0
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
