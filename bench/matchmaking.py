"""Matchmaking's precision@3 on the labelled set in tests/data/matchmaking/ (written before
the scorer; see its README): the share of challenges whose top three suggestions contain a
match a coordinator marked as good. Also the time to rank the whole set, against the time to
only stem its texts (the same process, so the ratio of the two is what to watch)."""

from __future__ import annotations

import argparse
import time

from _common import ROOT, report

from bot.community import matchmaking
from bot.community.matchmaking_eval import evaluate, load

TARGET = 0.8
FOLDER = ROOT / "tests" / "data" / "matchmaking"


def main() -> bool:
    docs, _ = load(FOLDER)
    evaluate(FOLDER)  # once first: scikit-learn's import is not the ranking's cost
    started = time.perf_counter()
    for doc in docs:
        matchmaking.stems(doc.text, doc.language)
    stemming = time.perf_counter() - started
    started = time.perf_counter()
    result = evaluate(FOLDER)
    ranking = time.perf_counter() - started
    languages = ", ".join(f"{lang} {p:.2f}" for lang, p in result.per_language.items())
    return report(
        "matchmaking",
        ratio=result.precision,
        target=TARGET,
        higher_is_better=True,
        summary=(
            f"{result.challenges} challenges, precision@3 {result.precision:.3f} ({languages}); "
            f"{len(result.missed)} missed: {', '.join(m[0] for m in result.missed) or 'none'}"
        ),
        challenges=result.challenges,
        per_language={lang: round(p, 3) for lang, p in result.per_language.items()},
        rank_seconds=ranking,
        rank_vs_stemming=ranking / max(stemming, 1e-9),
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="accepted for `make bench`; no effect")
    parser.add_argument("--strict", action="store_true", help="exit 1 if the target is missed")
    arguments = parser.parse_args()
    met = main()
    raise SystemExit(1 if arguments.strict and not met else 0)
