"""Native lmhub encoder-decoders (T5, transformer) behind the Hugging Face API.

:class:`LmhubForConditionalGeneration` wraps a model that has ``encode``/``decode`` (see
:class:`~lmhub.models.encoder_decoder.EncoderDecoderLM`), sharing its parameters: the encoder
adapter calls ``encode``, the decoder adapter ``decode`` with the model's own head, so
``generate()`` (greedy, sampling, beams), ``Trainer`` with ``labels`` (shifted right behind the
decoder start token) and ``save_pretrained``/``from_pretrained`` all run lmhub's forward.

The cache crossing the boundary is transformers' ``EncoderDecoderCache``; the decoder sees it
through :class:`_CacheBridge`, an lmhub :class:`~lmhub.nn.encdec_cache.EncoderDecoderCache` whose
self-attention keys/values and once-computed cross-attention keys/values live in the
transformers cache, so ``generate()``'s beam reordering works unchanged.

Like :mod:`lmhub.hf.adapters.lmhub_model`, this module is copied verbatim into remote-code
exports, so it imports only torch, transformers and small lmhub modules.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from transformers import PretrainedConfig
from transformers.modeling_outputs import (
    BaseModelOutput,
    CausalLMOutputWithPast,
    ModelOutput,
)

from lmhub.hf.adapters.base import (
    HFDecoderAdapter,
    HFEncoderAdapter,
    HFEncoderDecoderModelArchitecture,
)
from lmhub.hf.adapters.heads import ConditionalGenerationLMHeadMixin
from lmhub.hf.adapters.lmhub_model import (
    LmhubDecoderConfig,
    _LmhubMixin,
    _no_embeds,
    _real_mask,
    find_input_embedding,
)
from lmhub.nn.encdec_cache import EncoderDecoderCache


class LmhubSeq2SeqConfig(LmhubDecoderConfig):
    """The Hugging Face config of a wrapped lmhub encoder-decoder."""

    model_type = "lmhub_seq2seq"

    decoder_start_token_id: int | None = None
    is_encoder_decoder: bool = True


class _CacheBridge(EncoderDecoderCache):
    """An lmhub encoder-decoder cache over a transformers ``EncoderDecoderCache`` (or a plain
    ``DynamicCache``, which then holds the self-attention only), for one forward call."""

    def __init__(self, cache: Any) -> None:
        super().__init__()
        self.cache = cache
        self.self_cache = getattr(cache, "self_attention_cache", cache)
        self.cross_cache = getattr(cache, "cross_attention_cache", None)
        self.seq_len = int(self.self_cache.get_seq_length())

    def update(
        self, layer_idx: int, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.self_cache.update(k, v, layer_idx)

    def cross_kv(
        self, layer_idx: int, compute: Callable[[], tuple[torch.Tensor, torch.Tensor]]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.cross_cache is None:
            return compute()
        if self.cache.is_updated.get(layer_idx):
            layer = self.cross_cache.layers[layer_idx]
            return layer.keys, layer.values
        k, v = self.cross_cache.update(*compute(), layer_idx)
        self.cache.is_updated[layer_idx] = True
        return k, v


class LmhubSeq2SeqEncoderAdapter(HFEncoderAdapter):
    """Calls ``model.encode``: the encoder's final hidden states."""

    def _adapt(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> ModelOutput:
        del kwargs
        _no_embeds(inputs_embeds)
        hidden = self.model.encode(input_ids, attention_mask=_real_mask(attention_mask))
        return BaseModelOutput(last_hidden_state=hidden)


class LmhubSeq2SeqDecoderAdapter(HFDecoderAdapter):
    """Calls ``model.decode`` over the encoder states: logits, with a bridged cache."""

    emits_logits = True
    supports_cache = True

    def _adapt(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        past_key_values: Any = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> ModelOutput:
        del kwargs
        _no_embeds(inputs_embeds)
        assert input_ids is not None and encoder_hidden_states is not None
        cache = _CacheBridge(past_key_values) if past_key_values is not None else None
        past = cache.seq_len if cache is not None else 0
        mask = _real_mask(attention_mask)
        if mask is not None and mask.shape[-1] != past + input_ids.shape[1]:
            mask = None  # a mask over the new tokens only says nothing about the cached ones
        logits = self.model.decode(
            input_ids,
            encoder_hidden_states,
            memory_mask=_real_mask(encoder_attention_mask),
            decoder_attention_mask=mask,
            cache=cache,
        )
        return CausalLMOutputWithPast(
            logits=logits, past_key_values=past_key_values if use_cache else None
        )


class LmhubSeq2SeqModel(_LmhubMixin, HFEncoderDecoderModelArchitecture):
    """A wrapped lmhub encoder-decoder: encoder and decoder adapters over one native model."""

    config_class = LmhubSeq2SeqConfig

    def __init__(self, config: PretrainedConfig, model: nn.Module | None = None) -> None:
        native = self._native_or_built(config, model)
        super().__init__(
            config,
            encoder=LmhubSeq2SeqEncoderAdapter(native, config),
            decoder=LmhubSeq2SeqDecoderAdapter(native, config),
            embedding=find_input_embedding(native, getattr(config, "vocab_size", None)),
        )


class LmhubForConditionalGeneration(ConditionalGenerationLMHeadMixin, LmhubSeq2SeqModel):
    """A wrapped lmhub encoder-decoder with its own head: ``generate()`` and ``Trainer``.

    Example:
        >>> hf = to_hf_api(t5_model)
        >>> hf.generate(src_ids, attention_mask=src_mask, max_new_tokens=8, num_beams=3)
    """
