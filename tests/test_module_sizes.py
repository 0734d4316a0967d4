"""Every module of pledgebot and of its sandboxes can be read in one sitting: at most 400 lines.
Alembic revisions are records of what the schema was, not code to read: they are left out."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LONGEST = 400


def test_no_module_is_over_400_lines() -> None:
    modules = [
        path
        for folder in (ROOT / "bot", ROOT / "sandbox" / "pledgebot_sandbox")
        for path in folder.rglob("*.py")
        if "migrations" not in path.parts
    ]
    assert len(modules) > 150
    long = {
        str(path.relative_to(ROOT)): lines
        for path in modules
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > LONGEST
    }
    assert not long, f"split these by concern: {long}"
