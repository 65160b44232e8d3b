"""The ILM network: a bidirectional backbone scoring (gap, token) insertions, a stop head, and a
segment embedding that tells the fixed prompt from the growing target."""

from __future__ import annotations

from typing import Any

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

    With ``segment_embedding`` a learned vector per segment (0: CLS and prompt, 1: the open
    part, from the separator on) is added to the token embeddings through a forward hook on
    the backbone's ``embed`` (the family is not edited). The families' relative positions
    (RoPE, ALiBi) do not say where the prompt ends, and to know what is missing the model must
    compare the target's tokens with the prompt's. With ``position_embedding`` a learned vector
    per absolute position (the first ``max_positions``; later ones share the last) is added the
    same way: RoPE puts no position in the residual stream, so attention could not carry a
    prompt token's place to the target token matching it (what reversal needs). The vectors
    start at zero, so a pretrained backbone starts with its own function.

    The added modules are in :attr:`extra` (the LM type's extra modules, saved beside the
    backbone).

    Example:
        >>> model = ILMModel(backbone, cls_token_id=259)  # doctest: +SKIP
        >>> logits, stop = model(ids, insert_mask=insert_mask)  # doctest: +SKIP
    """

    def __init__(
        self,
        backbone: DecoderLM,
        *,
        cls_token_id: int,
        stop_head: bool = True,
        segment_embedding: bool = True,
        position_embedding: bool = True,
        max_positions: int = 512,
    ) -> None:
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
        dim = backbone.lm_head.in_features
        self.extra = nn.ModuleDict()
        """The modules ILM adds: ``stop_head`` and ``segment_embedding``, where enabled."""
        if stop_head:
            self.extra["stop_head"] = CLSHead(dim)
        if segment_embedding:
            self.extra["segment_embedding"] = _zeros_embedding(2, dim)
        if position_embedding:
            self.extra["position_embedding"] = _zeros_embedding(max_positions, dim)
        if segment_embedding or position_embedding:
            backbone.embed.register_forward_hook(self._add_segments)
        self._segments: torch.Tensor | None = None
        """The segment ids of the current call, read by the embedding hook."""

    @property
    def stop_head(self) -> CLSHead | None:
        """The stop head, or ``None``."""
        return getattr(self.extra, "stop_head", None)

    @property
    def segment_embedding(self) -> nn.Embedding | None:
        """The segment embedding, or ``None``."""
        return getattr(self.extra, "segment_embedding", None)

    @property
    def position_embedding(self) -> nn.Embedding | None:
        """The absolute position embedding, or ``None``."""
        return getattr(self.extra, "position_embedding", None)

    def _add_segments(self, module: nn.Module, args: Any, output: torch.Tensor) -> Any:
        if self._segments is None:
            return None
        if self.segment_embedding is not None:
            output = output + self.segment_embedding(self._segments).to(output.dtype)
        if self.position_embedding is not None:
            last = self.position_embedding.num_embeddings - 1
            positions = torch.arange(output.shape[1], device=output.device).clamp(max=last)
            output = output + self.position_embedding(positions).to(output.dtype)
        return output

    def forward(
        self,
        input_ids: torch.Tensor,
        *,
        attention_mask: torch.Tensor | None = None,
        insert_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Return the insertion logits ``[batch, seq, vocab]`` (float32) and the stop logits
        ``[batch]`` (``None`` without a stop head). ``insert_mask`` (1 at the open gaps: the
        separator and the target) gives the segments; ``None`` puts every token in the
        prompt's."""
        mask = None if attention_mask is None or bool(attention_mask.all()) else attention_mask
        segments = torch.zeros_like(input_ids) if insert_mask is None else insert_mask.long()
        self._segments = segments.clamp(0, 1)
        try:
            hidden = self.backbone(input_ids, attention_mask=mask, return_hidden=True, causal=False)
        finally:
            self._segments = None
        logits = self.backbone.logits(hidden).float()
        stop = None if self.stop_head is None else self.stop_head(hidden)[:, 0].float()
        return logits, stop


def _zeros_embedding(num: int, dim: int) -> nn.Embedding:
    embedding = nn.Embedding(num, dim)
    nn.init.zeros_(embedding.weight)
    return embedding
