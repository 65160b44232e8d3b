"""Native lmhub models behind the Hugging Face API: :func:`to_hf_api` and the classes it returns.

Any model that follows the lmhub calling convention (``model(input_ids, *, attention_mask=,
position_ids=, cache=, return_hidden=) -> logits``) is wrapped, not copied: the returned
``PreTrainedModel`` shares its parameters. Decoders get a causal-LM head (the model's own output
projection: the adapter asks it for logits), encoders a masked-LM head (likewise); both can take a
fresh sequence-classification head over the final hidden states instead.

The config (``model_type`` ``lmhub_decoder`` / ``lmhub_encoder``) records the family and the whole
lmhub config, so ``save_pretrained`` + ``from_pretrained`` (and, after
:func:`lmhub.hf.register`, the Auto classes) rebuild the same model. State-dict keys are the native
ones under ``decoder.model.`` / ``encoder.model.``.

KV cache: transformers' cache objects are used as they are (see :mod:`lmhub.hf.adapters.cache`).
Families whose class sets ``supports_kv_cache = False`` are re-run over the whole sequence at every
generation step instead.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

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

from lmhub.config import from_dict, to_dict
from lmhub.hf.adapters.base import (
    HFDecoderAdapter,
    HFDecoderModelArchitecture,
    HFEncoderAdapter,
    HFEncoderModelArchitecture,
)
from lmhub.hf.adapters.cache import HFCacheBridge
from lmhub.hf.adapters.heads import (
    CausalLMHeadMixin,
    MaskedLMHeadMixin,
    SequenceClassificationLMHeadMixin,
)
from lmhub.models.family import ModelFamily
from lmhub.models.registry import family_of
from lmhub.nn.masks import positions_from_padding

Task = Literal["causal_lm", "masked_lm", "sequence_classification", "base"]

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
        cache = HFCacheBridge(past_key_values) if past_key_values is not None else None
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
        **kwargs: Any,
    ) -> ModelOutput:
        del kwargs
        _no_embeds(inputs_embeds)
        out = self.model(
            input_ids,
            attention_mask=_real_mask(attention_mask),
            position_ids=position_ids,
            return_hidden=not self.emits_logits,
        )
        if self.emits_logits:
            return MaskedLMOutput(logits=out)
        return BaseModelOutput(last_hidden_state=out)


# -- building the native model from the HF config ---------------------------------------------


def _native_from_config(config: LmhubDecoderConfig) -> nn.Module:
    from lmhub.errors import ConfigError
    from lmhub.models.registry import get_family

    if not config.family:
        raise ConfigError(
            "This config names no lmhub model family, so the model cannot be rebuilt from it. "
            "Register the family (lmhub.register_family) and wrap the model with "
            "to_hf_api(model, family=...) before saving.",
            field="family",
        )
    family = get_family(config.family)
    native_config = from_dict(family.config_class, config.lmhub_config or {})
    # Built on the current default device and dtype: meta inside from_pretrained, so nothing is
    # initialised that the checkpoint then overwrites.
    return family.builder(native_config)


def _input_embedding(model: nn.Module, vocab_size: int | None) -> nn.Embedding | None:
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

    @classmethod
    def _native_or_built(cls, config: PretrainedConfig, model: nn.Module | None) -> nn.Module:
        return model if model is not None else _native_from_config(config)  # type: ignore[arg-type]


class LmhubModel(_LmhubMixin, HFDecoderModelArchitecture):
    """A wrapped lmhub decoder without a head: returns the final hidden states."""

    config_class = LmhubDecoderConfig

    def __init__(self, config: LmhubDecoderConfig, model: nn.Module | None = None) -> None:
        native = self._native_or_built(config, model)
        super().__init__(
            config,
            decoder=LmhubDecoderAdapter(native, config, emits_logits=self._backbone_emits_logits),
            embedding=_input_embedding(native, config.vocab_size),
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

    def __init__(self, config: LmhubEncoderConfig, model: nn.Module | None = None) -> None:
        native = self._native_or_built(config, model)
        super().__init__(
            config,
            encoder=LmhubEncoderAdapter(native, config, emits_logits=self._backbone_emits_logits),
            embedding=_input_embedding(native, config.vocab_size),
        )


class LmhubForMaskedLM(MaskedLMHeadMixin, LmhubEncoderModel):
    """A wrapped lmhub encoder with its own output projection as the masked-LM head."""

    _backbone_emits_logits = True


class LmhubEncoderForSequenceClassification(SequenceClassificationLMHeadMixin, LmhubEncoderModel):
    """A wrapped lmhub encoder with a fresh classification head over the first token."""


_CLASSES: dict[tuple[str, str], type[Any]] = {
    ("decoder", "causal_lm"): LmhubForCausalLM,
    ("decoder", "sequence_classification"): LmhubForSequenceClassification,
    ("decoder", "base"): LmhubModel,
    ("encoder", "masked_lm"): LmhubForMaskedLM,
    ("encoder", "sequence_classification"): LmhubEncoderForSequenceClassification,
    ("encoder", "base"): LmhubEncoderModel,
}


# -- to_hf_api ----------------------------------------------------------------------------------


def _first_of(config: Any, *names: str) -> Any:
    for name in names:
        value = getattr(config, name, None)
        if value is not None:
            return value
    return None


def _hf_config(
    model: nn.Module,
    family: ModelFamily[Any, Any] | None,
    kind: str,
    num_labels: int,
) -> LmhubDecoderConfig:
    native_config = getattr(model, "config", None)
    embedding = _input_embedding(model, None)
    vocab_size = _first_of(native_config, "vocab_size")
    hidden_size = _first_of(native_config, "model_dim", "hidden_size", "dim")
    if embedding is not None:
        vocab_size = vocab_size or embedding.num_embeddings
        hidden_size = hidden_size or embedding.embedding_dim
    config_class = LmhubEncoderConfig if kind == "encoder" else LmhubDecoderConfig
    lmhub_config = None
    if native_config is not None and family is not None:
        lmhub_config = to_dict(native_config)
    return config_class(
        family=family.name if family is not None else "",
        lmhub_config=lmhub_config,
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        num_hidden_layers=_first_of(native_config, "num_layers", "num_hidden_layers"),
        initializer_range=float(_first_of(native_config, "init_std") or 0.02),
        pad_token_id=_first_of(native_config, "pad_token_id"),
        bos_token_id=_first_of(native_config, "bos_token_id"),
        eos_token_id=_first_of(native_config, "eos_token_id"),
        num_labels=num_labels,
        dtype=next(model.parameters()).dtype,
    )


def to_hf_api(
    model: nn.Module,
    *,
    task: Task | None = None,
    num_labels: int = 2,
    family: ModelFamily[Any, Any] | str | None = None,
) -> Any:
    """Wrap a native lmhub model as a ``transformers.PreTrainedModel`` (sharing its parameters).

    ``task`` is ``"causal_lm"`` (default for decoders; has ``generate()``), ``"masked_lm"``
    (default for encoders), ``"sequence_classification"`` (a fresh ``num_labels`` head) or
    ``"base"`` (hidden states). ``family`` defaults to the registered family whose model class
    the model is; without one the wrapper works in memory but ``from_pretrained`` cannot rebuild
    it.

    Example:
        >>> model = get_model_hub("llama").create_new_model(llama_archs.get("llama_tiny"))
        >>> hf = lmhub.hf.to_hf_api(model)
        >>> hf.generate(torch.tensor([[1, 2, 3]]), max_new_tokens=5, do_sample=False)
    """
    if isinstance(family, str):
        from lmhub.models.registry import get_family

        family = get_family(family)
    resolved = family if family is not None else family_of(model)
    kind = resolved.kind if resolved is not None else "decoder"
    if kind == "encoder_decoder":
        raise NotImplementedError(
            "to_hf_api does not wrap encoder-decoder lmhub families yet. Adapt the model with "
            "HFEncoderDecoderModelArchitecture and ConditionalGenerationLMHeadMixin instead."
        )
    task = task or ("causal_lm" if kind == "decoder" else "masked_lm")
    cls = _CLASSES.get((kind, task))
    if cls is None:
        tasks = sorted(t for k, t in _CLASSES if k == kind)
        raise ValueError(f"A {kind} model has no '{task}' head. Use one of: {', '.join(tasks)}.")
    config = _hf_config(model, resolved, kind, num_labels)
    return cls(config, model=model)
