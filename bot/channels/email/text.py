"""The pure parts of the email channel: no network, no clock unless given one.

- Markup: our templates render Telegram-style HTML (``<b>``, ``<i>``, ``<a href>``, newlines);
  ``html_to_text`` turns it (or any reply's HTML) into plain text with links as "text (url)",
  ``html_document`` into the HTML part of a prompt.
- Signed tokens (HMAC-SHA256 of the ``signing_key``, one purpose prefix each so a token made for
  one use never verifies for another; compared in constant time):
  ``reply_token`` (the plus-address and Message-ID of a prompt: links an answer to its outbox
  message), ``invite_code`` (an expiring email invitation), ``unsubscribe_token`` (a one-click URL).
- Reading replies: ``strip_reply`` (quoted history and signatures, Gmail / Outlook / Apple Mail,
  en/fr/es), ``is_opt_out`` (STOP, unsubscribe, désabonner, baja …), ``is_auto_reply``
  (out-of-office), ``bounced_recipients`` (delivery status notifications).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from email.message import Message
from email.utils import getaddresses, parseaddr
from html.parser import HTMLParser

# -- markup ----------------------------------------------------------------------------------

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


# -- signed tokens ---------------------------------------------------------------------------

REPLY_MAC_CHARS = 16  # 80 bits, lower-case base32: survives MTAs that lower-case local parts
INVITE_MAC_CHARS = 20


def _mac(key: bytes, purpose: str, payload: str, chars: int) -> str:
    digest = hmac.new(key, f"{purpose}\x00{payload}".encode(), hashlib.sha256).digest()
    return base64.b32encode(digest).decode().lower().rstrip("=")[:chars]


def reply_token(key: bytes, outbox_id: int) -> str:
    """``<outbox id>-<mac>``: the plus-address tag of a prompt (``pledge+42-k3…@example.org``)."""
    return f"{outbox_id}-{_mac(key, 'reply', str(outbox_id), REPLY_MAC_CHARS)}"


def read_reply_token(key: bytes, token: str) -> int | None:
    """The outbox id in a reply token, or None if it is not one we signed."""
    match = re.fullmatch(r"(\d{1,18})-([a-z2-7]+)", token.strip().lower())
    if match is None:
        return None
    expected = _mac(key, "reply", match[1], REPLY_MAC_CHARS)
    return int(match[1]) if hmac.compare_digest(expected, match[2]) else None


def message_id_for(key: bytes, outbox_id: int, idempotency_key: str, domain: str) -> str:
    """A prompt's Message-ID: the reply token (so an ``In-Reply-To`` links to it too) and a hash
    of the idempotency key. The same outbox message always gets the same Message-ID, so a resend
    after a crash is recognised as the same mail (Gmail and others keep one copy)."""
    stable = hashlib.sha256((idempotency_key or f"outbox:{outbox_id}").encode()).hexdigest()[:12]
    return f"<pledge.{reply_token(key, outbox_id)}.{stable}@{domain}>"


def outbox_id_in_message_ids(key: bytes, header: str, domain: str) -> int | None:
    """The outbox id of the first of our Message-IDs in an ``In-Reply-To``/``References``."""
    for found in re.findall(r"<([^<>@\s]+)@([^<>\s]+)>", header or ""):
        local, host = found
        if host.lower() != domain.lower():
            continue
        parts = local.split(".")
        if len(parts) == 3 and parts[0] == "pledge":
            outbox_id = read_reply_token(key, parts[1])
            if outbox_id is not None:
                return outbox_id
    return None


class InviteCodeError(ValueError):
    """An invitation code that is not ours (``reason="invalid"``) or too old (``"expired"``)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"invitation code {reason}")


# Not \b: a token may begin with "-", which \b would cut off (and the code would not verify).
INVITE_CODE = re.compile(
    r"(?<![A-Za-z0-9_-])([A-Za-z0-9_-]{8,64})\.([0-9a-z]{1,10})\.([a-z2-7]{20})(?![A-Za-z0-9])"
)


def invite_code(key: bytes, token: str, expires_at: datetime) -> str:
    """``<invitation token>.<expiry, base-36 Unix seconds>.<mac>``: signed and expiring, so a
    mistyped or forged code is refused without a database look-up (the token itself stays
    single use in ``bot.community.contacts``)."""
    if not re.fullmatch(r"[A-Za-z0-9_-]{8,64}", token):
        raise ValueError("an invitation token is 8-64 characters of A-Za-z0-9_-")
    expiry = _base36(int(expires_at.timestamp()))
    return f"{token}.{expiry}.{_mac(key, 'invite', f'{token}.{expiry}', INVITE_MAC_CHARS)}"


def read_invite_code(key: bytes, code: str, now: datetime) -> str:
    """The invitation token in a code; raises ``InviteCodeError`` if it is tampered or expired."""
    match = INVITE_CODE.fullmatch(code.strip())
    if match is None:
        raise InviteCodeError("invalid")
    token, expiry, mac = match.groups()
    if not hmac.compare_digest(_mac(key, "invite", f"{token}.{expiry}", INVITE_MAC_CHARS), mac):
        raise InviteCodeError("invalid")
    if int(expiry, 36) <= now.timestamp():
        raise InviteCodeError("expired")
    return token


def find_invite_code(text: str) -> str | None:
    """The first thing shaped like an invitation code in a subject or a body."""
    match = INVITE_CODE.search(text or "")
    return match[0] if match else None


def unsubscribe_token(key: bytes, address: str) -> str:
    """For a one-click unsubscribe URL: the address (base64url) and its mac."""
    address = address.strip().lower()
    encoded = base64.urlsafe_b64encode(address.encode()).decode().rstrip("=")
    return f"{encoded}.{_mac(key, 'unsubscribe', address, REPLY_MAC_CHARS)}"


def read_unsubscribe_token(key: bytes, token: str) -> str | None:
    encoded, _, mac = token.partition(".")
    try:
        address = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    expected = _mac(key, "unsubscribe", address, REPLY_MAC_CHARS)
    return address if hmac.compare_digest(expected, mac) else None


def _base36(value: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        value, rest = divmod(value, 36)
        out = digits[rest] + out
        if not value:
            return out


# -- reading replies -------------------------------------------------------------------------

# A line that starts the quoted original, in the clients and languages we see.
_ATTRIBUTION_START = re.compile(r"^\s*(On|Le|El|Am|Il|Em)\s.{4,}", re.IGNORECASE)
_ATTRIBUTION_END = re.compile(
    r"(wrote|a écrit|escribió|schrieb|ha scritto|escreveu)\s*:\s*$", re.IGNORECASE
)
_ATTRIBUTION_DETAIL = re.compile(r"@|\b\d{1,2}[:h]\d{2}\b")
_ORIGINAL_MESSAGE = re.compile(
    r"^\s*-{2,}\s*(Original Message|Message d'origine|Mensaje original|Ursprüngliche Nachricht"
    r"|Forwarded message|Message transféré|Mensaje reenviado)\s*-{2,}\s*$",
    re.IGNORECASE,
)
_FORWARD_HEADER = re.compile(
    r"^\s*(Begin forwarded message|Début du message réexpédié|Inicio del mensaje reenviado)\s*:",
    re.IGNORECASE,
)
_HEADER_FROM = re.compile(r"^\s*\*?(From|De|Von)\s*\*?\s*:\s*\S", re.IGNORECASE)
_HEADER_NEXT = re.compile(
    r"^\s*\*?(Sent|Date|Envoyé|Enviado(?: el)?|Fecha|Gesendet|To|À|Para|Subject|Objet|Asunto"
    r"|Cc)\s*\*?\s*:",
    re.IGNORECASE,
)
_RULE = re.compile(r"^\s*_{10,}\s*$")
_SIGNATURE = re.compile(r"^-- ?$")
_SENT_FROM = re.compile(
    r"^\s*(Sent from|Sent via|Get Outlook for|Envoyé de|Envoyé depuis|Envoyé à partir de"
    r"|Obtenir Outlook pour|Télécharger Outlook pour|Enviado desde|Enviado con"
    r"|Obtener Outlook para|Descargar Outlook para)\b.{0,80}$",
    re.IGNORECASE,
)


def strip_reply(text: str) -> str:
    """What the person wrote in a reply: the quoted history (``>`` lines, "On … wrote:",
    Outlook's "-----Original Message-----" or "From:/Sent:" block, a forwarded message) and the
    signature ("-- ", "Sent from my iPhone" …) cut off. Empty if they wrote nothing of their own
    (an image alone). The whole message is kept beside it (``raw``)."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    end = _quote_start(lines)
    kept = [line for line in lines[:end] if not line.lstrip().startswith(">")]
    for i, line in enumerate(kept):
        if _SIGNATURE.match(line):
            kept = kept[:i]
            break
    while kept and (not kept[-1].strip() or _SENT_FROM.match(kept[-1])):
        kept.pop()
    while kept and not kept[0].strip():
        kept.pop(0)
    return "\n".join(line.rstrip() for line in kept)


def _quote_start(lines: list[str]) -> int:
    for i, line in enumerate(lines):
        if _ORIGINAL_MESSAGE.match(line) or _FORWARD_HEADER.match(line):
            return i
        if _ATTRIBUTION_START.match(line):
            # Gmail wraps a long attribution: "On Tue, 3 Mar … Ana <\nana@…> wrote:". It names
            # an address or a time, which "On Monday we met them. They wrote:" does not.
            for j in range(i, min(i + 3, len(lines))):
                said = " ".join(lines[i : j + 1])
                if _ATTRIBUTION_END.search(said) and _ATTRIBUTION_DETAIL.search(said):
                    return i
        if _HEADER_FROM.match(line) and _headers_follow(lines, i):
            start = i
            if i and _RULE.match(lines[i - 1]):  # Outlook on the web's line above the headers
                start = i - 1
            return start
    return len(lines)


def _headers_follow(lines: list[str], i: int) -> bool:
    """A "From:" line starts a quoted header block when another header follows it."""
    following = [line for line in lines[i + 1 : i + 4] if line.strip()]
    return bool(following) and _HEADER_NEXT.match(following[0]) is not None


_POLITE = {
    "please", "pls", "plz", "thanks", "thank you", "svp", "s il vous plait", "s il vous plaît",
    "merci", "por favor", "gracias", "now", "me",
}  # fmt: skip
_OPT_OUT = {
    # en
    "stop", "stop all", "stopall", "unsubscribe", "unsub", "unsubscribe me", "opt out", "optout",
    "remove me", "remove", "stop emailing me", "stop sending", "no more emails", "end", "quit",
    # fr
    "arret", "arreter", "desabonner", "se desabonner", "me desabonner", "desabonnez moi",
    "desabonnement", "desinscrire", "me desinscrire", "desinscrivez moi", "desinscription",
    "ne plus recevoir", "retirez moi",
    # es
    "baja", "de baja", "dar de baja", "darme de baja", "denme de baja", "cancelar suscripcion",
    "anular suscripcion", "desuscribir", "desuscribirme", "no mas", "parar", "alto",
    "no quiero recibir mas", "eliminarme",
}  # fmt: skip


def _plain_words(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text.casefold())
    folded = "".join(c for c in folded if not unicodedata.combining(c))
    return " ".join(re.sub(r"[^\w]+", " ", folded).split())


def is_opt_out(text: str) -> bool:
    """True when the first line with words is an opt-out ("STOP", "Unsubscribe please",
    "désabonner", "Baja."), in English, French or Spanish; a sentence that merely contains
    "stop" ("Stop child labour in cocoa is our goal") is not."""
    for line in (text or "").splitlines():
        words = _plain_words(line)
        if not words:
            continue
        for polite in sorted(_POLITE, key=len, reverse=True):
            if words.startswith(polite + " "):
                words = words[len(polite) + 1 :]
            if words.endswith(" " + polite):
                words = words[: -len(polite) - 1]
        return words in _OPT_OUT
    return False


_AUTO_SUBJECT = re.compile(
    r"^\s*(auto(matic)?[ -]?(reply|response)|autoreply|out of (the )?office|ooo\b|away:"
    r"|r[ée]ponse automatique|absente? du bureau|respuesta autom[áa]tica|fuera de la oficina"
    r"|ausencia|auto:)",
    re.IGNORECASE,
)


def is_auto_reply(message: Message) -> bool:
    """An out-of-office or other automatic answer (RFC 3834 ``Auto-Submitted``, the headers
    Exchange and others set, or a tell-tale subject): not a pledgemaker's reply."""
    submitted = str(message.get("Auto-Submitted", "")).strip().lower()
    if submitted and submitted != "no":
        return True
    if message.get("X-Autoreply") or message.get("X-Autorespond"):
        return True
    if str(message.get("Precedence", "")).strip().lower() in {"auto_reply", "bulk", "junk"}:
        return True
    return bool(_AUTO_SUBJECT.match(str(message.get("Subject", ""))))


@dataclass(frozen=True)
class Bounce:
    """One recipient a delivery status notification says failed."""

    address: str
    status: str  # "5.1.1"
    diagnostic: str
    original_message_id: str  # the Message-ID of our mail that bounced, if the report has it

    @property
    def permanent(self) -> bool:
        return self.status.startswith("5")


_DAEMONS = ("mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon")


def bounced_recipients(message: Message) -> list[Bounce] | None:
    """The failed recipients of a bounce (a DSN, RFC 3464, or a plainer MAILER-DAEMON notice);
    None if the message is not a bounce, ``[]`` if it is one that reports no failure (a delay)."""
    is_report = (
        message.get_content_type() == "multipart/report"
        and str(message.get_param("report-type", "")).lower() == "delivery-status"
    )
    sender = parseaddr(str(message.get("From", "")))[1].lower()
    from_daemon = sender.split("@")[0] in _DAEMONS or not sender
    if not is_report and not from_daemon:
        return None
    original = _original_message_id(message)
    found: list[Bounce] = []
    for part in message.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        payload = part.get_payload()
        blocks = payload if isinstance(payload, list) else []
        for block in blocks[1:]:  # the first block is about the whole message
            action = str(block.get("Action", "")).strip().lower()
            status = str(block.get("Status", "")).strip()
            if action != "failed" and not status.startswith("5"):
                continue
            address = _dsn_address(block.get("Final-Recipient") or block.get("Original-Recipient"))
            if address:
                diagnostic = " ".join(str(block.get("Diagnostic-Code", "")).split())
                found.append(Bounce(address, status, diagnostic, original))
    if found or is_report:
        return found
    for address in addresses(", ".join(map(str, message.get_all("X-Failed-Recipients", [])))):
        found.append(Bounce(address, "5.0.0", "", original))
    if found:
        return found
    # A notice without a machine-readable report: "Final-Recipient:" in its text, or the
    # addresses on their own line after "following address(es) failed" (Exim).
    body = _first_text(message)
    for match in re.finditer(r"Final-Recipient:\s*(?:rfc822;)?\s*<?([^\s<>]+@[^\s<>]+)>?", body):
        found.append(Bounce(match[1].lower(), "5.0.0", "", original))
    if not found:
        failed = re.search(
            r"following address(?:\(es\))? failed:\s*\n((?:\s*\S+@\S+\s*\n?)+)", body
        )
        if failed:
            for address in re.findall(r"<?([^\s<>]+@[^\s<>:]+)>?", failed[1]):
                found.append(Bounce(address.lower(), "5.0.0", "", original))
    return found if found else ([] if from_daemon and "delivery" in body.lower() else None)


def _dsn_address(value: object) -> str:
    text = str(value or "")
    kind, _, address = text.partition(";")
    address = (address if _ else kind).strip().strip("<>")
    return address.lower() if "@" in address else ""


def _original_message_id(message: Message) -> str:
    for part in message.walk():
        kind = part.get_content_type()
        if kind == "message/rfc822":
            inner = part.get_payload()
            if isinstance(inner, list) and inner:
                return str(inner[0].get("Message-ID", "")).strip()
        if kind == "text/rfc822-headers":
            found = re.search(r"^Message-ID:\s*(<[^>]+>)", _payload_text(part), re.I | re.M)
            if found:
                return found[1]
    return ""


def _first_text(message: Message) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            return _payload_text(part)
    return ""


def _payload_text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return str(part.get_payload() or "")
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:
        return payload.decode("utf-8", errors="replace")


def addresses(value: str) -> list[str]:
    """The bare, lower-cased addresses of an address header."""
    return [address.lower() for _, address in getaddresses([value or ""]) if "@" in address]
