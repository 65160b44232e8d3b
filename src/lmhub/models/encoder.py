"""What every lmhub bidirectional encoder shares around its layers, the counterpart of
:mod:`lmhub.models.decoder`: the token embedding ``embed``, the masked-LM head (a transform
``head``, then the vocabulary projection ``lm_head``, optionally tied to the embedding), and the
calling convention

    ``model(input_ids, attention_mask=None, token_type_ids=None, return_hidden=False)``
    -> masked-LM logits ``[batch, seq, vocab]`` (final hidden states with ``return_hidden``).

It reuses :class:`~lmhub.models.decoder.DecoderLM`'s plumbing (tying, init helpers, building on
meta) rather than repeating it; what differs is that there is no KV cache and the logits pass
through the head's transform first.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from lmhub.models.decoder import DecoderLM


class EncoderLM(DecoderLM):
    """Base class of encoder-only (masked) language models.

    Subclasses create ``self.config`` (with ``tie_embeddings``), ``self.embed``, ``self.head``
    (applied to the final hidden states before ``lm_head``) and ``self.lm_head`` in
    ``__init__``, then call :meth:`finish_init`; their ``forward`` ends with
    ``return x if return_hidden else self.logits(x)``.
    """

    supports_kv_cache: ClassVar[bool] = False

    head: nn.Module

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Masked-LM logits of final hidden states: the head's transform, then ``lm_head``."""
        return self.lm_head(self.head(hidden))
