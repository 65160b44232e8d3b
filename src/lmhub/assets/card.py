"""Asset cards: small YAML documents that name a model's family, architecture, config overrides,
checkpoint, tokenizer and checksum.

Example card::

    name: my_llama
    base: llama3_8b                 # inherit every field of another card
    model_config: {max_seq_len: 4096}
    checkpoint: ./weights           # relative to this file; or file:///abs/path, or hf://org/name
    checksum: {model.safetensors: 3a7bd3e2...}
    adapter: ./lora                 # a PEFT LoRA adapter directory applied after loading
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from lmhub.assets.hf_cache import is_hf_uri
from lmhub.errors import AssetCardError, UnusableDataError, _did_you_mean
from lmhub.plain_data import check_size, short_repr

# Every field a card may have, with the types its value may take (None is always allowed).
CARD_FIELDS: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "base": (str,),
    "model_family": (str,),
    "model_arch": (str,),
    "model_config": (dict,),
    "checkpoint": (str,),
    "tokenizer": (str,),
    "checksum": (str, dict),
    "adapter": (str,),
}

# Fields whose values are locations, resolved against the directory of the file that sets them.
LOCATION_FIELDS = ("checkpoint", "tokenizer", "adapter")


def resolve_location(value: str, base_dir: Path | None) -> str:
    """Return ``value`` as an absolute path string, or unchanged if it is an ``hf://`` URI.

    Example:
        >>> resolve_location("./w", Path("/cards"))
        '/cards/w'
    """
    if is_hf_uri(value):
        return value
    if value.startswith("file://"):
        return unquote(urlparse(value).path)
    path = Path(os.path.expanduser(value))
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    return str(path)


@dataclass(frozen=True)
class AssetCard:
    """One resolved card: its own fields merged over those of its ``base`` chain."""

    name: str
    """The card's name."""

    fields: Mapping[str, Any]
    """All fields after inheritance, locations already resolved."""

    source: Path | None = None
    """The file that defined this card (``None`` for cards made in code)."""

    base: AssetCard | None = field(default=None, repr=False, compare=False)
    """The card this one inherits from."""

    def get(self, key: str, default: Any = None) -> Any:
        """Return field ``key`` or ``default``."""
        return self.fields.get(key, default)

    def require(self, key: str) -> Any:
        """Return field ``key``, or raise :class:`AssetCardError` if the card lacks it."""
        if key not in self.fields:
            raise AssetCardError(
                f"The card '{self.name}'{self._where()} has no '{key}' field. Add it to the card.",
                name=self.name,
                path=self.source,
            )
        return self.fields[key]

    @property
    def model_family(self) -> str | None:
        """The model family the card names."""
        return self.get("model_family")

    @property
    def model_arch(self) -> str | None:
        """The architecture preset the card names."""
        return self.get("model_arch")

    @property
    def model_config(self) -> dict[str, Any]:
        """Config overrides applied on top of the architecture preset."""
        return dict(self.get("model_config") or {})

    @property
    def checkpoint(self) -> str | None:
        """The checkpoint location: an absolute path or an ``hf://`` URI."""
        return self.get("checkpoint")

    @property
    def tokenizer(self) -> str | None:
        """The tokenizer location: an absolute path or an ``hf://`` URI."""
        return self.get("tokenizer")

    @property
    def checksum(self) -> str | dict[str, str] | None:
        """sha256 of the checkpoint file, or a mapping of file name to sha256."""
        return self.get("checksum")

    def _where(self) -> str:
        return f" (in {self.source})" if self.source else ""


def _merge(base: Mapping[str, Any], child: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in child.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def check_card_fields(raw: Mapping[str, Any], source: Path | None) -> None:
    """Raise :class:`AssetCardError` unless a raw card has a name, only known fields, values of
    the right types, and data of bounded size (see :mod:`lmhub.plain_data`)."""
    name = raw.get("name")
    where = f" in {source}" if source else ""
    if not isinstance(name, str) or not name:
        raise AssetCardError(
            f"A card{where} has no 'name' (or it is not a string). Give every card a name.",
            path=source,
        )
    try:
        check_size(raw)
    except UnusableDataError as exc:
        raise AssetCardError(
            f"The card '{name}'{where} cannot be used: {exc.reason}. Write its fields out plainly.",
            name=name,
            path=source,
        ) from None
    for key in raw:
        if key not in CARD_FIELDS:
            raise AssetCardError(
                f"The card '{name}'{where} has the unknown field {short_repr(key)}."
                f"{_did_you_mean(key, CARD_FIELDS)} A card's fields are: "
                f"{', '.join(CARD_FIELDS)}.",
                name=name,
                path=source,
            )
    for key, types_ in CARD_FIELDS.items():
        if key in raw and raw[key] is not None and not isinstance(raw[key], types_):
            kinds = " or ".join("a mapping" if t is dict else "a string" for t in types_)
            raise AssetCardError(
                f"The field '{key}' of card '{name}'{where} must be {kinds}, "
                f"not {type(raw[key]).__name__} ({short_repr(raw[key])}).",
                name=name,
                path=source,
            )
    checksum = raw.get("checksum")
    if isinstance(checksum, dict) and not all(
        isinstance(k, str) and isinstance(v, str) for k, v in checksum.items()
    ):
        raise AssetCardError(
            f"The 'checksum' of card '{name}'{where} must map file names to sha256 digests, "
            "both text. Quote each sha256 digest so YAML keeps it as text.",
            name=name,
            path=source,
        )
    config = raw.get("model_config")
    if isinstance(config, dict) and not all(isinstance(k, str) for k in config):
        raise AssetCardError(
            f"The 'model_config' of card '{name}'{where} has a key that is not a field name: "
            f"{short_repr(next(k for k in config if not isinstance(k, str)))}. "
            "Write config field names as text.",
            name=name,
            path=source,
        )
    for key in LOCATION_FIELDS:
        if isinstance(raw.get(key), str) and "\0" in raw[key]:
            raise AssetCardError(
                f"The field '{key}' of card '{name}'{where} contains a NUL character, which no "
                "path or URI may hold. Fix the location.",
                name=name,
                path=source,
            )


def make_card(
    raw: Mapping[str, Any], *, source: Path | None, base: AssetCard | None = None
) -> AssetCard:
    """Build an :class:`AssetCard` from raw YAML fields, resolving locations and inheritance."""
    check_card_fields(raw, source)
    own = {k: v for k, v in raw.items() if k != "base"}
    base_dir = source.parent if source is not None else None
    for key in LOCATION_FIELDS:
        if isinstance(own.get(key), str):
            own[key] = resolve_location(own[key], base_dir)
    fields = _merge(base.fields, own) if base is not None else own
    if base is not None:
        try:
            check_size(fields)  # each card is bounded; a long chain must not add up unbounded
        except UnusableDataError as exc:
            where = f" (in {source})" if source else ""
            raise AssetCardError(
                f"The card '{raw['name']}'{where} cannot be used once merged with its base "
                f"'{base.name}': {exc.reason}. Shorten its base chain or its fields.",
                name=raw["name"],
                path=source,
            ) from None
    return AssetCard(name=raw["name"], fields=fields, source=source, base=base)
