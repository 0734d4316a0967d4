"""The campaign kinds, one line each: the ``kind`` a ``[[campaign]]`` names → its module's ``KIND``.

``bot.scheduling.schedules`` validates an entry with its kind's model and renders its samples;
``bot.scheduling.runs`` plans a run with its planner. A new kind is one module in this package
and one line here (docs/add-a-campaign-kind.md).
"""

from __future__ import annotations

from bot.campaigns import amplify, announce, digest, followup, knowledge
from bot.campaigns.base import Kind

# In this order in messages ("kind must be one of followup, amplify, …").
KINDS: dict[str, Kind] = {
    "followup": followup.KIND,
    "amplify": amplify.KIND,
    "knowledge": knowledge.KIND,
    "digest": digest.KIND,
    "announce": announce.KIND,
}


def kind(name: str) -> Kind:
    """The kind of a validated campaign (``spec.kind``)."""
    return KINDS[name]
