"""Measuring and splitting post text: X's weighted length, and numbered threads.

X counts text by weight (twitter-text v3: URLs 23, most CJK and emoji 2, NFC) — we use the
``twitter-text-parser`` package, never a counter of our own. A text too long for one post becomes
a numbered thread, split between words (preferably after a sentence), so a URL, hashtag, mention
or emoji sequence — none of which contains a space — is never cut. A single word longer than a
whole post (rare) is cut between characters, outside any emoji sequence.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from twitter_text import parse_tweet
from twitter_text.extract_emojis import extract_emojis_with_indices

X_MAX_WEIGHT = 280
SENTENCE_END = re.compile(r"[.!?…。！？]['\"”’)\]]*$")

Measure = Callable[[str], int]


def weighted_length(text: str) -> int:
    """X's weighted length of ``text`` (twitter-text v3 config)."""
    return int(parse_tweet(text).weightedLength)


def split_thread(
    text: str,
    *,
    limit: int = X_MAX_WEIGHT,
    measure: Measure = weighted_length,
    numbered: bool = True,
) -> list[str]:
    """``text`` as one post if it fits, else parts that each fit, numbered " (i/n)"."""
    text = text.strip()
    if measure(text) <= limit:
        return [text]
    count = 2
    while True:  # the numbering's own width depends on how many parts there are
        suffix_room = measure(f" ({count}/{count})") if numbered else 0
        pieces = _pack(text, limit - suffix_room, measure)
        if len(pieces) <= count or not numbered:
            break
        count = len(pieces)
    if not numbered:
        return pieces
    return [f"{piece} ({i}/{len(pieces)})" for i, piece in enumerate(pieces, start=1)]


def _pack(text: str, budget: int, measure: Measure) -> list[str]:
    starts = [m.start() for m in re.finditer(r"\S+", text)]  # where words begin
    pieces: list[str] = []
    begin = 0
    while begin < len(text):
        rest = text[begin:].strip()
        if measure(rest) <= budget:
            pieces.append(rest)
            break
        fitting = [s for s in starts if s > begin and measure(text[begin:s].strip()) <= budget]
        if not fitting:  # one word longer than a whole post: cut it between characters
            cut = _hard_cut(text, begin, budget, measure)
            pieces.append(text[begin:cut].strip())
            begin = cut
            continue
        sentence_ends = [s for s in fitting if SENTENCE_END.search(text[begin:s].rstrip())]
        best = fitting[-1]
        # End on a sentence if that still fills at least half the post.
        if sentence_ends and measure(text[begin : sentence_ends[-1]]) * 2 >= budget:
            best = sentence_ends[-1]
        pieces.append(text[begin:best].strip())
        begin = best
    return [piece for piece in pieces if piece]


def _hard_cut(text: str, begin: int, budget: int, measure: Measure) -> int:
    emoji = [(e["indices"][0], e["indices"][1]) for e in extract_emojis_with_indices(text)]
    cut = begin + 1
    for end in range(begin + 1, len(text) + 1):
        if any(a < end < b for a, b in emoji):
            continue  # never inside an emoji sequence
        if measure(text[begin:end]) > budget:
            break
        cut = end
    return cut
