import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from course_lib.data import CharVocab
from course_lib.decode import (
    beam_hypotheses,
    beam_search,
    generate,
    greedy_decode,
    length_penalty,
    next_token_distribution,
    next_token_logits,
    sample,
    sequence_logprob,
    strip_special,
    translate,
)
from course_lib.model import Transformer, TransformerConfig
from course_lib.viz import row_entropy
from course_lib.widgets import SamplingExplorer

SOS, EOS, PAD = 1, 2, 0


def small_model(src_vocab=17, tgt_vocab=13, seed=0, **kw):
    torch.manual_seed(seed)
    kw = {
        "d_model": 32,
        "n_heads": 4,
        "n_encoder_layers": 2,
        "n_decoder_layers": 2,
        "d_ff": 64,
        "dropout": 0.1,
        "max_len": 48,
        **kw,
    }
    return Transformer(TransformerConfig(src_vocab, tgt_vocab, **kw))


def random_sources(gen, B, S, vocab, pad_tail=True):
    src = torch.randint(3, vocab, (B, S), generator=gen)
    if pad_tail:  # different lengths: pad the end of some rows
        lengths = torch.randint(max(1, S // 2), S + 1, (B,), generator=gen)
        src[torch.arange(S)[None] >= lengths[:, None]] = PAD
    return src


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: see conftest.py


@pytest.fixture(scope="module")
def reversal_model(one_thread):
    """A tiny model trained for a few seconds on reversing 6 digits (ids 3..12)."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    m = small_model(13, 13, seed=0, dropout=0.0, max_len=16, n_encoder_layers=1, n_decoder_layers=1)
    opt = torch.optim.Adam(m.parameters(), lr=5e-3)
    for _ in range(400):
        src = torch.randint(3, 13, (32, 6), generator=g)
        tgt = torch.cat([src.flip(1), torch.full((32, 1), EOS)], 1)
        tgt_in = torch.cat([torch.full((32, 1), SOS), tgt[:, :-1]], 1)
        loss = F.cross_entropy(m(src, tgt_in).flatten(0, 1), tgt.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
    return m.eval()


# --- greedy and the KV cache -----------------------------------------------------------


def test_greedy_cache_equals_no_cache_random_model(gen):
    m = small_model()
    src = random_sources(gen, 6, 9, 17)
    with_cache = greedy_decode(m, src, SOS, EOS, 30)
    without = greedy_decode(m, src, SOS, EOS, 30, use_cache=False)
    assert torch.equal(with_cache, without)
    assert m.training  # the model comes back in the mode it came in


def test_greedy_cache_equals_no_cache_trained_model(gen, reversal_model):
    src = random_sources(gen, 16, 6, 13, pad_tail=False)
    a = greedy_decode(reversal_model, src, SOS, EOS, 10)
    b = greedy_decode(reversal_model, src, SOS, EOS, 10, use_cache=False)
    assert torch.equal(a, b)
    # and the model has learned something: most rows come out reversed, then EOS
    correct = (a[:, :6] == src.flip(1)).all(1) & (a[:, 6] == EOS)
    assert correct.float().mean() > 0.9  # chance: 1e-6


def test_greedy_stops_pads_and_runs_the_encoder_once(gen):
    m = small_model(seed=3)
    calls = {"enc": 0, "dec": 0}
    h1 = m.encoder_layers[0].register_forward_hook(lambda *a: calls.__setitem__("enc", calls["enc"] + 1))
    h2 = m.decoder_layers[0].register_forward_hook(lambda *a: calls.__setitem__("dec", calls["dec"] + 1))
    out = greedy_decode(m, random_sources(gen, 4, 7, 17), SOS, None, 12)  # no EOS: exactly 12 tokens
    h1.remove()
    h2.remove()
    assert out.shape == (4, 12)
    assert calls == {"enc": 1, "dec": 12}
    # with an EOS, everything after it is padding, and decoding stops once all rows are done
    out = greedy_decode(m, random_sources(gen, 5, 7, 17), SOS, EOS, 40)
    for row in out.tolist():
        if EOS in row:
            assert all(t == PAD for t in row[row.index(EOS) + 1 :])
    assert out.size(1) == 40 or (out == EOS).any(1).all()


def test_greedy_matches_step_by_step_argmax(gen):
    """Independent reference: run the full model on the prefix and take the argmax, by hand."""
    m = small_model(seed=4).eval()
    src = random_sources(gen, 3, 8, 17)
    out = greedy_decode(m, src, SOS, None, 8)
    ys = torch.full((3, 1), SOS)
    with torch.no_grad():
        for _ in range(8):
            ys = torch.cat([ys, m(src, ys)[:, -1].argmax(-1, keepdim=True)], 1)
    assert torch.equal(out, ys[:, 1:])


# --- beam search -------------------------------------------------------------------------


def test_beam_width_one_equals_greedy(gen, reversal_model):
    for m, vocab in ((small_model(seed=1), 17), (reversal_model, 13)):
        src = random_sources(gen, 4, 6, vocab)
        greedy = greedy_decode(m, src, SOS, EOS, 16)
        beam = beam_search(m, src, SOS, EOS, 16, beam_size=1)
        L = beam.size(1)
        assert torch.equal(beam, greedy[:, :L]) and (greedy[:, L:] == PAD).all()


def test_beam_is_exact_when_the_beam_holds_every_sequence(gen):
    """With beam_size >= V^max_len nothing is pruned: beam search must return the best
    finished sequence by brute force, with the GNMT length penalty."""
    V, max_len, alpha = 5, 3, 0.6
    m = small_model(11, V, seed=5).eval()
    src = random_sources(gen, 1, 6, 11, pad_tail=False)
    hyps = beam_hypotheses(m, src, SOS, EOS, max_len, beam_size=V**max_len, alpha=alpha)
    finished = []
    for L in range(1, max_len + 1):
        for prefix in itertools.product([t for t in range(V) if t != EOS], repeat=L - 1):
            seq = list(prefix) + [EOS]
            lp = sequence_logprob(m, src, torch.tensor([seq]), SOS, EOS).item()
            finished.append((lp / ((5 + L) / 6) ** alpha, seq, lp))
    best = max(finished)
    assert hyps[0].finished and hyps[0].tokens == best[1]
    assert math.isclose(hyps[0].logprob, best[2], abs_tol=1e-4)
    assert math.isclose(hyps[0].score, best[0], abs_tol=1e-4)
    assert len([h for h in hyps if h.finished]) == len(finished)


def test_beam_logprobs_are_the_sequences_logprobs(gen, reversal_model):
    src = random_sources(gen, 1, 6, 13, pad_tail=False)
    for h in beam_hypotheses(reversal_model, src, SOS, EOS, 10, beam_size=4, alpha=0.0):
        ref = sequence_logprob(reversal_model, src, torch.tensor([h.tokens]), SOS, EOS).item()
        assert math.isclose(h.logprob, ref, abs_tol=1e-4)
        assert math.isclose(h.score, h.logprob)  # alpha = 0: no normalisation


def test_length_penalty_values():
    assert length_penalty(1, 0.6) == 1.0  # ((5 + 1) / 6) ** alpha
    assert math.isclose(length_penalty(7, 0.6), 2**0.6)
    assert length_penalty(30, 0.0) == 1.0


# --- sampling ------------------------------------------------------------------------------


def test_sampling_with_top_k_1_equals_greedy(gen, reversal_model):
    for m, vocab in ((small_model(seed=2), 17), (reversal_model, 13)):
        src = random_sources(gen, 5, 6, vocab)
        g = torch.Generator().manual_seed(int(torch.randint(0, 10**6, (1,), generator=gen)))
        assert torch.equal(sample(m, src, SOS, EOS, 16, top_k=1, rng=g), greedy_decode(m, src, SOS, EOS, 16))
        assert torch.equal(
            sample(m, src, SOS, EOS, 16, temperature=1e-4, rng=g), greedy_decode(m, src, SOS, EOS, 16)
        )


def test_sampling_is_reproducible_and_follows_the_distribution(gen):
    m = small_model(seed=6).eval()
    src = random_sources(gen, 1, 7, 17, pad_tail=False)
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    assert torch.equal(sample(m, src, SOS, EOS, 10, rng=g1), sample(m, src, SOS, EOS, 10, rng=g2))
    # the first token's frequencies over many draws match softmax(logits / T)
    n, T = 20000, 1.5
    draws = sample(m, src.expand(n, -1), SOS, None, 1, temperature=T, rng=g1)[:, 0]
    freq = torch.bincount(draws, minlength=13).float() / n
    expected = (next_token_logits(m, src, [], SOS)[0] / T).softmax(-1)
    assert (freq - expected).abs().max() < 0.02


def test_top_p_keeps_the_smallest_set_with_enough_mass(gen):
    for _ in range(50):
        V = int(torch.randint(2, 30, (1,), generator=gen))
        logits = torch.randn(V, generator=gen) * 2
        p = float(torch.rand(1, generator=gen)) * 0.98 + 0.01
        probs = logits.softmax(-1)
        out = next_token_distribution(logits, top_p=p)
        # brute force: the smallest k whose k most probable tokens hold mass >= p
        sorted_p = probs.sort(descending=True).values
        k = next(i for i in range(1, V + 1) if sorted_p[:i].sum() >= p - 1e-7)
        kept = out > 0
        assert int(kept.sum()) == k
        assert torch.equal(kept, probs >= sorted_p[k - 1])  # the k most probable ones
        assert torch.allclose(out[kept], probs[kept] / probs[kept].sum(), atol=1e-6)
        assert math.isclose(float(out.sum()), 1.0, abs_tol=1e-5)


def test_top_k_temperature_and_batches(gen):
    logits = torch.randn(4, 11, generator=gen) * 3
    out = next_token_distribution(logits, top_k=3)
    assert ((out > 0).sum(-1) == 3).all()
    top3 = logits.topk(3).indices
    assert (out.gather(-1, top3) > 0).all()
    assert torch.allclose(out.sum(-1), torch.ones(4))
    assert torch.allclose(next_token_distribution(logits), logits.softmax(-1))
    assert torch.allclose(
        next_token_distribution(logits, temperature=0.5), (logits * 2).softmax(-1), atol=1e-6
    )
    # temperature -> 0 approaches the argmax; temperature -> infinity approaches uniform
    top2 = logits.topk(2).values
    gap = float((top2[:, 0] - top2[:, 1]).min())  # > 0 for random floats
    cold = [next_token_distribution(logits, temperature=t) for t in (1.0, 0.3, 0.1, gap / 20)]
    top = logits.argmax(-1, keepdim=True)
    mass_on_argmax = [c.gather(-1, top).min().item() for c in cold]
    assert mass_on_argmax == sorted(mass_on_argmax) and mass_on_argmax[-1] > 0.99
    hot = next_token_distribution(logits, temperature=1e4)
    assert (hot - 1 / 11).abs().max() < 1e-3
    # combined: top-k first, then top-p on what is left
    both = next_token_distribution(logits, top_k=5, top_p=0.5)
    assert ((both > 0).sum(-1) <= 5).all()


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"temperature": 0.0}, "temperature"),
        ({"temperature": -1.0}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"temperature": float("inf")}, "temperature"),
        ({"top_k": 0}, "top_k"),
        ({"top_k": 2.5}, "top_k"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
    ],
)
def test_bad_sampling_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        next_token_distribution(torch.randn(5), **kw)
    with pytest.raises(ValueError, match=match):
        sample(small_model(), torch.randint(3, 17, (1, 4)), SOS, EOS, 5, **kw)


def test_bad_decoding_arguments():
    m = small_model()
    src = torch.randint(3, 17, (2, 5))
    with pytest.raises(ValueError, match="max_len"):
        greedy_decode(m, src, SOS, EOS, 0)
    with pytest.raises(ValueError, match="max_len"):
        greedy_decode(m, src, SOS, EOS, 49)  # longer than the positional table
    with pytest.raises(ValueError, match="sos_id"):
        greedy_decode(m, src, 13, EOS, 5)
    with pytest.raises(ValueError, match="eos_id"):
        greedy_decode(m, src, SOS, -1, 5)
    with pytest.raises(ValueError, match="src"):
        greedy_decode(m, src.float(), SOS, EOS, 5)
    with pytest.raises(ValueError, match="src"):
        greedy_decode(m, torch.full((1, 3), 17), SOS, EOS, 5)
    with pytest.raises(ValueError, match="course_lib Transformer"):
        greedy_decode(torch.nn.Linear(2, 2), src, SOS, EOS, 5)
    with pytest.raises(ValueError, match="beam_size"):
        beam_search(m, src, SOS, EOS, 5, beam_size=0)
    with pytest.raises(ValueError, match="alpha"):
        beam_search(m, src, SOS, EOS, 5, alpha=-0.5)
    with pytest.raises(ValueError, match="one source"):
        beam_hypotheses(m, src, SOS, EOS, 5)
    with pytest.raises(ValueError, match="logits"):
        next_token_distribution(torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="choose"):
        generate(m, src, SOS, EOS, 5, choose=lambda z: z.argmax(-1, keepdim=True))  # (B, 1), not (B,)
    with pytest.raises(ValueError, match="choose"):
        generate(m, src, SOS, EOS, 5, choose="argmax")


# --- text in, text out, and the widget --------------------------------------------------------


def test_translate_greedy_beam_and_sample(reversal_model):
    vocab = CharVocab("0123456789")  # ids 3..12, as the model was trained
    assert vocab.sos_id == SOS and vocab.eos_id == EOS
    text = "402917"
    out = {
        meth: translate(reversal_model, text, vocab, vocab, method=meth, max_len=10)
        for meth in ("greedy", "beam")
    }
    assert out["greedy"] == out["beam"] == text[::-1]
    g = torch.Generator().manual_seed(0)
    s = translate(reversal_model, text, vocab, vocab, method="sample", top_k=1, max_len=10, rng=g)
    assert s == out["greedy"]
    with pytest.raises(ValueError, match="method"):
        translate(reversal_model, text, vocab, vocab, method="best")
    with pytest.raises(ValueError, match="empty"):
        translate(reversal_model, "", vocab, vocab)
    with pytest.raises(ValueError, match="not in the vocabulary"):
        translate(reversal_model, "12a", vocab, vocab)
    assert strip_special([1, 5, 6, 2, 0, 0], eos_id=2, sos_id=1) == [5, 6]


def test_sampling_widget_shows_the_filtered_distribution(gen):
    logits = torch.randn(12, generator=gen) * 2
    labels = [f"t{i}" for i in range(12)]
    ex = SamplingExplorer(logits, labels, title="test")
    assert torch.allclose(ex.probs, logits.softmax(-1))
    probs = ex.set(temperature=0.5, top_k=4, top_p=1.0)
    assert torch.allclose(probs, next_token_distribution(logits, 0.5, 4))
    assert int((probs > 0).sum()) == 4 and "kept 4 of 12" in ex.readout
    ex.top_k.value = 0  # a slider moved by hand redraws too
    ex.top_p.value = 0.6
    assert torch.allclose(ex.probs, next_token_distribution(logits, 0.5, None, 0.6))
    # the widget's float32 entropy against one computed in float64: float32 round-off, not 1e-9
    p = ex.probs.double()
    p = p[p > 0]
    assert math.isclose(float(row_entropy(ex.probs)), float(-(p * p.log()).sum()), rel_tol=1e-5, abs_tol=1e-7)
    assert ex.image.value[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="labels"):
        SamplingExplorer(logits, labels[:3])
