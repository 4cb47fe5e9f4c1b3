"""What a plan's price rests on, said under its cost: an assumed clip length and the age
of the catalogue the price was read from.

Why: a price computed on a length fal leaves open (duration ``auto``) or read from the
snapshot shipped in the package can be off; the plan is where money is agreed to, so it
says so there, once per model.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

from ..catalogue import active
from ..catalogue import pricing as price_rules
from ..models import ModelSpec


def price_notes(
    jobs: Iterable[tuple[ModelSpec, Mapping[str, Any]]], today: date | None = None
) -> list[str]:
    """One ``note:`` per model priced on an assumption, and one for a snapshot's age
    (``jobs``: each planned job's model and options)."""
    notes: list[str] = []
    seen: set[str] = set()
    from_snapshot = False
    for m, options in jobs:
        if m.price_rule is None or not m.price_rule.get("rates"):
            continue
        from_snapshot = from_snapshot or not m.price_rule.get("live")
        assumed = price_rules.assumption(m.price_rule, {**m.defaults, **options})
        if assumed and m.endpoint_id not in seen:
            seen.add(m.endpoint_id)
            notes.append(
                f"note: {m.name}'s price (~) assumes {assumed}; -o duration=N prices a "
                "length you choose."
                if "s," in assumed
                else f"note: {m.name}'s price (~) assumes {assumed}."
            )
    if from_snapshot:
        notes.append(f"note: {catalogue_age(today)}")
    return notes


def catalogue_age(today: date | None = None) -> str:
    """``prices from i2vkit's catalogue (fal data as of 2026-08-02 ...; built 2026-12-06,
    3 days ago)``: how old the numbers behind a snapshot price are."""
    cat = active()
    built = str(cat.data.get("read_on", ""))
    age = ""
    try:
        days = ((today or date.today()) - date.fromisoformat(built)).days
        age = f", {days} day{'s' if days != 1 else ''} ago" if days >= 0 else ""
    except ValueError:
        pass
    return (
        f"prices from i2vkit's catalogue ({cat.dates()}; built {built}{age}); "
        "`i2vkit models --refresh` reads fal's current prices with your key."
    )
