"""Rendering messages from ``templates/``: Jinja2 with StrictUndefined, escaped for the parse mode.

Campaign templates are files ``templates/<name>.<language>.j2`` (English is the fallback).
The bot's own short phrases (buttons, thank-you, command answers) are one TOML catalogue per
language, ``templates/bot/<language>.toml``, each value a Jinja template. One ``Templates`` object
per application (built in ``bot.service.app``); no module-level environment.
"""

from __future__ import annotations

import functools
import re
import sys
import tomllib
from collections.abc import Collection
from datetime import date
from pathlib import Path
from typing import Any

from babel.dates import format_date
from babel.numbers import format_decimal
from jinja2 import (
    Environment,
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateError,
    TemplateNotFound,
    TemplateSyntaxError,
    UndefinedError,
    pass_context,
)

from bot.core.errors import Problem
from bot.core.vocab import LANGUAGES

FALLBACK_LANGUAGE = "en"
# Babel locale per language: international English writes dates as "2 March 2021".
LOCALES = {"en": "en_GB", "fr": "fr", "es": "es"}


class TemplateProblem(Exception):
    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        super().__init__(str(problem))


class Templates:
    def __init__(
        self,
        root: Path,
        *,
        parse_mode: str | None = "HTML",
        plain_text: Collection[str],
    ) -> None:
        """``plain_text``: the channels whose ``<kind>/<channel>`` templates render plain text
        (``bot.channels.registry.plain_text_channels()``, their specs' markup)."""
        self.root = root
        # Telegram's HTML parse mode: escape every value; plain text would need no escaping.
        self.env = Environment(
            loader=FileSystemLoader(root),
            undefined=StrictUndefined,
            autoescape=_escaping(parse_mode, frozenset(plain_text)),
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
        )
        # Dates and numbers in the reader's language: {{ pledgemaker.pledge_date | date }}.
        self.env.filters["date"] = _format_date
        self.env.filters["number"] = _format_number
        self._phrases: dict[str, dict[str, Template]] = {}
        self._fixed_phrases: dict[tuple[str, str], str] = {}

    # -- campaign templates ------------------------------------------------------------------
    def exists(self, name: str) -> bool:
        return (self.root / f"{name}.{FALLBACK_LANGUAGE}.j2").exists()

    def untranslated(self, name: str) -> list[str]:
        """The languages without their own ``<name>.<language>.j2`` (English is used for them)."""
        return [lang for lang in LANGUAGES if not (self.root / f"{name}.{lang}.j2").exists()]

    def render(self, name: str, language: str, **context: Any) -> str:
        """``<name>.<language>.j2``, else the English one; Jinja caches both lookups."""
        candidates = [f"{name}.{language}.j2", f"{name}.{FALLBACK_LANGUAGE}.j2"]
        filename = candidates[-1]
        try:
            template = self.env.select_template(candidates)
            filename = template.name or filename
            return template.render(language=language, **context).strip()
        except TemplateNotFound:
            raise TemplateProblem(
                Problem(self._shown(filename), None, "template not found")
            ) from None
        except TemplateSyntaxError as exc:
            raise TemplateProblem(
                Problem(self._shown(exc.filename or filename), exc.lineno, exc.message or str(exc))
            ) from None
        except TemplateError as exc:
            line = _template_line(filename)
            message = str(exc)
            if isinstance(exc, UndefinedError):
                message = _undefined(message, self._source_line(filename, line))
            raise TemplateProblem(Problem(self._shown(filename), line, message)) from None

    def _source_line(self, filename: str, line: int | None) -> str:
        if line is None:
            return ""
        try:
            # The environment is always built with a loader (Optional only in Jinja's type).
            source = self.env.loader.get_source(self.env, filename)[0]  # type: ignore[union-attr]
        except TemplateNotFound:
            return ""
        lines = source.splitlines()
        return lines[line - 1] if 0 < line <= len(lines) else ""

    def _shown(self, filename: str) -> str:
        path = Path(filename)
        return str(path if path.is_absolute() else self.root / filename)

    # -- the bot's phrases -------------------------------------------------------------------
    def phrase(self, key: str, language: str, **context: Any) -> str:
        if context:
            return self._render_phrase(key, language, context)
        # A phrase without values (a button label) reads the same every time: render it once.
        fixed = self._fixed_phrases.get((key, language))
        if fixed is None:
            fixed = self._fixed_phrases[key, language] = self._render_phrase(key, language, {})
        return fixed

    def _render_phrase(self, key: str, language: str, context: dict[str, Any]) -> str:
        catalogue = self._catalogue(language)
        template = catalogue.get(key) or self._catalogue(FALLBACK_LANGUAGE).get(key)
        if template is None:
            raise TemplateProblem(
                Problem(
                    str(self.root / "bot" / f"{FALLBACK_LANGUAGE}.toml"), None, f"no phrase {key!r}"
                )
            )
        return template.render(language=language, **context).strip()

    def _catalogue(self, language: str) -> dict[str, Template]:
        if language not in self._phrases:
            path = self.root / "bot" / f"{language}.toml"
            try:
                data = tomllib.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
            except tomllib.TOMLDecodeError as exc:
                raise TemplateProblem(Problem(str(path), None, str(exc))) from None
            compiled: dict[str, Template] = {}
            for key, source in data.items():
                try:
                    compiled[key] = self.env.from_string(str(source))
                except TemplateSyntaxError as exc:
                    raise TemplateProblem(
                        Problem(str(path), None, f"{key}: {exc.message}")
                    ) from None
            self._phrases[language] = compiled
        return self._phrases[language]

    def check_phrases(self) -> tuple[list[Problem], list[Problem]]:
        """Problems (a catalogue that does not parse) and warnings (a phrase not translated:
        English is used for it)."""
        problems: list[Problem] = []
        warnings: list[Problem] = []
        try:
            reference = set(self._catalogue(FALLBACK_LANGUAGE))
            for language in LANGUAGES:
                missing = reference - set(self._catalogue(language))
                path = str(self.root / "bot" / f"{language}.toml")
                warnings.extend(
                    Problem(path, None, f"phrase {key!r} is not translated; English is used")
                    for key in sorted(missing)
                )
        except TemplateProblem as exc:
            problems.append(exc.problem)
        return problems, warnings


@pass_context
def _format_date(context: Any, value: date, style: str = "long") -> str:
    return _date_text(value, style, _locale(context))


@functools.lru_cache(maxsize=4096)
def _date_text(value: date, style: str, locale: str) -> str:
    """Babel's formatting is slow next to a lookup, and a campaign formats the same few
    pledge dates thousands of times."""
    return format_date(value, format=style, locale=locale)


@pass_context
def _format_number(context: Any, value: float) -> str:
    return format_decimal(value, locale=_locale(context))


def _escaping(parse_mode: str | None, plain_text: frozenset[str]) -> Any:
    """HTML-escape values for Telegram's HTML parse mode, but not in plain-text channels'
    templates, ``templates/<kind>/<channel>.<lang>.j2`` (an X post would show "&amp;"; the
    webhook's JSON escapes with tojson)."""

    def escape(name: str | None) -> bool:
        if parse_mode != "HTML":
            return False
        return (name or "").rsplit("/", 1)[-1].split(".")[0] not in plain_text

    return escape


def _locale(context: Any) -> str:
    language: str = context.get("language", FALLBACK_LANGUAGE)
    return LOCALES.get(language, language)


def _undefined(message: str, source_line: str) -> str:
    """Jinja's "'types.SimpleNamespace object' has no attribute 'nickname'" as the template
    spells it: "undefined variable pledgemaker.nickname"."""
    if name := re.fullmatch(r"'(\w+)' is undefined", message):
        return f"undefined variable {name.group(1)}"
    attribute = re.fullmatch(r"'[^']*' has no attribute '(\w+)'", message)
    if attribute is None:
        return message
    wanted = attribute.group(1)
    spelt = re.search(rf"\b([A-Za-z_][\w.]*)\.{wanted}\b", source_line)
    if spelt is None:
        return f"undefined variable (no attribute {wanted!r})"
    return f"undefined variable {spelt.group(1)}.{wanted}"


def _template_line(filename: str) -> int | None:
    """The template line of the error being handled (Jinja rewrites tracebacks to templates)."""
    tb = sys.exc_info()[2]
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.endswith(filename):
            line = tb.tb_lineno
        tb = tb.tb_next
    return line
