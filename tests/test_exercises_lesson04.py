import math

import torch

from course_lib.attention import KVCache
from course_lib.exercises.lesson04 import (
    check_attention_step,
    check_split_merge,
)


# --- split / merge -----------------------------------------------------------------------
def split_right(x, n_heads):
    B, T, d = x.shape
    return x.view(B, T, n_heads, d // n_heads).transpose(1, 2)


def merge_right(x):
    B, h, T, d_k = x.shape
    return x.transpose(1, 2).reshape(B, T, h * d_k)


def test_split_merge_accepts_right_answer():
    r = check_split_merge(split_right, merge_right)
    assert r.passed, r.message
    assert str(r).startswith("✅")


def test_split_merge_catches_reshape_without_transpose():
    def split_wrong(x, n_heads):
        B, T, d = x.shape
        return x.reshape(B, n_heads, T, d // n_heads)

    r = check_split_merge(split_wrong, merge_right)
    assert not r.passed and str(r).startswith("❌")
    assert "mixes positions into heads" in r.message and "(B, T, h, d_k)" in r.message


def test_split_merge_catches_wrong_shape():
    r = check_split_merge(lambda x, h: x.view(x.size(0), x.size(1), h, -1), merge_right)
    assert not r.passed
    assert "has shape" in r.message and "expected (B, h, T, d_k)" in r.message


def test_split_merge_catches_merge_without_transpose():
    def merge_wrong(x):
        B, h, T, d_k = x.shape
        return x.reshape(B, T, h * d_k)

    r = check_split_merge(split_right, merge_wrong)
    assert not r.passed
    assert "not the concatenation of the heads" in r.message


def test_split_merge_explains_view_error():
    def merge_view(x):
        B, h, T, d_k = x.shape
        return x.transpose(1, 2).view(B, T, h * d_k)

    r = check_split_merge(split_right, merge_view)
    assert not r.passed
    assert "contiguous" in r.message and ".reshape" in r.message


def test_split_merge_reports_an_exception_in_one_line():
    r = check_split_merge(lambda x, h: 1 / 0, merge_right)
    assert not r.passed and "ZeroDivisionError" in r.message and "\n" not in r.message


def test_checkers_use_fresh_inputs(monkeypatch):
    """Two runs must not see the same random inputs."""
    seen = []

    def spy(x, n_heads):
        seen.append(x.flatten()[:4].clone())
        return split_right(x, n_heads)

    check_split_merge(spy, merge_right)
    check_split_merge(spy, merge_right)
    assert not torch.equal(seen[0], seen[4])


# --- attention with a KV cache ----------------------------------------------------------------
def attention_step(mha, x_new, cache, append=True, use_cache=True, scale=True):
    B, _, d_model = x_new.shape
    h, d_k = mha.n_heads, d_model // mha.n_heads

    def heads(t):  # (B, T, d_model) -> (B, h, T, d_k)
        return t.view(B, -1, h, d_k).transpose(1, 2)

    q, k_new, v_new = heads(mha.w_q(x_new)), heads(mha.w_k(x_new)), heads(mha.w_v(x_new))
    k, v = k_new, v_new
    if cache["k"] is not None:
        k, v = torch.cat([cache["k"], k], dim=2), torch.cat([cache["v"], v], dim=2)
    if append:
        cache["k"], cache["v"] = k, v
    else:  # wrong: the cache keeps only the newest position
        cache["k"], cache["v"] = k_new, v_new
    if not use_cache:  # wrong: the new query sees only itself
        k, v = k_new, v_new
    scores = q @ k.transpose(-2, -1) / (math.sqrt(d_k) if scale else 1.0)
    return mha.w_o((scores.softmax(dim=-1) @ v).transpose(1, 2).reshape(B, 1, d_model))


def test_attention_step_checker():
    r = check_attention_step(attention_step, repeat=2)
    assert r.passed and str(r).startswith("✅"), r.message
    r = check_attention_step(lambda m, x, c: attention_step(m, x, c, append=False))
    assert not r.passed and "after step 1" in r.message and "append" in r.message
    r = check_attention_step(lambda m, x, c: attention_step(m, x, c, use_cache=False))
    assert not r.passed and "every cached key" in r.message
    r = check_attention_step(lambda m, x, c: attention_step(m, x, c, scale=False))
    assert not r.passed and "differs" in r.message and "step" in r.message


def test_attention_step_checker_refuses_the_library():
    def with_kvcache(mha, x_new, cache):
        kv = KVCache()
        kv.append(mha.w_k(x_new), mha.w_v(x_new))
        return attention_step(mha, x_new, cache)

    for answer in (with_kvcache, lambda m, x, c: m(x), lambda m, x, c: m.split_heads(x)):
        r = check_attention_step(answer)
        assert not r.passed and "write it yourself" in r.message
