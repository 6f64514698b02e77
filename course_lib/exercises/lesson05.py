"""Checkers for lesson 05, positional encoding.

check_input_layer(cls)          cls(vocab_size, d_model, max_len, dropout) -> module: ids (B, T), offset ->
                                dropout(embed(ids) * sqrt(d_model) + PE[offset : offset + T]) (3.4, 3.5, 5.4)
check_shift_matrix(shift)       shift(k, d_model) -> M_k, (d_model, d_model), PE(pos + k) = M_k PE(pos)
check_rope(rope)                rope(x) -> x with each pair (2i, 2i+1) at position pos rotated by pos * w_i
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from ..model import TokenEmbedding
from ..positional import (
    SinusoidalPositionalEncoding,
    _PositionBase,
    apply_rope,
    frequencies,
    shift_matrix,
    sinusoidal_encoding,
)
from . import CheckResult, checker, compare, fresh_generator, run_trials


def _randint(g: torch.Generator, lo: int, hi: int) -> int:
    """An int in [lo, hi]."""
    return int(torch.randint(lo, hi + 1, (1,), generator=g))


def _as_f64(x: object) -> Tensor | None:
    try:
        return torch.as_tensor(x).detach().to(torch.float64)
    except Exception:
        return None


def _close(a: Tensor | None, b: Tensor, atol: float = 1e-5) -> bool:
    return a is not None and a.shape == b.shape and torch.allclose(a, b, atol=atol, rtol=0.0)


def _is_slip(got: Tensor | None, slip: Tensor, expected: Tensor, atol: float = 1e-5) -> bool:
    """`got` matches a known mistake that, for these sizes, differs from the right answer."""
    return _close(got, slip, atol) and not _close(slip, expected, atol)


def _table(max_len: int, d_model: int, exponent: Tensor) -> tuple[Tensor, Tensor]:
    """sin and cos of pos * 10000^(-exponent), each (max_len, d_model/2)."""
    angles = torch.arange(max_len, dtype=torch.float64)[:, None] * 10000.0 ** (-exponent)
    return torch.sin(angles), torch.cos(angles)


def _rotations(angles: Tensor) -> Tensor:
    """Block-diagonal matrix of 2x2 blocks [[cos a, sin a], [-sin a, cos a]], one per angle."""
    d = 2 * angles.numel()
    m = torch.zeros(d, d, dtype=torch.float64)
    i = torch.arange(0, d, 2)
    m[i, i], m[i, i + 1], m[i + 1, i], m[i + 1, i + 1] = (
        angles.cos(),
        angles.sin(),
        -angles.sin(),
        angles.cos(),
    )
    return m


# --- the model's input layer -------------------------------------------------------------------
# everything that implements the layer, or a piece the learner is asked to write inside it
_INPUT_LAYER_REFUSED = (
    SinusoidalPositionalEncoding,
    _PositionBase,
    TokenEmbedding,
    sinusoidal_encoding,
    frequencies,
)


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return text[0][:150] if text else type(e).__name__


def _layer_structure(layer: nn.Module, vocab: int, d: int, max_len: int) -> str | None:
    """The parameters are the embedding only; the table is a non-persistent buffer."""
    params = dict(layer.named_parameters())
    size = max_len * d
    for name, p in params.items():
        if p.numel() == size:
            return (
                f"self.{name} is an nn.Parameter, so training would change it. The table is fixed, "
                "not learned: register it as a buffer, self.register_buffer(...)"
            )
    shapes = {name: tuple(p.shape) for name, p in params.items()}
    if list(shapes.values()) != [(vocab, d)]:
        return (
            f"the only parameter should be the embedding table, nn.Embedding(vocab_size, d_model) of shape "
            f"{(vocab, d)} for vocab_size={vocab}, d_model={d}; your layer has {shapes or 'none'}"
        )
    tables = [name for name, b in layer.named_buffers() if b.numel() == size]
    if not tables:
        plain = [n for n, v in vars(layer).items() if isinstance(v, Tensor) and v.numel() == size]
        if plain:
            return (
                f"self.{plain[0]} is a plain tensor attribute, so .to(device) and .double() leave it "
                "behind: register it with self.register_buffer(...)"
            )
        return (
            f"no buffer holds the (max_len, d_model) = {(max_len, d)} table: build it in __init__ and "
            "register it with self.register_buffer(...)"
        )
    saved = [name for name in tables if name in layer.state_dict()]
    if saved:
        return (
            f"the table ({saved[0]}) is saved in state_dict. It is fixed, rebuilt from max_len and d_model "
            "whenever the layer is made, so register it with persistent=False, as the library does"
        )
    return None


def _dropout_hint(t: Tensor, v: Tensor, es: Tensor, pe: Tensor) -> str | None:
    """`t`: the train-mode output with dropout p = 0.5; `v`: the eval output, es + pe (all float64)."""

    def close(a: Tensor, b: Tensor) -> Tensor:
        return torch.isclose(a, b, atol=1e-8, rtol=1e-7)

    zero = t.abs() < 1e-12
    if (zero | close(t, 2 * v)).all() and (zero & (v.abs() > 1e-6)).any() and (~zero).any():
        return None
    if torch.allclose(t, v, atol=1e-8, rtol=1e-7):
        return (
            "in train mode your output equals the eval output: no dropout. Make nn.Dropout(dropout) in "
            "__init__ and apply it to the sum in forward"
        )
    if (close(t, pe) | close(t, 2 * es + pe)).all():
        return (
            "you applied dropout to the embeddings only, before adding PE: it goes on the sum, "
            "dropout(embed(ids) * sqrt(d_model) + PE) (section 5.4)"
        )
    if (close(t, es) | close(t, es + 2 * pe)).all():
        return "you applied dropout to the table only: it goes on the sum of the scaled embeddings and PE"
    kept = ~zero & (v.abs() > 1e-6)
    if kept.any():
        ratio = t[kept] / v[kept]
        c = float(ratio.mean())
        if (ratio - c).abs().max() < 1e-6 and abs(c - 2.0) > 1e-3:
            return (
                f"with dropout=0.5 the kept entries are scaled by {c:.3g}, not 1 / (1 - p) = 2: "
                "give nn.Dropout the layer's dropout argument"
            )
    return (
        "in train mode with dropout=0.5 every entry should be 0 or twice its eval value: apply "
        "nn.Dropout once, to the sum embed(ids) * sqrt(d_model) + PE"
    )


@checker(*_INPUT_LAYER_REFUSED, label="input layer", shown_before=(TokenEmbedding,))
def check_input_layer(cls: Callable[..., nn.Module]) -> CheckResult:
    """cls(vocab_size, d_model, max_len, dropout) -> a module mapping ids (B, T) and an offset to
    dropout(embed(ids) * sqrt(d_model) + PE[offset : offset + T]) (sections 3.4, 3.5, 5.4),
    on fresh sizes: its parameters, its buffer, eval and train outputs, and the length check."""
    g = fresh_generator()
    # (B, T, vocab_size, d_model, max_len, offset): the first trial is the same every time and shows
    # every named mistake; the second ends exactly at max_len
    cases = [(2, 5, 13, 8, 20, 7)]
    for k in range(2):
        B, T, d = _randint(g, 2, 3), _randint(g, 4, 9), 2 * _randint(g, 4, 16)  # B*T*d >= 64
        max_len, vocab = _randint(g, T + 1, 64), _randint(g, 5, 60)
        vocab += vocab == max_len  # so that the table and the embedding differ in shape
        cases.append((B, T, vocab, d, max_len, max_len - T if k == 0 else _randint(g, 1, max_len - T)))

    def trial(B: int, T: int, vocab: int, d: int, max_len: int, offset: int) -> Callable[[], str | None]:
        def run() -> str | None:
            with torch.random.fork_rng():
                torch.manual_seed(_randint(g, 0, 2**31 - 2))
                layer = cls(vocab, d, max_len, dropout=0.5)
            if not isinstance(layer, nn.Module):
                return f"MyInputLayer(...) made a {type(layer).__name__}: subclass nn.Module"
            hint = _layer_structure(layer, vocab, d, max_len)
            if hint:
                return hint
            sizes = f"(vocab_size={vocab}, d_model={d}, max_len={max_len})"
            ids = torch.randint(0, vocab, (B, T), generator=g)  # (B, T)
            layer.eval()
            with torch.no_grad():
                out = layer(ids)
            if not isinstance(out, Tensor) or tuple(out.shape) != (B, T, d):
                return compare(out, torch.zeros(B, T, d), f"the output for ids of shape {(B, T)} {sizes}")
            if out.dtype != torch.float32:
                return (
                    f"a float32 layer gave a {out.dtype} output: store the table in float32, the dtype of "
                    "the embeddings (build it in float64 if you like, then .float())"
                )
            layer.double()  # the buffer must follow the module
            with torch.no_grad():
                got0, again = layer(ids), layer(ids)
                try:
                    got = layer(ids, offset=offset)
                except ValueError as e:
                    return (
                        f"positions {offset}..{offset + T - 1} fit in max_len={max_len}, yet your layer "
                        f"raised ValueError ({_first_line(e)}): raise only when offset + T > max_len"
                    )
            if isinstance(got0, Tensor) and got0.dtype != torch.float64:
                return f"after .double() your output is {got0.dtype}: do not fix the dtype in forward"
            if isinstance(got0, Tensor) and isinstance(again, Tensor) and not torch.equal(got0, again):
                return (
                    "in eval mode your output changes from call to call: use nn.Dropout, which "
                    "model.eval() switches off (or F.dropout(..., training=self.training))"
                )
            emb = next(p for p in layer.parameters()).detach()  # (vocab, d): the only parameter
            es = emb[ids] * math.sqrt(d)  # (B, T, d) the scaled embeddings, float64
            ref = SinusoidalPositionalEncoding(d, max_len).double().eval()
            pe = ref.pe.double()  # (max_len, d)
            for off, y in ((0, got0), (offset, got)):
                expected = ref(es, off)  # (B, T, d)
                y64, rows = _as_f64(y), pe[off : off + T]
                i = torch.arange(0, d, 2, dtype=torch.float64)
                sin, cos = (t[off : off + T] for t in _table(max_len, d, i / d))
                slips = [
                    (
                        emb[ids] + rows,
                        "the embeddings are not multiplied by sqrt(d_model) (section 3.4): "
                        "embed(ids) * math.sqrt(d_model), then add the table",
                    ),
                    (
                        (emb[ids] + rows) * math.sqrt(d),
                        "multiply only the embeddings by sqrt(d_model), then add the table; you scaled the sum",
                    ),
                    (es, "no positions added: add the rows PE[offset : offset + T] of the table"),
                    (
                        es + pe[:T],
                        f"offset={off} ignored: the positions are offset .. offset + T - 1, "
                        "so add the rows PE[offset : offset + T]",
                    ),
                    (
                        es + torch.stack([cos, sin], -1).reshape(T, d),
                        "sin and cos are swapped in your table: even columns 2i hold sin, odd columns 2i+1 cos",
                    ),
                    (
                        es + torch.cat([sin, cos], -1),
                        "your table has all the sines first and all the cosines after; interleave them: "
                        "column 2i is sin, column 2i+1 is cos of the same frequency",
                    ),
                ]
                for wrong in (i / 2 / d, 2 * i / d):  # pair index in place of 2i, or column index for i
                    s, c = (t[off : off + T] for t in _table(max_len, d, wrong))
                    slips.append(
                        (
                            es + torch.stack([s, c], -1).reshape(T, d),
                            "the frequencies of your table are off: pair i uses pos / 10000^(2i / d_model)",
                        )
                    )
                for slip, why in slips:
                    if _is_slip(y64, slip, expected):
                        return why
                hint = compare(
                    y, expected, f"the eval output with offset={off} {sizes}", atol=1e-5, rtol=1e-5
                )
                if hint:
                    return hint
            layer.train()
            with torch.random.fork_rng(), torch.no_grad():
                torch.manual_seed(0)
                t = layer(ids, offset=offset)
            layer.eval()
            hint = compare(t, expected, f"the train-mode output {sizes}", atol=1e9)  # the shape only
            if hint:
                return hint
            v = got.detach().double()  # its own eval output: the right answer up to the table's round-off
            hint = _dropout_hint(t.detach().double(), v, es, v - es)
            if hint:
                return hint
            for off, n in ((0, max_len + 1), (max_len - 1, 2), (max_len, 1)):  # all past the table
                too_long = torch.randint(0, vocab, (B, n), generator=g)
                where = f"positions {off}..{off + n - 1} with max_len={max_len}"
                try:
                    with torch.no_grad():
                        y = layer(too_long, offset=off)
                except NotImplementedError:
                    raise
                except ValueError as e:
                    if "max_len" not in str(e):
                        return f"right to raise ValueError for {where}, but name max_len in the message (yours: {_first_line(e)})"
                    continue
                except Exception as e:
                    return (
                        f"{where} raised {type(e).__name__} ({_first_line(e)}): check offset + T against "
                        "max_len first and raise a ValueError that names max_len"
                    )
                shape = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
                return (
                    f"{where} go past the table, yet your layer returned {shape} without a word (the slice "
                    "of the table came out short): raise a ValueError that names max_len"
                )
            return None

        return run

    return run_trials(
        "input layer",
        [trial(*c) for c in cases],
        "embed(ids) * sqrt(d_model) + PE[offset : offset + T], dropout on the sum, the table a buffer, "
        "and a ValueError past max_len: right on 3 fresh sizes.",
    )


@checker(shift_matrix)
def check_shift_matrix(shift: Callable[[int, int], Tensor]) -> CheckResult:
    """shift(k, d_model) against `course_lib.positional.shift_matrix`, then the property
    M_k PE(pos) = PE(pos + k) for every position, on fresh offsets and widths."""
    g = fresh_generator()
    cases = [(_randint(g, 1, 40), 2 * _randint(g, 2, 16))]  # k > 0 so a sign mistake shows
    cases += [(_randint(g, -30, 60), 2 * _randint(g, 1, 16)) for _ in range(3)]

    def trial(k: int, d: int) -> Callable[[], str | None]:
        def run() -> str | None:
            got = shift(k, d)
            expected = shift_matrix(k, d)
            m = _as_f64(got)
            if m is not None and m.shape == expected.shape and k != 0:
                if _is_slip(m, expected.T, expected, atol=1e-6):
                    return (
                        f"with k={k} your matrix moves PE(pos) to PE(pos - {k}): it is the transpose of "
                        "M_k. In each 2x2 block the new sin is cos(wk)*sin + sin(wk)*cos"
                    )
                if _is_slip(m, torch.eye(d, dtype=torch.float64), expected, atol=1e-6):
                    return f"with k={k} you returned the identity: each pair must rotate by the angle w_i * k"
                slip = _rotations(10000.0 ** (-torch.arange(d // 2, dtype=torch.float64) / d) * k)
                if _is_slip(m, slip, expected, atol=1e-6):
                    return "the frequencies are off: pair i (columns 2i, 2i+1) rotates by k / 10000^(2i / d_model)"
            hint = compare(got, expected, f"shift(k={k}, d_model={d})", atol=1e-6, rtol=1e-5)
            if hint:
                return hint
            pe = sinusoidal_encoding(100 + abs(k), d).double()
            start = max(0, -k)
            moved = pe[start : start + 50] @ m.T  # row-wise M_k @ PE(pos)
            return compare(moved, pe[start + k : start + k + 50], f"M_{k} @ PE(pos)", atol=1e-5)

        return run

    return run_trials(
        "shift matrix",
        [trial(*c) for c in cases],
        "M_k matches on 4 fresh (k, d_model), and M_k PE(pos) = PE(pos + k) at every position tried.",
    )


@checker(apply_rope)
def check_rope(rope: Callable[[Tensor], Tensor]) -> CheckResult:
    """rope(x) for x (..., T, d), positions 0..T-1, against `course_lib.positional.apply_rope`,
    then the relative property q_m . k_n = function of m - n on the learner's own output."""
    g = fresh_generator()
    shapes = [(2, 3, 9, 8)] + [
        (_randint(g, 1, 3), _randint(g, 2, 12), 2 * _randint(g, 1, 16)) for _ in range(3)
    ]

    def trial(shape: tuple[int, ...]) -> Callable[[], str | None]:
        def run() -> str | None:
            x = torch.randn(*shape, generator=g, dtype=torch.float64)
            got = rope(x.clone())
            expected = apply_rope(x)
            y = _as_f64(got)
            T, d = shape[-2], shape[-1]
            if y is not None and y.shape == expected.shape and T > 1:
                pos = torch.arange(T)
                if _is_slip(y, apply_rope(x, -pos), expected, atol=1e-6):
                    return "each pair turns the wrong way: rotate (x_2i, x_2i+1) by +pos·w_i, not -pos·w_i"
                if _is_slip(y, x, expected, atol=1e-6):
                    return "the output equals the input: each pair must be rotated by the angle pos·w_i"
                a = torch.arange(T, dtype=torch.float64)[:, None] * 10000.0 ** (-torch.arange(0, d, 2) / d)
                x1, x2 = x[..., : d // 2], x[..., d // 2 :]  # the "rotate half" pairing (j, j + d/2)
                back = torch.cat([x1 * a.cos() - x2 * a.sin(), x1 * a.sin() + x2 * a.cos()], -1)
                if _is_slip(y, back, expected, atol=1e-6):
                    return (
                        "you paired dimension j with j + d/2 (the 'rotate half' layout some libraries use); "
                        "here pairs are neighbours (2i, 2i+1), as in the sinusoidal encoding"
                    )
            hint = compare(got, expected, f"rope(x of shape {shape})", atol=1e-6, rtol=1e-5)
            if hint:
                return hint
            q = rope(torch.randn(1, d, generator=g, dtype=torch.float64).expand(T, d).clone())
            k = rope(torch.randn(1, d, generator=g, dtype=torch.float64).expand(T, d).clone())
            s = _as_f64(q) @ _as_f64(k).T  # (T, T): q at position m . k at position n
            for off in range(-T + 1, T):
                diag = s.diagonal(off)
                if (diag.max() - diag.min()).abs() > 1e-5:
                    return f"q_m . k_n changes along the offset m - n = {-off}: the scores should depend on the offset only"
            return None

        return run

    return run_trials(
        "RoPE",
        [trial(s) for s in shapes],
        "matches apply_rope on 4 fresh shapes, and your q_m · k_n depends on m - n only.",
    )
