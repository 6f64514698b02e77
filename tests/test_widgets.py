"""The explorers' logic, headless: set values from Python, check what they computed and show."""

import math
import statistics

import numpy as np
import pytest
import torch

from course_lib import patterns as P
from course_lib.attention import MultiHeadAttention
from course_lib.data import CharVocab
from course_lib.layers import EncoderLayer
from course_lib.model import Transformer, TransformerConfig
from course_lib.widgets import AttentionExplorer, PatternExplorer, word_embedder

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
