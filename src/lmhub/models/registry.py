"""The registry of model families: built-ins, entry points (group ``lmhub.families``), and
families registered at run time with :func:`register_family`."""

from __future__ import annotations

import importlib
import logging
from importlib.metadata import entry_points
from typing import Any

from lmhub.errors import ModelFamilyNotKnownError
from lmhub.models.family import ModelFamily

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "lmhub.families"

# Built-in families, imported on first use so that `import lmhub` stays light.
_BUILTIN_MODULES: tuple[str, ...] = (
    "lmhub.models.llama",
    "lmhub.models.mistral",
    "lmhub.models.qwen2",
    "lmhub.models.qwen3",
    "lmhub.models.gemma",
    "lmhub.models.gemma2",
    "lmhub.models.gemma3",
    "lmhub.models.gemma4",
    "lmhub.models.gpt2",
    "lmhub.models.gpt_neox",
    "lmhub.models.phi3",
    "lmhub.models.granite",
    "lmhub.models.olmo2",
    "lmhub.models.olmo3",
    "lmhub.models.smollm3",
    "lmhub.models.deepseek_v3",
    "lmhub.models.qwen3_5",
    "lmhub.models.mixtral",
    "lmhub.models.qwen3_moe",
    "lmhub.models.gpt_oss",
    "lmhub.models.causal_lm",
    "lmhub.models.single_head",
    "lmhub.models.deepone",
    "lmhub.models.bert",
    "lmhub.models.modernbert",
    "lmhub.models.t5",
    "lmhub.models.transformer",
)

_families: dict[str, ModelFamily[Any, Any]] = {}
_loaded = False


def register_family(family: ModelFamily[Any, Any], *, replace: bool = False) -> None:
    """Add ``family`` to the registry (``replace=True`` to overwrite one of the same name).

    Example:
        >>> register_family(ModelFamily(name="toy", model_class=Toy, config_class=ToyConfig,
        ...                             archs=toy_archs, builder=Toy))
    """
    if not replace and family.name in _families and _families[family.name] is not family:
        raise ValueError(
            f"A model family named '{family.name}' is already registered. "
            "Pass replace=True to overwrite it."
        )
    _families[family.name] = family


def _ensure_loaded() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module_name in _BUILTIN_MODULES:
        module = importlib.import_module(module_name)
        for value in vars(module).values():
            if isinstance(value, ModelFamily):
                _families.setdefault(value.name, value)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
            family = obj() if callable(obj) and not isinstance(obj, ModelFamily) else obj
            if not isinstance(family, ModelFamily):
                raise TypeError(f"it gave {type(family).__name__}, not a ModelFamily")
            _families.setdefault(family.name, family)
        except Exception as exc:  # a broken plugin must not break lmhub itself
            log.warning("Skipping the model family entry point '%s': %s", ep.name, exc)


def list_families() -> list[str]:
    """Return the names of all known model families, sorted.

    Example:
        >>> "llama" in list_families()
        True
    """
    _ensure_loaded()
    return sorted(_families)


def get_family(name: str) -> ModelFamily[Any, Any]:
    """Return the family called ``name``.

    Raises:
        ModelFamilyNotKnownError: listing close matches.
    """
    _ensure_loaded()
    try:
        return _families[name]
    except KeyError:
        raise ModelFamilyNotKnownError(name, list(_families)) from None


def family_for_hf_model_type(model_type: str) -> ModelFamily[Any, Any] | None:
    """Return the family that loads Hugging Face ``model_type``, or ``None``."""
    _ensure_loaded()
    for family in _families.values():
        if family.hf is not None and model_type in family.hf.model_types:
            return family
    return None


def family_of(model: object) -> ModelFamily[Any, Any] | None:
    """Return the family whose model class ``model`` is (exactly, else a subclass), or ``None``.

    Example:
        >>> family_of(model).name
        'llama'
    """
    _ensure_loaded()
    for family in _families.values():
        if type(model) is family.model_class:
            return family
    for family in _families.values():
        if isinstance(model, family.model_class):
            return family
    return None


def find_arch(arch: str) -> ModelFamily[Any, Any] | None:
    """Return the family that has a preset called ``arch``, or ``None``."""
    _ensure_loaded()
    for family in _families.values():
        if arch in family.archs:
            return family
    return None


def all_arch_names() -> list[str]:
    """Return every preset name of every family."""
    _ensure_loaded()
    return [a for f in _families.values() for a in f.archs.names()]
