"""What a family name (``wan``, ``kling``) means: one rule, written once.

Why a rule and not a hand-kept table: a table pinned ``wan`` to Wan 2.1 while fal served
2.2 to 2.7, so a new user got the oldest Wan. The rule picks what fal would point a new
user to today, from the catalogue itself: the snapshot's build (:mod:`.build`) writes its
answers into the family table, and ``i2vkit models FAMILY`` shows the rule and the rest.

A batch that ran under a family name keeps the endpoint it ran with when the name moves
on (see :mod:`i2vkit.planning.pinning`): the ledger records the endpoint of every job.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

RULE = (
    "the newest active, non-preview, general version fal lists (general: a plain "
    "image-to-video endpoint, not first/last-frame, reference, LoRA, turbo/fast/distilled, "
    "preview or one needing an input a folder batch cannot give); among its tiers the "
    "standard one (or the endpoint without a tier), then the one fal lists first. A family "
    "with no such version means its newest active plain image-to-video endpoint"
)

# Version words that mark a variant of a version rather than the version itself.
_VARIANT = re.compile(r"preview|turbo|fast|distilled|lora|flash|lite|mini|\d+b\b", re.I)
_GENERAL_VERSION = re.compile(r"(?:[A-Za-z]+-)?[A-Za-z]?\d+(?:\.\d+)*")
_SPECIAL_ID = re.compile(r"first-last-frame|flf2v|transition|start-end|reference-to-video|lora")


def version_key(version: str) -> tuple[int, ...]:
    """``"2.7"`` -> (2, 7), ``"O3"`` -> (3,), ``"hailuo-02"`` -> (2,), ``"3.0"`` -> (3,)."""
    m = re.search(r"\d+(?:\.\d+)*", str(version))
    parts = [int(p) for p in m.group(0).split(".")] if m else []
    while parts and parts[-1] == 0 and len(parts) > 1:
        parts.pop()
    return tuple(parts)


def needs(entry: Mapping[str, Any]) -> dict[str, str]:
    """Required inputs a folder of images and prompts cannot give: field -> what it is.

    An audio track, a video or LoRA weights: fal refuses a request without them, and
    i2vkit has nothing to fill them from (they can be given with ``-o FIELD=...``, the
    same for every job)."""
    schema = entry.get("input") or {}
    props = schema.get("properties", {})
    filled = {entry.get("image_field"), entry.get("end_image_field"), "prompt"}
    out: dict[str, str] = {}
    for name in schema.get("required", []):
        prop = props.get(name, {})
        if name in filled or "default" in prop:
            continue
        kind = prop.get("type")
        if "lora" in name.lower():
            out[name] = "LoRA weights"
        elif kind == "file" and "audio" in name.lower():
            out[name] = "an audio track"
        elif kind == "file" and "video" in name.lower():
            out[name] = "a video"
        elif kind == "file":
            out[name] = "a file"
    return out


def is_general(entry: Mapping[str, Any]) -> bool:
    """A plain image-to-video version: what a family name may mean."""
    version = str(entry.get("version", ""))
    tier = str(entry.get("tier") or "")
    return (
        not _VARIANT.search(version)
        and not _VARIANT.search(tier.replace("standard", ""))
        and _GENERAL_VERSION.fullmatch(version) is not None
        and _plain(entry)
    )


def _plain(entry: Mapping[str, Any]) -> bool:
    """One image in, video out: no required end frame, nothing a folder cannot give."""
    required = entry.get("input", {}).get("required", [])
    return (
        not _SPECIAL_ID.search(entry["endpoint_id"])
        and entry.get("end_image_field") not in required
        and "preview" not in str(entry.get("version", "")).lower()
        and not needs(entry)
    )


def pick(entries: Iterable[Mapping[str, Any]], family: str) -> Mapping[str, Any] | None:
    """The endpoint ``family`` means under :data:`RULE`, or None when fal runs none."""
    listed = [e for e in entries if e["family"] == family]
    active = [e for e in listed if e.get("status") == "active"]
    general = [e for e in active if is_general(e)] or [e for e in active if _plain(e)]
    if not general:
        return None

    def key(item: tuple[int, Mapping[str, Any]]) -> tuple:
        order, e = item
        tier_rank = 0 if (e.get("tier") in (None, "standard")) else 1
        return (version_key(e["version"]), -tier_rank, -order)

    return max(enumerate(general), key=key)[1]


def pick_all(entries: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Every family fal runs a general version of -> its endpoint id."""
    out: dict[str, str] = {}
    for family in dict.fromkeys(e["family"] for e in entries):
        chosen = pick(entries, family)
        if chosen is not None:
            out[family] = chosen["endpoint_id"]
    return out
