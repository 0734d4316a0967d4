"""Message text as the Telegram sandbox reads it: lengths in UTF-16 code units, the
``bot_command`` entity, and ``parse_mode`` (the HTML parser is a port of tdlib's
``parse_html``, with the same error texts; Markdown passes through). Nothing here knows about
HTTP or the sandbox state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NoReturn

from pledgebot_sandbox._telegram_rules import bad_request


def utf16_len(text: str) -> int:
    """Entity offsets and lengths are counted in UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def command_entities(text: str | None) -> list[dict[str, Any]]:
    """The ``bot_command`` entity Telegram attaches to a text that starts with ``/command``."""
    if not text or not text.startswith("/") or len(text) < 2 or text[1].isspace():
        return []
    command = text.split(maxsplit=1)[0]
    return [{"type": "bot_command", "offset": 0, "length": utf16_len(command)}]


@dataclass
class ParsedText:
    text: str
    entities: list[dict[str, Any]] = field(default_factory=list)


def parse_text(text: str, parse_mode: str | None) -> ParsedText:
    """Apply ``parse_mode`` the way sendMessage does; MarkdownV2 and Markdown pass through."""
    mode = (parse_mode or "").strip().lower()
    if mode == "html":
        return parse_html(text)
    if mode in ("", "markdown", "markdownv2"):
        return ParsedText(text)
    raise bad_request(f"unsupported parse_mode {parse_mode!r}")


_HTML_TAGS = {
    "a": "text_link",
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "code": "code",
    "pre": "pre",
    "span": "spoiler",
    "tg-spoiler": "spoiler",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_SPACES = " \t\r\n\v\0"  # tdlib's is_space(), which also stops at the end of the text
_NAME_TOKEN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-")


@dataclass
class _OpenTag:
    name: str
    attrs: dict[str, str]
    utf16_start: int


class _HtmlParser:
    """tdlib's ``parse_html`` state machine; error texts match Telegram's, byte offsets too."""

    def __init__(self, source: str) -> None:
        self.src = source
        self.pos = 0
        self.out: list[str] = []
        self.utf16 = 0
        self.stack: list[_OpenTag] = []
        self.entities: list[dict[str, Any]] = []

    def char(self, pos: int | None = None) -> str:
        pos = self.pos if pos is None else pos
        return self.src[pos] if pos < len(self.src) else ""

    def fail(self, detail: str) -> NoReturn:
        raise bad_request(f"can't parse entities: {detail}")

    def byte_offset(self, pos: int) -> int:
        return len(self.src[:pos].encode("utf-8", "surrogatepass"))

    def emit(self, text: str) -> None:
        self.out.append(text)
        self.utf16 += utf16_len(text)

    def skip_spaces(self) -> None:
        while self.pos < len(self.src) and self.src[self.pos] in _SPACES:
            self.pos += 1

    def run(self) -> ParsedText:
        while self.pos < len(self.src):
            ch = self.src[self.pos]
            if ch == "&":
                self.emit(self.entity())
            elif ch == "<":
                self.tag()
            else:
                self.emit(ch)
                self.pos += 1
        if self.stack:
            self.fail(f'Can\'t find end tag corresponding to start tag "{self.stack[-1].name}"')
        self.entities.sort(key=lambda e: (e["offset"], -e["length"]))
        return ParsedText("".join(self.out), self.entities)

    def entity(self) -> str:
        """Decode ``&name;``/``&#N;``/``&#xH;`` (the ``;`` is optional, as in tdlib)."""
        start = self.pos
        decoded = decode_html_entity(self.src, start)
        if decoded is None:
            # Stricter than tdlib, which keeps a bare "&" literally: the docs require &amp;.
            self.fail(f'Unescaped "&" at byte offset {self.byte_offset(start)}; use &amp;')
        value, self.pos = decoded
        if 0xD800 <= ord(value) <= 0xDFFF:
            self.fail(
                "Text contains invalid Unicode characters after decoding HTML entities, "
                "check for unmatched surrogate code units"
            )
        return value

    def tag(self) -> None:
        begin = self.pos
        self.pos += 1
        if self.char() == "/":
            self.end_tag(begin)
            return
        while self.char() not in _SPACES and self.char() != ">":
            self.pos += 1
        if self.char() == "":
            self.fail(f"Unclosed start tag at byte offset {self.byte_offset(begin)}")
        name = self.src[begin + 1 : self.pos].lower()
        if name not in _HTML_TAGS:
            self.fail(f'Unsupported start tag "{name}" at byte offset {self.byte_offset(begin)}')
        attrs = self.attributes(name, begin)
        self.pos += 1  # the ">"
        if name == "span" and attrs.get("class") != "tg-spoiler":
            self.fail(
                f'Tag "span" must have class "tg-spoiler" at byte offset {self.byte_offset(begin)}'
            )
        if name == "tg-emoji" and not attrs.get("emoji-id", "").isdigit():
            self.fail("Invalid custom emoji identifier specified")
        self.stack.append(_OpenTag(name, attrs, self.utf16))

    def attributes(self, tag: str, begin: int) -> dict[str, str]:
        attrs: dict[str, str] = {}
        unclosed = f'Unclosed start tag "{tag}" at byte offset {self.byte_offset(begin)}'
        while self.char() != ">":
            self.skip_spaces()
            if self.char() == ">":
                break
            if self.char() == "":
                self.fail(unclosed)
            attr_begin = self.pos
            while self.char() not in _SPACES and self.char() not in ("=", ">"):
                self.pos += 1
            attr = self.src[attr_begin : self.pos].lower()
            if not attr:
                self.fail(
                    f'Empty attribute name in the tag "{tag}" at byte offset '
                    f"{self.byte_offset(begin)}"
                )
            self.skip_spaces()
            if self.char() != "=":
                if tag == "blockquote" and attr == "expandable":
                    attrs[attr] = ""
                    continue
                if self.char() == "":
                    self.fail(unclosed)
                self.fail(
                    f'Expected equal sign in declaration of an attribute of the tag "{tag}" '
                    f"at byte offset {self.byte_offset(begin)}"
                )
            self.pos += 1
            self.skip_spaces()
            if self.char() == "":
                self.fail(unclosed)
            attrs[attr] = self.attribute_value(begin)
        return attrs

    def attribute_value(self, begin: int) -> str:
        quote = self.char()
        if quote in ("'", '"'):
            self.pos += 1
            value_begin = self.pos
            while self.char() not in (quote, ""):
                self.pos += 1
            if self.char() == "":
                self.fail(f"Unclosed start tag at byte offset {self.byte_offset(begin)}")
            raw = self.src[value_begin : self.pos]
            self.pos += 1
            return decode_html_entities(raw)
        value_begin = self.pos
        while self.char() in _NAME_TOKEN and self.char() != "":
            self.pos += 1
        if self.char() not in _SPACES and self.char() != ">":
            self.fail(
                f"Unexpected end of name token at byte offset {self.byte_offset(value_begin)}"
            )
        return self.src[value_begin : self.pos]

    def end_tag(self, begin: int) -> None:
        if not self.stack:
            self.fail(f"Unexpected end tag at byte offset {self.byte_offset(begin)}")
        self.pos += 1  # the "/"
        name_begin = self.pos
        while self.char() not in _SPACES and self.char() != ">":
            self.pos += 1
        name = self.src[name_begin : self.pos].lower()
        self.skip_spaces()
        if self.char() != ">":
            self.fail(f"Unclosed end tag at byte offset {self.byte_offset(begin)}")
        self.pos += 1
        open_tag = self.stack.pop()
        if name and name != open_tag.name:
            self.fail(
                f"Unmatched end tag at byte offset {self.byte_offset(begin)}, "
                f'expected "</{open_tag.name}>", found "</{name}>"'
            )
        self.add_entity(open_tag)

    def add_entity(self, tag: _OpenTag) -> None:
        length = self.utf16 - tag.utf16_start
        kind = _HTML_TAGS[tag.name]
        if kind == "blockquote" and "expandable" in tag.attrs:
            kind = "expandable_blockquote"
        if length <= 0 or (kind == "text_link" and not tag.attrs.get("href")):
            return  # tdlib drops empty entities and links without a target
        entity: dict[str, Any] = {"type": kind, "offset": tag.utf16_start, "length": length}
        if kind == "text_link":
            entity["url"] = tag.attrs["href"]
        elif kind == "custom_emoji":
            entity["custom_emoji_id"] = tag.attrs["emoji-id"]
        self.entities.append(entity)


def decode_html_entity(text: str, pos: int) -> tuple[str, int] | None:
    """The character an entity at ``text[pos] == "&"`` stands for, and where it ends."""
    end = pos + 1
    if end < len(text) and text[end] == "#":
        end += 1
        base, digits = 10, "0123456789"
        if end < len(text) and text[end] in "xX":
            end += 1
            base, digits = 16, "0123456789abcdefABCDEF"
        start = end
        while end < len(text) and text[end] in digits and end - start < 8:
            end += 1
        if end == start:
            return None
        code = int(text[start:end], base)
        if code == 0 or code > 0x10FFFF:
            return None
        value = chr(code)
    else:
        start = end
        while end < len(text) and text[end].isascii() and text[end].isalnum():
            end += 1
        if text[start:end] not in _NAMED_ENTITIES:
            return None
        value = _NAMED_ENTITIES[text[start:end]]
    if end < len(text) and text[end] == ";":
        end += 1
    return value, end


def decode_html_entities(text: str) -> str:
    out: list[str] = []
    pos = 0
    while pos < len(text):
        decoded = decode_html_entity(text, pos) if text[pos] == "&" else None
        if decoded is None:
            out.append(text[pos])
            pos += 1
        else:
            out.append(decoded[0])
            pos = decoded[1]
    return "".join(out)


def parse_html(text: str) -> ParsedText:
    return _HtmlParser(text).run()
