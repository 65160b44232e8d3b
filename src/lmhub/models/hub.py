"""The model hub: list, configure, create and load the models of one family.

``get_model_hub(family)`` returns a :class:`ModelHub` typed by the family's model and config
classes, so ``hub.load_model(...)`` is known to return, say, a ``LlamaModel``. The untyped
:func:`lmhub.load_model`, which finds the family itself, lives with the one name resolver in
:mod:`lmhub.models.resolve`.

``dtype=None`` means the same everywhere: a load keeps each tensor's stored dtype; a new model
takes torch's default dtype (float32 unless changed, e.g. with :func:`lmhub.default_dtype`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Generic, TypeVar

import torch
from torch import nn

from lmhub.assets.card import AssetCard
from lmhub.assets.hf_cache import local_path
from lmhub.assets.store import AssetStore, default_asset_store
from lmhub.checkpoint.assign import assign_tensors
from lmhub.checkpoint.checksum import verify_checksums
from lmhub.checkpoint.readers import open_checkpoint
from lmhub.checkpoint.save_load import native_items
from lmhub.config import apply_overrides
from lmhub.errors import (
    AssetCardError,
    ConfigError,
    ModelCheckpointError,
    ModelNotKnownError,
    ParallelLayoutError,
)
from lmhub.models.family import ModelFamily
from lmhub.models.materialize import build_on_meta, materialize
from lmhub.models.registry import get_family
from lmhub.parallel.gangs import Gangs
from lmhub.parallel.plan import TpPlan
from lmhub.utils import as_device, as_dtype

ModelT = TypeVar("ModelT", bound=nn.Module)
ConfigT = TypeVar("ConfigT")

PathLike = str | os.PathLike[str]
ConfigArg = Any  # a config instance, a mapping of overrides, or a list of "field=value" strings


def _target_device(device: torch.device | str | None, gangs: Gangs | None) -> torch.device:
    if device is not None and gangs is not None:
        raise ValueError("Pass either `device` or `gangs`, not both: gangs carry their device.")
    if gangs is not None:
        return gangs.device
    return as_device(device)


# The torch.distributed modules below cost 0.6 s to import: only sharded runs pay for them, so
# they are imported inside these two functions rather than with `import lmhub`.


def tp_plan_of(family: ModelFamily[Any, Any], config: Any, gangs: Gangs | None) -> TpPlan | None:
    """The family's tensor-parallel plan for ``gangs.tp`` (``None`` without TP); checked before
    anything is built, so an impossible split fails fast."""
    if gangs is None or gangs.tp.size == 1:
        return None
    if family.tp_plan is None:
        raise ParallelLayoutError(
            f"The '{family.name}' family declares no tensor-parallel plan, so it cannot be split "
            f"over {gangs.tp.size} tensor-parallel ranks. Use tp_size=1 (data parallel only).",
            field="tp_size",
            value=gangs.tp.size,
        )
    return family.tp_plan(config, gangs.tp.size)


def _apply_tp(model: nn.Module, plan: TpPlan | None, gangs: Gangs | None) -> None:
    if plan is not None and gangs is not None:
        from lmhub.parallel.tp import apply_tp

        apply_tp(model, plan, gangs.tp.mesh)  # type: ignore[arg-type]


def _apply_fsdp(model: nn.Module, gangs: Gangs | None) -> None:
    if gangs is not None and gangs.dp.size > 1:
        from lmhub.parallel.fsdp import apply_fsdp

        apply_fsdp(model, gangs.dp.mesh)  # type: ignore[arg-type]


class ModelHub(Generic[ModelT, ConfigT]):
    """Lists, configures, creates and loads the models of one family.

    Example:
        >>> hub = get_model_hub("llama")
        >>> config = hub.get_arch_config("llama_tiny")
        >>> model = hub.create_new_model(config, device="cpu")
    """

    def __init__(self, family: ModelFamily[ModelT, ConfigT], store: AssetStore | None = None):
        self.family = family
        self._store = store

    @property
    def store(self) -> AssetStore:
        """The asset store cards are looked up in."""
        return self._store if self._store is not None else default_asset_store()

    # -- cards and configs ------------------------------------------------------------------

    def iter_cards(self) -> Iterator[AssetCard]:
        """Yield the cards of this family."""
        for card in self.store.iter_cards():
            if card.model_family == self.family.name:
                yield card

    def get_archs(self) -> list[str]:
        """Return the names of the family's architecture presets."""
        return self.family.archs.names()

    def get_arch_config(self, arch: str) -> ConfigT:
        """Return a fresh config for preset ``arch`` (raises ModelArchitectureNotKnownError)."""
        return self.family.archs.get(arch)

    def maybe_get_arch_config(self, arch: str) -> ConfigT | None:
        """Return a fresh config for preset ``arch``, or ``None``."""
        return self.family.archs.maybe_get(arch)

    def _card(self, card_or_name: AssetCard | str) -> AssetCard:
        card = (
            card_or_name
            if isinstance(card_or_name, AssetCard)
            else self.store.get_card(card_or_name)
        )
        family = card.model_family
        if family is not None and family != self.family.name:
            raise AssetCardError(
                f"The card '{card.name}' is for the '{family}' family, not '{self.family.name}'. "
                f"Use get_model_hub('{family}').",
                name=card.name,
                path=card.source,
            )
        return card

    def get_model_config(
        self, card_or_name: AssetCard | str, overrides: ConfigArg = None
    ) -> ConfigT:
        """Return the config of a card (its arch preset plus its ``model_config``) or of an arch.

        ``overrides`` (a mapping or ``"field=value"`` strings) are applied last.
        """
        if isinstance(card_or_name, str) and self.store.maybe_get_card(card_or_name) is None:
            if card_or_name in self.family.archs:
                return apply_overrides(self.get_arch_config(card_or_name), overrides)
            raise ModelNotKnownError(card_or_name, [*self.get_archs(), *self.store.names()])
        card = self._card(card_or_name)
        arch = card.model_arch
        if arch is None:
            raise AssetCardError(
                f"The card '{card.name}'{card._where()} names no 'model_arch'. Add one of: "
                f"{', '.join(self.get_archs())}.",
                name=card.name,
                path=card.source,
            )
        config = apply_overrides(self.get_arch_config(arch), card.model_config)
        return apply_overrides(config, overrides)

    def resolve_config(self, config: ConfigArg, base: ConfigT | None) -> ConfigT:
        """Return ``config`` if it is a config of this family, else ``base`` with ``config`` as
        overrides (a mapping or ``"field=value"`` strings)."""
        if isinstance(config, self.family.config_class):
            return config
        if base is None:
            raise TypeError(
                f"Expected a {self.family.config_class.__name__}, got {type(config).__name__}."
            )
        return apply_overrides(base, config)

    # -- creating ---------------------------------------------------------------------------

    def create_new_model(
        self,
        config: ConfigT,
        *,
        device: torch.device | str | None = None,
        gangs: Gangs | None = None,
        dtype: torch.dtype | str | None = None,
        meta: bool = False,
    ) -> ModelT:
        """Build a randomly initialised model (or, with ``meta=True``, one with no memory at all).

        ``dtype=None`` uses torch's default dtype (float32 unless changed).

        Example:
            >>> model = hub.create_new_model(hub.get_arch_config("llama3_70b"), meta=True)
        """
        target = _target_device(device, gangs)
        resolved_dtype = as_dtype(dtype) or torch.get_default_dtype()
        _validate(config)
        plan = tp_plan_of(self.family, config, gangs)
        model = build_on_meta(self.family.builder, config, resolved_dtype)
        # Split on meta, then allocate: each rank only ever holds its own shards.
        _apply_tp(model, plan, gangs)
        _apply_fsdp(model, gangs)
        if not meta:
            if gangs is None or gangs.root.size == 1:
                _check_fits(model, target)
            materialize(model, target)
        return model

    # -- loading ----------------------------------------------------------------------------

    def iter_checkpoint(
        self,
        path: PathLike,
        config: ConfigT,
        *,
        gangs: Gangs | None = None,
        mmap: bool = True,
        restrict: bool | None = None,
    ) -> Iterator[tuple[str, torch.Tensor]]:
        """Yield the checkpoint's tensors one at a time, converted to this family's key layout.

        Keys that match nothing in a model of ``config`` are yielded unchanged.
        """
        del gangs  # the conversion does not depend on them yet; sharding will
        names = _state_names(build_on_meta(self.family.builder, config, torch.float32))
        reader = open_checkpoint(path, mmap=mmap, restrict=restrict)
        try:
            for native, tensor, key in native_items(
                reader, names, self.family.weight_map.bind(config)
            ):
                yield (native if native is not None else key), tensor
        finally:
            reader.close()

    def load_custom_model(
        self,
        path: PathLike,
        config: ConfigT,
        *,
        device: torch.device | str | None = None,
        gangs: Gangs | None = None,
        dtype: torch.dtype | str | None = None,
        mmap: bool = True,
        restrict: bool | None = None,
        progress: bool = True,
    ) -> ModelT:
        """Build ``config`` on meta and fill it from the checkpoint at ``path``.

        ``dtype=None`` keeps each tensor's stored dtype. ``mmap=True`` (the default) memory-maps
        the files, so tensors already in the right dtype are zero-copy views of the page cache;
        pass ``mmap=False`` to read them into private memory instead. With ``gangs`` whose
        ``tp`` has several ranks, the model is split on meta and each rank reads only its slices
        of the safetensors files (positioned reads, ``mmap`` unused) into its local shards. A
        failed load raises and leaves nothing behind: the half-filled model is dropped.
        """
        target = _target_device(device, gangs)
        resolved_dtype = as_dtype(dtype)
        _validate(config)
        plan = tp_plan_of(self.family, config, gangs)
        reader = open_checkpoint(path, mmap=mmap, restrict=restrict)
        try:
            keys = reader.keys()
            # With dtype=None the meta dtype is a placeholder: tensors keep their stored dtype.
            meta_dtype = resolved_dtype or torch.get_default_dtype()
            model = build_on_meta(self.family.builder, config, meta_dtype)
            items = native_items(
                reader,
                _state_names(model),
                self.family.weight_map.bind(config),
                path=path,
                lazy=plan is not None,
            )
            if plan is not None:
                # Split on meta first; the lazy tensors are then cut to this rank's slices and
                # only those are read from the files.
                from lmhub.parallel.load import shard_items

                _apply_tp(model, plan, gangs)
                items = shard_items(model, items)
            assign_tensors(
                model,
                items,
                device=target,
                dtype=resolved_dtype,
                path=path,
                total=len(keys),
                progress=progress,
            )
        finally:
            reader.close()
        _apply_fsdp(model, gangs)
        return model

    def load_model(
        self,
        card_or_name: AssetCard | str,
        *,
        device: torch.device | str | None = None,
        gangs: Gangs | None = None,
        dtype: torch.dtype | str | None = None,
        config: ConfigArg = None,
        mmap: bool = True,
        restrict: bool | None = None,
        progress: bool = True,
    ) -> ModelT:
        """Load the model a card describes, checking the checkpoint's checksum if the card has one.

        ``config`` is a replacement config or overrides applied on top of the card's;
        ``dtype=None`` keeps each tensor's stored dtype.
        """
        card = self._card(card_or_name)
        base = self.get_model_config(card)
        resolved = self.resolve_config(config, base) if config is not None else base
        checkpoint = card_checkpoint(card)
        if card.checksum:
            verify_checksums(checkpoint, card.checksum)
        return self.load_custom_model(
            checkpoint,
            resolved,
            device=device,
            gangs=gangs,
            dtype=dtype,
            mmap=mmap,
            restrict=restrict,
            progress=progress,
        )


def _state_names(model: nn.Module) -> frozenset[str]:
    return frozenset(model.state_dict(keep_vars=True))


def _validate(config: Any) -> None:
    validate = getattr(config, "validate", None)
    if callable(validate):
        validate()


def _device_memory(device: torch.device) -> int | None:
    """The device's total memory in bytes, where it can be told."""
    if device.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_properties(device).total_memory
    if device.type == "cpu":
        try:
            return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (AttributeError, ValueError, OSError):  # not a POSIX system
            return None
    return None


def _check_fits(model: nn.Module, device: torch.device) -> None:
    """Refuse to allocate a model larger than all of the device's memory: such a size is a typo,
    and trying would end in the OOM killer rather than an error."""
    tensors = {id(t): t for t in model.state_dict(keep_vars=True).values()}.values()
    needed = sum(t.numel() * t.element_size() for t in tensors)
    total = _device_memory(device)
    if total is not None and needed > total:
        raise ConfigError(
            f"The model needs {needed / 2**30:,.1f} GiB for its weights, but the {device.type} "
            f"device has only {total / 2**30:,.1f} GiB in all. Check the config's sizes, or "
            "build it with meta=True to inspect it without memory.",
            value=needed,
        )


def card_checkpoint(card: AssetCard) -> Path:
    """Return the local checkpoint path of a card, resolving ``hf://`` in the local HF cache."""
    location = card.checkpoint
    if location is None:
        raise AssetCardError(
            f"The card '{card.name}'{card._where()} names no checkpoint, so there are no weights "
            "to load. Add a 'checkpoint' field, or create a randomly initialised model with "
            "hub.create_new_model(hub.get_model_config(name)).",
            name=card.name,
            path=card.source,
        )
    path = local_path(location)
    if not path.exists():
        raise ModelCheckpointError(
            f"The checkpoint of card '{card.name}' is not at {path}. Fix the card's "
            "'checkpoint' field or put the files there.",
            path=path,
        )
    return path


_hubs: dict[str, ModelHub[Any, Any]] = {}


def get_model_hub(family: ModelFamily[ModelT, ConfigT] | str) -> ModelHub[ModelT, ConfigT]:
    """Return the hub of a family (a :class:`ModelFamily` keeps the hub's types precise).

    Example:
        >>> from lmhub.models.llama import llama_family
        >>> hub = get_model_hub(llama_family)   # ModelHub[LlamaModel, LlamaConfig]
    """
    fam = get_family(family) if isinstance(family, str) else family
    hub = _hubs.get(fam.name)
    if hub is None or hub.family is not fam:
        hub = _hubs[fam.name] = ModelHub(fam)
    return hub
