"""Export an lmhub model as a directory that ``transformers`` loads.

Two forms, picked by :func:`export`:

* **native**, for families transformers implements (``family.hf`` is set): ``config.json`` with
  the Hugging Face ``model_type`` and fields, ``generation_config.json``, and the weights under
  Hugging Face tensor names (the family's weight map, run backwards). Plain
  ``AutoModelForCausalLM.from_pretrained(dir)`` loads it.
* **remote code**, for every other family (or on request): ``config.json`` with an ``auto_map``,
  a generated ``configuration_lmhub_<family>.py`` and ``modeling_lmhub_<family>.py``, and a copy
  of every lmhub source file the model needs, its imports rewritten so that nothing imports
  lmhub. ``from_pretrained(dir, trust_remote_code=True)`` then runs lmhub's own code.

Weights (``model.safetensors`` or shards plus an index; ``pytorch_model.bin`` on request) are
written when the model has them, i.e. is not on the meta device. The directory is built next to
its final place and swapped in, so readers never see half an export; an existing directory with
the same content is left alone, and one with different content is replaced only with
``overwrite=True``.

Example:
    >>> model = get_model_hub("llama").create_new_model(llama_archs.get("llama_tiny"))
    >>> export(model, "out/llama_tiny")                      # native Hugging Face directory
    >>> export(model, "out/llama_tiny_rc", remote_code=True)  # self-contained remote code
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

import lmhub
from lmhub.checkpoint.checksum import sha256_file
from lmhub.checkpoint.layout import REMOTE_WEIGHT_PREFIX
from lmhub.checkpoint.save_load import model_tensors, save_checkpoint
from lmhub.checkpoint.writers import save_safetensors_sharded
from lmhub.data.tokenizers import Tokenizer, load_tokenizer
from lmhub.errors import ConfigError, ExportError
from lmhub.hf.remote_code import bundle_sources, flat_module_name, importable_name
from lmhub.hf.tokenizer_files import write_tokenizer_files
from lmhub.models.family import ModelFamily
from lmhub.models.hf_dir import (
    encode_field_name,
    encode_fields,
    native_config_json,
    read_hf_dir,
    remote_code_attribute_map,
    remote_code_config_json,
    write_config_json,
)
from lmhub.models.registry import family_of, get_family

__all__ = ["ExportResult", "export", "find_family", "read_exported_config"]

read_exported_config = read_hf_dir
"""Return ``(family, config, dtype)`` of an export or any Hugging Face directory lmhub reads."""

# The transformers classes of an export: a copy of the ones to_hf_api uses, so both run one code.
TEMPLATE_MODULE = "lmhub.hf.adapters.lmhub_model"
# family kind -> (template module, its class the generated one subclasses, Auto class)
REMOTE_CODE_CLASSES: dict[str, tuple[str, str, str]] = {
    "decoder": (TEMPLATE_MODULE, "LmhubForCausalLM", "AutoModelForCausalLM"),
    "encoder_decoder": (
        "lmhub.hf.adapters.lmhub_seq2seq",
        "LmhubForConditionalGeneration",
        "AutoModelForSeq2SeqLM",
    ),
}
SPECIAL_ID_FIELDS = ("bos_token_id", "eos_token_id", "pad_token_id")


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export` did."""

    path: Path
    """The export directory."""

    kind: Literal["native", "remote_code"]
    """A native Hugging Face directory, or a remote-code one."""

    family: str
    """The model's family."""

    files: tuple[str, ...]
    """The files in the directory, sorted."""

    changed: bool
    """False when the directory already held exactly this export and was left alone."""

    weights: bool
    """Whether weights were written."""


def find_family(model: nn.Module) -> ModelFamily[Any, Any]:
    """Return the registered family whose model class ``model`` is (or subclasses).

    Raises:
        ExportError: if no family builds this class.
    """
    family = family_of(model)
    if family is not None:
        return family
    raise ExportError(
        f"The model is a {type(model).__name__}, which no registered model family builds. "
        "Register its family with lmhub.register_family, or pass family=... ."
    )


def _class_stem(family: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^0-9A-Za-z]+", family))


def _model_type(family: str) -> str:
    return "lmhub_" + re.sub(r"[^0-9A-Za-z]+", "_", family).strip("_").lower()


def _dtype_name(model: nn.Module) -> str:
    for tensor in model.parameters():
        if tensor.is_floating_point():
            return str(tensor.dtype).removeprefix("torch.")
    return "float32"


def _json(data: Any) -> str:
    return json.dumps(data, indent=2) + "\n"


def _tree_digest(directory: Path) -> str:
    """A sha256 over every file's relative path and content."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(path.relative_to(directory).as_posix().encode() + b"\0")
        digest.update(bytes.fromhex(sha256_file(path)))
    return digest.hexdigest()


def _publish(staging: Path, target: Path, overwrite: bool) -> bool:
    """Move ``staging`` to ``target``; return False if ``target`` already held the same files."""
    if target.is_dir() and not any(target.iterdir()):
        target.rmdir()
    if not target.exists():
        staging.rename(target)
        return True
    if not target.is_dir():
        raise ExportError(
            f"The export path {target} is a file, not a directory. Pass a directory path.",
            path=target,
        )
    if _tree_digest(target) == _tree_digest(staging):
        return False
    if not overwrite:
        raise ExportError(
            f"The directory {target} already exists with different contents. Pass --refresh "
            "(overwrite=True) to replace it, or choose another output directory.",
            path=target,
        )
    old = target.with_name(f".{target.name}.old-{secrets.token_hex(4)}")
    target.rename(old)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)
    return True


def _align_with_tokenizer(config: Any, tokenizer: Tokenizer) -> Any:
    """Check the vocabulary fits and take the special token ids from the tokenizer."""
    vocab = getattr(config, "vocab_size", None)
    if isinstance(vocab, int) and tokenizer.vocab_size > vocab:
        raise ExportError(
            f"The tokenizer has {tokenizer.vocab_size} tokens but the model only {vocab} "
            "embeddings, so some token ids would have none. Set vocab_size to at least "
            f"{tokenizer.vocab_size} (e.g. --set vocab_size={tokenizer.vocab_size}) or use "
            "another tokenizer."
        )
    names = {f.name for f in dataclasses.fields(config)}
    updates = {}
    for name in SPECIAL_ID_FIELDS:
        ours, theirs = getattr(config, name, None), getattr(tokenizer, name)
        if name not in names or theirs is None or ours == theirs:
            continue
        if isinstance(ours, list) and theirs in ours:
            continue  # several end tokens (Llama 3 instruct), the tokenizer's among them
        updates[name] = theirs
    return dataclasses.replace(config, **updates) if updates else config


def _generation_config(config: Any, model: nn.Module) -> dict[str, Any]:
    data = {
        name: getattr(config, name)
        for name in SPECIAL_ID_FIELDS
        if getattr(config, name, None) is not None
    }
    if getattr(config, "decoder_start_token_id", None) is not None:
        data["decoder_start_token_id"] = config.decoder_start_token_id
    if not getattr(type(model), "supports_kv_cache", False):
        data["use_cache"] = False
    return data


def _write_weights(
    tensors: dict[str, torch.Tensor],
    directory: Path,
    *,
    safetensors: bool,
    max_shard_size: int | str,
) -> None:
    if safetensors:
        save_safetensors_sharded(tensors, directory, max_shard_size=max_shard_size)
    else:
        torch.save(
            {name: t.detach().cpu().contiguous() for name, t in tensors.items()},
            directory / "pytorch_model.bin",
        )


def _write_native(
    staging: Path,
    family: ModelFamily[Any, Any],
    config: Any,
    model: nn.Module,
    *,
    weights: bool,
    safetensors: bool,
    max_shard_size: int | str,
) -> None:
    write_config_json(staging, native_config_json(family, config, _dtype_name(model)))
    (staging / "generation_config.json").write_text(
        _json(_generation_config(config, model)), encoding="utf-8"
    )
    if weights:
        native, _ = model_tensors(model)
        try:
            external = dict(family.weight_map.bind(config).convert_to_external(native.items()))
        except KeyError as exc:
            raise ExportError(
                f"The '{family.name}' family's weight map cannot name every tensor in Hugging "
                f"Face form: {exc.args[0]} Add a rule for it, or export with remote_code=True."
            ) from None
        _write_weights(external, staging, safetensors=safetensors, max_shard_size=max_shard_size)


_CONFIGURATION_PY = '''\
"""The transformers config of an exported lmhub '{family}' model.

Generated by lmhub {version}. Its fields are those of lmhub's {config_class} (the few whose
names transformers reserves get an ``lmhub_`` prefix); the defaults are the exported model's.
"""

import copy
import json

from transformers import PretrainedConfig

LMHUB_DEFAULTS = json.loads({defaults})


class {config_name}(PretrainedConfig):
    model_type = "{model_type}"
    attribute_map = {attribute_map}
    lmhub_family = "{family}"
    # lmhub field -> the attribute holding it, for names transformers reserves
    lmhub_renamed = {renamed}

    def __init__(self, **kwargs):
        for name, default in LMHUB_DEFAULTS.items():
            setattr(self, name, kwargs.pop(name, copy.deepcopy(default)))
        super().__init__(**kwargs)
'''

_MODELING_PY = '''\
"""The transformers model class of an exported lmhub '{family}' model.

Generated by lmhub {version}. It builds lmhub's own model ({builder})
from the config; {template}.py explains the rest.
"""

from .{configuration} import {config_name}
from .{template} import {base}
from .{builder_file} import {builder_import}
from .{config_class_file} import {config_class_import}
{bundled}

class {model_name}({base}):
    config_class = {config_name}
    lmhub_config_class = {config_class_name}
    lmhub_builder = staticmethod({builder_name})
'''


def _py_dict(mapping: dict[str, str]) -> str:
    """A dict literal with one item per line, indented for a class body."""
    if not mapping:
        return "{}"
    return "{\n" + "".join(f"        {k!r}: {v!r},\n" for k, v in mapping.items()) + "    }"


def _import_clause(name: str, taken: set[str]) -> tuple[str, str]:
    """``(import clause, bound name)``, aliasing ``name`` if it would shadow a generated name."""
    if name in taken:
        alias = f"_Lmhub{name}"
        return f"{name} as {alias}", alias
    return name, name


def _write_remote_code(
    staging: Path,
    family: ModelFamily[Any, Any],
    config: Any,
    model: nn.Module,
    *,
    weights: bool,
    safetensors: bool,
    max_shard_size: int | str,
) -> None:
    if family.kind not in REMOTE_CODE_CLASSES:
        raise ExportError(
            f"The '{family.name}' family is an {family.kind} model; remote-code export writes "
            "causal language models and encoder-decoders only."
        )
    template, base, auto_class = REMOTE_CODE_CLASSES[family.kind]
    builder = importable_name(family.builder)
    config_class = importable_name(family.config_class)
    if builder is None or config_class is None:
        raise ExportError(
            f"The '{family.name}' family's builder and config class must be defined at the top "
            "level of an lmhub module for a remote-code export, so the copied code can import "
            "them."
        )
    bundle = bundle_sources([builder[0], config_class[0], template])
    for name, module in bundle.items():
        (staging / name).write_text(module.text, encoding="utf-8")

    stem = _class_stem(family.name)
    model_type = _model_type(family.name)
    config_name = f"Lmhub{stem}Config"
    model_name = f"Lmhub{stem}{base.removeprefix('Lmhub')}"
    configuration = f"configuration_{model_type}"
    modeling = f"modeling_{model_type}"

    names = [f.name for f in dataclasses.fields(config)]
    renamed = {name: encode_field_name(name) for name in names if encode_field_name(name) != name}
    attribute_map = remote_code_attribute_map(names)
    defaults = encode_fields(config)
    if "tie_word_embeddings" not in attribute_map:
        _, tied = model_tensors(model)
        defaults["tie_word_embeddings"] = bool(tied)
    defaults_json = json.dumps(defaults, indent=4)
    defaults_literal = (
        f'r"""\n{defaults_json}\n"""' if '"""' not in defaults_json else repr(defaults_json)
    )
    version = lmhub.__version__
    (staging / f"{configuration}.py").write_text(
        _CONFIGURATION_PY.format(
            family=family.name,
            version=version,
            config_class=family.config_class.__name__,
            defaults=defaults_literal,
            config_name=config_name,
            model_type=model_type,
            attribute_map=_py_dict(attribute_map),
            renamed=_py_dict(renamed),
        ),
        encoding="utf-8",
    )
    taken = {config_name, model_name, base}
    builder_import, builder_name = _import_clause(builder[1], taken)
    config_import, config_class_name = _import_clause(config_class[1], taken | {builder_name})
    # transformers copies only files named in `from .x import y` lines; name the modules that
    # the bundle imports whole, so that they are copied too.
    whole = sorted({m for b in bundle.values() for m in b.imported_as_module})
    bundled = "".join(
        f"from .{flat_module_name(m)} import __name__ as _bundled_{i}  # noqa: F401\n"
        for i, m in enumerate(whole)
    )
    (staging / f"{modeling}.py").write_text(
        _MODELING_PY.format(
            family=family.name,
            version=version,
            builder=f"{builder[0]}.{builder[1]}",
            configuration=configuration,
            config_name=config_name,
            template=flat_module_name(template),
            base=base,
            builder_file=flat_module_name(builder[0]),
            builder_import=builder_import,
            config_class_file=flat_module_name(config_class[0]),
            config_class_import=config_import,
            bundled=bundled,
            model_name=model_name,
            config_class_name=config_class_name,
            builder_name=builder_name,
        ),
        encoding="utf-8",
    )
    auto_map = {
        "AutoConfig": f"{configuration}.{config_name}",
        auto_class: f"{modeling}.{model_name}",
    }
    hf_config = remote_code_config_json(
        family,
        defaults,
        model_type=model_type,
        architecture=model_name,
        auto_map=auto_map,
        version=version,
        dtype=_dtype_name(model),
    )
    if family.kind == "encoder_decoder":
        hf_config["is_encoder_decoder"] = True  # generate() encodes once, then decodes
    write_config_json(staging, hf_config)
    (staging / "generation_config.json").write_text(
        _json(_generation_config(config, model)), encoding="utf-8"
    )
    if weights:
        if safetensors:
            save_checkpoint(
                staging, model, max_shard_size=max_shard_size, key_prefix=REMOTE_WEIGHT_PREFIX
            )
        else:
            tensors, _ = model_tensors(model)
            prefixed = {REMOTE_WEIGHT_PREFIX + k: t for k, t in tensors.items()}
            _write_weights(prefixed, staging, safetensors=False, max_shard_size=max_shard_size)


def _has_native_form(family: ModelFamily[Any, Any], config: Any) -> bool:
    """Whether the family's Hugging Face class can express this config (its mapping raises
    :class:`~lmhub.errors.ConfigError` for shapes it cannot)."""
    assert family.hf is not None
    try:
        family.hf.config_to_hf(config)
    except ConfigError:
        return False
    return True


def export(
    model: nn.Module,
    directory: str | os.PathLike[str],
    *,
    remote_code: bool | None = None,
    tokenizer: Tokenizer | str | os.PathLike[str] | None = None,
    family: ModelFamily[Any, Any] | str | None = None,
    save_weights: bool | None = None,
    safetensors: bool = True,
    max_shard_size: int | str = "5GB",
    overwrite: bool = False,
) -> ExportResult:
    """Write ``model`` as a directory transformers loads; see the module docstring.

    Args:
        remote_code: ``None`` picks native for families with a Hugging Face counterpart whose
            mapping expresses the config, and remote code otherwise; ``True`` forces remote
            code; ``False`` requires native.
        tokenizer: a tokenizer (or a path for :func:`~lmhub.data.tokenizers.load_tokenizer`) to
            write beside the model, with its chat template. The config's special token ids are
            taken from it, and its vocabulary must fit the model's.
        family: the model's family, if its class is not one a registered family builds.
        save_weights: ``None`` writes weights unless the model is on the meta device.
        safetensors: write safetensors (sharded at ``max_shard_size``), else ``pytorch_model.bin``.
        overwrite: replace an existing directory with different contents (else an error).

    Example:
        >>> export(model, "out/deepone", tokenizer="byte").kind
        'remote_code'
    """
    fam = get_family(family) if isinstance(family, str) else family or find_family(model)
    config = getattr(model, "config", None)
    if not isinstance(config, fam.config_class):
        raise ExportError(
            f"The model has no `config` attribute holding a {fam.config_class.__name__}, so its "
            "config cannot be written. Keep the config on the model as `self.config`."
        )
    if tokenizer is not None and not isinstance(tokenizer, Tokenizer):
        tokenizer = load_tokenizer(tokenizer)
    if tokenizer is not None:
        config = _align_with_tokenizer(config, tokenizer)
    if remote_code is False and fam.hf is None:
        raise ExportError(
            f"The '{fam.name}' family has no Hugging Face counterpart, so it can only be exported "
            "as remote code. Pass remote_code=True or leave it unset."
        )
    kind: Literal["native", "remote_code"] = (
        "remote_code" if remote_code or fam.hf is None else "native"
    )
    if kind == "native" and remote_code is None and not _has_native_form(fam, config):
        kind = "remote_code"  # e.g. a post-norm transformer, which M2M100 cannot express
    on_meta = any(t.is_meta for t in model.state_dict().values())
    weights = not on_meta if save_weights is None else save_weights
    if weights and on_meta:
        raise ExportError(
            "The model is on the meta device, so it has no weights to save. Build it on a real "
            "device (e.g. --device cpu) or load a checkpoint into it first."
        )

    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.tmp-{secrets.token_hex(4)}")
    staging.mkdir()
    try:
        write = _write_native if kind == "native" else _write_remote_code
        write(
            staging,
            fam,
            config,
            model,
            weights=weights,
            safetensors=safetensors,
            max_shard_size=max_shard_size,
        )
        if tokenizer is not None:
            write_tokenizer_files(
                tokenizer, staging, model_max_length=getattr(config, "max_seq_len", None)
            )
        files = tuple(sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*")))
        changed = _publish(staging, target, overwrite)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportResult(
        path=target, kind=kind, family=fam.name, files=files, changed=changed, weights=weights
    )
