"""The shared encoder blocks: the bidirectional (windowed) key-padding mask and the masked-LM
head transform."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lmhub.nn.encoder import MaskedLMHeadTransform, bidirectional_mask


def test_no_padding_and_no_window_needs_no_mask() -> None:
    assert bidirectional_mask(seq_len=5) is None
    assert bidirectional_mask(seq_len=5, window=4) is None  # the window covers everything


def test_padding_hides_padded_keys_from_every_query() -> None:
    mask = bidirectional_mask(seq_len=4, padding_mask=torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]]))
    assert mask is not None and mask.shape == (2, 1, 1, 4)  # broadcast over queries
    full = mask.expand(2, 1, 4, 4)
    assert full[0, 0].tolist() == [[True, True, True, False]] * 4
    assert full[1].all()


@pytest.mark.parametrize(("seq", "window"), [(7, 1), (9, 3), (6, 2)])
def test_the_window_is_symmetric_and_inclusive(seq: int, window: int) -> None:
    mask = bidirectional_mask(seq_len=seq, window=window)
    assert mask is not None
    for i in range(seq):
        for j in range(seq):
            assert bool(mask[0, 0, i, j]) == (abs(i - j) <= window)


def test_a_query_that_sees_nothing_sees_everything_instead() -> None:
    # Padding far from every real token in a local layer: no key is both near and real.
    padding = torch.tensor([[1, 0, 0, 0, 0, 0]])
    mask = bidirectional_mask(seq_len=6, padding_mask=padding, window=1)
    assert mask is not None
    assert mask[0, 0, 5].all()  # opened up, so its softmax stays finite
    assert mask[0, 0, 1].tolist() == [True, False, False, False, False, False]


def test_a_mask_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(ValueError, match="covers 3 positions"):
        bidirectional_mask(seq_len=4, padding_mask=torch.ones(1, 3))


def test_the_head_transform_is_dense_then_activation_then_norm() -> None:
    torch.manual_seed(0)
    head = MaskedLMHeadTransform(16, activation="gelu", eps=1e-12, bias=False, norm_bias=False)
    assert head.dense.bias is None and head.norm.bias is None
    x = torch.randn(2, 3, 16)
    want = F.layer_norm(F.gelu(x @ head.dense.weight.T), (16,), head.norm.weight, eps=1e-12)
    assert torch.allclose(head(x), want, atol=1e-6)
