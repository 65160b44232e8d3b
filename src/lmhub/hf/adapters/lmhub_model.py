"""Native lmhub models behind the Hugging Face API: the one set of transformers classes.

Any model that follows the lmhub calling convention (``model(input_ids, *, attention_mask=,
position_ids=, cache=, return_hidden=) -> logits``) is wrapped, not copied: the classes share its
parameters. Decoders get a causal-LM head (the model's own output projection: the adapter asks it
for logits), encoders a masked-LM head (likewise); both can take a fresh sequence-classification
head over the final hidden states instead. State-dict keys are the native ones under
``decoder.model.`` / ``encoder.model.``.

The same classes serve two places, so both run one forward, one cache and one loss:

* in process, :func:`lmhub.hf.to_hf_api` wraps a model; its config (``model_type``
  ``lmhub_decoder`` / ``lmhub_encoder``) records the family and the whole lmhub config, so
  ``save_pretrained`` + ``from_pretrained`` (and, after :func:`lmhub.hf.register`, the Auto classes)
  rebuild the model through the family registry;
* a remote-code export (:func:`lmhub.hf.export`) carries a verbatim copy of this module and of the
  lmhub modules it imports (imports rewritten, see :mod:`lmhub.hf.remote_code`). Its generated
  ``modeling_*.py`` subclasses :class:`LmhubForCausalLM` only to name the config class, the lmhub
  config dataclass and the builder (:attr:`~_LmhubMixin.lmhub_config_class`,
  :attr:`~_LmhubMixin.lmhub_builder`). So this module imports nothing but torch, transformers and a
  few small lmhub modules.

KV cache: the cache that crosses the Hugging Face boundary is always a transformers ``Cache``
(``DynamicCache`` by default, whatever ``generate()`` or the caller hands in). The lmhub model gets
an :class:`~lmhub.nn.kv_cache.ExternalCacheBridge` over it, an lmhub ``KVCache`` whose ``update``
writes into the transformers cache, so ``generate()``'s own bookkeeping (beam reordering, cropping,
``get_seq_length``) works unchanged and ``outputs.past_key_values`` is the object the caller
passed in. Families whose class sets ``supports_kv_cache = False`` are re-run over the whole
sequence at every generation step instead.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import nn
from transformers import PretrainedConfig
from transformers.modeling_outputs import (
    BaseModelOutput,
    BaseModelOutputWithPast,
    CausalLMOutputWithPast,
    MaskedLMOutput,
    ModelOutput,
)

from lmhub.config import from_dict
from lmhub.errors import ConfigError
from lmhub.hf.adapters.base import (
    HFDecoderAdapter,
    HFDecoderModelArchitecture,
    HFEncoderAdapter,
    HFEncoderModelArchitecture,
)
from lmhub.hf.adapters.heads import (
    CausalLMHeadMixin,
    MaskedLMHeadMixin,
    SequenceClassificationLMHeadMixin,
)
from lmhub.models.registry import get_family
from lmhub.nn.kv_cache import ExternalCacheBridge
from lmhub.nn.masks import positions_from_padding

# -- configs ----------------------------------------------------------------------------------


class LmhubDecoderConfig(PretrainedConfig):
    """The Hugging Face config of a wrapped lmhub decoder: the family plus its whole config."""

    model_type = "lmhub_decoder"

    family: str = ""
    lmhub_config: dict[str, Any] | None = None
    vocab_size: int | None = None
    hidden_size: int | None = None
    num_hidden_layers: int | None = None
    initializer_range: float = 0.02
    use_cache: bool = True
    tie_word_embeddings: bool = False
    pad_token_id: int | None = None
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = None


class LmhubEncoderConfig(LmhubDecoderConfig):
    """The Hugging Face config of a wrapped lmhub encoder."""

    model_type = "lmhub_encoder"

    use_cache: bool = False


# -- adapters ---------------------------------------------------------------------------------


def _real_mask(attention_mask: torch.Tensor | None) -> torch.Tensor | None:
    # An all-ones mask carries no information; dropping it lets the kernel use its causal path.
    if attention_mask is None or bool(attention_mask.all()):
        return None
    return attention_mask


def _no_embeds(inputs_embeds: torch.Tensor | None) -> None:
    if inputs_embeds is not None:
        raise ValueError("lmhub models take input_ids, not inputs_embeds. Pass token ids instead.")


class LmhubDecoderAdapter(HFDecoderAdapter):
    """Calls a native lmhub decoder; logits or final hidden states, with a bridged KV cache."""

    def __init__(self, model: nn.Module, config: PretrainedConfig, *, emits_logits: bool) -> None:
        super().__init__(model, config)
        self.emits_logits = emits_logits
        self.supports_cache = bool(getattr(type(model), "supports_kv_cache", False))

    def _adapt(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        past_key_values: Any = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        **kwargs: Any,
    ) -> ModelOutput:
        del kwargs  # output_attentions/output_hidden_states are not supported; ignored
        _no_embeds(inputs_embeds)
        assert input_ids is not None
        if attention_mask is not None and position_ids is None:
            # Left padding: count positions over real tokens only, as generate() does.
            position_ids = positions_from_padding(attention_mask)[:, -input_ids.shape[1] :]
        cache = ExternalCacheBridge(past_key_values) if past_key_values is not None else None
        out = self.model(
            input_ids,
            attention_mask=_real_mask(attention_mask),
            position_ids=position_ids,
            cache=cache,
            return_hidden=not self.emits_logits,
        )
        kept = past_key_values if use_cache else None
        if self.emits_logits:
            return CausalLMOutputWithPast(logits=out, past_key_values=kept)
        return BaseModelOutputWithPast(last_hidden_state=out, past_key_values=kept)


class LmhubEncoderAdapter(HFEncoderAdapter):
    """Calls a native lmhub encoder; logits or final hidden states."""

    def __init__(self, model: nn.Module, config: PretrainedConfig, *, emits_logits: bool) -> None:
        super().__init__(model, config)
        self.emits_logits = emits_logits

    def _adapt(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> ModelOutput:
        del kwargs
        _no_embeds(inputs_embeds)
        # Segment ids (BERT's tokenizers always send them) reach encoders that take them; an
        # all-zero tensor is every encoder's default, so it is left out for those that do not.
        extra = {}
        if token_type_ids is not None and bool(token_type_ids.any()):
            extra["token_type_ids"] = token_type_ids
        out = self.model(
            input_ids,
            attention_mask=_real_mask(attention_mask),
            position_ids=position_ids,
            return_hidden=not self.emits_logits,
            **extra,
        )
        if self.emits_logits:
            return MaskedLMOutput(logits=out)
        return BaseModelOutput(last_hidden_state=out)


# -- building the native model from the HF config ---------------------------------------------


def _native_from_family(config: PretrainedConfig) -> nn.Module:
    """Rebuild a model from an :class:`LmhubDecoderConfig`: its family's builder, its config."""
    family_name = getattr(config, "family", "")
    if not family_name:
        raise ConfigError(
            "This config names no lmhub model family, so the model cannot be rebuilt from it. "
            "Register the family (lmhub.register_family) and wrap the model with "
            "to_hf_api(model, family=...) before saving.",
            field="family",
        )
    family = get_family(family_name)
    native_config = from_dict(family.config_class, getattr(config, "lmhub_config", None) or {})
    # Built on the current default device and dtype: meta inside from_pretrained, so nothing is
    # initialised that the checkpoint then overwrites.
    return family.builder(native_config)


def _flat_fields(config: PretrainedConfig, config_class: type[Any]) -> dict[str, Any]:
    """The lmhub fields a remote-code config holds as attributes (``lmhub_renamed`` maps the few
    whose names transformers reserves)."""
    renamed = getattr(config, "lmhub_renamed", {})
    values = {}
    for field in dataclasses.fields(config_class):
        attribute = renamed.get(field.name, field.name)
        if hasattr(config, attribute):
            values[field.name] = getattr(config, attribute)
    return values


def find_input_embedding(model: nn.Module, vocab_size: int | None) -> nn.Embedding | None:
    """The model's token embedding: its ``embed`` attribute, else an embedding of ``vocab_size``
    rows."""
    embed = getattr(model, "embed", None)
    if isinstance(embed, nn.Embedding):
        return embed
    for module in model.modules():
        if isinstance(module, nn.Embedding) and module.num_embeddings == vocab_size:
            return module
    return None


class _LmhubMixin:
    """Shared by the lmhub wrappers: build the adapter around a given or freshly built model."""

    _backbone_emits_logits: ClassVar[bool] = False

    lmhub_config_class: ClassVar[type[Any] | None] = None
    """The lmhub config dataclass whose fields the Hugging Face config holds as attributes. Set,
    with :attr:`lmhub_builder`, by a remote-code export's generated subclass; unset, the config is
    an :class:`LmhubDecoderConfig` naming a registered family."""

    lmhub_builder: ClassVar[Callable[[Any], nn.Module] | None] = None
    """Builds the lmhub model from an ``lmhub_config_class`` instance (a ``staticmethod``)."""

    @classmethod
    def _native_or_built(cls, config: PretrainedConfig, model: nn.Module | None) -> nn.Module:
        if model is not None:
            return model
        if cls.lmhub_builder is not None and cls.lmhub_config_class is not None:
            native_config = from_dict(
                cls.lmhub_config_class, _flat_fields(config, cls.lmhub_config_class)
            )
            return cls.lmhub_builder(native_config)
        return _native_from_family(config)


class LmhubModel(_LmhubMixin, HFDecoderModelArchitecture):
    """A wrapped lmhub decoder without a head: returns the final hidden states."""

    config_class = LmhubDecoderConfig

    def __init__(self, config: PretrainedConfig, model: nn.Module | None = None) -> None:
        native = self._native_or_built(config, model)
        super().__init__(
            config,
            decoder=LmhubDecoderAdapter(native, config, emits_logits=self._backbone_emits_logits),
            embedding=find_input_embedding(native, getattr(config, "vocab_size", None)),
        )


class LmhubForCausalLM(CausalLMHeadMixin, LmhubModel):
    """A wrapped lmhub decoder with its own LM head: ``generate()``, pipelines, Trainer.

    Example:
        >>> hf = to_hf_api(lmhub_model)
        >>> hf.generate(ids, max_new_tokens=8, num_beams=3)
    """

    _backbone_emits_logits = True


class LmhubForSequenceClassification(SequenceClassificationLMHeadMixin, LmhubModel):
    """A wrapped lmhub decoder with a fresh classification head over the last real token."""


class LmhubEncoderModel(_LmhubMixin, HFEncoderModelArchitecture):
    """A wrapped lmhub encoder without a head: returns the final hidden states."""

    config_class = LmhubEncoderConfig

    def __init__(self, config: PretrainedConfig, model: nn.Module | None = None) -> None:
        native = self._native_or_built(config, model)
        super().__init__(
            config,
            encoder=LmhubEncoderAdapter(native, config, emits_logits=self._backbone_emits_logits),
            embedding=find_input_embedding(native, getattr(config, "vocab_size", None)),
        )


class LmhubForMaskedLM(MaskedLMHeadMixin, LmhubEncoderModel):
    """A wrapped lmhub encoder with its own output projection as the masked-LM head."""

    _backbone_emits_logits = True


class LmhubEncoderForSequenceClassification(SequenceClassificationLMHeadMixin, LmhubEncoderModel):
    """A wrapped lmhub encoder with a fresh classification head over the first token."""
