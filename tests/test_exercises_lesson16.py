from __future__ import annotations

import contextlib

import torch

from course_lib.attention import keep_attention_weights
from course_lib.exercises.lesson16 import check_ablation, check_induction_scores
from course_lib.induction import ablate_heads, head_scores


# --- check_induction_scores ----------------------------------------------------------------------
def scores_right(model, ids, period):
    with torch.no_grad(), keep_attention_weights(model) as mhas:
        model(ids)
    T = ids.size(1)
    q = torch.arange(period, T)
    return torch.stack([m.attn_weights[:, :, q, q - period + 1].mean((0, 2)) for m in mhas])


def scores_same_token(model, ids, period):  # the earlier copy itself, not the token after it
    with torch.no_grad(), keep_attention_weights(model) as mhas:
        model(ids)
    q = torch.arange(period, ids.size(1))
    return torch.stack([m.attn_weights[:, :, q, q - period].mean((0, 2)) for m in mhas])


def scores_half_length(model, ids, period):  # assumes two copies
    return scores_right(model, ids, ids.size(1) // 2)


def scores_per_sequence(model, ids, period):  # forgets to average over the batch
    with torch.no_grad(), keep_attention_weights(model) as mhas:
        model(ids)
    q = torch.arange(period, ids.size(1))
    return torch.stack([m.attn_weights[:, :, q, q - period + 1].mean(2) for m in mhas])


def scores_library(model, ids, period):
    return head_scores(model, ids, period)["induction"]


def test_induction_scores_accepts_right_answers():
    r = check_induction_scores(scores_right)
    assert r.passed and str(r).startswith("✅"), r.message
    r = check_induction_scores(lambda m, i, p: scores_right(m, i, p).tolist())  # a nested list is fine
    assert r.passed, r.message


def test_induction_scores_rejects_wrong_answers():
    r = check_induction_scores(scores_same_token)
    assert not r.passed and "t - period + 1" in r.message
    r = check_induction_scores(scores_half_length)
    assert not r.passed and "not T // 2" in r.message
    r = check_induction_scores(scores_per_sequence)
    assert not r.passed and "average over the batch" in r.message
    r = check_induction_scores(lambda m, i, p: 1 / 0)
    assert not r.passed and "ZeroDivisionError" in r.message and "\n" not in str(r)


def test_induction_scores_refuses_the_library_call():
    r = check_induction_scores(scores_library)
    assert not r.passed and "head_scores" in r.message and "yourself" in r.message

    def swallowing(model, ids, period):  # hides the refusal in a try/except: still refused
        try:
            return scores_library(model, ids, period)
        except Exception:
            return scores_right(model, ids, period)

    r = check_induction_scores(swallowing)
    assert not r.passed and "yourself" in r.message


# --- check_ablation ------------------------------------------------------------------------------
def _zero_hook(s):
    def hook(module, args):
        z = args[0].clone()
        z[..., s] = 0.0
        return (z,)

    return hook


@contextlib.contextmanager
def ablate_right(model, layer, head):
    mha = model.layers[layer]
    s = slice(head * mha.d_k, (head + 1) * mha.d_k)
    handle = mha.w_o.register_forward_pre_hook(_zero_hook(s))
    try:
        yield
    finally:
        handle.remove()


@contextlib.contextmanager
def ablate_post_hook(model, layer, head):  # a forward hook after W_O, subtracting the head: also right
    mha = model.layers[layer]
    s = slice(head * mha.d_k, (head + 1) * mha.d_k)

    def hook(module, args, out):
        return out - args[0][..., s] @ module.weight[:, s].T

    handle = mha.w_o.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


@contextlib.contextmanager
def ablate_no_finally(model, layer, head):
    mha = model.layers[layer]
    handle = mha.w_o.register_forward_pre_hook(_zero_hook(slice(head * mha.d_k, (head + 1) * mha.d_k)))
    yield
    handle.remove()


@contextlib.contextmanager
def ablate_never_removed(model, layer, head):
    mha = model.layers[layer]
    mha.w_o.register_forward_pre_hook(_zero_hook(slice(head * mha.d_k, (head + 1) * mha.d_k)))
    yield


@contextlib.contextmanager
def ablate_wrong_slice(model, layer, head):
    mha = model.layers[layer]
    handle = mha.w_o.register_forward_pre_hook(_zero_hook(slice(head, head + 1)))  # one coordinate
    try:
        yield
    finally:
        handle.remove()


@contextlib.contextmanager
def ablate_weights(model, layer, head):  # zeroes W_O's columns and restores them: no hook
    mha = model.layers[layer]
    s = slice(head * mha.d_k, (head + 1) * mha.d_k)
    saved = mha.w_o.weight.detach().clone()
    with torch.no_grad():
        mha.w_o.weight[:, s] = 0.0
    try:
        yield
    finally:
        with torch.no_grad():
            mha.w_o.weight.copy_(saved)


def test_ablation_accepts_right_answers():
    for fn in (ablate_right, ablate_post_hook, lambda m, layer, h: ablate_right(m, layer, h)):
        r = check_ablation(fn)
        assert r.passed and str(r).startswith("✅"), r.message


def test_ablation_rejects_wrong_answers():
    r = check_ablation(ablate_no_finally)
    assert not r.passed and "finally" in r.message
    r = check_ablation(ablate_never_removed)
    assert not r.passed and "still on the model" in r.message
    r = check_ablation(ablate_wrong_slice)
    assert not r.passed and "differs" in r.message
    r = check_ablation(ablate_weights)
    assert not r.passed and "forward hook" in r.message
    r = check_ablation(lambda m, layer, h: None)
    assert not r.passed and "context manager" in r.message


def test_ablation_refuses_the_library_call():
    r = check_ablation(lambda m, layer, h: ablate_heads(m, [(layer, h)]))
    assert not r.passed and "ablate_heads" in r.message and "yourself" in r.message
