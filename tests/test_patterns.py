import math

import numpy as np
import pytest
import torch

from course_lib import patterns as P
from course_lib.attention import scaled_dot_product_attention
from course_lib.viz import row_entropy

SENT = P.tokenize("The cat sat on the mat because the cat was tired .")


def test_tokenize_and_word_ids():
    assert P.tokenize("The cat, sat.") == ["The", "cat", ",", "sat", "."]
    assert P.word_ids(["The", "cat", "the", "dog", "cat"]) == [0, 1, 0, 2, 1]
    with pytest.raises(ValueError, match="string"):
        P.tokenize(None)


def test_semantic_vectors_are_unit_stable_and_grouped():
    v = P.semantic_vector("cat")
    assert np.isclose(np.linalg.norm(v), 1.0) and np.allclose(v, P.semantic_vector("Cat"))
    same = P.semantic_vector("cat") @ P.semantic_vector("dog")
    other = P.semantic_vector("cat") @ P.semantic_vector("bread")
    assert same > 0.6 and abs(other) < 0.5
    assert P.semantic_vector("cats") @ P.semantic_vector("dog") > 0.6  # plural falls back to the lexicon


@pytest.mark.parametrize("name", P.PATTERNS)
def test_every_pattern_is_a_softmax_over_keys(name):
    w = P.pattern_attention(name, SENT)
    T = len(SENT)
    assert w.shape == (T, T) and np.all(w >= 0)
    assert np.allclose(w.sum(-1), 1.0)
    # the same numbers as the course's torch attention on the pattern's Q and K
    Q, K = P.pattern_qk(name, P.embed(SENT))
    _, ref = scaled_dot_product_attention(torch.from_numpy(Q), torch.from_numpy(K), torch.from_numpy(K))
    assert np.allclose(w, ref.numpy(), atol=1e-12)


def test_patterns_point_where_they_should():
    T = len(SENT)
    prev = P.pattern_attention("previous token", SENT)
    assert list(prev.argmax(1)) == [0] + list(range(T - 1)) and prev[1:].max(1).min() > 0.9
    assert list(P.pattern_attention("current token", SENT).argmax(1)) == list(range(T))
    assert (P.pattern_attention("first token", SENT).argmax(1) == 0).all()
    uni = P.pattern_attention("uniform", SENT)
    assert np.allclose(uni, 1.0 / T)
    same = P.pattern_attention("same word", SENT)
    the = [i for i, t in enumerate(SENT) if t.lower() == "the"]
    assert np.allclose(same[the[0], the], same[the[0], the].mean()) and same[the[0], the].sum() > 0.9
    content = P.pattern_attention("content", SENT)
    cat, tired = SENT.index("cat"), SENT.index("tired")
    assert content[cat, SENT.index("mat")] < content[cat, 8]  # the other "cat" is closer in meaning
    assert content[cat, tired] < 0.1


def test_projections_read_the_right_block():
    lay = P.Layout()
    W_Q, W_K = P.pattern_projections("previous token")
    assert W_Q.shape == W_K.shape == (lay.d_model, lay.d_k)
    assert not W_Q[lay.word].any() and not W_Q[lay.sem].any()  # only positions matter
    W_Q, W_K = P.pattern_projections("content")
    assert not W_Q[lay.pos].any() and not W_K[lay.pos].any()  # no positions at all
    # a full match scores `strength` after dividing by sqrt(d_k)
    s = P.pattern_scores("current token", SENT)
    assert np.allclose(np.diag(s), P.STRENGTH)
    with pytest.raises(ValueError, match="unknown pattern"):
        P.pattern_projections("next word")


def test_temperature_flattens_and_sharpens():
    s = P.pattern_scores("previous token", SENT)
    H = [row_entropy(P.softmax_attention(s, t)).mean() for t in (0.1, 0.5, 1.0, 2.0, 10.0)]
    assert all(a < b for a, b in zip(H, H[1:]))
    assert H[-1] < math.log(len(SENT)) + 1e-9
    ref = torch.softmax(torch.from_numpy(s) / 2.5, dim=-1).numpy()
    assert np.allclose(P.softmax_attention(s, 2.5), ref)
    with pytest.raises(ValueError, match="temperature"):
        P.softmax_attention(s, 0.0)


def test_softmax_masks_and_fully_masked_rows(gen):
    s = torch.randn(5, 7, generator=gen, dtype=torch.float64).numpy() * 3
    mask = torch.rand(5, 7, generator=gen).numpy() > 0.4
    mask[2] = False
    w = P.softmax_attention(s, mask=mask)
    assert np.isfinite(w).all() and (w[~mask] == 0).all() and (w[2] == 0).all()
    ok_rows = mask.any(1)
    ref = torch.softmax(torch.from_numpy(s).masked_fill(~torch.from_numpy(mask), float("-inf")), -1).numpy()
    assert np.allclose(w[ok_rows], ref[ok_rows])


def test_zoo_attention_is_a_real_multi_head_layer():
    mha = P.zoo_attention()
    x = P.zoo_inputs(SENT)
    out = mha(x, need_weights=True)
    assert out.shape == x.shape
    for i, name in enumerate(P.PATTERNS):
        assert np.allclose(mha.attn_weights[0, i].numpy(), P.pattern_attention(name, SENT), atol=1e-12)


def test_permutation_equivariance_without_positions(gen):
    perm = torch.randperm(len(SENT), generator=gen).numpy()
    shuffled = [SENT[i] for i in perm]
    for name in ("content", "same word", "uniform"):
        X, Xs = P.embed(SENT, positions=False), P.embed(shuffled, positions=False)
        w = P.softmax_attention(P.scores_from_qk(*P.pattern_qk(name, X)))
        ws = P.softmax_attention(P.scores_from_qk(*P.pattern_qk(name, Xs)))
        if name != "same word":  # word ids are numbered by first appearance, so only the content moves
            assert np.allclose(ws, w[np.ix_(perm, perm)])
        assert np.allclose(ws @ Xs[:, P.Layout().sem], (w @ X[:, P.Layout().sem])[perm])
    # with positions, the previous-token head is *not* equivariant: it follows the slots
    w = P.pattern_attention("previous token", SENT)
    ws = P.pattern_attention("previous token", shuffled)
    assert np.allclose(ws, w)  # the same grid, whatever the words: it reads only positions


def test_embed_rejects_bad_input():
    with pytest.raises(ValueError, match="at least one token"):
        P.embed([])
    with pytest.raises(ValueError, match="at most max_len"):
        P.embed(["a"] * (P.MAX_LEN + 1))
