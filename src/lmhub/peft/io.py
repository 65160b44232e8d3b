"""Adapters in PEFT's on-disk format, read and written without the ``peft`` package.

A directory holds ``adapter_config.json`` (``peft_type: LORA``, ``r``, ``lora_alpha``,
``target_modules``...) and ``adapter_model.safetensors`` whose keys name the Hugging Face
module: ``base_model.model.<hf module>.lora_A.weight`` / ``.lora_B.weight``. lmhub module names
become Hugging Face ones through the family's weight map (the name of the module's ``weight``);
families without a transformers counterpart use the module names of lmhub's remote-code export
(``decoder.model.<lmhub name>``). A weight-map transform of the base weight (e.g. a RoPE
permutation of its rows) is applied to ``lora_B`` and DoRA's ``lora_magnitude_vector``, whose
rows are the weight's output rows.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Final

import torch
from torch import nn

from lmhub.checkpoint.layout import REMOTE_WEIGHT_PREFIX
from lmhub.checkpoint.readers import open_checkpoint
from lmhub.checkpoint.weight_map import WeightMap
from lmhub.checkpoint.writers import atomic_write_text, save_safetensors_sharded
from lmhub.errors import AdapterError, StateDictMismatchError, close_matches
from lmhub.models.registry import family_of
from lmhub.peft.apply import adaptable_names, apply_lora, lora_layers
from lmhub.peft.config import LoraConfig
from lmhub.peft.layer import LoraLinear

ADAPTER_CONFIG: Final = "adapter_config.json"
ADAPTER_WEIGHTS: Final = "adapter_model.safetensors"
PEFT_PREFIX: Final = "base_model.model."
"""What PEFT puts before the transformers model's own parameter names."""

# A PEFT tensor key (less the prefix): the module, then lora_A / lora_B / DoRA's magnitude.
_KEY = re.compile(r"(?P<module>.+)\.(?:lora_(?P<ab>[AB])\.weight|(?P<m>lora_magnitude_vector))\Z")
_SUFFIX: Final = {"A": "lora_A.weight", "B": "lora_B.weight", "M": "lora_magnitude_vector"}

# adapter_config.json keys lmhub does not implement, each with the values that mean "unused".
_UNSUPPORTED: Final[dict[str, tuple[Any, ...]]] = {
    "lora_bias": (None, False),
    "fan_in_fan_out": (None, False),
    "modules_to_save": (None, [], {}),
    "rank_pattern": (None, {}),
    "alpha_pattern": (None, {}),
    "layers_to_transform": (None, [], {}),
    "layers_pattern": (None, [], ""),
    "layer_replication": (None, []),
    "trainable_token_indices": (None, [], {}),
    "target_parameters": (None, []),
    "alora_invocation_tokens": (None, []),
    "use_qalora": (None, False),
    "use_bdlora": (None, False),
    "megatron_config": (None, {}),
}


class _Naming:
    """lmhub module names -> the Hugging Face module names PEFT keys use, for one model.

    Loading inverts this by naming every linear layer of the model (no reverse lookup needed).
    """

    def __init__(self, model: nn.Module) -> None:
        family = family_of(model)
        self.weight_map: WeightMap | None = (
            family.weight_map if family is not None and family.hf is not None else None
        )

    def external(self, native: str) -> str | None:
        if self.weight_map is None:
            return REMOTE_WEIGHT_PREFIX + native
        if self.weight_map.reshapes(native + ".weight"):
            return None  # fused or transposed on the HF side: not one PEFT layer of its own
        key = self.weight_map.to_external(native + ".weight")
        return key.removesuffix(".weight") if key and key.endswith(".weight") else None

    # Tensors whose rows are the base weight's output rows (lora_B, DoRA's magnitude) get the
    # weight's row transform, if its rule has one.
    def rows_to_external(self, native: str, t: torch.Tensor) -> torch.Tensor:
        if self.weight_map is None:
            return t
        items = [(native + ".weight", t.view(-1, 1) if t.dim() == 1 else t)]
        out = next(iter(self.weight_map.convert_to_external(items)))[1]
        return out.view(-1) if t.dim() == 1 else out

    def rows_to_native(self, external: str, t: torch.Tensor) -> torch.Tensor:
        if self.weight_map is None:
            return t
        items = [(external + ".weight", t.view(-1, 1) if t.dim() == 1 else t)]
        out = next(iter(self.weight_map.convert_to_native(items)))[1]
        return out.view(-1) if t.dim() == 1 else out


def _shared_settings(layers: dict[str, LoraLinear], directory: Path) -> LoraLinear:
    first = next(iter(layers.values()))
    settings = {(x.rank, x.alpha, x.dropout, x.use_rslora, x.use_dora) for x in layers.values()}
    if len(settings) > 1:
        raise AdapterError(
            f"The model's LoRA layers differ in rank, alpha, dropout, rsLoRA or DoRA "
            f"({sorted(settings)}"
            f"), which one {ADAPTER_CONFIG} cannot describe. Apply one LoraConfig to the model.",
            path=directory,
        )
    return first


def _target_modules(external: dict[str, str], adapted: Iterable[str]) -> list[str]:
    """PEFT ``target_modules`` selecting exactly ``adapted`` (external names) among all linears.

    A leaf name (``q_proj``) where every linear of that leaf is adapted, else the full names.
    """
    adapted = set(adapted)
    by_leaf: dict[str, list[str]] = {}
    for ext in external.values():
        by_leaf.setdefault(ext.rsplit(".", 1)[-1], []).append(ext)
    targets: list[str] = []
    for leaf, names in sorted(by_leaf.items()):
        chosen = [n for n in names if n in adapted]
        targets += [leaf] if chosen == names else chosen
    return targets


def save_adapter(
    model: nn.Module,
    directory: str | os.PathLike[str],
    *,
    base_model_name_or_path: str | None = None,
) -> Path:
    """Write ``model``'s LoRA adapters as a PEFT adapter directory and return its path.

    ``peft.PeftModel.from_pretrained(hf_model, directory)`` applies it to the transformers
    model of the same base weights, and :func:`load_adapter` to an lmhub one. Both files are
    written atomically; other files in ``directory`` are left alone.

    Args:
        base_model_name_or_path: the base model's Hub id or path, recorded for PEFT (which
            loads the base from it in ``AutoPeftModelForCausalLM``).

    Raises:
        AdapterError: if the model has no LoRA layers, or one its family cannot name in
            Hugging Face form.
    """
    directory = Path(directory)
    layers = lora_layers(model)
    if not layers:
        raise AdapterError(
            f"The model has no LoRA layers, so there is no adapter to save to {directory}. "
            "Apply LoRA first with lmhub.peft.apply_lora.",
            path=directory,
        )
    first = _shared_settings(layers, directory)
    naming = _Naming(model)
    external: dict[str, str] = {}
    for name in adaptable_names(model):
        ext = naming.external(name)
        if ext is not None:
            external[name] = ext
        elif name in layers:
            raise AdapterError(
                f"The adapted layer '{name}' has no Hugging Face layer of its own (the family's "
                "weight map has no name for it, or fuses or transposes it, as GPT-2's c_attn), "
                "so PEFT could not find it. Leave it out of the LoRA targets, or fold the "
                "adapter in with merge_lora and export the merged model.",
                path=directory,
                key=name,
            )
    tensors: dict[str, torch.Tensor] = {}
    for name, layer in layers.items():
        ext = external[name]
        tensors[f"{PEFT_PREFIX}{ext}.lora_A.weight"] = layer.lora_A.weight.detach()
        b = naming.rows_to_external(name, layer.lora_B.weight.detach())
        tensors[f"{PEFT_PREFIX}{ext}.lora_B.weight"] = b
        if layer.lora_magnitude_vector is not None:
            m = naming.rows_to_external(name, layer.lora_magnitude_vector.detach())
            tensors[f"{PEFT_PREFIX}{ext}.lora_magnitude_vector"] = m
    config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base_model_name_or_path,
        "r": first.rank,
        "lora_alpha": first.alpha,
        "lora_dropout": first.dropout,
        "use_rslora": first.use_rslora,
        "use_dora": first.use_dora,
        "bias": "none",
        "target_modules": _target_modules(external, (external[n] for n in layers)),
        "fan_in_fan_out": False,
        "init_lora_weights": True,
        "inference_mode": True,
        "modules_to_save": None,
        "rank_pattern": {},
        "alpha_pattern": {},
        "layers_to_transform": None,
        "layers_pattern": None,
        "revision": None,
    }
    directory.mkdir(parents=True, exist_ok=True)
    total = sum(t.nbytes for t in tensors.values())
    save_safetensors_sharded(
        tensors, directory, max_shard_size=total + 1, filename_prefix="adapter_model"
    )
    atomic_write_text(directory / ADAPTER_CONFIG, json.dumps(config, indent=2) + "\n")
    return directory


# -- loading ------------------------------------------------------------------------------------


def _read_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise AdapterError(
            f"The adapter directory {path.parent} has no {ADAPTER_CONFIG}. Pass a directory "
            "written by PEFT's save_pretrained or lmhub.peft.save_adapter.",
            path=path,
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AdapterError(
            f"The file {path} is not valid JSON ({exc}). Fix it or save the adapter again.",
            path=path,
        ) from None
    if not isinstance(data, dict):
        raise AdapterError(
            f"The file {path} holds a JSON {type(data).__name__}, not an object of adapter "
            "settings. Save the adapter again.",
            path=path,
        )
    return data


def _setting(data: dict[str, Any], key: str, check: Any, what: str, path: Path) -> Any:
    value = data.get(key)
    if not check(value):
        raise AdapterError(
            f"The key '{key}' in {path} is {json.dumps(value)}, but it must be {what}. "
            "Fix the file or save the adapter again.",
            path=path,
            key=key,
            value=value,
        )
    return value


def _lora_config(data: dict[str, Any], path: Path) -> tuple[LoraConfig, Any, Any]:
    """Validate ``adapter_config.json``; return the config and (target_modules, exclude)."""
    peft_type = data.get("peft_type")
    if peft_type != "LORA":
        raise AdapterError(
            f"The key 'peft_type' in {path} is {json.dumps(peft_type)}, but lmhub loads only "
            'LoRA adapters ("LORA").',
            path=path,
            key="peft_type",
            value=peft_type,
        )
    task = data.get("task_type")
    if task not in (None, "CAUSAL_LM"):
        raise AdapterError(
            f"The key 'task_type' in {path} is {json.dumps(task)}, but lmhub's models are "
            "causal language models: load adapters with task_type CAUSAL_LM (or none).",
            path=path,
            key="task_type",
            value=task,
        )
    for key, unused in _UNSUPPORTED.items():
        if data.get(key) not in unused:
            raise AdapterError(
                f"The key '{key}' in {path} is {json.dumps(data[key])}, a PEFT feature lmhub "
                f"does not support yet. Use an adapter saved without it ({key}: "
                f"{json.dumps(unused[1])}).",
                path=path,
                key=key,
                value=data[key],
            )
    bias = data.get("bias", "none")
    if bias != "none":
        raise AdapterError(
            f"The key 'bias' in {path} is {json.dumps(bias)}, but lmhub supports only \"none\" "
            "(adapters that train no biases).",
            path=path,
            key="bias",
            value=bias,
        )

    def is_number(v: object) -> bool:
        return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)

    def is_patterns(v: object) -> bool:
        return isinstance(v, str) or (
            isinstance(v, list) and bool(v) and all(isinstance(x, str) for x in v)
        )

    rank = _setting(
        data,
        "r",
        lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0,
        "a whole number of at least 1",
        path,
    )
    alpha = _setting(data, "lora_alpha", is_number, "a number", path)
    dropout = _setting(
        data,
        "lora_dropout",
        lambda v: v is None or (is_number(v) and 0 <= v < 1),
        "a number from 0 up to (not including) 1",
        path,
    )
    rslora = _setting(
        data, "use_rslora", lambda v: v is None or isinstance(v, bool), "true or false", path
    )
    dora = _setting(
        data, "use_dora", lambda v: v is None or isinstance(v, bool), "true or false", path
    )
    targets = _setting(
        data, "target_modules", is_patterns, "a module-name regex or a list of names", path
    )
    exclude = _setting(
        data,
        "exclude_modules",
        lambda v: v is None or is_patterns(v) or v == [],
        "a regex, a list of names or null",
        path,
    )
    config = LoraConfig(
        rank=rank,
        alpha=alpha,
        dropout=float(dropout or 0.0),
        use_rslora=bool(rslora),
        use_dora=bool(dora),
    )
    return config, targets, exclude or None


def _peft_matches(name: str, patterns: str | Sequence[str]) -> bool:
    """PEFT's rule: a string is a regex over the whole name; a list holds names or suffixes."""
    if isinstance(patterns, str):
        return re.fullmatch(patterns, name) is not None
    return any(name == p or name.endswith("." + p) for p in patterns)


def _targeted(
    external: list[str], targets: str | list[str], exclude: Any, path: Path, output: str | None
) -> list[str]:
    """The external names ``target_modules`` (less ``exclude_modules``) select.

    ``output`` is the external name of the output projection, which ``all-linear`` leaves out.
    """
    if isinstance(targets, str) and targets.lower() == "all-linear":
        # PEFT's shorthand: every linear layer but the output projection.
        chosen = [e for e in external if e != output]
    else:
        if isinstance(targets, list):
            leaves = sorted({e.rsplit(".", 1)[-1] for e in external})
            for t in targets:
                if not any(_peft_matches(e, [t]) for e in external):
                    near = close_matches(t, leaves + external)
                    hint = f" Did you mean {' or '.join(repr(m) for m in near)}?" if near else ""
                    raise AdapterError(
                        f"The target module '{t}' in the key 'target_modules' of {path} matches "
                        f"none of the model's linear layers.{hint} The model's linear layers "
                        f"are: {', '.join(leaves)}. Check that the adapter was trained for this "
                        "model's architecture.",
                        path=path,
                        key="target_modules",
                        value=t,
                    )
        chosen = [e for e in external if _peft_matches(e, targets)]
    if exclude:
        chosen = [e for e in chosen if not _peft_matches(e, exclude)]
    if not chosen:
        raise AdapterError(
            f"The key 'target_modules' in {path} ({json.dumps(targets)}) selects none of the "
            f"model's linear layers (such as {', '.join(external[:3])}). Check that the adapter "
            "was trained for this model's architecture.",
            path=path,
            key="target_modules",
            value=targets,
        )
    return chosen


def load_adapter(model: nn.Module, directory: str | os.PathLike[str]) -> nn.Module:
    """Apply the PEFT-format LoRA adapter in ``directory`` to ``model`` (in place) and return it.

    ``model`` is the loaded base model (no LoRA yet); the adapter's layers are wrapped with
    :func:`apply_lora` and their weights copied in (cast to the model's dtype). Every missing,
    unexpected and mis-shaped tensor is reported at once.

    Raises:
        AdapterError: naming the file and key of a missing file, an unsupported or malformed
            setting, a target that matches no layer, or tensors whose rank is not ``r``.
        StateDictMismatchError: for missing, unexpected or mis-shaped adapter tensors.

    Example:
        >>> model = load_adapter(lmhub.load_model("path/to/base"), "path/to/adapter")
    """
    directory = Path(directory)
    config_path = directory / ADAPTER_CONFIG
    config, targets, exclude = _lora_config(_read_config(config_path), config_path)
    weights_path = directory / ADAPTER_WEIGHTS
    if not weights_path.is_file():
        other = (
            " (it has adapter_model.bin: lmhub reads only safetensors)"
            if (directory / "adapter_model.bin").is_file()
            else ""
        )
        raise AdapterError(
            f"The adapter directory {directory} has no {ADAPTER_WEIGHTS}{other}. Save the "
            "adapter with safe_serialization=True (PEFT's default) or lmhub.peft.save_adapter.",
            path=weights_path,
        )
    if lora_layers(model):
        raise AdapterError(
            f"The model already has LoRA layers, so the adapter {directory} cannot be added. "
            "Load it into the base model, or merge the present adapters first.",
            path=directory,
        )
    naming = _Naming(model)
    native_of = {e: n for n in adaptable_names(model) if (e := naming.external(n)) is not None}
    output = naming.external("lm_head")
    chosen = _targeted(list(native_of), targets, exclude, config_path, output)
    linears = {e: model.get_submodule(native_of[e]) for e in chosen}

    found: dict[tuple[str, str], torch.Tensor] = {}
    unexpected: list[str] = []
    with open_checkpoint(weights_path) as reader:
        for key, tensor in reader.iter_tensors():
            m = _KEY.match(key.removeprefix(PEFT_PREFIX)) if key.startswith(PEFT_PREFIX) else None
            kind = (m["ab"] or "M") if m else ""
            if m is None or m["module"] not in linears or (kind == "M" and not config.use_dora):
                unexpected.append(key)
            else:
                found[(m["module"], kind)] = tensor
    kinds = "ABM" if config.use_dora else "AB"
    missing = [
        f"{PEFT_PREFIX}{e}.{_SUFFIX[k]}" for e in chosen for k in kinds if (e, k) not in found
    ]
    shapes: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = []
    for (ext, kind), t in found.items():
        lin = linears[ext]
        want = {
            "A": (config.rank, lin.in_features),
            "B": (lin.out_features, config.rank),
            "M": (lin.out_features,),
        }[kind]
        got = tuple(t.shape)
        if got == want:
            continue
        key = f"{PEFT_PREFIX}{ext}.{_SUFFIX[kind]}"
        rank_dim = 0 if kind == "A" else 1
        if kind != "M" and len(got) == 2 and got[1 - rank_dim] == want[1 - rank_dim]:
            raise AdapterError(
                f"The tensor '{key}' in {weights_path} has rank {got[rank_dim]}, but the key 'r' "
                f"in {config_path} says {config.rank}. Fix 'r' (lmhub does not read "
                "rank_pattern) or save the adapter again.",
                path=weights_path,
                key=key,
                value=got[rank_dim],
            )
        shapes.append((key, want, got))
    if missing or unexpected or shapes:
        raise StateDictMismatchError(
            missing=missing, unexpected=unexpected, shape_mismatches=shapes, path=weights_path
        )

    config.targets = [native_of[e] for e in chosen]
    apply_lora(model, config)
    layers = lora_layers(model)
    with torch.no_grad():
        for ext in chosen:
            layer = layers[native_of[ext]]
            layer.lora_A.weight.copy_(found[(ext, "A")])
            layer.lora_B.weight.copy_(naming.rows_to_native(ext, found[(ext, "B")]))
            if layer.lora_magnitude_vector is not None:
                layer.lora_magnitude_vector.copy_(naming.rows_to_native(ext, found[(ext, "M")]))
    return model
