"""`make bench`: measure the course and its model against the references, print a markdown
table, and write it with the machine's details to docs/benchmarks.md.

    python -m benchmarks.run                 # everything (long: trains four models)
    python -m benchmarks.run --quick --out /tmp/bench.md   # tiny sizes, a few seconds each
    python -m benchmarks.run --rows 3,4      # only some rows (the file then holds only those)
    python -m benchmarks.run --rows 2 --keep-other-rows   # re-run row 2, keep the others' figures

Rows: 1 notebooks, 2 time to 99% exact match, 3 attention, 4 training step, 5 KV cache,
6 FLOP rate, 7 GPU (bf16, fused attention, torch.compile; CUDA only), 8 the BPE tokenizer
against Hugging Face tokenizers, 9 lesson 13's GPT (training step against torch's layers, KV cache).
"""

from __future__ import annotations

import os

# On a shared machine an OpenMP thread that spins while it waits steals the time slice its
# partner needs, and small ops take 10-100x longer; sleeping waiters keep timings sane. This
# must be set before torch loads its OpenMP runtime (and notebooks' kernels inherit it).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import datetime as dt
import json
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from course_lib.atomic import atomic_write_text
from course_lib.model import TransformerConfig

from . import notes
from .machine import machine_details
from .table import Line, markdown_table
from .timing import fmt_seconds, use_all_cores

ROOT = Path(__file__).resolve().parent.parent
ALL_ROWS = (1, 2, 3, 4, 5, 6, 7, 8, 9)


@dataclass
class Context:
    quick: bool
    device: torch.device
    notebooks: list[Path]
    cap_steps: int
    extra: dict[str, str] = field(default_factory=dict)  # details for the doc, by heading
    runs: list[dict] = field(default_factory=list)  # the runs whose rows the doc shows


# --- the model the course trains last (lesson 11 / the training command) ----------------
def final_config(task: str) -> TransformerConfig:
    """The final model's configuration for `task`, as course_lib.train builds it."""
    from .recipes import final_config as cfg_of

    return cfg_of(task)


# --- rows ----------------------------------------------------------------------------
def row_notebooks(ctx: Context) -> list[Line]:
    from .notebooks import notebook_lines, tiny_notebook

    if ctx.quick:
        folder = Path(tempfile.mkdtemp(prefix="bench_nb_"))
        lines, _ = notebook_lines([tiny_notebook(folder)], label=" (quick mode: a 2-cell check notebook)")
        return lines
    lines, seconds = notebook_lines(ctx.notebooks)
    ctx.extra["Row 1: seconds per notebook"] = "\n".join(f"* {k}: {v:.1f} s" for k, v in seconds.items())
    return lines


def row_convergence(ctx: Context) -> list[Line]:
    from .recipes import convergence_lines

    lines, details = convergence_lines(ctx.quick, ctx.cap_steps)
    ctx.extra["Row 2: every run (step, training seconds, validation exact match)"] = details
    return lines


def row_attention(ctx: Context) -> list[Line]:
    from .speed import attention_lines

    shapes = [(4, 32, 64, 4)] if ctx.quick else [(32, 128, 256, 8), (8, 512, 256, 8)]
    return attention_lines(shapes, repeats=3 if ctx.quick else 9, device=ctx.device)


def _step_setups(ctx: Context) -> list:
    """The final dates model on a real batch, and (full run) a wider model with dropout on."""
    from .recipes import step_batch
    from .speed import random_batch

    setups = [step_batch(ctx.quick, ctx.device)]
    if not ctx.quick:  # a step big enough for the matmuls to dominate
        big = TransformerConfig(
            1000, d_model=512, n_heads=8, d_ff=2048, n_encoder_layers=2, n_decoder_layers=2, dropout=0.1
        )
        label = "d_model 512, 2+2 layers, h 8, d_ff 2048, dropout 0.1; batch 16 x 64+64 tokens"
        setups.append((label, big, random_batch(big, 16, 64, 64, ctx.device)))
    return setups


def row_training_step(ctx: Context) -> list[Line]:
    from .speed import training_step_lines

    lines = []
    for label, cfg, batch in _step_setups(ctx):
        more, _, _ = training_step_lines(
            cfg, batch, repeats=3 if ctx.quick else 9, device=ctx.device, label=label
        )
        lines += more
    return lines


def row_generation(ctx: Context) -> list[Line]:
    from .recipes import generation_setups
    from .speed import generation_lines

    n = 32 if ctx.quick else 256
    lines = []
    for label, cfg, src in generation_setups(ctx.quick):
        lines += generation_lines(cfg, src, n, repeats=2 if ctx.quick else 5, device=ctx.device, label=label)
    return lines


def row_flop_rate(ctx: Context) -> list[Line]:
    from .speed import flop_rate_lines

    n = 256 if ctx.quick else 2048
    return flop_rate_lines(_step_setups(ctx), repeats=3 if ctx.quick else 5, device=ctx.device, n=n)


def row_gpu(ctx: Context) -> list[Line]:
    from .gpu import gpu_lines

    return gpu_lines(ctx.quick)


def row_bpe(ctx: Context) -> list[Line]:
    from course_lib.corpus import load_corpus

    from .bpe import lines as bpe_lines

    if ctx.quick:
        return bpe_lines(load_corpus(), [300], repeats=1)
    return bpe_lines(load_corpus(), [1000, 4000], repeats=7)


def row_gpt(ctx: Context) -> list[Line]:
    from .gpt import lines as gpt_lines

    return gpt_lines(quick=ctx.quick)


ROWS: dict[int, Callable[[Context], list[Line]]] = {
    1: row_notebooks,
    2: row_convergence,
    3: row_attention,
    4: row_training_step,
    5: row_generation,
    6: row_flop_rate,
    7: row_gpu,
    8: row_bpe,
    9: row_gpt,
}


# --- the report ------------------------------------------------------------------------
def render(lines: list[Line], ctx: Context, machine: dict[str, str], seconds: float, argv: list[str]) -> str:
    met = [ln for ln in lines if ln.met is not None]
    runs = ctx.runs or [this_run(lines, argv, seconds)]
    parts = [
        "# Benchmarks",
        "",
        f"Produced by `make bench` (`python -m benchmarks.run`){' in quick mode: tiny sizes, not the real figures' if ctx.quick else ''}:",
        "",
        *[
            f"* {'row' if len(r['rows']) == 1 else 'rows'} {', '.join(map(str, r['rows']))}: `{r['command']}` "
            f"on {r['date']}, in {fmt_seconds(r['seconds'])}"
            for r in runs
        ],
        "",
        f"Targets met: {sum(ln.met for ln in met)} of {len(met)}.",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in machine.items()],
        "",
        "## Results",
        "",
        markdown_table(lines),
        "",
    ]
    for heading, text in ctx.extra.items():
        parts += [f"### {heading}", "", text, ""]
    parts += [notes.METHOD, notes.CHANGES]
    return "\n".join(parts)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks that every row runs (seconds)")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="markdown file to write (default: docs/benchmarks.md, none with --quick)",
    )
    p.add_argument(
        "--rows", default=",".join(map(str, ALL_ROWS)), help="comma-separated row numbers, e.g. 3,4"
    )
    p.add_argument(
        "--notebooks",
        default="notebooks/*.ipynb",
        help="glob of the lessons for row 1, from the repository root",
    )
    p.add_argument(
        "--cap", type=int, default=1500, help="steps each row-2 training may take before it is stopped"
    )
    p.add_argument(
        "--keep-other-rows",
        action="store_true",
        help="with --rows: keep the other rows of the last run (read from the .json beside --out)",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    try:
        rows = sorted({int(r) for r in args.rows.split(",") if r.strip()})
    except ValueError:
        raise SystemExit(f"--rows must be comma-separated numbers from 1 to 9, got {args.rows!r}") from None
    if not rows or any(r not in ROWS for r in rows):
        raise SystemExit(f"--rows must be comma-separated numbers from 1 to 9, got {args.rows!r}")
    out = args.out if args.out is not None else (None if args.quick else ROOT / "docs" / "benchmarks.md")
    use_all_cores()
    ctx = Context(
        quick=args.quick,
        device=torch.device("cpu"),  # rows 1-6 measure the laptop-CPU course; row 7 uses CUDA itself
        notebooks=sorted(ROOT.glob(args.notebooks)),
        cap_steps=min(args.cap, 20) if args.quick else args.cap,
    )
    machine = machine_details()
    t0 = time.perf_counter()
    lines: list[Line] = []
    for r in rows:
        print(f"[bench] row {r} ...", file=sys.stderr, flush=True)
        t_row = time.perf_counter()
        try:
            lines += ROWS[r](ctx)
        except Exception as e:  # one broken row must not lose the others
            traceback.print_exc()
            lines.append(Line(r, f"row {r}", f"failed: {type(e).__name__}: {e}".splitlines()[0], "", False))
        print(
            f"[bench] row {r} done in {fmt_seconds(time.perf_counter() - t_row)}", file=sys.stderr, flush=True
        )
    seconds = time.perf_counter() - t0
    if ctx.quick:  # tiny sizes: the figures check the machinery, they are not the real ones
        lines = [replace(ln, met=None) for ln in lines]
    print(markdown_table(lines))
    ctx.runs = [this_run(lines, argv, seconds)]
    if out is not None:
        if args.keep_other_rows:
            lines = merge_with_saved(out, rows, lines, ctx)
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, render(lines, ctx, machine, seconds, argv))
        atomic_write_text(out.with_suffix(".json"), json.dumps(saved_form(lines, ctx), indent=1) + "\n")
        print(f"\nwritten to {out} (and {out.with_suffix('.json').name})", file=sys.stderr)
    return 0


def this_run(lines: list[Line], argv: list[str], seconds: float) -> dict:
    """Which rows a run measured, with its command, date and duration."""
    shown = [a for i, a in enumerate(argv) if a != "--out" and (i == 0 or argv[i - 1] != "--out")]
    return {
        "rows": sorted({ln.row for ln in lines}),
        "command": " ".join(["python -m benchmarks.run", *shown]),
        "date": dt.date.today().isoformat(),
        "seconds": seconds,
    }


def saved_form(lines: list[Line], ctx: Context) -> dict:
    """The table's lines, the per-row details and the runs, so that a later run of some rows can keep the rest."""
    return {"lines": [asdict(ln) for ln in lines], "extra": ctx.extra, "runs": ctx.runs}


def merge_with_saved(out: Path, rows: list[int], lines: list[Line], ctx: Context) -> list[Line]:
    """The lines of this run's rows, and those of every other row from the last full run's JSON."""
    saved_path = out.with_suffix(".json")
    if not saved_path.exists():
        raise SystemExit(f"--keep-other-rows needs {saved_path} from an earlier run; run every row first")
    saved = json.loads(saved_path.read_text(encoding="utf-8"))
    kept = [Line(**d) for d in saved["lines"] if d["row"] not in rows]
    for heading, text in saved["extra"].items():
        if not any(heading.startswith(f"Row {r}:") for r in rows):
            ctx.extra.setdefault(heading, text)
    ctx.extra = dict(sorted(ctx.extra.items(), key=lambda kv: kv[0]))
    earlier = [{**r, "rows": [x for x in r["rows"] if x not in rows]} for r in saved.get("runs", [])]
    ctx.runs = [r for r in earlier if r["rows"]] + ctx.runs
    return sorted(kept + lines, key=lambda ln: ln.row)


if __name__ == "__main__":
    raise SystemExit(main())
