"""Plain data written by users (YAML card files, override values): parsed safely, bounded in size,
and shown briefly in messages.

YAML aliases let a few lines stand for a structure of billions of items ("billion laughs"), and
PyYAML's composer recurses once per nesting level, so text from users is read with a loader that
bounds its nesting and node count, and every value is measured (each use of an alias counted)
before lmhub walks it. Callers turn :class:`UnusableDataError` into their own error naming the
file, card or field.
"""

from __future__ import annotations

import reprlib
from typing import Any

import yaml

from lmhub.errors import UnusableDataError

MAX_DEPTH = 64
"""The deepest nesting of lists and mappings accepted (configs and cards need a handful)."""

MAX_ITEMS = 100_000
"""The most values one YAML text or value may hold, counting each use of a YAML alias."""

MAX_INT_BITS = 256
"""The largest integer accepted, in bits (no config field needs more than 64)."""


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing documents nested too deeply or with too many nodes."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        self._nodes += 1
        if self._depth > MAX_DEPTH:
            raise UnusableDataError(f"it nests lists or mappings more than {MAX_DEPTH} levels deep")
        if self._nodes > MAX_ITEMS:
            raise UnusableDataError(f"it holds more than {MAX_ITEMS:,} values")
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def flatten_mapping(self, node: Any) -> None:
        # Merge keys (`<<: *a`) copy the merged pairs, so chains of them grow quadratically and
        # PyYAML flattens them by recursion: bound both like nesting.
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise UnusableDataError(f"its merge keys ('<<') chain more than {MAX_DEPTH} mappings")
        try:
            super().flatten_mapping(node)
        finally:
            self._depth -= 1
        self._nodes += len(node.value)
        if self._nodes > MAX_ITEMS:
            raise UnusableDataError(f"it holds more than {MAX_ITEMS:,} values")


def load_yaml_documents(text: str) -> list[Any]:
    """Parse every ``---``-separated YAML document of ``text`` with the safe loader, bounded.

    Raises:
        UnusableDataError: the text is not YAML, a tagged or implicit value cannot be built
            (``!!float abc``, the date ``2024-13-45``, a 5000-digit integer), or a document is
            too deep or too large (see :func:`check_size`).
    """
    loader: _BoundedLoader | None = None
    try:
        loader = _BoundedLoader(text)  # its reader already refuses control characters
        documents = []
        while loader.check_data():
            documents.append(loader.get_data())
    except UnusableDataError:
        raise
    except yaml.YAMLError as exc:
        raise UnusableDataError(f"it is not valid YAML: {_one_line(exc)}") from None
    except (ValueError, TypeError, AttributeError, LookupError, OverflowError) as exc:
        # PyYAML's constructors let plain Python errors out for malformed tagged scalars
        # (`!!float abc`, `!!bool maybe`, `!!timestamp x`) and impossible dates or huge ints.
        raise UnusableDataError(f"YAML cannot build one of its values ({_one_line(exc)})") from None
    finally:
        if loader is not None:
            loader.dispose()
    for document in documents:
        check_size(document)
    return documents


def load_yaml_value(text: str) -> Any:
    """Parse ``text`` as one YAML value (``""`` for blank text); see :func:`load_yaml_documents`."""
    documents = load_yaml_documents(text)
    if len(documents) > 1:
        raise UnusableDataError("it holds several YAML documents (a line '---' or '...')")
    return documents[0] if documents else ""


_CONTAINERS = (dict, list, tuple, set, frozenset)


def check_size(value: Any) -> None:
    """Raise :class:`UnusableDataError` if ``value`` nests lists or mappings deeper than
    :data:`MAX_DEPTH`, holds more than :data:`MAX_ITEMS` values once expanded (a container
    reached twice counts twice, as YAML aliases expand), contains itself, or holds an integer
    wider than :data:`MAX_INT_BITS` bits.

    Each distinct container is looked at once (sizes of shared ones are remembered), so an alias
    bomb costs what its text costs; no recursion.
    """
    _check_scalar(value)
    if not isinstance(value, _CONTAINERS):
        return
    done: dict[int, tuple[int, int]] = {}  # id -> (values inside once expanded, levels)
    started: set[int] = set()  # containers being walked: the ancestors of the current one
    stack: list[tuple[Any, bool]] = [(value, False)]
    while stack:
        item, children_done = stack.pop()
        key = id(item)
        if children_done:
            started.discard(key)
            items, levels = 0, 0
            for child in _children(item):
                items += 1
                if isinstance(child, _CONTAINERS):
                    child_items, child_levels = done[id(child)]
                    items += child_items
                    levels = max(levels, child_levels)
            if levels + 1 > MAX_DEPTH:
                raise UnusableDataError(
                    f"it nests lists or mappings more than {MAX_DEPTH} levels deep"
                )
            if items > MAX_ITEMS:
                raise UnusableDataError(
                    f"it holds more than {MAX_ITEMS:,} values (each use of a YAML alias counts)"
                )
            done[key] = (items, levels + 1)
            continue
        if key in done:
            continue
        if key in started:
            raise UnusableDataError("it contains itself (a YAML alias inside its own anchor)")
        started.add(key)
        stack.append((item, True))
        for child in _children(item):
            if isinstance(child, _CONTAINERS):
                if id(child) not in done:
                    stack.append((child, False))
            else:
                _check_scalar(child)


def _children(item: Any) -> Any:
    return [x for pair in item.items() for x in pair] if isinstance(item, dict) else item


def _check_scalar(value: Any) -> None:
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise UnusableDataError(f"it holds an integer wider than {MAX_INT_BITS} bits")


class _ShortRepr(reprlib.Repr):
    def __init__(self) -> None:
        super().__init__()
        self.maxlevel = 3
        self.maxstring = 60
        self.maxother = 60
        self.maxlong = 40

    def repr_int(self, x: int, level: int) -> str:
        if x.bit_length() > 128:  # repr() itself refuses more than 4300 digits
            return f"<an integer of {x.bit_length()} bits>"
        return super().repr_int(x, level)


_short_repr = _ShortRepr()


def short_repr(value: Any) -> str:
    """Return ``repr(value)`` cut to a few lines' worth, safe on huge or self-containing values.

    Example:
        >>> short_repr(list(range(100)))
        '[0, 1, 2, 3, 4, 5, ...]'
    """
    try:
        return _short_repr.repr(value)
    except Exception:  # a user object whose __repr__ fails must not hide the real error
        return f"<a {type(value).__name__}>"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:297] + "..."
