"""Cadence sweeps: does the cost follow the number due, not the audience size? And the memory?

One SQLite database with 100,000 pledgemakers (bound Telegram contacts, a 30-day cadence each)
is copied twice: in one 1 % of the cadences are due, in the other 100 %. Each copy is swept
(``bot.scheduling.sweeper.sweep``: read due slots, render each prompt, enqueue it, move the slot
on) in a
fresh child process that reports the sweep's wall time and its own peak RSS (``VmHWM``).

Ratio: time(1 % due) ÷ time(100 % due), target ≤ 0.1 (lower is better; ideal 0.01 — the
audience size should not matter). The 1 % sweep is the median of four copies, two swept
before the full sweep and two after. The full sweep's peak RSS must stay ≤ 250 MB
(``peak_rss_mb``; the child's RSS before sweeping is reported too).

    .venv/bin/python bench/sweep.py [--audience 100000] [--quick]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from _common import NOW, TEMPLATES, insert_audience, log, report

TARGET = 0.1
RSS_TARGET_MB = 250.0
SPEC: dict[str, Any] = {
    "id": "monthly",
    "kind": "followup",
    "pillar": "act",
    "relative_to": "pledge_date",
    "every": "30d",
    "grace": "1d",
    "channels": ["telegram"],
}


def populate(path: Path, audience: int) -> None:
    """The audience with a cadence each, none due yet (``--due`` copies make some due)."""
    from sqlalchemy import insert

    from bot.core.db import Database
    from bot.core.models import Cadence

    db = Database(f"sqlite:///{path}")
    db.upgrade()
    with db.session() as session:
        insert_audience(session, audience)
        rows = [
            {
                "campaign_id": SPEC["id"],
                "pledgemaker_id": f"p{i:06d}",
                "next_due_at": NOW + timedelta(days=9),
            }
            for i in range(audience)
        ]
        for start in range(0, audience, 5000):
            session.execute(insert(Cadence), rows[start : start + 5000])
    db.dispose()


def make_due(source: Path, target: Path, due: int) -> None:
    """A copy of the database in which the first ``due`` cadences are due an hour ago."""
    shutil.copyfile(source, target)
    connection = sqlite3.connect(target)
    with connection:
        connection.execute(
            "UPDATE cadences SET next_due_at = ? WHERE pledgemaker_id < ?",
            ((NOW - timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S.%f"), f"p{due:06d}"),
        )
    connection.close()


def sweep_in_child(path: Path, due: int) -> dict[str, float]:
    """Run the sweep in a fresh interpreter; returns its figures."""
    answer = subprocess.run(
        [sys.executable, __file__, "--child", str(path), "--expect", str(due)],
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(answer.stdout.strip().splitlines()[-1]))


def peak_rss_mb() -> float:
    """This process's peak RSS (``VmHWM``). Not ``ru_maxrss``: Linux carries that over from the
    parent across fork and exec, so a child would report the parent's high-water mark."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux: kB anyway


def child(path: Path, expect: int) -> None:
    """In the child: everything imported and built first, then only the sweep is timed."""
    from bot.campaigns.followup import FollowupCampaign
    from bot.channels.registry import plain_text_channels
    from bot.core.db import Database
    from bot.scheduling import sweeper
    from bot.text.templates import Templates

    spec = FollowupCampaign.model_validate(SPEC)
    db = Database(f"sqlite:///{path}")
    templates = Templates(TEMPLATES, plain_text=plain_text_channels())
    before = peak_rss_mb()
    started = time.perf_counter()
    result = sweeper.sweep(db, templates, spec, NOW)
    elapsed = time.perf_counter() - started
    peak = peak_rss_mb()
    if result.enqueued != expect:
        raise SystemExit(f"expected {expect} prompts, the sweep enqueued {result.enqueued}")
    db.dispose()
    print(json.dumps({"seconds": elapsed, "peak_rss_mb": peak, "rss_before_mb": before}))


def main(audience: int) -> bool:
    few = max(1, audience // 100)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        source = folder / "audience.db"
        log(f"sweep: {audience:,} pledgemakers with a cadence each")
        populate(source, audience)
        small_times: list[float] = []

        def small_sweeps(count: int) -> None:
            for _ in range(count):
                path = folder / f"few-{len(small_times)}.db"
                make_due(source, path, few)
                small_times.append(sweep_in_child(path, few)["seconds"])
                path.unlink()

        small_sweeps(2)  # two before the full sweep and two after: load changes hit both
        make_due(source, folder / "all.db", audience)
        full = sweep_in_child(folder / "all.db", audience)
        (folder / "all.db").unlink()
        small_sweeps(2)
        log(f"sweep of {few:,} due: {', '.join(f'{t:.2f}' for t in small_times)} s")
        log(f"sweep of {audience:,} due: {full['seconds']:.1f} s, {full['peak_rss_mb']:.0f} MB")
    small = statistics.median(small_times)
    ratio = small / full["seconds"]
    rss_ok = full["peak_rss_mb"] <= RSS_TARGET_MB
    return report(
        "sweep",
        ratio=ratio,
        target=TARGET,
        higher_is_better=False,
        summary=(
            f"{few:,} due of {audience:,}: {small:.2f} s; all {audience:,} due: "
            f"{full['seconds']:.1f} s ({audience / full['seconds']:.0f} prompts/s); peak RSS "
            f"{full['peak_rss_mb']:.0f} MB (target ≤ {RSS_TARGET_MB:.0f} MB, "
            f"{'ok' if rss_ok else 'MISSED'}; {full['rss_before_mb']:.0f} MB before sweeping)"
        ),
        small_due=few,
        small_s=small,
        full_due=audience,
        full_s=full["seconds"],
        peak_rss_mb=full["peak_rss_mb"],
        rss_target_mb=RSS_TARGET_MB,
        rss_before_sweep_mb=full["rss_before_mb"],
        also_required=rss_ok,
    )


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--audience", type=int, default=100_000, help="pledgemakers")
    parser.add_argument("--quick", action="store_true", help="20,000 pledgemakers")
    parser.add_argument("--strict", action="store_true", help="exit 1 if a target is missed")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--expect", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.audience = 20_000
    return args


if __name__ == "__main__":
    arguments = parse()
    if arguments.child is not None:
        child(arguments.child, arguments.expect)
    else:
        met = main(arguments.audience)
        raise SystemExit(1 if arguments.strict and not met else 0)
