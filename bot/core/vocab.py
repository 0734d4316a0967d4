"""The campaign's fixed vocabulary: pillars, kinds, sectors, regions, languages, countries."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from functools import cache

PILLARS = ("act", "inspire", "scale_up")
# The pillars' names as the campaign wrote them in each language (posts, digests).
PILLAR_NAMES = {
    "en": {"act": "Act", "inspire": "Inspire", "scale_up": "Scale up"},
    "fr": {"act": "Agir", "inspire": "Inspirer", "scale_up": "Passer à l'échelle"},
    "es": {"act": "Actuar", "inspire": "Inspirar", "scale_up": "Ampliar"},
}
UPDATE_KINDS = ("progress", "challenge", "solution")
LANGUAGES = ("en", "fr", "es")
SECTORS = (
    "government",
    "business",
    "employers_organization",
    "workers_organization",
    "ngo",
    "un_agency",
    "academia",
    "media",
    "other",
)
# The ILO's five regions.
REGIONS = ("africa", "americas", "arab_states", "asia_pacific", "europe_central_asia")


# CLDR territories that are groupings or placeholders, not countries (XK, Kosovo, stays).
NOT_COUNTRIES = frozenset({"ZZ", "EU", "EZ", "UN", "QO", "XA", "XB"})


@cache
def country_codes() -> frozenset[str]:
    """ISO 3166-1 alpha-2 codes, from CLDR (babel); excludes CLDR's numeric region codes."""
    from babel import Locale

    codes = {
        code
        for code in Locale("en").territories
        if isinstance(code, str) and len(code) == 2 and code.isalpha()
    }
    return frozenset(codes - NOT_COUNTRIES)


@cache
def time_zones() -> frozenset[str]:
    import zoneinfo

    return frozenset(zoneinfo.available_timezones())


def require_known(value: str, known: Iterable[str], what: str) -> str:
    """``value`` if it is in the vocabulary; else a ValueError with the closest known value."""
    choices = sorted(known)
    if value not in choices:
        starts = [choice for choice in choices if value and choice.startswith(value)]
        hint = starts if len(starts) == 1 else difflib.get_close_matches(value, choices, n=1)
        raise ValueError(
            f"unknown {what} {value!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
        )
    return value
