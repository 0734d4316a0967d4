"""CSV import of pledgemakers: how long the SQLite write lock is held, pledgebot vs the old way.

``pledgebot run`` needs SQLite's write lock too, and every transaction starts with ``BEGIN
IMMEDIATE`` (bot/core/db.py): an import's write transaction holds the lock from its first statement
to COMMIT. Measured on a generated 60,000-row pledgemakers CSV (countries with their region and
time zone, every sector, three languages, multi-line pledge texts of a few hundred characters
written in the row's language, optional x_handle, website and email) in three cases, each on a
fresh copy of the same database: all rows new (empty database), all rows changed (pledge text
on every row, plus email, title or sector on some), nothing changed (the same file again).

pledgebot: ``bot.community.importer.import_pledgemakers`` in ``db.session()`` as ``pledgebot import
pledgemakers`` runs it (the whole file read and validated before the first statement, then Core
executemany statements). Baseline: the importer as it was before (``git show fc432df:bot/
importer.py``): the erased ids read, then the file read and validated with the same reader and
row model (``bot.community.csv_rows.read``, ``PledgemakerRow``) inside the transaction, every stored
pledgemaker loaded as an ORM object, then ``session.add(Pledgemaker(**values))`` for a new id
or ``setattr`` of each differing column, flushed by the unit of work at commit.

The lock is timed with engine events: ``begin`` (registered before bot/core/db.py's own listener,
so from the ``BEGIN IMMEDIATE``) to the end of COMMIT (the session's ``after_commit``; the
engine's ``commit`` event marks the COMMIT's start); each import must be one transaction. The
importing thread's CPU time over the same span is reported too (``lock_cpu_s``): on a loaded
machine the lock is held longer than the work in it takes. Wall time is the whole import,
reading included. Both sides run in this process after an untimed warm-up of each
(vocabularies, mappers), taking turns, ``--runs`` times per case; in the first round both must
report the expected created/updated counts and leave the same pledgemakers (hashed), and the
database pledgebot's first "all new" import leaves is the state of the other two cases.

Ratio: (median lock of "all new" + median lock of "all changed") of pledgebot ÷ the same of the
baseline, target ≤ 0.3 (lower is better). Also required: pledgebot's median lock in every case
≤ 3.0 s at 60,000 rows (scaled by rows/60,000 for other sizes: 0.5 s at --quick's 10,000).

    .venv/bin/python bench/import_lock.py [--rows 60000] [--runs 3] [--quick] [--strict]
"""

from __future__ import annotations

import argparse
import csv
import gc
import hashlib
import os
import random
import shutil
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from _common import log, report
from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session, selectinload

from bot.community.csv_rows import read
from bot.community.importer import ImportResult, import_pledgemakers
from bot.community.row_models import HANDLE_COLUMNS, PledgemakerRow
from bot.core.db import Database
from bot.core.models import Pledgemaker
from bot.core.vocab import LANGUAGES, SECTORS

TARGET = 0.3
LOCK_LIMIT_S = 3.0  # pledgebot's median lock hold at LIMIT_ROWS rows, in every case
LIMIT_ROWS = 60_000
CASES = ("new", "changed", "unchanged")
SIDES = ("pledgebot", "baseline")
HEADER = (  # the sample file's columns, and email (optional columns: some cells empty)
    *("id", "name", "country", "region", "sector", "language", "timezone", "pledge_title"),
    *("pledge_text", "pledge_date", "x_handle", "website", "email"),
)

# -- the CSV -------------------------------------------------------------------------------------
# (country, ILO region, a time zone there, the language most of its pledgemakers write in)
PLACES = (
    ("GH", "africa", "Africa/Accra", "en"),
    ("NG", "africa", "Africa/Lagos", "en"),
    ("KE", "africa", "Africa/Nairobi", "en"),
    ("ZA", "africa", "Africa/Johannesburg", "en"),
    ("SN", "africa", "Africa/Dakar", "fr"),
    ("CI", "africa", "Africa/Abidjan", "fr"),
    ("CM", "africa", "Africa/Douala", "fr"),
    ("MA", "africa", "Africa/Casablanca", "fr"),
    ("JO", "arab_states", "Asia/Amman", "en"),
    ("LB", "arab_states", "Asia/Beirut", "fr"),
    ("QA", "arab_states", "Asia/Qatar", "en"),
    ("IN", "asia_pacific", "Asia/Kolkata", "en"),
    ("BD", "asia_pacific", "Asia/Dhaka", "en"),
    ("PH", "asia_pacific", "Asia/Manila", "en"),
    ("VN", "asia_pacific", "Asia/Ho_Chi_Minh", "en"),
    ("FJ", "asia_pacific", "Pacific/Fiji", "en"),
    ("NZ", "asia_pacific", "Pacific/Auckland", "en"),
    ("MX", "americas", "America/Mexico_City", "es"),
    ("PE", "americas", "America/Lima", "es"),
    ("CO", "americas", "America/Bogota", "es"),
    ("AR", "americas", "America/Argentina/Buenos_Aires", "es"),
    ("CL", "americas", "America/Santiago", "es"),
    ("US", "americas", "America/New_York", "en"),
    ("CA", "americas", "America/Toronto", "fr"),
    ("HT", "americas", "America/Port-au-Prince", "fr"),
    ("FR", "europe_central_asia", "Europe/Paris", "fr"),
    ("ES", "europe_central_asia", "Europe/Madrid", "es"),
    ("DE", "europe_central_asia", "Europe/Berlin", "en"),
    ("GB", "europe_central_asia", "Europe/London", "en"),
    ("UZ", "europe_central_asia", "Asia/Tashkent", "en"),
)
ORGANISATIONS = {
    "en": ("Cocoa Growers' Cooperative", "Ministry of Labour", "Child Rights Network"),
    "fr": ("Coopérative des planteurs", "Ministère du Travail", "Réseau des droits de l'enfant"),
    "es": ("Cooperativa de caficultores", "Ministerio de Trabajo", "Red por la niñez"),
}
TITLES = {
    "en": "Back to school for {n:,} working children in {place}",
    "fr": "Retour à l'école pour {n} enfants travailleurs à {place}",
    "es": "De vuelta a la escuela para {n} niños trabajadores en {place}",
}
SENTENCES = {
    "en": (
        "We will train {n} community child protection committees, in every district we cover.",
        "Every case identified will be referred to social welfare and education services "
        'within {d} days, under our "no child left behind" rule.',
        "Our {n} member farms will adopt a written no-child-labour policy and a grievance line.",
        "We will fund holiday study camps so that children are not needed during school breaks.",
        "Families will be linked to social protection schemes, savings groups and alternative "
        "livelihoods.",
        "We will publish our supplier list and trace {d}% of our raw materials to the farm.",
    ),
    "fr": (
        "Nous formerons {n} comités communautaires de protection de l'enfance, dans chaque "
        "district couvert.",
        "Chaque cas identifié sera orienté vers les services sociaux et l'école en moins de "
        "{d} jours.",
        "Nos {n} exploitations membres adopteront une politique écrite « zéro travail des "
        "enfants » et un mécanisme de plainte.",
        "Nous financerons des camps de vacances studieuses, pour que les enfants ne soient pas "
        "sollicités pendant les congés.",
        "Les familles seront reliées aux régimes de protection sociale et aux groupes d'épargne.",
        "Nous publierons la liste de nos fournisseurs et tracerons {d} % de nos matières "
        "premières.",
    ),
    "es": (
        "Formaremos {n} comités comunitarios de protección infantil, en cada distrito que "
        "cubrimos.",
        "Cada caso identificado se remitirá a los servicios sociales y educativos en menos de "
        "{d} días.",
        "Nuestras {n} fincas socias adoptarán una política escrita contra el trabajo infantil "
        "y una línea de quejas.",
        "Financiaremos campamentos de estudio en vacaciones, para que no se necesite a los niños "
        "durante las pausas escolares.",
        "Las familias se vincularán con la protección social y con grupos de ahorro.",
        "Publicaremos nuestra lista de proveedores y rastrearemos el {d} % de las materias primas.",
    ),
}
FOLLOW_UP = {
    "en": "Update {year}: {n} more children are back in school.",
    "fr": "Point {year} : {n} enfants de plus sont retournés à l'école.",
    "es": "Avance {year}: {n} niños más volvieron a la escuela.",
}


def pledgemakers(rows: int, seed: int = 16) -> list[dict[str, str]]:
    """``rows`` pledgemakers as CSV cells, the same for a given seed."""
    rng = random.Random(seed)
    people = []
    for i in range(rows):
        country, region, zone, usual = PLACES[i % len(PLACES)]
        language = usual if rng.random() < 0.8 else rng.choice(LANGUAGES)
        sector = SECTORS[rng.randrange(len(SECTORS))]
        place = f"{country}-{rng.randrange(1, 400)}"
        picked = rng.sample(SENTENCES[language], rng.randint(3, 5))
        said = [s.format(n=rng.randint(10, 5000), d=rng.randint(5, 95)) for s in picked]
        people.append(
            {
                "id": f"{country.lower()}-{sector[:3]}-{i:06d}",
                "name": f"{rng.choice(ORGANISATIONS[language])}, {place} ({i})",
                "country": country,
                "region": region,
                "sector": sector,
                "language": language,
                "timezone": zone,
                "pledge_title": TITLES[language].format(n=rng.randint(50, 9000), place=place),
                "pledge_text": " ".join(said[:2]) + "\n" + " ".join(said[2:]),
                "pledge_date": (date(2021, 1, 1) + timedelta(days=rng.randrange(365))).isoformat(),
                "x_handle": f"@Pledge{i:06d}" if rng.random() < 0.45 else "",
                "website": f"https://org{i}.example.org/pledge" if rng.random() < 0.55 else "",
                "email": f"contact{i}@org{i}.example.org" if rng.random() < 0.65 else "",
            }
        )
    return people


def changed(people: list[dict[str, str]]) -> list[dict[str, str]]:
    """Every row changed: a line added to each pledge text; on some rows the email, the title or
    the sector too (so the changed columns vary from row to row, as in a real edit)."""
    edited = []
    for i, person in enumerate(people):
        new = dict(person)
        line = FOLLOW_UP[person["language"]].format(year=2022, n=10 + i % 90)
        new["pledge_text"] = f"{person['pledge_text']}\n{line}"
        if i % 3 == 0:
            new["email"] = f"info{i}@org{i}.example.org"
        if i % 5 == 0:
            new["pledge_title"] = person["pledge_title"] + " (extended)"
        if i % 7 == 0:
            new["sector"] = SECTORS[(SECTORS.index(person["sector"]) + 1) % len(SECTORS)]
        edited.append(new)
    return edited


def write_csv(path: Path, people: list[dict[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, HEADER)  # a spreadsheet's CRLF line ends
        writer.writeheader()
        writer.writerows(people)


# -- the two importers ---------------------------------------------------------------------------
def baseline_import(session: Session, path: Path) -> ImportResult:
    """``import_pledgemakers`` as it was at fc432df, on today's reader and row model: the first
    statement (the lock) comes before the file is read and validated; ORM objects per row."""
    erased = {
        ref: when
        for ref, when in session.execute(
            select(Pledgemaker.erased_ref, Pledgemaker.erased_at).where(
                Pledgemaker.erased_ref.is_not(None)
            )
        )
    }
    parsed = read(path, PledgemakerRow)
    for line, row in parsed.rows:
        when = erased.get(hashlib.sha256(row.id.encode()).hexdigest()) if erased else None
        if when is not None:
            parsed.problem(line, f"id {row.id!r}: erased on request on {when:%Y-%m-%d}")
    parsed.raise_problems()
    loaded = select(Pledgemaker).options(selectinload(Pledgemaker.handle_rows))
    existing = {p.id: p for p in session.scalars(loaded)}
    created = updated = 0
    for _, row in parsed.rows:
        values = row.model_dump()
        handles = {network: values.pop(column) for column, network in HANDLE_COLUMNS.items()}
        current = existing.get(values["id"])
        if current is None:
            given = {network: value for network, value in handles.items() if value is not None}
            session.add(Pledgemaker(**values, handles=given))
            created += 1
        else:
            change = False
            for key, value in values.items():
                if getattr(current, key) != value:
                    setattr(current, key, value)
                    change = True
            for network, value in handles.items():
                if current.handles.get(network) != value:
                    if value is None:
                        del current.handles[network]
                    else:
                        current.handles[network] = value
                    change = True
            updated += change
    return ImportResult(created, updated)


IMPORTERS: dict[str, Callable[[Session, Path], ImportResult]] = {
    "pledgebot": import_pledgemakers,
    "baseline": baseline_import,
}


# -- timing the lock -----------------------------------------------------------------------------
class LockClock:
    """Write transactions on one engine: BEGIN (IMMEDIATE) to the end of COMMIT."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.holds: list[float] = []
        self.cpu: list[float] = []  # this thread's CPU time meanwhile (Python and SQLite's C)
        self.commits: list[float] = []  # the COMMIT statement alone (WAL pages written)
        self.rollbacks = 0
        self._began = self._committing = self._cpu = 0.0
        # insert=True: before bot/core/db.py's listener, which runs the BEGIN IMMEDIATE
        event.listen(engine, "begin", self._begin, insert=True)
        event.listen(engine, "commit", self._commit)
        event.listen(engine, "rollback", self._rollback)
        event.listen(Session, "after_commit", self._after_commit)

    def _begin(self, _connection: Any) -> None:
        self._began, self._cpu = time.perf_counter(), time.thread_time()

    def _commit(self, _connection: Any) -> None:
        self._committing = time.perf_counter()

    def _rollback(self, _connection: Any) -> None:
        self.rollbacks += 1

    def _after_commit(self, session: Session) -> None:
        if session.bind is self.engine:
            now = time.perf_counter()
            self.holds.append(now - self._began)
            self.cpu.append(time.thread_time() - self._cpu)
            self.commits.append(now - self._committing)

    def close(self) -> None:
        event.remove(Session, "after_commit", self._after_commit)


@dataclass
class Sample:
    lock_s: float
    lock_cpu_s: float
    commit_s: float
    wall_s: float
    created: int
    updated: int


@dataclass
class Figures:
    samples: dict[tuple[str, str], list[Sample]] = field(default_factory=dict)

    def add(self, side: str, case: str, sample: Sample) -> None:
        self.samples.setdefault((side, case), []).append(sample)

    def values(self, side: str, case: str, what: str) -> list[float]:
        return [getattr(s, what) for s in self.samples[(side, case)]]

    def median(self, side: str, case: str, what: str = "lock_s") -> float:
        return statistics.median(self.values(side, case, what))

    def spread(self, what: str) -> dict[str, dict[str, dict[str, float]]]:
        return {
            side: {
                case: {
                    "min": round(min(self.values(side, case, what)), 3),
                    "median": round(self.median(side, case, what), 3),
                    "max": round(max(self.values(side, case, what)), 3),
                }
                for case in CASES
            }
            for side in SIDES
        }


def sqlite_files(path: Path) -> list[Path]:
    return [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]


def import_once(side: str, state: Path, csv_path: Path, work: Path) -> Sample:
    """One import on a fresh copy of ``state`` (left at ``work``, closed)."""
    for path in sqlite_files(work):
        path.unlink(missing_ok=True)
    shutil.copyfile(state, work)
    db = Database(f"sqlite:///{work}")
    clock = LockClock(db.engine)
    gc.collect()
    started = time.perf_counter()
    try:
        with db.session() as session:
            result = IMPORTERS[side](session, csv_path)
        wall = time.perf_counter() - started
    finally:
        clock.close()
        db.dispose()
    if len(clock.holds) != 1 or clock.rollbacks:
        raise RuntimeError(f"{side}: {len(clock.holds)} commits, {clock.rollbacks} rollbacks")
    return Sample(
        clock.holds[0], clock.cpu[0], clock.commits[0], wall, result.created, result.updated
    )


def fingerprint(path: Path) -> str:
    """The stored pledgemakers' CSV columns, hashed: both sides must leave the same data."""
    connection = sqlite3.connect(path)
    digest = hashlib.sha256()
    columns = ", ".join(
        f"(SELECT value FROM handles WHERE pledgemaker_id = p.id AND network = "
        f"'{HANDLE_COLUMNS[c]}')"
        if c in HANDLE_COLUMNS
        else c
        for c in HEADER
    )
    for row in connection.execute(f"SELECT {columns} FROM pledgemakers p ORDER BY id"):
        digest.update(repr(row).encode())
    connection.close()
    return digest.hexdigest()


def prepare(folder: Path, rows: int) -> dict[str, tuple[Path, Path]]:
    """The CSV files and database states; each case: (database, CSV file). The state of
    "changed" and "unchanged", full.db, is made by the first "new" import of pledgebot."""
    people = pledgemakers(rows)
    first, edited = folder / "pledgemakers.csv", folder / "edited.csv"
    write_csv(first, people)
    write_csv(edited, changed(people))
    write_csv(folder / "warm.csv", pledgemakers(200, seed=1))
    empty = folder / "empty.db"
    db = Database(f"sqlite:///{empty}")
    db.upgrade()
    db.dispose()
    for side in SIDES:  # vocabularies, mappers, statement caches: for both, untimed
        import_once(side, empty, folder / "warm.csv", folder / "work.db")
    full = folder / "full.db"
    return {"new": (empty, first), "changed": (full, edited), "unchanged": (full, first)}


def measure(folder: Path, rows: int, runs: int, loads: list[float]) -> Figures:
    """``runs`` rounds of every case on both sides, taking turns; the load after each import
    is appended to ``loads``."""
    cases = prepare(folder, rows)
    log(f"CSV: {cases['new'][1].stat().st_size / 1e6:.1f} MB; load {os.getloadavg()[0]:.2f}")
    expected = {"new": (rows, 0), "changed": (0, rows), "unchanged": (0, 0)}
    figures = Figures()
    for run in range(runs):
        for case, (state, csv_path) in cases.items():
            prints = set()
            for side in SIDES if run % 2 == 0 else SIDES[::-1]:  # load changes hit both sides
                work = folder / f"{side}.db"
                sample = import_once(side, state, csv_path, work)
                loads.append(os.getloadavg()[0])
                if (sample.created, sample.updated) != expected[case]:
                    raise RuntimeError(
                        f"{side}, {case}: created {sample.created}, updated {sample.updated}; "
                        f"expected {expected[case]}"
                    )
                figures.add(side, case, sample)
                log(
                    f"run {run + 1} {case:9} {side:9}: lock {sample.lock_s:6.2f} s "
                    f"(CPU {sample.lock_cpu_s:5.2f}, COMMIT {sample.commit_s:.2f}), "
                    f"wall {sample.wall_s:6.2f} s; load {loads[-1]:.1f}"
                )
                if run == 0:  # both sides must leave the same pledgemakers
                    prints.add(fingerprint(work))
                if run == 0 and case == "new" and side == "pledgebot":
                    if any(path.exists() for path in sqlite_files(work)[1:]):
                        raise RuntimeError(f"{work} was not checkpointed when closed")
                    shutil.copyfile(work, folder / "full.db")
            if len(prints) > 1:
                raise RuntimeError(f"{case}: the two importers stored different data")
    return figures


def main(rows: int, runs: int) -> bool:
    log(f"import_lock: {rows:,} pledgemakers, {runs} run(s) per case and side")
    loads = [os.getloadavg()[0]]
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        figures = measure(Path(tmp), rows, runs, loads)
    elapsed = time.perf_counter() - began
    ours = figures.median("pledgebot", "new") + figures.median("pledgebot", "changed")
    base = figures.median("baseline", "new") + figures.median("baseline", "changed")
    limit = LOCK_LIMIT_S * rows / LIMIT_ROWS
    longest = max(CASES, key=lambda case: figures.median("pledgebot", case))
    held_ok = figures.median("pledgebot", longest) <= limit

    def pair(case: str) -> str:
        return (
            f"{case} {figures.median('pledgebot', case):.2f} vs "
            f"{figures.median('baseline', case):.2f}"
        )

    return report(
        "import_lock",
        ratio=ours / base,
        target=TARGET,
        higher_is_better=False,
        summary=(
            f"{rows:,}-row CSV, median of {runs}: write lock held (s, pledgebot vs old ORM "
            f"import) {', '.join(pair(case) for case in CASES)}; wall (new) "
            f"{figures.median('pledgebot', 'new', 'wall_s'):.1f} vs "
            f"{figures.median('baseline', 'new', 'wall_s'):.1f} s; pledgebot's longest "
            f"median lock {figures.median('pledgebot', longest):.2f} s ({longest}; CPU "
            f"{figures.median('pledgebot', longest, 'lock_cpu_s'):.2f} s; limit ≤ {limit:.2f} s, "
            f"{'ok' if held_ok else 'MISSED'}); load {loads[0]:.1f} at the start, "
            f"{max(loads):.1f} at most, on {os.cpu_count()} cores; {elapsed:.0f} s"
        ),
        also_required=held_ok,
        rows=rows,
        runs=runs,
        pledgebot_lock_s=ours,
        baseline_lock_s=base,
        pledgebot_longest_median_lock_s=figures.median("pledgebot", longest),
        lock_limit_s=limit,
        lock_s=figures.spread("lock_s"),
        lock_cpu_s=figures.spread("lock_cpu_s"),
        commit_s=figures.spread("commit_s"),
        wall_s=figures.spread("wall_s"),
        load_avg_start=loads[0],
        load_avg_max=max(loads),
        load_avg_end=loads[-1],
        cores=os.cpu_count(),
        bench_s=elapsed,
    )


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=60_000, help="pledgemakers in the CSV")
    parser.add_argument("--runs", type=int, default=3, help="imports per case and side")
    parser.add_argument("--quick", action="store_true", help="10,000 rows, 1 run")
    parser.add_argument("--strict", action="store_true", help="exit 1 if the target is missed")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.runs = 10_000, 1
    return args


if __name__ == "__main__":
    arguments = parse()
    met = main(arguments.rows, arguments.runs)
    raise SystemExit(1 if arguments.strict and not met else 0)
