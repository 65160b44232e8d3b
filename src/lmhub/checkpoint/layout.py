"""Decide once how a checkpoint's tensor names relate to a model's, then rename every tensor alike.

A checkpoint is in one of these layouts:

- **native**: lmhub's own names, as :func:`~lmhub.checkpoint.save_load.save_checkpoint` writes
  them, possibly behind a prefix (a remote-code export stores ``decoder.model.`` + native
  names). lmhub records this in the safetensors metadata (``lmhub.layout``, ``lmhub.key_prefix``).
- **external**: another library's names (Hugging Face's), turned into native ones by the
  family's :class:`~lmhub.checkpoint.weight_map.WeightMap`.

Without lmhub metadata (Hugging Face files, PyTorch pickles) the layout is the one that
explains the most of the checkpoint's names; keys it leaves unexplained are reported as
unexpected by the assignment. A checkpoint that no layout explains at all is an error.

Example:
    >>> layout = decide_layout(reader.keys(), reader.metadata(), model_names, LLAMA_WEIGHT_MAP)
    >>> layout.describe()
    'Hugging Face names through the family weight map'
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Set
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from lmhub.checkpoint.lazy import LazyTensor
from lmhub.checkpoint.weight_map import WeightMap
from lmhub.errors import CheckpointLayoutError

__all__ = [
    "LAYOUT_METADATA_KEY",
    "PREFIX_METADATA_KEY",
    "REMOTE_WEIGHT_PREFIX",
    "TIED_METADATA_KEY",
    "CheckpointLayout",
    "decide_layout",
]

LAYOUT_METADATA_KEY = "lmhub.layout"
"""Safetensors metadata key saying which layout the names are in (``native``)."""

PREFIX_METADATA_KEY = "lmhub.key_prefix"
"""Safetensors metadata key holding a prefix put before every tensor name (e.g. ``model.``)."""

TIED_METADATA_KEY = "lmhub.tied"
"""Safetensors metadata key holding ``{alias: source}`` of tied tensors, as JSON."""

REMOTE_WEIGHT_PREFIX = "decoder.model."
"""Where a remote-code export (``LmhubForCausalLM``) keeps the lmhub model's native names.

A remote-code export loaded and saved again by transformers keeps this prefix but loses lmhub's
metadata, so the prefix is also a layout candidate of its own."""


@dataclass(frozen=True)
class CheckpointLayout:
    """How every name of one checkpoint becomes a native name."""

    kind: Literal["native", "external"]
    """``native``: lmhub names (behind ``prefix``); ``external``: names for ``weight_map``."""

    prefix: str = ""
    """Stripped from every name of a native checkpoint."""

    weight_map: WeightMap | None = None
    """Turns the names (and tensors) of an external checkpoint into native ones."""

    def to_native(self, key: str) -> str | None:
        """Return the native name of ``key``, or ``None`` if this layout does not explain it."""
        if self.kind == "native":
            return key[len(self.prefix) :] if key.startswith(self.prefix) else None
        assert self.weight_map is not None
        return self.weight_map.to_native(key)

    def convert(
        self, items: Iterable[tuple[str, torch.Tensor | LazyTensor]]
    ) -> Iterator[tuple[str | None, torch.Tensor | LazyTensor, str]]:
        """Yield ``(native name or None, tensor, key in file)`` for every ``(key, tensor)``."""
        if self.kind == "native":
            for key, tensor in items:
                yield self.to_native(key), tensor, key
            return
        assert self.weight_map is not None
        yield from self.weight_map.convert_to_native(items)

    def describe(self) -> str:
        """A few words for messages."""
        if self.kind == "external":
            return "Hugging Face names through the family weight map"
        return f"lmhub names behind the prefix {self.prefix!r}" if self.prefix else "lmhub names"


def decide_layout(
    keys: Iterable[str],
    metadata: Mapping[str, str],
    native: Set[str],
    weight_map: WeightMap | None,
    *,
    path: Path | str | None = None,
) -> CheckpointLayout:
    """Decide the layout of a checkpoint from its metadata, else from all its names at once.

    ``native`` holds the model's names (tied aliases included). lmhub's metadata decides when
    present. Otherwise each candidate (lmhub names, lmhub names behind ``decoder.model.``, the
    weight map's names) is scored by how many keys it maps onto a model name; the best wins, earlier
    candidates on a tie.

    Raises:
        CheckpointLayoutError: if the metadata names an unknown layout, or no candidate explains
            a single key of a non-empty checkpoint.
    """
    recorded = metadata.get(LAYOUT_METADATA_KEY)
    prefix = metadata.get(PREFIX_METADATA_KEY)
    if recorded is not None and recorded != "native":
        raise CheckpointLayoutError(
            f"The checkpoint{_at(path)} records the layout {recorded!r} under "
            f"'{LAYOUT_METADATA_KEY}', which this lmhub does not know (it knows 'native'). Save "
            "the checkpoint again with this lmhub, or update lmhub.",
            path=path,
            keys=[],
        )
    if recorded is not None or prefix is not None or TIED_METADATA_KEY in metadata:
        return CheckpointLayout(kind="native", prefix=prefix or "")
    candidates = [
        CheckpointLayout(kind="native"),
        CheckpointLayout(kind="native", prefix=REMOTE_WEIGHT_PREFIX),
    ]
    if weight_map is not None:
        candidates.append(CheckpointLayout(kind="external", weight_map=weight_map))
    names = list(keys)
    if not names:
        return candidates[0]
    scores = [sum(layout.to_native(k) in native for k in names) for layout in candidates]
    best = max(range(len(candidates)), key=lambda i: (scores[i], -i))
    if scores[best] == 0:
        tried = ", ".join(layout.describe() for layout in candidates)
        raise CheckpointLayoutError(
            f"The checkpoint{_at(path)} has no tensor name the model knows under any layout "
            f"tried ({tried}); its names start with {', '.join(map(repr, names[:3]))}. Check "
            "that the checkpoint belongs to this model family"
            + ("" if weight_map is not None else ", or load it with its family's weight map")
            + ".",
            path=path,
            keys=names[:10],
        )
    return candidates[best]


def _at(path: Path | str | None) -> str:
    return f" at {path}" if path is not None else ""
