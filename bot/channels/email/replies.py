"""Reading the mails that reach the campaign's mailbox: ``strip_reply`` (quoted history and
signatures, Gmail / Outlook / Apple Mail, en/fr/es), ``is_opt_out`` (STOP, unsubscribe,
désabonner, baja …), ``is_auto_reply`` (out-of-office), ``bounced_recipients`` (delivery status
notifications). Pure: no network.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from email.message import Message
from email.utils import getaddresses, parseaddr

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
            if not isinstance(block, Message):
                continue
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
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
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
