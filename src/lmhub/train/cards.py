"""Asset cards for a run's checkpoints, so ``lmhub generate RUN@last`` finds them.

After each checkpoint (and at the end) the trainer writes the run's cards:

* ``RUN@step_N`` for every kept checkpoint, ``RUN@last`` for the newest (``final/`` once the run
  is done);
* into ``OUTPUT_DIR/cards.yaml`` (locations relative to it: the run directory can be moved, and
  ``lmhub.register_cards(OUTPUT_DIR / "cards.yaml")`` makes them known);
* and, unless ``checkpoint.register_cards`` is off, into ``<user card folder>/runs/RUN.yaml``
  with absolute locations (the user card folder is ``$LMHUB_CARDS_DIR``, else
  ``~/.config/lmhub/cards``), which every lmhub command searches.

A LoRA run's cards name the base model as ``checkpoint`` and the checkpoint's PEFT adapter
directory as ``adapter``, which the resolver applies after loading the base.

A card needs an architecture preset to start from: it names the family's first preset and sets
every config field in ``model_config``, so the card describes the trained model exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lmhub.assets.store import default_asset_store, user_cards_dirs
from lmhub.checkpoint.writers import atomic_write_text
from lmhub.config import to_dict
from lmhub.models.family import ModelFamily
from lmhub.train.resume import ADAPTER_DIR

__all__ = ["RUN_CARDS_FILE", "card_name", "write_run_cards"]

RUN_CARDS_FILE = "cards.yaml"


def card_name(run: str, tag: str) -> str:
    """The card of a run's checkpoint: ``card_name("tiny", "step_4") == "tiny@step_4"``."""
    return f"{run}@{tag}"


@dataclass(frozen=True, kw_only=True)
class _Entry:
    """Where one card's files are."""

    checkpoint: Path
    tokenizer: Path
    adapter: Path | None = None


def _location(path: Path, base: Path | None) -> str:
    if base is not None and path.is_relative_to(base):
        return str(path.relative_to(base))
    return str(path)


def _cards(
    run: str,
    family: ModelFamily[Any, Any],
    config: Any,
    entries: dict[str, _Entry],
    base: Path | None,
) -> str:
    arch = next(iter(family.archs.names()))
    docs = []
    for tag, entry in entries.items():
        card: dict[str, Any] = {
            "name": card_name(run, tag),
            "model_family": family.name,
            "model_arch": arch,
            "model_config": to_dict(config),
            "checkpoint": _location(entry.checkpoint, base),
            "tokenizer": _location(entry.tokenizer, base),
        }
        if entry.adapter is not None:
            card["adapter"] = _location(entry.adapter, base)
        docs.append(card)
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
    lora_base: Path | None = None,
    final_merged: bool = False,
) -> None:
    """(Re)write the run's cards for ``checkpoints`` (oldest first) and ``final``.

    ``lora_base`` (the base model's checkpoint directory) marks a LoRA run: each card loads
    that base and applies the checkpoint's ``adapter/``, except a ``final`` that
    ``final_merged`` says holds the merged model.
    """

    def entry(path: Path, merged: bool = False) -> _Entry:
        path = path.resolve()
        if lora_base is None or merged:
            return _Entry(checkpoint=path, tokenizer=path)
        return _Entry(checkpoint=lora_base.resolve(), tokenizer=path, adapter=path / ADAPTER_DIR)

    entries = {path.name: entry(path) for path in checkpoints}
    if final is not None:
        entries["final"] = entry(final, merged=final_merged)
        entries["last"] = entries["final"]
    elif checkpoints:
        entries["last"] = entries[checkpoints[-1].name]
    else:
        return
    out = output_dir.resolve()
    atomic_write_text(output_dir / RUN_CARDS_FILE, _cards(run, family, config, entries, base=out))
    if register:
        folder = user_cards_dirs()[0] / "runs"
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(folder / f"{run}.yaml", _cards(run, family, config, entries, base=None))
        default_asset_store().refresh()  # this process sees the new cards too
