"""Asset cards for a run's checkpoints, so ``lmhub generate RUN@last`` finds them.

After each checkpoint (and at the end) the trainer writes the run's cards:

* ``RUN@step_N`` for every kept checkpoint, ``RUN@last`` for the newest (``final/`` once the run
  is done);
* into ``OUTPUT_DIR/cards.yaml`` (locations relative to it: the run directory can be moved, and
  ``lmhub.register_cards(OUTPUT_DIR / "cards.yaml")`` makes them known);
* and, unless ``checkpoint.register_cards`` is off, into ``<user card folder>/runs/RUN.yaml``
  with absolute locations (the user card folder is ``$LMHUB_CARDS_DIR``, else
  ``~/.config/lmhub/cards``), which every lmhub command searches.

A card needs an architecture preset to start from: it names the family's first preset and sets
every config field in ``model_config``, so the card describes the trained model exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from lmhub.assets.store import default_asset_store, user_cards_dirs
from lmhub.checkpoint.writers import atomic_write_text
from lmhub.config import to_dict
from lmhub.models.family import ModelFamily

__all__ = ["RUN_CARDS_FILE", "card_name", "write_run_cards"]

RUN_CARDS_FILE = "cards.yaml"


def card_name(run: str, tag: str) -> str:
    """The card of a run's checkpoint: ``card_name("tiny", "step_4") == "tiny@step_4"``."""
    return f"{run}@{tag}"


def _cards(
    run: str, family: ModelFamily[Any, Any], config: Any, dirs: dict[str, Path], base: Path | None
) -> str:
    arch = next(iter(family.archs.names()))
    docs = []
    for tag, directory in dirs.items():
        location = str(directory.relative_to(base)) if base is not None else str(directory)
        docs.append(
            {
                "name": card_name(run, tag),
                "model_family": family.name,
                "model_arch": arch,
                "model_config": to_dict(config),
                "checkpoint": location,
                "tokenizer": location,
            }
        )
    header = f"# Cards of the lmhub training run '{run}', rewritten by the trainer.\n"
    return header + yaml.safe_dump_all(docs, sort_keys=False)


def write_run_cards(
    output_dir: Path,
    *,
    run: str,
    family: ModelFamily[Any, Any],
    config: Any,
    checkpoints: list[Path],
    final: Path | None,
    register: bool,
) -> None:
    """(Re)write the run's cards for ``checkpoints`` (oldest first) and ``final``."""
    dirs = {path.name: path.resolve() for path in checkpoints}
    newest = final if final is not None else (checkpoints[-1] if checkpoints else None)
    if newest is None:
        return
    if final is not None:
        dirs["final"] = final.resolve()
    dirs["last"] = newest.resolve()
    out = output_dir.resolve()
    atomic_write_text(output_dir / RUN_CARDS_FILE, _cards(run, family, config, dirs, base=out))
    if register:
        folder = user_cards_dirs()[0] / "runs"
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(folder / f"{run}.yaml", _cards(run, family, config, dirs, base=None))
        default_asset_store().refresh()  # this process sees the new cards too
