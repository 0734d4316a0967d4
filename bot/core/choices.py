"""Buttons on channels that have none (email, Matrix): the options are written under the
message, numbered, and a short answer picks one.

``as_text`` renders them (each adapter without buttons appends it); ``match`` reads an answer:
the option's number ("2", "[2]"), its words ("keep it private"), or — for a button marked with
an ``answer`` of "yes" or "no", such as the consent question's — yes or no in any of the
campaign's languages. Anything longer than a few words is an answer in its own right, never a
choice.
"""

from __future__ import annotations

import re
import unicodedata

Buttons = list[list[dict[str, str]]]

MAX_CHOICE_CHARS = 40
YES = frozenset(
    {"yes", "y", "yes please", "ok", "okay", "sure", "agreed", "oui", "d'accord", "daccord"}
    | {"bien sûr", "si", "sí", "claro", "vale", "de acuerdo", "por supuesto"}
)
NO = frozenset({"no", "n", "no thanks", "non", "non merci", "no gracias", "nope"})


def options(buttons: Buttons | None) -> list[dict[str, str]]:
    return [button for row in buttons or [] for button in row]


def as_text(buttons: Buttons | None) -> str:
    """ "[1] Yes, share it" lines, one per option (plain text: the caller escapes for HTML)."""
    return "\n".join(f"[{n}] {b['text']}" for n, b in enumerate(options(buttons), start=1))


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFC", text).casefold().replace("’", "'")
    text = re.sub(r"\s+", " ", text).strip()
    return text.strip(" .!?,;:()[]\"'«»“”")


def match(text: str, buttons: Buttons | None) -> str | None:
    """The ``data`` of the option ``text`` picks, or None."""
    if len(text) > MAX_CHOICE_CHARS:
        return None
    found = options(buttons)
    said = normalise(text)
    if not found or not said:
        return None
    if said.isdigit():
        number = int(said)
        return found[number - 1]["data"] if 1 <= number <= len(found) else None
    for button in found:
        if normalise(button["text"]) == said:
            return button["data"]
    polar = "yes" if said in YES else "no" if said in NO else None
    if polar is None:
        return None
    marked = [b for b in found if b.get("answer") == polar]
    return marked[0]["data"] if len(marked) == 1 else None


def worth_looking(text: str) -> bool:
    """Cheap test before a database look-up: could this text be a choice at all?"""
    return 0 < len(text.strip()) <= MAX_CHOICE_CHARS
