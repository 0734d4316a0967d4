"""The import graph of ``bot/`` has no cycles.

Built from the source with ``ast``, not by importing: an import inside a function or under
``if TYPE_CHECKING`` counts like one at the top (placing it there only hides a cycle). Relative
imports are resolved, ``from bot import x`` is an arrow to the module ``bot.x``, and an import of
a name defined in a package's ``__init__`` is an arrow to that package. Imports of a module's
parent packages (which Python runs first) are not arrows of their own; ``importlib`` calls by
string are not seen.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class ImportGraph:
    modules: dict[str, Path]
    edges: dict[str, set[str]] = field(default_factory=dict)
    unresolved: list[str] = field(default_factory=list)  # "<module>:<line>: <import>"

    def cycles(self) -> list[list[str]]:
        """Each strongly connected component of more than one module, sorted."""
        return sorted(sorted(c) for c in strongly_connected(self.edges) if len(c) > 1)


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (no recursion limit on a long chain of imports)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, targets = work[-1]
            target = next(targets, None)
            if target is not None:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(edges[target]))))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                found.append(component)
    return found


def module_name(package_root: Path, path: Path) -> str:
    parts = path.relative_to(package_root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth (functions, classes, ``if TYPE_CHECKING``, try)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node


def build_graph(package_root: Path) -> ImportGraph:
    """The import graph of the package at ``package_root``: every ``.py`` file is a module."""
    top = package_root.name
    modules = {module_name(package_root, p): p for p in sorted(package_root.rglob("*.py"))}
    graph = ImportGraph(modules, {name: set() for name in modules})

    def arrow(source: str, target: str, node: ast.stmt, written: str) -> None:
        if target not in modules:
            graph.unresolved.append(f"{source}:{node.lineno}: {written}")
        elif target != source:
            graph.edges[source].add(target)

    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        package = name if is_package else name.rpartition(".")[0]
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name == top or alias.name.startswith(top + "."):
                        arrow(name, alias.name, node, f"import {alias.name}")
                continue
            if node.level:
                parts = package.split(".")
                if node.level - 1 >= len(parts):
                    graph.unresolved.append(f"{name}:{node.lineno}: relative import above {top}")
                    continue
                kept = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*kept, node.module] if node.module else kept)
            else:
                base = node.module or ""
            if base != top and not base.startswith(top + "."):
                continue
            for alias in node.names:
                written = f"from {'.' * node.level}{node.module or ''} import {alias.name}"
                submodule = f"{base}.{alias.name}"
                # `from bot import outbox` names the module bot.outbox; `from bot.x import f`
                # names something defined in bot.x.
                arrow(name, submodule if submodule in modules else base, node, written)
    return graph


def test_bot_has_no_import_cycles() -> None:
    graph = build_graph(ROOT / "bot")
    cycles = graph.cycles()
    assert not cycles, "import cycles in bot/ (move what both sides need down a layer):\n" + (
        "\n".join(" <-> ".join(cycle) for cycle in cycles)
    )


def test_the_graph_covers_every_module_and_every_import() -> None:
    graph = build_graph(ROOT / "bot")
    # Listed independently of build_graph: no file under bot/ (migrations, web, data) is left out.
    on_disk = {
        module_name(ROOT / "bot", Path(folder) / name)
        for folder, _, names in os.walk(ROOT / "bot")
        for name in names
        if name.endswith(".py")
    }
    assert len(on_disk) > 100
    assert set(graph.modules) == on_disk
    assert set(graph.edges) == on_disk
    assert not graph.unresolved, "imports of bot modules that do not exist:\n" + "\n".join(
        graph.unresolved
    )
    # The walk reaches imports inside functions and under TYPE_CHECKING: bot.cli imports the app
    # only when a command opens it, and bot.campaigns.digest imports introductions in a function.
    assert "bot.app" in graph.edges["bot.cli_common"]
    assert "bot.introductions" in graph.edges["bot.campaigns.digest"]


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root / "pkg"


def test_a_cycle_hidden_in_a_function_or_type_checking_block_is_found(tmp_path: Path) -> None:
    package = _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/low.py": "def f():\n    from pkg.high import g\n    return g\n",
            "pkg/high.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import low\n",
            "pkg/sub/__init__.py": "",
            "pkg/sub/a.py": "from .. import alone\nfrom ..sub import b\n",
            "pkg/sub/b.py": "import pkg.sub.a\n",
            "pkg/alone.py": "import json\nfrom pkg import missing\n",
        },
    )
    graph = build_graph(package)
    assert graph.cycles() == [["pkg.high", "pkg.low"], ["pkg.sub.a", "pkg.sub.b"]]
    assert graph.edges["pkg.sub.a"] == {"pkg.alone", "pkg.sub.b"}
    # `from pkg import missing` names no module: an arrow to the package's __init__.
    assert graph.edges["pkg.alone"] == {"pkg"}
    assert graph.unresolved == []


def test_an_import_of_a_module_that_is_not_there_is_reported(tmp_path: Path) -> None:
    package = _write(tmp_path, {"pkg/__init__.py": "", "pkg/a.py": "import pkg.gone\n"})
    assert build_graph(package).unresolved == ["pkg.a:1: import pkg.gone"]
