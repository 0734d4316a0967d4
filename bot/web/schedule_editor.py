"""``/schedules``: the comms team edits the campaign files in the browser.

A save is checked exactly as ``pledgebot schedules check`` checks (the whole folder, with the
edited file in place of the one on disk, so a duplicate campaign id in another file is found
too). Only a valid save is written — atomically — and the running scheduler picks it up as it
does any edit of ``schedules/``. An invalid one changes nothing and is shown again with each
problem at its line. A save made from a copy someone else has changed since is refused. Every
save is recorded in the audit log with its diff.
"""

from __future__ import annotations

import difflib
import hashlib
import re
import shutil
import tempfile
from pathlib import Path

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bot.community import staff
from bot.core.errors import Problem, ScheduleError
from bot.scheduling.schedules import load_schedules, schedule_files
from bot.service.app import App
from bot.web.pages import back, in_thread, not_found, page

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*\.toml$")


def routes(app: App) -> list[Route]:
    return [
        Route("/schedules", in_thread(app, listing), methods=["GET"]),
        Route("/schedules/{name}", in_thread(app, editor), methods=["GET"]),
        Route("/schedules/{name}", in_thread(app, save), methods=["POST"]),
    ]


def folder(app: App) -> Path:
    return app.config.path("schedules")


def the_file(app: App, name: str) -> Path | None:
    """Only a schedule file of the folder, by its bare name: never a path elsewhere."""
    if not NAME.match(name):
        return None
    path = folder(app) / name
    return path if path in schedule_files([folder(app)]) else None


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def listing(request: Request, app: App, _form: FormData | None) -> Response:
    try:
        loaded = app.schedules()
        counts: dict[str, int] = {}
        for campaign in loaded.campaigns.values():
            counts[Path(campaign.file).name] = counts.get(Path(campaign.file).name, 0) + 1
        problem = ""
    except ScheduleError as exc:
        counts, problem = {}, str(exc)
    files = [(path.name, counts.get(path.name)) for path in schedule_files([folder(app)])]
    return page(request, app, "schedules.html", title="Schedules", files=files, problem=problem)


def editor(request: Request, app: App, _form: FormData | None) -> Response:
    path = the_file(app, request.path_params["name"])
    if path is None:
        return not_found(request, app, "No such schedule file.")
    text = path.read_text(encoding="utf-8")
    return _editor_page(request, app, path.name, text, digest(text), [])


def _editor_page(
    request: Request,
    app: App,
    name: str,
    text: str,
    base: str,
    problems: list[Problem],
    status: int = 200,
    stale: bool = False,
) -> Response:
    lines = text.splitlines() or [""]
    marked = {p.line for p in problems if p.line}
    return page(
        request,
        app,
        "schedule_edit.html",
        status,
        title=f"Schedule {name}",
        name=name,
        text=text,
        base=base,
        problems=problems,
        numbered=[(n, line, n in marked) for n, line in enumerate(lines, start=1)],
        stale=stale,
    )


def check(app: App, name: str, text: str) -> list[Problem]:
    """The problems ``schedules check`` would report with ``text`` saved as ``name``."""
    with tempfile.TemporaryDirectory() as tmp:
        trial = Path(tmp) / "schedules"
        shutil.copytree(folder(app), trial, ignore=shutil.ignore_patterns(".*"))
        (trial / name).write_text(text, encoding="utf-8")
        try:
            load_schedules(
                [trial],
                app.templates,
                default_timezone=app.config.timezone,
                base_dir=app.config.base_dir,
            )
        except ScheduleError as exc:
            return [
                Problem(Path(p.file).name if p.file else name, p.line, p.message)
                for p in exc.problems
            ]
    return []


def save(request: Request, app: App, form: FormData | None) -> Response:
    assert form is not None
    path = the_file(app, request.path_params["name"])
    if path is None:
        return not_found(request, app, "No such schedule file.")
    text = str(form.get("text", "")).replace("\r\n", "\n")
    base = str(form.get("base", ""))
    current = path.read_text(encoding="utf-8")
    if base != digest(current):
        return _editor_page(request, app, path.name, text, base, [], 409, stale=True)
    problems = check(app, path.name, text)
    if problems:
        return _editor_page(request, app, path.name, text, base, problems, 400)
    if text == current:
        return back(f"/schedules/{path.name}", "No change.")
    partial = path.with_name(f".{path.name}.saving")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)  # atomic: the scheduler never reads half a file
    diff = "".join(
        difflib.unified_diff(
            current.splitlines(keepends=True),
            text.splitlines(keepends=True),
            fromfile=f"{path.name} (before)",
            tofile=f"{path.name} (after)",
        )
    )
    actor = request.scope["state"]["user"]
    with app.db.session() as session:
        staff.audit(session, actor, "schedule.save", path.name, diff)
    return back(f"/schedules/{path.name}", f"{path.name} saved; the scheduler applies it now.")
