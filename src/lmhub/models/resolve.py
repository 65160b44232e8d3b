"""The one resolver of "what is this name?", and :func:`load_model`, built on it.

:func:`lmhub.load_model` and every command that takes a MODEL argument (``model construct``,
``model test``, ``generate``) resolve names here, in this order:

1. an :class:`~lmhub.assets.card.AssetCard` object: that card;
2. an existing directory: a checkpoint directory, its family read from ``config.json``;
3. a card name: the card, if its checkpoint is on this machine. A card without local weights
   yields to the architecture preset of the same name if there is one; otherwise a card without
   a ``checkpoint`` field describes a randomly initialised model, and one whose checkpoint is
   missing is an error that says how to get the weights;
4. an architecture preset name: a randomly initialised model of that preset.

``require_weights=True`` (what :func:`load_model` passes) makes steps 3 and 4 refuse what
would end in random weights, with a message saying how to get weights.

``dtype=None`` means one thing on every path: a load keeps each tensor's stored dtype; a new
(randomly initialised) model takes the dtype its checkpoint directory's ``config.json`` declares,
else torch's default dtype (float32 unless changed, e.g. with :func:`lmhub.default_dtype`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from lmhub.assets.card import AssetCard
from lmhub.assets.hf_cache import local_path
from lmhub.assets.store import default_asset_store
from lmhub.errors import AssetCardError, LmhubError, ModelNotKnownError
from lmhub.models.family import ModelFamily
from lmhub.models.hf_dir import read_hf_dir
from lmhub.models.hub import ConfigArg, card_checkpoint, get_model_hub
from lmhub.models.registry import all_arch_names, find_arch, get_family
from lmhub.parallel.gangs import Gangs
from lmhub.peft.io import load_adapter

TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")


@dataclass(frozen=True, kw_only=True)
class ModelSource:
    """What a model name resolved to."""

    name: str
    """The name or path as given."""

    kind: Literal["checkpoint", "card", "arch"]
    """What the name turned out to be."""

    family: ModelFamily[Any, Any]
    """The model family."""

    config: Any
    """The resolved config (preset plus card overrides, or read from ``config.json``)."""

    checkpoint: Path | None = None
    """Local weights to load; ``None`` means random initialisation."""

    tokenizer: str | None = None
    """Where a tokenizer is: a local path, or an ``hf://`` URI from a card."""

    dtype: torch.dtype | None = None
    """The dtype ``config.json`` declares, if any: that of a new model built from this source
    when no dtype is asked for (loads keep the stored dtypes)."""

    card: AssetCard | None = None
    """The card, when the name was one."""

    adapter: Path | None = None
    """A PEFT LoRA adapter directory (a card's ``adapter``) applied once the model is built."""

    @property
    def label(self) -> str:
        """A short description for messages, e.g. ``llama_tiny (llama, random weights)``."""
        weights = "" if self.checkpoint is not None else ", random weights"
        return f"{self.name} ({self.family.name}{weights})"


def resolve_model_source(
    model: AssetCard | str | os.PathLike[str], *, require_weights: bool = False
) -> ModelSource:
    """Resolve ``model`` without loading anything (the order is in the module docstring).

    Raises:
        ModelNotKnownError: for a name that is none of the above, with close matches.
        LmhubError: for a card whose weights are missing (or, with ``require_weights``, a name
            that has no weights), saying how to get them.

    Example:
        >>> resolve_model_source("llama_tiny").kind
        'arch'
    """
    if isinstance(model, AssetCard):
        return _card_source(model.name, model, require_weights, fallback=None)
    name = os.fspath(model)
    path = Path(name)
    if path.is_dir():
        family, config, dtype = read_hf_dir(path)
        has_tokenizer = any((path / f).is_file() for f in TOKENIZER_FILES)
        return ModelSource(
            name=name, kind="checkpoint", family=family, config=config, checkpoint=path,
            tokenizer=str(path) if has_tokenizer else None, dtype=dtype,
        )  # fmt: skip
    store = default_asset_store()
    card = store.maybe_get_card(name)
    arch_family = find_arch(name)
    if card is not None:
        source = _card_source(name, card, require_weights, fallback=arch_family)
        if source is not None:
            return source
    if arch_family is None:
        raise ModelNotKnownError(name, [*store.names(), *all_arch_names()])
    if require_weights:
        raise AssetCardError(
            f"'{name}' is an architecture of the '{arch_family.name}' family, which has no "
            f"weights to load. For random weights use lmhub.get_model_hub('{arch_family.name}')"
            f".create_new_model(hub.get_arch_config('{name}')); to load weights pass a card "
            "or a checkpoint directory.",
            name=name,
        )
    return ModelSource(
        name=name, kind="arch", family=arch_family, config=arch_family.archs.get(name)
    )


def _card_source(
    name: str,
    card: AssetCard,
    require_weights: bool,
    fallback: ModelFamily[Any, Any] | None,
) -> Any:
    """The source of a card, or ``None`` to fall back to the preset of the same name."""
    family = get_family(card.require("model_family"))
    checkpoint = None
    if card.checkpoint is not None or require_weights:
        try:
            checkpoint = card_checkpoint(card)
        except LmhubError:
            if fallback is None or require_weights:
                raise  # the message says how to get the weights
    if checkpoint is None and fallback is not None:
        return None  # random weights either way: the preset's
    config = get_model_hub(family).get_model_config(card)
    return ModelSource(
        name=name, kind="card", family=family, config=config, checkpoint=checkpoint,
        tokenizer=card.tokenizer, card=card,
        adapter=local_path(card.get("adapter")) if card.get("adapter") else None,
    )  # fmt: skip


def instantiate(
    source: ModelSource,
    *,
    config: ConfigArg = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | str | None = None,
    gangs: Gangs | None = None,
    mmap: bool = True,
    restrict: bool | None = None,
    progress: bool = False,
) -> nn.Module:
    """Load the source's weights, or build it randomly when it has none; then apply the
    source's LoRA adapter, if any (unmerged, so it can keep training or be merged).

    ``config`` replaces the source's config, or overrides it (a mapping or ``"field=value"``
    strings). ``dtype=None``: see the module docstring. A card's checksum is verified first.

    Example:
        >>> model = instantiate(resolve_model_source("llama_tiny"), device="cpu")
    """
    model = _instantiate_base(
        source,
        config=config,
        device=device,
        dtype=dtype,
        gangs=gangs,
        mmap=mmap,
        restrict=restrict,
        progress=progress,
    )
    return load_adapter(model, source.adapter) if source.adapter is not None else model


def _instantiate_base(
    source: ModelSource,
    *,
    config: ConfigArg,
    device: torch.device | str | None,
    dtype: torch.dtype | str | None,
    gangs: Gangs | None,
    mmap: bool,
    restrict: bool | None,
    progress: bool,
) -> nn.Module:
    hub = get_model_hub(source.family)
    resolved = hub.resolve_config(config, source.config) if config is not None else source.config
    if source.checkpoint is None:
        return hub.create_new_model(
            resolved, device=device, gangs=gangs, dtype=dtype or source.dtype
        )
    if source.card is not None:  # the hub checks the card's checksum
        return hub.load_model(
            source.card,
            config=resolved,
            device=device,
            gangs=gangs,
            dtype=dtype,
            mmap=mmap,
            restrict=restrict,
            progress=progress,
        )
    return hub.load_custom_model(
        source.checkpoint,
        resolved,
        device=device,
        gangs=gangs,
        dtype=dtype,
        mmap=mmap,
        restrict=restrict,
        progress=progress,
    )


def load_model(
    model: AssetCard | str | os.PathLike[str],
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | str | None = None,
    gangs: Gangs | None = None,
    config: ConfigArg = None,
    mmap: bool = True,
    restrict: bool | None = None,
    progress: bool = True,
) -> nn.Module:
    """Load a model's weights from a card, a card name, or a checkpoint directory.

    Names resolve as the module docstring says, refusing what has no weights. ``dtype=None``
    keeps each tensor's stored dtype; ``config`` replaces or overrides the resolved config.

    Example:
        >>> model = lmhub.load_model("path/to/hf_llama", dtype="bfloat16", mmap=True)
    """
    source = resolve_model_source(model, require_weights=True)
    return instantiate(
        source,
        config=config,
        device=device,
        dtype=dtype,
        gangs=gangs,
        mmap=mmap,
        restrict=restrict,
        progress=progress,
    )


def load_source_tokenizer(source: ModelSource) -> Any:
    """Return the source's tokenizer (an ``lmhub.data.tokenizers.Tokenizer``), or ``None``.

    Raises:
        LmhubError: if the source names a tokenizer that cannot be found or read.
    """
    if source.tokenizer is None:
        return None
    from lmhub.data.tokenizers import load_tokenizer  # tokenizers are heavy; only on use

    return load_tokenizer(local_path(source.tokenizer))
