"""lmhub's imports point down: no cycle, and no arrow from a lower layer up to a higher one.

The graph is read from the source with ``ast`` (nothing is imported). Every import statement
counts, function-level ones included: a lazy import that dodges a cycle is still an arrow.
"""

from __future__ import annotations

import ast
from pathlib import Path

import lmhub

SRC = Path(lmhub.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def _known(name: str) -> str | None:
    """``name`` or its nearest enclosing lmhub module."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str) -> set[str]:
    """The lmhub modules ``module`` imports (``from pkg import sub`` counts as ``pkg.sub``)."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            targets = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names
            ]
        else:
            continue
        for target in targets:
            known = _known(target) if target.split(".")[0] == "lmhub" else None
            if known is not None and known != module:
                found.add(known)
    return found


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path ``[a, b, ..., a]``, or ``None``."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for succ in sorted(graph.get(node, ())):
            if state.get(succ) == 1:
                return [*path[path.index(succ) :], succ]
            if succ not in state and (cycle := visit(succ)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def _arrows(source: str, targets: tuple[str, ...]) -> list[str]:
    """Every ``a -> b`` (any import) from a module under ``source`` to one under ``targets``."""

    def under(name: str, package: str) -> bool:
        return name == package or name.startswith(package + ".")

    return sorted(
        f"{module} -> {target}"
        for module in MODULES
        if under(module, source)
        for target in imports_of(module)
        if any(under(target, t) for t in targets)
    )


def test_the_graph_is_read_from_every_module() -> None:
    assert {"lmhub", "lmhub.models.hub", "lmhub.models.hf_dir", "lmhub.nn.rope"} <= set(MODULES)
    # `from lmhub.models.hf_dir import x` and `from lmhub.models import hf_dir` both count.
    assert "lmhub.models.hf_dir" in imports_of("lmhub.models.resolve")
    assert "lmhub.generation" in imports_of("lmhub")  # lazy, inside __getattr__
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle() -> None:
    graph = {m: imports_of(m) for m in MODULES}
    assert _find_cycle(graph) is None, " -> ".join(_find_cycle(graph) or [])


def test_checkpoint_does_not_import_models() -> None:
    assert _arrows("lmhub.checkpoint", ("lmhub.models",)) == []


def test_models_import_neither_hf_nor_cli() -> None:
    assert _arrows("lmhub.models", ("lmhub.hf", "lmhub.cli")) == []


def test_nn_imports_neither_models_hf_nor_cli() -> None:
    assert _arrows("lmhub.nn", ("lmhub.models", "lmhub.hf", "lmhub.cli")) == []
