"""Why a message was not sent: the one word an outbox row keeps (``failure_class``), and
which of those words may be resent.

Only what failed for a passing reason (the platform kept failing) may be resent in bulk;
nothing stopped by an opt-out, an unsubscribe, an erasure or a withdrawal is ever resent
(``bot.delivery.resend.retry_refusal`` applies these tables).
"""

from __future__ import annotations

# -- why a message was not sent (outbox.failure_class) --------------------------------------
TRANSIENT = "transient"  # the platform kept failing (5xx, timeouts) until the retry budget ran out
REJECTED = "rejected"  # the platform refused this message
GONE = "recipient_gone"  # they blocked the bot, left, or the mail bounced
OPTED_OUT = "opted_out"  # their contact stopped (/stop, STOP), or the address opted out
UNSUBSCRIBED = "unsubscribed"  # the email's one-click unsubscribe
ERASED = "erased"  # the pledgemaker was erased on request
WITHDRAWN = "withdrawn"  # consent to publish was withdrawn
ANSWERED = "answered"  # a reminder no longer needed
STAFF = "cancelled_by_staff"
THREAD_BROKEN = "thread_broken"  # an earlier part of its thread was not sent
INTERNAL = "internal"  # an error of ours (see the log)
CONTACT_STOPPED = "contact_stopped"  # how an opt-out since planning is worded (last_error)
# Never resent, by anyone: the person said no, or is gone.
NEVER_RETRY = {
    OPTED_OUT: "the recipient opted out",
    UNSUBSCRIBED: "the address unsubscribed",
    ERASED: "the pledgemaker was erased",
    WITHDRAWN: "consent was withdrawn",
    GONE: "the recipient blocked the bot, left or bounced",
    ANSWERED: "no longer needed (the prompt was answered)",
}
# Resent on request for one message (the dashboard), not in bulk: sending it again as it is
# would most likely fail the same way, or staff stopped it on purpose.
ON_REQUEST = {
    REJECTED: "the platform rejected it (it would be refused again)",
    STAFF: "cancelled by staff",
    INTERNAL: "an internal error (see the log)",
    THREAD_BROKEN: "an earlier part of its thread was not sent",
}
# Rows failed before failure_class existed, or by code that words the reason only.
_LEGACY_WORDING = (
    ("gave up after", TRANSIENT),
    ("rejected", REJECTED),
    ("recipient_gone", GONE),
    (CONTACT_STOPPED, OPTED_OUT),
    ("cancelled: the address unsubscribed", UNSUBSCRIBED),
    ("cancelled by staff: pledgemaker erased", ERASED),
    ("cancelled by staff", STAFF),
    ("consent withdrawn", WITHDRAWN),
    ("prompt answered", ANSWERED),
    ("thread broken", THREAD_BROKEN),
    ("internal error", INTERNAL),
)


def failure_of(last_error: str | None, failure_class: str | None) -> str | None:
    """The class of a failure: the stored one, else read from how the reason is worded."""
    if failure_class:
        return failure_class
    error = last_error or ""
    for wording, failure in _LEGACY_WORDING:
        if error.startswith(wording):
            return failure
    return None
