"""Associative recall: where a fixed-size state falls short of softmax attention.

The task (after the associative-recall tasks of Ba et al., 2016, "Using Fast Weights to Attend to
the Recent Past", and the multi-query recall of Arora et al., 2023, "Zoology"): a sequence of
`n_pairs` key-value pairs, then one query key; the answer is the value stored with that key.
Keys within a sequence are distinct and random, values random, so nothing but lookup helps.
Each pair is given to the model as ONE position (the sum of a key embedding and a value
embedding), and the query as a last position with its own key embedding: one layer of mixing is
then enough, and the experiment measures the lookup itself.

The model: embeddings -> one token mixer (softmax attention, linear attention or retention, all
causal, same d_model and heads) with a residual connection -> LayerNorm -> a linear layer over the
values, read at the query position only. Training draws fresh sequences every step.

Run the sweep that ships in assets/recall_results.json (a few minutes on one CPU core):

    python -m course_lib.recall --out assets/recall_results.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from .atomic import atomic_write_text
from .attention import MultiHeadAttention
from .linear_attention import LinearAttention
from .masks import causal_mask
from .retention import MultiScaleRetention
from .validate import InputTypeError, check_int, check_number

RECALL_RESULTS = Path(__file__).resolve().parent.parent / "assets" / "recall_results.json"
MIXERS = ("softmax", "linear", "retention")
FORMAT = "course_lib.recall/1"


def recall_batch(
    batch: int, n_pairs: int, n_keys: int, n_values: int, generator: torch.Generator
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """keys (B, n_pairs), values (B, n_pairs), query key (B,), answer value (B,).

    Keys in a row are distinct (a random choice of n_pairs out of n_keys); the query is one of them."""
    check_int(batch, "batch", 1)
    check_int(n_pairs, "n_pairs", 1)
    check_int(n_keys, "n_keys", n_pairs, why=" (keys in a sequence are distinct, so n_keys >= n_pairs)")
    check_int(n_values, "n_values", 2)
    keys = torch.rand(batch, n_keys, generator=generator).argsort(dim=1)[:, :n_pairs]
    values = torch.randint(0, n_values, (batch, n_pairs), generator=generator)
    which = torch.randint(0, n_pairs, (batch,), generator=generator)
    rows = torch.arange(batch)
    return keys, values, keys[rows, which], values[rows, which]


class RecallModel(nn.Module):
    """One mixing layer over (pair, pair, ..., query) positions; logits over the values at the query."""

    def __init__(self, mixer: str, n_keys: int, n_values: int, d_model: int = 32, n_heads: int = 2) -> None:
        super().__init__()
        if mixer not in MIXERS:
            raise ValueError(f"mixer must be one of {MIXERS}, got {mixer!r}")
        self.mixer_name = mixer
        self.key_embed = nn.Embedding(n_keys, d_model)
        self.value_embed = nn.Embedding(n_values, d_model)
        self.query_embed = nn.Embedding(n_keys, d_model)
        if mixer == "softmax":
            self.mixer: nn.Module = MultiHeadAttention(d_model, n_heads)
        elif mixer == "linear":
            self.mixer = LinearAttention(d_model, n_heads)
        else:
            self.mixer = MultiScaleRetention(d_model, n_heads)
        self.norm = nn.LayerNorm(d_model)
        self.out = nn.Linear(d_model, n_values)

    def forward(self, keys: Tensor, values: Tensor, query: Tensor) -> Tensor:
        """keys, values (B, n_pairs), query (B,) -> logits over the values (B, n_values)."""
        x = self.key_embed(keys) + self.value_embed(values)  # (B, P, d_model): one position per pair
        x = torch.cat([x, self.query_embed(query)[:, None]], dim=1)  # (B, P + 1, d_model)
        if self.mixer_name == "softmax":
            mixed = self.mixer(x, mask=causal_mask(x.size(1), x.device))
        else:
            mixed = self.mixer(x)
        h = x[:, -1] + mixed[:, -1]  # the query position, with its residual
        return self.out(self.norm(h))


def train_recall(
    mixer: str,
    n_pairs: int,
    seed: int,
    steps: int = 600,
    batch: int = 64,
    lr: float = 3e-3,
    n_keys: int = 64,
    n_values: int = 64,
    d_model: int = 32,
    n_heads: int = 2,
    n_eval: int = 2000,
    on_step: Callable[[int, float], None] | None = None,
) -> dict:
    """Train one RecallModel on fresh batches, then measure its accuracy on `n_eval` new sequences.

    Returns a plain dict: the settings, the final training loss, the held-out accuracy, chance
    (1 / n_values), the parameter count and the wall time."""
    check_int(steps, "steps", 1)
    check_int(seed, "seed", 0)
    check_number(lr, "lr")
    torch.manual_seed(seed)
    model = RecallModel(mixer, n_keys, n_values, d_model, n_heads)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    losses = []
    for step in range(steps):
        keys, values, query, answer = recall_batch(batch, n_pairs, n_keys, n_values, g)
        loss = nn.functional.cross_entropy(model(keys, values, query), answer)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if on_step is not None:
            on_step(step, losses[-1])
    g_eval = torch.Generator().manual_seed(10_000 + seed)
    with torch.no_grad():
        keys, values, query, answer = recall_batch(n_eval, n_pairs, n_keys, n_values, g_eval)
        acc = (model(keys, values, query).argmax(-1) == answer).float().mean().item()
    return {
        "mixer": mixer,
        "n_pairs": n_pairs,
        "seed": seed,
        "steps": steps,
        "final_loss": sum(losses[-20:]) / len(losses[-20:]),
        "accuracy": acc,
        "chance": 1 / n_values,
        "params": sum(p.numel() for p in model.parameters()),
        "seconds": time.perf_counter() - start,
    }


def load_recall_results(path: str | Path = RECALL_RESULTS) -> dict:
    """The shipped sweep, checked: its format, and one well-formed record per (mixer, n_pairs, seed)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(
            f"cannot read the recall results {path.name}: {e}; rebuild them with {_COMMAND}"
        ) from e
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path.name} is not a {FORMAT} file; rebuild it with {_COMMAND}")
    runs = data.get("runs")
    if not isinstance(runs, list) or not runs:
        raise ValueError(f"{path.name} holds no runs; rebuild it with {_COMMAND}")
    for r in runs:
        if (
            not isinstance(r, dict)
            or r.get("mixer") not in MIXERS
            or not isinstance(r.get("accuracy"), float)
            or not 0.0 <= r["accuracy"] <= 1.0
            or not math.isfinite(r.get("final_loss", float("nan")))
        ):
            raise ValueError(f"{path.name} holds a malformed run {r!r}; rebuild it with {_COMMAND}")
    return data


_COMMAND = "python -m course_lib.recall --out assets/recall_results.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m course_lib.recall",
        description="Associative recall: softmax vs linear attention vs retention.",
    )
    parser.add_argument("--out", type=Path, default=RECALL_RESULTS, help="the JSON file to write")
    parser.add_argument("--pairs", type=int, nargs="+", default=[4, 8, 16, 32, 64])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=1500)
    args = parser.parse_args(argv)
    if args.out.is_dir():
        parser.error(f"--out must be a file, got the folder {args.out}")
    if min(args.pairs) < 1 or max(args.pairs) > 64 or args.steps < 1 or min(args.seeds) < 0:
        parser.error("expected --pairs in [1, 64], --steps >= 1 and --seeds >= 0")
    torch.set_num_threads(1)
    runs = []
    for n_pairs in args.pairs:
        for mixer in MIXERS:
            for seed in args.seeds:
                r = train_recall(mixer, n_pairs, seed, steps=args.steps)
                runs.append(r)
                print(
                    f"{mixer:>9} pairs={n_pairs:>3} seed={seed} accuracy={r['accuracy']:.3f} "
                    f"loss={r['final_loss']:.3f} ({r['seconds']:.0f} s)",
                    flush=True,
                )
    data = {
        "format": FORMAT,
        "command": _COMMAND,
        "settings": {
            "steps": args.steps,
            "batch": 64,
            "lr": 3e-3,
            "n_keys": 64,
            "n_values": 64,
            "d_model": 32,
            "n_heads": 2,
            "n_eval": 2000,
        },
        "runs": runs,
    }
    atomic_write_text(args.out, json.dumps(data, indent=1) + "\n")
    print(f"wrote {len(runs)} runs to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["RecallModel", "recall_batch", "train_recall", "load_recall_results", "InputTypeError"]
