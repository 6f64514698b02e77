"""course_lib.regularization: dropout sites, one rate everywhere, and the over-fitting experiment."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from course_lib import DecoderLayer, EncoderLayer, Transformer, TransformerConfig
from course_lib.regularization import (
    ATTENTION,
    EMBEDDING,
    FFN_HIDDEN,
    RESIDUAL,
    dropout_sites,
    set_dropout,
    train_on_fixed_set,
)
from course_lib.toy_tasks import CopyTask, make_tiny_lm

pytestmark = pytest.mark.usefixtures("one_thread")


def _rate(gen: torch.Generator) -> float:
    return round(0.05 + 0.9 * torch.rand((), generator=gen).item(), 3)


def test_sites_of_an_encoder_layer(gen):
    p = _rate(gen)
    sites = {s.name: s for s in dropout_sites(EncoderLayer(16, 2, 32, dropout=p))}
    assert {n: (s.what, s.in_paper) for n, s in sites.items()} == {
        "self_attn.dropout": (ATTENTION, False),
        "ff.dropout": (FFN_HIDDEN, False),
        "dropout1": (RESIDUAL, True),
        "dropout2": (RESIDUAL, True),
    }
    assert all(s.p == p for s in sites.values())


def test_sites_of_a_decoder_layer():
    sites = dropout_sites(DecoderLayer(16, 2, 32, dropout=0.3))
    assert [s.name for s in sites] == [
        "self_attn.dropout",
        "cross_attn.dropout",
        "ff.dropout",
        "dropout1",
        "dropout2",
        "dropout3",
    ]
    assert [s.in_paper for s in sites] == [False, False, False, True, True, True]


def test_sites_of_a_whole_transformer(gen):
    n_enc, n_dec = (int(v) for v in torch.randint(0, 4, (2,), generator=gen))
    cfg = TransformerConfig(
        40, d_model=16, n_heads=2, d_ff=32, n_encoder_layers=n_enc, n_decoder_layers=n_dec
    )
    sites = dropout_sites(Transformer(cfg))
    assert len(sites) == 4 * n_enc + 6 * n_dec + 2
    assert sum(s.in_paper for s in sites) == 2 * n_enc + 3 * n_dec + 2  # residual and embedding dropout
    assert [s.name for s in sites if s.what == EMBEDDING] == ["src_pos.dropout", "tgt_pos.dropout"]


def test_a_dropout_outside_the_transformer_is_other():
    sites = dropout_sites(nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.2)))
    assert [(s.name, s.p, s.what, s.in_paper) for s in sites] == [("1", 0.2, "other", False)]
    assert [(s.name, s.what) for s in dropout_sites(nn.Dropout(0.5))] == [("", "other")]


def test_set_dropout_sets_every_site(gen):
    p = _rate(gen)
    model = make_tiny_lm(CopyTask(), n_layers=2)
    assert all(s.p == 0.0 for s in dropout_sites(model))
    assert set_dropout(model, p) is model
    sites = dropout_sites(model)
    assert len(sites) == 1 + 4 * 2 and all(s.p == p for s in sites)


def test_train_mode_drops_and_eval_mode_does_not(gen):
    layer = set_dropout(EncoderLayer(16, 2, 32, dropout=0.0), 0.3)
    x = torch.randn(2, 5, 16, generator=gen)
    with torch.no_grad():
        layer.train()
        assert not torch.equal(layer(x), layer(x))  # fresh masks at every call
        layer.eval()
        evaluated = layer(x)
        assert torch.equal(evaluated, layer(x))
        set_dropout(layer, 0.0).train()  # rate 0 in train mode is the eval-mode function
        assert torch.allclose(layer(x), evaluated, atol=1e-6)


@pytest.mark.parametrize("bad", [1.0, -0.1, float("nan"), "0.1", True])
def test_set_dropout_rejects_a_bad_rate(bad):
    with pytest.raises(ValueError, match="dropout"):
        set_dropout(EncoderLayer(8, 2, 16), bad)


def test_a_model_must_be_a_module():
    with pytest.raises(ValueError, match="nn.Module"):
        dropout_sites("EncoderLayer")
    with pytest.raises(ValueError, match="nn.Module"):
        set_dropout([nn.Dropout(0.1)], 0.1)


def _data(gen: torch.Generator, n_train: int = 16):
    task = CopyTask(k=3, n_letters=5)
    return task, task.sample(n_train, gen), task.sample(32, gen)


def test_training_records_curves_reproducibly(gen):
    task, train, held = _data(gen)
    seed = int(torch.randint(0, 1000, (1,), generator=gen))
    before = torch.random.get_rng_state()
    runs = []
    for _ in range(2):
        model = set_dropout(make_tiny_lm(task, seed=seed, n_layers=1), 0.2)
        runs.append(train_on_fixed_set(model, train, held, steps=30, eval_every=7, seed=seed, progress=False))
    assert torch.equal(torch.random.get_rng_state(), before)  # the global generator is untouched
    a, b = runs
    assert a.step == [0, 7, 14, 21, 28, 30]
    assert len(a.train) == len(a.heldout) == len(a.step)
    assert (a.train, a.heldout) == (b.train, b.heldout)  # same seed, same dropout masks, same numbers
    assert a.train[-1] < a.train[0]  # it learned something
    assert a.gap == pytest.approx(a.heldout[-1] - a.train[-1])
    assert not model.training  # left in eval mode


@pytest.mark.slow
def test_dropout_narrows_the_gap_between_training_and_held_out_loss(gen):
    task = CopyTask(k=5, n_letters=8)
    train, held = task.sample(64, gen), task.sample(128, gen)
    seed = int(torch.randint(0, 1000, (1,), generator=gen))
    curves = {}
    for p in (0.0, 0.3):
        model = set_dropout(make_tiny_lm(task, seed=seed, n_layers=2), p)
        curves[p] = train_on_fixed_set(
            model, train, held, steps=120, eval_every=40, seed=seed, progress=False
        )
    assert curves[0.0].train[-1] < task.honest_floor()  # below what fresh data allows: memorised
    assert curves[0.3].gap < 0.5 * curves[0.0].gap
    assert curves[0.3].heldout[-1] < curves[0.0].heldout[-1]


def test_training_rejects_bad_input(gen):
    task, train, held = _data(gen)
    model = make_tiny_lm(task, n_layers=1)
    cases = [
        ({"model": nn.Linear(2, 2)}, "TinyLM"),
        ({"train_ids": train + 10}, "outside the vocabulary"),
        ({"heldout_ids": held[:, :1]}, "at least 2 tokens"),
        ({"steps": 0}, "steps"),
        ({"eval_every": 0}, "eval_every"),
        ({"lr": 0.0}, "lr"),
        ({"lr": float("inf")}, "lr"),
    ]
    for change, message in cases:
        kwargs = {
            "model": model,
            "train_ids": train,
            "heldout_ids": held,
            "steps": 2,
            "progress": False,
            **change,
        }
        with pytest.raises(ValueError, match=message):
            train_on_fixed_set(**kwargs)
