import pytest
import torch

from course_lib import MultiHeadAttention, Transformer, TransformerConfig, causal_mask
from course_lib.attention import scaled_dot_product_attention


def test_d_model_not_divisible():
    with pytest.raises(ValueError, match="not divisible by n_heads"):
        MultiHeadAttention(10, 3)
    with pytest.raises(ValueError, match="not divisible by n_heads"):
        TransformerConfig(10, d_model=10, n_heads=4)


def test_mismatched_shapes():
    mha = MultiHeadAttention(8, 2)
    with pytest.raises(ValueError, match="last dimension d_model=8"):
        mha(torch.randn(2, 3, 6))
    with pytest.raises(ValueError, match="key and value must have the same shape"):
        mha(torch.randn(2, 3, 8), torch.randn(2, 4, 8), torch.randn(2, 5, 8))
    with pytest.raises(ValueError, match="share their last dimension"):
        scaled_dot_product_attention(torch.randn(3, 4), torch.randn(5, 6), torch.randn(5, 6))
    with pytest.raises(ValueError, match="must have 3 dimensions"):
        mha(torch.randn(3, 8))


def test_mask_that_does_not_broadcast():
    mha = MultiHeadAttention(8, 2)
    with pytest.raises(ValueError, match=r"does not broadcast to \(B, h, T_q, T_k\)"):
        mha(torch.randn(2, 3, 8), mask=causal_mask(4))
    with pytest.raises(ValueError, match="must be a boolean tensor"):
        mha(torch.randn(2, 3, 8), mask=torch.ones(3, 3))


def test_empty_sequence():
    mha = MultiHeadAttention(8, 2)
    with pytest.raises(ValueError, match="empty sequence"):
        mha(torch.randn(2, 0, 8))
    m = Transformer(
        TransformerConfig(10, d_model=8, n_heads=2, d_ff=16, n_encoder_layers=1, n_decoder_layers=1)
    )
    with pytest.raises(ValueError, match="empty sequence"):
        m(torch.zeros(1, 0, dtype=torch.long), torch.ones(1, 2, dtype=torch.long))


def test_token_ids_outside_vocabulary():
    m = Transformer(
        TransformerConfig(10, 7, d_model=8, n_heads=2, d_ff=16, n_encoder_layers=1, n_decoder_layers=1)
    )
    with pytest.raises(
        ValueError, match=r"src holds token ids outside the vocabulary: expected ids in \[0, 9\]"
    ):
        m(torch.tensor([[1, 2, 10]]), torch.tensor([[1]]))
    with pytest.raises(
        ValueError, match=r"tgt holds token ids outside the vocabulary: expected ids in \[0, 6\]"
    ):
        m(torch.tensor([[1, 2]]), torch.tensor([[1, 7]]))
    with pytest.raises(ValueError, match="integer token ids"):
        m(torch.tensor([[1.0, 2.0]]), torch.tensor([[1]]))


def test_sequence_longer_than_max_len():
    m = Transformer(
        TransformerConfig(
            10, d_model=8, n_heads=2, d_ff=16, n_encoder_layers=1, n_decoder_layers=1, max_len=4
        )
    )
    with pytest.raises(ValueError, match="max_len=4"):
        m(torch.ones(1, 6, dtype=torch.long), torch.ones(1, 2, dtype=torch.long))
