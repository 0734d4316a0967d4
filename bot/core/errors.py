"""The error tree of pledgebot: what can go wrong, and whether to retry.

PledgebotError
 ├── UserInputError               bad input a person can fix; the CLI prints it on one line
 │    ├── ConfigError(file, key)   config.toml:14: channels.telegram.token_env: …   (exit 2)
 │    ├── DatabaseProblem          cannot reach, create or migrate the database     (exit 1)
 │    ├── ScheduleError(file, line) schedules/x.toml:12: unknown field 'cronn'     (exit 1)
 │    └── ImportRowsError          pledgemakers.csv:7: country: 'XX' is not …     (exit 1)
 └── DeliveryError                 raised by channel adapters; the dispatcher alone decides
      ├── Rejected                  permanent: too long, bad request, duplicate → failed
      ├── RecipientGone             blocked / deactivated → contact gone, failed
      ├── RateLimited(retry_after)  429 → retry after the platform's delay
      └── TransientError            5xx, timeout, connection → retry with backoff
"""

from __future__ import annotations

from dataclasses import dataclass


class PledgebotError(Exception):
    """Base of every error pledgebot raises on purpose."""


class UserInputError(PledgebotError):
    """Input a person can fix. ``str(err)`` is the whole one-line message."""

    exit_code = 1


class ConfigError(UserInputError):
    """A mistake in config.toml (or in a secret it names): ``file[:line]: key: message``."""

    exit_code = 2

    def __init__(self, file: str, key: str, message: str, line: int | None = None) -> None:
        self.file, self.key, self.message, self.line = file, key, message, line
        where = f"{file}:{line}: " if line else f"{file}: "
        super().__init__(where + (f"{key}: " if key else "") + message)


class DatabaseProblem(UserInputError):
    """The database cannot be reached, opened, created or migrated: what is wrong, and where
    (the URL without its password)."""


@dataclass(frozen=True)
class Problem:
    """One error located in a file: ``file:line: message``."""

    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        return (
            f"{self.file}:{self.line}: {self.message}"
            if self.line
            else f"{self.file}: {self.message}"
        )


class ProblemsError(UserInputError):
    """Several located problems found while reading one input; nothing was applied."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class ScheduleError(ProblemsError):
    pass


class ImportRowsError(ProblemsError):
    pass


class DeliveryError(PledgebotError):
    """A send failed. Subclasses say whether and when to try again."""

    retryable = False


class Rejected(DeliveryError):
    """The platform refused this message for good (too long, malformed, duplicate)."""


class RecipientGone(DeliveryError):
    """The recipient blocked the bot or no longer exists: stop writing to them."""


class RateLimited(DeliveryError):
    retryable = True

    def __init__(self, retry_after: float, message: str = "") -> None:
        self.retry_after = retry_after
        super().__init__(message or f"rate limited: retry after {retry_after:g} s")


class ChannelUnauthorized(DeliveryError):
    """The platform refuses our credentials: every message would fail the same way until staff
    renew them, so the channel is paused (not retried in a loop)."""


class TransientError(DeliveryError):
    """Server error, timeout or connection problem: worth another try later.

    ``maybe_delivered``: the request may have reached the platform (a timeout after sending), so
    the retry is counted as a possible duplicate.
    """

    retryable = True

    def __init__(self, message: str = "", *, maybe_delivered: bool = False) -> None:
        self.maybe_delivered = maybe_delivered
        super().__init__(message)
