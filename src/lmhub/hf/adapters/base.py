"""Base classes that give a plain PyTorch module the Hugging Face model API, after IBM FMS's design.

Three layers, each small and replaceable:

* an **adapter** (:class:`HFDecoderAdapter`, :class:`HFEncoderAdapter`) wraps your module and turns
  Hugging Face forward arguments into a call to it. The only method to write is ``_adapt(...)``,
  which returns a transformers output dataclass: ``BaseModelOutputWithPast`` with the final hidden
  states, or ``CausalLMOutputWithPast``/``MaskedLMOutput`` with ``logits`` when your module already
  ends in its own output projection (the head mixin then only adds the loss);
* an **architecture** (:class:`HFDecoderModelArchitecture`, :class:`HFEncoderModelArchitecture`,
  :class:`HFEncoderDecoderModelArchitecture`) is a ``transformers.PreTrainedModel`` built from
  adapters, an optional input embedding and an optional ``lm_head``: it brings
  ``save_pretrained``/``from_pretrained``, device and dtype moves and the Auto classes;
* a **head mixin** (:mod:`lmhub.hf.adapters.heads`) adds a head and its loss: causal LM (with
  ``generate()``), masked LM, conditional generation, sequence classification.

Example:
    >>> class MyDecoder(HFDecoderAdapter):
    ...     def _adapt(self, input_ids=None, attention_mask=None, **kwargs):
    ...         return BaseModelOutputWithPast(last_hidden_state=self.model(input_ids))
    >>> class MyLM(CausalLMHeadMixin, HFDecoderModelArchitecture):
    ...     config_class = MyConfig
    >>> lm = MyLM(config, decoder=MyDecoder(body, config), lm_head=body.out)
    >>> lm.generate(ids, max_new_tokens=5)
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import torch
from torch import nn
from transformers import DynamicCache, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import (
    BaseModelOutput,
    ModelOutput,
    Seq2SeqLMOutput,
    Seq2SeqModelOutput,
)

from lmhub.checkpoint.state import tied_names
from lmhub.train.checkpointing import (
    disable_gradient_checkpointing,
    enable_gradient_checkpointing,
    find_layers,
)

# -- adapters ---------------------------------------------------------------------------------


class HFAdapter(nn.Module, abc.ABC):
    """Wraps a plain module; subclasses translate Hugging Face arguments in :meth:`_adapt`."""

    supports_cache: bool = False
    """Whether ``_adapt`` reads and fills ``past_key_values`` (a transformers ``Cache``). Without
    it, ``generate()`` recomputes the whole sequence at every step."""

    emits_logits: bool = False
    """Whether ``_adapt`` returns ``logits`` (the module has its own head), not hidden states."""

    main_input_name: str = "input_ids"
    """The name of the main input (generate() reads it off the encoder)."""

    def __init__(self, model: nn.Module, config: PretrainedConfig) -> None:
        super().__init__()
        self.model = model
        self.config = config

    def forward(self, input_ids: torch.Tensor | None = None, **kwargs: Any) -> ModelOutput:
        """Call :meth:`_adapt` with every argument by keyword."""
        return self._adapt(input_ids=input_ids, **kwargs)

    @abc.abstractmethod
    def _adapt(self, input_ids: torch.Tensor | None = None, **kwargs: Any) -> ModelOutput:
        """Run the wrapped module and return a transformers output dataclass.

        Receives ``input_ids``, ``attention_mask`` (``[batch, cached + seq]``, 1 = real token),
        ``position_ids``, ``inputs_embeds``, and for decoders ``past_key_values`` and
        ``use_cache`` (and in an encoder-decoder ``encoder_hidden_states`` and
        ``encoder_attention_mask``), plus whatever else the caller passed: declare the ones you
        use and end the signature with ``**kwargs``.
        """


class HFDecoderAdapter(HFAdapter):
    """Adapter for a causal decoder (a decoder-only LM, or the decoder of an encoder-decoder)."""


class HFEncoderAdapter(HFAdapter):
    """Adapter for a bidirectional encoder."""


# -- architectures ----------------------------------------------------------------------------


def _is_submodule(root: nn.Module, module: nn.Module) -> bool:
    return any(m is module for m in root.modules())


class HFModelArchitecture(PreTrainedModel):
    """A ``PreTrainedModel`` made of adapters, an optional input embedding and an optional head.

    Subclasses set ``config_class`` and, to support ``from_pretrained``/``from_config``, override
    ``_build_adapter(name, config)`` to build a fresh backbone from the config alone.
    """

    base_model_prefix = "backbone"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _adapter_names: ClassVar[tuple[str, ...]] = ()
    _pooling: ClassVar[str] = "last"

    def __init__(
        self,
        config: PretrainedConfig,
        *,
        embedding: nn.Module | None = None,
        lm_head: nn.Module | None = None,
        **adapters: HFAdapter | None,
    ) -> None:
        super().__init__(config)
        for name in self._adapter_names:
            adapter = adapters.pop(name, None)
            setattr(
                self, name, adapter if adapter is not None else self._build_adapter(name, config)
            )
        if adapters:
            raise TypeError(f"Unexpected arguments: {', '.join(sorted(adapters))}.")
        if embedding is not None and not _is_submodule(self, embedding):
            self.embedding = embedding
        # A plain reference, so that an embedding inside the backbone is not registered twice.
        object.__setattr__(self, "_input_embedding_ref", embedding)
        head = lm_head if lm_head is not None else self._build_lm_head(config)
        self.lm_head = head
        aliases = tied_names(self)
        if aliases:
            # Tell transformers which names share storage, so save_pretrained writes each tensor
            # once and from_pretrained re-ties them.
            self._tied_weights_keys = aliases
            config.tie_word_embeddings = True
        self.post_init()
        generation_config = getattr(self, "generation_config", None)
        if generation_config is not None and not self._adapters()[-1].supports_cache:
            generation_config.use_cache = False  # generate() recomputes every step instead

    # -- hooks ------------------------------------------------------------------------------

    def _build_adapter(self, name: str, config: PretrainedConfig) -> HFAdapter:
        """Build the ``name`` adapter from the config alone (for from_pretrained/from_config)."""
        raise NotImplementedError(
            f"{type(self).__name__} got no '{name}' adapter. Pass one, or override "
            "_build_adapter(name, config) so that from_pretrained/from_config can build the model."
        )

    def _build_lm_head(self, config: PretrainedConfig) -> nn.Module | None:
        """Build a fresh head; the base model has none (head mixins override this)."""
        del config
        return None

    def _adapters(self) -> list[HFAdapter]:
        return [getattr(self, name) for name in self._adapter_names]

    # -- transformers API -------------------------------------------------------------------

    def get_input_embeddings(self) -> nn.Module | None:
        """Return the input embedding given at construction, if any."""
        return self._input_embedding_ref

    def set_input_embeddings(self, value: nn.Module) -> None:
        """Replace the input embedding wherever it sits in the module tree."""
        old = self._input_embedding_ref
        if old is not None:
            for module in list(self.modules()):
                for child_name, child in list(module.named_children()):
                    if child is old:
                        setattr(module, child_name, value)
        else:
            self.embedding = value
        object.__setattr__(self, "_input_embedding_ref", value)

    def get_output_embeddings(self) -> nn.Module | None:
        """Return the head module (``None`` when the backbone computes logits itself)."""
        return self.lm_head

    def activation_checkpointing_enable(
        self,
        activation_checkpointing_kwargs: dict[str, Any] | None = None,
        every_n_layers: int = 1,
        offload: bool = False,
    ) -> None:
        """Recompute the activations of every ``every_n_layers``-th layer of each wrapped module
        in the backward pass (what ``Trainer(activation_checkpointing=True)`` calls).

        Uses :func:`lmhub.train.checkpointing.enable_gradient_checkpointing`, always with
        ``use_reentrant=False``; ``activation_checkpointing_kwargs`` are not used.
        """
        del activation_checkpointing_kwargs
        if offload:
            raise NotImplementedError("Offloading checkpointed activations is not supported.")
        for adapter in self._adapters():
            layers = find_layers(adapter.model)[::every_n_layers]
            enable_gradient_checkpointing(adapter.model, layers=layers)

    def activation_checkpointing_disable(self) -> None:
        """Undo :meth:`activation_checkpointing_enable`."""
        for adapter in self._adapters():
            disable_gradient_checkpointing(adapter.model)

    def init_weights(self) -> None:
        """Only tie weights: the wrapped modules are already initialised (or on ``meta``, about
        to be loaded), and heads built here initialise themselves."""
        self.tie_weights(recompute_mapping=False)

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        # Called by from_pretrained for modules with tensors the checkpoint lacked. Follows the
        # lmhub conventions: recompute non-persistent buffers (RoPE tables), and reset modules
        # whose own parameters were not loaded (transformers guards torch.nn.init meanwhile, so
        # tensors that were loaded keep their values).
        reset_buffers = getattr(module, "reset_non_persistent_buffers", None)
        if callable(reset_buffers):
            buffer = next(module.buffers(recurse=False), None)
            reset_buffers(buffer.device if buffer is not None else None)
        own = list(module.parameters(recurse=False))
        reset = getattr(module, "reset_parameters", None)
        if (
            own
            and callable(reset)
            and not all(getattr(p, "_is_hf_initialized", False) for p in own)
        ):
            reset()


def _resolve_cache(
    model: HFModelArchitecture, adapter: HFAdapter, past_key_values: Any, use_cache: bool | None
) -> tuple[Any, bool]:
    """Resolve ``use_cache`` and make sure a cache exists when one is wanted."""
    if not adapter.supports_cache:
        if past_key_values is not None:
            raise ValueError(
                f"{type(adapter).__name__} cannot use a KV cache, but past_key_values was passed. "
                "Leave it out (generate() then recomputes the sequence at every step)."
            )
        return None, False
    if use_cache is None:
        use_cache = bool(getattr(model.config, "use_cache", True)) and not model.training
    if use_cache and past_key_values is None:
        past_key_values = DynamicCache()
    return past_key_values, bool(use_cache)


class HFDecoderModelArchitecture(HFModelArchitecture):
    """A decoder-only model: ``decoder`` adapter, optional ``embedding`` and ``lm_head``.

    Example:
        >>> base = HFDecoderModelArchitecture(config, decoder=MyDecoder(body, config))
        >>> base(input_ids).last_hidden_state.shape
    """

    _adapter_names = ("decoder",)
    _pooling = "last"

    def __init__(
        self,
        config: PretrainedConfig,
        decoder: HFDecoderAdapter | None = None,
        embedding: nn.Module | None = None,
        lm_head: nn.Module | None = None,
    ) -> None:
        super().__init__(config, embedding=embedding, lm_head=lm_head, decoder=decoder)

    def get_decoder(self) -> HFDecoderAdapter:
        """Return the decoder adapter."""
        return self.decoder

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        past_key_values: Any = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        **kwargs: Any,
    ) -> ModelOutput:
        """Run the decoder; returns what its adapter returns (hidden states or logits)."""
        past_key_values, use_cache = _resolve_cache(self, self.decoder, past_key_values, use_cache)
        return self.decoder(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            **kwargs,
        )


class HFEncoderModelArchitecture(HFModelArchitecture):
    """An encoder-only model: ``encoder`` adapter, optional ``embedding`` and ``lm_head``."""

    _adapter_names = ("encoder",)
    _pooling = "first"

    def __init__(
        self,
        config: PretrainedConfig,
        encoder: HFEncoderAdapter | None = None,
        embedding: nn.Module | None = None,
        lm_head: nn.Module | None = None,
    ) -> None:
        super().__init__(config, embedding=embedding, lm_head=lm_head, encoder=encoder)

    def get_encoder(self) -> HFEncoderAdapter:
        """Return the encoder adapter."""
        return self.encoder

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> ModelOutput:
        """Run the encoder; returns what its adapter returns."""
        kwargs.pop("use_cache", None)
        kwargs.pop("past_key_values", None)
        return self.encoder(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            **kwargs,
        )


class HFEncoderDecoderModelArchitecture(HFModelArchitecture):
    """An encoder-decoder model: ``encoder`` and ``decoder`` adapters, optional embedding and head.

    The decoder adapter receives ``encoder_hidden_states`` and ``encoder_attention_mask``.
    """

    _adapter_names = ("encoder", "decoder")
    _pooling = "last"

    def __init__(
        self,
        config: PretrainedConfig,
        encoder: HFEncoderAdapter | None = None,
        decoder: HFDecoderAdapter | None = None,
        embedding: nn.Module | None = None,
        lm_head: nn.Module | None = None,
    ) -> None:
        config.is_encoder_decoder = True  # generate() encodes once, then feeds decoder inputs
        super().__init__(
            config, embedding=embedding, lm_head=lm_head, encoder=encoder, decoder=decoder
        )

    def get_encoder(self) -> HFEncoderAdapter:
        """Return the encoder adapter (``generate()`` runs it once per prompt)."""
        return self.encoder

    def get_decoder(self) -> HFDecoderAdapter:
        """Return the decoder adapter."""
        return self.decoder

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.Tensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: Any = None,
        past_key_values: Any = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        decoder_position_ids: torch.Tensor | None = None,
        use_cache: bool | None = None,
        **kwargs: Any,
    ) -> Seq2SeqModelOutput | Seq2SeqLMOutput:
        """Encode (unless ``encoder_outputs`` is given), then decode over the encoder states."""
        for name in ("output_attentions", "output_hidden_states", "return_dict"):
            kwargs.pop(name, None)
        if encoder_outputs is None:
            encoder_outputs = self.encoder(
                input_ids=input_ids,
                attention_mask=attention_mask,
                inputs_embeds=inputs_embeds,
                **kwargs,
            )
        elif isinstance(encoder_outputs, tuple | list):
            encoder_outputs = BaseModelOutput(last_hidden_state=encoder_outputs[0])
        past_key_values, use_cache = _resolve_cache(self, self.decoder, past_key_values, use_cache)
        decoded = self.decoder(
            input_ids=decoder_input_ids,
            attention_mask=decoder_attention_mask,
            position_ids=decoder_position_ids,
            inputs_embeds=decoder_inputs_embeds,
            past_key_values=past_key_values,
            use_cache=use_cache,
            encoder_hidden_states=encoder_outputs.last_hidden_state,
            encoder_attention_mask=attention_mask,
            **kwargs,
        )
        if getattr(decoded, "logits", None) is not None:  # the decoder has its own head
            return Seq2SeqLMOutput(
                logits=decoded.logits,
                past_key_values=decoded.past_key_values,
                encoder_last_hidden_state=encoder_outputs.last_hidden_state,
            )
        return Seq2SeqModelOutput(
            last_hidden_state=decoded.last_hidden_state,
            past_key_values=getattr(decoded, "past_key_values", None),
            encoder_last_hidden_state=encoder_outputs.last_hidden_state,
        )
