import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from course_lib.attention import scaled_dot_product_attention
from course_lib.exercises.lesson03 import check_head_grids, check_previous_token_projections


# --- the previous-token head -------------------------------------------------------------
def prev_token(max_len, strength=8.0):
    d_k = max_len
    W_Q, W_K = np.zeros((max_len, d_k)), np.eye(max_len)
    for i in range(max_len):
        W_Q[i, max(i - 1, 0)] = 1.0
    return W_Q * strength * math.sqrt(d_k), W_K


def test_previous_token_accepts_a_right_answer():
    res = check_previous_token_projections(prev_token, repeat=2)
    assert res and str(res).startswith("✅")


def test_previous_token_rejects_identity():
    res = check_previous_token_projections(lambda L: (np.eye(L) * 10 * math.sqrt(L), np.eye(L)))
    assert not res and "itself" in res.message


def test_previous_token_rejects_wrong_direction():
    res = check_previous_token_projections(lambda L: (prev_token(L)[0].T.copy(), np.eye(L)))
    assert not res and ("wrong way" in res.message or "expected key" in res.message)


def test_previous_token_rejects_too_soft():
    res = check_previous_token_projections(lambda L: prev_token(L, strength=0.5))
    assert not res and "scale" in res.message


def test_previous_token_rejects_bad_shapes():
    res = check_previous_token_projections(lambda L: (np.eye(L + 1), np.eye(L + 1)))
    assert not res and "(max_len, d_k)" in res.message
    res = check_previous_token_projections(lambda L: (np.eye(L), np.eye(L)[:, :3]))
    assert not res and "share d_k" in res.message


# --- every head's grid of a torch layer ------------------------------------------------------
def head_grids(
    mha,
    x,
    *,
    bias=True,
    scale="d_k",
    dim=-1,
    blocks=(0, 1),
    transposed=(True, True),
    average=False,
    head_of=None,
    strided=False,
):
    """The right answer with the defaults; each keyword rebuilds one typical mistake."""
    d_model, h, d_k = mha.embed_dim, mha.num_heads, mha.head_dim
    w, b = mha.in_proj_weight.split(d_model), mha.in_proj_bias.split(d_model)
    w_q, w_k = w[blocks[0]], w[blocks[1]]
    q = x @ (w_q.T if transposed[0] else w_q)  # (B, T, d_model)
    k = x @ (w_k.T if transposed[1] else w_k)
    if bias:
        q, k = q + b[blocks[0]], k + b[blocks[1]]
    div = {"d_k": math.sqrt(d_k), "d_model": math.sqrt(d_model), "none": 1.0}[scale]
    grids = []
    for i in range(h):
        j = head_of(i, h) if head_of else i
        s = slice(j, None, h) if strided else slice(j * d_k, (j + 1) * d_k)
        grids.append(torch.softmax(q[..., s] @ k[..., s].transpose(-2, -1) / div, dim=dim))
    out = torch.stack(grids, dim=1)  # (B, h, T, T)
    return out.mean(dim=1) if average else out


def test_head_grids_accepts_a_right_answer():
    res = check_head_grids(head_grids, repeat=2)
    assert res and str(res).startswith("✅"), res.message


def test_head_grids_accepts_float32_and_f_linear():
    def with_linear(mha, x):
        d = mha.embed_dim
        q = F.linear(x, mha.in_proj_weight[:d], mha.in_proj_bias[:d])
        k = F.linear(x, mha.in_proj_weight[d : 2 * d], mha.in_proj_bias[d : 2 * d])
        q = q.view(*x.shape[:2], mha.num_heads, mha.head_dim).transpose(1, 2)  # (B, h, T, d_k)
        k = k.view(*x.shape[:2], mha.num_heads, mha.head_dim).transpose(1, 2)
        return (q @ k.transpose(-2, -1) / math.sqrt(mha.head_dim)).softmax(-1).float()

    res = check_head_grids(with_linear)
    assert res.passed, res.message


@pytest.mark.parametrize(
    "mistake,words",
    [
        ({"average": True}, ["heads' average", "average_attn_weights=True", "(B, n_heads, T, T)"]),
        ({"scale": "d_model"}, ["sqrt(d_model)", "sqrt(d_k)"]),
        ({"scale": "none"}, ["not scaled"]),
        ({"bias": False}, ["left out the biases", "in_proj_bias"]),
        ({"dim": -2}, ["over the queries", "over the keys"]),
        ({"blocks": (0, 0)}, ["queries and keys both use W^Q"]),
        ({"blocks": (1, 0)}, ["swapped W^Q and W^K"]),
        ({"blocks": (0, 2)}, ["your keys W^V", "W^K rows d_model:2*d_model"]),
        ({"transposed": (False, False)}, ["x @ W.T", "W^Q and W^K untransposed"]),
        ({"transposed": (True, False)}, ["x @ W.T", "used W^K untransposed"]),
        ({"head_of": lambda i, h: 0}, ["head 1 shows head 0's grid", "i*d_k:(i+1)*d_k"]),
        ({"head_of": lambda i, h: (i + 1) % h}, ["head 0 shows head 1's grid"]),
        ({"strided": True}, ["every n_heads-th feature", "contiguous block"]),
    ],
)
def test_head_grids_names_the_mistake(mistake, words):
    res = check_head_grids(lambda mha, x: head_grids(mha, x, **mistake))
    assert not res.passed and str(res).startswith("❌")
    for w in words:
        assert w in res.message, (w, res.message)


def test_head_grids_rejects_a_list_a_wrong_shape_and_unnormalised_rows():
    res = check_head_grids(lambda mha, x: list(head_grids(mha, x).unbind(1)))
    assert not res.passed and "torch.stack" in res.message
    res = check_head_grids(lambda mha, x: head_grids(mha, x).transpose(0, 1))
    assert not res.passed and "has shape" in res.message and "(B, n_heads, T, T)" in res.message
    res = check_head_grids(lambda mha, x: head_grids(mha, x).log())
    assert not res.passed and "do not sum to 1" in res.message


def test_head_grids_refuses_the_layer_itself():
    answers = [
        lambda mha, x: mha(x, x, x, need_weights=True, average_attn_weights=False)[1],
        lambda mha, x: mha.forward(x, x, x, average_attn_weights=False)[1],
        lambda mha, x: scaled_dot_product_attention(x, x, x)[1],
        lambda mha, x: F.scaled_dot_product_attention(x, x, x),
    ]
    for answer in answers:
        res = check_head_grids(answer)
        assert not res.passed and "write it yourself" in res.message, res.message


def test_head_grids_greets_a_stub_and_reports_a_crash():
    def stub(mha, x):
        raise NotImplementedError()

    res = check_head_grids(stub)
    assert not res.passed and "not written yet" in res.message
    res = check_head_grids(lambda mha, x: mha.nope)
    assert not res.passed and "AttributeError" in res.message and "\n" not in res.message


def test_head_grids_uses_fresh_inputs_and_leaves_the_global_rng_alone():
    seen = []

    def spy(mha, x):
        seen.append(x.flatten()[:4].clone())
        return head_grids(mha, x)

    torch.manual_seed(0)
    check_head_grids(spy)
    after = torch.rand(1)
    torch.manual_seed(0)
    check_head_grids(spy)
    assert torch.equal(after, torch.rand(1))  # the checker's draws never touch torch's global RNG
    assert not torch.equal(seen[0], seen[4])  # the second check saw new inputs
