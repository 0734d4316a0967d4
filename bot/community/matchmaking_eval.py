"""How good matchmaking's suggestions are, on a labelled set (``tests/data/matchmaking/``):
precision@k, the share of challenges whose top k suggestions contain a match a coordinator
marked as good. Used by the evaluation test and ``bench/matchmaking.py``."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from bot.community.matchmaking import Doc, Weights, rank


@dataclass
class Evaluation:
    precision: float
    challenges: int
    per_language: dict[str, float]
    missed: list[tuple[str, list[str], set[str]]]  # (challenge, suggested, expected)


def load(folder: Path) -> tuple[list[Doc], dict[str, set[str]]]:
    with open(folder / "updates.csv", encoding="utf-8", newline="") as handle:
        docs = [
            Doc(
                id=row["id"],
                pledgemaker_id=row["organisation"],
                organisation=row["organisation"],
                country=row["country"],
                region=row["region"],
                sector=row["sector"],
                language=row["language"],
                pillar=row["pillar"],
                kind=row["kind"],
                text=row["text"],
            )
            for row in csv.DictReader(handle)
        ]
    with open(folder / "expected.csv", encoding="utf-8", newline="") as handle:
        expected = {
            row["challenge_id"]: set(filter(None, row["good_matches"].split(";")))
            for row in csv.DictReader(handle)
        }
    return docs, expected


def evaluate(folder: Path, *, k: int = 3, weights: Weights = Weights()) -> Evaluation:
    docs, expected = load(folder)
    challenges = [d for d in docs if d.kind == "challenge"]
    offers = [d for d in docs if d.kind != "challenge"]
    ranked = rank(challenges, offers, top=k, weights=weights)
    hits: dict[str, list[bool]] = {}
    missed = []
    for challenge in challenges:
        suggested = [s.offer.id for s in ranked[challenge.id]]
        hit = bool(expected[challenge.id] & set(suggested))
        hits.setdefault(challenge.language, []).append(hit)
        if not hit:
            missed.append((challenge.id, suggested, expected[challenge.id]))
    every = [h for found in hits.values() for h in found]
    return Evaluation(
        precision=sum(every) / len(every),
        challenges=len(every),
        per_language={lang: sum(h) / len(h) for lang, h in sorted(hits.items())},
        missed=missed,
    )
