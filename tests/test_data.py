import datetime as dt

import numpy as np
import pytest
import torch

from course_lib.data import (
    DATE_FORMATS,
    EOS,
    PAD,
    SOS,
    CharVocab,
    DatesTask,
    batch_at,
    batches,
    format_date,
    get_task,
    make_batch,
    ordinal,
    split_days,
)
from course_lib.masks import decoder_mask, padding_mask


def test_special_ids_and_vocab_round_trip():
    v = CharVocab("abc 123")
    assert (PAD, SOS, EOS) == (0, 1, 2) == (v.pad_id, v.sos_id, v.eos_id)
    assert v.itos[:3] == ["<pad>", "<s>", "</s>"] and len(v) == 3 + 7
    text = "ab 321 cab"
    ids = v.encode(text, add_sos=True, add_eos=True)
    assert ids[0] == SOS and ids[-1] == EOS and min(ids[1:-1]) >= 3
    assert v.decode(ids) == text
    assert v.decode([PAD, SOS] + v.encode("ab") + [EOS] + v.encode("c")) == "ab"  # stops at EOS
    assert v.decode(torch.tensor(ids)) == text
    assert v.tokens(v.encode("a b", add_sos=True, add_eos=True)) == ["<s>", "a", "·", "b", "</s>"]
    assert CharVocab.from_dict(v.to_dict()) == v
    assert CharVocab("aab").itos == CharVocab("ab").itos  # duplicates dropped


def test_unknown_characters_named():
    v = CharVocab("0123456789")
    with pytest.raises(ValueError, match=r"not in the vocabulary: 'x', '@'"):
        v.encode("12x4@x")
    with pytest.raises(ValueError, match="expects a string"):
        v.encode(123)
    with pytest.raises(ValueError, match="chars"):
        CharVocab.from_dict({"letters": "ab"})


def test_dates_formats_are_correct_and_encodable(rng):
    task = get_task("dates")
    assert len(DATE_FORMATS) >= 10
    d = dt.date(2026, 11, 22)
    want = {
        "weekday_long": "Sunday, 22 November 2026",
        "dots_short_year": "22.11.26",
        "abbr_us": "Nov 22 2026",
        "ordinal_of": "the 22nd of November, 2026",
        "us_slash": "11/22/2026",
        "lower_abbr": "22 nov 2026",
    }
    for fmt, text in want.items():
        assert format_date(d, fmt) == text
    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 31)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "23rd", "31st"
    ]  # fmt: skip
    with pytest.raises(ValueError, match="1950-2049"):
        format_date(dt.date(1901, 1, 1), "dots_short_year")
    for split in ("train", "test"):
        for src, tgt in task.sample(rng, 500, split):
            assert dt.date.fromisoformat(tgt).isoformat() == tgt
            assert len(src) <= task.max_src_len and len(tgt) == task.max_tgt_len
            task.src_vocab.encode(src)  # never raises
            task.tgt_vocab.encode(tgt)
            if "." in src and len(src) == 8:  # dd.mm.yy: two-digit years only in 1950-2049
                assert 1950 <= int(tgt[:4]) <= 2049
                assert src[:2] == tgt[8:] and src[3:5] == tgt[5:7]


def test_the_three_date_splits_are_disjoint_and_cover_every_day(rng):
    days = {s: set(split_days(s).tolist()) for s in ("train", "valid", "test")}
    assert not days["train"] & days["test"] and not days["train"] & days["valid"]
    assert not days["valid"] & days["test"]
    n_days = dt.date(2099, 12, 31).toordinal() - dt.date(1900, 1, 1).toordinal() + 1
    assert sum(len(d) for d in days.values()) == n_days
    for held in ("valid", "test"):
        assert 0.08 < len(days[held]) / n_days < 0.12
    task = get_task("dates")
    train_targets = {t for _, t in task.sample(rng, 5000, "train")}
    for held in ("valid", "test"):
        targets = {t for _, t in task.eval_pairs(1000, held)}
        assert not train_targets & targets
        assert all(dt.date.fromisoformat(t).toordinal() in days[held] for t in targets)


def test_the_reversal_splits_never_share_a_sequence(rng):
    task = get_task("reversal")
    seen = {s: {src for src, _ in task.sample(rng, 3000, s)} for s in ("train", "valid", "test")}
    assert not seen["train"] & seen["valid"] and not seen["train"] & seen["test"]
    assert not seen["valid"] & seen["test"]
    with pytest.raises(ValueError, match="split must be one of"):
        task.sample(rng, 3, "dev")
    with pytest.raises(ValueError, match="split must be one of"):
        batch_at("reversal", "dev", 4, 0, 0)
    assert task.eval_pairs(50) == task.eval_pairs(50)  # a fixed evaluation set


def test_reversal_task(rng):
    task = get_task("reversal")
    assert len(task.src_vocab) == 13  # 10 digits and 3 specials
    pairs = task.sample(rng, 100, "train")
    assert all(len(s) == 16 and t == s[::-1] and s.isdigit() for s, t in pairs)
    test = {s for s, _ in task.sample(np.random.default_rng(0), 200, "test")}
    assert not test & {s for s, _ in pairs}


def test_right_shift_and_padding():
    src_v, tgt_v = CharVocab("abc"), CharVocab("xyz")
    b = make_batch([("abc", "xy"), ("a", "zzzz")], src_v, tgt_v)
    x, y, z = (tgt_v.stoi[c] for c in "xyz")
    assert b.tgt_in.tolist() == [[SOS, x, y, PAD, PAD], [SOS, z, z, z, z]]
    assert b.tgt_out.tolist() == [[x, y, EOS, PAD, PAD], [z, z, z, z, EOS]]
    # the shift: the decoder reads token t-1 where it must predict token t
    real = b.tgt_out != PAD
    assert torch.equal(b.tgt_in[:, 1:][real[:, 1:]], b.tgt_out[:, :-1][real[:, 1:]])
    assert b.n_tokens == int(real.sum()) == 3 + 5
    assert b.src.tolist() == [[3, 4, 5], [3, PAD, PAD]]


def test_masks_shapes_and_convention():
    b = batch_at("dates", "train", 8, seed=3, step=5)
    B, S = b.src.shape
    T = b.tgt_in.size(1)
    assert b.src_mask.shape == (B, 1, 1, S) and b.tgt_mask.shape == (B, 1, T, T)
    assert b.src_mask.dtype == b.tgt_mask.dtype == torch.bool
    assert torch.equal(b.src_mask, padding_mask(b.src, PAD))
    assert torch.equal(b.tgt_mask, decoder_mask(b.tgt_in, PAD))
    v = CharVocab("ab")
    b = make_batch([("a", "ab"), ("ab", "b")], v, v)  # a padded target
    assert torch.equal(b.tgt_mask, decoder_mask(b.tgt_in, PAD))
    assert not b.tgt_mask[1, 0, :, 2].any()  # nobody attends to the padding key


def test_batches_depend_only_on_seed_and_step():
    a = batch_at("dates", "train", 16, seed=7, step=3)
    stream = batches("dates", "train", 16, seed=7, start=2)
    next(stream)
    b = next(stream)
    assert a.pairs == b.pairs and torch.equal(a.src, b.src)
    assert batch_at("dates", "train", 16, seed=7, step=4).pairs != a.pairs
    assert batch_at("dates", "train", 16, seed=8, step=3).pairs != a.pairs


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="unknown task"):
        get_task("translation")
    with pytest.raises(ValueError, match="split must be"):
        get_task("dates").sample(np.random.default_rng(0), 2, "validation")
    with pytest.raises(ValueError, match="at least one"):
        make_batch([], CharVocab("a"), CharVocab("a"))
    with pytest.raises(ValueError, match="unknown date format"):
        DatesTask(["no_such_format"])
