"""The MDLM denoiser: a bidirectional backbone, optionally conditioned on the noise level."""

from __future__ import annotations

import torch
from torch import nn

from lmhub.data.packing import document_mask
from lmhub.errors import ConfigError
from lmhub.models.decoder import DecoderLM
from lmhub.nn.adaln import AdaLNZero

__all__ = ["MDLMModel"]


class MDLMModel(nn.Module):
    """Predicts the clean tokens of a partly masked sequence, all positions at once.

    The backbone (any lmhub decoder) runs bidirectionally. With ``time_conditioning`` its
    layers are modulated by the total noise ``sigma`` through adaLN-zero
    (:class:`~lmhub.nn.adaln.AdaLNZero`); without, the model ignores ``sigma``, which is valid
    for absorbing-state diffusion (the number of masks already tells the noise level). The
    mask id never comes out: its logit is ``-inf`` (MDLM's "SUBS" parameterisation).

    Example:
        >>> model = MDLMModel(backbone, mask_token_id=259)  # doctest: +SKIP
        >>> model(ids, sigma=torch.tensor([0.7])).shape  # doctest: +SKIP
        torch.Size([1, 12, 260])
    """

    def __init__(
        self,
        backbone: DecoderLM,
        *,
        mask_token_id: int,
        time_conditioning: bool = True,
        cond_dim: int = 128,
    ) -> None:
        super().__init__()
        vocab = backbone.lm_head.out_features
        if not 0 <= mask_token_id < vocab:
            raise ConfigError(
                f"The mask token id {mask_token_id} is outside the model's vocabulary of {vocab} "
                f"ids. Give the model room for it (model_config.vocab_size={mask_token_id + 1}).",
                field="model_config.vocab_size",
                value=vocab,
            )
        self.mask_token_id = mask_token_id
        self.backbone = backbone
        self.conditioning = AdaLNZero(backbone, cond_dim=cond_dim) if time_conditioning else None
        """The adaLN-zero modules (the LM type's extra modules), or ``None``."""

    @property
    def time_conditioning(self) -> bool:
        """Whether the layers are conditioned on ``sigma``."""
        return self.conditioning is not None

    def forward(
        self,
        input_ids: torch.Tensor,
        *,
        sigma: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        document_ids: torch.Tensor | None = None,
        return_hidden: bool = False,
    ) -> torch.Tensor:
        """Logits ``[batch, seq, vocab]`` (mask id at ``-inf``), or the final hidden states."""
        mask = attention_mask
        if document_ids is not None:
            mask = document_mask(document_ids, causal=False)
        elif mask is not None and bool(mask.all()):
            mask = None  # no padding: skip building a mask
        kwargs = {"attention_mask": mask, "position_ids": position_ids, "return_hidden": True}
        if self.conditioning is not None:
            hidden = self.conditioning(input_ids, sigma=sigma, causal=False, **kwargs)
        else:
            hidden = self.backbone(input_ids, causal=False, **kwargs)
        return hidden if return_hidden else self.logits(hidden)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Vocabulary logits of final hidden states, float32, with the mask id at ``-inf``."""
        logits = self.backbone.logits(hidden).float()
        never = torch.tensor([self.mask_token_id], device=logits.device)
        return logits.index_fill(-1, never, float("-inf"))
