"""``pledgebot report``: the campaign's figures (``bot.community.reports``) as a table, CSV or JSON,
and optionally as a chart file."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bot.cli.common import err, open_app, out
from bot.core.errors import UserInputError
from bot.core.extras import ExtraMissing

if TYPE_CHECKING:
    from rich.table import Table

    from bot.community.reports import ReportRow

FORMATS = ("table", "csv", "json")


def report(
    by: Annotated[
        str, typer.Option(help="Group by pillar, country, campaign or channel.")
    ] = "pillar",
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
    since: Annotated[
        str | None, typer.Option(help="First day counted, YYYY-MM-DD (UTC). Default: all.")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Last day counted, YYYY-MM-DD (UTC). Default: all.")
    ] = None,
    chart: Annotated[
        Path | None,
        typer.Option(help="Also draw a bar chart to this file: PNG, or SVG if it ends in .svg."),
    ] = None,
) -> None:
    """Prompts sent, reply rate, time to reply, updates approved and posts published."""
    from bot.community import reports

    reports.check_by(by)
    if fmt not in FORMATS:
        raise UserInputError(f"--format must be one of {', '.join(FORMATS)} (got {fmt!r})")
    first, last = reports.parse_day(since, "--since"), reports.parse_day(until, "--until")
    reports.check_period(first, last)
    kind = _chart_kind(chart)

    with open_app().db.session() as session:
        rows = reports.figures(session, by, first, last)
    period = reports.describe_period(first, last)
    drawn = _draw(rows, by, kind, period) if chart is not None else None
    if chart is not None and drawn is not None:
        try:
            chart.write_bytes(drawn)
        except OSError as exc:
            raise UserInputError(f"--chart: cannot write {chart}: {exc.strerror or exc}") from None

    if fmt == "csv":
        reports.to_csv(rows, by, sys.stdout)
    elif fmt == "json":
        sys.stdout.write(reports.to_json(rows, by) + "\n")
    else:
        out.print(_table(rows, by, period))
    if drawn is not None:
        err.print(f"chart written to {chart}", markup=False, highlight=False)


def _draw(rows: list[ReportRow], by: str, kind: str, period: str) -> bytes | None:
    """The chart; None, said in one line, without matplotlib (the figures go out all the same)."""
    from bot.community import reports

    try:
        return reports.chart(rows, by, kind, period=period)
    except ExtraMissing as exc:
        err.print(str(exc), markup=False, highlight=False)
        return None


def _chart_kind(path: Path | None) -> str:
    if path is None:
        return ""
    suffix = path.suffix.lower()
    if suffix not in (".png", ".svg"):
        raise UserInputError(f"--chart: {path} must end in .png or .svg")
    return suffix[1:]


def _table(rows: list[ReportRow], by: str, period: str) -> Table:
    from rich.table import Table

    from bot.community import reports

    table = Table(title=f"Per {by}, {period}", title_justify="left")
    longest = max(len(row.group) for row in rows)
    # Never cut a group's name short: fold it over lines when the terminal is narrow.
    table.add_column(by.capitalize(), min_width=min(longest, 24), overflow="fold")
    for heading in reports.HEADINGS:
        table.add_column(heading, justify="right")
    for i, row in enumerate(rows):
        table.add_row(
            row.group,
            str(row.prompts_sent),
            str(row.answered),
            reports.percent(row.reply_rate),
            reports.hours(row.median_hours_to_reply),
            str(row.updates_approved),
            str(row.posts_published),
            end_section=i == len(rows) - 2,  # a line above the "All" row
        )
    return table
