"""The course's BPE tokenizer (course_lib.tokenizer) against Hugging Face `tokenizers`.

    python -m benchmarks.bpe                          # the frozen course corpus, 1000 and 4000 ids
    python -m benchmarks.bpe --python-docs            # the Python reference manual (about 0.5 MB)
    python -m benchmarks.bpe --corpus FILE --vocab-sizes 2000 --repeats 9

Both are trained the same way: the training split of the corpus, the same number of merges
(vocabulary = 3 specials + 256 bytes + merges), min_frequency 2, byte-level, each with its own
pre-tokeniser. For each vocabulary size the table gives the median over the repeats of

  * training time (from the text to the merge table);
  * encoding time per 100 KB of the whole corpus: ours with a cold cache (a fresh tokenizer) and
    with a warm one (the same text again), theirs warm (its cache persists between calls);
    `encode_batch` on paragraphs too, which spreads the work over every core;
  * tokens on the held-out (test) split: the compression that matters.

The contenders run interleaved (ours, theirs, theirs, ours, ...), so a burst of load from another
process hits both; ratios are medians of the paired per-repeat ratios, measured in this run.
Ours runs on one core; `tokenizers` trains and batch-encodes on every core it may use.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys

from course_lib.corpus import Corpus, load_corpus, paragraphs_of, python_reference_corpus
from course_lib.tokenizer import BPETokenizer, ReferenceBPE, merges_bytes

from .table import Line, markdown_table
from .timing import fmt_seconds, interleaved

ROW = 8  # the row number this benchmark takes in `make bench`'s table


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def compare(corpus: Corpus, vocab_size: int, repeats: int = 5) -> dict[str, float | int | str]:
    """Train both tokenizers on the training split; time training and encoding; count tokens."""
    train, test, whole = corpus.split("train"), corpus.split("test"), corpus.text
    paragraphs = paragraphs_of(whole)
    kb100 = len(whole.encode("utf-8")) / 100_000
    trained: dict[str, object] = {}

    def train_ours() -> None:
        trained["ours"] = BPETokenizer.train(train, vocab_size)

    def train_ref() -> None:
        trained["ref"] = ReferenceBPE(train, vocab_size)

    t_train = interleaved({"ours": train_ours, "ref": train_ref}, repeats=repeats, warmup=1)
    ours: BPETokenizer = trained["ours"]  # type: ignore[assignment]
    ref: ReferenceBPE = trained["ref"]  # type: ignore[assignment]
    if ours.decode(ours.encode(whole)) != whole:
        raise AssertionError("our tokenizer does not round-trip the corpus")
    warm = BPETokenizer(ours.merges)
    warm.encode(whole)
    batch = ref.tokenizer.encode_batch
    t_enc = interleaved(
        {
            "ours cold": lambda: BPETokenizer(ours.merges).encode(whole),
            "ours warm": lambda: warm.encode(whole),
            "ref": lambda: ref.encode(whole),
            "ref batch": lambda: batch(paragraphs),
        },
        repeats=repeats,
        warmup=1,
    )
    n_ours, n_ref = len(ours.encode(test)), len(ref.encode(test))
    mo, mr = merges_bytes(ours), ref.merges_bytes()
    first_diff = next((i for i, (a, b) in enumerate(zip(mo, mr)) if a != b), min(len(mo), len(mr)))
    return {
        "vocab_size": ours.vocab_size,
        "ref_vocab_size": ref.vocab_size,
        "train_ours": t_train.median("ours"),
        "train_ref": t_train.median("ref"),
        "train_ratio": t_train.ratio("ours", "ref"),
        "enc_ours_cold": t_enc.median("ours cold") / kb100,
        "enc_ours_warm": t_enc.median("ours warm") / kb100,
        "enc_ref": t_enc.median("ref") / kb100,
        "enc_ref_batch": t_enc.median("ref batch") / kb100,
        "enc_ratio_cold": t_enc.ratio("ours cold", "ref"),
        "enc_ratio_warm": t_enc.ratio("ours warm", "ref"),
        "tokens_ours": n_ours,
        "tokens_ref": n_ref,
        "bytes_test": len(test.encode("utf-8")),
        "same_merges": len(set(mo) & set(mr)),
        "n_merges": len(mo),
        "first_diff": first_diff,
    }


def lines(corpus: Corpus, vocab_sizes: list[int], repeats: int = 5) -> list[Line]:
    """Table lines (row 8 of `make bench`) for each vocabulary size."""
    out = []
    for v in vocab_sizes:
        r = compare(corpus, v, repeats)
        what = f"BPE, {corpus.source}, {r['vocab_size']} ids"
        out += [
            Line(
                ROW,
                f"{what}: training time, ours / tokenizers",
                f"{r['train_ratio']:.2f}x ({fmt_seconds(r['train_ours'])} vs {fmt_seconds(r['train_ref'])})",
                "ours: seconds",
                r["train_ours"] < 10,
            ),
            Line(
                ROW,
                f"{what}: encoding time per 100 KB, ours (cold cache) / tokenizers",
                f"{r['enc_ratio_cold']:.2f}x ({fmt_seconds(r['enc_ours_cold'])} vs {fmt_seconds(r['enc_ref'])}; "
                f"ours warm {fmt_seconds(r['enc_ours_warm'])}, tokenizers encode_batch "
                f"{fmt_seconds(r['enc_ref_batch'])})",
                "ours: < 1 s",
                r["enc_ours_cold"] < 1.0,
            ),
            Line(
                ROW,
                f"{what}: tokens on the held-out split ({r['bytes_test']:,} bytes), ours / tokenizers",
                f"{r['tokens_ours'] / r['tokens_ref']:.3f}x ({r['tokens_ours']:,} vs {r['tokens_ref']:,}; "
                f"{r['same_merges']} of {r['n_merges']} merges shared, first difference at rank {r['first_diff']})",
                "within 3%",
                abs(r["tokens_ours"] / r["tokens_ref"] - 1) < 0.03,
            ),
        ]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bpe", description=__doc__.splitlines()[0])
    src = p.add_mutually_exclusive_group()
    src.add_argument("--corpus", default=None, help="a UTF-8 text file (default: the frozen course corpus)")
    src.add_argument("--python-docs", action="store_true", help="the Python reference manual's text")
    p.add_argument("--vocab-sizes", default="1000,4000", help="comma-separated, e.g. 1000,4000")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats per contender (median)")
    args = p.parse_args(argv)
    try:
        import tokenizers
    except ImportError:
        print(
            "error: this benchmark needs Hugging Face's tokenizers: pip install tokenizers", file=sys.stderr
        )
        return 2
    try:
        sizes = [int(s) for s in args.vocab_sizes.split(",") if s.strip()]
        corpus = python_reference_corpus() if args.python_docs else load_corpus(args.corpus)
        table = lines(corpus, sizes, args.repeats)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(
        f"{corpus!r}; python {platform.python_version()}, tokenizers {tokenizers.__version__}, "
        f"{_cores()} core(s); median of {args.repeats} interleaved repeats"
    )
    print(markdown_table(table))
    met = [ln.met for ln in table if ln.met is not None]
    print(f"targets met: {sum(met)} of {len(met)}")
    return 0 if all(met) else 1


if __name__ == "__main__":
    sys.exit(main())
