"""What every lmhub encoder-decoder shares: ``encode`` the source once, ``decode`` target tokens
over it (with an :class:`~lmhub.nn.encdec_cache.EncoderDecoderCache` for generation), and a
``forward`` that does both and returns the decoder's logits.

The decoder's token embedding ``embed`` and output projection ``lm_head`` (optionally tied)
are those of :class:`~lmhub.models.decoder.DecoderLM`, whose tying, init and ``logits`` step
are reused.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from lmhub.errors import ConfigError
from lmhub.models.decoder import DecoderLM
from lmhub.nn.kv_cache import KVCache


def shift_right(labels: torch.Tensor, *, start_token_id: int, pad_token_id: int) -> torch.Tensor:
    """Return decoder inputs for teacher forcing: ``labels`` moved one step right behind the
    decoder start token, with ignored positions (``-100``) read as padding.

    Example:
        >>> shift_right(torch.tensor([[5, 6, -100]]), start_token_id=0, pad_token_id=0)
        tensor([[0, 5, 6]])
    """
    out = labels.new_full(labels.shape, start_token_id)
    out[:, 1:] = labels[:, :-1]
    return out.masked_fill(out == -100, pad_token_id)


class EncoderDecoderLM(DecoderLM):
    """Base class of encoder-decoder language models.

    Subclasses build ``embed``/``lm_head`` (and their stacks) then call :meth:`finish_init`,
    and implement :meth:`encode` and :meth:`decode`. The config must have
    ``decoder_start_token_id`` and ``pad_token_id``.

    Example:
        >>> memory = model.encode(src_ids, attention_mask=src_mask)
        >>> logits = model.decode(tgt_ids, memory, memory_mask=src_mask)
        >>> torch.equal(logits, model(src_ids, decoder_input_ids=tgt_ids, attention_mask=src_mask))
        True
    """

    is_encoder_decoder: ClassVar[bool] = True
    """Lets generation and training tell encoder-decoders apart without importing them."""

    def encode(
        self, input_ids: torch.Tensor, *, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Return the encoder output ``[batch, src, model_dim]`` for source ids ``[batch, src]``
        (``attention_mask``: 1 for real tokens, 0 for padding, either side)."""
        raise NotImplementedError

    def decode(
        self,
        decoder_input_ids: torch.Tensor,
        memory: torch.Tensor,
        *,
        memory_mask: torch.Tensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
        return_hidden: bool = False,
    ) -> torch.Tensor:
        """Return logits ``[batch, tgt, vocab]`` of target ids ``[batch, tgt]`` over ``memory``.

        Args:
            memory_mask: the source's ``[batch, src]`` padding mask given to :meth:`encode`.
            decoder_attention_mask: ``[batch, cached + tgt]``, 0 for (right) target padding.
            cache: an :class:`~lmhub.nn.encdec_cache.EncoderDecoderCache` to read from and
                append to (incremental decoding: only the new target ids are passed).
            return_hidden: return the decoder's final hidden states instead of logits.
        """
        raise NotImplementedError

    def forward(
        self,
        input_ids: torch.Tensor,
        decoder_input_ids: torch.Tensor | None = None,
        *,
        attention_mask: torch.Tensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        return_hidden: bool = False,
    ) -> torch.Tensor:
        """Encode ``input_ids`` and return the decoder logits ``[batch, tgt, vocab]``.

        The decoder reads ``decoder_input_ids``, or ``labels`` shifted right (see
        :func:`shift_right`) when only those are given.

        Raises:
            ConfigError: when neither ``decoder_input_ids`` nor ``labels`` is given.
        """
        if decoder_input_ids is None:
            if labels is None:
                raise ConfigError(
                    f"{type(self).__name__} is an encoder-decoder: pass decoder_input_ids (the "
                    "target tokens the decoder reads) or labels (shifted right for it).",
                    field="decoder_input_ids",
                    value=None,
                )
            decoder_input_ids = self.shift_right(labels)
        memory = self.encode(input_ids, attention_mask=attention_mask)
        return self.decode(
            decoder_input_ids,
            memory,
            memory_mask=attention_mask,
            decoder_attention_mask=decoder_attention_mask,
            return_hidden=return_hidden,
        )

    def shift_right(self, labels: torch.Tensor) -> torch.Tensor:
        """:func:`shift_right` with this model's decoder start and padding ids."""
        pad = self.config.pad_token_id
        start = self.config.decoder_start_token_id
        return shift_right(labels, start_token_id=start, pad_token_id=0 if pad is None else pad)


def memory_mask_of(padding_mask: torch.Tensor | None) -> torch.Tensor | None:
    """The boolean key mask ``[batch, 1, 1, src]`` of a ``[batch, src]`` source padding mask."""
    return None if padding_mask is None else padding_mask.bool()[:, None, None, :]
