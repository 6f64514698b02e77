"""The explorers' logic, headless: set values from Python, check what they computed and show."""

import ast
import inspect
import math
import re
import statistics

import numpy as np
import pytest
import torch

from course_lib import patterns as P
from course_lib.attention import MultiHeadAttention
from course_lib.data import CharVocab
from course_lib.decode import next_token_distribution
from course_lib.layers import EncoderLayer
from course_lib.model import Transformer, TransformerConfig
from course_lib.positional import frequencies, sinusoidal_encoding
from course_lib.widgets import AttentionExplorer, PatternExplorer, compute, word_embedder

PNG = b"\x89PNG\r\n\x1a\n"


def rows_sum_to_one(w):
    return np.allclose(np.asarray(w).sum(-1), 1.0, atol=1e-5)


# --- the pattern explorer -----------------------------------------------------------------
@pytest.fixture(scope="module")
def pat():
    return PatternExplorer("the cat sat on the mat because the cat was tired")


def test_pattern_explorer_shows_a_softmax_grid(pat):
    T = len(pat.tokens)
    assert pat.message == "" and pat.png.startswith(PNG)
    for name in P.PATTERNS:
        pat.pattern.value = name
        assert pat.current_weights.shape == (T, T)
        assert rows_sum_to_one(pat.current_weights)
        assert np.allclose(
            pat.current_weights, P.pattern_attention(name, pat.tokens, pat.temperature.value, max_len=32)
        )
    pat.pattern.value = "previous token"
    assert pat.current_weights[3].argmax() == 2


def test_temperature_changes_the_grid_and_the_picture(pat):
    pat.pattern.value = "content"
    pat.temperature.value = 1.0
    w1, img1, H1 = pat.current_weights.copy(), pat.png, pat.entropy.mean()
    pat.temperature.value = 3.0
    w3, H3 = pat.current_weights, pat.entropy.mean()
    assert not np.allclose(w1, w3) and rows_sum_to_one(w3)
    assert H3 > H1  # hotter = flatter
    assert pat.png != img1
    assert np.allclose(w3, P.softmax_attention(pat.current_scores / 3.0))
    pat.temperature.value = 1.0


def test_query_readout_names_the_top_key(pat):
    pat.pattern.value = "previous token"
    pat.query.value = 2  # "sat" -> "cat"
    assert "sat" in pat.readout.value and "<b>cat</b><sub>1</sub> 0.9" in pat.readout.value
    assert "entropy" in pat.readout.value


def test_masks_zero_the_right_entries():
    ex = PatternExplorer("a dog chased a cat", pattern="uniform", n_pad=3)
    T, real = 8, 5
    assert ex.labels[-3:] == [P.PAD] * 3
    assert (ex.current_weights[:, real:] > 0).all()  # without a padding mask, pads get attention
    ex.padding.value = True
    w = ex.current_weights
    assert (w[:, real:] == 0).all() and rows_sum_to_one(w)
    assert np.allclose(w[:, :real], 1 / real)
    ex.causal.value = True
    w = ex.current_weights
    assert (np.triu(w, 1) == 0).all() and rows_sum_to_one(w)
    assert np.allclose(w[2, :3], 1 / 3)
    assert (ex.current_mask == (np.tril(np.ones((T, T), bool)) & (np.arange(T) < real))).all()
    ex.padding.value = False
    assert (np.triu(ex.current_weights, 1) == 0).all() and ex.current_weights[7, 7] > 0


def test_all_patterns_are_heads():
    ex = PatternExplorer("one two three two one", all_patterns=True)
    assert ex.current_weights.shape == (len(P.PATTERNS), 5, 5) and rows_sum_to_one(ex.current_weights)
    ex.pattern.value = "same word"
    assert np.allclose(ex.entropy, [math.log(2), math.log(2), 0, math.log(2), math.log(2)], atol=0.1)


@pytest.mark.parametrize(
    "bad, says",
    [("", "empty"), ("   \t ", "empty"), ("word " * 30, "at most"), ("x" * 10_000, "too long")],
)
def test_bad_sentence_gives_a_message_and_keeps_the_view(bad, says):
    ex = PatternExplorer("the cat sat")
    w, img, toks = ex.current_weights.copy(), ex.png, list(ex.tokens)
    ex.set_text(bad)
    assert says in ex.message and says in ex.status.value
    assert ex.tokens == toks and np.array_equal(ex.current_weights, w) and ex.png == img
    ex.set_text("a dog")
    assert ex.message == "" and ex.current_weights.shape == (2, 2)


def test_bad_initial_sentence_falls_back():
    ex = PatternExplorer("   ")
    assert "empty" in ex.message and ex.current_weights is not None


def test_save_png(tmp_path, pat):
    path = pat.save_png(tmp_path / "slides" / "grid.png")
    assert path.read_bytes().startswith(PNG) and "saved" in pat.message
    pat.save_path.value = str(tmp_path / "other")
    pat.save_button.click()
    assert (tmp_path / "other.png").exists()
    pat.temperature.value = 0.8  # the view keeps working after a save
    assert rows_sum_to_one(pat.current_weights)


def test_controls_carry_stable_classes(pat):
    assert "course-pattern-explorer" in pat.widget._dom_classes
    assert "course-attention-image" in pat.image._dom_classes
    assert "course-pattern-temperature" in pat.temperature._dom_classes
    assert "course-explorer-text" in pat.text._dom_classes
    bundle = pat._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle


# --- the model explorer -------------------------------------------------------------------
class TinyVocab:
    """A duck-typed character vocabulary: PAD 0, SOS 1, then the letters."""

    sos_id = 1

    def __init__(self, chars="abcdefghij "):
        self.itos = ["<pad>", "<s>", *chars]
        self.stoi = {c: i for i, c in enumerate(self.itos) if i >= 2}

    def __len__(self):
        return len(self.itos)

    def encode(self, text):
        bad = sorted(set(text) - set(self.stoi))
        if bad:
            raise ValueError(f"characters not in the vocabulary: {bad}")
        return [self.stoi[c] for c in text]


@pytest.fixture(scope="module")
def vocab():
    return TinyVocab()


@pytest.fixture(scope="module")
def model(vocab):
    torch.manual_seed(0)
    cfg = TransformerConfig(
        len(vocab), d_model=32, n_heads=4, n_encoder_layers=2, n_decoder_layers=2, d_ff=64
    )
    return Transformer(cfg).eval()


def reference_weights(model, module, run):
    """Softmax(q k^T / sqrt(d_k)) recomputed from the inputs the module really received."""
    seen = {}

    def hook(mod, args, kwargs):
        seen["query"], seen["key"] = args[0], args[1]
        seen["mask"] = args[3] if len(args) > 3 else kwargs.get("mask")

    handle = module.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        with torch.no_grad():
            run()
    finally:
        handle.remove()
    h, d_k = module.n_heads, module.d_k
    with torch.no_grad():
        q = module.w_q(seen["query"]).view(1, -1, h, d_k).transpose(1, 2)
        k = module.w_k(seen["key"]).view(1, -1, h, d_k).transpose(1, 2)
        s = q @ k.transpose(-2, -1) / math.sqrt(d_k)
        if seen["mask"] is not None:
            s = s.masked_fill(~seen["mask"], float("-inf"))
        return s.softmax(-1)[0].numpy()  # (h, T_q, T_k)


@pytest.mark.parametrize(
    "kind, layer_attr, attn_attr",
    [
        ("encoder self", "encoder_layers", "self_attn"),
        ("decoder self", "decoder_layers", "self_attn"),
        ("cross", "decoder_layers", "cross_attn"),
    ],
)
def test_transformer_explorer_matches_the_model(model, vocab, kind, layer_attr, attn_attr):
    src, tgt = "bad cafe", "face bad"
    ex = AttentionExplorer(model, vocab, text=src, target=tgt)
    assert ex.message == ""
    ex.attention.value = kind
    src_ids = torch.tensor([vocab.encode(src)])
    tgt_ids = torch.tensor([[1] + vocab.encode(tgt)])
    for layer in (0, 1):
        module = getattr(getattr(model, layer_attr)[layer], attn_attr)
        ref = reference_weights(model, module, lambda: model(src_ids, tgt_ids))
        ex.layer.value = layer
        for head in range(4):
            ex.head.value = head
            assert ex.current_weights.shape == ref[head].shape
            assert np.allclose(ex.current_weights, ref[head], atol=1e-5)
            assert rows_sum_to_one(ex.current_weights)
        ex.head.value = -1
        assert np.allclose(ex.current_weights, ref, atol=1e-5)
    q_len = len(src) if kind == "encoder self" else len(tgt) + 1
    assert len(ex.query_labels) == q_len
    if kind != "encoder self":
        assert ex.query_labels[0] == "<s>"
    if kind == "decoder self":  # causal: no query sees a later key
        assert (np.triu(ex.layer_weights, 1) == 0).all()


def test_transformer_explorer_with_translate(model, vocab):
    ex = AttentionExplorer(model, vocab, text="abc", translate=lambda s: s[::-1], attention="cross")
    assert ex.translation == "cba" and ex.target.value == "cba"
    assert ex.current_weights.shape == (4, 3) and ex.key_labels == ["a", "b", "c"]
    ex.set_text("hij")
    assert ex.translation == "jih" and ex.message == ""


@pytest.mark.parametrize(
    "src, says",
    [("", "empty"), ("  ", "empty"), ("ABC", "cannot be encoded"), ("a" * 65, "too long")],
)
def test_transformer_explorer_bad_input_keeps_the_view(model, vocab, src, says):
    ex = AttentionExplorer(model, vocab, text="bad", target="cab", head="all")
    w, img = ex.current_weights.copy(), ex.png
    ex.set_text(src)
    assert says in ex.message, ex.message
    assert np.array_equal(ex.current_weights, w) and ex.png == img
    ex.set_text("bad", target="")
    assert "target is empty" in ex.message
    ex.set_text("fig", target="ace")
    assert ex.message == "" and ex.current_weights.shape == (4, 3, 3)


def test_transformer_explorer_with_the_course_vocab():
    v = CharVocab("0123456789-")
    torch.manual_seed(1)
    m = Transformer(
        TransformerConfig(len(v), d_model=16, n_heads=2, n_encoder_layers=1, n_decoder_layers=1, d_ff=32)
    )
    ex = AttentionExplorer(m, v, text="12-3", target="2024-01", attention="cross")
    assert ex.message == "" and ex.key_labels == ["1", "2", "-", "3"] and ex.query_labels[0] == "<s>"
    ex.set_text("12x")
    assert "not in the vocabulary" in ex.message


def test_module_explorers():
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 2)
    ex = AttentionExplorer(mha, text="the cat sat on the mat")
    assert ex.current_weights.shape == (6, 6) and rows_sum_to_one(ex.current_weights)
    x, labels = word_embedder(16)("the cat sat on the mat")
    with torch.no_grad():
        mha(x[None], need_weights=True)
    assert np.allclose(ex.current_weights, mha.attn_weights[0, 0].numpy(), atol=1e-6)
    assert labels == ex.query_labels
    layer = EncoderLayer(16, 2, 32)
    ex = AttentionExplorer(layer, text="one two three four", causal=True, head="all")
    assert ex.current_weights.shape == (2, 4, 4) and (np.triu(ex.current_weights, 1) == 0).all()
    ex.set_text("")
    assert "empty" in ex.message and ex.current_weights.shape == (2, 4, 4)


def test_model_explorer_classes_and_png(model, vocab, tmp_path):
    ex = AttentionExplorer(model, vocab, text="abc", target="cba")
    assert "course-attention-explorer" in ex.widget._dom_classes
    assert "course-attention-query" in ex.query._dom_classes
    assert ex.png.startswith(PNG)
    before = ex.png
    ex.query.value = 2
    assert ex.png != before  # the query box moved
    ex.cmap.value = "magma"
    ex.scale.value = "auto"
    assert ex.save_png(tmp_path / "v.png").read_bytes().startswith(PNG)


# --- speed ------------------------------------------------------------------------------------
def test_redraw_time(model, capsys):
    """Median redraw time per change (printed; the bound is generous, the machine may be busy)."""
    vocab = TinyVocab("abcdefghij ")
    text = ("abc defg hij " * 6)[:64]
    ex = AttentionExplorer(model, vocab, text=text, target=text[:63])
    for kind in ("encoder self", "decoder self", "cross"):  # build every view once
        ex.attention.value = kind
        ex.head.value = -1
        ex.head.value = 0
    ex.redraw_ms.clear()
    for kind in ("encoder self", "cross"):
        ex.attention.value = kind
        for head in (1, 2, -1, 3):
            ex.head.value = head
        for q in (5, 30, 60):
            ex.query.value = q
        ex.layer.value = 1 - ex.layer.value
    model_ms = statistics.median(ex.redraw_ms)
    pat = PatternExplorer("the cat sat on the mat because the cat was tired")
    pat.redraw_ms.clear()
    for t in (0.5, 0.7, 1.3, 2.0, 3.0):
        pat.temperature.value = t
    for q in range(1, 6):
        pat.query.value = q
    pat_ms = statistics.median(pat.redraw_ms)
    t0 = len(pat.redraw_ms)
    for s in ("a dog chased a cat", "the dog sat", "one two three"):
        pat.set_text(s)
    text_ms = statistics.median(pat.redraw_ms[t0:])
    with capsys.disabled():
        print(
            f"\nredraw median: model explorer (T=64) {model_ms:.0f} ms, pattern explorer {pat_ms:.0f} ms, "
            f"pattern explorer new sentence {text_ms:.0f} ms"
        )
    assert model_ms < 1000 and pat_ms < 1000


# --- legibility of the all-heads view --------------------------------------------------------
def _tick_labels(layout):
    """The visible token labels of each axes of the current view: {(axes index, "x" or "y"): [Text]}."""
    by_axes = {}
    for i, ax in enumerate(layout.axes):
        for axis in ("x", "y"):
            pool = layout._pools.get((id(ax), axis), [])
            by_axes[(i, axis)] = [t for t in pool if t.get_visible()]
    return by_axes


@pytest.mark.parametrize("length", [3, 11, 26, 64])
def test_all_heads_labels_are_legible(model, vocab, length):
    """Every head of a layer: labels of at least 9 pt at 80 dpi, never more than one per 9 pt of
    panel (so they cannot overlap), a figure about as wide as a notebook, and every token
    labelled when the panel has room for all of them."""
    text = ("abc defg hij " * 6)[:length]
    ex = AttentionExplorer(model, vocab, text=text, target=text[: length - 1] or "a", head="all")
    for kind in ("encoder self", "decoder self", "cross"):
        ex.attention.value = kind
        lay = ex._view.current
        assert ex.current_weights.shape[0] == 4 and lay.n == 4
        width, _ = lay.fig.get_size_inches()
        assert width * lay.fig.dpi <= 900, f"{width * lay.fig.dpi:.0f} px: wider than a notebook"
        labels = _tick_labels(lay)
        T_q, T_k = ex.current_weights.shape[1:]
        shown_x = [t for (_, axis), ts in labels.items() if axis == "x" for t in ts]
        shown_y = [t for (_, axis), ts in labels.items() if axis == "y" for t in ts]
        assert shown_x and shown_y
        assert min(t.get_fontsize() for t in shown_x + shown_y) >= 9.0
        for (_, axis), ts in labels.items():
            room_pt = 72 * (lay.hw if axis == "x" else lay.hh)  # panel size along this axis
            n_tokens = T_k if axis == "x" else T_q
            assert len(ts) <= max(1, room_pt // 9), (kind, axis, len(ts))
            if ts and n_tokens * 9 * 1.05 <= room_pt:  # room for every token: every token labelled
                assert len(ts) == n_tokens, (kind, axis, len(ts), n_tokens)


# --- the pure computations behind the explorers (no front end) --------------------------------
WORDS = ["the", "cat", "sat", "on", "mat", "dog", "ran", "a", "big", "red", "."]


def random_rows(rng, *shape):
    """Random attention rows (softmax of normal scores), float64."""
    s = rng.normal(size=shape) * 2
    e = np.exp(s - s.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def parsed_top_keys(text):
    """[(label, key index, weight)] from the HTML of compute.top_keys_html."""
    return [
        (lab, int(j), float(w)) for lab, j, w in re.findall(r"<b>(.*?)</b><sub>(\d+)</sub> ([\d.]+)", text)
    ]


def test_compute_module_needs_no_front_end():
    """compute.py is the logic without the layout: it imports neither ipywidgets nor matplotlib."""
    tree = ast.parse(inspect.getsource(compute))
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not {m for m in names if m.split(".")[0] in ("ipywidgets", "matplotlib", "IPython")}


def test_top_keys_text_matches_numpy(rng):
    T_k = int(rng.integers(1, 12))
    w = random_rows(rng, T_k)
    labels = [str(rng.choice(WORDS)) for _ in range(T_k)]
    for k in (1, 3, T_k):
        got = parsed_top_keys(compute.top_keys_html(w, labels, k))
        order = np.argsort(-w, kind="stable")[:k]
        assert [j for _, j, _ in got] == order.tolist()
        assert [lab for lab, _, _ in got] == [labels[j] for j in order]
        assert np.allclose([x for _, _, x in got], w[order], atol=0.005)
    assert "&lt;pad&gt;" in compute.top_keys_html(np.array([1.0]), ["<pad>"])  # labels are escaped


@pytest.mark.parametrize("all_patterns", [False, True])
def test_pattern_view_matches_a_numpy_masked_softmax(rng, all_patterns):
    tokens = [str(rng.choice(WORDS)) for _ in range(int(rng.integers(2, 9)))]
    n_pad = int(rng.integers(0, 4))
    causal, padding = bool(rng.integers(2)), bool(rng.integers(2))
    tau = float(np.exp(rng.uniform(-1.5, 1.5)))
    pattern = str(rng.choice(P.PATTERNS))
    view = compute.pattern_view(
        tokens, pattern, tau, n_pad=n_pad, all_patterns=all_patterns, causal=causal, padding=padding
    )
    T = len(tokens) + n_pad
    allowed = np.ones((T, T), bool)
    if causal:
        allowed &= np.tril(allowed)
    if padding:
        allowed[:, len(tokens) :] = False
    assert view.labels == tokens + [P.PAD] * n_pad and (view.allowed == allowed).all()
    names = P.PATTERNS if all_patterns else (pattern,)
    assert view.names == tuple(names) and names[view.chosen] == pattern
    for n, scores, weights in zip(names, view.scores, view.weights):
        assert np.allclose(scores, P.pattern_scores(n, view.labels, max_len=32))
        s = np.where(allowed, scores / tau, -np.inf)
        e = np.exp(s - s.max(-1, keepdims=True))
        assert np.allclose(weights, e / e.sum(-1, keepdims=True))
    p = view.weights[view.chosen]
    H = -(p * np.log(np.where(p > 0, p, 1.0))).sum(-1)
    assert np.allclose(view.entropy, H)
    lines = compute.pattern_readout(1, view.labels, p, view.entropy, allowed)
    n_keys = int(allowed[1].sum())
    assert f"entropy of query 1: {H[1]:.2f} nats" in lines[1]
    assert (
        f"ln {n_keys} = {math.log(n_keys):.2f}" in lines[1] and f"mean over rows {H.mean():.2f}" in lines[1]
    )
    assert parsed_top_keys(lines[0])[0][1] == int(np.argmax(p[1]))
    with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
        compute.pattern_view(tokens, pattern, float("nan"))


def test_pattern_titles_and_mask_note(rng):
    assert compute.mask_note(True, True, 2) == "causal mask, padding mask"
    assert compute.mask_note(False, True, 0) == "" and compute.mask_note(True, False, 3) == "causal mask"
    w = random_rows(rng, len(P.PATTERNS), 5, 5)
    titles, sup = compute.pattern_titles(P.PATTERNS, w, 0.5, "causal mask")
    H = -(w * np.log(w)).sum(-1).mean(-1)  # mean row entropy of each pattern
    assert titles == [f"{n}  (H̄={h:.2f})" for n, h in zip(P.PATTERNS, H)]
    assert sup == "every pattern as one head, temperature 0.50  [causal mask]"
    assert compute.pattern_titles(["uniform"], w[:1], 2.0) == (["uniform, temperature 2.00"], "")


@pytest.mark.parametrize(
    "text, says",
    [("", "empty"), (3, "empty"), ("x" * 500, "too long"), ("w " * 25, "has 25 tokens")],
)
def test_sentence_tokens_refuses_what_cannot_be_shown(text, says):
    with pytest.raises(ValueError, match=says):
        compute.sentence_tokens(text, 24)
    assert compute.sentence_tokens("The cat, sat.", 24) == ["The", "cat", ",", "sat", "."]


def test_attention_readout_and_titles(rng):
    h, T_q, T_k = int(rng.integers(1, 5)), int(rng.integers(1, 6)), int(rng.integers(1, 7))
    lw = random_rows(rng, h, T_q, T_k)
    q_lab, k_lab = [f"q{i}" for i in range(T_q)], [f"k{j}" for j in range(T_k)]
    q = int(rng.integers(T_q))
    lines = compute.attention_readout(q, q_lab, k_lab, lw, -1, "cross-attention", 1)
    assert lines[0] == f"query {q} <b>q{q}</b> (cross-attention, layer 1) attends to:" and len(lines) == h + 1
    for i, line in enumerate(lines[1:]):
        got = parsed_top_keys(line)
        order = np.argsort(-lw[i, q], kind="stable")[:3]
        assert [j for _, j, _ in got] == order.tolist() and line.startswith(f"&nbsp;&nbsp;head {i}: ")
    assert len(compute.attention_readout(q, q_lab, k_lab, lw, h - 1, "x", 0)) == 2
    assert compute.attention_titles(None, "cross-attention", 1, -1, 2) == (
        ["head 0", "head 1"],
        "cross-attention, layer 1, all heads",
    )
    assert compute.attention_titles("model", "self", 0, 3, 4) == (["model: self, layer 0, head 3"], "")


def test_check_finite_names_what_is_wrong(rng):
    w = random_rows(rng, 3, 4)
    assert compute.check_finite(w, "w") is w
    w[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"w contain NaN or inf \(1 of 12 entries\)"):
        compute.check_finite(w, "w")


def test_sampling_readout_matches_numpy(gen):
    V = int(torch.randint(2, 30, (1,), generator=gen))
    logits = torch.randn(V, generator=gen) * 3
    labels = [f"t{i}" for i in range(V)]
    k = int(torch.randint(1, V + 1, (1,), generator=gen))
    probs = next_token_distribution(logits, 0.7, k)
    text = compute.sampling_readout(probs, labels)
    p = probs.double().numpy()
    nz = p[p > 0]
    best = int(np.argmax(p))
    assert f"kept {int((p > 0).sum())} of {V} tokens" in text
    assert f"entropy {-(nz * np.log(nz)).sum():.2f} nats (uniform: {math.log(V):.2f})" in text
    assert f"most likely 't{best}' p = {p[best]:.3f}" in text


def test_sampling_settings_caption_and_bar_order(rng):
    assert compute.sampling_settings(0.5, 0, 1.0) == {"temperature": 0.5, "top_k": None, "top_p": None}
    s = compute.sampling_settings(2, 3, 0.9)
    assert s == {"temperature": 2.0, "top_k": 3, "top_p": 0.9}
    assert compute.settings_caption(s) == "τ = 2.00, top-k = 3, top-p = 0.9"
    assert math.isnan(compute.sampling_settings(1.0, 0, float("nan"))["top_p"])  # refused downstream
    probs = rng.integers(0, 4, size=15) / 10.0  # many ties
    ref = rng.integers(0, 4, size=15) / 10.0
    for r in (None, ref):
        key = probs if r is None else r
        expected = sorted(range(15), key=lambda j: (-key[j], j))[:6]  # largest first, ties in order
        assert compute.bar_order(probs, r, 6).tolist() == expected
    with pytest.raises(ValueError, match="labels has 2 entries for 3 logits"):
        compute.checked_logits(torch.zeros(3), ["a", "b"])


def test_positional_pair_follows_the_formula(rng):
    d_model = 2 * int(rng.integers(1, 33))
    max_len = int(rng.integers(2, 200))
    p, i = int(rng.integers(max_len)), int(rng.integers(d_model // 2))
    pe = sinusoidal_encoding(max_len, d_model).double().numpy()
    w = frequencies(d_model).numpy()
    state = compute.positional_pair(pe, w, p, i)
    w_i = 1.0 / 10000 ** (2 * i / d_model)
    assert state.pair == pytest.approx((math.sin(p * w_i), math.cos(p * w_i)), abs=1e-5)
    assert state.angle == pytest.approx(p * w_i, rel=1e-6) and state.wavelength == pytest.approx(
        2 * math.pi / w_i, rel=1e-6
    )
    assert np.array_equal(state.vector, pe[p])
    text = compute.positional_readout(p, i, float(w[i]), state)
    assert f"PE({p}, {2 * i}) = sin({p}·w) = {state.pair[0]:+.3f}" in text
    assert compute.check_positional_args(8, 5, None, 0) == 4  # default position: min(10, max_len - 1)
