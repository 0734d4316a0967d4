"""The comms team's schedule files: ``schedules/*.toml`` → validated campaigns, or file:line errors.

Each file holds ``[[campaign]]`` entries. Loading is all or nothing: any problem in any file is
reported (every problem, with its file and line) and no campaign from the set is used. What an
entry may say is its kind's (``bot.campaigns.registry``): its model, the files it reads, and the
templates it renders, checked here against the kind's samples.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from dataclasses import dataclass, field
from datetime import datetime, time
from pathlib import Path
from typing import Any, get_args
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger
from pydantic import BaseModel, ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.campaigns.base import audience_query
from bot.campaigns.registry import KINDS, kind
from bot.campaigns.spec import CampaignBase
from bot.core.errors import Problem, ScheduleError
from bot.core.models import Pledgemaker
from bot.text.templates import TemplateProblem, Templates


@dataclass
class LoadedCampaign:
    spec: CampaignBase
    file: str
    line: int
    lines: dict[str, int] = field(default_factory=dict)  # each key's line ('audience.sector')


@dataclass
class ScheduleSet:
    campaigns: dict[str, LoadedCampaign] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)  # e.g. a missing translation

    def get(self, campaign_id: str) -> LoadedCampaign:
        if campaign_id not in self.campaigns:
            hint = difflib.get_close_matches(campaign_id, list(self.campaigns), n=1)
            known = f"did you mean {hint[0]!r}?" if hint else f"known: {', '.join(self.campaigns)}"
            raise ScheduleError(
                [Problem("schedules", None, f"no campaign {campaign_id!r} ({known})")]
            )
        return self.campaigns[campaign_id]


def schedule_files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        files.extend(sorted(path.glob("*.toml")) if path.is_dir() else [path])
    return files


def load_schedules(
    paths: list[Path],
    templates: Templates,
    *,
    default_timezone: str = "UTC",
    base_dir: Path | None = None,
) -> ScheduleSet:
    """Read and validate schedule files; raise ScheduleError listing every problem."""
    problems: list[Problem] = []
    result = ScheduleSet()
    for path in schedule_files(paths):
        shown = str(path)
        result.files.append(shown)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(Problem(shown, None, f"cannot read: {exc}"))
            continue
        for loaded in _load_file(
            shown, text, templates, default_timezone, problems, result.warnings
        ):
            check_files = kind(loaded.spec.kind).check_files
            if check_files is not None:  # the files it reads, found from the config's folder
                problems.extend(
                    check_files(loaded.spec, base_dir or Path.cwd(), shown, loaded.lines)
                )
            previous = result.campaigns.get(loaded.spec.id)
            if previous is not None:
                problems.append(
                    Problem(
                        shown,
                        loaded.line,
                        f"duplicate campaign id {loaded.spec.id!r} "
                        f"(first defined at {previous.file}:{previous.line})",
                    )
                )
            else:
                result.campaigns[loaded.spec.id] = loaded
    if problems:
        raise ScheduleError(problems)
    return result


def _load_file(
    shown: str,
    text: str,
    templates: Templates,
    default_tz: str,
    problems: list[Problem],
    warnings: list[Problem],
) -> list[LoadedCampaign]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        problems.append(
            Problem(shown, int(match.group(1)) if match else None, f"invalid TOML: {message}")
        )
        return []
    lines = _key_lines(text)
    for key in data:
        if key != "campaign":
            problems.append(
                Problem(
                    shown, _top_line(text, key), f"unknown table {key!r} (expected [[campaign]])"
                )
            )
    entries = data.get("campaign", [])
    if not isinstance(entries, list):
        problems.append(
            Problem(shown, _top_line(text, "campaign"), "use [[campaign]] (an array of tables)")
        )
        return []
    loaded: list[LoadedCampaign] = []
    for index, entry in enumerate(entries):
        where = lines[index] if index < len(lines) else {}
        header = where.get("", 1)
        entry = {"timezone": default_tz, **entry}
        spec = _validate(shown, entry, where, header, problems)
        if spec is None:
            continue
        before = len(problems)
        _check_templates(shown, spec, where, templates, problems, warnings)
        _check_fires(shown, spec, where, warnings)
        if len(problems) == before:
            loaded.append(LoadedCampaign(spec, shown, header, where))
    return loaded


def _check_fires(
    shown: str, spec: CampaignBase, where: dict[str, int], warnings: list[Problem]
) -> None:
    """A cron that never fires within the campaign's active window (``0 10 31 2 *``), or a
    ``once`` already past, is valid but surely a mistake (a copied example): warn."""
    zone = ZoneInfo(spec.timezone)
    if spec.once is not None:
        once = spec.once if spec.once.tzinfo else spec.once.replace(tzinfo=zone)
        if once < datetime.now(zone) - spec.grace_period:
            line = where.get("once", where.get("", 1))
            warnings.append(
                Problem(shown, line, f"{spec.id}: once {spec.once} is past: it sends nothing")
            )
        return
    if not spec.cron:
        return
    window = spec.active
    today = datetime.now(zone).date()
    start = datetime.combine(max(window.start or today, today), time(0), zone)
    first = CronTrigger.from_crontab(spec.cron, timezone=zone).get_next_fire_time(None, start)
    if first is not None and (window.until is None or first.date() <= window.until):
        return
    span = f"from {start.date()}" + (f" to {window.until}" if window.until else "")
    line = where.get("cron", where.get("", 1))
    warnings.append(
        Problem(shown, line, f"{spec.id}: cron {spec.cron!r} never fires {span}: it sends nothing")
    )


def audience_warnings(schedules: ScheduleSet, session: Session) -> list[str]:
    """Campaigns whose audience matches no pledgemaker in the database (a typo in a filter, or
    pledgemakers not imported yet): they would send nothing, so ``schedules check`` says so."""
    if not session.scalar(select(func.count()).select_from(Pledgemaker)):
        return ["no pledgemakers in the database yet, so every audience is empty (import them)"]
    found: list[str] = []
    for loaded in schedules.campaigns.values():
        spec = loaded.spec
        if not kind(spec.kind).messages_audience:
            continue
        query = audience_query(spec.audience).with_only_columns(func.count()).order_by(None)
        if not session.scalar(query):
            line = loaded.lines.get("audience", loaded.line)
            why = f"{spec.id}: the audience matches no pledgemaker, so it sends nothing"
            found.append(str(Problem(loaded.file, line, why)))
    return found


def _validate(
    shown: str, entry: dict[str, Any], where: dict[str, int], header: int, problems: list[Problem]
) -> CampaignBase | None:
    name = entry.get("kind")
    if name not in KINDS:
        line = where.get("kind", header)
        got = "missing" if name is None else f"got {name!r}"
        problems.append(Problem(shown, line, f"kind must be one of {', '.join(KINDS)} ({got})"))
        return None
    model = KINDS[name].model
    try:
        return model.model_validate(entry)
    except ValidationError as exc:
        for error in exc.errors():
            loc = [str(part) for part in error["loc"] if part != name]
            if not loc:  # a rule across fields names its key first: "every: …"
                named = str(error["msg"]).removeprefix("Value error, ").split(":")[0]
                loc = [named] if named in model.model_fields else []
            key = loc[0] if loc else ""
            line = where.get(".".join(loc[:2]), where.get(key, header))
            problems.append(Problem(shown, line, _message(error, loc, model)))
        return None


def _message(error: Any, loc: list[str], model: type[BaseModel]) -> str:
    name = ".".join(loc)
    if error["type"] == "extra_forbidden":
        owner = model if len(loc) == 1 else _table(model, loc[0]) or model
        fields = [info.alias or field for field, info in owner.model_fields.items()]
        hint = difflib.get_close_matches(loc[-1], fields, n=1)
        return f"unknown field {loc[-1]!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
    if error["type"] == "missing":
        return f"{name} is required"
    if error["type"] == "literal_error":
        expected = error["ctx"]["expected"].replace("'", "")
        return f"{name} must be one of {expected} (got {error['input']!r})"
    message = str(error["msg"]).removeprefix("Value error, ")
    return message if message.startswith(f"{name}:") else f"{name}: {message}"


def _table(model: type[BaseModel], key: str) -> type[BaseModel] | None:
    """The model of a table inside an entry (``audience``, ``active``, a kind's own), if any."""
    info = model.model_fields.get(key)
    for candidate in (info.annotation, *get_args(info.annotation)) if info else ():
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _check_templates(
    shown: str,
    spec: CampaignBase,
    where: dict[str, int],
    templates: Templates,
    problems: list[Problem],
    warnings: list[Problem],
) -> None:
    """Render every template the campaign uses, in its readers' languages, against its kind's
    sample context."""
    languages = spec.reader_languages()
    for name, line, context in kind(spec.kind).samples(spec, where):
        if not templates.exists(name):
            missing = templates.root / (name + ".en.j2")
            problems.append(Problem(shown, line, f"unknown template {name!r} (no {missing})"))
            continue
        warnings.extend(
            Problem(shown, line, f"template {name!r} has no {lang} translation; English is used")
            for lang in templates.untranslated(name)
            if lang in languages
        )
        for language in languages:
            try:
                templates.render(name, language, **context)
            except TemplateProblem as exc:
                found = Problem(shown, line, f"template {name!r} ({language}): {exc.problem}")
                if found not in problems:  # the same template checked with two contexts
                    problems.append(found)


def _key_lines(text: str) -> list[dict[str, int]]:
    """Line numbers of each [[campaign]] header ('') and its keys ('audience.sector' too)."""
    entries: list[dict[str, int]] = []
    current: dict[str, int] | None = None
    prefix = ""
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if re.match(r"^\[\[\s*campaign\s*\]\]", line):
            current, prefix = {"": number}, ""
            entries.append(current)
        elif sub := re.match(r"^\[\s*campaign\.([A-Za-z0-9_-]+)\s*\]", line):
            prefix = sub.group(1) + "."
            if current is not None:
                current.setdefault(sub.group(1), number)
        elif line.startswith("["):
            current = None
        elif current is not None and (match := re.match(r'^"?([A-Za-z0-9_.-]+)"?\s*=', line)):
            key = prefix + match.group(1).replace(" ", "")
            current.setdefault(key, number)
            current.setdefault(key.split(".")[0], number)
            for inner in re.findall(r"([A-Za-z0-9_-]+)\s*=", line[match.end() :]):
                current.setdefault(f"{key}.{inner}", number)
    return entries


def _top_line(text: str, key: str) -> int | None:
    for number, raw in enumerate(text.splitlines(), start=1):
        if re.match(rf"^\s*(\[+\s*{re.escape(key)}\b|{re.escape(key)}\s*=)", raw):
            return number
    return None
