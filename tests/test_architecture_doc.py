"""docs/architecture.md stays true: every file it names exists, and its table of layers is the
one tests/test_import_graph.py enforces."""

from __future__ import annotations

import re
from pathlib import Path

from tests.test_import_graph import LAYERS

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
NAMED = re.compile(r"(?<![\w/.])((?:bot|tests|sandbox|bench|docs|schedules|templates)/[\w/.<>*-]*)")


def named_paths(text: str) -> list[str]:
    """Paths anywhere in the text (prose, tables, the diagram); ``bot/web/auth.StaffAuth`` names bot/web/auth.py; placeholders
    (``<name>``, ``*``) are skipped."""
    return [p for p in NAMED.findall(text) if "<" not in p and "*" not in p]


def exists(path: str) -> bool:
    path = path.rstrip(".,;")
    if (ROOT / path).exists():
        return True
    stem, dot, _ = path.rpartition(".")  # a module followed by one of its names
    return bool(dot) and (ROOT / f"{stem}.py").exists()


def test_every_path_the_page_names_exists() -> None:
    named = named_paths(DOC.read_text(encoding="utf-8"))
    assert len(named) > 40
    missing = sorted({p for p in named if not exists(p)})
    assert not missing, f"docs/architecture.md names files that are not there: {missing}"


def test_a_renamed_file_would_be_caught() -> None:
    assert named_paths("see `bot/web/auth.StaffAuth` and `bot/gone.py` and `bot/<x>/y.py`") == [
        "bot/web/auth.StaffAuth",
        "bot/gone.py",
    ]
    assert exists("bot/web/auth.StaffAuth")
    assert not exists("bot/gone.py")


def test_the_table_of_layers_is_the_enforced_one() -> None:
    rows: dict[int, set[str]] = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        found = re.match(r"\| (\d+) \| (.+?) \|", line)
        if found:
            rows[int(found[1])] = set(re.findall(r"`bot/(\w+)/`", found[2]))
    assert rows == {row: set(packages) for row, packages in enumerate(LAYERS)}
