import pytest
import torch

from course_lib import DecoderLayer, EncoderLayer, LayerNorm, causal_mask, padding_mask
from course_lib.attention import copy_mha_to_torch

D = torch.float64


def _copy_ln(ours, theirs):
    theirs.weight.copy_(ours.gamma)
    theirs.bias.copy_(ours.beta)


def _copy_common(ours, theirs, norms):
    with torch.no_grad():
        theirs.linear1.weight.copy_(ours.ff.w_1.weight)
        theirs.linear1.bias.copy_(ours.ff.w_1.bias)
        theirs.linear2.weight.copy_(ours.ff.w_2.weight)
        theirs.linear2.bias.copy_(ours.ff.w_2.bias)
        for i in range(1, norms + 1):
            _copy_ln(getattr(ours, f"norm{i}"), getattr(theirs, f"norm{i}"))
    copy_mha_to_torch(ours.self_attn, theirs.self_attn)


def _perturb_norms(layer, gen):
    with torch.no_grad():
        for m in layer.modules():
            if isinstance(m, LayerNorm):
                m.gamma.add_(0.1 * torch.randn(m.gamma.shape, generator=gen, dtype=D))
                m.beta.add_(0.1 * torch.randn(m.beta.shape, generator=gen, dtype=D))


@pytest.mark.parametrize("fused", [False, True])
def test_layernorm_matches_torch(gen, fused):
    ours = LayerNorm(12, fused=fused).double()
    _perturb_norms(ours, gen)
    ref = torch.nn.LayerNorm(12).double()
    with torch.no_grad():
        _copy_ln(ours, ref)
    x = 3 * torch.randn(4, 5, 12, generator=gen, dtype=D) + 2
    assert (ours(x) - ref(x)).abs().max() < 1e-12


def test_layernorm_gradcheck(gen):
    ln = LayerNorm(6, fused=False).double()
    x = torch.randn(3, 6, generator=gen, dtype=D, requires_grad=True)
    assert torch.autograd.gradcheck(ln, (x,))


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_layer_matches_torch(gen, norm_first):
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
    ours = EncoderLayer(16, 4, 32, dropout=0.0, norm_first=norm_first).double().eval()
    _perturb_norms(ours, gen)
    theirs = (
        torch.nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, batch_first=True, norm_first=norm_first)
        .double()
        .eval()
    )
    _copy_common(ours, theirs, 2)
    x = torch.randn(3, 7, 16, generator=gen, dtype=D)
    ids = torch.tensor([[1] * 7, [1] * 5 + [0] * 2, [1] * 3 + [0] * 4])
    y = ours(x, padding_mask(ids, 0))
    ref = theirs(x, src_key_padding_mask=ids == 0)
    assert (y - ref)[ids != 0].abs().max() < 1e-10  # torch's fast path zeroes padded rows; compare real ones


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_layer_matches_torch(gen, norm_first):
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
    ours = DecoderLayer(16, 4, 32, dropout=0.0, norm_first=norm_first).double().eval()
    _perturb_norms(ours, gen)
    theirs = (
        torch.nn.TransformerDecoderLayer(16, 4, 32, dropout=0.0, batch_first=True, norm_first=norm_first)
        .double()
        .eval()
    )
    _copy_common(ours, theirs, 3)
    copy_mha_to_torch(ours.cross_attn, theirs.multihead_attn)
    x, mem = torch.randn(2, 5, 16, generator=gen, dtype=D), torch.randn(2, 8, 16, generator=gen, dtype=D)
    src = torch.tensor([[1] * 8, [1] * 6 + [0] * 2])
    y = ours(x, mem, causal_mask(5), padding_mask(src, 0))
    ref = theirs(x, mem, tgt_mask=~causal_mask(5), memory_key_padding_mask=src == 0)
    assert (y - ref).abs().max() < 1e-10
