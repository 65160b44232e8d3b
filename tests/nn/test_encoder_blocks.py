"""The shared encoder block: the masked-LM head transform (the encoders' masks are
build_attention_mask's, tested in test_masks.py)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lmhub.nn.encoder import MaskedLMHeadTransform


def test_the_head_transform_is_dense_then_activation_then_norm() -> None:
    torch.manual_seed(0)
    head = MaskedLMHeadTransform(16, activation="gelu", eps=1e-12, bias=False, norm_bias=False)
    assert head.dense.bias is None and head.norm.bias is None
    x = torch.randn(2, 3, 16)
    want = F.layer_norm(F.gelu(x @ head.dense.weight.T), (16,), head.norm.weight, eps=1e-12)
    assert torch.allclose(head(x), want, atol=1e-6)
