"""``lmhub scaffold lm-type NAME``: write a new LM-type package that passes the shared checks.

The package (types, collators, loss, predictor, metrics, the registry record, an example config
and tests) starts as a plain causal next-token type; its tests run
:func:`lmhub.lm.contract.check_lm_type`, so they keep passing as long as the type keeps the
contract. Select it with ``lm_type: MODULE.lm_type``.

Example::

    lmhub scaffold lm-type edit_lm --out .
    python -m pytest edit_lm/tests
    lmhub train edit_lm/edit_lm_tiny.yaml data.train=reverse.jsonl
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from lmhub.errors import ConfigError

console = Console(highlight=False, soft_wrap=True)
scaffold_app = typer.Typer(help="Write the skeleton of a new component.", no_args_is_help=True)

_FILES = {
    "__init__.py.tmpl": "__init__.py",
    "types.py.tmpl": "types.py",
    "collators.py.tmpl": "collators.py",
    "loss.py.tmpl": "loss.py",
    "predictor.py.tmpl": "predictor.py",
    "metrics.py.tmpl": "metrics.py",
    "lm_type.py.tmpl": "lm_type.py",
    "example.yaml.tmpl": "{name}_tiny.yaml",
    "test_type.py.tmpl": "tests/test_{name}.py",
}
"""Template file -> the path it is written to inside the package."""


def write_lm_type_package(name: str, out: Path, *, module: str | None = None) -> Path:
    """Write the package ``out/name``; return its path.

    Raises:
        ConfigError: for a name that is not a Python identifier, or a package already there.
    """
    if not name.isidentifier() or not name.islower():
        raise ConfigError(
            f"The LM type name {name!r} is not a lower-case Python identifier. Use letters, "
            "digits and underscores, e.g. edit_lm.",
            field="NAME",
            value=name,
        )
    target = out / name
    if target.exists():
        raise ConfigError(
            f"{target} already exists; scaffold never overwrites. Pick another NAME or --out.",
            field="NAME",
            value=name,
        )
    values = {
        "name": name,
        "cls": "".join(part.capitalize() for part in name.split("_")),
        "module": module or name,
    }
    templates = resources.files("lmhub.cli") / "templates" / "lm_type"
    for template, relative in _FILES.items():
        path = target / relative.format(**values)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(templates.joinpath(template).read_text().format(**values))
    (target / "tests" / "__init__.py").write_text("")
    return target


@scaffold_app.command("lm-type")
def lm_type(
    name: Annotated[str, typer.Argument(help="The type's name, a lower-case identifier.")],
    out: Annotated[Path, typer.Option(help="The folder to write the package NAME into.")] = Path(
        "."
    ),
    module: Annotated[
        str | None,
        typer.Option(help="The package's import path (default NAME), e.g. lmhub.lm.NAME."),
    ] = None,
) -> None:
    """Write a new LM-type package NAME (types, collators, loss, predictor, metrics, config,
    tests)."""
    target = write_lm_type_package(name, out, module=module)
    selected = f"{module or name}.lm_type"
    console.print(
        f"Wrote {target}. Test it with `python -m pytest {target / 'tests'}`; train it with "
        f"lm_type={selected} (see {target / f'{name}_tiny.yaml'}).",
        markup=False,
    )


def register(app: typer.Typer) -> None:
    """Add ``lmhub scaffold`` to ``app``."""
    app.add_typer(scaffold_app, name="scaffold")
