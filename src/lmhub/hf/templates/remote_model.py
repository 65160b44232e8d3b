"""The transformers face of an lmhub remote-code export.

`lmhub model construct` copies this file into every remote-code directory, with its lmhub imports
rewritten to the copies beside it. The generated ``modeling_*.py`` subclasses
:class:`LmhubForCausalLM`, naming the lmhub builder and config class, so that
``AutoModelForCausalLM.from_pretrained(dir, trust_remote_code=True)`` runs lmhub's own model
code, with lmhub itself not installed.

Generation keeps lmhub's own key/value cache (:class:`LmhubGenerationCache`) in
``past_key_values``; a transformers ``Cache`` passed in by the caller is filled through a thin
bridge instead. A model whose class says ``supports_kv_cache = False`` recomputes the whole
sequence at every step.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from transformers import GenerationMixin, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from lmhub.checkpoint.state import tied_names
from lmhub.config import from_dict
from lmhub.nn.kv_cache import DynamicKVCache, ExternalCacheBridge, KVCache
from lmhub.nn.masks import positions_from_padding

IGNORE_INDEX = -100


class LmhubGenerationCache(DynamicKVCache):
    """lmhub's growing key/value cache, plus the methods transformers' ``generate()`` calls.

    Example:
        >>> out = model(ids, use_cache=True)
        >>> out.past_key_values.get_seq_length()
        5
    """

    is_compileable = False
    is_croppable = False

    def get_seq_length(self, layer_idx: int = 0) -> int:
        """The number of cached positions (transformers' name for ``seq_len``)."""
        return self.seq_len

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        """Keep the rows beam search picked, in its order."""
        for store in (self._keys, self._values):
            for layer, tensor in store.items():
                store[layer] = tensor.index_select(0, beam_idx.to(tensor.device))


class LmhubForCausalLM(PreTrainedModel, GenerationMixin):
    """A transformers causal LM around an lmhub model (``self.model``).

    Subclasses set ``config_class``, ``lmhub_config_class`` (the lmhub config dataclass, whose
    fields the transformers config holds) and ``lmhub_builder`` (builds the lmhub model).
    """

    base_model_prefix = "model"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = False
    lmhub_config_class: ClassVar[type[Any]]
    lmhub_builder: ClassVar[Any]

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        renamed = getattr(config, "lmhub_renamed", {})
        values = {}
        for field in dataclasses.fields(self.lmhub_config_class):
            attribute = renamed.get(field.name, field.name)
            if hasattr(config, attribute):
                values[field.name] = getattr(config, attribute)
        self.model = self.lmhub_builder(from_dict(self.lmhub_config_class, values))
        # transformers ties (and expects missing from checkpoints) exactly what lmhub ties.
        self._tied_weights_keys = {
            f"model.{alias}": f"model.{source}" for alias, source in tied_names(self.model).items()
        }
        self.post_init()

    @property
    def supports_kv_cache(self) -> bool:
        """Whether the lmhub model can decode incrementally with a key/value cache."""
        return bool(getattr(type(self.model), "supports_kv_cache", False))

    @torch.no_grad()
    def _init_weights(self, module: torch.nn.Module) -> None:
        # lmhub initialises its own weights when built off the meta device; after a load from
        # the meta device only the non-persistent buffers (RoPE tables...) need computing.
        reset = getattr(module, "reset_non_persistent_buffers", None)
        if not callable(reset):
            return
        buffers = list(module.buffers(recurse=False))
        device = buffers[0].device if buffers else self.device
        if device.type != "meta":
            reset(device)

    def get_input_embeddings(self) -> torch.nn.Module:
        embed = getattr(self.model, "embed", None)
        if isinstance(embed, torch.nn.Embedding):
            return embed
        return super().get_input_embeddings()

    def _lmhub_cache(self, past_key_values: Any, use_cache: bool | None) -> KVCache | None:
        if not self.supports_kv_cache:
            return None
        if past_key_values is None:
            wanted = use_cache if use_cache is not None else getattr(self.config, "use_cache", True)
            return LmhubGenerationCache() if wanted else None
        if isinstance(past_key_values, KVCache):
            return past_key_values
        if callable(getattr(past_key_values, "update", None)):
            return ExternalCacheBridge(past_key_values)
        raise TypeError(
            f"past_key_values is a {type(past_key_values).__name__}; pass the cache a previous "
            "call returned, a transformers Cache, or None."
        )

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: Any = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        return_dict: bool | None = None,
        **kwargs: Any,
    ) -> CausalLMOutputWithPast | tuple[Any, ...]:
        """Return the logits of ``input_ids`` (the tokens not yet in ``past_key_values``).

        ``attention_mask`` covers the cached and the new tokens (0 = padding); positions then
        count real tokens only, so left-padded batches match unpadded prompts. ``labels`` give
        the next-token cross-entropy, ignoring -100.
        """
        if inputs_embeds is not None or input_ids is None:
            raise ValueError("This lmhub model takes input_ids, not inputs_embeds.")
        cache = self._lmhub_cache(past_key_values, use_cache)
        if position_ids is None and attention_mask is not None:
            position_ids = positions_from_padding(attention_mask)[:, -input_ids.shape[1] :]
        if attention_mask is not None and bool(attention_mask.all()):
            attention_mask = None  # no padding: lmhub's causal fast path
        logits = self.model(
            input_ids, attention_mask=attention_mask, position_ids=position_ids, cache=cache
        )
        loss = None
        if labels is not None:
            loss = F.cross_entropy(
                logits[:, :-1].flatten(0, 1).float(),
                labels[:, 1:].flatten().to(logits.device),
                ignore_index=IGNORE_INDEX,
            )
        if isinstance(cache, ExternalCacheBridge):
            cache = cache.cache
        if return_dict is False:
            return tuple(x for x in (loss, logits, cache) if x is not None)
        return CausalLMOutputWithPast(loss=loss, logits=logits, past_key_values=cache)

    def prepare_inputs_for_generation(
        self,
        input_ids: torch.LongTensor,
        past_key_values: Any = None,
        attention_mask: torch.Tensor | None = None,
        use_cache: bool | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Feed only the tokens the cache lacks (all of them when there is no cache)."""
        past = int(past_key_values.get_seq_length()) if past_key_values is not None else 0
        if not self.supports_kv_cache:
            past = 0
        return {
            "input_ids": input_ids[:, past:],
            "attention_mask": attention_mask,
            "past_key_values": past_key_values,
            "use_cache": use_cache,
        }

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        # generate() must not make a transformers DynamicCache: lmhub keeps its own.
        return False
