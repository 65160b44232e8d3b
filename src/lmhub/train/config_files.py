"""Reading a training config: a YAML file or a shipped example, then dotted overrides.

Examples ship in ``lmhub/train/examples/*.yaml``; ``lmhub train --list-examples`` lists them.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from lmhub.config import apply_overrides, from_yaml
from lmhub.errors import ConfigError, _did_you_mean
from lmhub.train.config import TrainConfig, check_train_config

__all__ = ["example_path", "list_examples", "load_train_config"]


def _examples_dir() -> Path:
    return Path(str(resources.files("lmhub.train") / "examples"))


def list_examples() -> list[str]:
    """The names of the example configs shipped with lmhub, sorted."""
    return sorted(p.stem for p in _examples_dir().glob("*.yaml"))


def example_path(name: str) -> Path | None:
    """The file of the shipped example ``name``, or ``None``."""
    path = _examples_dir() / f"{name}.yaml"
    return path if path.is_file() else None


def load_train_config(config: str, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read ``config`` (a YAML file, else the name of a shipped example) and apply ``overrides``
    (``"optimizer.lr=1e-3"`` strings).

    Raises:
        ConfigError: for a name that is neither, an unknown key or a value of the wrong type,
            naming it with close matches.
    """
    path = Path(config)
    if not path.is_file():
        found = example_path(config)
        if found is None:
            examples = list_examples()
            raise ConfigError(
                f"{config!r} is neither a config file nor a shipped example."
                f"{_did_you_mean(config, examples)} The examples are: {', '.join(examples)}.",
                value=config,
            )
        path = found
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"The config file {path} cannot be read: {exc}.", value=config) from None
    try:
        loaded = from_yaml(TrainConfig, text)
    except ConfigError as exc:
        raise ConfigError(f"In {path}: {exc}", field=exc.field, value=exc.value) from None
    resolved = apply_overrides(loaded, list(overrides))
    check_train_config(resolved)
    return resolved
