"""LinkedIn's "little" text format, and how long a post is in it.

- **Commentary** is LinkedIn's "little" text format: ``little_text`` escapes the reserved
  characters ``| { } @ [ ] ( ) < > # \\ * _ ~`` with a backslash (unescaped, LinkedIn cuts the
  post short there without a word). Two elements pass through: a hashtag (``#`` then letters and
  digits, at least one letter, not inside a word: ``#EndChildLabour2021`` stays a hashtag,
  ``#2`` is escaped) and a mention of an organisation page, ``@[Name](urn:li:organization:123)``,
  which a template writes when it knows the pledgemaker's page (its name escaped inside; one
  in a pledgemaker's own words passes too, and moderation sees it before anything is posted).
- **Length**: 3,000 characters of commentary. How LinkedIn counts is not published, so
  ``linkedin_length`` takes the strictest reading: UTF-16 code units of the escaped text.
"""

from __future__ import annotations

import re

MAX_COMMENTARY = 3000
RESERVED = re.compile(r"[|{}@\[\]()<>#\\*_~]")
MENTION = re.compile(r"@\[([^\]\n]{1,255})\]\((urn:li:organization:\d+)\)")
HASHTAG = re.compile(r"(?<![\w\\])#(?=[^\W_]*[^\W\d_])[^\W_]+")
ELEMENT = re.compile(f"{MENTION.pattern}|{HASHTAG.pattern}")


def _escape(text: str) -> str:
    return RESERVED.sub(lambda found: "\\" + found.group(0), text)


def little_text(text: str) -> str:
    """``text`` as LinkedIn's little text format: reserved characters escaped, hashtags and
    organisation mentions kept as the elements they are."""
    parts: list[str] = []
    end = 0
    for element in ELEMENT.finditer(text):
        parts.append(_escape(text[end : element.start()]))
        name, urn = element.group(1), element.group(2)
        parts.append(f"@[{_escape(name)}]({urn})" if urn else element.group(0))
        end = element.end()
    parts.append(_escape(text[end:]))
    return "".join(parts)


def linkedin_length(text: str) -> int:
    """A post's length against LinkedIn's 3,000: UTF-16 code units of its escaped commentary."""
    return len(little_text(text).encode("utf-16-le")) // 2
