"""CSV cells that a spreadsheet cannot run, and back: every CSV pledgebot writes goes through
``writer`` (or ``escape``), and the import reads every cell through ``unescape``.

A cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is a formula to
Excel, LibreOffice and Google Sheets (OWASP, "CSV Injection"), and pledgemakers' own words can
start that way: "+41 22 799 61 11", "-5 schools", "=)". Such a cell is written with one single
quote in front, which spreadsheets show as text.

So that export → import changes nothing, the quote must be told apart from one the text really
starts with: a cell is escaped when its first character that is not a ``'`` is dangerous, so
``'=x`` (a text that starts with a quote) goes out as ``''=x``, and the import removes exactly
one quote from a cell whose rest is such a cell. ``unescape(escape(s)) == s`` for every string.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import IO, Any

DANGEROUS = frozenset("=+-@\t\r")
QUOTE = "'"


def _starts_dangerously(text: str) -> bool:
    return text.lstrip(QUOTE)[:1] in DANGEROUS


def escape(text: str) -> str:
    """``text`` as a cell a spreadsheet shows and never evaluates."""
    return QUOTE + text if _starts_dangerously(text) else text


def unescape(cell: str) -> str:
    """The text ``escape`` was given: at most the one quote it added is removed."""
    if cell.startswith(QUOTE) and _starts_dangerously(cell[1:]):
        return cell[1:]
    return cell


def cell(value: Any) -> Any:
    """One value as written to CSV: None empty, dates ISO 8601, text escaped."""
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, str):
        return escape(value)
    return value


class Writer:
    """``csv.writer`` whose every cell goes through ``cell``: the only way pledgebot writes CSV
    that a person may open in a spreadsheet."""

    def __init__(self, stream: IO[str], **options: Any) -> None:
        self._writer = csv.writer(stream, **options)

    def writerow(self, row: Iterable[Any]) -> None:
        self._writer.writerow([cell(value) for value in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def writer(stream: IO[str], **options: Any) -> Writer:
    return Writer(stream, **options)


def write_records(
    stream: IO[str], fields: list[str], records: Iterable[Mapping[str, Any]], **options: Any
) -> None:
    """A header row, then each record's ``fields`` in that order."""
    out = writer(stream, **options)
    out.writerow(fields)
    for record in records:
        out.writerow(record.get(field) for field in fields)
