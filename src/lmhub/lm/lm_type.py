"""What an LM type is: the record the registry holds and the components it builds for a run.

An LM type (``arlm``, ``mlm``, ...) is a package under ``lmhub.lm`` (or any importable package)
whose ``LM_TYPE`` is an :class:`LmType`. A type must provide:

* ``name`` and ``description``;
* ``causal``: the attention mode its backbone runs in (``False``: bidirectional, every family
  supports it through ``forward(..., causal=False)`` with key-padding masks);
* ``special_tokens``: names of the extra tokens it needs (``("mask",)``). They get the ids right
  after the tokenizer's vocabulary (``tokenizer.vocab_size + i``, in order), and a randomly
  initialised backbone is built with a vocabulary large enough to hold them;
* ``options``: a ``@dataclass(kw_only=True)`` of its own settings (mask rate, predictor steps,
  ...), filled from the train config's ``lm_options`` mapping;
* ``build(context) -> LmComponents``: given the backbone, tokenizer, data kind and special ids
  (an :class:`LmContext`), the collators (pre-training or seq2seq training, and seq2seq
  prediction), the loss function, the predictor, the metric objects of ``lm`` and
  ``prediction`` loaders, and ``extra``: any modules the type adds to the backbone (heads,
  conditioning), trained with it and saved beside it.

The trainer, the families and the metric plumbing stay generic: they only touch a type through
this record and the protocols of :mod:`lmhub.lm.protocols`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from torch import nn

from lmhub.config import from_dict
from lmhub.data.sources import DataKind
from lmhub.data.tokenizers import Tokenizer
from lmhub.lm.metrics import LmMetric, loss_metrics, target_metrics
from lmhub.lm.protocols import LossFunction, Predictor

__all__ = [
    "Collate",
    "DataKind",
    "LmComponents",
    "LmContext",
    "LmType",
    "special_token_ids",
]

Collate = Callable[[list[dict[str, Any]]], Any]
"""A collator: examples in, one batch out."""


def special_token_ids(tokenizer: Tokenizer, names: tuple[str, ...]) -> dict[str, int]:
    """The ids a type's special tokens take: right after the tokenizer's vocabulary.

    Example:
        >>> from lmhub.data.tokenizers import ByteTokenizer
        >>> special_token_ids(ByteTokenizer(), ("mask", "cls"))
        {'mask': 259, 'cls': 260}
    """
    return {name: tokenizer.vocab_size + i for i, name in enumerate(names)}


@dataclass(kw_only=True)
class LmContext:
    """What a type's ``build`` gets: one run's backbone, tokenizer, data and settings."""

    model: nn.Module
    """The backbone (a :class:`~lmhub.models.decoder.DecoderLM` of any family), its vocabulary
    holding the type's special tokens."""
    tokenizer: Tokenizer
    """The run's tokenizer (the special tokens are not in it)."""
    kind: DataKind
    """``text`` (pre-training) or ``seq2seq`` (prompt/target pairs)."""
    seq_len: int
    """The most tokens per training row."""
    max_new_tokens: int
    """The most tokens a predictor writes per example."""
    special_ids: dict[str, int]
    """Each special token's id, from :func:`special_token_ids`."""
    options: Any
    """The type's options dataclass, filled from ``lm_options``."""
    pad_token_id: int
    """The id that pads rows."""


@dataclass(kw_only=True)
class LmComponents:
    """What the trainer needs of an LM type, built for one model, tokenizer and data kind."""

    train_collator: Collate
    """Batches training (and ``lm`` evaluation) examples: pre-training or seq2seq training."""
    loss: LossFunction[Any]
    """The loss function of ``lm`` batches."""
    predictor: Predictor[Any] | None
    """The predictor of ``prediction`` batches and of ``lmhub generate`` (``None``: the type
    cannot predict from this data kind)."""
    prediction_collator: Collate | None
    """Batches ``prediction`` evaluation examples (seq2seq data only)."""
    pad_token_id: int
    """The id that pads rows."""
    lm_metrics: Callable[[], dict[str, LmMetric]] = loss_metrics
    """Fresh metric objects of an ``lm`` loader, updated with ``(batch, loss dict)``."""
    prediction_metrics: Callable[[], dict[str, LmMetric]] = target_metrics
    """Fresh metric objects of a ``prediction`` loader, updated with ``(batch, preds)``."""
    extra: nn.Module | None = None
    """Modules the type adds to the backbone (heads, conditioning), trained with it and saved
    beside it in every checkpoint (``lm_type.safetensors``)."""


@dataclass(kw_only=True)
class _NoOptions:
    """A type without options."""


@dataclass(kw_only=True)
class LmType:
    """One kind of language model, as the registry holds it (see the module docstring)."""

    name: str
    """The ``lm_type`` value that picks it."""
    description: str
    """One line for listings."""
    causal: bool
    """Whether its backbone attends causally (``False``: bidirectionally)."""
    build: Callable[[LmContext], LmComponents]
    """Builds its components for one run."""
    special_tokens: tuple[str, ...] = ()
    """Names of the extra tokens it appends to the vocabulary."""
    options: type = _NoOptions
    """Its ``@dataclass(kw_only=True)`` of settings, filled from ``lm_options``."""
    data_kinds: tuple[DataKind, ...] = ("text", "seq2seq")
    """The data kinds it trains on (``seq2seq`` types predict; ``text`` is pre-training)."""
    family_kinds: tuple[str, ...] = ("decoder", "encoder")
    """The family kinds (``ModelFamily.kind``) whose models it trains as backbones."""

    def make_options(self, values: Mapping[str, Any]) -> Any:
        """The type's options from ``lm_options`` (checked, with close matches for typos)."""
        return from_dict(self.options, dict(values)) if values else self.options()

    def option_fields(self) -> list[str]:
        """The names of the type's options."""
        return [f.name for f in dataclasses.fields(self.options)]
