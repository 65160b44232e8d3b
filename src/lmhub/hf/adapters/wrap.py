""":func:`to_hf_api`: wrap a native lmhub model in the transformers classes of
:mod:`lmhub.hf.adapters.lmhub_model`, sharing its parameters."""

from __future__ import annotations

from typing import Any, Literal, cast

from torch import nn

from lmhub.config import to_dict
from lmhub.hf.adapters.lmhub_model import (
    LmhubDecoderConfig,
    LmhubEncoderConfig,
    LmhubEncoderForSequenceClassification,
    LmhubEncoderModel,
    LmhubForCausalLM,
    LmhubForMaskedLM,
    LmhubForSequenceClassification,
    LmhubModel,
    find_input_embedding,
)
from lmhub.models.family import ModelFamily
from lmhub.models.registry import family_of, get_family

Task = Literal["causal_lm", "masked_lm", "sequence_classification", "base"]

_CLASSES: dict[tuple[str, str], type[Any]] = {
    ("decoder", "causal_lm"): LmhubForCausalLM,
    ("decoder", "sequence_classification"): LmhubForSequenceClassification,
    ("decoder", "base"): LmhubModel,
    ("encoder", "masked_lm"): LmhubForMaskedLM,
    ("encoder", "sequence_classification"): LmhubEncoderForSequenceClassification,
    ("encoder", "base"): LmhubEncoderModel,
}


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
    embedding = find_input_embedding(model, None)
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
    task: Task | str | None = None,
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
        family = get_family(family)
    resolved = family if family is not None else family_of(model)
    kind = resolved.kind if resolved is not None else "decoder"
    if kind == "encoder_decoder":
        raise NotImplementedError(
            "to_hf_api does not wrap encoder-decoder lmhub families yet. Adapt the model with "
            "HFEncoderDecoderModelArchitecture and ConditionalGenerationLMHeadMixin instead."
        )
    # transformers spells tasks with hyphens ("sequence-classification"); both spellings work.
    task = cast(Task, task.replace("-", "_")) if task else None
    task = task or ("causal_lm" if kind == "decoder" else "masked_lm")
    cls = _CLASSES.get((kind, task))
    if cls is None:
        tasks = sorted(t for k, t in _CLASSES if k == kind)
        raise ValueError(f"A {kind} model has no '{task}' head. Use one of: {', '.join(tasks)}.")
    config = _hf_config(model, resolved, kind, num_labels)
    return cls(config, model=model)
