"""The associative-recall task, its model, a short run, the command and the shipped results."""

from __future__ import annotations

import json

import pytest
import torch

from course_lib.recall import (
    MIXERS,
    RECALL_RESULTS,
    RecallModel,
    load_recall_results,
    main,
    recall_batch,
    train_recall,
)


def test_batch_has_distinct_keys_and_the_right_answer(gen):
    keys, values, query, answer = recall_batch(50, 7, 10, 5, gen)
    assert keys.shape == values.shape == (50, 7) and query.shape == answer.shape == (50,)
    assert all(len(set(row.tolist())) == 7 for row in keys)
    assert int(keys.max()) < 10 and int(values.max()) < 5
    for b in range(50):
        (where,) = (keys[b] == query[b]).nonzero()[:, 0].tolist()  # exactly one match
        assert values[b, where] == answer[b]


@pytest.mark.parametrize("mixer", MIXERS)
def test_model_shapes_and_causality_of_the_pairs(gen, mixer):
    model = RecallModel(mixer, 10, 6, d_model=8, n_heads=2)
    keys, values, query, _ = recall_batch(3, 4, 10, 6, gen)
    logits = model(keys, values, query)
    assert logits.shape == (3, 6)
    perm = torch.tensor([2, 0, 3, 1])
    if mixer == "softmax":  # attention over a set of pairs: their order does not matter
        torch.testing.assert_close(model(keys[:, perm], values[:, perm], query), logits, atol=1e-5, rtol=1e-5)


def test_softmax_learns_a_few_pairs(one_thread):
    r = train_recall("softmax", 4, seed=0, steps=250, n_eval=300)
    assert r["accuracy"] > 0.9 and r["chance"] == 1 / 64
    assert set(r) >= {"mixer", "n_pairs", "seed", "final_loss", "params", "seconds"}


def test_shipped_results_show_the_gap():
    data = load_recall_results()
    acc = {}
    for r in data["runs"]:
        acc.setdefault((r["mixer"], r["n_pairs"]), []).append(r["accuracy"])
    largest = max(n for _, n in acc)
    mean = {key: sum(v) / len(v) for key, v in acc.items()}
    assert mean[("softmax", largest)] > 0.95
    assert mean[("linear", largest)] < 0.5 and mean[("retention", largest)] < 0.5


def test_results_file_is_checked(tmp_path):
    p = tmp_path / "r.json"
    p.write_text("{not json")
    with pytest.raises(ValueError, match="course_lib.recall"):
        load_recall_results(p)
    p.write_text(json.dumps({"format": "other"}))
    with pytest.raises(ValueError, match="course_lib.recall/1"):
        load_recall_results(p)
    good = json.loads(RECALL_RESULTS.read_text())
    good["runs"][0]["accuracy"] = 1.5
    p.write_text(json.dumps(good))
    with pytest.raises(ValueError, match="malformed"):
        load_recall_results(p)


def test_command_writes_results_and_refuses_bad_flags(tmp_path, one_thread, capsys):
    out = tmp_path / "r.json"
    assert main(["--out", str(out), "--pairs", "2", "--seeds", "0", "--steps", "3"]) == 0
    assert len(load_recall_results(out)["runs"]) == len(MIXERS)
    for bad in (["--pairs", "0"], ["--steps", "0"], ["--out", str(tmp_path)]):
        with pytest.raises(SystemExit) as e:
            main(bad)
        assert e.value.code == 2


def test_bad_input(gen):
    with pytest.raises(ValueError, match="n_keys >= n_pairs"):
        recall_batch(2, 8, 4, 5, gen)
    with pytest.raises(ValueError, match="mixer"):
        RecallModel("lstm", 4, 4)
    with pytest.raises(ValueError, match="steps"):
        train_recall("softmax", 2, 0, steps=0)
