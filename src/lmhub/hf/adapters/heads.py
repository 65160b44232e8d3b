"""Head mixins: put one before an architecture class to add a head, its loss and (for LMs)
``generate()``.

* :class:`CausalLMHeadMixin` + ``HFDecoderModelArchitecture``: next-token logits, shift-by-one
  loss, ``generate()`` and ``pipeline("text-generation")``;
* :class:`MaskedLMHeadMixin` + ``HFEncoderModelArchitecture``: per-token logits and loss;
* :class:`ConditionalGenerationLMHeadMixin` + ``HFEncoderDecoderModelArchitecture``: seq2seq logits,
  loss against labels (decoder inputs are the labels shifted right), ``generate()``;
* :class:`SequenceClassificationLMHeadMixin` + a decoder or encoder architecture: pools the last
  real token (decoders) or the first token (encoders) into ``num_labels`` logits.

The head is ``self.lm_head`` (FMS's name for every head). Pass one in (``lm_head=module.out``),
or let the mixin build a fresh one from ``config.hidden_size``; when the adapter emits logits
itself (``emits_logits``) the LM mixins build none and only add the loss.

Example:
    >>> class MyLM(CausalLMHeadMixin, HFDecoderModelArchitecture):
    ...     config_class = MyConfig
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from transformers import GenerationMixin, PretrainedConfig
from transformers.modeling_outputs import (
    CausalLMOutputWithPast,
    MaskedLMOutput,
    ModelOutput,
    Seq2SeqLMOutput,
    SequenceClassifierOutputWithPast,
)

from lmhub.hf.adapters.losses import (
    causal_lm_loss,
    pool_last_token,
    sequence_classification_loss,
    token_loss,
)

if TYPE_CHECKING:
    from lmhub.hf.adapters.base import HFModelArchitecture

    _Base = HFModelArchitecture
else:
    _Base = object


def _new_linear(model: HFModelArchitecture, in_dim: int, out_dim: int) -> nn.Linear:
    """A bias-free linear on the backbone's device and dtype, init N(0, initializer_range)."""
    ref = next((p for a in model._adapters() for p in a.parameters()), None)
    linear = nn.Linear(
        in_dim,
        out_dim,
        bias=False,
        device=ref.device if ref is not None else None,
        dtype=ref.dtype if ref is not None else None,
    )
    if not linear.weight.is_meta:
        nn.init.normal_(linear.weight, mean=0.0, std=_init_std(model.config))
    return linear


def _init_std(config: PretrainedConfig) -> float:
    return float(getattr(config, "initializer_range", None) or 0.02)


def _required(config: PretrainedConfig, name: str, mixin: str) -> int:
    value = getattr(config, name, None)
    if not isinstance(value, int):
        raise ValueError(
            f"{mixin} needs config.{name} to build its head. Set it on the config, or pass "
            "lm_head= with your own head module."
        )
    return value


class LMHeadMixin(_Base):
    """Shared by the head mixins: returns the logits of a backbone output."""

    def _head_adapter_emits_logits(self) -> bool:
        return bool(self._adapters()[-1].emits_logits)

    def _build_lm_head(self, config: PretrainedConfig) -> nn.Module | None:
        """A vocabulary projection from ``hidden_size``; none when the adapter emits logits."""
        if self._head_adapter_emits_logits():
            return None
        mixin = type(self).__name__
        return _new_linear(
            self, _required(config, "hidden_size", mixin), _required(config, "vocab_size", mixin)
        )

    def _logits(self, outputs: ModelOutput, logits_to_keep: int = 0) -> torch.Tensor:
        logits = getattr(outputs, "logits", None)
        if logits is not None:
            return logits[:, -logits_to_keep:] if logits_to_keep else logits
        if self.lm_head is None:
            raise ValueError(
                f"{type(self).__name__} has no lm_head and its adapter returned no logits."
            )
        hidden = outputs.last_hidden_state
        return self.lm_head(hidden[:, -logits_to_keep:] if logits_to_keep else hidden)

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        if module is self.lm_head and isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=_init_std(self.config))
            if module.bias is not None:
                nn.init.zeros_(module.bias)
            return
        super()._init_weights(module)


class _GenerationSupport(GenerationMixin):
    """``generate()`` support, including adapters that cannot use a KV cache."""

    @classmethod
    def can_generate(cls) -> bool:
        return True

    def _supports_default_dynamic_cache(self) -> bool:  # type: ignore[override]
        # generate() asks this before building a DynamicCache; an adapter without cache support
        # gets none, even when use_cache=True is passed.
        return bool(self._adapters()[-1].supports_cache)  # type: ignore[attr-defined]

    def prepare_inputs_for_generation(
        self,
        input_ids: torch.Tensor,
        next_sequence_length: int | None = None,
        past_key_values: Any = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        if not self._adapters()[-1].supports_cache:  # type: ignore[attr-defined]
            # No cache: feed the whole sequence again at every step.
            next_sequence_length, past_key_values = None, None
            kwargs["use_cache"] = False
        return super().prepare_inputs_for_generation(
            input_ids,
            next_sequence_length=next_sequence_length,
            past_key_values=past_key_values,
            **kwargs,
        )


class CausalLMHeadMixin(LMHeadMixin, _GenerationSupport):
    """A language-modelling head over a decoder: logits ``[batch, seq, vocab]``, shifted loss."""

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        past_key_values: Any = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int = 0,
        return_dict: bool | None = None,
        **kwargs: Any,
    ) -> CausalLMOutputWithPast | tuple[Any, ...]:
        """Return logits (and ``loss`` when ``labels`` are given: the shift-by-one cross-entropy
        ignoring -100). ``logits_to_keep=k`` computes logits for the last ``k`` positions only."""
        num_items_in_batch = kwargs.pop("num_items_in_batch", None)
        outputs = super().forward(  # type: ignore[misc]
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            **kwargs,
        )
        logits = self._logits(outputs, logits_to_keep)
        loss = None
        if labels is not None:
            loss = causal_lm_loss(logits, labels, num_items_in_batch=num_items_in_batch)
        result = CausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            past_key_values=getattr(outputs, "past_key_values", None),
            hidden_states=getattr(outputs, "hidden_states", None),
            attentions=getattr(outputs, "attentions", None),
        )
        return result.to_tuple() if return_dict is False else result


class MaskedLMHeadMixin(LMHeadMixin):
    """A masked-LM head over an encoder: per-token logits, loss against labels at -100-masked
    positions (no shift)."""

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        return_dict: bool | None = None,
        **kwargs: Any,
    ) -> MaskedLMOutput | tuple[Any, ...]:
        """Return per-token logits, and the masked-LM ``loss`` when ``labels`` are given."""
        num_items_in_batch = kwargs.pop("num_items_in_batch", None)
        outputs = super().forward(  # type: ignore[misc]
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            **kwargs,
        )
        logits = self._logits(outputs)
        loss = None
        if labels is not None:
            loss = token_loss(logits, labels, num_items_in_batch=num_items_in_batch)
        result = MaskedLMOutput(
            loss=loss,
            logits=logits,
            hidden_states=getattr(outputs, "hidden_states", None),
            attentions=getattr(outputs, "attentions", None),
        )
        return result.to_tuple() if return_dict is False else result


class ConditionalGenerationLMHeadMixin(LMHeadMixin, _GenerationSupport):
    """An LM head over the decoder of an encoder-decoder, with ``generate()``.

    With ``labels`` and no ``decoder_input_ids``, the decoder inputs are the labels shifted right
    behind ``config.decoder_start_token_id``.
    """

    def prepare_decoder_input_ids_from_labels(self, labels: torch.Tensor) -> torch.Tensor:
        """Shift ``labels`` one step right behind the decoder start token; -100 becomes padding."""
        start = getattr(self.config, "decoder_start_token_id", None)
        if start is None and self.generation_config is not None:
            start = self.generation_config.decoder_start_token_id
        if start is None:
            raise ValueError(
                "Set config.decoder_start_token_id: the decoder inputs are built from the labels "
                "by shifting them right behind it."
            )
        pad = getattr(self.config, "pad_token_id", None)
        shifted = labels.new_empty(labels.shape)
        shifted[:, 0] = start
        shifted[:, 1:] = labels[:, :-1]
        return shifted.masked_fill(shifted == -100, pad if pad is not None else 0)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.Tensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: Any = None,
        past_key_values: Any = None,
        labels: torch.Tensor | None = None,
        use_cache: bool | None = None,
        return_dict: bool | None = None,
        **kwargs: Any,
    ) -> Seq2SeqLMOutput | tuple[Any, ...]:
        """Return decoder logits, and the token ``loss`` against ``labels`` when given."""
        num_items_in_batch = kwargs.pop("num_items_in_batch", None)
        if labels is not None and decoder_input_ids is None:
            decoder_input_ids = self.prepare_decoder_input_ids_from_labels(labels)
        outputs = super().forward(  # type: ignore[misc]
            input_ids=input_ids,
            attention_mask=attention_mask,
            decoder_input_ids=decoder_input_ids,
            decoder_attention_mask=decoder_attention_mask,
            encoder_outputs=encoder_outputs,
            past_key_values=past_key_values,
            use_cache=use_cache,
            **kwargs,
        )
        logits = self._logits(outputs)
        loss = None
        if labels is not None:
            loss = token_loss(logits, labels, num_items_in_batch=num_items_in_batch)
        result = Seq2SeqLMOutput(
            loss=loss,
            logits=logits,
            past_key_values=outputs.past_key_values,
            encoder_last_hidden_state=outputs.encoder_last_hidden_state,
        )
        return result.to_tuple() if return_dict is False else result


class SequenceClassificationLMHeadMixin(LMHeadMixin):
    """A classification/regression head over a pooled state: the last real token for decoders
    (like transformers' ``*ForSequenceClassification``), the first token for encoders.

    Uses ``config.num_labels`` and ``config.problem_type`` (inferred from the labels when unset).
    """

    def _build_lm_head(self, config: PretrainedConfig) -> nn.Module | None:
        if self._head_adapter_emits_logits():
            raise ValueError(
                f"{type(self).__name__} pools hidden states, but its adapter emits logits. "
                "Give it an adapter that returns last_hidden_state."
            )
        return _new_linear(
            self, _required(config, "hidden_size", type(self).__name__), config.num_labels
        )

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        return_dict: bool | None = None,
        **kwargs: Any,
    ) -> SequenceClassifierOutputWithPast | tuple[Any, ...]:
        """Return ``[batch, num_labels]`` logits, and the ``loss`` when ``labels`` are given."""
        kwargs.pop("num_items_in_batch", None)
        kwargs.pop("past_key_values", None)
        outputs = super().forward(  # type: ignore[misc]
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            use_cache=False,
            **kwargs,
        )
        hidden = outputs.last_hidden_state
        if self._pooling == "first":
            pooled = hidden[:, 0]
        else:
            pooled = pool_last_token(
                hidden,
                attention_mask=attention_mask,
                input_ids=input_ids,
                pad_token_id=getattr(self.config, "pad_token_id", None),
            )
        logits = self.lm_head(pooled)
        loss = None
        if labels is not None:
            loss, problem_type = sequence_classification_loss(
                logits,
                labels,
                num_labels=self.config.num_labels,
                problem_type=self.config.problem_type,
            )
            self.config.problem_type = problem_type
        result = SequenceClassifierOutputWithPast(
            loss=loss, logits=logits, hidden_states=getattr(outputs, "hidden_states", None)
        )
        return result.to_tuple() if return_dict is False else result
