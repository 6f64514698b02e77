import torch

from course_lib.exercises.lesson07 import (
    check_causal_mask,
    check_decoder_mask,
    check_masked_softmax,
    masked_softmax,
)
from course_lib.masks import causal_mask, padding_mask


def test_causal_mask_checker():
    assert check_causal_mask(lambda T: torch.ones(T, T, dtype=torch.bool).tril())
    res = check_causal_mask(causal_mask)
    assert not res and "the library's causal_mask: write it yourself" in res.message
    res = check_causal_mask(lambda T: causal_mask(T))
    assert not res and "causal_mask: write it yourself" in res.message
    res = check_causal_mask(lambda T: torch.ones(T, T, dtype=torch.bool).triu())
    assert not res and "lower triangle" in res.message
    res = check_causal_mask(lambda T: torch.ones(T, T).tril())
    assert not res and "boolean" in res.message
    res = check_causal_mask(lambda T: ~torch.ones(T, T, dtype=torch.bool).tril())
    assert not res and "inverted" in res.message
    res = check_causal_mask(lambda T: torch.ones(T, T, dtype=torch.bool).tril(-1))
    assert not res and "diagonal" in res.message
    res = check_causal_mask(lambda T: torch.ones(T + 1, T + 1, dtype=torch.bool).tril())
    assert not res and "shape" in res.message


def test_decoder_mask_checker():
    assert check_decoder_mask(lambda ids, p: padding_mask(ids, p) & causal_mask(ids.size(1)))
    res = check_decoder_mask(lambda ids, p: causal_mask(ids.size(1)).expand(ids.size(0), 1, -1, -1))
    assert not res and "padding keys" in res.message
    res = check_decoder_mask(lambda ids, p: padding_mask(ids, p).expand(-1, 1, ids.size(1), -1))
    assert not res and "causal part is missing" in res.message
    res = check_decoder_mask(lambda ids, p: (padding_mask(ids, p) & causal_mask(ids.size(1)))[:, 0])
    assert not res and "(B, 1, T, T)" in res.message
    res = check_decoder_mask(lambda ids, p: (ids != p)[:, None, :, None] & causal_mask(ids.size(1)))
    assert not res and "keys" in res.message
    res = check_decoder_mask(lambda ids, p: ~(padding_mask(ids, p) & causal_mask(ids.size(1))))
    assert not res and "inverted" in res.message


def test_masked_softmax_reference():
    scores = torch.randn(2, 3, 4, dtype=torch.float64)
    mask = torch.tensor([[True, True, False, False], [False] * 4, [True] * 4])
    w = masked_softmax(scores, mask.expand(2, 3, 4))
    assert not torch.isnan(w).any()
    assert torch.equal(w[:, 1], torch.zeros(2, 4, dtype=torch.float64))  # fully masked row: all 0
    assert torch.allclose(w[:, 0].sum(-1), torch.ones(2, dtype=torch.float64))
    assert torch.allclose(w[:, 2], scores[:, 2].softmax(-1))
    assert (w[:, 0, 2:] == 0).all()


def test_masked_softmax_checker():
    good = lambda s, m: s.masked_fill(~m, float("-inf")).softmax(-1).nan_to_num(0.0)
    assert check_masked_softmax(good)
    res = check_masked_softmax(lambda s, m: s.masked_fill(~m, float("-inf")).softmax(-1))
    assert not res and "NaN" in res.message
    res = check_masked_softmax(lambda s, m: s.masked_fill(~m, -1e9).softmax(-1))
    assert not res and "fully masked row" in res.message
    res = check_masked_softmax(lambda s, m: s.masked_fill(m, float("-inf")).softmax(-1).nan_to_num(0.0))
    assert not res and "wrong way round" in res.message
    res = check_masked_softmax(lambda s, m: s.softmax(-1))
    assert not res and "-inf" in res.message
