"""Config helpers: typed dotted overrides and exact (de)serialisation of config dataclasses.

Model configs are ``@dataclass(kw_only=True)`` classes whose fields may nest other config
dataclasses (``rope_scaling``). Everything here is driven by the fields' type hints, so a new
family gets overrides, YAML/JSON round trips and validation without writing any code.

Example:
    >>> from lmhub.models.llama import LlamaConfig
    >>> cfg = apply_overrides(LlamaConfig(), ["model_dim=1024", "rope_scaling.factor=8"])
    >>> cfg.model_dim, cfg.rope_scaling.factor
    (1024, 8.0)
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml

from lmhub.errors import ConfigError, UnusableDataError, _did_you_mean
from lmhub.plain_data import check_size, load_yaml_value, short_repr

ConfigT = TypeVar("ConfigT")


@cache
def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in get_args(tp))
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin is not None:
        args = ", ".join(_type_name(a) for a in get_args(tp))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


class _Mismatch(Exception):
    pass


def _coerce(value: Any, tp: Any) -> Any:
    """Return ``value`` converted to type ``tp``, or raise _Mismatch. Never loses information."""
    if tp is Any:
        return value
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        # Try the exact-type members first so that `int | float` keeps an int an int.
        for arg in sorted(args, key=lambda a: not (isinstance(a, type) and type(value) is a)):
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg)
            except _Mismatch:
                continue
        raise _Mismatch
    if origin is Literal:
        if value in get_args(tp):
            return value
        raise _Mismatch
    if origin in (list, tuple, typing.Sequence, Iterable) or tp in (list, tuple):
        if not isinstance(value, list | tuple):
            raise _Mismatch
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise _Mismatch
            return tuple(_coerce(v, a) for v, a in zip(value, args))
        item = args[0] if args else Any
        items = [_coerce(v, item) for v in value]
        return tuple(items) if origin is tuple or tp is tuple else items
    if origin in (dict, Mapping) or tp is dict:
        if not isinstance(value, Mapping):
            raise _Mismatch
        key_tp, val_tp = get_args(tp) or (Any, Any)
        return {_coerce(k, key_tp): _coerce(v, val_tp) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if isinstance(value, Mapping):
            return _from_dict(tp, value)
        raise _Mismatch
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            return _parse_number(value, int)
        raise _Mismatch
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            # YAML 1.1 reads "1e-6" (no dot) as a string; users mean a number.
            return _parse_number(value, float)
        raise _Mismatch
    if tp is str:
        if isinstance(value, str):
            return value
        raise _Mismatch
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise _Mismatch


def _field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _parse_number(text: str, kind: type[int] | type[float]) -> int | float:
    try:
        number = float(text.strip())
    except ValueError:
        raise _Mismatch from None
    if kind is int:
        if not number.is_integer():
            raise _Mismatch
        return int(number)
    return number


def coerce_field(cls: type, name: str, value: Any, *, path: str | None = None) -> Any:
    """Check ``value`` against the type of field ``name`` of dataclass ``cls`` and convert it.

    Raises:
        ConfigError: naming the field, the value and the expected type.
    """
    path = path or name
    known = _field_names(cls)
    if name not in known:  # only dataclass fields: never `__class__` or a method
        raise ConfigError(
            f"{short_repr(path)} is not a field of {cls.__name__}.{_did_you_mean(name, known)} "
            f"Its fields are: {', '.join(known)}.",
            field=path,
            value=value,
        )
    tp = _field_types(cls)[name]
    try:
        return _coerce(value, tp)
    except _Mismatch:
        raise ConfigError(
            f"The value {short_repr(value)} does not fit the field '{path}' of {cls.__name__}, "
            f"which expects {_type_name(tp)}. Pass a value of that type.",
            field=path,
            value=value,
        ) from None
    except ConfigError as exc:
        # A nested dataclass reported a field relative to itself; name it from the root.
        if exc.field and not exc.field.startswith(path + "."):
            msg = str(exc).replace(f"'{exc.field}'", f"'{path}.{exc.field}'", 1)
            raise ConfigError(msg, field=f"{path}.{exc.field}", value=exc.value) from None
        raise


def to_dict(config: Any) -> dict[str, Any]:
    """Return a config dataclass as plain dicts, lists and scalars (JSON/YAML safe).

    Example:
        >>> to_dict(LlamaConfig())["model_dim"]
        4096
    """
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError(f"to_dict expects a dataclass instance, got {type(config).__name__}.")
    return {f.name: _plain(getattr(config, f.name)) for f in dataclasses.fields(config)}


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_dict(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def from_dict(cls: type[ConfigT], data: Mapping[str, Any]) -> ConfigT:
    """Build config dataclass ``cls`` from a mapping, type-checking every field.

    Fields missing from ``data`` keep their defaults; unknown fields are an error, and so is
    data nested too deeply or too large (see :mod:`lmhub.plain_data`).
    """
    try:
        check_size(data)
    except UnusableDataError as exc:
        raise ConfigError(
            f"The data for {cls.__name__} cannot be used: {exc.reason}. Pass plain field values."
        ) from None
    return _from_dict(cls, data)


def _from_dict(cls: type[ConfigT], data: Mapping[str, Any]) -> ConfigT:
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{cls.__name__} must be given as a mapping of field names to values, "
            f"not {type(data).__name__}.",
        )
    for name in data:
        if not isinstance(name, str):
            raise ConfigError(
                f"The key {short_repr(name)} (of type {type(name).__name__}) given for "
                f"{cls.__name__} is not a field name. Write field names as text.",
                field=short_repr(name),
            )
    kwargs = {name: coerce_field(cls, name, value) for name, value in data.items()}
    return cls(**kwargs)


def to_yaml(config: Any) -> str:
    """Serialise a config dataclass to YAML (fields in declaration order)."""
    return yaml.safe_dump(to_dict(config), sort_keys=False)


def from_yaml(cls: type[ConfigT], text: str) -> ConfigT:
    """Parse YAML produced by :func:`to_yaml` back into ``cls``."""
    try:
        data = load_yaml_value(text)
    except UnusableDataError as exc:
        raise ConfigError(f"The YAML for {cls.__name__} cannot be used: {exc.reason}.") from None
    return from_dict(cls, data or {})


def to_json(config: Any) -> str:
    """Serialise a config dataclass to JSON."""
    return json.dumps(to_dict(config), indent=2)


def from_json(cls: type[ConfigT], text: str) -> ConfigT:
    """Parse JSON produced by :func:`to_json` back into ``cls``."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ConfigError(
            f"The JSON for {cls.__name__} cannot be read: {short_repr(str(exc))}."
        ) from None
    return from_dict(cls, data)


def parse_override(item: str) -> tuple[str, Any]:
    """Split ``"a.b=value"`` into ``("a.b", value)``, reading the value as YAML.

    Example:
        >>> parse_override("rope_scaling.factor=8")
        ('rope_scaling.factor', 8)
        >>> parse_override("attn_impl=sdpa")
        ('attn_impl', 'sdpa')

    Raises:
        ConfigError: naming the override and the field, if the text is not ``FIELD=VALUE`` or
            the value is not YAML that lmhub can use (a bad tag such as ``!!float abc``, an
            impossible date, a huge integer, deep nesting, an alias bomb).
    """
    if not isinstance(item, str):
        raise ConfigError(
            f"The override {short_repr(item)} (of type {type(item).__name__}) is not a "
            "FIELD=VALUE string. Pass strings such as 'model_dim=1024'.",
        )
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(
            f"The override {short_repr(item)} is not of the form FIELD=VALUE "
            "(e.g. model_dim=1024).",
            field=key or None,
        )
    try:
        value = load_yaml_value(raw) if raw.strip() else ""
    except UnusableDataError as exc:
        raise ConfigError(
            f"The override {short_repr(item)} for the field {short_repr(key)} cannot be used: "
            f"{exc.reason}. Fix the value, or quote it to pass it as text.",
            field=key,
            value=raw,
        ) from None
    return key, value


def apply_overrides(
    config: ConfigT, overrides: Mapping[str, Any] | Iterable[str] | None
) -> ConfigT:
    """Return a copy of ``config`` with overrides applied, each type-checked.

    ``overrides`` is a mapping (``{"model_dim": 1024, "rope_scaling": {"factor": 8}}``, nested
    dicts merge into nested configs) or a list of ``"dotted.field=value"`` strings.
    A dotted path into a nested config that is ``None`` creates it from its defaults first.

    Example:
        >>> apply_overrides(LlamaConfig(), {"num_layers": 2}).num_layers
        2
    """
    if overrides is None:
        return config
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise ConfigError(
            f"apply_overrides expects a config dataclass instance, not {short_repr(config)}."
        )
    if isinstance(overrides, Mapping):
        try:
            check_size(overrides)  # before walking it: no alias bomb or deep nesting
        except UnusableDataError as exc:
            raise ConfigError(
                f"The overrides for {type(config).__name__} cannot be used: {exc.reason}. "
                "Pass plain field values."
            ) from None
        items = list(_flatten(overrides))
    elif isinstance(overrides, str):
        items = [parse_override(overrides)]
    elif isinstance(overrides, Iterable):
        items = [_override_item(o) for o in overrides]
    else:
        raise ConfigError(
            f"The overrides {short_repr(overrides)} (of type {type(overrides).__name__}) are not a "
            "mapping or a list of FIELD=VALUE strings.",
        )
    for key, value in items:
        try:
            check_size(value)
        except UnusableDataError as exc:
            raise ConfigError(
                f"The value given for the field {short_repr(key)} cannot be used: {exc.reason}. "
                "Pass a plain value.",
                field=key,
            ) from None
        config = _set_path(config, key.split("."), value, key)
    return config


def _override_item(item: Any) -> tuple[str, Any]:
    """One entry of an override list: a ``FIELD=VALUE`` string or a ``(field, value)`` pair."""
    if isinstance(item, str):
        return parse_override(item)
    if isinstance(item, tuple | list) and len(item) == 2 and isinstance(item[0], str):
        return item[0], item[1]
    raise ConfigError(
        f"The override {short_repr(item)} is neither a FIELD=VALUE string nor a (field, value) "
        "pair with a text field name. Pass strings such as 'model_dim=1024'.",
    )


def _flatten(mapping: Mapping[Any, Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
    for key, value in mapping.items():
        if not isinstance(key, str):
            raise ConfigError(
                f"The override key {short_repr(key)} (of type {type(key).__name__}) under "
                f"{short_repr(prefix or '(top)')} is not a field name. Write field names as text.",
                field=f"{prefix}{short_repr(key)}",
                value=value,
            )
        if isinstance(value, Mapping) and value:
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _set_path(config: Any, parts: list[str], value: Any, full: str) -> Any:
    cls = type(config)
    name = parts[0]
    done = full[: len(full) - len(".".join(parts))] + name
    if len(parts) == 1:
        return dataclasses.replace(config, **{name: coerce_field(cls, name, value, path=done)})
    if name not in _field_names(cls):
        coerce_field(cls, name, None, path=done)  # raises the unknown-field error
    current = getattr(config, name)
    if isinstance(current, Mapping) and not dataclasses.is_dataclass(current):
        # A free-form mapping field (e.g. a training config's model_config): set the key in it.
        merged = _set_key(dict(current), parts[1:], value)
        return dataclasses.replace(config, **{name: coerce_field(cls, name, merged, path=done)})
    if current is None:
        nested = _nested_dataclass(cls, name)
        if nested is None:
            raise ConfigError(
                f"{short_repr(done)} is not a nested config, so {short_repr(full)} cannot be set.",
                field=full,
            )
        current = nested()
    if not dataclasses.is_dataclass(current) or isinstance(current, type):
        raise ConfigError(
            f"{short_repr(done)} is not a nested config, so {short_repr(full)} cannot be set.",
            field=full,
        )
    return dataclasses.replace(config, **{name: _set_path(current, parts[1:], value, full)})


def _set_key(mapping: dict[str, Any], parts: list[str], value: Any) -> dict[str, Any]:
    """``mapping`` with ``value`` at the dotted key ``parts`` (nested dicts created as needed)."""
    head = parts[0]
    if len(parts) == 1:
        mapping[head] = value
        return mapping
    inner = mapping.get(head)
    mapping[head] = _set_key(dict(inner) if isinstance(inner, Mapping) else {}, parts[1:], value)
    return mapping


def _nested_dataclass(cls: type, name: str) -> type | None:
    tp = _field_types(cls)[name]
    candidates = get_args(tp) if get_origin(tp) in (Union, types.UnionType) else (tp,)
    for c in candidates:
        if dataclasses.is_dataclass(c):
            return c  # type: ignore[return-value]
    return None
