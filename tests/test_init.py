"""Initialisation of the Transformer: what each kind of parameter starts as.

`Transformer._init_weights` picks the rule by module type. It must give bit for bit the
parameters of the earlier rule (by the substring "embed" in the parameter name), kept below as
`old_name_rule`: the committed notebooks' outputs and the shipped checkpoint depend on it.

The statistical checks use bounds that hold for any sample size (Hoeffding for bounded
values, Laurent-Massart for chi-square, the Gaussian tail for a normal mean), each at a
failure probability of at most EPS = 1e-9; with a few hundred such checks per run, a false
alarm has odds below 1e-6.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from course_lib import LayerNorm, Transformer, TransformerConfig
from course_lib.model import TokenEmbedding

EPS = 1e-9
LOG = math.log(2 / EPS)  # ~21.4
# uniform_ draws in float32 from a float32-rounded bound: a value may pass the exact bound by an ulp or two
ROUNDING = 4 * torch.finfo(torch.float32).eps


def old_name_rule(model: nn.Module) -> None:
    """The rule `_init_weights` had before: every matrix whose name lacks "embed" is xavier-uniform."""
    for name, p in model.named_parameters():
        if p.dim() > 1 and "embed" not in name:
            nn.init.xavier_uniform_(p)


class OldInit(Transformer):
    def _init_weights(self) -> None:
        old_name_rule(self)


def _small(**kw) -> TransformerConfig:
    kw = {"d_model": 16, "n_heads": 4, "n_encoder_layers": 2, "n_decoder_layers": 2, "d_ff": 32, **kw}
    return TransformerConfig(11, 13, **kw)


CONFIGS = {
    "default_tied": _small(),
    "untied": _small(tie_output=False),
    "shared_embeddings": TransformerConfig(
        17, d_model=16, n_heads=4, n_encoder_layers=2, n_decoder_layers=2, d_ff=32, share_embeddings=True
    ),
    "shared_untied": TransformerConfig(
        17,
        d_model=16,
        n_heads=2,
        n_encoder_layers=1,
        n_decoder_layers=3,
        d_ff=8,
        share_embeddings=True,
        tie_output=False,
    ),
    "learned_positions": _small(positional="learned"),
    "learned_untied_pre_ln": _small(positional="learned", tie_output=False, norm_first=True),
    "pre_ln": _small(norm_first=True),
    "no_encoder_layers": _small(n_encoder_layers=0),
}


def _build(cls: type[Transformer], cfg: TransformerConfig, seed: int) -> tuple[Transformer, Tensor]:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = cls(cfg)
        return model, torch.get_rng_state()


@pytest.mark.parametrize("name", list(CONFIGS))
def test_same_parameters_as_the_name_based_rule(gen, name):
    cfg = CONFIGS[name]
    for seed in (0, 1234, int(torch.randint(0, 2**31, (1,), generator=gen))):
        new, new_rng = _build(Transformer, cfg, seed)
        old, old_rng = _build(OldInit, cfg, seed)
        assert torch.equal(new_rng, old_rng), "a different number of random draws"
        new_sd, old_sd = new.state_dict(), old.state_dict()
        assert list(new_sd) == list(old_sd)
        for key in new_sd:
            assert torch.equal(new_sd[key], old_sd[key]), f"{name}, seed {seed}: {key} differs"
        assert (new.generator.weight is new.tgt_embed.weight) == cfg.tie_output


def test_the_old_rule_copy_is_sensitive():
    """The comparison above can fail: one draw fewer changes the parameters that follow."""

    class OneDrawLess(Transformer):
        def _init_weights(self) -> None:
            for name, p in self.named_parameters():
                if p.dim() > 1 and "embed" not in name and "w_q" not in name:
                    nn.init.xavier_uniform_(p)

    cfg = CONFIGS["default_tied"]
    a, b = _build(OneDrawLess, cfg, 0)[0], _build(Transformer, cfg, 0)[0]
    assert not torch.equal(a.encoder_layers[0].self_attn.w_k.weight, b.encoder_layers[0].self_attn.w_k.weight)


# --- statistics at initialisation -------------------------------------------------------------


def check_uniform(x: Tensor, bound: float, what: str) -> None:
    """x is iid uniform(-bound, bound): inside the bound, reaching near it, variance bound**2 / 3."""
    x, n = x.detach().double().flatten(), x.numel()
    top = x.abs().max().item()
    assert top <= bound * (1 + ROUNDING), f"{what}: max |x| {top!r} above the bound {bound!r}"
    # P(max |x| < bound * (1 - d)) = (1 - d)**n <= exp(-n d)
    assert top >= bound * (1 - math.log(1 / EPS) / n), f"{what}: max |x| {top:.4g} far below {bound:.4g}"
    # Hoeffding: x**2 lies in [0, bound**2], x in [-bound, bound]
    var_tol = bound**2 * math.sqrt(LOG / (2 * n))
    assert abs(x.pow(2).mean().item() - bound**2 / 3) <= var_tol, f"{what}: variance"
    assert abs(x.mean().item()) <= bound * math.sqrt(2 * LOG / n), f"{what}: mean"


def check_normal(x: Tensor, std: float, what: str) -> None:
    """x is iid normal(0, std): the mean of x**2 / std**2 is chi-square(n) / n."""
    x, n = x.detach().double().flatten(), x.numel()
    ratio = x.pow(2).mean().item() / std**2
    t = math.log(2 / EPS)  # Laurent-Massart, each side with probability EPS / 2
    assert 1 - 2 * math.sqrt(t / n) <= ratio <= 1 + 2 * math.sqrt(t / n) + 2 * t / n, f"{what}: std"
    assert abs(x.mean().item()) <= std * math.sqrt(2 * LOG / n), f"{what}: mean"


def xavier_bound(linear: nn.Linear) -> float:
    return math.sqrt(6 / (linear.in_features + linear.out_features))


BIG = {"d_model": 256, "n_heads": 8, "n_encoder_layers": 2, "n_decoder_layers": 2, "d_ff": 1024}


@pytest.mark.parametrize(
    "kw",
    [{}, {"tie_output": False, "positional": "learned", "norm_first": True}],
    ids=["tied_sinusoidal_post_ln", "untied_learned_pre_ln"],
)
def test_statistics_at_init(gen, one_thread, kw):
    cfg = TransformerConfig(1000, 1200, **BIG, **kw)
    with torch.random.fork_rng():
        torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
        model = Transformer(cfg)
    checked: set[int] = set()

    def done(*ps: Tensor) -> None:
        checked.update(id(p) for p in ps)

    for name, m in model.named_modules():
        if isinstance(m, nn.Linear) and m.weight is not model.tgt_embed.weight:
            check_uniform(m.weight, xavier_bound(m), f"{name}.weight (xavier)")
            done(m.weight)
        elif isinstance(m, TokenEmbedding):
            check_normal(m.weight, cfg.d_model**-0.5, f"{name}.weight (embedding)")
            done(m.weight)
        elif isinstance(m, nn.Embedding):  # learned positions
            check_normal(m.weight, 0.02, f"{name}.weight (learned positions)")
            done(m.weight)
        elif isinstance(m, LayerNorm):
            assert torch.equal(m.gamma, torch.ones_like(m.gamma)), name
            assert torch.equal(m.beta, torch.zeros_like(m.beta)), name
            done(m.gamma, m.beta)

    # biases keep nn.Linear's default, uniform(+-1/sqrt(fan_in)): not zero. Scaled by sqrt(fan_in)
    # every bias is uniform(-1, 1); pooled, they give one sample of a few thousand values.
    linears = [m for m in model.modules() if isinstance(m, nn.Linear) and m.bias is not None]
    for m in linears:
        assert m.bias.abs().max() <= m.in_features**-0.5 * (1 + ROUNDING)
        # not zero-initialised; a single float32 draw can still land exactly on 0 (about 2^-24 each)
        assert int((m.bias == 0).sum()) <= 1, m
        done(m.bias)
    scaled = torch.cat([m.bias.double() * math.sqrt(m.in_features) for m in linears])
    check_uniform(scaled, 1.0, "biases, scaled")

    assert model.generator.bias is None
    if cfg.tie_output:  # the output layer is the embedding table itself
        assert model.generator.weight is model.tgt_embed.weight
    assert {id(p) for p in model.parameters()} == checked, "a parameter without an init check"


# --- the rule follows module types, not names -------------------------------------------------

SENTINEL = 5.0  # far outside every initial range


def _sentinel(*ps: Tensor) -> None:
    with torch.no_grad():
        for p in ps:
            p.fill_(SENTINEL)


class EmbeddingLikeLinear(nn.Linear):
    """A subclass of nn.Linear whose name suggests an embedding."""


def test_a_linear_named_embed_is_xavier_and_an_embedding_named_otherwise_is_not(gen):
    with torch.random.fork_rng():
        torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
        model = Transformer(TransformerConfig(50, d_model=64, n_heads=4, d_ff=128, share_embeddings=True))
        model.embed_proj = nn.Linear(64, 64)  # "embed" in the name, but a linear map
        model.embedding_head = EmbeddingLikeLinear(64, 200)
        model.vocab_table = TokenEmbedding(50, 64)  # a token table without "embed" in its name
        model.lookup = nn.Embedding(30, 64)
        renamed = (model.embed_proj.weight, model.embedding_head.weight)
        kept = (model.vocab_table.weight, model.lookup.weight)
        _sentinel(*renamed, *kept)
        shared = model.src_embed.weight.detach().clone()

        old = {name: p.detach().clone() for name, p in model.named_parameters()}
        model._init_weights()
        after = {name: p.detach().clone() for name, p in model.named_parameters()}
        # what the old rule would have done to the same model
        _sentinel(*renamed, *kept)
        old_name_rule(model)

    for name, p in (("embed_proj", model.embed_proj), ("embedding_head", model.embedding_head)):
        w = after[f"{name}.weight"]
        assert w.abs().max() <= xavier_bound(p) * (1 + ROUNDING) < SENTINEL, f"type rule: {name} is xavier"
        assert (p.weight == SENTINEL).all(), f"old rule: {name} kept by its name"
    for name in ("vocab_table", "lookup"):
        assert (after[f"{name}.weight"] == SENTINEL).all(), f"type rule: {name} keeps its own init"
        assert (getattr(model, name).weight.abs() < SENTINEL).all(), f"old rule: {name} re-drawn"
    # the tied generator is the shared embedding: re-running the rule leaves that table alone
    assert model.generator.weight is model.src_embed.weight
    assert torch.equal(after["src_embed.weight"], shared)
    # and every other matrix of the model was re-drawn
    assert not torch.equal(
        after["encoder_layers.0.self_attn.w_q.weight"], old["encoder_layers.0.self_attn.w_q.weight"]
    )
