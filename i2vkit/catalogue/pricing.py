"""What one video costs under an endpoint's price rule, or None when it cannot be known.

A rule (built from fal's published prices, see :mod:`.build`) is::

    {"unit": "video" | "second" | "token" | "megapixel",
     "rates": [{"when": {option: [values] | {"above": n}}, "usd": rate}, ...],  # first match
     "seconds": {"frames_option": "num_frames", "fps": 16},   # else the duration option
     "multipliers": [{"when": ..., "factor": 2.0}], "adds": [{"when": ..., "usd": 0.45}],
     "tokens_fps": 24, "verified": "verified" | "unverified" | "unknown",
     "assumed_seconds": {"seconds": 4, "why": ...},  # when the default length is "auto"
     "frames_option": "num_frames", "assumed_frame": [1280, 720], ...}  # per megapixel

``usd`` is per video, per second of video, per million tokens (Seedance: tokens = width
x height x fps x seconds / 1024) or per megapixel of output (width x height x frames,
rounded up). ``None`` is never $0: it means "ask before spending" to every caller.

Where fal's default length is ``auto`` (or there is no duration option) the price is
computed on an assumed length, and where the frame size follows the image on an assumed
size; :func:`assumption` says which, and callers mark such a price ``~``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from ..money import rate

# Frame sizes of the resolution names token prices are computed on (16:9).
PIXELS = {"480p": (854, 480), "720p": (1280, 720), "1080p": (1920, 1080), "4k": (3840, 2160)}


def _norm(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return str(value).strip().lower().removesuffix("s")


def matches(when: Mapping[str, Any], args: Mapping[str, Any]) -> bool:
    """True when ``args`` meet every condition of a rate row.

    A switch (a condition on true/false) that is not sent and has no schema default is
    off: that is what fal does with it, and without this rule a model whose audio switch
    has no recorded default (PixVerse 6) would have no price at all."""
    for option, want in when.items():
        value = args.get(option)
        switch = not isinstance(want, Mapping) and want and all(isinstance(w, bool) for w in want)
        if value is None and switch:
            value = False
        if isinstance(want, Mapping):
            if not isinstance(value, int | float) or value <= want.get("above", float("inf")):
                return False
        elif value is None or _norm(value) not in {_norm(w) for w in want}:
            return False
    return True


def seconds(rule: Mapping[str, Any], args: Mapping[str, Any]) -> float | None:
    """Video length the price counts: the one asked for, else the rule's assumed length
    (duration "auto" or no duration option), else None."""
    return _asked_seconds(rule, args) or (rule.get("assumed_seconds") or {}).get("seconds")


def _asked_seconds(rule: Mapping[str, Any], args: Mapping[str, Any]) -> float | None:
    frames = rule.get("seconds")
    if frames:
        n = args.get(frames["frames_option"])
        return float(n) / frames["fps"] if isinstance(n, int | float) else None
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*s?\s*", str(args.get("duration", "")))
    return float(m.group(1)) if m else None


def _frame(rule: Mapping[str, Any], args: Mapping[str, Any]) -> tuple[int, int] | None:
    size = PIXELS.get(str(args.get("resolution", "")).lower())
    if size is None and rule.get("assumed_frame"):
        size = tuple(rule["assumed_frame"])  # type: ignore[assignment]
    return size


def assumption(rule: Mapping[str, Any] | None, args: Mapping[str, Any]) -> str | None:
    """What a price at ``args`` assumes that fal's defaults leave open (a length for
    duration "auto", a frame size that follows the image), or None. Such a price is
    approximate: shown with ``~``."""
    if not rule or not rule.get("rates"):
        return None
    if rule.get("unit") == "megapixel":
        if PIXELS.get(str(args.get("resolution", "")).lower()) is not None:
            return None
        w, h = rule.get("assumed_frame") or (0, 0)
        return f"a {w}x{h} frame (the size follows the image; fal's worked example)"
    if rule.get("unit") in ("second", "token") and _asked_seconds(rule, args) is None:
        assumed = rule.get("assumed_seconds")
        if assumed:
            return f"{assumed['seconds']:g}s, {assumed['why']}"
    return None


def estimate(rule: Mapping[str, Any] | None, args: Mapping[str, Any]) -> float | None:
    """USD for one video made with ``args`` (schema defaults already merged in)."""
    if not rule or not rule.get("rates"):
        return None
    rate = next((r["usd"] for r in rule["rates"] if matches(r.get("when", {}), args)), None)
    if rate is None:
        return None
    unit = rule.get("unit", "video")
    if unit == "megapixel":
        frames, size = args.get(rule.get("frames_option", "num_frames")), _frame(rule, args)
        if not isinstance(frames, int | float) or size is None:
            return None
        rate *= math.ceil(size[0] * size[1] * frames / 1_000_000)
    elif unit in ("second", "token"):
        secs = seconds(rule, args)
        if secs is None:
            return None
        if unit == "token":
            size = PIXELS.get(str(args.get("resolution", "")).lower())
            if size is None:
                return None
            tokens = size[0] * size[1] * rule.get("tokens_fps", 24) * secs / 1024
            rate = rate * tokens / 1_000_000
        else:
            rate *= secs
    for m in rule.get("multipliers", []):
        if matches(m["when"], args):
            rate *= m["factor"]
    for a in rule.get("adds", []):
        if matches(a["when"], args):
            rate += a["usd"]
    return round(rate, 4)


def base_rate(rule: Mapping[str, Any] | None, args: Mapping[str, Any]) -> float | None:
    """The rate (per unit) that applies with ``args``: what fal's pricing API reports."""
    if not rule:
        return None
    return next((r["usd"] for r in rule.get("rates", []) if matches(r["when"], args)), None)


def rescaled(rule: Mapping[str, Any], live_usd: float, args: Mapping[str, Any]) -> dict[str, Any]:
    """The rule with every amount scaled so its rate at ``args`` equals fal's live price.

    fal's pricing API gives one unit price per endpoint (with the account's discounts),
    not the resolution/audio table; scaling keeps the table's shape and fal's number.
    """
    old = base_rate(rule, args)
    new = dict(rule)
    if not old:
        return new
    f = live_usd / old
    new["rates"] = [{**r, "usd": round(r["usd"] * f, 6)} for r in rule["rates"]]
    if rule.get("adds"):
        new["adds"] = [{**a, "usd": round(a["usd"] * f, 6)} for a in rule["adds"]]
    return new


def unit_label(rule: Mapping[str, Any] | None) -> str:
    unit = (rule or {}).get("unit", "video")
    return {"second": "per second", "token": "per 1M tokens", "megapixel": "per megapixel"}.get(
        unit, "per video"
    )


def describe(rule: Mapping[str, Any] | None) -> str:
    """One line: the rates, and whether fal's own page said so."""
    if not rule or not rule.get("rates"):
        return "price unknown: i2vkit asks before spending"
    parts = []
    for r in rule["rates"]:
        cond = ", ".join(
            f"{k}={'/'.join(str(v) for v in w)}" if not isinstance(w, Mapping) else k
            for k, w in r.get("when", {}).items()
        )
        parts.append(rate(r["usd"]) + (f" ({cond})" if cond else ""))
    text = f"{'; '.join(parts)} {unit_label(rule)}"
    for m in rule.get("multipliers", []):
        cond = ", ".join(
            f"{k}>{w['above']}" if isinstance(w, Mapping) else f"{k}={'/'.join(map(str, w))}"
            for k, w in m["when"].items()
        )
        text += f"; x{m['factor']:g} when {cond}"
    for a in rule.get("adds", []):
        cond = ", ".join(f"{k}={'/'.join(map(str, w))}" for k, w in a["when"].items())
        text += f"; +{rate(a['usd'])}" + (f" when {cond}" if cond else " per video")
    if rule.get("verified") == "unverified":
        text += " (unverified: inferred or third-party figure)"
    if rule.get("assumed_seconds"):
        a = rule["assumed_seconds"]
        text += f"; at defaults priced on {a['seconds']:g}s ({a['why']})"
    if rule.get("live"):
        text += f" (fal pricing API, read {rule['live']})"
    if rule.get("billed"):
        text += f" (what fal billed, read {rule['billed']})"
    return text
