"""``lmhub families``, ``lmhub archs``, ``lmhub cards`` and ``lmhub show``."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.table import Table

from lmhub.config import apply_overrides, to_dict
from lmhub.errors import ModelNotKnownError


def console() -> Console:
    """Return a console for stdout; piped output is not cut to 80 columns."""
    wide = None if sys.stdout.isatty() else 240
    return Console(highlight=False, width=wide)


def _param_count(family: Any, config: Any) -> str:
    from lmhub.models.hub import get_model_hub

    model = get_model_hub(family).create_new_model(config, meta=True)
    n = sum(p.numel() for p in model.parameters())
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M"


def families() -> None:
    """List the model families."""
    from lmhub.models.registry import get_family, list_families

    table = Table("family", "kind", "archs", "HF model_type", "description")
    for name in list_families():
        fam = get_family(name)
        hf = ", ".join(fam.hf.model_types) if fam.hf else "-"
        table.add_row(name, fam.kind, str(len(fam.archs)), hf, fam.description)
    console().print(table)


def archs(
    family: Annotated[str | None, typer.Argument(help="Only this family's presets.")] = None,
) -> None:
    """List architecture presets, with their parameter counts."""
    from lmhub.models.registry import get_family, list_families

    names = [family] if family else list_families()
    table = Table("arch", "family", "params", "layers", "model_dim", "heads", "kv heads")
    for fam_name in names:
        fam = get_family(fam_name)
        for arch in fam.archs.names():
            cfg = fam.archs.get(arch)
            table.add_row(
                arch,
                fam_name,
                _param_count(fam, cfg),
                *(
                    str(getattr(cfg, f, "-"))
                    for f in ("num_layers", "model_dim", "num_heads", "num_kv_heads")
                ),
            )
    console().print(table)


def cards() -> None:
    """List the asset cards the store knows."""
    from lmhub.assets.store import default_asset_store

    table = Table("card", "family", "arch", "checkpoint", "defined in")
    for card in default_asset_store().iter_cards():
        table.add_row(
            card.name,
            card.model_family or "-",
            card.model_arch or "-",
            card.checkpoint or "-",
            str(card.source or "-"),
        )
    console().print(table)


def show(
    name: Annotated[str, typer.Argument(help="An architecture or card name.")],
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a config field, e.g. --set model_dim=1024."),
    ] = None,
) -> None:
    """Print the resolved config of an architecture or card as YAML."""
    from lmhub.assets.store import default_asset_store
    from lmhub.models.hub import get_model_hub
    from lmhub.models.registry import all_arch_names, find_arch

    store = default_asset_store()
    card = store.maybe_get_card(name)
    if card is not None:
        config = get_model_hub(card.require("model_family")).get_model_config(card)
        header = {"card": card.name, "family": card.model_family, "arch": card.model_arch}
    else:
        family = find_arch(name)
        if family is None:
            raise ModelNotKnownError(name, [*store.names(), *all_arch_names()])
        config = family.archs.get(name)
        header = {"arch": name, "family": family.name}
    config = apply_overrides(config, set_ or [])
    validate = getattr(config, "validate", None)
    if callable(validate):
        validate()
    print(yaml.safe_dump({**header, "config": to_dict(config)}, sort_keys=False), end="")


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command()(families)
    app.command()(archs)
    app.command()(cards)
    app.command()(show)
