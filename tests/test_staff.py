"""Dashboard accounts from the command line, and staff alerts kept until acknowledged."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from bot.community import staff
from bot.core.errors import UserInputError
from bot.core.staff_models import StaffAlert, StaffUser
from bot.delivery import alerts
from bot.delivery.alerts import Alerts
from bot.service.app import App
from tests.auxil.cli import pledgebot

PASSWORD = "correct-horse-battery-staple"


@pytest.mark.parametrize("app", ["sqlite"], indirect=True)
def test_users_are_managed_from_the_command_line(app: App, tmp_path: Path) -> None:
    added = pledgebot(
        tmp_path,
        "users",
        "add",
        "Lead@Example.org",
        "--role",
        "admin",
        "--password-env",
        "PW",
        PW=PASSWORD,
    )
    assert added.returncode == 0 and "added lead@example.org (admin)" in added.stdout
    assert PASSWORD not in added.stdout + added.stderr
    again = pledgebot(
        tmp_path, "users", "add", "lead@example.org", "--password-env", "PW", PW=PASSWORD
    )
    assert again.returncode == 1 and "exists already" in again.stderr
    short = pledgebot(tmp_path, "users", "add", "b@example.org", "--password-env", "PW", PW="short")
    assert short.returncode == 1 and "at least 12 characters" in short.stderr
    no_tty = pledgebot(tmp_path, "users", "add", "c@example.org")
    assert no_tty.returncode == 1 and "use --password-env" in no_tty.stderr
    role = pledgebot(tmp_path, "users", "role", "lead@example.org", "boss")
    assert role.returncode == 1 and "unknown role 'boss'" in role.stderr
    assert pledgebot(tmp_path, "users", "disable", "lead@example.org").returncode == 0
    listing = pledgebot(tmp_path, "users", "list")
    assert "lead@example.org" in listing.stdout and "disabled" in listing.stdout
    with app.db.session() as session:
        user = session.scalars(select(StaffUser)).one()
        assert user.password_hash.startswith("$argon2id$")
    refused = staff.sign_in(app.db, "lead@example.org", PASSWORD, "test")
    assert refused.user is None, "a disabled user cannot sign in"


@pytest.mark.parametrize("app", ["sqlite"], indirect=True)
def test_a_mistyped_address_or_an_empty_password_variable_is_said_plainly(
    app: App, tmp_path: Path
) -> None:
    bad = pledgebot(tmp_path, "users", "add", "a@b", "--password-env", "PW", PW=PASSWORD)
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines() == [
        "'a@b' is not an email address: The part after the @-sign is not valid. "
        "It should have a period."
    ]
    empty = pledgebot(tmp_path, "users", "add", "b@example.org", "--password-env", "PW", PW="")
    assert empty.returncode == 1 and "environment variable PW is empty" in empty.stderr
    unset = pledgebot(tmp_path, "users", "add", "b@example.org", "--password-env", "NOPE_PW")
    assert unset.returncode == 1 and "environment variable NOPE_PW is not set" in unset.stderr
    weak = pledgebot(
        tmp_path, "users", "add", "b@example.org", "--role", "admin", "--password-env", "PW",
        PW="a" * 16,
    )  # fmt: skip
    assert weak.returncode == 1 and "one character repeated" in weak.stderr
    with app.db.session() as session:
        assert session.scalars(select(StaffUser)).all() == [], "nobody was added"


@pytest.mark.parametrize(
    ("email", "why"),
    [
        ("a@b", "should have a period"),
        ("lead@example", "should have a period"),
        ("lead@@example.org", "not an email address"),
        ("lead example@example.org", "not an email address"),
        ("lead@localhost", "not an email address"),
        ("", "not an email address"),
    ],
)
def test_only_real_email_addresses_are_accepted(email: str, why: str) -> None:
    with pytest.raises(UserInputError, match=why):
        staff.normal_email(email)


def test_an_address_is_kept_lower_cased() -> None:
    assert staff.normal_email("  Comms.Lead@Example.ORG ") == "comms.lead@example.org"


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("", "the password is empty"),
        ("short-one", "at least 12 characters"),
        ("aaaaaaaaaaaaaaaa", "one character repeated"),
        ("comms.lead-2026-spring", "must not contain the address"),
        ("Comms.Lead!!Ninety", "must not contain the address"),
        ("1qaz2wsx3edc", "most common passwords"),
        ("QWERTY123456", "most common passwords"),
        ("password123456", "easy to guess"),
        ("abcabcabcabcabc", "easy to guess"),
        ("Summer202512", "easy to guess"),
    ],
)
def test_easily_guessed_passwords_are_refused(password: str, why: str) -> None:
    with pytest.raises(UserInputError, match=why):
        staff.check_password(password, "comms.lead@example.org")


@pytest.mark.parametrize(
    "password", [PASSWORD, "tulip-saxophone-glacier", "x7#Kp!2vQm9$Lw", "orchard-lantern-47-quiet"]
)
def test_strong_passwords_are_accepted(password: str) -> None:
    staff.check_password(password, "comms.lead@example.org")


@pytest.mark.parametrize("app", ["sqlite"], indirect=True)
def test_an_alert_is_listed_once_until_acknowledged_and_again_if_it_recurs(app: App) -> None:
    raised = Alerts(app.db, app.config.alerts)
    assert raised.raise_alert("unauthorized:x", "x refused our credentials")
    assert not raised.raise_alert("unauthorized:x", "x refused our credentials")
    with app.db.session() as session:
        [alert] = alerts.open_alerts(session)
        assert alerts.acknowledge(session, alert.id, "lead@example.org")
        assert not alerts.acknowledge(session, alert.id, "lead@example.org")
    with app.db.session() as session:
        assert alerts.open_alerts(session) == []
    assert raised.raise_alert("unauthorized:x", "x refused our credentials again")
    with app.db.session() as session:
        [alert] = alerts.open_alerts(session)
        assert alert.text.endswith("again") and alert.acknowledged_by is None
        assert len(session.scalars(select(StaffAlert)).all()) == 1
