"""Attention masks, in the course's one convention: boolean, ``True`` = "may attend".

Shapes are chosen to broadcast against the scores (B, h, T_q, T_k):
  causal_mask(T)          -> (T, T)           query i may see keys 0..i
  causal_mask(T, offset)  -> (T, offset + T)  the same after `offset` cached keys
  padding_mask(ids, pad)  -> (B, 1, 1, T_k)   no query may see a padding key
  combine_masks(a, b)     -> a & b            both conditions at once

torch's own modules use the opposite convention in some places (``key_padding_mask``
and boolean ``attn_mask`` of ``nn.MultiheadAttention`` mean True = "blocked"); convert
at that boundary with `to_torch_attn_mask` / `to_key_padding_mask`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .validate import check_bool_mask, check_int, check_masks, check_offset, check_pad_id, check_tensor


def causal_mask(T: int, device: torch.device | str | None = None, offset: int = 0) -> Tensor:
    """(T, offset + T) lower-triangular: query i may attend to keys j <= offset + i (section 3.2.3).

    offset = 0 gives the usual (T, T) mask; with a KV cache holding `offset` earlier keys,
    the T new queries also see every cached key."""
    check_int(T, "T", 1, why=" (the sequence length)")
    check_offset(offset)  # the number of cached keys before the T new queries
    return torch.ones(T, offset + T, dtype=torch.bool, device=device).tril(offset)


def padding_mask(ids: Tensor, pad_id: int) -> Tensor:
    """(B, T) token ids -> (B, 1, 1, T): True where the key is a real token, not padding."""
    check_tensor(ids, "ids", ndim=2)
    check_pad_id(pad_id)
    return (ids != pad_id)[:, None, None, :]


def combine_masks(*masks: Tensor | None) -> Tensor | None:
    """Logical AND of any number of broadcastable masks (None entries are skipped)."""
    out = None
    for m in check_masks(masks):  # boolean tensors whose shapes broadcast together, None left out
        out = m if out is None else out & m
    return out


def decoder_mask(tgt_ids: Tensor, pad_id: int) -> Tensor:
    """(B, T) target ids -> (B, 1, T, T): causal and no padding keys."""
    return combine_masks(padding_mask(tgt_ids, pad_id), causal_mask(tgt_ids.size(1), tgt_ids.device))


def to_torch_attn_mask(mask: Tensor) -> Tensor:
    """Course mask (True = may attend) -> torch ``nn.MultiheadAttention`` boolean attn_mask
    (True = *not* allowed)."""
    return ~check_bool_mask(mask)


def to_key_padding_mask(ids: Tensor, pad_id: int) -> Tensor:
    """(B, T) ids -> torch ``key_padding_mask`` (B, T), True = padding, to be ignored."""
    check_tensor(ids, "ids", ndim=2)
    check_pad_id(pad_id)
    return ids == pad_id
