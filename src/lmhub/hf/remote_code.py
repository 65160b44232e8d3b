"""Bundle the lmhub source files a model needs into a flat folder that never imports lmhub.

transformers' remote-code loader copies a model's ``modeling_*.py`` and every file it names in a
``from .name import ...`` line, all from one flat folder. So each lmhub module becomes one file
named after its dotted path (``lmhub.nn.attention`` -> ``lmhub_nn_attention.py``), and every
``lmhub`` import in it is rewritten to a relative import of such a file. The modules are found by
following imports from the given roots with :mod:`ast`, transitively.

Example:
    >>> files = bundle_sources(["lmhub.models.llama.model"])
    >>> sorted(files)[:3]
    ['lmhub_config.py', 'lmhub_errors.py', 'lmhub_models_archs.py']
    >>> "from lmhub" in files["lmhub_nn_attention.py"]
    False
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmhub.errors import ExportError

__all__ = ["BundledModule", "bundle_sources", "flat_module_name", "importable_name"]

ROOT_PACKAGE = "lmhub"


def flat_module_name(module: str) -> str:
    """Return the flat file stem of an lmhub module: ``lmhub.nn.rope`` -> ``lmhub_nn_rope``."""
    return module.replace(".", "_")


def _is_lmhub(module: str) -> bool:
    return module == ROOT_PACKAGE or module.startswith(ROOT_PACKAGE + ".")


def _spec(module: str) -> Any:
    try:
        return importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None


def _is_module(name: str) -> bool:
    return _is_lmhub(name) and _spec(name) is not None


def importable_name(obj: Any) -> tuple[str, str] | None:
    """Return ``(module, name)`` under which ``obj`` (a class or function) can be imported, if
    it is defined at the top level of an lmhub module; else ``None``."""
    module, name = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(name, str) or not _is_lmhub(module):
        return None
    if "." in name or "<" in name:
        return None
    try:
        if getattr(importlib.import_module(module), name) is not obj:
            return None
    except (ImportError, AttributeError):
        return None
    return module, name


@dataclass
class BundledModule:
    """One lmhub module, as copied into an export."""

    module: str
    """The dotted module name, e.g. ``lmhub.nn.attention``."""

    source_path: Path
    """Where the original file is."""

    text: str
    """The file's text with its lmhub imports rewritten."""

    depends_on: set[str] = field(default_factory=set)
    """The lmhub modules this one imports."""

    imported_as_module: set[str] = field(default_factory=set)
    """Modules it imports whole (``from . import x``), which transformers does not see."""


class _Rewriter:
    """Rewrites the lmhub imports of one module's source."""

    def __init__(self, module: str, path: Path, is_package: bool) -> None:
        self.module = module
        self.path = path
        self.package = module if is_package else module.rpartition(".")[0]
        self.depends_on: set[str] = set()
        self.imported_as_module: set[str] = set()

    def _absolute(self, node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        parts = self.package.split(".")
        if node.level - 1 >= len(parts):
            self._fail(node, "a relative import reaches above the lmhub package")
        base = ".".join(parts[: len(parts) - (node.level - 1)])
        return f"{base}.{node.module}" if node.module else base

    def _fail(self, node: ast.stmt, why: str) -> None:
        raise ExportError(
            f"Cannot bundle {self.path} for a remote-code export: line {node.lineno}: {why}. "
            "Import names with `from lmhub.<module> import <name>` instead.",
            path=self.path,
        )

    def _from_module(self, module: str, names: list[ast.alias]) -> str:
        self.depends_on.add(module)
        spelled = ", ".join(
            a.name if a.asname is None else f"{a.name} as {a.asname}" for a in names
        )
        return f"from .{flat_module_name(module)} import {spelled}"

    def _whole_module(self, module: str, bound_as: str) -> str:
        self.depends_on.add(module)
        self.imported_as_module.add(module)
        return f"from . import {flat_module_name(module)} as {bound_as}"

    def rewrite(self, node: ast.Import | ast.ImportFrom) -> str | None:
        """Return the replacement text of an import statement, or ``None`` to keep it."""
        if isinstance(node, ast.Import):
            if not any(_is_lmhub(a.name) for a in node.names):
                return None
            parts = []
            for alias in node.names:
                if not _is_lmhub(alias.name):
                    parts.append(
                        f"import {alias.name}" + (f" as {alias.asname}" if alias.asname else "")
                    )
                elif alias.asname is None:
                    self._fail(node, f"`import {alias.name}` binds the name 'lmhub'")
                else:
                    parts.append(self._whole_module(alias.name, alias.asname))
            return "; ".join(parts)
        source = self._absolute(node)
        if not _is_lmhub(source):
            return None
        if any(a.name == "*" for a in node.names):
            self._fail(node, "a star import cannot be followed")
        # Group names by the module that defines them: submodules are imported whole, and names
        # re-exported by a package come from their defining module, so package __init__ files
        # (which import much more) stay out of the bundle.
        groups: dict[str, list[ast.alias]] = {}
        parts: list[str] = []
        package = importlib.import_module(source)
        is_package = hasattr(package, "__path__")
        for alias in node.names:
            if _is_module(f"{source}.{alias.name}"):
                parts.append(
                    self._whole_module(f"{source}.{alias.name}", alias.asname or alias.name)
                )
                continue
            home = source
            if is_package:
                found = importable_name(getattr(package, alias.name, None))
                if found is not None:
                    home = found[0]
                    if found[1] != alias.name:
                        alias = ast.alias(found[1], alias.asname or alias.name)
            groups.setdefault(home, []).append(alias)
        parts[:0] = [self._from_module(home, names) for home, names in groups.items()]
        return "; ".join(parts)


def _rewrite_source(module: str) -> BundledModule:
    spec = _spec(module)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        raise ExportError(
            f"The module {module} has no Python source file, so it cannot be bundled into a "
            "remote-code export."
        )
    path = Path(spec.origin)
    text = path.read_text(encoding="utf-8")
    rewriter = _Rewriter(module, path, spec.submodule_search_locations is not None)
    tree = ast.parse(text, filename=str(path))
    lines = text.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    edits: list[tuple[int, int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            replacement = rewriter.rewrite(node)
            if replacement is not None:
                # ast columns count UTF-8 bytes; convert them to str offsets line by line.
                start = offsets[node.lineno - 1] + _char_col(
                    lines[node.lineno - 1], node.col_offset
                )
                end_line = lines[node.end_lineno - 1]  # type: ignore[operator]
                end = offsets[node.end_lineno - 1] + _char_col(end_line, node.end_col_offset)  # type: ignore[operator,arg-type]
                edits.append((start, end, replacement))
    for start, end, replacement in sorted(edits, reverse=True):
        text = text[:start] + replacement + text[end:]
    original = module.replace(".", "/") + ("/__init__.py" if path.name == "__init__.py" else ".py")
    header = (
        f"# Copied from lmhub ({original}) by `lmhub model construct`; its lmhub imports point "
        "at the copies beside it.\n"
    )
    bundled = BundledModule(
        module=module,
        source_path=path,
        text=header + text,
        depends_on=rewriter.depends_on,
        imported_as_module=rewriter.imported_as_module,
    )
    _check_no_lmhub_imports(bundled)
    return bundled


def _char_col(line: str, byte_col: int) -> int:
    return len(line.encode("utf-8")[:byte_col].decode("utf-8"))


def _check_no_lmhub_imports(bundled: BundledModule) -> None:
    for node in ast.walk(ast.parse(bundled.text)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names = [node.module or ""]
        if any(_is_lmhub(n) for n in names):
            raise ExportError(  # a rewriter bug, not a user error; say so plainly
                f"Rewriting {bundled.source_path} left an lmhub import on line {node.lineno}.",
                path=bundled.source_path,
            )


def bundle_sources(roots: Iterable[str]) -> dict[str, BundledModule]:
    """Return ``{flat file name: module}`` for ``roots`` and every lmhub module they import.

    Raises:
        ExportError: a module has no source, uses an import form that cannot be rewritten, or
            two modules flatten to the same file name.
    """
    todo = list(roots)
    done: dict[str, BundledModule] = {}
    while todo:
        module = todo.pop()
        if module in done:
            continue
        bundled = _rewrite_source(module)
        done[module] = bundled
        todo.extend(sorted(bundled.depends_on - done.keys()))
    files: dict[str, BundledModule] = {}
    for module in sorted(done):
        name = flat_module_name(module) + ".py"
        if name in files:
            raise ExportError(
                f"The lmhub modules {files[name].module} and {module} would both be copied to "
                f"{name}. Rename one of them."
            )
        files[name] = done[module]
    return files
