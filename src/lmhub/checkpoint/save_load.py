"""Save a model's weights in the Hugging Face file layout, and load them back into a model.

:func:`save_checkpoint` writes every parameter and persistent buffer once, under lmhub's own
names, as ``model.safetensors`` (or shards plus ``model.safetensors.index.json``). Tied
parameters (``lm_head.weight`` sharing ``embed.weight``) are stored once and recorded in the
safetensors metadata, so :func:`load_checkpoint` can tie them again. The write is atomic: a
save killed at any instant leaves the previous checkpoint or the new one, never neither.

Example:
    >>> save_checkpoint("ckpt", model, max_shard_size="2GB")
    >>> model = get_model_hub("llama").create_new_model(config, meta=True)
    >>> load_checkpoint("ckpt", model, device="cpu")   # fills the meta model, re-ties lm_head
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Set
from pathlib import Path

import torch
from torch import nn

from lmhub.checkpoint.assign import assign_tensors
from lmhub.checkpoint.layout import (
    LAYOUT_METADATA_KEY,
    PREFIX_METADATA_KEY,
    TIED_METADATA_KEY,
    decide_layout,
)
from lmhub.checkpoint.lazy import LazyTensor
from lmhub.checkpoint.readers import CheckpointReader, open_checkpoint
from lmhub.checkpoint.state import model_tensors
from lmhub.checkpoint.weight_map import WeightMap
from lmhub.checkpoint.writers import save_safetensors_sharded
from lmhub.errors import ModelCheckpointError
from lmhub.utils import as_device

__all__ = [
    "TIED_METADATA_KEY",
    "load_checkpoint",
    "model_tensors",
    "native_items",
    "recorded_ties",
    "save_checkpoint",
]


def save_checkpoint(
    directory: str | os.PathLike[str],
    model: nn.Module,
    *,
    max_shard_size: int | str = "5GB",
    key_prefix: str = "",
) -> list[Path]:
    """Save ``model``'s weights to ``directory`` atomically; return the files written.

    Files other than weight files in ``directory`` (``config.json``...) are kept. ``key_prefix``
    is put before every tensor name (and recorded, so :func:`load_checkpoint` strips it).

    Example:
        >>> save_checkpoint("out", model, max_shard_size="500MB")
        [PosixPath('out/model-00001-of-00003.safetensors'), ...]
    """
    tensors, tied = model_tensors(model)
    meta = [name for name, t in tensors.items() if t.is_meta]
    if meta:
        raise ModelCheckpointError(
            f"The model has {len(meta)} tensors on the meta device (e.g. '{meta[0]}'), which hold "
            "no data to save. Materialise the model or load its weights first.",
            path=directory,
        )
    metadata: dict[str, str] = {LAYOUT_METADATA_KEY: "native"}
    if tied:
        metadata[TIED_METADATA_KEY] = json.dumps(tied, sort_keys=True)
    if key_prefix:
        metadata[PREFIX_METADATA_KEY] = key_prefix
    return save_safetensors_sharded(
        {key_prefix + name: t for name, t in tensors.items()},
        directory,
        max_shard_size=max_shard_size,
        metadata=metadata,
    )


def native_items(
    reader: CheckpointReader,
    native: Set[str],
    weight_map: WeightMap | None,
    *,
    path: str | os.PathLike[str] | None = None,
    lazy: bool = False,
) -> Iterator[tuple[str | None, torch.Tensor | LazyTensor, str]]:
    """Yield ``(native key or None, tensor, key in file)`` for every tensor of ``reader``.

    With ``lazy=True`` the tensors are :class:`~lmhub.checkpoint.lazy.LazyTensor` s (from
    :meth:`~lmhub.checkpoint.readers.CheckpointReader.iter_lazy`, converted by the weight map
    without reading), so the caller reads only the parts it needs.

    The checkpoint's layout is decided once, before the first tensor is read
    (:func:`~lmhub.checkpoint.layout.decide_layout`); ``None`` marks a key it does not explain.

    Raises:
        CheckpointLayoutError: if no layout explains the checkpoint's names.
    """
    layout = decide_layout(reader.keys(), reader.metadata(), native, weight_map, path=path)
    return layout.convert(reader.iter_lazy() if lazy else reader.iter_tensors())


def recorded_ties(metadata: Mapping[str, str], path: str | os.PathLike[str]) -> dict[str, str]:
    """Return the ``{alias: source}`` ties a checkpoint records in its metadata (``{}`` if none).

    Raises:
        ModelCheckpointError: if the record is not JSON or not an object of names to names.
    """
    raw = metadata.get(TIED_METADATA_KEY)
    if raw is None:
        return {}
    try:
        tied = json.loads(raw)
    except (ValueError, RecursionError):
        tied = None
    if not isinstance(tied, dict) or not all(
        isinstance(a, str) and isinstance(s, str) for a, s in tied.items()
    ):
        raise ModelCheckpointError(
            f"The checkpoint at {path} has a '{TIED_METADATA_KEY}' metadata entry that is not a "
            f"JSON object mapping tensor names to tensor names ({raw[:80]!r}). Save the "
            "checkpoint again with save_checkpoint.",
            path=path,
        )
    return tied


def load_checkpoint(
    directory: str | os.PathLike[str],
    model: nn.Module,
    *,
    weight_map: WeightMap | None = None,
    device: torch.device | str | None = None,
    mmap: bool = True,
) -> nn.Module:
    """Load the weights at ``directory`` into ``model`` and return it.

    ``directory`` may hold an lmhub checkpoint (from :func:`save_checkpoint`), the weights of a
    remote-code export, or (given the family's ``weight_map``) a Hugging Face checkpoint.
    :func:`lmhub.load_checkpoint` passes the weight map of the model's family itself. A model
    built on the meta device gets the tensors assigned (on ``device``, default CPU, in the
    model's dtypes; with ``mmap`` no copy is made where they already fit) and its non-persistent
    buffers recomputed; a materialised model has them copied in place (after a move to
    ``device`` if one is given).
    Tied parameters are tied again. Every missing, unexpected and mis-shaped tensor is reported
    together in one :class:`~lmhub.errors.StateDictMismatchError` (the model may then be partly
    filled: build a fresh one to retry).

    Example:
        >>> model = hub.create_new_model(config, meta=True)
        >>> load_checkpoint("ckpt", model, device="cuda")
    """
    tensors, model_tied = model_tensors(model)
    on_meta = any(t.is_meta for t in tensors.values())
    target = as_device(device)  # where a meta model's tensors go
    if not on_meta and device is not None:
        model.to(target)
    reader = open_checkpoint(directory, mmap=mmap)
    try:
        tied = recorded_ties(reader.metadata(), directory)
        names = set(tensors) | set(model_tied)
        # A meta model takes its dtypes from how it was built; None would keep the stored ones.
        dtype = next((t.dtype for t in tensors.values() if t.is_floating_point()), None)
        assign_tensors(
            model,
            native_items(reader, names, weight_map, path=directory),
            device=target,
            dtype=dtype,
            path=directory,
            tied=tied,
        )
    finally:
        reader.close()
    return model
