"""How Bluesky counts a post's length: 300 graphemes (Unicode extended grapheme clusters,
UAX #29, counted with the ``regex`` package as Bluesky's own code counts them) and 3,000 UTF-8
bytes; ``bluesky_length`` folds both into one number for the thread splitter. URLs count in
full. Light: the ``atproto`` SDK (seconds to import) is not imported here."""

from __future__ import annotations

import regex

MAX_GRAPHEMES = 300
MAX_TEXT_BYTES = 3000


def graphemes(text: str) -> int:
    return len(regex.findall(r"\X", text))


def bluesky_length(text: str) -> int:
    """A post's length against Bluesky's limit of 300: its graphemes, or a tenth of its UTF-8
    bytes when that is more (so ≤ 300 means both 300 graphemes and 3,000 bytes hold)."""
    return max(graphemes(text), -(-len(text.encode()) // 10))
