"""Named architecture presets: ``@llama_archs.register("llama3_8b")`` on a config factory.

Presets build on each other by calling one another, so each one states only what differs:

    >>> llama_archs = ArchRegistry("llama", LlamaConfig)
    >>> @llama_archs.register("llama3_8b")
    ... def llama3_8b() -> LlamaConfig:
    ...     return LlamaConfig(vocab_size=128_256, ...)

Every lookup returns a fresh config, so callers may change what they get.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from lmhub.errors import ModelArchitectureNotKnownError

ConfigT = TypeVar("ConfigT")


class ArchRegistry(Generic[ConfigT]):
    """The architecture presets of one model family."""

    def __init__(self, family: str, config_class: type[ConfigT]) -> None:
        self.family = family
        self.config_class = config_class
        self._factories: dict[str, Callable[[], ConfigT]] = {}

    def register(self, name: str) -> Callable[[Callable[[], ConfigT]], Callable[[], ConfigT]]:
        """Register a zero-argument function that returns a config as preset ``name``."""

        def decorator(factory: Callable[[], ConfigT]) -> Callable[[], ConfigT]:
            if name in self._factories:
                raise ValueError(f"The {self.family} architecture '{name}' is registered twice.")
            self._factories[name] = factory
            return factory

        return decorator

    def names(self) -> list[str]:
        """Return the preset names in registration order."""
        return list(self._factories)

    def __contains__(self, name: object) -> bool:
        return name in self._factories

    def __iter__(self) -> Iterator[str]:
        return iter(self._factories)

    def __len__(self) -> int:
        return len(self._factories)

    def get(self, name: str) -> ConfigT:
        """Return a fresh config for preset ``name``.

        Raises:
            ModelArchitectureNotKnownError: listing close matches.
        """
        factory = self._factories.get(name)
        if factory is None:
            raise ModelArchitectureNotKnownError(name, self.family, self.names())
        config = factory()
        if not isinstance(config, self.config_class):
            raise TypeError(
                f"The {self.family} architecture '{name}' returned {type(config).__name__}, "
                f"not {self.config_class.__name__}."
            )
        return config

    def maybe_get(self, name: str) -> ConfigT | None:
        """Return a fresh config for preset ``name``, or ``None`` if there is none."""
        return self.get(name) if name in self._factories else None
