"""The import graph of ``bot/`` has no cycles, and its arrows point down the layers.

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

# bot's sub-packages, bottom first. A module may import its own package and the packages of
# lower rows; packages on one row are siblings and import neither each other nor anything above.
# (docs/architecture.md draws the same table.)
LAYERS: list[tuple[str, ...]] = [
    ("core",),  # errors, logs, db, models and migrations, clocks, coordination, vocabulary
    ("channels", "text"),  # platform adapters and their specs; templates and translations
    ("settings",),  # the configuration file, each channel's table checked by its adapter
    ("delivery",),  # planned messages, the outbox, the dispatcher, failures, outages, pauses
    ("community",),  # pledgemakers, contacts, consent, review, invitations, matches, reports
    ("campaigns",),  # one module per campaign kind, and the registry of kinds
    ("scheduling", "inbound"),  # schedule files, runs, the scheduler; the inbox, conversations
    ("service",),  # the App that wires it all, and what reads across it
    ("web",),  # the dashboard and the public pages
    ("cli",),  # the pledgebot command and the runner of its long-lived roles
]


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
                # `from bot import outbox` names the module bot.delivery.outbox; `from bot.x import f`
                # names something defined in bot.x.
                arrow(name, submodule if submodule in modules else base, node, written)
    return graph


def test_bot_has_no_import_cycles() -> None:
    graph = build_graph(ROOT / "bot")
    cycles = graph.cycles()
    assert not cycles, "import cycles in bot/ (move what both sides need down a layer):\n" + (
        "\n".join(" <-> ".join(cycle) for cycle in cycles)
    )


def layer_violations(graph: ImportGraph, layers: list[tuple[str, ...]]) -> list[str]:
    """Every arrow from a package to one on its own row or above: ``source -> target``. A module
    outside every listed package (a flat module beside them) is reported too."""
    rank = {package: row for row, packages in enumerate(layers) for package in packages}
    top = next(iter(graph.modules)).split(".")[0]

    def package(module: str) -> str | None:
        parts = module.split(".")
        return parts[1] if len(parts) > 1 else None

    found = [
        f"{module}: in no layer (put it in one of {sorted(rank)})"
        for module in graph.modules
        if module != top and package(module) not in rank
    ]
    for source, targets in sorted(graph.edges.items()):
        for target in sorted(targets):
            low, high = package(target), package(source)
            if low in rank and high in rank and low != high and rank[low] >= rank[high]:
                found.append(f"{source} -> {target}")
    return found


def test_bot_imports_point_down_the_layers() -> None:
    graph = build_graph(ROOT / "bot")
    assert not layer_violations(graph, LAYERS), (
        "imports that point up or sideways (move what both need down, or pass it in):\n"
        + "\n".join(layer_violations(graph, LAYERS))
    )
    # Each listed layer holds modules: a renamed package cannot leave a row that checks nothing.
    packages = {module.split(".")[1] for module in graph.modules if module.count(".")}
    assert packages == {package for row in LAYERS for package in row}


def test_an_arrow_up_or_sideways_is_reported(tmp_path: Path) -> None:
    package = _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/low/__init__.py": "",
            "pkg/low/a.py": "def f():\n    from pkg.high import b\n",
            "pkg/high/__init__.py": "",
            "pkg/high/b.py": "from pkg.low import a\nfrom pkg.side import c\n",
            "pkg/side/__init__.py": "",
            "pkg/side/c.py": "",
            "pkg/flat.py": "",
        },
    )
    rows = [("low",), ("high", "side")]
    assert layer_violations(build_graph(package), rows) == [
        "pkg.flat: in no layer (put it in one of ['high', 'low', 'side'])",
        "pkg.high.b -> pkg.side.c",
        "pkg.low.a -> pkg.high.b",
    ]


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
    # The walk reaches imports inside functions and under TYPE_CHECKING: bot.cli.main imports the app
    # only when a command opens it, and bot.campaigns.digest imports introductions in a function.
    assert "bot.service.app" in graph.edges["bot.cli.common"]
    assert "bot.community.introductions" in graph.edges["bot.campaigns.digest"]


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
