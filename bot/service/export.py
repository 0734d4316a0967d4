"""`pledgebot export`: replies and journey updates as JSON (an array of objects) or CSV (cells a
spreadsheet would run as a formula are escaped: ``bot.core.csv_safety``)."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import IO, Any

from sqlalchemy import select

from bot.core import csv_safety
from bot.core.errors import UserInputError
from bot.core.models import JourneyUpdate, Prompt, Reply
from bot.service.app import App

REPLY_FIELDS = [
    "id",
    "received_at",
    "channel",
    "chat_id",
    "pledgemaker_id",
    "prompt_id",
    "pillar",
    "journey_update_id",
    "acknowledgement",
    "text",
    "original_text",
    "edited_at",
    "media",
]
UPDATE_FIELDS = [
    "id",
    "pledgemaker_id",
    "pillar",
    "kind",
    "text",
    "media",
    "moderation",
    "consent_to_publish",
    "source",
    "source_ref",
    "prompt_id",
    "created_at",
]


def rows(app: App, what: str) -> tuple[list[str], list[dict[str, Any]]]:
    with app.db.session() as session:
        if what == "replies":
            query = select(Reply, Prompt.pillar).outerjoin(Prompt).order_by(Reply.id)
            found = [
                {**{f: getattr(reply, f) for f in REPLY_FIELDS if f != "pillar"}, "pillar": pillar}
                for reply, pillar in session.execute(query)
            ]
            return REPLY_FIELDS, found
        updates = session.scalars(select(JourneyUpdate).order_by(JourneyUpdate.id))
        return UPDATE_FIELDS, [{f: getattr(u, f) for f in UPDATE_FIELDS} for u in updates]


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def export(app: App, what: str, fmt: str, stream: IO[str]) -> None:
    if fmt not in ("json", "csv"):
        raise UserInputError(f"--format must be csv or json (got {fmt!r})")
    fields, records = rows(app, what)
    records = [{k: _plain(record[k]) for k in fields} for record in records]
    if fmt == "json":
        json.dump(records, stream, ensure_ascii=False, indent=2)
        stream.write("\n")
        return
    csv_safety.write_records(
        stream,
        fields,
        (
            {
                k: json.dumps(v, ensure_ascii=False) if isinstance(v, list | dict) else v
                for k, v in record.items()
            }
            for record in records
        ),
    )
