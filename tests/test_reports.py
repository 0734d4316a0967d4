"""Campaign reports: the figures per pillar, country, campaign and channel, their period, and
the same figures as CSV, JSON, a chart, `pledgebot report` and the dashboard's /reports.

One known data set (below) is built with the models; every figure asserted is worked out by
hand from it. Runs on SQLite and PostgreSQL (the ``app`` fixture).
"""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from dataclasses import astuple
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from bot.cli import main as cli_module
from bot.community import reports
from bot.community.reports import ReportRow
from bot.core.errors import UserInputError
from bot.core.models import (
    Contact,
    InboundEvent,
    JourneyUpdate,
    OutboxMessage,
    Pledgemaker,
    Post,
    Prompt,
    Reply,
)
from bot.service.app import App
from tests.auxil.cli import pledgebot
from tests.test_web_auth import signed_in

GH, IN = "gh-min-labour", "in-min-labour"  # sample pledgemakers in Ghana and India
ACT, INSPIRE = "act-checkin", "inspire-monthly"


def at(day: int, hour: int = 9, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2024, 3, day, hour, minute, second, tzinfo=UTC)


class Campaign:
    """Builds the data set: each helper adds the rows one campaign action leaves behind."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.contacts: dict[tuple[str, str], int] = {}
        self.serial = 0

    def next(self) -> int:
        self.serial += 1
        return self.serial

    def contact(self, pledgemaker: str, channel: str) -> int:
        if (pledgemaker, channel) not in self.contacts:
            found = Contact(pledgemaker_id=pledgemaker, channel=channel, address=str(self.next()))
            self.session.add(found)
            self.session.flush()
            self.contacts[pledgemaker, channel] = found.id
        return self.contacts[pledgemaker, channel]

    def message(self, channel: str, state: str, sent_at: datetime | None) -> int:
        message = OutboxMessage(
            idempotency_key=f"test:{self.next()}",
            channel=channel,
            recipient="somewhere",
            text="words",
            state=state,
            sent_at=sent_at if state == "sent" else None,
        )
        self.session.add(message)
        self.session.flush()
        return message.id

    def prompt(
        self,
        pledgemaker: str,
        pillar: str,
        campaign: str,
        channel: str,
        sent_at: datetime,
        *,
        outbox_state: str = "sent",
        replies_after: tuple[timedelta, ...] = (),
    ) -> int:
        contact = self.contact(pledgemaker, channel)
        prompt = Prompt(
            outbox_id=self.message(channel, outbox_state, sent_at),
            contact_id=contact,
            pledgemaker_id=pledgemaker,
            campaign_id=campaign,
            pillar=pillar,
            state="answered" if replies_after else "open",
        )
        self.session.add(prompt)
        self.session.flush()
        for delay in replies_after:
            event = InboundEvent(
                channel=channel,
                event_key=f"msg:{self.next()}",
                kind="message",
                chat_id="1",
                payload={},
            )
            self.session.add(event)
            self.session.flush()
            self.session.add(
                Reply(
                    inbound_event_id=event.id,
                    channel=channel,
                    chat_id="1",
                    external_id=str(event.id),
                    contact_id=contact,
                    pledgemaker_id=pledgemaker,
                    prompt_id=prompt.id,
                    text="our news",
                    received_at=sent_at + delay,
                )
            )
        return prompt.id

    def update(
        self,
        pledgemaker: str,
        pillar: str,
        moderation: str,
        moderated_at: datetime | None,
        prompt: int | None = None,
        channel: str | None = None,
    ) -> int:
        update = JourneyUpdate(
            pledgemaker_id=pledgemaker,
            prompt_id=prompt,
            contact_id=self.contact(pledgemaker, channel) if channel else None,
            pillar=pillar,
            kind="progress",
            text="what we did",
            moderation=moderation,
            moderated_at=moderated_at,
            source="reply" if prompt else "import",
            source_ref=f"test:{self.next()}",
        )
        self.session.add(update)
        self.session.flush()
        return update.id

    def post(
        self,
        pledgemaker: str | None,
        pillar: str | None,
        campaign: str,
        channel: str,
        sent_at: datetime,
        update: int | None = None,
        state: str = "sent",
    ) -> None:
        self.session.add(
            Post(
                journey_update_id=update,
                fact_id=None if update else f"fact-{self.next()}",
                pledgemaker_id=pledgemaker,
                campaign_id=campaign,
                channel=channel,
                first_outbox_id=self.message(channel, state, sent_at),
                pillar=pillar,
            )
        )


def hours(h: float) -> timedelta:
    return timedelta(hours=h)


@pytest.fixture
def campaign(app: App) -> App:
    with app.db.session() as session:
        known_campaign(session)
    return app


def known_campaign(session: Session) -> None:
    """Prompts: 5 sent (3 answered: first replies after 2 h, 4 h and 10.2 h), 2 not sent.
    Updates: 3 approved (one imported), 1 pending, 1 rejected. Posts: 3 sent, 1 pending."""
    c = Campaign(session)
    p1 = c.prompt(GH, "act", ACT, "telegram", at(1), replies_after=(hours(2), hours(5)))
    p2 = c.prompt(GH, "act", ACT, "telegram", at(2), replies_after=(hours(4),))
    c.prompt(IN, "act", ACT, "x", at(3))  # sent, never answered
    p4 = c.prompt(IN, "inspire", INSPIRE, "telegram", at(10), replies_after=(hours(10.2),))
    c.prompt(GH, "inspire", INSPIRE, "x", at(31, 23, 30))  # the last minutes of March
    c.prompt(GH, "act", ACT, "telegram", at(4), outbox_state="pending")
    c.prompt(IN, "inspire", INSPIRE, "telegram", at(5), outbox_state="failed")

    u1 = c.update(GH, "act", "approved", at(1, 12), prompt=p1, channel="telegram")
    u2 = c.update(IN, "inspire", "approved", at(10, 23, 59, 59), prompt=p4, channel="telegram")
    c.update(GH, "act", "pending", None, prompt=p2, channel="telegram")
    c.update(GH, "act", "rejected", at(2, 12), prompt=p2, channel="telegram")
    u5 = c.update(IN, "act", "approved", at(31, 18))  # imported from a CSV

    c.post(GH, "act", "amplify", "telegram", at(2, 10), update=u1)
    c.post(IN, "inspire", "amplify", "x", at(12, 10), update=u2)
    c.post(None, None, "knowledge", "x", at(20, 10))  # a knowledge post: no pledgemaker
    c.post(IN, "act", "amplify", "telegram", at(31, 20), update=u5, state="pending")


def figures(app: App, by: str, since: date | None = None, until: date | None = None) -> list:
    with app.db.session() as session:
        return [astuple(row)[:7] for row in reports.figures(session, by, since, until)]


# (group, prompts sent, answered, reply rate, median hours, updates approved, posts published)
BY_PILLAR = [
    ("(none)", 0, 0, None, None, 0, 1),
    ("act", 3, 2, 2 / 3, 3.0, 2, 1),
    ("inspire", 2, 1, 0.5, 10.2, 1, 1),
    ("All", 5, 3, 0.6, 4.0, 3, 3),
]
ALL_CELLS = ["All", "5", "3", "60.0%", "4.0", "3", "3"]  # the "All" row as a person reads it


# -- the figures --------------------------------------------------------------------------------
def test_per_pillar_with_the_all_row_last(campaign: App) -> None:
    assert figures(campaign, "pillar") == BY_PILLAR


def test_per_country_channel_and_campaign(campaign: App) -> None:
    assert figures(campaign, "country") == [
        ("(none)", 0, 0, None, None, 0, 1),  # the knowledge post
        ("GH", 3, 2, 2 / 3, 3.0, 1, 1),
        ("IN", 2, 1, 0.5, 10.2, 2, 1),
        ("All", 5, 3, 0.6, 4.0, 3, 3),
    ]
    assert figures(campaign, "channel") == [
        ("(imported)", 0, 0, None, None, 1, 0),
        ("telegram", 3, 3, 1.0, 4.0, 2, 1),
        ("x", 2, 0, 0.0, None, 0, 2),
        ("All", 5, 3, 0.6, 4.0, 3, 3),
    ]
    assert figures(campaign, "campaign") == [
        ("(imported)", 0, 0, None, None, 1, 0),
        (ACT, 3, 2, 2 / 3, 3.0, 1, 0),
        ("amplify", 0, 0, None, None, 0, 2),
        (INSPIRE, 2, 1, 0.5, 10.2, 1, 0),
        ("knowledge", 0, 0, None, None, 0, 1),
        ("All", 5, 3, 0.6, 4.0, 3, 3),
    ]


def test_a_period_counts_each_figure_by_its_own_time_both_days_included(campaign: App) -> None:
    # Prompts 2 (2 March), 3 and 4 (10 March, 09:00); the update approved 10 March 23:59:59;
    # the post sent 2 March 10:00. Prompt 4 counts as answered though its reply came later.
    assert figures(campaign, "pillar", date(2024, 3, 2), date(2024, 3, 10)) == [
        ("act", 2, 1, 0.5, 4.0, 0, 1),
        ("inspire", 1, 1, 1.0, 10.2, 1, 0),
        ("All", 3, 2, 2 / 3, 7.1, 1, 1),
    ]
    last_day = figures(campaign, "pillar", since=date(2024, 3, 31))
    assert last_day == [
        ("act", 0, 0, None, None, 1, 0),  # the imported update, approved 31 March
        ("inspire", 1, 0, 0.0, None, 0, 0),  # sent at 23:30 on 31 March
        ("All", 1, 0, 0.0, None, 1, 0),
    ]
    before_last_day = figures(campaign, "pillar", until=date(2024, 3, 30))
    assert before_last_day[-1] == ("All", 4, 3, 0.75, 4.0, 2, 3)
    assert figures(campaign, "pillar", date(2025, 1, 1)) == [("All", 0, 0, None, None, 0, 0)]
    assert figures(campaign, "pillar", date.min, date.max) == BY_PILLAR


def test_figures_survive_blanked_personal_data(campaign: App) -> None:
    with campaign.db.session() as session:
        for pledgemaker in session.query(Pledgemaker):
            pledgemaker.name = pledgemaker.pledge_title = pledgemaker.pledge_text = ""
        for reply in session.query(Reply):
            reply.text = ""
        for update in session.query(JourneyUpdate):
            update.text = ""
    assert figures(campaign, "pillar") == BY_PILLAR


def test_bad_choices_are_refused_in_words(campaign: App) -> None:
    with campaign.db.session() as session:
        with pytest.raises(UserInputError, match="cannot group by 'region'; one of pillar"):
            reports.figures(session, "region")
        with pytest.raises(UserInputError, match=r"starts \(2024-03-10\) after it ends"):
            reports.figures(session, "pillar", date(2024, 3, 10), date(2024, 3, 9))
    with pytest.raises(UserInputError, match="'2024-02-30' is not a date"):
        reports.parse_day("2024-02-30", "since")
    with pytest.raises(UserInputError, match="'1/3/2024' is not a date"):
        reports.parse_day("1/3/2024", "since")
    assert reports.parse_day(" ", "since") is None


# -- CSV, JSON, chart ---------------------------------------------------------------------------
ROWS = [
    ReportRow("act", 3, 2, 2 / 3, 3.0, 2, 1),
    ReportRow("x" * 60, 0, 0, None, None, 0, 1),
    ReportRow("All", 3, 2, 2 / 3, 3.0, 2, 2, total=True),
]


def test_csv_and_json_carry_the_same_numbers() -> None:
    stream = io.StringIO()
    reports.to_csv(ROWS, "pillar", stream)
    parsed = list(csv.DictReader(io.StringIO(stream.getvalue())))
    assert list(parsed[0]) == ["pillar", *reports.FIELDS]
    assert parsed[0] == {
        "pillar": "act",
        "prompts_sent": "3",
        "answered": "2",
        "reply_rate_percent": "66.7",
        "median_hours_to_reply": "3.0",
        "updates_approved": "2",
        "posts_published": "1",
    }
    assert parsed[1]["reply_rate_percent"] == parsed[1]["median_hours_to_reply"] == ""
    assert parsed[2]["pillar"] == "All" and parsed[2]["posts_published"] == "2"
    loaded = json.loads(reports.to_json(ROWS, "country"))
    assert loaded[0] == {
        "country": "act",
        "prompts_sent": 3,
        "answered": 2,
        "reply_rate_percent": 66.7,
        "median_hours_to_reply": 3.0,
        "updates_approved": 2,
        "posts_published": 1,
    }
    assert loaded[1]["reply_rate_percent"] is None and loaded[1]["median_hours_to_reply"] is None


def test_the_chart_as_png_and_as_deterministic_svg() -> None:
    assert reports.chart(ROWS, "pillar", "png").startswith(b"\x89PNG\r\n\x1a\n")
    svg = reports.chart(ROWS, "pillar", "svg", period="all time")
    assert svg == reports.chart(ROWS, "pillar", "svg", period="all time")
    root = ET.fromstring(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert b"<dc:date>" not in svg and b"<script" not in svg
    # 60 countries still make one chart (a long one); an empty period says so.
    many = [ReportRow(f"C{i:02}", i, i // 2, 0.5, 1.0, 1, 0) for i in range(60)]
    assert ET.fromstring(reports.chart([*many, ROWS[-1]], "country")).tag.endswith("svg")
    assert reports.chart([ReportRow("All", total=True)], "pillar", "png")[:4] == b"\x89PNG"
    with pytest.raises(ValueError):
        reports.chart(ROWS, "pillar", "pdf")


def test_the_alt_text_says_what_the_chart_shows() -> None:
    assert reports.summary(ROWS, "pillar") == (
        "Bar chart per pillar of prompts sent, answered, updates approved and posts published"
        " (2 groups). In all: 3 prompts sent, 2 answered, 2 updates approved, 2 posts"
        " published. Most prompts sent: act (3)."
    )


# -- pledgebot report ---------------------------------------------------------------------------
@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setattr(cli_module, "setup_logging", lambda *_: None)  # keep pytest's logging
    return CliRunner()


def invoke(runner: CliRunner, app: App, *args: str):  # type: ignore[no-untyped-def]
    config = str(app.config.source)
    return runner.invoke(cli_module.cli, ["-c", config, "report", *args], prog_name="pledgebot")


def test_report_as_a_table_csv_and_json(campaign: App, runner: CliRunner) -> None:
    table = invoke(runner, campaign, "--by", "country")
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert "Per country, all time" in lines[0]
    gh = next(line for line in lines if " GH " in line).split("│")
    assert [cell.strip() for cell in gh[1:-1]] == ["GH", "3", "2", "66.7%", "3.0", "1", "1"]
    total = next(line for line in lines if " All " in line).split("│")
    assert [cell.strip() for cell in total[1:-1]] == ALL_CELLS

    as_csv = invoke(runner, campaign, "--format", "csv", "--since", "2024-03-31")
    assert list(csv.reader(io.StringIO(as_csv.stdout))) == [
        ["pillar", *reports.FIELDS],
        ["act", "0", "0", "", "", "1", "0"],
        ["inspire", "1", "0", "0.0", "", "0", "0"],
        ["All", "1", "0", "0.0", "", "1", "0"],
    ]
    as_json = json.loads(invoke(runner, campaign, "--format", "json", "--by", "channel").stdout)
    assert as_json[-1] == {
        "channel": "All",
        "prompts_sent": 5,
        "answered": 3,
        "reply_rate_percent": 60.0,
        "median_hours_to_reply": 4.0,
        "updates_approved": 3,
        "posts_published": 3,
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--by", "region"), "cannot group by 'region'; one of pillar, country, campaign, channel"),
        (("--format", "xml"), "--format must be one of table, csv, json (got 'xml')"),
        (("--since", "2024-13-01"), "--since: '2024-13-01' is not a date (YYYY-MM-DD)"),
        (
            ("--since", "2024-03-10", "--until", "2024-03-01"),
            "the period starts (2024-03-10) after it ends (2024-03-01)",
        ),
        (("--chart", "out.pdf"), "--chart: out.pdf must end in .png or .svg"),
    ],
)
def test_report_refuses_bad_values_in_one_line(
    campaign: App, runner: CliRunner, args: tuple[str, ...], message: str
) -> None:
    result = invoke(runner, campaign, *args)
    assert isinstance(result.exception, UserInputError)
    assert str(result.exception) == message
    assert result.stdout == ""


def test_report_draws_a_chart_file_through_the_console_script(campaign: App) -> None:
    folder = Path(campaign.config.source).parent
    proc = pledgebot(folder, "report", "--by", "channel", "--format", "csv", "--chart", "c.svg")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "All,5,3,60.0,4.0,3,3"
    assert proc.stderr == "chart written to c.svg\n"
    assert ET.parse(folder / "c.svg").getroot().tag.endswith("svg")
    png = pledgebot(folder, "report", "--chart", str(folder / "c.png"))
    assert png.returncode == 0 and (folder / "c.png").read_bytes()[:4] == b"\x89PNG"

    missing = folder / "no-such-folder" / "chart.png"
    bad = pledgebot(folder, "report", "--format", "json", "--chart", str(missing))
    assert (bad.returncode, bad.stdout) == (1, "")
    assert bad.stderr == f"--chart: cannot write {missing}: No such file or directory\n"


# -- the dashboard ------------------------------------------------------------------------------
class Tables(HTMLParser):
    """The text of every table cell, row by row, and every <img>'s attributes."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.images: list[dict[str, str | None]] = []
        self.cell: list[str] | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self.cell = []
        elif tag == "img":
            self.images.append(dict(attrs))

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self.cell is not None:
            self.rows[-1].append("".join(self.cell).strip())
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


def test_a_viewer_sees_the_figures_the_chart_and_a_csv_link(campaign: App) -> None:
    viewer = signed_in(campaign, "viewer@example.org", "viewer")
    response = viewer.get("/reports?by=country&since=2024-03-02&until=2024-03-10")
    assert response.status_code == 200
    page = Tables(response.text)
    assert page.rows == [
        ["Country", *reports.HEADINGS],
        ["GH", "1", "1", "100.0%", "4.0", "0", "1"],
        ["IN", "2", "1", "50.0%", "10.2", "1", "0"],
        ["All", "3", "2", "66.7%", "7.1", "1", "1"],
    ]
    assert "<caption>Per country, 2024-03-02 to 2024-03-10 (UTC)</caption>" in response.text
    query = "by=country&amp;since=2024-03-02&amp;until=2024-03-10"
    assert f'href="/reports.csv?{query}"' in response.text
    [chart] = page.images
    assert chart["src"] == f"/reports/chart.svg?{query}".replace("&amp;", "&")
    assert (chart["alt"] or "").startswith("Bar chart per country") and "3 prompts sent" in (
        chart["alt"] or ""
    )
    assert '<option value="country" selected>' in response.text
    assert 'name="since" value="2024-03-02"' in response.text

    plain = Tables(viewer.get("/reports").text)
    assert plain.rows[0][0] == "Pillar" and plain.rows[-1] == ALL_CELLS


def test_csv_download_and_svg_chart(campaign: App) -> None:
    viewer = signed_in(campaign, "viewer@example.org", "viewer")
    download = viewer.get("/reports.csv?by=channel")
    assert download.status_code == 200
    assert download.headers["content-type"] == "text/csv; charset=utf-8"
    assert (
        download.headers["content-disposition"]
        == 'attachment; filename="pledgebot-report-channel.csv"'
    )
    assert list(csv.reader(io.StringIO(download.text))) == [
        ["channel", *reports.FIELDS],
        ["(imported)", "0", "0", "", "", "1", "0"],
        ["telegram", "3", "3", "100.0", "4.0", "2", "1"],
        ["x", "2", "0", "0.0", "", "0", "2"],
        ["All", "5", "3", "60.0", "4.0", "3", "3"],
    ]
    chart = viewer.get("/reports/chart.svg?by=channel&until=2024-03-15")
    assert chart.status_code == 200 and chart.headers["content-type"] == "image/svg+xml"
    assert "script-src" not in chart.headers["content-security-policy"]
    assert ET.fromstring(chart.content).tag == "{http://www.w3.org/2000/svg}svg"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("by=region", "Cannot group by &#39;region&#39;; one of pillar, country"),
        ("since=2024-02-30", "From: &#39;2024-02-30&#39; is not a date (YYYY-MM-DD)."),
        ("since=2024-03-10&until=2024-03-01", "The period starts (2024-03-10) after it ends"),
    ],
)
def test_bad_parameters_are_a_400_in_words(campaign: App, query: str, message: str) -> None:
    viewer = signed_in(campaign, "viewer@example.org", "viewer")
    response = viewer.get(f"/reports?{query}")
    assert response.status_code == 400
    assert message in response.text and "Traceback" not in response.text
    assert 'role="alert"' in response.text and "<table" not in response.text
    for path in ("/reports.csv", "/reports/chart.svg"):
        refused = viewer.get(f"{path}?{query}")
        assert refused.status_code == 400, path
        assert refused.headers["content-type"].startswith("text/plain"), path


def test_reports_need_a_signed_in_user(campaign: App) -> None:
    from starlette.testclient import TestClient

    from bot.web.app import build

    stranger = TestClient(build(campaign))
    for path in ("/reports?by=country", "/reports.csv", "/reports/chart.svg"):
        response = stranger.get(path, follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/login?next=/reports")
