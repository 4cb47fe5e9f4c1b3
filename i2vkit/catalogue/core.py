"""The catalogue: fal's image-to-video endpoints, their schemas, prices, status and names.

One :class:`Catalogue` answers "what does this name mean" and "what does this endpoint
take, cost and return". It comes from the snapshot shipped in the package, or from a
copy read from fal's Platform API and kept in the ledger (:mod:`.stored`), which has
the same shape.
"""

from __future__ import annotations

import copy
import difflib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from ..errors import ModelError

ACTIVE, DEPRECATED, SHUT_DOWN, UNKNOWN = "active", "deprecated", "shut_down", "unknown"


@dataclass
class Catalogue:
    """Entries by endpoint id plus the name table; ``origin`` says where it was read."""

    data: dict[str, Any]
    origin: str = "snapshot"  # or "fal pricing/models API, read <date>"
    by_id: dict[str, dict[str, Any]] = field(init=False)

    def __post_init__(self) -> None:
        self.by_id = {e["endpoint_id"]: e for e in self.data["endpoints"]}

    @property
    def entries(self) -> list[dict[str, Any]]:
        return self.data["endpoints"]

    @property
    def names(self) -> dict[str, str]:
        return self.data["names"]

    @property
    def families(self) -> dict[str, str]:
        return self.data["families"]

    def name_of(self, endpoint_id: str) -> str:
        """The short name shown for an endpoint: its family name when it is the family's
        pick, else its canonical versioned name."""
        entry = self.by_id.get(endpoint_id)
        return entry["name"] if entry else endpoint_id

    def lookup(self, name: str) -> dict[str, Any] | None:
        """The entry a short name, versioned name or endpoint id means, or None."""
        key = name.strip()
        if key in self.by_id:
            return self.by_id[key]
        eid = self.names.get(key.lower())
        return self.by_id.get(eid) if eid else None

    @property
    def listed(self) -> list[dict[str, Any]]:
        """The entries ``i2vkit models`` lists: every one but those fal shut down."""
        return [e for e in self.entries if e.get("status") != SHUT_DOWN]

    def listed_names(self) -> dict[str, str]:
        """Names ``i2vkit models`` shows (each listed entry's own name, and the family
        names) -> endpoint id: the only names a mistyped one is matched against."""
        names = {e["name"]: e["endpoint_id"] for e in self.listed}
        names.update(self.families)
        return names

    def unknown_name(self, name: str) -> ModelError:
        typed = name.strip().lower()
        close = difflib.get_close_matches(typed, sorted(self.listed_names()), n=3)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        retired = {e["name"]: e for e in self.entries if e.get("status") == SHUT_DOWN}
        for gone in difflib.get_close_matches(typed, sorted(retired), n=1):
            instead = retired[gone].get("replacement")
            use = f": use {self.name_of(instead)!r} instead" if instead else ""
            hint += f" ({gone!r} is shut down by fal{use}.)"
        families = ", ".join(sorted(self.families))
        return ModelError(
            f"Unknown model {name.strip()!r}.{hint} Known models: family names ({families}), "
            "versioned names such as 'kling-2.5-turbo' or 'veo-3.1-fast' (`i2vkit models` lists "
            "them all), or a full fal endpoint id such as 'fal-ai/wan-i2v'."
        )

    def dates(self) -> str:
        """What the data are and when read: ``fal data as of 2026-08-02 (client types),
        prices from fal's pages; refreshed from fal: never`` (or when, with a key)."""
        sources = self.data.get("data_sources") or []
        dated = [s for s in sources if s.get("as_of")]
        undated = [s for s in sources if not s.get("as_of") and "price" in s.get("gave", "")]
        parts = []
        if dated:
            newest = max(dated, key=lambda s: s["as_of"])
            parts.append(f"fal data as of {newest['as_of']} ({newest['short']})")
        if undated:
            parts.append(f"prices from {undated[0]['short']}")
        text = ", ".join(parts) or f"catalogue read {self.data.get('read_on', '?')}"
        return f"{text}; refreshed from fal: {self.refreshed or 'never'}"

    @property
    def refreshed(self) -> str | None:
        """When this copy was read from fal's Platform API with a key (None: never)."""
        m = re.match(r"fal's Platform API, read (\d{4}-\d\d-\d\d)[ T]?(\d\d:\d\d)?", self.origin)
        if not m:
            return None
        return f"{m.group(1)} {m.group(2)} UTC" if m.group(2) else m.group(1)

    def family_versions(self, family: str) -> list[dict[str, Any]]:
        """A family's endpoints in catalogue order (newest first), for pickers."""
        return [e for e in self.entries if e["family"] == family]

    def with_entries(self, entries: list[dict[str, Any]], origin: str) -> Catalogue:
        data = copy.deepcopy(self.data)
        data["endpoints"] = entries
        return Catalogue(data, origin)


@cache
def _snapshot_text() -> str:
    return resources.files(__package__).joinpath("snapshot.json").read_text(encoding="utf-8")


def snapshot() -> Catalogue:
    """The catalogue shipped in the package (read date inside); a fresh copy each call."""
    return Catalogue(json.loads(_snapshot_text()), f"i2vkit's snapshot, built {snapshot_read_on()}")


@cache
def snapshot_read_on() -> str:
    return json.loads(_snapshot_text())["read_on"]


def defaults(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The schema's defaults: what fal uses for a field that is not sent."""
    return {
        k: p["default"]
        for k, p in entry["input"]["properties"].items()
        if "default" in p and p.get("type") != "file"
    }
