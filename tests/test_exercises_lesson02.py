import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import course_lib.attention as attention_module
from course_lib.attention import MultiHeadAttention, scaled_dot_product_attention
from course_lib.exercises.lesson02 import check_attention, check_self_attention_layer, check_softmax


# ----------------------------------------------------------------------- check_softmax
def softmax_right(x):
    e = torch.exp(x - x.max(dim=-1, keepdim=True).values)
    return e / e.sum(dim=-1, keepdim=True)


def softmax_naive(x):  # right on small inputs, overflows on large ones
    e = torch.exp(x)
    return e / e.sum(dim=-1, keepdim=True)


def softmax_columns(x):
    e = torch.exp(x - x.max(dim=-2, keepdim=True).values)
    return e / e.sum(dim=-2, keepdim=True)


def softmax_unnormalised(x):
    return torch.exp(x - x.max(dim=-1, keepdim=True).values)


def test_softmax_accepts_right_answer():
    r = check_softmax(softmax_right)
    assert r.passed and str(r).startswith("✅")


def test_refuses_the_library():
    for fn in (torch.softmax, lambda x: torch.softmax(x, dim=-1), lambda x: x.softmax(-1)):
        r = check_softmax(fn)
        assert not r.passed and "write it yourself" in r.message and "softmax" in r.message
    from course_lib.attention import scaled_dot_product_attention

    for fn in (scaled_dot_product_attention, lambda q, k, v: scaled_dot_product_attention(q, k, v)):
        r = check_attention(fn)
        assert not r.passed and "scaled_dot_product_attention: write it yourself" in r.message


def test_softmax_hints():
    r = check_softmax(softmax_naive)
    assert not r.passed and str(r).startswith("❌") and "maximum" in str(r) and "overflow" in str(r)
    r = check_softmax(softmax_columns)
    assert not r.passed and "the last axis" in str(r) and "queries" in str(r)
    r = check_softmax(softmax_unnormalised)
    assert not r.passed and "sum to 1" in str(r)
    r = check_softmax(lambda x: x.sum())
    assert not r.passed and "shape" in str(r)


# --------------------------------------------------------------------- check_attention
def attention_right(q, k, v):
    w = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)
    return w @ v, w


def attention_unscaled(q, k, v):
    w = torch.softmax(q @ k.transpose(-2, -1), dim=-1)
    return w @ v, w


def attention_by_dk(q, k, v):
    w = torch.softmax(q @ k.transpose(-2, -1) / q.shape[-1], dim=-1)
    return w @ v, w


def attention_columns(q, k, v):
    w = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-2)
    return w @ v, w


def attention_dot_T(q, k, v):  # works for 2-D inputs only
    w = torch.softmax(q @ k.T / math.sqrt(q.shape[-1]), dim=-1)
    return w @ v, w


def attention_output_only(q, k, v):
    return attention_right(q, k, v)[0]


def attention_forgets_v(q, k, v):
    w = attention_right(q, k, v)[1]
    return w @ v[..., :1].expand_as(v), w


def test_attention_accepts_right_answer():
    r = check_attention(attention_right)
    assert r.passed and str(r).startswith("✅")


@pytest.mark.filterwarnings("ignore:The use of `x.T`")
def test_attention_hints():
    r = check_attention(attention_unscaled)
    assert not r.passed and "sqrt(d_k)" in str(r) and "not scaled" in str(r)
    r = check_attention(attention_by_dk)
    assert not r.passed and "divided the scores by d_k" in str(r)
    r = check_attention(attention_columns)
    assert not r.passed and "wrong axis" in str(r)
    r = check_attention(attention_dot_T)
    assert not r.passed and "transpose(-2, -1)" in str(r)
    r = check_attention(attention_output_only)
    assert not r.passed and "(output, weights)" in str(r)
    r = check_attention(attention_forgets_v)
    assert not r.passed and "weights are right" in str(r)


# ----------------------------------------------------------- check_self_attention_layer
class LayerRight(nn.Module):
    """The answer: an embedding, three projections without bias, equation (1)."""

    bias = False

    def __init__(self, vocab_size, d_model, d_k):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_model)
        self.w_q = nn.Linear(d_model, d_k, bias=self.bias)
        self.w_k = nn.Linear(d_model, d_k, bias=self.bias)
        self.w_v = nn.Linear(d_model, d_k, bias=self.bias)

    def embed_ids(self, ids):
        return self.embed(ids)  # (B, T, d_model)

    def scores(self, q, k):
        return q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, T, T)

    def softmax(self, s):
        return torch.softmax(s, dim=-1)

    def forward(self, ids):
        x = self.embed_ids(ids)
        q, k, v = self.w_q(x), self.w_k(x), self.w_v(x)  # (B, T, d_k)
        w = self.softmax(self.scores(q, k))
        return w @ v, w


def own_attention(q, k, v):  # a helper of the learner's own, as my_attention in the notebook
    w = softmax_right(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]))
    return w @ v, w


class LayerWithHelper(LayerRight):
    def forward(self, ids):
        x = self.embed(ids)
        return own_attention(self.w_q(x), self.w_k(x), self.w_v(x))


class LayerByDModel(LayerRight):
    def scores(self, q, k):
        return q @ k.transpose(-2, -1) / math.sqrt(self.embed.embedding_dim)


class LayerUnscaled(LayerRight):
    def scores(self, q, k):
        return q @ k.transpose(-2, -1)


class LayerSoftmaxQueries(LayerRight):
    def softmax(self, s):
        return torch.softmax(s, dim=-2)


class LayerSoftmaxBatch(LayerRight):
    def softmax(self, s):
        return torch.softmax(s, dim=0)


class LayerDotT(LayerRight):
    def scores(self, q, k):
        return q @ k.T / math.sqrt(q.shape[-1])


class LayerKQ(LayerRight):
    def scores(self, q, k):
        return k @ q.transpose(-2, -1) / math.sqrt(q.shape[-1])


class LayerScaledEmbedding(LayerRight):
    def embed_ids(self, ids):
        return self.embed(ids) * math.sqrt(self.embed.embedding_dim)


class LayerOutputOnly(LayerRight):
    def forward(self, ids):
        return super().forward(ids)[0]


class LayerSwapped(LayerRight):
    def forward(self, ids):
        out, w = super().forward(ids)
        return w, out


class LayerFirstGridOnly(LayerRight):
    def forward(self, ids):
        out, w = super().forward(ids)
        return out, w[0]


class LayerNoneWeights(LayerRight):
    def forward(self, ids):
        return super().forward(ids)[0], None


class LayerValuesAreKeys(LayerRight):
    def forward(self, ids):
        x = self.embed(ids)
        q, k = self.w_q(x), self.w_k(x)
        w = self.softmax(self.scores(q, k))
        return w @ k, w


class LayerBiased(LayerRight):
    bias = True


class LayerDetached(LayerRight):
    def softmax(self, s):
        return torch.softmax(s.detach(), dim=-1)


class LayerKeysDetached(LayerRight):
    def scores(self, q, k):
        return q @ k.detach().transpose(-2, -1) / math.sqrt(q.shape[-1])


class LayerNoGrad(LayerRight):
    def forward(self, ids):
        with torch.no_grad():
            return super().forward(ids)


class LayerNoSuper(LayerRight):
    def __init__(self, vocab_size, d_model, d_k):
        self.embed = nn.Embedding(vocab_size, d_model)


class LayerOtherNames(nn.Module):
    def __init__(self, vocab_size, d_model, d_k):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_model)
        self.q = nn.Linear(d_model, d_k, bias=False)


class LayerWrongLinear(LayerRight):
    def __init__(self, vocab_size, d_model, d_k):
        super().__init__(vocab_size, d_model, d_k)
        self.w_k = nn.Linear(d_k, d_model, bias=False)


class LayerExtraParameter(LayerRight):
    def __init__(self, vocab_size, d_model, d_k):
        super().__init__(vocab_size, d_model, d_k)
        self.temperature = nn.Parameter(torch.ones(()))


class LayerStub(LayerRight):
    def __init__(self, vocab_size, d_model, d_k):
        raise NotImplementedError()

    def forward(self, ids):
        raise NotImplementedError()


class LayerForwardStub(LayerRight):
    def forward(self, ids):
        raise NotImplementedError()


def test_layer_accepts_right_answers():
    for cls in (LayerRight, LayerWithHelper):
        r = check_self_attention_layer(cls, repeat=2)
        assert r.passed and str(r).startswith("✅"), r.message


@pytest.mark.filterwarnings("ignore:The use of `x.T`")
@pytest.mark.parametrize(
    "cls,words",
    [
        (LayerByDModel, ["sqrt(d_model)", "sqrt(d_k)"]),
        (LayerUnscaled, ["not scaled"]),
        (LayerSoftmaxQueries, ["softmax over the queries"]),
        (LayerSoftmaxBatch, ["batch axis"]),
        (LayerDotT, ["k.T", "transpose(-2, -1)"]),
        (LayerKQ, ["K Q^T"]),
        (LayerScaledEmbedding, ["multiplied the embeddings"]),
        (LayerOutputOnly, ["(output, weights)"]),
        (LayerSwapped, ["return (output, weights)"]),
        (LayerFirstGridOnly, ["weights have shape", "(B, T, T)"]),
        (LayerNoneWeights, ["should be the weights"]),
        (LayerValuesAreKeys, ["sums the keys", "self.w_v"]),
        (LayerBiased, ["biases", "bias=False"]),
        (LayerDetached, ["self.w_q.weight got no gradient", ".detach()"]),
        (LayerKeysDetached, ["gradient of self.embed.weight", "differs", ".detach()"]),
        (LayerNoGrad, ["no gradient", "torch.no_grad()"]),
        (LayerNoSuper, ["super().__init__()"]),
        (LayerOtherNames, ["self.w_q is missing"]),
        (LayerWrongLinear, ["self.w_k.weight has shape", "nn.Linear(d_model, d_k)"]),
        (LayerExtraParameter, ["parameters", "temperature"]),
    ],
)
def test_layer_names_the_mistake(cls, words):
    r = check_self_attention_layer(cls)
    assert not r.passed and str(r).startswith("❌") and "\n" not in r.message
    for word in words:
        assert word in r.message, (word, r.message)


def test_layer_greets_a_stub():
    for cls in (LayerStub, LayerForwardStub):
        r = check_self_attention_layer(cls)
        assert not r.passed and "not written yet" in r.message


class LayerCourseLib(LayerRight):
    def forward(self, ids):
        x = self.embed(ids)
        return scaled_dot_product_attention(self.w_q(x), self.w_k(x), self.w_v(x))


class LayerTorchFused(LayerRight):
    def forward(self, ids):
        x = self.embed(ids)
        q, k, v = self.w_q(x), self.w_k(x), self.w_v(x)
        w = self.softmax(self.scores(q, k))
        return F.scaled_dot_product_attention(q, k, v), w


def fused_helper(q, k, v):  # a learner's helper that hands over to torch
    return F.scaled_dot_product_attention(q, k, v), own_attention(q, k, v)[1]


class LayerFusedHelper(LayerRight):
    def forward(self, ids):
        x = self.embed(ids)
        return fused_helper(self.w_q(x), self.w_k(x), self.w_v(x))


class LayerTorchModule(LayerRight):
    def __init__(self, vocab_size, d_model, d_k):
        super().__init__(vocab_size, d_model, d_k)
        self.mha = nn.MultiheadAttention(d_k, 1, bias=False)


class LayerOnLibrary(MultiHeadAttention):
    pass


class LayerHiddenLibrary(LayerRight):
    def forward(self, ids):  # no name of the library in the code: refused at run time
        fn = getattr(attention_module, "scaled_dot_product_" + "attention")
        x = self.embed(ids)
        return fn(self.w_q(x), self.w_k(x), self.w_v(x))


def test_layer_refuses_the_library():
    for cls in (
        LayerCourseLib,
        LayerTorchFused,
        LayerFusedHelper,
        LayerTorchModule,
        LayerOnLibrary,
        LayerHiddenLibrary,
        MultiHeadAttention,
        nn.MultiheadAttention,
    ):
        r = check_self_attention_layer(cls)
        assert not r.passed and "write it yourself" in r.message, (cls, r.message)
