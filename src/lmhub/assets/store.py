"""The asset store: cards shipped with lmhub, cards of installed plugins, a user folder, and folders
registered at run time.

Lookup order does not matter: a name defined twice anywhere is an error naming both files.
The user folder is ``$LMHUB_CARDS_DIR`` (several joined with ``os.pathsep``), else
``~/.config/lmhub/cards``. An installed package adds its cards through the ``lmhub.cards`` entry
point group (see :func:`plugin_cards_paths`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from importlib import resources
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from lmhub.assets.card import AssetCard, check_card_fields, make_card
from lmhub.errors import AssetCardError, ModelNotKnownError, UnusableDataError
from lmhub.plain_data import load_yaml_documents

log = logging.getLogger(__name__)

CARDS_ENV = "LMHUB_CARDS_DIR"

CARDS_ENTRY_POINT_GROUP = "lmhub.cards"
"""The entry-point group through which installed packages (model-family plugins) add cards."""

MAX_BASE_CHAIN = 64
"""The longest chain of ``base`` cards followed (real chains have two or three)."""


def package_cards_dir() -> Path:
    """Return the folder of the cards shipped inside the package."""
    return Path(str(resources.files("lmhub.assets") / "cards"))


def plugin_cards_paths() -> list[Path]:
    """Return the card files or folders that installed packages add through the ``lmhub.cards``
    entry point group; each entry point names a path, or a zero-argument function returning one.

    Example (a plugin's ``pyproject.toml``):
        [project.entry-points."lmhub.cards"]
        my_family = "my_package:CARDS_DIR"
    """
    paths = []
    for ep in entry_points(group=CARDS_ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
            paths.append(Path(obj() if callable(obj) else obj))
        except Exception as exc:  # a broken plugin must not break lmhub itself
            log.warning("Skipping the card entry point '%s': %s", ep.name, exc)
    return paths


def user_cards_dirs() -> list[Path]:
    """Return the user card folders (from ``$LMHUB_CARDS_DIR`` or the default)."""
    env = os.environ.get(CARDS_ENV)
    if env:
        return [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    return [Path("~/.config/lmhub/cards").expanduser()]


def _card_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
    return []


def read_card_file(path: Path) -> list[dict[str, Any]]:
    """Parse every ``---``-separated card in a YAML file.

    Raises:
        AssetCardError: if the file is not UTF-8 text or not valid YAML, a document is not a
            mapping, or one is too deep or too large (a YAML alias bomb).
    """
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise AssetCardError(f"The card file {path} cannot be read: {exc}.", path=path) from None
    except UnicodeDecodeError as exc:
        raise AssetCardError(
            f"The card file {path} is not UTF-8 text: the byte 0x{exc.object[exc.start]:02x} at "
            f"offset {exc.start} is not valid UTF-8. Save the file as UTF-8.",
            path=path,
        ) from None
    try:
        docs = load_yaml_documents(text)
    except UnusableDataError as exc:
        raise AssetCardError(
            f"The card file {path} cannot be used: {exc.reason}. Fix the file.", path=path
        ) from None
    cards = []
    for i, doc in enumerate(docs):
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise AssetCardError(
                f"Document {i + 1} of the card file {path} is a {type(doc).__name__}, "
                "not a mapping of fields. Write each card as `name: ...` fields.",
                path=path,
            )
        cards.append(doc)
    return cards


class AssetStore:
    """Finds and resolves asset cards.

    Example:
        >>> store = AssetStore()
        >>> store.get_card("llama3_8b").model_arch
        'llama3_8b'
    """

    def __init__(self, paths: list[Path] | None = None, *, include_defaults: bool = True) -> None:
        self._extra: list[Path] = list(paths or [])
        self._include_defaults = include_defaults
        self._raw: dict[str, tuple[dict[str, Any], Path]] | None = None
        self._resolved: dict[str, AssetCard] = {}

    def add_path(self, path: str | os.PathLike[str]) -> None:
        """Add a card file or folder; its cards are visible from the next lookup on."""
        p = Path(path).expanduser()
        if not p.exists():
            raise AssetCardError(
                f"The card path {p} does not exist. Pass a YAML file or a folder of them.", path=p
            )
        self._extra.append(p)
        self._raw = None
        self._resolved.clear()

    def refresh(self) -> None:
        """Forget the cards read so far: the next lookup reads the card files again (after a
        file in a searched folder was written, e.g. by the trainer)."""
        self._raw = None
        self._resolved.clear()

    def search_paths(self) -> list[Path]:
        """Return every file or folder searched for cards."""
        if not self._include_defaults:
            return list(self._extra)
        defaults = [package_cards_dir(), *plugin_cards_paths(), *user_cards_dirs()]
        return defaults + self._extra

    def _load(self) -> dict[str, tuple[dict[str, Any], Path]]:
        if self._raw is None:
            raw: dict[str, tuple[dict[str, Any], Path]] = {}
            for root in self.search_paths():
                for file in _card_files(root):
                    for doc in read_card_file(file):
                        name = doc.get("name")
                        if not isinstance(name, str):
                            check_card_fields(doc, file)  # raises the "no name" error
                        if name in raw and raw[name][1].resolve() != file.resolve():
                            raise AssetCardError(
                                f"The card '{name}' is defined twice: in {raw[name][1]} and in "
                                f"{file}. Rename or remove one of them.",
                                name=name,
                                path=file,
                            )
                        if name in raw:
                            raise AssetCardError(
                                f"The card '{name}' is defined twice in {file}. "
                                "Rename or remove one of them.",
                                name=name,
                                path=file,
                            )
                        raw[name] = (doc, file)
            self._raw = raw
        return self._raw

    def names(self) -> list[str]:
        """Return the names of all cards, sorted."""
        return sorted(self._load())

    def maybe_get_card(self, name: str) -> AssetCard | None:
        """Return the card called ``name``, or ``None``."""
        if name not in self._load():
            return None
        return self._resolve(name)

    def get_card(self, name: str) -> AssetCard:
        """Return the card called ``name``.

        Raises:
            ModelNotKnownError: if there is none (with close matches).
        """
        card = self.maybe_get_card(name)
        if card is None:
            raise ModelNotKnownError(name, self.names())
        return card

    def iter_cards(self) -> Iterator[AssetCard]:
        """Yield every card, resolved, in name order."""
        for name in self.names():
            yield self._resolve(name)

    def _resolve(self, name: str) -> AssetCard:
        # Walk down the base chain to a card already resolved (or one without a base), then
        # build upwards: a loop, so a long chain cannot exhaust the stack.
        cards = self._load()
        chain: list[str] = []
        current: str | None = name
        while current is not None and current not in self._resolved:
            raw, source = cards[current]
            check_card_fields(raw, source)  # the base must be a name before it is looked up
            chain.append(current)
            base_name = raw.get("base")
            if base_name in chain:
                cycle = [*chain[chain.index(base_name) :], base_name]
                raise AssetCardError(
                    f"The card '{current}' in {source} inherits from itself through "
                    f"{' -> '.join(cycle)}. Break the cycle.",
                    name=current,
                    path=source,
                )
            if base_name is not None and base_name not in cards:
                raise AssetCardError(
                    f"The card '{current}' in {source} has base '{base_name}', which is not a "
                    "known card. Fix the name or register the card that defines it.",
                    name=current,
                    path=source,
                )
            if len(chain) > MAX_BASE_CHAIN:
                raise AssetCardError(
                    f"The card '{name}' in {cards[name][1]} has a chain of more than "
                    f"{MAX_BASE_CHAIN} base cards (through '{current}'). Inherit from fewer cards.",
                    name=name,
                    path=cards[name][1],
                )
            current = base_name
        for card_name in reversed(chain):
            raw, source = cards[card_name]
            base_name = raw.get("base")
            base = self._resolved[base_name] if base_name is not None else None
            self._resolved[card_name] = make_card(raw, source=source, base=base)
        return self._resolved[name]


_default_store: AssetStore | None = None


def default_asset_store() -> AssetStore:
    """Return the process-wide store used by :func:`lmhub.load_model` and the CLI."""
    global _default_store
    if _default_store is None:
        _default_store = AssetStore()
    return _default_store


def register_cards(path: str | os.PathLike[str]) -> None:
    """Make the cards in a YAML file or folder known to :func:`lmhub.load_model` and the CLI.

    Example:
        >>> lmhub.register_cards("my_cards/")
        >>> model = lmhub.load_model("my_llama")
    """
    default_asset_store().add_path(path)
