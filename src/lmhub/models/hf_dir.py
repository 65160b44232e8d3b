"""A Hugging Face directory's ``config.json``: the one place lmhub reads and writes it.

Two kinds of directory exist, told apart once, by one key:

* ``lmhub_family`` present: an lmhub export (remote code, or any lmhub-native layout). Its keys
  are the lmhub config's own field names, except that names transformers reserves for itself get
  an ``lmhub_`` prefix (:func:`encode_field_name`).
* otherwise ``model_type`` names a Hugging Face family, and the lmhub family that reads that
  ``model_type`` translates the file (``family.hf.config_from_hf``), using :data:`HF_KEYS` and
  :func:`read_hf_keys` for the keys most families share.

Every value is type-checked as JSON (an integer is an ``int`` and not ``true``, a number is
finite, ...) and the resulting config is validated, so a bad file gives an
:class:`~lmhub.errors.HfConfigError` naming the file and the ``config.json`` key.

Example:
    >>> family, config, dtype = read_hf_dir("path/to/hf_llama")
    >>> family.name, config.num_layers, dtype
    ('llama', 16, torch.bfloat16)
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Final, Literal, NamedTuple, Union, get_args, get_origin

import torch

from lmhub.config import to_dict
from lmhub.errors import ConfigError, HfConfigError, LmhubError
from lmhub.models.family import ModelFamily
from lmhub.models.registry import family_for_hf_model_type, get_family, list_families
from lmhub.utils import as_dtype

CONFIG_FILE: Final = "config.json"

# -- the reserved-name codec of lmhub-native fields --------------------------------------------

# Config names transformers gives a meaning of its own (properties, generation settings...):
# lmhub fields of these names are stored as ``lmhub_<name>``.
HF_RESERVED_NAMES: Final = frozenset(
    {
        # PreTrainedConfig's own fields, properties and the keys it consumes
        *("architectures", "attn_implementation", "auto_map", "chunk_size_feed_forward", "dtype"),
        *("id2label", "is_encoder_decoder", "is_heterogeneous", "label2id", "layer_types"),
        *("model_type", "name_or_path", "num_labels", "output_attentions", "output_hidden_states"),
        *("per_layer_attributes", "per_layer_config", "problem_type", "return_dict"),
        *("rope_parameters", "rope_scaling", "rope_theta", "sliding_window", "torch_dtype"),
        *("transformers_version", "use_return_dict", "allow_global_per_layer_attribute_access"),
        *("serialize_explicit_per_layer_config", "attribute_map", "base_config_key"),
        *("base_model_ep_plan", "base_model_fsdp_plan", "base_model_pp_plan"),
        *("base_model_tp_plan", "extra_config_files", "extra_files", "sub_configs_defaults"),
        # its methods
        *("from_dict", "from_pretrained", "get_text_config", "save_pretrained", "to_dict"),
        *("to_json_string", "update", "validate"),
        # generation settings, which it moves to the generation config
        *("bad_words_ids", "begin_suppress_tokens", "diversity_penalty", "do_sample"),
        *("early_stopping", "encoder_no_repeat_ngram_size", "encoder_repetition_penalty"),
        *("epsilon_cutoff", "eta_cutoff", "exponential_decay_length_penalty"),
        *("forced_bos_token_id", "forced_eos_token_id", "length_penalty", "max_length"),
        *("min_length", "no_repeat_ngram_size", "num_beam_groups", "num_beams"),
        *("num_return_sequences", "output_scores", "remove_invalid_values"),
        *("repetition_penalty", "return_dict_in_generate", "suppress_tokens", "temperature"),
        *("top_k", "top_p", "typical_p", "use_cache", "assistant_confidence_threshold"),
        *("assistant_lookbehind", "num_assistant_tokens", "num_assistant_tokens_schedule"),
        *("target_lookbehind",),
    }
)
RESERVED_PREFIX: Final = "lmhub_"


def encode_field_name(name: str) -> str:
    """The ``config.json`` key under which an lmhub export stores the config field ``name``."""
    if name in HF_RESERVED_NAMES or name.startswith("_"):
        return RESERVED_PREFIX + name
    return name


def encode_fields(config: Any) -> dict[str, Any]:
    """Return the config's fields as JSON values under their ``config.json`` keys."""
    return {encode_field_name(name): value for name, value in to_dict(config).items()}


# -- the Hugging Face keys most families share -------------------------------------------------


@dataclass(frozen=True)
class HfKey:
    """One ``config.json`` key and the lmhub config field it holds."""

    key: str
    """The Hugging Face name."""

    field: str
    """The lmhub field, where a family's config has one of this name."""

    generic: bool = False
    """Whether transformers' model-agnostic code reads it (cache sizes, tying), so a remote-code
    config must answer to it too."""


HF_KEYS: Final[tuple[HfKey, ...]] = (
    HfKey("hidden_size", "model_dim", generic=True),
    HfKey("num_hidden_layers", "num_layers", generic=True),
    HfKey("num_attention_heads", "num_heads", generic=True),
    HfKey("num_key_value_heads", "num_kv_heads", generic=True),
    HfKey("head_dim", "head_dim"),
    HfKey("intermediate_size", "ffn_inner_dim", generic=True),
    HfKey("vocab_size", "vocab_size"),
    HfKey("max_position_embeddings", "max_seq_len", generic=True),
    HfKey("rms_norm_eps", "norm_eps"),
    HfKey("tie_word_embeddings", "tie_embeddings", generic=True),
    HfKey("attention_dropout", "dropout_p"),
    HfKey("attention_bias", "attn_bias"),
    HfKey("mlp_bias", "ffn_bias"),
    HfKey("initializer_range", "init_std"),
    HfKey("bos_token_id", "bos_token_id"),
    HfKey("eos_token_id", "eos_token_id"),
    HfKey("pad_token_id", "pad_token_id"),
)
"""The shared Hugging Face keys; a family reads the rows whose field its config has."""

HF_KEY_FIELDS: Final[Mapping[str, str]] = {row.key: row.field for row in HF_KEYS}
"""Hugging Face key -> lmhub field, as :data:`HF_KEYS` says."""


def hf_key_of(field: str) -> str | None:
    """Return the Hugging Face key of an lmhub field, if :data:`HF_KEYS` has one."""
    return next((row.key for row in HF_KEYS if row.field == field), None)


def remote_code_attribute_map(fields: Mapping[str, Any]) -> dict[str, str]:
    """Map the generic Hugging Face keys to the ``config.json`` keys holding lmhub's fields."""
    return {
        row.key: encode_field_name(row.field)
        for row in HF_KEYS
        if row.generic and row.field in fields and row.key != encode_field_name(row.field)
    }


# -- type-checking JSON values ------------------------------------------------------------------


class _NoFit(Exception):
    pass


@cache
def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _fit(value: Any, tp: Any, key: str) -> Any:
    """Return JSON ``value`` as type ``tp``, or raise _NoFit. Strict: no strings for numbers."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None:
            if type(None) in get_args(tp):
                return None
            raise _NoFit
        for arg in get_args(tp):
            try:
                return _fit(value, arg, key)
            except _NoFit:
                continue
        raise _NoFit
    if origin is Literal:
        if isinstance(value, str) and value in get_args(tp):
            return value
        raise _NoFit
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise _NoFit
        items = [_fit(v, get_args(tp)[0] if get_args(tp) else Any, key) for v in value]
        return tuple(items) if origin is tuple else items
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise _NoFit
        return _dataclass_from_json(tp, value, str, prefix=f"{key}.")
    if tp is bool and isinstance(value, bool):
        return value
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:
            raise _NoFit from None
        if math.isfinite(number):
            return number
    if tp is str and isinstance(value, str):
        return value
    raise _NoFit


def _expected(tp: Any) -> str:
    """Describe type ``tp`` in JSON words, for messages."""
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_expected(a) for a in get_args(tp))
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (list, tuple):
        return f"a list of ({_expected(get_args(tp)[0])})" if get_args(tp) else "a list"
    if dataclasses.is_dataclass(tp):
        return f"a mapping of {tp.__name__} fields"
    names = {bool: "true or false", int: "an integer", float: "a finite number", str: "a string"}
    return names.get(tp, "null" if tp is type(None) else getattr(tp, "__name__", str(tp)))


def shown(value: Any) -> str:
    """A short rendering of a JSON value for messages (never huge, never raising)."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, int):
        if value.bit_length() > 128:
            return f"an integer of {value.bit_length()} bits"
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        text = json.dumps(value[:60])
        return text if len(value) <= 60 else text[:-1] + '..."'
    if isinstance(value, list):
        return f"a list of {len(value)} items"
    if isinstance(value, dict):
        return f"a mapping of {len(value)} keys"
    return f"a {type(value).__name__}"


def json_value(value: Any, tp: Any, *, key: str, field: str | None = None) -> Any:
    """Return the ``config.json`` value of ``key`` as type ``tp`` (strictly; see module doc).

    Raises:
        ConfigError: with ``field=key``, naming the key (and lmhub's ``field`` if it differs).
    """
    try:
        return _fit(value, tp, key)
    except _NoFit:
        ours = f" (lmhub's '{field}')" if field is not None and field != key else ""
        raise ConfigError(
            f"The key '{key}'{ours} is {shown(value)}, but it must be {_expected(tp)}.",
            field=key,
            value=value,
        ) from None


def _dataclass_from_json(
    cls: type, data: Mapping[str, Any], key_of: Callable[[str], str], *, prefix: str = ""
) -> Any:
    """Build dataclass ``cls`` from the JSON keys ``key_of(field)`` of ``data`` (named
    ``prefix + key`` in messages); absent keys keep their defaults, other keys are ignored."""
    types_ = _field_types(cls)
    values = {}
    for f in dataclasses.fields(cls):
        key = key_of(f.name)
        if key in data:
            values[f.name] = json_value(data[key], types_[f.name], key=prefix + key, field=f.name)
    return cls(**values)


def read_hf_keys(
    hf: Mapping[str, Any], config_class: type, defaults: Mapping[str, Any]
) -> dict[str, Any]:
    """Read the :data:`HF_KEYS` rows whose field ``config_class`` has, type-checked.

    An absent key takes ``defaults[key]`` (Hugging Face's default for the family), or ``None``
    where the field is optional; otherwise it is an error. ``null`` is accepted only where the
    field is optional.

    Returns:
        ``{lmhub field: value}``.

    Raises:
        ConfigError: with ``field`` set to the Hugging Face key.
    """
    types_ = _field_types(config_class)
    values: dict[str, Any] = {}
    missing: list[HfKey] = []
    for row in HF_KEYS:
        if row.field not in types_:
            continue
        tp = types_[row.field]
        if row.key in hf:
            values[row.field] = json_value(hf[row.key], tp, key=row.key, field=row.field)
        elif row.key in defaults:
            values[row.field] = defaults[row.key]
        elif _fits_none(tp):
            values[row.field] = None
        else:
            missing.append(row)
    if missing:
        names = ", ".join(f"'{row.key}' (lmhub's '{row.field}')" for row in missing)
        raise ConfigError(
            f"The model needs the keys {names}, which are missing: add them.",
            field=missing[0].key,
        )
    return values


def _fits_none(tp: Any) -> bool:
    return get_origin(tp) in (Union, types.UnionType) and type(None) in get_args(tp)


# -- reading a directory ------------------------------------------------------------------------


class HfDirConfig(NamedTuple):
    """What a Hugging Face directory's ``config.json`` says."""

    family: ModelFamily[Any, Any]
    """The lmhub family that builds the model."""

    config: Any
    """The family's config, validated."""

    dtype: torch.dtype | None
    """The dtype the file declares (``dtype``, or transformers 4's ``torch_dtype``), if any."""


def read_config_json(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a directory's ``config.json`` as a JSON object.

    Raises:
        HfConfigError: naming the file, if it is missing, not a file, unreadable, or not a JSON
            object.
    """
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        raise HfConfigError(
            f"The model config {path} {what}, so the directory's model family is unknown. "
            "Pass a Hugging Face checkpoint directory (with a config.json file), a card or a "
            "card name.",
            path=path,
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        reason = "is nested too deeply" if isinstance(exc, RecursionError) else f"({exc})"
        raise HfConfigError(
            f"The file {path} cannot be read as JSON {reason}. Fix or regenerate it.",
            path=path,
        ) from None
    if not isinstance(data, dict):
        raise HfConfigError(
            f"The file {path} holds a JSON {type(data).__name__}, not an object of config keys. "
            "Fix or regenerate it.",
            path=path,
        )
    return data


def read_hf_dir(directory: str | os.PathLike[str]) -> HfDirConfig:
    """Return ``(family, config, declared dtype)`` of a Hugging Face checkpoint directory.

    Raises:
        HfConfigError: naming the file and the key, for any value lmhub cannot use.
    """
    return parse_config_json(read_config_json(directory), path=Path(directory) / CONFIG_FILE)


def parse_config_json(data: Mapping[str, Any], *, path: Path) -> HfDirConfig:
    """Return ``(family, config, declared dtype)`` from the contents of ``config.json``.

    Raises:
        HfConfigError: naming ``path`` and the key, for any value lmhub cannot use.
    """
    try:
        if "lmhub_family" in data:
            family = _lmhub_family(data)
            config = _dataclass_from_json(family.config_class, data, encode_field_name)
            key_of = encode_field_name
        else:
            family = _hf_family(data)
            config = _config_from_hf(family, data)
            key_of = _hf_key_or_field
        _validate(config, key_of)
        dtype = _declared_dtype(data)
    except ConfigError as exc:
        detail = str(exc)
        if exc.field and f"'{exc.field}'" not in detail:
            detail = f"The key '{exc.field}': {detail}"
        raise HfConfigError(
            f"The file {path} does not describe a model lmhub can build: {detail} Fix the value, "
            "or regenerate the file with the model's save_pretrained.",
            path=path,
            key=exc.field,
            value=exc.value,
        ) from None
    return HfDirConfig(family, config, dtype)


def _declared_dtype(data: Mapping[str, Any]) -> torch.dtype | None:
    for key in ("dtype", "torch_dtype"):  # transformers 5 writes the first, 4 the second
        name = json_value(data.get(key), str | None, key=key)
        if name is not None:
            try:
                return as_dtype(name)
            except ConfigError as exc:
                raise ConfigError(f"The key '{key}': {exc}", field=key, value=name) from None
    return None


def _config_from_hf(family: ModelFamily[Any, Any], data: Mapping[str, Any]) -> Any:
    assert family.hf is not None
    try:
        return family.hf.config_from_hf(dict(data))
    except KeyError as exc:  # a plugin family indexing a key the file lacks
        key = str(exc.args[0]) if exc.args else "?"
        raise ConfigError(
            f"The key '{key}' is missing, and a '{family.name}' config needs it: add it.",
            field=key,
        ) from None


def _hf_key_or_field(field: str) -> str:
    return hf_key_of(field) or field


def _validate(config: Any, key_of: Callable[[str], str | None]) -> None:
    """Validate ``config``, re-raising errors under the ``config.json`` key of the field."""
    validate = getattr(config, "validate", None)
    if not callable(validate):
        return
    try:
        validate()
    except ConfigError as exc:
        field, dot, rest = (exc.field or "").partition(".")
        key = (key_of(field) or field) + dot + rest if field else None
        if key is None or key == exc.field:
            raise
        raise ConfigError(
            f"The key '{key}' (lmhub's '{exc.field}') is not valid: {exc}",
            field=key,
            value=exc.value,
        ) from None


def _lmhub_family(data: Mapping[str, Any]) -> ModelFamily[Any, Any]:
    name = json_value(data["lmhub_family"], str, key="lmhub_family")
    try:
        return get_family(name)
    except LmhubError as exc:
        raise ConfigError(
            f"The key 'lmhub_family': {exc}", field="lmhub_family", value=name
        ) from None


def _hf_family(data: Mapping[str, Any]) -> ModelFamily[Any, Any]:
    known = sorted(
        {t for name in list_families() if (h := get_family(name).hf) for t in h.model_types}
    )
    if data.get("model_type") is None:
        raise ConfigError(
            "The key 'model_type' is missing, so the model's family is unknown. Add the Hugging "
            f"Face model type lmhub reads (one of: {', '.join(known)}).",
            field="model_type",
        )
    model_type = json_value(data["model_type"], str, key="model_type")
    family = family_for_hf_model_type(model_type)
    if family is None or family.hf is None:
        raise ConfigError(
            f"The key 'model_type' is '{model_type}', which no lmhub family reads. lmhub reads "
            f"the model types: {', '.join(known)}.",
            field="model_type",
            value=model_type,
        )
    return family


# -- writing ------------------------------------------------------------------------------------


def native_config_json(family: ModelFamily[Any, Any], config: Any, dtype: str) -> dict[str, Any]:
    """The ``config.json`` of a native Hugging Face export of ``config``."""
    if family.hf is None:
        raise ValueError(f"The '{family.name}' family has no Hugging Face counterpart.")
    return {
        "architectures": list(family.hf.architectures),
        "model_type": family.hf.model_types[0],
        **family.hf.config_to_hf(config),
        "dtype": dtype,
        "torch_dtype": dtype,  # the name transformers 4 reads
    }


def remote_code_config_json(
    family: ModelFamily[Any, Any],
    fields: Mapping[str, Any],
    *,
    model_type: str,
    architecture: str,
    auto_map: Mapping[str, str],
    version: str,
    dtype: str,
) -> dict[str, Any]:
    """The ``config.json`` of a remote-code export; ``fields`` come from :func:`encode_fields`."""
    return {
        "architectures": [architecture],
        "auto_map": dict(auto_map),
        "model_type": model_type,
        "lmhub_family": family.name,
        "lmhub_version": version,
        **fields,
        "dtype": dtype,
        "torch_dtype": dtype,
    }


def write_config_json(directory: str | os.PathLike[str], data: Mapping[str, Any]) -> Path:
    """Write ``config.json`` into ``directory`` (indented, newline-terminated)."""
    path = Path(directory) / CONFIG_FILE
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path
