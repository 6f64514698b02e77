from __future__ import annotations

import math
from collections import Counter

from course_lib.bleu import corpus_bleu, modified_precision_counts, tokenize_13a
from course_lib.exercises.lesson14 import check_average, check_corpus_bleu, check_modified_precision
from course_lib.translation import average_state_dicts


# --- modified precision -----------------------------------------------------------------------------
def precision_right(hyp, ref, n):
    h = Counter(tuple(hyp[i : i + n]) for i in range(len(hyp) - n + 1))
    r = Counter(tuple(ref[i : i + n]) for i in range(len(ref) - n + 1))
    return sum(min(c, r[g]) for g, c in h.items()), sum(h.values())


def precision_unclipped(hyp, ref, n):
    h = Counter(tuple(hyp[i : i + n]) for i in range(len(hyp) - n + 1))
    r = Counter(tuple(ref[i : i + n]) for i in range(len(ref) - n + 1))
    return sum(c for g, c in h.items() if g in r), sum(h.values())


def precision_ref_total(hyp, ref, n):
    m, _ = precision_right(hyp, ref, n)
    return m, max(len(ref) - n + 1, 0)


def test_precision_accepts_right_answer():
    r = check_modified_precision(precision_right)
    assert r.passed and str(r).startswith("✅"), r.message


def test_precision_rejects_wrong_answers():
    for fn in (precision_unclipped, precision_ref_total):
        r = check_modified_precision(fn)
        assert not r.passed and "expected" in r.message, fn.__name__


def test_precision_refuses_the_library():
    r = check_modified_precision(modified_precision_counts)
    assert not r.passed and "write it yourself" in r.message


# --- averaging -----------------------------------------------------------------------------------------
def average_right(states):
    out = {}
    for k, v in states[0].items():
        if v.is_floating_point():
            out[k] = sum(s[k] for s in states) / len(states)
        else:
            out[k] = v.clone()
    return out


def average_last_only(states):
    return dict(states[-1])


def average_in_place(states):
    for k, v in states[0].items():
        if v.is_floating_point():
            for s in states[1:]:
                v += s[k]
            v /= len(states)
    return states[0]


def average_counts_too(states):
    return {k: sum(s[k].double() for s in states) / len(states) for k in states[0]}


def test_average_accepts_right_answer():
    r = check_average(average_right)
    assert r.passed, r.message


def test_average_rejects_wrong_answers():
    for fn, what in ((average_last_only, "differs"), (average_in_place, "changed"), (average_counts_too, "")):
        r = check_average(fn)
        assert not r.passed and what in r.message, (fn.__name__, r.message)


def test_average_refuses_the_library():
    r = check_average(average_state_dicts)
    assert not r.passed and "write it yourself" in r.message


# --- corpus BLEU ----------------------------------------------------------------------------------------
def bleu_right(hyps, refs):
    m, t, c, r = [0] * 4, [0] * 4, 0, 0
    for h, ref in zip(hyps, refs):
        h, ref = tokenize_13a(h), tokenize_13a(ref)
        c, r = c + len(h), r + len(ref)
        for n in range(1, 5):
            a, b = precision_right(h, ref, n)
            m[n - 1] += a
            t[n - 1] += b
    if not any(m):
        return 0.0
    bp = 1.0 if c > r else math.exp(1 - r / c)
    logs, smooth = [], 1
    for a, b in zip(m, t):
        if b == 0:
            logs.append(-9999999999)
        elif a == 0:
            smooth *= 2
            logs.append(math.log(100 / (smooth * b)))
        else:
            logs.append(math.log(100 * a / b))
    return bp * math.exp(sum(logs) / 4)


def bleu_sentence_mean(hyps, refs):
    return sum(bleu_right([h], [r]) for h, r in zip(hyps, refs)) / len(hyps)


def bleu_no_brevity(hyps, refs):
    c = sum(len(tokenize_13a(h)) for h in hyps)
    r = sum(len(tokenize_13a(x)) for x in refs)
    s = bleu_right(hyps, refs)
    return s / math.exp(1 - r / c) if 0 < c < r else s


def test_bleu_accepts_right_answer():
    r = check_corpus_bleu(bleu_right)
    assert r.passed, r.message


def test_bleu_rejects_wrong_answers():
    for fn in (bleu_sentence_mean, bleu_no_brevity, lambda h, r: 100.0):
        r = check_corpus_bleu(fn)
        assert not r.passed and "sacrebleu gives" in r.message


def test_bleu_refuses_the_library():
    r = check_corpus_bleu(lambda h, r: corpus_bleu(h, r).score)
    assert not r.passed and "write it yourself" in r.message
