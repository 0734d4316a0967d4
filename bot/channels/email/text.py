"""The markup of the email channel: our templates render Telegram-style HTML (``<b>``, ``<i>``,
``<a href>``, newlines); ``html_to_text`` turns it (or any reply's HTML) into plain text with
links as "text (url)", ``html_document`` into the HTML part of a prompt, ``subject_of`` into its
subject. Signed tokens are ``bot.channels.email.tokens``; reading replies,
``bot.channels.email.replies``.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

_BLOCKS = {
    "p", "div", "li", "ul", "ol", "tr", "table", "h1", "h2", "h3", "h4", "h5", "h6",
    "pre", "hr", "section", "article", "header", "footer", "dl", "dt", "dd",
}  # fmt: skip
_SKIPPED = {"style", "script", "head", "title", "template"}


class _TextWriter(HTMLParser):
    """HTML → plain text: blocks on their own lines, ``<br>`` a newline, a link "text (url)",
    a ``<blockquote>`` quoted with "> " (so ``strip_reply`` sees an HTML reply's quote)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = [""]
        self.quote = 0
        self.skip = 0
        self.links: list[tuple[str, int]] = []  # (href, where its text starts)
        self.pre = 0

    def _newline(self) -> None:
        self.lines.append("")

    def _block(self) -> None:
        if self.lines[-1].strip():
            self._newline()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED:
            self.skip += 1
        elif tag == "br":
            self._newline()
        elif tag == "blockquote":
            self._block()
            self.quote += 1
        elif tag == "a":
            self.links.append((dict(attrs).get("href") or "", len(self.lines[-1])))
        elif tag == "pre":
            self._block()
            self.pre += 1
        elif tag in _BLOCKS:
            self._block()

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self._newline()
        elif tag == "hr":
            self._block()
            self.handle_data("________________________________")
            self._newline()

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED:
            self.skip = max(0, self.skip - 1)
        elif tag == "blockquote":
            self._block()
            self.quote = max(0, self.quote - 1)
        elif tag == "a" and self.links:
            href, start = self.links.pop()
            label = self.lines[-1][start:].strip()
            shown = href.removeprefix("mailto:")
            if href and not href.startswith("#") and shown not in label:
                self.lines[-1] += f" ({shown})" if label else shown
        elif tag == "pre":
            self.pre = max(0, self.pre - 1)
            self._block()
        elif tag in _BLOCKS:
            self._block()

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        parts = data.split("\n")
        for i, part in enumerate(parts):
            if i:
                self._newline()
            if not self.lines[-1] and self.quote:
                self.lines[-1] = "> " * self.quote
            self.lines[-1] += part


def html_to_text(html: str, *, keep_newlines: bool = True) -> str:
    """Plain text of an HTML fragment. ``keep_newlines``: newlines in the markup are line breaks
    (Telegram-style HTML, as our templates render it); False for an email's HTML, where only
    tags break lines."""
    if not keep_newlines:
        html = re.sub(r"\s*\n\s*", " ", html)
    writer = _TextWriter()
    writer.feed(html)
    writer.close()
    lines = [re.sub(r"[ \t\u00a0]+", " ", line).rstrip() for line in writer.lines]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def html_document(html: str, *, footer: str = "") -> str:
    """The HTML part of a prompt: Telegram-style HTML (tags kept, newlines meaningful) as a
    small, inline-styled document; blank lines start paragraphs."""
    paragraphs = [p for p in re.split(r"\n\s*\n", html.strip()) if p.strip()]
    body = "\n".join(f"<p>{p.strip().replace(chr(10), '<br>' + chr(10))}</p>" for p in paragraphs)
    if footer:
        body += f'\n<p style="color:#666;font-size:12px">{footer}</p>'
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"></head>\n'
        '<body style="font-family:Arial,Helvetica,sans-serif;font-size:15px;line-height:1.5">\n'
        f"{body}\n</body></html>\n"
    )


def subject_of(html: str, *, limit: int = 120) -> str:
    """A prompt's subject: the first line of its text, shortened at a word if long."""
    text = html_to_text(html)
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if len(first) <= limit:
        return first
    return first[: limit - 1].rsplit(" ", 1)[0].rstrip(" ,;:·-") + "…"
