"""A model family: a config class, named presets, a builder and a checkpoint map, as plain data.

Families with a Hugging Face counterpart add an :class:`HfInterop` (config.json mapping); families
without one (and encoder models) simply leave it out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from torch import nn

from lmhub.checkpoint.weight_map import WeightMap
from lmhub.models.archs import ArchRegistry
from lmhub.parallel.plan import TpPlan

ModelT = TypeVar("ModelT", bound=nn.Module)
ConfigT = TypeVar("ConfigT")


@dataclass(frozen=True, kw_only=True)
class HfInterop(Generic[ConfigT]):
    """How a family reads and writes a Hugging Face ``config.json``."""

    model_types: tuple[str, ...]
    """The HF ``model_type`` values this family loads (the first one is written on export)."""

    architectures: tuple[str, ...]
    """The HF model classes written into ``architectures`` on export."""

    config_from_hf: Callable[[dict[str, Any]], ConfigT]
    """Builds the lmhub config from a ``config.json`` dict."""

    config_to_hf: Callable[[ConfigT], dict[str, Any]]
    """Builds a ``config.json`` dict (without ``model_type``/``architectures``) from the config."""


@dataclass(frozen=True, kw_only=True)
class ModelFamily(Generic[ModelT, ConfigT]):
    """Everything lmhub needs to know about one family of models.

    Example:
        >>> family = get_family("llama")
        >>> family.archs.get("llama_tiny").model_dim
        256
    """

    name: str
    """The family's name, as cards and the CLI spell it."""

    model_class: type[ModelT]
    """The module class the builder returns."""

    config_class: type[ConfigT]
    """The ``@dataclass(kw_only=True)`` config class."""

    archs: ArchRegistry[ConfigT]
    """The named architecture presets."""

    builder: Callable[[ConfigT], ModelT]
    """Builds a model from a config on the current default device and dtype."""

    weight_map: WeightMap = field(default_factory=lambda: WeightMap([]))
    """Maps external checkpoint keys (e.g. Hugging Face) to the module's own."""

    hf: HfInterop[ConfigT] | None = None
    """The Hugging Face config mapping, for families transformers implements."""

    kind: Literal["decoder", "encoder", "encoder_decoder"] = "decoder"
    """Whether the model is a causal decoder, a bidirectional encoder or both."""

    description: str = ""
    """One line for ``lmhub families``."""

    tp_plan: Callable[[ConfigT, int], TpPlan] | None = None
    """Returns the tensor-parallel plan of a config for a tensor-parallel size (raising
    ``ParallelLayoutError`` when the size does not divide the heads); ``None``: no TP."""
