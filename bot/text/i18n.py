"""``pledgebot i18n check``: every template a pledgemaker (or a follower) reads exists in every
language, and the versions use the same variables.

Checked: each ``templates/<group>/<name>.<language>.j2`` (except the staff-facing groups in
``STAFF_ONLY``) must exist in en, fr and es, and each phrase of ``templates/bot/<language>.toml``
in all three catalogues; the variables a version uses (Jinja's undeclared names) must be the same
in every language — a translation that drops ``{{ name }}`` or invents ``{{ nom }}`` is caught
here, not by a pledgemaker. ``schedules check`` only warns about a missing translation (English is
used); this check is strict, and CI runs it.
"""

from __future__ import annotations

import tomllib
from collections import defaultdict
from pathlib import Path

from jinja2 import Environment, TemplateSyntaxError, meta

from bot.core.errors import Problem
from bot.core.vocab import LANGUAGES
from bot.text.templates import Templates

STAFF_ONLY = ("digest",)  # read by the comms team only: English is enough


def check(root: Path) -> list[Problem]:
    """Every problem found under the templates folder ``root``."""
    env = Templates(root, plain_text=()).env  # its filters (date, number); nothing rendered
    problems: list[Problem] = []
    groups: dict[str, dict[str, Path]] = defaultdict(dict)
    for path in sorted(root.rglob("*.j2")):
        relative = path.relative_to(root)
        if relative.parts[0] in STAFF_ONLY:
            continue
        name, _, rest = relative.as_posix().partition(".")
        language = rest.removesuffix(".j2")
        groups[name][language] = path
    for name, versions in sorted(groups.items()):
        for language in LANGUAGES:
            if language not in versions:
                shown = root / f"{name}.{language}.j2"
                problems.append(Problem(str(shown), None, f"missing: {name} has no {language}"))
        found = {}
        for language, path in versions.items():
            found[language] = _variables(env, path.read_text(encoding="utf-8"), str(path), problems)
        problems += _compare(name, found, {lang: str(p) for lang, p in versions.items()})
    problems += _check_phrases(env, root / "bot")
    return problems


def _check_phrases(env: Environment, folder: Path) -> list[Problem]:
    problems: list[Problem] = []
    catalogues: dict[str, dict[str, str]] = {}
    for language in LANGUAGES:
        path = folder / f"{language}.toml"
        try:
            catalogues[language] = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            problems.append(Problem(str(path), None, "missing: no phrase catalogue"))
        except tomllib.TOMLDecodeError as exc:
            problems.append(Problem(str(path), getattr(exc, "lineno", None), f"bad TOML: {exc}"))
    keys = sorted({key for catalogue in catalogues.values() for key in catalogue})
    for key in keys:
        found: dict[str, frozenset[str]] = {}
        where = {lang: f"{folder / f'{lang}.toml'}" for lang in catalogues}
        for language, catalogue in catalogues.items():
            if key not in catalogue:
                problems.append(
                    Problem(where[language], None, f"missing: phrase {key!r} has no {language}")
                )
                continue
            found[language] = _variables(
                env, str(catalogue[key]), f"{where[language]} [{key}]", problems
            )
        problems += _compare(f"phrase {key!r}", found, where)
    return problems


def _variables(
    env: Environment, source: str, shown: str, problems: list[Problem]
) -> frozenset[str]:
    try:
        return frozenset(meta.find_undeclared_variables(env.parse(source)))
    except TemplateSyntaxError as exc:
        problems.append(Problem(shown, exc.lineno, f"template syntax: {exc.message}"))
        return frozenset()


def _compare(name: str, found: dict[str, frozenset[str]], where: dict[str, str]) -> list[Problem]:
    """Each language against English (or the first found): names missing or extra."""
    if len(found) < 2:
        return []
    base = "en" if "en" in found else sorted(found)[0]
    problems = []
    for language, names in sorted(found.items()):
        if language == base or names == found[base]:
            continue
        missing = sorted(found[base] - names)
        extra = sorted(names - found[base])
        said = "; ".join(
            part
            for part in (
                f"lacks {', '.join(missing)}" if missing else "",
                f"uses {', '.join(extra)} that {base} does not" if extra else "",
            )
            if part
        )
        problems.append(Problem(where[language], None, f"{name} ({language}): {said}"))
    return problems
