"""Declarative, reversible maps between checkpoint key layouts (e.g. Hugging Face <-> lmhub).

A :class:`WeightMap` is a list of :class:`KeyRule` patterns. ``{name}`` in a pattern matches
one dotted component, ``{name:path}`` matches several; the same placeholders fill the other side,
so one table drives both import and export and a round trip is exact. A rule may carry a pair of
mutually inverse tensor transforms (e.g. a RoPE permutation) for layouts that differ in more than
the name.

Example:
    >>> rule = KeyRule("model.layers.{i}.mlp.{proj}.weight", "layers.{i}.ffn.{proj}.weight")
    >>> wm = WeightMap([rule])
    >>> wm.to_native("model.layers.3.mlp.up_proj.weight")
    'layers.3.ffn.up_proj.weight'
    >>> wm.to_external("layers.3.ffn.up_proj.weight")
    'model.layers.3.mlp.up_proj.weight'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import torch

TensorFn = Callable[[torch.Tensor], torch.Tensor]

_PLACEHOLDER = re.compile(r"\{(\w+)(?::(path))?\}")


def _compile(pattern: str, path_names: frozenset[str]) -> tuple[re.Pattern[str], str]:
    """Turn ``a.{i}.b`` into a regex with named groups and a format template."""
    regex, pos = "", 0
    for m in _PLACEHOLDER.finditer(pattern):
        regex += re.escape(pattern[pos : m.start()])
        name = m.group(1)
        regex += f"(?P<{name}>.+)" if name in path_names else f"(?P<{name}>[^.]+)"
        pos = m.end()
    regex += re.escape(pattern[pos:])
    template = _PLACEHOLDER.sub(lambda m: "{" + m.group(1) + "}", pattern)
    return re.compile(regex + r"\Z"), template


@dataclass(frozen=True)
class KeyRule:
    """One correspondence between an external key pattern and a native one."""

    external: str
    """The key pattern in the external (e.g. Hugging Face) checkpoint."""

    native: str
    """The key pattern in lmhub's module."""

    to_native_fn: TensorFn | None = None
    """A tensor transform applied on import (must be the inverse of ``to_external_fn``)."""

    to_external_fn: TensorFn | None = None
    """A tensor transform applied on export."""

    _ext: tuple[re.Pattern[str], str] = field(init=False, repr=False, compare=False)
    _nat: tuple[re.Pattern[str], str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # A placeholder marked `:path` on either side spans several components on both.
        paths = frozenset(
            m.group(1) for m in _PLACEHOLDER.finditer(self.external + self.native) if m.group(2)
        )
        object.__setattr__(self, "_ext", _compile(self.external, paths))
        object.__setattr__(self, "_nat", _compile(self.native, paths))


def _apply(
    pair: tuple[re.Pattern[str], str], other: tuple[re.Pattern[str], str], key: str
) -> str | None:
    m = pair[0].match(key)
    return other[1].format(**m.groupdict()) if m else None


class WeightMap:
    """An ordered list of key rules plus the tied parameters the external layout omits."""

    def __init__(self, rules: Sequence[KeyRule], *, tied: Mapping[str, str] | None = None) -> None:
        self.rules = list(rules)
        self.tied: dict[str, str] = dict(tied or {})
        """Native keys that alias another native key when weights are tied (alias -> source)."""

    def _find(self, key: str, *, to_native: bool) -> tuple[str, KeyRule] | None:
        for rule in self.rules:
            src, dst = (rule._ext, rule._nat) if to_native else (rule._nat, rule._ext)
            out = _apply(src, dst, key)
            if out is not None:
                return out, rule
        return None

    def to_native(self, key: str) -> str | None:
        """Return the native key for an external ``key``, or ``None`` if no rule matches."""
        found = self._find(key, to_native=True)
        return found[0] if found else None

    def to_external(self, key: str) -> str | None:
        """Return the external key for a native ``key``, or ``None`` if no rule matches."""
        found = self._find(key, to_native=False)
        return found[0] if found else None

    def convert_to_native(
        self,
        items: Iterable[tuple[str, torch.Tensor]],
        *,
        native_keys: frozenset[str] | set[str] = frozenset(),
    ) -> Iterator[tuple[str | None, torch.Tensor, str]]:
        """Yield ``(native_key or None, tensor, original_key)`` one at a time.

        Keys already in ``native_keys`` (an lmhub checkpoint) pass through unchanged.
        """
        for key, tensor in items:
            if key in native_keys:
                yield key, tensor, key
                continue
            found = self._find(key, to_native=True)
            if found is None:
                yield None, tensor, key
                continue
            new_key, rule = found
            yield new_key, rule.to_native_fn(tensor) if rule.to_native_fn else tensor, key

    def convert_to_external(
        self, items: Iterable[tuple[str, torch.Tensor]], *, tied: bool = False
    ) -> Iterator[tuple[str, torch.Tensor]]:
        """Yield external ``(key, tensor)`` pairs; tied aliases are dropped when ``tied``.

        Raises:
            KeyError: if a native key has no rule (a weight map that does not cover the model).
        """
        for key, tensor in items:
            if tied and key in self.tied:
                continue
            found = self._find(key, to_native=False)
            if found is None:
                raise KeyError(f"The weight map has no rule for the native key '{key}'.")
            new_key, rule = found
            yield new_key, rule.to_external_fn(tensor) if rule.to_external_fn else tensor
