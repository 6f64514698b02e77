import torch
import torch.nn.functional as F
from torch import nn

from course_lib.exercises.lesson06 import check_ffn_sublayer, check_sublayer_connection
from course_lib.layers import EncoderLayer, FeedForward, LayerNorm


# --- 1. post-LN and pre-LN ---------------------------------------------------------------------
def test_sublayer_connection_checker():
    r = check_sublayer_connection(lambda x, s, n, nf: x + s(n(x)) if nf else n(x + s(x)), repeat=2)
    assert r and str(r).startswith("✅"), r.message
    res = check_sublayer_connection(lambda x, s, n, nf: n(x + s(x)) if nf else x + s(n(x)))
    assert not res and "other arrangement" in res.message
    res = check_sublayer_connection(lambda x, s, n, nf: s(n(x)) if nf else n(s(x)))
    assert not res and "residual is missing" in res.message
    res = check_sublayer_connection(lambda x, s, n, nf: x + n(s(x)))
    assert not res and ("after the sum" in res.message or "before" in res.message)


def test_sublayer_connection_checker_keeps_the_global_rng():
    torch.manual_seed(123)
    a = torch.rand(3)
    torch.manual_seed(123)
    check_sublayer_connection(lambda x, s, n, nf: x + s(n(x)) if nf else n(x + s(x)))
    assert torch.equal(torch.rand(3), a)


# --- 2. the feed-forward sublayer, whole ------------------------------------------------------
def make_sublayer(
    arrangement="right",  # "swap", "ln_on_ffn", "no_residual"
    unbiased=False,
    eps_outside=False,
    relu=True,
    dropout_at="output",  # "sum", "hidden", "none", "always" (also in eval mode)
    fixed_rate=None,
    detach_stats=False,
):
    """The learner's class, right or with the named slips."""

    class Sublayer(nn.Module):
        def __init__(self, d_model, d_ff, dropout=0.1, norm_first=False, eps=1e-5):
            super().__init__()
            self.gamma = nn.Parameter(torch.ones(d_model))
            self.beta = nn.Parameter(torch.zeros(d_model))
            self.w_1 = nn.Linear(d_model, d_ff)
            self.w_2 = nn.Linear(d_ff, d_model)
            self.p = dropout if fixed_rate is None else fixed_rate
            self.dropout = nn.Dropout(self.p)
            self.norm_first, self.eps = norm_first, eps

        def norm(self, x):  # (B, T, d_model), over the last axis
            mean = x.mean(-1, keepdim=True)
            var = x.var(-1, unbiased=unbiased, keepdim=True)
            if detach_stats:
                mean, var = mean.detach(), var.detach()
            std = var.sqrt() + self.eps if eps_outside else torch.sqrt(var + self.eps)
            return self.gamma * (x - mean) / std + self.beta

        def ffn(self, x):  # equation (2)
            h = self.w_1(x)
            h = torch.relu(h) if relu else h
            if dropout_at == "hidden":
                h = self.dropout(h)
            return self.w_2(h)

        def drop(self, y):
            if dropout_at == "output":
                return self.dropout(y)
            if dropout_at == "always":
                return F.dropout(y, self.p)  # training=True by default: also in eval mode
            return y

        def forward(self, x):
            nf = self.norm_first if arrangement != "swap" else not self.norm_first
            if arrangement == "ln_on_ffn":
                y = x + self.norm(self.drop(self.ffn(x)))
            elif arrangement == "no_residual":
                y = self.drop(self.ffn(self.norm(x))) if nf else self.norm(self.drop(self.ffn(x)))
            elif nf:
                y = x + self.drop(self.ffn(self.norm(x)))
            elif dropout_at == "sum":
                y = self.norm(self.dropout(x + self.ffn(x)))
            else:
                y = self.norm(x + self.drop(self.ffn(x)))
            if nf and dropout_at == "sum":
                y = self.dropout(y)
            return y

    return Sublayer


def test_ffn_sublayer_accepts_the_right_answer():
    r = check_ffn_sublayer(make_sublayer(), repeat=2)
    assert r.passed and str(r).startswith("✅"), r.message
    assert "\n" not in r.message


def test_ffn_sublayer_names_each_slip():
    cases = {
        "other arrangement": make_sublayer(arrangement="swap"),
        "LN to the FFN's output instead of the sum": make_sublayer(arrangement="ln_on_ffn"),
        "residual is missing": make_sublayer(arrangement="no_residual"),
        "biased variance": make_sublayer(unbiased=True),
        "eps goes inside the square root": make_sublayer(eps_outside=True),
        "ReLU is missing": make_sublayer(relu=False),
        "dropout to the residual sum": make_sublayer(dropout_at="sum"),
        "dropout did nothing": make_sublayer(dropout_at="none"),
        "hidden units": make_sublayer(dropout_at="hidden"),
        "eval mode two calls": make_sublayer(dropout_at="always"),
        "the rate you were given": make_sublayer(fixed_rate=0.1),
        "keep every step in the graph": make_sublayer(detach_stats=True),
    }
    for hint, cls in cases.items():
        r = check_ffn_sublayer(cls)
        assert not r.passed and str(r).startswith("❌"), (hint, r.message)
        assert hint in r.message, (hint, r.message)
        assert "\n" not in r.message


def test_ffn_sublayer_names_two_slips_at_once():
    r = check_ffn_sublayer(make_sublayer(unbiased=True, relu=False))
    assert not r and "biased variance" in r.message and "ReLU is missing" in r.message


def test_ffn_sublayer_checks_the_parts_and_the_signature():
    right = make_sublayer()

    class NoGamma(right):
        def __init__(self, d_model, d_ff, dropout=0.1, norm_first=False, eps=1e-5):
            super().__init__(d_model, d_ff, dropout, norm_first, eps)
            del self.gamma
            self.gamma = torch.ones(d_model)  # a plain tensor: not learned

    class Extra(right):
        def __init__(self, d_model, d_ff, dropout=0.1, norm_first=False, eps=1e-5):
            super().__init__(d_model, d_ff, dropout, norm_first, eps)
            self.scale = nn.Parameter(torch.ones(1))

    class Shortcut(right):
        def __init__(self, d_model, d_ff, dropout=0.1, norm_first=False, eps=1e-5):
            super().__init__(d_model, d_ff, dropout, norm_first, eps)
            self.w_1 = nn.Linear(d_model, d_model)

    class OldSignature(nn.Module):
        def __init__(self, d_model, d_ff):
            super().__init__()

    class NoSuper(nn.Module):
        def __init__(self, d_model, d_ff, dropout=0.1, norm_first=False, eps=1e-5):
            self.w_1 = nn.Linear(d_model, d_ff)

    for cls, words in (
        (NoGamma, "self.gamma = nn.Parameter(torch.ones(d_model))"),
        (Extra, "besides gamma, beta, w_1 and w_2: scale"),
        (Shortcut, "self.w_1 maps"),
        (OldSignature, "keep __init__(self, d_model, d_ff, dropout=0.1"),
        (NoSuper, "super().__init__()"),
    ):
        r = check_ffn_sublayer(cls)
        assert not r and words in r.message, (cls.__name__, r.message)
    r = check_ffn_sublayer(right(8, 16))
    assert not r and "pass the class itself" in r.message


def test_ffn_sublayer_refuses_the_library():
    right = make_sublayer()

    class WithTorchNorm(right):
        def __init__(self, d_model, d_ff, dropout=0.1, norm_first=False, eps=1e-5):
            super().__init__(d_model, d_ff, dropout, norm_first, eps)
            self.ln = nn.LayerNorm(d_model, eps=eps)

        def norm(self, x):
            return self.ln(x)

    class WithFunctional(right):
        def norm(self, x):
            return F.layer_norm(x, x.shape[-1:], self.gamma, self.beta, self.eps)

    class WithLibraryFFN(right):
        def __init__(self, d_model, d_ff, dropout=0.1, norm_first=False, eps=1e-5):
            super().__init__(d_model, d_ff, dropout, norm_first, eps)
            self.ff = FeedForward(d_model, d_ff)

    class BuiltOnTheLibrary(EncoderLayer):
        pass

    layer_norm = F.layer_norm

    class Hidden(right):  # the library's function under another name, found at run time
        def norm(self, x):
            return layer_norm(x, x.shape[-1:], self.gamma, self.beta, self.eps)

    for cls in (
        WithTorchNorm,
        WithFunctional,
        WithLibraryFFN,
        BuiltOnTheLibrary,
        Hidden,
        LayerNorm,
        FeedForward,
    ):
        r = check_ffn_sublayer(cls)
        assert not r and "write it yourself" in r.message, (cls.__name__, r.message)


def test_ffn_sublayer_greets_a_stub():
    class Stub(nn.Module):
        def __init__(self, d_model, d_ff, dropout=0.1, norm_first=False, eps=1e-5):
            super().__init__()
            raise NotImplementedError()

        def forward(self, x):
            raise NotImplementedError()

    r = check_ffn_sublayer(Stub)
    assert not r and "not written yet" in r.message


def test_ffn_sublayer_keeps_the_global_rng():
    torch.manual_seed(7)
    a = torch.rand(3)
    torch.manual_seed(7)
    check_ffn_sublayer(make_sublayer())
    assert torch.equal(torch.rand(3), a)


def _residual_step(x, sublayer, norm, norm_first):  # the learner's Your turn 1, reused
    return x + sublayer(norm(x)) if norm_first else norm(x + sublayer(x))


def test_ffn_sublayer_accepts_the_learners_own_residual_step():
    right = make_sublayer()

    class Reusing(right):
        def forward(self, x):
            return _residual_step(x, lambda h: self.dropout(self.ffn(h)), self.norm, self.norm_first)

    r = check_ffn_sublayer(Reusing)
    assert r, r.message


def _unwritten_step(x, sublayer, norm, norm_first):  # Your turn 1, still a stub
    raise NotImplementedError()


def test_ffn_sublayer_reusing_an_unwritten_residual_step_is_not_written_yet():
    right = make_sublayer()

    class Reusing(right):
        def forward(self, x):
            return _unwritten_step(x, lambda h: self.dropout(self.ffn(h)), self.norm, self.norm_first)

    r = check_ffn_sublayer(Reusing)
    assert not r and "not written yet" in r.message
