import torch

from course_lib.exercises.lesson04 import check_attention_params, check_ov_circuit, check_split_merge


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


# --- parameter count ---------------------------------------------------------------------
def test_params_accepts_right_answer():
    r = check_attention_params(lambda d, h, bias: 4 * d * d + (4 * d if bias else 0))
    assert r.passed, r.message


def test_params_catches_missing_bias():
    r = check_attention_params(lambda d, h, bias: 4 * d * d)
    assert not r.passed and "bias vectors" in r.message


def test_params_catches_bias_when_there_is_none():
    r = check_attention_params(lambda d, h, bias: 4 * d * d + 4 * d)
    assert not r.passed and "bias=False" in r.message


def test_params_catches_one_head_only():
    r = check_attention_params(lambda d, h, bias: 4 * d * (d // h) + (4 * d if bias else 0))
    assert not r.passed and "one head's share" in r.message


def test_params_catches_dependence_on_heads():
    r = check_attention_params(lambda d, h, bias: h * (4 * d * d + (4 * d if bias else 0)))
    assert not r.passed and "does not depend on n_heads" in r.message


def test_params_catches_missing_w_o_and_non_int():
    r = check_attention_params(lambda d, h, bias: 3 * d * d + (3 * d if bias else 0))
    assert not r.passed and "W_O is missing" in r.message
    r = check_attention_params(lambda d, h, bias: "many")
    assert not r.passed and "should return an int" in r.message


# --- OV circuit --------------------------------------------------------------------------
def ov_right(mha, i):
    s = slice(i * mha.d_k, (i + 1) * mha.d_k)
    return mha.w_v.weight[s, :].T @ mha.w_o.weight[:, s].T


def test_ov_accepts_right_answer():
    r = check_ov_circuit(ov_right)
    assert r.passed, r.message


def test_ov_catches_transpose():
    r = check_ov_circuit(lambda mha, i: ov_right(mha, i).T)
    assert not r.passed and "transpose" in r.message


def test_ov_catches_wrong_w_o_slice():
    def ov_rows(mha, i):
        s = slice(i * mha.d_k, (i + 1) * mha.d_k)
        return mha.w_v.weight[s, :].T @ mha.w_o.weight[s, :]

    r = check_ov_circuit(ov_rows)
    assert not r.passed and "W^O_i is the wrong slice" in r.message


def test_ov_catches_wrong_head():
    r = check_ov_circuit(lambda mha, i: ov_right(mha, (i + 1) % mha.n_heads))
    assert not r.passed and "circuit for head" in r.message


def test_ov_catches_full_width_product():
    r = check_ov_circuit(lambda mha, i: mha.w_v.weight.T @ mha.w_o.weight.T)
    assert not r.passed and "differs" in r.message


def test_checkers_use_fresh_inputs(monkeypatch):
    """Two runs must not see the same random inputs."""
    seen = []

    def spy(x, n_heads):
        seen.append(x.flatten()[:4].clone())
        return split_right(x, n_heads)

    check_split_merge(spy, merge_right)
    check_split_merge(spy, merge_right)
    assert not torch.equal(seen[0], seen[4])
