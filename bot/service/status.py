"""`pledgebot status`: what a comms-team member checks first, as `label: value` lines."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.channels import registry
from bot.core.coordination import is_sqlite, leaders
from bot.core.models import CampaignControl, ChannelState, Contact, InboundEvent, OutboxMessage
from bot.delivery import outage, outbox
from bot.service.app import App


@dataclass(frozen=True)
class Watched:
    """What both `pledgebot status` and /healthz, /metrics report."""

    possible_duplicates: int
    inbox_unprocessed: int
    paused: list[str]


def watched(session: Session) -> Watched:
    return Watched(
        possible_duplicates=int(
            session.scalar(select(func.count()).where(OutboxMessage.possible_duplicate)) or 0
        ),
        inbox_unprocessed=int(
            session.scalar(select(func.count()).where(InboundEvent.processed_at.is_(None))) or 0
        ),
        paused=sorted(
            session.scalars(select(CampaignControl.campaign_id).where(CampaignControl.paused))
        ),
    )


def collect(app: App) -> dict[str, str]:
    figures: dict[str, str] = {"database": app.db.describe()}
    with app.db.session() as session:
        counts = outbox.state_counts(session)
        for state in ("pending", "retry_wait", "sending", "sent", "failed", "cancelled"):
            figures[f"outbox {state}"] = str(counts.get(state, 0))
        watch = watched(session)
        # A message on the wire at a crash, or whose send timed out, is resent and flagged: at
        # most these reached someone twice (`pledgebot outbox list --possible-duplicates`).
        figures["possible duplicates (resent after a crash or a timeout)"] = str(
            watch.possible_duplicates
        )
        figures["inbox unprocessed"] = str(watch.inbox_unprocessed)
        contacts = dict(
            session.execute(select(Contact.status, func.count()).group_by(Contact.status))
            .tuples()
            .all()
        )
        for status in ("active", "stopped", "gone"):
            figures[f"contacts {status}"] = str(contacts.get(status, 0))
        paused = watch.paused
        figures["paused"] = ", ".join("all sending" if p == "*" else p for p in paused) or "none"
        down = outage.channels_down(session)
        for channel in app.config.channels:
            known = session.get(ChannelState, channel)
            enabled = getattr(app.config.channel_settings(channel), "enabled", False)
            health = "disabled" if not enabled else "no traffic yet"
            if known is not None and enabled:
                ok, bad = known.last_ok_at, known.last_error_at
                if bad is not None and (ok is None or bad > ok):
                    health = f"failing since {bad:%Y-%m-%d %H:%M} UTC: {known.last_error}"
                elif ok is not None:
                    health = f"ok (last success {ok:%Y-%m-%d %H:%M} UTC)"
            if channel in down:
                health = f"{_down(down[channel])}; {health}"
            if enabled and (off := registry.unavailable(channel)) is not None:
                health = f"OFF, its messages wait ({off}); {health}"
            figures[f"channel {channel}"] = health
    figures["rate limits"] = (
        "redis (shared by every process)"
        if app.config.ratelimit.backend == "redis"
        else "memory (per process: one sending process only)"
    )
    if not is_sqlite(app.config.database_url):
        roles = {"scheduler": "scheduler", "inbox": "inbox", **_listeners(app)}
        led = leaders(app.db.engine, list(roles.values()))
        for label, role in roles.items():
            figures[f"{label} led by"] = led.get(role, NOBODY[label.split(" ")[0]])
    return figures


# Which processes run a role (``bot.cli.runner.COMMAND_ROLES``), to say what is missing.
NOBODY = {
    "scheduler": "nobody (no `pledgebot scheduler` or `run` process is up)",
    "inbox": "nobody (no `pledgebot listener` or `run` process is up: replies wait)",
    "listener": "nobody (no `pledgebot listener` or `run` process is up: nothing is received)",
}


def _listeners(app: App) -> dict[str, str]:
    """``{"listener (telegram)": leadership name}`` for each enabled chat channel, named as the
    runner names them (Telegram's by its token's hash: one getUpdates consumer per bot)."""
    found = {}
    for name in app.config.enabled_channels():
        if not registry.spec(name).inbound:
            continue
        try:
            channel = app.channel(name)
        except Exception:  # a secret or the library missing here: the name a keyless one uses
            channel = None
        key = getattr(channel, "listener_key", name)
        found[f"listener ({name})"] = f"listener:{key}"
    return found


def _down(down: outage.ChannelDown) -> str:
    probe = f", next probe {down.next_probe:%H:%M:%S} UTC" if down.next_probe else ""
    return (
        f"DOWN since {down.since:%Y-%m-%d %H:%M} UTC ({down.failures} failures in a row; "
        f"its messages wait{probe})"
    )
