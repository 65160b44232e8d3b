"""The ILM network: a bidirectional backbone scoring (gap, token) insertions, and a stop head."""

from __future__ import annotations

import torch
from torch import nn

from lmhub.errors import ConfigError
from lmhub.models.decoder import DecoderLM
from lmhub.nn.cls_head import CLSHead

__all__ = ["ILMModel"]


class ILMModel(nn.Module):
    """Scores inserting each vocabulary token into the gap right of each position.

    The backbone (any lmhub decoder) runs bidirectionally; its vocabulary logits at position
    ``j`` score the tokens for gap ``j``, and the stop head (a :class:`~lmhub.nn.cls_head.CLSHead`
    on the CLS token at position 0) gives the logit that nothing is missing. ``stop_head=False``
    leaves it out: generation then runs to its length limit.

    Example:
        >>> model = ILMModel(backbone, cls_token_id=259)  # doctest: +SKIP
        >>> logits, stop = model(ids)  # doctest: +SKIP
    """

    def __init__(self, backbone: DecoderLM, *, cls_token_id: int, stop_head: bool = True) -> None:
        super().__init__()
        vocab = backbone.lm_head.out_features
        if not 0 <= cls_token_id < vocab:
            raise ConfigError(
                f"The CLS token id {cls_token_id} is outside the model's vocabulary of {vocab} "
                f"ids. Give the model room for it (model_config.vocab_size={cls_token_id + 1}).",
                field="model_config.vocab_size",
                value=vocab,
            )
        self.backbone = backbone
        self.cls_token_id = cls_token_id
        self.stop_head = CLSHead(backbone.lm_head.in_features) if stop_head else None

    def forward(
        self, input_ids: torch.Tensor, *, attention_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Return the insertion logits ``[batch, seq, vocab]`` (float32) and the stop logits
        ``[batch]`` (``None`` without a stop head)."""
        mask = None if attention_mask is None or bool(attention_mask.all()) else attention_mask
        hidden = self.backbone(input_ids, attention_mask=mask, return_hidden=True, causal=False)
        logits = self.backbone.logits(hidden).float()
        stop = None if self.stop_head is None else self.stop_head(hidden)[:, 0].float()
        return logits, stop
