"""The comms team's schedule files: ``schedules/*.toml`` → validated campaigns, or file:line errors.

Each file holds ``[[campaign]]`` entries. Loading is all or nothing: any problem in any file is
reported (every problem, with its file and line) and no campaign from the set is used.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger
from pydantic import BaseModel, ValidationError

from bot.campaigns.schedule_models import (
    KINDS,
    ActiveWindow,
    AmplifyCampaign,
    AnnounceCampaign,
    Audience,
    Campaign,
    DigestCampaign,
    DigestDestinations,
    FollowupCampaign,
    KnowledgeCampaign,
    Reminders,
    parse_duration,
)
from bot.core.errors import Problem, ScheduleError
from bot.core.vocab import LANGUAGES
from bot.text.templates import TemplateProblem, Templates

# Re-exported: callers (and tests) that know the models from here.
__all__ = [
    "KINDS",
    "AmplifyCampaign",
    "AnnounceCampaign",
    "Campaign",
    "DigestCampaign",
    "FollowupCampaign",
    "KnowledgeCampaign",
    "LoadedCampaign",
    "ScheduleSet",
    "audience_warnings",
    "load_schedules",
    "parse_duration",
    "schedule_files",
]


@dataclass
class LoadedCampaign:
    spec: Campaign
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
            _check_facts(loaded, base_dir or Path.cwd(), problems)
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
    shown: str, spec: Campaign, where: dict[str, int], warnings: list[Problem]
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


def audience_warnings(schedules: ScheduleSet, session: Any) -> list[str]:
    """Campaigns whose audience matches no pledgemaker in the database (a typo in a filter, or
    pledgemakers not imported yet): they would send nothing, so ``schedules check`` says so."""
    from sqlalchemy import func, select

    from bot.campaigns.base import audience_query
    from bot.core.models import Pledgemaker

    if not session.scalar(select(func.count()).select_from(Pledgemaker)):
        return ["no pledgemakers in the database yet, so every audience is empty (import them)"]
    found: list[str] = []
    for loaded in schedules.campaigns.values():
        spec = loaded.spec
        if not isinstance(spec, FollowupCampaign | AnnounceCampaign):
            continue
        query = audience_query(spec.audience).with_only_columns(func.count()).order_by(None)
        if not session.scalar(query):
            line = loaded.lines.get("audience", loaded.line)
            why = f"{spec.id}: the audience matches no pledgemaker, so it sends nothing"
            found.append(str(Problem(loaded.file, line, why)))
    return found


def _validate(
    shown: str, entry: dict[str, Any], where: dict[str, int], header: int, problems: list[Problem]
) -> Campaign | None:
    kind = entry.get("kind")
    if kind not in KINDS:
        line = where.get("kind", header)
        got = "missing" if kind is None else f"got {kind!r}"
        problems.append(Problem(shown, line, f"kind must be one of {', '.join(KINDS)} ({got})"))
        return None
    try:
        return KINDS[kind].model_validate(entry)
    except ValidationError as exc:
        model = KINDS[kind]
        for error in exc.errors():
            loc = [str(part) for part in error["loc"] if part != kind]
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
        nested = {
            "audience": Audience,
            "active": ActiveWindow,
            "reminders": Reminders,
            "to": DigestDestinations,
        }
        owner = model if len(loc) == 1 else nested.get(loc[0], model)
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


SAMPLE_PLEDGEMAKER = SimpleNamespace(
    pledge_date=date(2021, 1, 15),
    id="sample",
    name="Sample Organisation",
    country="GH",
    region="africa",
    sector="ngo",
    language="en",
    timezone="Africa/Accra",
    pledge_title="End child labour in our supply chain",
    pledge_text="We pledge to act.",
    x_handle="@sample",
    website="https://example.org",
)


SAMPLE_UPDATE = SimpleNamespace(
    id=1,
    pillar="act",
    kind="progress",
    text="We trained 120 labour inspectors.",
    edited_text=None,
    media=[],
    created_at=datetime(2021, 6, 1, tzinfo=ZoneInfo("UTC")),
)


def _check_facts(loaded: LoadedCampaign, base_dir: Path, problems: list[Problem]) -> None:
    """A knowledge campaign's fact files: resolved against the config folder, inside it (an
    editor of schedules must not make the bot read, or name, files elsewhere on the server), and
    readable."""
    spec = loaded.spec
    if not isinstance(spec, KnowledgeCampaign):
        return
    given = spec.facts
    spec.facts = base_dir / given  # an absolute path stays itself
    # Judged as written ('..' folded, links not followed): what an editor can type must stay in
    # the folder, while a link the administrator put there (data/ on another disk) is theirs.
    written = Path(os.path.normpath(spec.facts))
    if not written.is_relative_to(Path(os.path.normpath(base_dir.absolute()))):
        line = loaded.lines.get("facts", loaded.line)
        problems.append(
            Problem(
                loaded.file,
                line,
                f"facts: {str(given)!r} is outside the project folder (where the config file "
                "is): keep fact files inside it, e.g. 'data/knowledge'",
            )
        )
        return
    from bot.campaigns.knowledge import load_facts

    try:
        load_facts(spec.facts)
    except ScheduleError as exc:
        problems.extend(exc.problems)


def _template_checks(
    spec: Campaign, where: dict[str, int]
) -> list[tuple[str, int, dict[str, Any]]]:
    """Each template the campaign uses, the line that names it, and a sample context."""
    header = where.get("", 1)
    if isinstance(spec, DigestCampaign):
        from bot.campaigns.digest import sample_context

        line = where.get("template", where.get("to", header))
        used = dict.fromkeys(channel for channel, _ in spec.destinations())
        return [(f"{spec.template}/{channel}", line, sample_context()) for channel in used]
    if isinstance(spec, KnowledgeCampaign):
        sample = {
            "text": "160 million children…",
            "source": "https://www.ilo.org",
            "hashtags": " ".join(spec.hashtags),
            "fact": SimpleNamespace(id="sample"),
        }
        line = where.get("template", where.get("channels", header))
        return [(f"{spec.template}/{channel}", line, sample) for channel in spec.channels]
    if isinstance(spec, AmplifyCampaign):
        from bot.campaigns.amplify import post_context

        context = post_context(spec, SAMPLE_UPDATE, SAMPLE_PLEDGEMAKER)  # type: ignore[arg-type]
        line = where.get("template", where.get("channels", header))
        return [(f"{spec.template}/{channel}", line, context) for channel in spec.channels]
    if isinstance(spec, AnnounceCampaign):
        sample = {"pledgemaker": SAMPLE_PLEDGEMAKER, "campaign_id": spec.id}
        return [(spec.template, where.get("template", header), sample)]
    from bot.campaigns.followup import prompt_context

    context = prompt_context(spec, SAMPLE_PLEDGEMAKER)
    checks = [(spec.template_name(), where.get("template", header), context)]
    if spec.reminders is not None:
        from bot.campaigns.reminders import reminder_context

        line = where.get("reminders", header)
        # The first reminder and the last: templates say something different for each.
        for number in sorted({1, spec.reminders.times}):
            sample = reminder_context(spec, SAMPLE_PLEDGEMAKER, number)
            checks.append((spec.reminders.template, line, sample))
    return checks


def _check_templates(
    shown: str,
    spec: Campaign,
    where: dict[str, int],
    templates: Templates,
    problems: list[Problem],
    warnings: list[Problem],
) -> None:
    """Render every template the campaign uses, in every language, against a sample context."""
    # A digest is read by staff in its one language, not in each pledgemaker's.
    languages = (spec.language,) if isinstance(spec, DigestCampaign) else LANGUAGES
    for name, line, context in _template_checks(spec, where):
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
