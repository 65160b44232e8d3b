"""Resolve a MODEL argument (a checkpoint directory, a card or an architecture) once, for every
command that takes one (``model construct``, ``model test``, ``generate``).

Order: an existing directory; a card whose checkpoint is on this machine; an architecture
preset (random weights); a card without a checkpoint (random weights from its config). A card
whose checkpoint is missing, with no preset of the same name to fall back on, is an error that
says how to get the weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from lmhub.assets.card import AssetCard
from lmhub.errors import LmhubError, ModelNotKnownError
from lmhub.models.family import ModelFamily

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
    """The dtype ``config.json`` declares, if any."""

    card: AssetCard | None = None
    """The card, when the name was one."""

    @property
    def label(self) -> str:
        """A short description for messages, e.g. ``llama_tiny (llama, random weights)``."""
        weights = "" if self.checkpoint is not None else ", random weights"
        return f"{self.name} ({self.family.name}{weights})"


def resolve_model_source(name: str) -> ModelSource:
    """Resolve ``name`` without loading anything.

    Example:
        >>> resolve_model_source("llama_tiny").kind
        'arch'
    """
    from lmhub.assets.store import default_asset_store
    from lmhub.models.hf_dir import read_hf_dir
    from lmhub.models.hub import card_checkpoint, get_model_hub
    from lmhub.models.registry import all_arch_names, find_arch, get_family

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
        family = get_family(card.require("model_family"))
        checkpoint = None
        if card.checkpoint is not None:
            try:
                checkpoint = card_checkpoint(card)
            except LmhubError:
                if arch_family is None:
                    raise  # the message says how to get the weights
        if checkpoint is not None or arch_family is None:
            config = get_model_hub(family).get_model_config(card)
            return ModelSource(
                name=name, kind="card", family=family, config=config, checkpoint=checkpoint,
                tokenizer=card.tokenizer, card=card,
            )  # fmt: skip
    if arch_family is None:
        raise ModelNotKnownError(name, [*store.names(), *all_arch_names()])
    return ModelSource(
        name=name, kind="arch", family=arch_family, config=arch_family.archs.get(name)
    )


def instantiate(
    source: ModelSource,
    *,
    config: Any = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | str | None = None,
    progress: bool = False,
) -> nn.Module:
    """Load the source's weights into ``config`` (default: the source's), or build it randomly.

    Example:
        >>> model = instantiate(resolve_model_source("llama_tiny"), device="cpu")
    """
    from lmhub.checkpoint.checksum import verify_checksums
    from lmhub.models.hub import get_model_hub

    hub = get_model_hub(source.family)
    config = source.config if config is None else config
    if source.checkpoint is None:
        return hub.create_new_model(config, device=device, dtype=dtype or source.dtype)
    if source.card is not None and source.card.checksum:
        verify_checksums(source.checkpoint, source.card.checksum)
    return hub.load_custom_model(
        source.checkpoint, config, device=device, dtype=dtype or source.dtype, progress=progress
    )


def load_source_tokenizer(source: ModelSource) -> Any:
    """Return the source's tokenizer (an ``lmhub.data.tokenizers.Tokenizer``), or ``None``.

    Raises:
        LmhubError: if the source names a tokenizer that cannot be found or read.
    """
    if source.tokenizer is None:
        return None
    from lmhub.assets.hf_cache import resolve_hf_uri
    from lmhub.data.tokenizers import load_tokenizer

    location = source.tokenizer
    return load_tokenizer(resolve_hf_uri(location) if location.startswith("hf://") else location)
