"""Apply LoRA to a model by module swap, merge it back, and the adapter-only state dict.

Merge design: :func:`merge_lora` folds every adapter into its base weight and swaps each
:class:`LoraLinear` back for its plain ``nn.Linear``, giving a model that saves and exports like
any other. ``merge_lora(model, keep_adapters=True)`` instead folds in place and keeps the
adapters (forward then skips them), so :func:`unmerge_lora` can subtract them again, e.g. to
evaluate merged and keep training.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping

import torch
from torch import nn

from lmhub.errors import AdapterError, ConfigError, StateDictMismatchError, close_matches
from lmhub.models.registry import family_of
from lmhub.peft.config import DEFAULT_TARGETS, FALLBACK_TARGETS, LoraConfig
from lmhub.peft.layer import LoraLinear


def lora_layers(model: nn.Module) -> dict[str, LoraLinear]:
    """Return the model's LoRA layers by module name, in module order."""
    return {name: m for name, m in model.named_modules() if isinstance(m, LoraLinear)}


def linear_names(model: nn.Module) -> list[str]:
    """Return the names of the model's plain ``nn.Linear`` modules, in module order."""
    return [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]


def adaptable_names(model: nn.Module) -> list[str]:
    """The linear layers LoRA can target: plain ones and those already adapted (not their parts).

    With no LoRA applied this is :func:`linear_names`.
    """
    adapted = lora_layers(model)
    return [
        name
        for name, m in model.named_modules()
        if name in adapted or (isinstance(m, nn.Linear) and name.rpartition(".")[0] not in adapted)
    ]


def matches(name: str, pattern: str) -> bool:
    """Whether module ``name`` matches a target ``pattern`` (see ``LoraConfig.targets``).

    >>> matches("layers.0.attn.q_proj", "q_proj"), matches("layers.0.attn.q_proj", "proj")
    (True, False)
    """
    if any(c in pattern for c in "*?["):
        return fnmatch.fnmatchcase(name, pattern)
    return name == pattern or name.endswith("." + pattern)


def default_targets(model: nn.Module) -> list[str]:
    """The target patterns LoRA uses for ``model`` when ``LoraConfig.targets`` is empty."""
    family = family_of(model)
    names = linear_names(model)
    if family is not None and family.name in DEFAULT_TARGETS:
        # Those the model has: a family's sizes may differ in their projections (DeepSeek).
        return [t for t in DEFAULT_TARGETS[family.name] if any(matches(n, t) for n in names)]
    return [t for t in FALLBACK_TARGETS if any(matches(n, t) for n in names)]


def resolve_targets(model: nn.Module, targets: Iterable[str]) -> list[str]:
    """Return the names of the ``nn.Linear`` modules ``targets`` select, in module order.

    Raises:
        ConfigError: (field ``targets``) for a pattern that selects no linear layer, listing
            the layer names the model has.
    """
    names = linear_names(model)
    targets = list(targets)
    for pattern in targets:
        if not any(matches(n, pattern) for n in names):
            leaves = sorted({n.rsplit(".", 1)[-1] for n in names})
            near = close_matches(pattern, leaves + names)
            hint = f" Did you mean {' or '.join(repr(m) for m in near)}?" if near else ""
            raise ConfigError(
                f"The LoRA target '{pattern}' matches none of the model's linear layers.{hint} "
                f"The linear layers are named: {', '.join(leaves)} (full names such as "
                f"'{names[0] if names else '-'}'). Use one of these names or a glob over the "
                "full names.",
                field="targets",
                value=pattern,
            )
    return [n for n in names if any(matches(n, p) for p in targets)]


def apply_lora(model: nn.Module, config: LoraConfig) -> nn.Module:
    """Adapt ``model`` in place with LoRA and return it.

    Each targeted ``nn.Linear`` is swapped for a :class:`LoraLinear` holding it; every other
    parameter is frozen. ``B`` starts at zero, so the output equals the base model's exactly
    until training moves it.

    Raises:
        ConfigError: for a bad config, a target that matches no linear layer, or a model that
            already has LoRA layers.

    Example:
        >>> model = apply_lora(model, LoraConfig(rank=8, alpha=16, targets=["q_proj", "v_proj"]))
        >>> sorted({n.split(".")[-1] for n in trainable_state_dict(model)})
        ['weight']
    """
    config.validate()
    if lora_layers(model):
        raise ConfigError(
            "The model already has LoRA layers. Merge them first (lmhub.peft.merge_lora) or "
            "apply LoRA to the base model.",
            field="targets",
        )
    targets = config.targets or default_targets(model)
    names = resolve_targets(model, targets)
    for p in model.parameters():
        p.requires_grad_(False)
    for name in names:
        base = model.get_submodule(name)
        assert isinstance(base, nn.Linear)
        layer = LoraLinear(
            base,
            rank=config.rank,
            alpha=config.alpha,
            dropout=config.dropout,
            use_rslora=config.use_rslora,
            use_dora=config.use_dora,
        ).train(base.training)  # a new module is in training mode: follow the model's
        _replace(model, name, layer)
    return model


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent_name), leaf, module)


def merge_lora(model: nn.Module, *, keep_adapters: bool = False) -> nn.Module:
    """Fold every adapter into its base weight; return ``model`` (changed in place).

    By default each :class:`LoraLinear` is replaced by its base ``nn.Linear``, now holding
    ``W + scaling * B A``: a plain model that :func:`lmhub.hf.export` writes as an ordinary
    Hugging Face directory. With ``keep_adapters=True`` the adapters stay in place but are
    skipped by forward, until :func:`unmerge_lora` subtracts them again.

    Raises:
        AdapterError: if an adapted weight is tied to another one (``lm_head`` sharing the
            embedding): folding the adapter in would change both.
    """
    layers = lora_layers(model)
    names: dict[int, list[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        names.setdefault(id(p), []).append(name)
    for name, layer in layers.items():
        own = f"{name}.base_layer.weight"
        tied = [n for n in names.get(id(layer.base_layer.weight), []) if n != own]
        if tied and not layer.merged:
            raise AdapterError(
                f"The adapted layer '{name}' shares its weight with {', '.join(tied)} "
                "(tied embeddings), so merging its adapter would change those too. Keep the "
                "adapter unmerged (save_adapter), or leave this layer out of the LoRA targets.",
                key=name,
            )
    for name, layer in layers.items():
        layer.merge()
        if not keep_adapters:
            _replace(model, name, layer.base_layer)
    return model


def unmerge_lora(model: nn.Module) -> nn.Module:
    """Undo ``merge_lora(model, keep_adapters=True)`` in place (exact to float rounding)."""
    for layer in lora_layers(model).values():
        layer.unmerge()
    return model


def trainable_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Return the parameters that train (``requires_grad``), detached, by their model key.

    After :func:`apply_lora` these are exactly the adapter weights, e.g.
    ``layers.0.attn.q_proj.lora_A.weight``: what a LoRA run's checkpoint needs.
    """
    return {name: p.detach() for name, p in model.named_parameters() if p.requires_grad}


def load_trainable_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Copy a :func:`trainable_state_dict` back into ``model`` (which must have the same LoRA).

    Raises:
        StateDictMismatchError: listing every missing, unexpected and mis-shaped key at once.
    """
    want = {name: p for name, p in model.named_parameters() if p.requires_grad}
    missing = [k for k in want if k not in state]
    unexpected = [k for k in state if k not in want]
    shapes = [
        (k, tuple(want[k].shape), tuple(t.shape))
        for k, t in state.items()
        if k in want and want[k].shape != t.shape
    ]
    if missing or unexpected or shapes:
        raise StateDictMismatchError(
            missing=missing, unexpected=unexpected, shape_mismatches=shapes
        )
    with torch.no_grad():
        for k, t in state.items():
            want[k].copy_(t)
