import math

import pytest
import torch

from course_lib.attention import MultiHeadAttention
from course_lib.extrapolation import (
    POSITIONS,
    PositionProbe,
    RotarySelfAttention,
    make_probe,
    previous_token_accuracy,
    previous_token_batch,
    previous_token_loss,
    train_previous_token,
)
from course_lib.masks import causal_mask
from course_lib.positional import apply_rope


def _seed(gen: torch.Generator) -> int:
    return int(torch.randint(0, 10_000, (1,), generator=gen))


def test_rotary_attention_matches_by_hand(gen):
    attn = RotarySelfAttention(16, 4).double()
    x = torch.randn(3, 7, 16, generator=gen, dtype=torch.float64)
    mask = causal_mask(7)
    out = attn(x, mask=mask)
    q = apply_rope(attn.split_heads(attn.w_q(x)))  # (B, h, T, d_k)
    k = apply_rope(attn.split_heads(attn.w_k(x)))
    v = attn.split_heads(attn.w_v(x))
    scores = (q @ k.transpose(-2, -1) / math.sqrt(4)).masked_fill(~mask, float("-inf"))
    expected = attn.w_o(attn.merge_heads(scores.softmax(-1) @ v))
    assert out.shape == (3, 7, 16)
    assert torch.allclose(out, expected, atol=1e-12)
    assert torch.allclose(attn.attn_weights, scores.softmax(-1), atol=1e-12)


def test_rotary_attention_at_position_zero_is_plain_attention(gen):
    rope, plain = RotarySelfAttention(8, 2).double(), MultiHeadAttention(8, 2).double()
    plain.load_state_dict(rope.state_dict())
    x = torch.randn(2, 1, 8, generator=gen, dtype=torch.float64)  # one token: rotation by angle 0
    assert torch.allclose(rope(x), plain(x), atol=1e-12)
    y = torch.randn(2, 5, 8, generator=gen, dtype=torch.float64)  # more tokens: rotations matter
    assert not torch.allclose(rope(y), plain(y), atol=1e-6)


def test_rotary_attention_is_shift_invariant_in_its_weights(gen):
    # scores depend on offsets only: the same tokens at positions 0..T-1 give the same weights
    # whatever came before them, once the earlier keys are masked out
    attn = RotarySelfAttention(8, 2).double()
    x = torch.randn(1, 6, 8, generator=gen, dtype=torch.float64)
    attn(x)
    alone = attn.attn_weights
    pre = torch.randn(1, 3, 8, generator=gen, dtype=torch.float64)
    mask = torch.zeros(9, 9, dtype=torch.bool)
    mask[3:, 3:] = True  # the last 6 queries see only the last 6 keys
    mask[:3, :3] = True
    attn(torch.cat([pre, x], dim=1), mask=mask)
    assert torch.allclose(attn.attn_weights[..., 3:, 3:], alone, atol=1e-10)


@pytest.mark.parametrize("positions", POSITIONS)
def test_probe_shape_and_causality(positions, gen):
    model = make_probe(positions, seed=_seed(gen), vocab_size=10, max_len=20)
    ids = previous_token_batch(4, 12, 10, gen)
    logits = model(ids)
    assert logits.shape == (4, 12, 10)
    changed = ids.clone()
    changed[:, 8:] = (changed[:, 8:] + 1) % 10  # the future changes...
    assert torch.allclose(model(changed)[:, :8], logits[:, :8], atol=1e-6)  # ...the past does not
    assert not torch.allclose(model(changed)[:, 8:], logits[:, 8:], atol=1e-4)


def test_only_rope_has_no_length_limit(gen):
    ids = previous_token_batch(2, 30, 12, gen)
    assert make_probe("rope", max_len=20)(ids).shape == (2, 30, 12)
    for positions in ("sinusoidal", "learned"):
        with pytest.raises(ValueError, match="max_len=20"):
            make_probe(positions, max_len=20)(ids)


def test_make_probe_is_seeded_and_leaves_global_rng_alone():
    state = torch.random.get_rng_state()
    a, b, c = make_probe("learned", seed=3), make_probe("learned", seed=3), make_probe("learned", seed=4)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(a.pos.embedding.weight, b.pos.embedding.weight)
    assert not torch.equal(a.pos.embedding.weight, c.pos.embedding.weight)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="positions must be one of"):
        PositionProbe(12, "alibi")
    with pytest.raises(ValueError, match="length"):
        previous_token_batch(4, 1, 12)
    with pytest.raises(ValueError, match="d_model"):
        RotarySelfAttention(8, 2)(torch.randn(1, 3, 6))
    with pytest.raises(ValueError, match="steps"):
        train_previous_token(make_probe("rope"), steps=0)
    with pytest.raises(ValueError):
        make_probe("rope", vocab_size=12)(torch.tensor([[0, 12]]))  # id out of the vocabulary


def test_loss_targets_are_the_previous_tokens(gen):
    model = make_probe("sinusoidal", seed=_seed(gen), vocab_size=6)
    ids = previous_token_batch(3, 9, 6, gen)
    logits = model(ids)[:, 1:]
    expected = torch.nn.functional.cross_entropy(logits.reshape(-1, 6), ids[:, :-1].reshape(-1))
    assert torch.allclose(previous_token_loss(model, ids), expected)


def test_untrained_rows_of_a_learned_table_stay_at_their_init(gen):
    seed = _seed(gen)
    model, fresh = make_probe("learned", seed=seed), make_probe("learned", seed=seed)
    losses = train_previous_token(model, train_len=8, steps=5, seed=seed)
    assert len(losses) == 5 and all(math.isfinite(v) for v in losses)
    trained, init = model.pos.embedding.weight, fresh.pos.embedding.weight
    assert torch.equal(trained[8:], init[8:])  # positions 8.. never seen: no gradient, no change
    assert not torch.allclose(trained[:8], init[:8])


def test_accuracy_is_reproducible_and_per_position(gen):
    model = make_probe("rope", seed=_seed(gen))
    a, b = (
        previous_token_accuracy(model, 20, n_sequences=32),
        previous_token_accuracy(model, 20, n_sequences=32),
    )
    assert a.shape == (19,) and torch.equal(a, b)
    assert ((a >= 0) & (a <= 1)).all()


def test_rope_learns_the_task_and_a_learned_table_cannot_go_beyond_it(gen):
    seed = _seed(gen)
    rope, learned = make_probe("rope", seed=seed), make_probe("learned", seed=seed)
    rope_losses = train_previous_token(rope, train_len=16, steps=200, seed=seed)
    train_previous_token(learned, train_len=16, steps=200, seed=seed)
    assert rope_losses[-1] < 0.1 < math.log(12) - 0.5 < rope_losses[0]
    assert previous_token_accuracy(rope, 16).mean() > 0.95
    acc = previous_token_accuracy(learned, 48)  # positions 1..47
    assert acc[:15].mean() > 0.9  # positions seen in training
    assert acc[15:].mean() < 0.25  # positions 16..47: rows still at their random init
