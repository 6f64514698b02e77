from course_lib.data import EOS, SOS
from course_lib.exercises.lesson12 import check_encode, check_merge
from course_lib.tokenizer import N_BASE, BPETokenizer, merge_pair, pretokenize


# --- check_merge ------------------------------------------------------------------------------
def merge_right(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == tuple(pair):
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def merge_from_the_right(ids, pair, new_id):
    return merge_right(ids[::-1], pair[::-1], new_id)[::-1]


def merge_first_only(ids, pair, new_id):
    for i in range(len(ids) - 1):
        if (ids[i], ids[i + 1]) == pair:
            return ids[:i] + [new_id] + ids[i + 2 :]
    return ids


def merge_no_skip(ids, pair, new_id):  # forgets to step over the second id of the pair
    out = []
    for i, x in enumerate(ids):
        if i + 1 < len(ids) and (x, ids[i + 1]) == pair:
            out.append(new_id)
        else:
            out.append(x)
    return out


def merge_in_place(ids, pair, new_id):
    ids[:] = merge_right(ids, pair, new_id)
    return ids


def test_merge_accepts_right_answers():
    for fn in (merge_right, lambda ids, p, n: tuple(merge_right(ids, p, n))):
        r = check_merge(fn)
        assert r.passed and str(r).startswith("✅"), r.message
    for fn in (merge_pair, lambda ids, p, n: merge_pair(ids, p, n)):
        r = check_merge(fn)
        assert not r.passed and "merge_pair: write it yourself" in r.message


def test_merge_hints():
    r = check_merge(merge_from_the_right)
    assert (
        not r.passed
        and str(r).startswith("❌")
        and "left to right" in r.message
        and "from the right" in r.message
    )
    r = check_merge(merge_first_only)
    assert not r.passed and "only the first occurrence" in r.message
    r = check_merge(merge_no_skip)
    assert not r.passed and "more ids than expected" in r.message and "past both" in r.message
    r = check_merge(merge_in_place)
    assert not r.passed and "changed the list it was given" in r.message
    r = check_merge(lambda ids, pair, new_id: merge_right(ids, pair[::-1], new_id))
    assert not r.passed and "the pair is ordered" in r.message
    r = check_merge(lambda ids, pair, new_id: None)
    assert not r.passed and "return a list of ids" in r.message
    r = check_merge(lambda ids, pair, new_id: 1 / 0)
    assert not r.passed and "ZeroDivisionError" in r.message and "\n" not in str(r)


# --- check_encode -----------------------------------------------------------------------------
def encode_right(text, merges):
    ranks = {tuple(p): r for r, p in enumerate(merges)}
    out = []
    for chunk in pretokenize(text):
        ids = [b + 3 for b in chunk.encode("utf-8")]
        while len(ids) > 1:
            pair = min(zip(ids, ids[1:]), key=lambda p: ranks.get(p, float("inf")))
            if pair not in ranks:
                break
            ids = merge_right(ids, pair, N_BASE + ranks[pair])
        out += ids
    return out


def encode_every_merge_in_order(text, merges):
    out = []
    for chunk in pretokenize(text):
        ids = [b + 3 for b in chunk.encode("utf-8")]
        for r, pair in enumerate(merges):
            ids = merge_right(ids, pair, N_BASE + r)
        out += ids
    return out


def encode_without_chunks(text, merges):
    ids = [b + 3 for b in text.encode("utf-8")]
    for r, pair in enumerate(merges):
        ids = merge_right(ids, pair, N_BASE + r)
    return ids


def encode_backwards(text, merges):
    out = []
    for chunk in pretokenize(text):
        ids = [b + 3 for b in chunk.encode("utf-8")]
        for r in reversed(range(len(merges))):
            ids = merge_right(ids, merges[r], N_BASE + r)
        out += ids
    return out


def test_encode_accepts_right_answers():
    for fn in (encode_right, encode_every_merge_in_order):
        r = check_encode(fn)
        assert r.passed and str(r).startswith("✅"), r.message
    r = check_encode(lambda t, m: BPETokenizer(m).encode(t))
    assert not r.passed and "BPETokenizer.encode: write it yourself" in r.message


def test_encode_hints():
    r = check_encode(encode_without_chunks)
    assert not r.passed and "pretokenize(text)" in r.message
    r = check_encode(encode_backwards)
    assert not r.passed and "by rank" in r.message
    r = check_encode(lambda t, m: list(t.encode("utf-8")))
    assert not r.passed and "b + 3" in r.message
    r = check_encode(lambda t, m: [ord(c) + 3 for c in t])
    assert not r.passed and "UTF-8" in r.message
    r = check_encode(lambda t, m: [SOS, *encode_right(t, m), EOS])
    assert not r.passed and "leave out SOS and EOS" in r.message
    r = check_encode(lambda t, m: encode_right(t, m)[:-1])
    assert not r.passed and "first difference at position" in r.message and str(r).startswith("❌")
    r = check_encode(lambda t, m: None)
    assert not r.passed and "return a list of ids" in r.message
