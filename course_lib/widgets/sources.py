"""Where `AttentionExplorer`'s weights come from: a course_lib model run on text (no widgets).

A source runs its model on the typed text and returns, per attention type, a list (one entry
per layer) of weights (h, T_q, T_k) with the query and key labels:

* `_TransformerSource`: a `Transformer` -- encoder self-attention, decoder self-attention and
  cross-attention; the decoder's input is SOS + the target (as in training).
* `_ModuleSource`: a bare `MultiHeadAttention`, `EncoderLayer` or any module holding
  MultiHeadAttention modules, applied to embeddings (`word_embedder` by default) or token ids.

Input a source cannot run (empty, too long, outside the vocabulary) raises ValueError with the
note the explorer shows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from .. import patterns as P
from ..attention import MultiHeadAttention, keep_attention_weights
from ..device import device_of
from ..masks import causal_mask, padding_mask
from ..positional import sinusoidal_encoding
from .compute import check_finite


# --- labels ---------------------------------------------------------------------------------
def _visible(label: str) -> str:
    return {" ": "·", "\n": "⏎", "\t": "⇥"}.get(label, label)


def _labels_for(vocab: Any, ids: Sequence[int]) -> list[str]:
    """Display labels of token ids: vocab.tokens(ids), vocab.itos[id], vocab.decode([id]) or the id."""
    if hasattr(vocab, "tokens"):
        labels = [str(t) for t in vocab.tokens(list(ids))]
    elif hasattr(vocab, "itos"):
        labels = [str(vocab.itos[i]) for i in ids]
    elif hasattr(vocab, "decode"):
        labels = [str(vocab.decode([i])) or str(i) for i in ids]
    else:
        labels = [str(i) for i in ids]
    return [_visible(s) for s in labels]


def _sos_id(vocab: Any) -> int | None:
    for name in ("sos_id", "bos_id", "SOS", "BOS"):
        v = getattr(vocab, name, None)
        if isinstance(v, int):
            return v
    return None


# --- a toy embedding for bare modules ---------------------------------------------------------
def word_embedder(
    d_model: int, seed: int = 0, positions: bool = True, max_len: int = 64
) -> Callable[[str], tuple[torch.Tensor, list[str]]]:
    """A fixed toy embedding for `AttentionExplorer` on a bare module: text -> (x (T, d_model),
    word labels). Each word gets a fixed pseudo-random vector (the same word, the same vector),
    plus the sinusoidal positional encoding when `positions` is True."""
    pe = sinusoidal_encoding(max_len, d_model) if positions else torch.zeros(max_len, d_model)

    def embed(text: str) -> tuple[torch.Tensor, list[str]]:
        toks = P.tokenize(text)
        if not toks:
            raise ValueError("no words to embed: type a sentence")
        if len(toks) > max_len:
            raise ValueError(f"{len(toks)} tokens, at most {max_len} can be embedded")
        vecs = [
            torch.from_numpy(P._hashed_normal(f"{seed}:{t.lower()}", d_model) * math.sqrt(d_model)).float()
            for t in toks
        ]
        return torch.stack(vecs) + pe[: len(toks)], toks

    return embed


# --- sources --------------------------------------------------------------------------------
class _Source:
    """Runs a model on text and returns, per attention type, a list (one per layer) of
    weights (h, T_q, T_k) with the query and key labels."""

    types: list[str]
    needs_target = False

    def run(self, text: str, target: str | None) -> tuple[dict[str, list[np.ndarray]], dict[str, tuple]]:
        raise NotImplementedError


def _weights_of(mhas: Sequence[MultiHeadAttention]) -> list[np.ndarray]:
    """The weights each module kept on its last call, one (h, T_q, T_k) array per module."""
    out = []
    for m in mhas:
        if m.attn_weights is None:
            raise ValueError("the model ran but an attention module kept no weights")
        w = m.attn_weights[0].detach().float().cpu().numpy()  # (h, T_q, T_k)
        out.append(check_finite(w, "the attention weights"))
    return out


class _TransformerSource(_Source):
    """A course_lib `Transformer`: every layer's encoder self-, decoder self- and cross-attention."""

    names = {
        "encoder self": "encoder self-attention",
        "decoder self": "decoder self-attention",
        "cross": "cross-attention",
    }

    def __init__(self, model, src_vocab, tgt_vocab, translate, max_len, src_encode, tgt_encode) -> None:
        if src_vocab is None:
            raise ValueError(
                "AttentionExplorer on a Transformer needs src_vocab (with encode(text) -> list[int])"
            )
        self.model, self.src_vocab = model, src_vocab
        self.tgt_vocab = tgt_vocab if tgt_vocab is not None else src_vocab
        self.translate = translate
        self.max_len = min(max_len, model.cfg.max_len)
        self.src_encode = src_encode or src_vocab.encode
        sos = _sos_id(self.tgt_vocab)
        self.tgt_encode = tgt_encode or (
            lambda t: ([sos] if sos is not None else []) + list(self.tgt_vocab.encode(t))
        )
        self.modules = {
            "encoder self": [layer.self_attn for layer in model.encoder_layers],
            "decoder self": [layer.self_attn for layer in model.decoder_layers],
            "cross": [layer.cross_attn for layer in model.decoder_layers],
        }
        self.types = [t for t, mods in self.modules.items() if mods]
        if not self.types:
            raise ValueError("the Transformer has no layers with attention to show")
        self.needs_target = bool(model.decoder_layers) and translate is None
        self.has_decoder = bool(model.decoder_layers)

    def _ids(self, encode, text: str, side: str) -> list[int]:
        try:
            ids = list(encode(text))
        except (ValueError, KeyError) as e:
            msg = e.args[0] if e.args else str(e)
            raise ValueError(f"the {side} cannot be encoded: {msg}") from None
        if not ids:
            raise ValueError(f"the {side} is empty after encoding")
        if len(ids) > self.max_len:
            raise ValueError(
                f"the {side} is too long: {len(ids)} tokens, the explorer shows at most {self.max_len}"
            )
        return ids

    def run(self, text, target):
        src_ids = self._ids(self.src_encode, text, "input")
        tgt_ids = self._target_ids(text, target) if self.has_decoder else []
        self._call(src_ids, tgt_ids)
        src_lab = _labels_for(self.src_vocab, src_ids)
        tgt_lab = _labels_for(self.tgt_vocab, tgt_ids) if tgt_ids else []
        weights = {t: _weights_of(self.modules[t]) for t in self.types}
        labels = {
            "encoder self": (src_lab, src_lab),
            "decoder self": (tgt_lab, tgt_lab),
            "cross": (tgt_lab, src_lab),
        }
        return weights, {t: labels[t] for t in self.types}

    def _target_ids(self, text: str, target: str | None) -> list[int]:
        """The decoder's input ids: SOS + the target, or SOS + `translate(text)` when given."""
        if self.translate is not None:
            try:
                target = self.translate(text)
            except ValueError as e:
                raise ValueError(f"could not translate the input: {e}") from None
            self.last_translation = target
        if target is None:
            raise ValueError("the target is empty: type a target text")
        return self._ids(self.tgt_encode, target, "target")

    def _call(self, src_ids: list[int], tgt_ids: list[int]) -> None:
        """Run encoder (and decoder) once in eval mode, keeping the attention weights."""
        dev = device_of(self.model)  # a Transformer always has parameters
        src = torch.tensor([src_ids], dtype=torch.long, device=dev)
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad(), keep_attention_weights(self.model):
                memory = self.model.encode(src)
                if self.has_decoder:
                    tgt = torch.tensor([tgt_ids], dtype=torch.long, device=dev)
                    self.model.decode(tgt, memory, src_mask=padding_mask(src, self.model.cfg.pad_id))
        finally:
            self.model.train(was_training)


class _ModuleSource(_Source):
    """A bare MultiHeadAttention, EncoderLayer or any module containing MultiHeadAttention
    modules, called on the embeddings of the text (self-attention)."""

    def __init__(self, module, embed, vocab, forward, max_len, causal) -> None:
        self.module, self.embed, self.vocab, self.forward = module, embed, vocab, forward
        self.max_len, self.causal = max_len, causal
        self.mhas = [m for m in module.modules() if isinstance(m, MultiHeadAttention)]
        if not self.mhas:
            raise ValueError(f"{type(module).__name__} contains no course_lib MultiHeadAttention to show")
        if embed is None and vocab is None:
            d = self.mhas[0].d_model
            self.embed = word_embedder(d, max_len=max_len)
        self.types = ["self"]
        self.names = {"self": "self-attention"}

    def run(self, text, target):
        inputs, labels = self._inputs(text)
        T = inputs.size(1)
        if T == 0:
            raise ValueError("the input is empty")
        if T > self.max_len:
            raise ValueError(f"the input is too long: {T} tokens, the explorer shows at most {self.max_len}")
        p = next(iter(self.module.parameters()), None)
        if p is not None:
            inputs = inputs.to(p.device, p.dtype if inputs.is_floating_point() else inputs.dtype)
        mask = causal_mask(T, inputs.device) if self.causal else None
        self._call(inputs, mask)
        return {"self": _weights_of(self.mhas)}, {"self": (labels, labels)}

    def _inputs(self, text: str) -> tuple[torch.Tensor, list[str]]:
        """The module's input for the text: embeddings (1, T, d_model) or token ids (1, T), and labels."""
        if self.embed is not None:
            try:
                x, labels = self.embed(text)
            except (ValueError, KeyError) as e:
                raise ValueError(f"the input cannot be embedded: {e.args[0] if e.args else e}") from None
            x = torch.as_tensor(x)
            if x.dim() == 2:
                x = x[None]  # (1, T, d_model)
            return x, [_visible(str(s)) for s in labels]
        try:
            ids = list(self.vocab.encode(text))
        except (ValueError, KeyError) as e:
            raise ValueError(f"the input cannot be encoded: {e.args[0] if e.args else e}") from None
        return torch.tensor([ids], dtype=torch.long), _labels_for(self.vocab, ids)

    def _call(self, inputs: torch.Tensor, mask: torch.Tensor | None) -> None:
        """Run the module once in eval mode, keeping its attention weights."""
        was_training = self.module.training
        self.module.eval()
        try:
            with torch.no_grad(), keep_attention_weights(self.module):
                if self.forward is not None:
                    self.forward(self.module, inputs, mask)
                elif isinstance(self.module, MultiHeadAttention):
                    self.module(inputs, mask=mask)
                elif mask is not None:
                    self.module(inputs, mask)
                else:
                    self.module(inputs)
        finally:
            self.module.train(was_training)
