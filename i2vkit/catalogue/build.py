"""Build the shipped snapshot (``snapshot.json``) from a research file of fal endpoints.

Run it by hand when the research file changes::

    python -m i2vkit.catalogue.build docs/research/fal-i2v-models.json

Why a script rather than a hand-typed table: every field name, enum, default and price
in the snapshot is copied from the research file, so a test can compare the two and a
re-run picks up corrections. What this script adds is judgement the file states only in
prose, kept in the small tables below: which version a family name means, what replaced
a retired endpoint, and the price rules' multipliers that the file writes as a formula.

The package never reads the research file at run time; only this script does.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from .families import RULE, pick_all

SNAPSHOT = Path(__file__).with_name("snapshot.json")

# What the research file's data are and when each was read (its ``sources`` say so in
# prose): the catalogue's dates line is made from these, never from the file's own date.
DATA_SOURCES = [
    {
        "what": "fal's generated client types (fal-js endpoints.ts)",
        "short": "client types",
        "as_of": "2026-08-02",
        "gave": "endpoints, field names, types, enums, defaults",
    },
    {
        "what": "fal's Platform API listing (GET /v1/models, image-to-video)",
        "short": "Platform API listing",
        "as_of": "2026-01-28",
        "gave": "minimums, maximums and status",
    },
    {
        "what": "fal's model pages and llms.txt (stored copies, capture dates unknown)",
        "short": "fal's pages",
        "as_of": None,
        "read": "2026-12-06",
        "gave": "prices",
    },
]

FAMILY_LABELS = {
    "kling": "Kling",
    "veo": "Veo",
    "wan": "Wan",
    "minimax": "MiniMax",
    "ltx": "LTX",
    "seedance": "Seedance",
    "pixverse": "PixVerse",
    "luma": "Luma",
    "vidu": "Vidu",
    "sora": "Sora",
    "grok-imagine": "Grok Imagine",
    "happy-horse": "Happy Horse",
    "gemini-omni": "Gemini Omni",
    "flux-video": "FLUX video",
    "cogvideox": "CogVideoX",
    "cosmos": "Cosmos",
    "heygen": "HeyGen",
    "hunyuan-video": "Hunyuan Video",
    "kandinsky": "Kandinsky",
    "longcat-video": "LongCat Video",
    "magi": "MAGI",
    "ovi": "Ovi",
    "pika": "Pika",
    "sync-lipsync": "Sync Lipsync",
    "framepack": "FramePack",
    "marey": "Marey",
    "stable-video-diffusion": "Stable Video Diffusion",
}

# What a family name means is decided by families.RULE over the built entries; these
# are other spellings of a family name.
FAMILY_ALIASES = {"hailuo": "minimax", "grok": "grok-imagine"}

# Names users typed before the catalogue, kept on the endpoint they meant then.
LEGACY_NAMES = {
    "wan-2.2": "fal-ai/wan/v2.2-a14b/image-to-video",
    "wan2.2": "fal-ai/wan/v2.2-a14b/image-to-video",
    "wan22": "fal-ai/wan/v2.2-a14b/image-to-video",
    "kling1.6": "fal-ai/kling-video/v1.6/standard/image-to-video",
    "hailuo-02": "fal-ai/minimax/hailuo-02/standard/image-to-video",
    "veo3": "fal-ai/veo3/image-to-video",
    "veo3-fast": "fal-ai/veo3/fast/image-to-video",
    "ray-2": "fal-ai/luma-dream-machine/ray-2/image-to-video",
    "ray2": "fal-ai/luma-dream-machine/ray-2/image-to-video",
}

# status in the research file -> (catalogue status, replacement). "likely-retired" is a
# shutdown the provider announced; "unknown" on the Veo 3 / LTX 2 ids means fal's current
# endpoint list no longer has them.
STATUS = {
    "fal-ai/veo3/image-to-video": ("deprecated", "fal-ai/veo3.1/image-to-video"),
    "fal-ai/veo3/fast/image-to-video": ("deprecated", "fal-ai/veo3.1/fast/image-to-video"),
    "fal-ai/ltx-2/image-to-video": ("deprecated", "fal-ai/ltx-2.3/image-to-video"),
    "fal-ai/bytedance/seedance/v1/pro/image-to-video": (
        "deprecated",
        "fal-ai/bytedance/seedance/v1/pro/fast/image-to-video",
    ),
    "fal-ai/sora-2/image-to-video": ("shut_down", "fal-ai/veo3.1/image-to-video"),
    "fal-ai/sora-2/image-to-video/pro": ("shut_down", "fal-ai/veo3.1/image-to-video"),
}

# Multipliers the research file states in its formula text, per endpoint.
FORMULA_MULTIPLIERS: dict[str, list[dict[str, Any]]] = {
    "fal-ai/wan-i2v": [{"when": {"num_frames": {"above": 81}}, "factor": 1.25}],
    "fal-ai/ltxv-13b-098-distilled/image-to-video": [
        {"when": {"enable_detail_pass": [True]}, "factor": 2.0}
    ],
    "fal-ai/pixverse/v4.5/image-to-video": [{"when": {"duration": ["8"]}, "factor": 2.0}],
    "fal-ai/pixverse/v5.6/image-to-video": [
        {"when": {"duration": ["8"]}, "factor": 2.0},
        {"when": {"duration": ["10"]}, "factor": 2.2},
    ],
    "fal-ai/luma-dream-machine/ray-2/image-to-video": [
        {"when": {"resolution": ["720p"]}, "factor": 2.0},
        {"when": {"resolution": ["1080p"]}, "factor": 4.0},
        {"when": {"duration": ["9s"]}, "factor": 2.0},
    ],
    "fal-ai/luma-dream-machine/ray-2-flash/image-to-video": [
        {"when": {"resolution": ["720p"]}, "factor": 2.0},
        {"when": {"resolution": ["1080p"]}, "factor": 4.0},
        {"when": {"duration": ["9s"]}, "factor": 2.0},
    ],
    "fal-ai/wan-flf2v": [{"when": {"num_frames": {"above": 81}}, "factor": 1.25}],
}
# Video length from frames, where the price is per second of video (fal counts Wan 2.2
# at 16 fps, LTX-Video at 24 fps and LongCat at its own 15/30 fps whatever frame rate is
# asked for). FramePack's pages give no frame rate: 30 fps is the model's own, assumed.
FRAME_SECONDS: dict[str, dict[str, Any]] = {
    "fal-ai/wan/v2.2-a14b/image-to-video": {"frames_option": "num_frames", "fps": 16},
    "fal-ai/wan/v2.2-a14b/image-to-video/lora": {"frames_option": "num_frames", "fps": 16},
    "fal-ai/ltxv-13b-098-distilled/image-to-video": {"frames_option": "num_frames", "fps": 24},
    "fal-ai/longcat-video/image-to-video/480p": {"frames_option": "num_frames", "fps": 15},
    "fal-ai/longcat-video/image-to-video/720p": {"frames_option": "num_frames", "fps": 30},
    "fal-ai/framepack": {"frames_option": "num_frames", "fps": 30, "assumed": True},
    "fal-ai/framepack/f1": {"frames_option": "num_frames", "fps": 30, "assumed": True},
    "fal-ai/framepack/flf2v": {"frames_option": "num_frames", "fps": 30, "assumed": True},
}
# Clip length a per-second price is computed on where the default duration is "auto" or
# there is no duration option: the length fal's page documents (source named), else the
# shortest the endpoint takes (see default_seconds). Prices at it are marked "~".
DOCUMENTED_SECONDS = {
    "fal-ai/minimax/hailuo-02/pro/image-to-video": (6, "fal's page: 6 s = US$ 0.48"),
}
# Output frame size a per-megapixel price is computed on when the size follows the image
# ("auto"): the worked example on fal's page (121 frames at 1280x720).
MEGAPIXEL_FRAME = (1280, 720)
# Defaults the research file records wrongly, with what says otherwise.
DEFAULT_FIXES: dict[str, dict[str, Any]] = {
    "fal-ai/bytedance/seedance/v1/pro/image-to-video": {
        "resolution": ("1080p", "fal's model page: default resolution 1080p"),
    },
}
# Prompt limits fal counts in UTF-8 bytes, not characters, per family. The research file
# says so for PixVerse v6 ("prompt/negative_prompt limited to 2048 UTF-8 BYTES"); PixVerse's
# own API counts every version's prompt the same way, so the whole family gets the rule.
BYTE_PROMPT_LIMITS = {"pixverse": 2048}
TOKEN_FPS = 24  # Seedance counts tokens as width x height x 24 fps x seconds / 1024

_RES = re.compile(r"^(\d+[pP]|4k|2K)$")
_SECONDS = re.compile(r"^(\d+)s$")


_KINDS = {"string", "integer", "number", "boolean", "array", "object"}


def field_type(spec: dict[str, Any]) -> str:
    """The research file's type -> the schema's: ``file`` for a URL/data-URI input, a
    JSON kind otherwise (``string or object (ImageSize)`` takes text such as ``auto``;
    a named structure such as ``AvatarIVBackground`` is an object)."""
    t = spec.get("type", "string")
    if t.startswith("string (URL"):
        return "file"
    if t in _KINDS:
        return t
    return "string" if t.startswith("string") else "object"


def convert_input(fields: dict[str, Any], fixes: dict[str, Any] | None = None) -> dict[str, Any]:
    """The research file's field table -> JSON-schema-like ``properties`` + ``required``
    (with ``fixes``: defaults the file records wrongly, each with what says otherwise)."""
    props: dict[str, Any] = {}
    required = []
    for name, spec in sorted(fields.items()):
        out: dict[str, Any] = {"type": field_type(spec)}
        for src, dst in (
            ("enum", "enum"),
            ("default", "default"),
            ("min", "minimum"),
            ("max", "maximum"),
            ("max_length", "maxLength"),
            ("min_length", "minLength"),
        ):
            if spec.get(src) is not None:
                out[dst] = spec[src]
        if spec.get("description"):
            out["description"] = spec["description"]
        if fixes and name in fixes:
            out["default"], out["default_source"] = fixes[name]
        props[name] = out
        if spec.get("required"):
            required.append(name)
    return {"properties": props, "required": required}


def audio_field(fields: dict[str, Any]) -> str | None:
    """The boolean that switches generated sound on (its name varies by provider)."""
    for name in ("generate_audio", "generate_audio_switch", "audio"):
        if fields.get(name, {}).get("type") == "boolean":
            return name
    return None


def _conditions(key: str, audio: str | None, fields: dict[str, Any], table_has_audio: bool):
    """A price-table key such as ``720p_or_1080p_audio_on`` -> option conditions."""
    when: dict[str, Any] = {}
    parts = key.split("_")
    res = [p for p in parts if _RES.match(p)]
    secs = [m.group(1) for p in parts if (m := _SECONDS.match(p))]
    if res and "resolution" in fields:
        when["resolution"] = res
    if secs and "duration" in fields:
        when["duration"] = secs
    if audio:
        if "audio" in parts and "off" not in parts and "no" not in parts:
            when[audio] = [True]
        elif table_has_audio:
            when[audio] = [False]
    return when


def convert_price(m: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    """The research file's price (amounts + formula) -> a rule :mod:`.pricing` evaluates."""
    p = m["pricing"]
    amounts: dict[str, float] | None = p.get("amounts_usd")
    eid = m["endpoint_id"]
    rule = _new_rule(p, amounts)
    if not amounts:
        rule["verified"] = "unknown"
        rule["unit"] = "video" if p.get("unit") == "video" else "second"
        return rule
    audio = audio_field(fields)
    unit = p["unit"]
    if unit == "token":
        rule["unit"] = "token"
        rule["tokens_fps"] = TOKEN_FPS
        rule["rates"] = _token_rates(amounts, audio)
        _assume_length(rule, eid, fields)
        return rule
    if unit == "megapixel":
        rule["unit"] = "megapixel"
        rule["frames_option"] = "num_frames"
        rule["assumed_frame"] = list(MEGAPIXEL_FRAME)
        rule["rates"] = [{"when": {}, "usd": amounts["per_megapixel"]}]
        return rule
    if unit == "video":
        rule["unit"] = "video"
    if eid in FRAME_SECONDS:
        rule["seconds"] = {k: v for k, v in FRAME_SECONDS[eid].items() if k != "assumed"}
        if FRAME_SECONDS[eid].get("assumed"):
            rule["verified"] = "unverified"
    if eid in FORMULA_MULTIPLIERS:
        rule["multipliers"] = FORMULA_MULTIPLIERS[eid]
    if "first_5s" in amounts:  # "$X for 5 s + $Y per extra second" with X = 5 Y: Y per second
        assert abs(amounts["first_5s"] - 5 * amounts["each_extra_second"]) < 1e-9, eid
        rule["rates"].append({"when": {}, "usd": amounts["each_extra_second"]})
        return rule
    rates, adds = _table_rates(eid, amounts, audio, fields)
    if rule["unit"] == "video":  # an extra-second rate on a per-video price: not the base
        rates = [r for r in rates if r.get("extra") is None]
    rule["rates"] = [{k: v for k, v in r.items() if k != "extra"} for r in rates]
    if adds:
        rule["adds"] = adds
    if rule["unit"] == "second" and "seconds" not in rule:
        _assume_length(rule, eid, fields)
    return rule


def default_seconds(eid: str, fields: dict[str, Any]) -> tuple[float, str] | None:
    """(seconds, why) a per-second price is computed on when fal's default length is
    ``auto`` or there is no duration option; None when the default is a length."""
    duration = fields.get("duration")
    default = (duration or {}).get("default")
    if duration is not None and default not in (None, "auto"):
        return None
    if eid in DOCUMENTED_SECONDS:
        secs, source = DOCUMENTED_SECONDS[eid]
        return float(secs), f"the length fal documents ({source})"
    lengths = [
        float(m.group(1))
        for v in (duration or {}).get("enum") or []
        if (m := _SECONDS_VALUE.fullmatch(str(v)))
    ]
    if lengths:
        what = "auto" if default == "auto" else "not set"
        return min(lengths), f"the shortest it takes: fal documents no length for duration {what}"
    return None


_SECONDS_VALUE = re.compile(r"(\d+(?:\.\d+)?)s?")


def _assume_length(rule: dict[str, Any], eid: str, fields: dict[str, Any]) -> None:
    found = default_seconds(eid, fields)
    if found is not None:
        rule["assumed_seconds"] = {"seconds": found[0], "why": found[1]}


def _new_rule(p: dict[str, Any], amounts: dict[str, float] | None) -> dict[str, Any]:
    """A rule without rates yet: per second, and how far to trust it (a price inferred, or
    from a third party, is unverified; conflicting sources are kept)."""
    notes = " ".join(x for x in (p.get("formula"), p.get("note")) if x)
    third_party = "3rd-party" in notes or any("approx" in k for k in amounts or {})
    rule: dict[str, Any] = {
        "unit": "second",
        "verified": "verified",
        "rates": [],
        "formula": p.get("formula", ""),
        "sources": [p["source"]] if p.get("source") else [],
    }
    if p.get("inferred") or third_party:
        rule["verified"] = "unverified"
    if p.get("conflicting"):
        rule["conflicting"] = p["conflicting"]
    return rule


def _token_rates(amounts: dict[str, float], audio: str | None) -> list[dict[str, Any]]:
    """Per-token prices as rates per million tokens (with or without audio when priced so)."""
    rates: list[dict[str, Any]] = []
    for key, usd in amounts.items():
        if key == "per_1000_tokens":
            rates.append({"when": {}, "usd": round(usd * 1000, 6)})
        elif key.startswith("per_million_tokens"):
            when = {}
            if audio and key.endswith("with_audio"):
                when = {audio: [True]}
            elif audio and key.endswith("no_audio"):
                when = {audio: [False]}
            rates.append({"when": when, "usd": usd})
    return rates


def _table_rates(
    eid: str, amounts: dict[str, float], audio: str | None, fields: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A price table -> (rates, each under its conditions; adds: surcharges on top, such as
    an input image, an audio add-on or a resolution's base fee)."""
    table_has_audio = any("audio" in k.split("_") for k in amounts if "addon" not in k)
    # a duration the formula multiplies is not a condition of the base rate ("5s_720p")
    scaled = {o for mm in FORMULA_MULTIPLIERS.get(eid, []) for o in mm["when"]}
    rates: list[dict[str, Any]] = []
    adds: list[dict[str, Any]] = []
    for key, usd in amounts.items():
        parts = key.split("_")
        if "voice" in parts:
            continue  # a voice-control surcharge: needs voice_ids, which i2vkit never sends
        if key in ("flat", "per_video", "per_generated_second", "per_second"):
            rates.append({"when": {}, "usd": usd})
        elif key == "each_extra_second":
            rates.append({"when": {}, "usd": usd, "extra": True})
        elif key.endswith("_example"):
            continue  # a worked example of the formula, not a rate
        elif key == "per_input_image":
            adds.append({"when": {}, "usd": usd})
        elif parts[0] == "audio" and parts[1] == "addon":
            res = ["360p", "540p", "720p"] if "upto" in parts else [parts[-1]]
            adds.append({"when": {audio: [True], "resolution": res}, "usd": usd})
        elif parts[-1] == "base":
            adds.append({"when": {"resolution": [parts[0]]}, "usd": usd})
        elif parts[-1] == "second" and parts[0] != "approx" and len(parts) == 3:
            rates.append({"when": {"resolution": [parts[0]]}, "usd": usd})
        else:
            when = _conditions(key, audio, fields, table_has_audio)
            when = {k: v for k, v in when.items() if k not in scaled}
            rates.append({"when": when, "usd": usd})
    return rates, adds


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", str(text).lower()).strip("-")


def names_for(m: dict[str, Any]) -> tuple[str, list[str]]:
    """(canonical name, extra aliases): ``kling-3.0-standard``, ``veo-3.1-fast-flf`` ..."""
    family, version, tier = m["family"], _slug(m["version"]), m.get("tier")
    short = {"grok-imagine": "grok"}.get(family, family)
    if family == "minimax" and version.startswith("hailuo-"):
        short, version = "hailuo", version.removeprefix("hailuo-")
    base = f"{short}-{version}"
    if tier and _slug(tier) not in version.split("-"):
        base += f"-{_slug(tier)}"
    aliases = []
    if "first-last-frame" in m["endpoint_id"]:
        aliases.append(base + "-first-last-frame")
        base += "-flf"
    if version.endswith(".0"):
        aliases.append(base.replace(f"-{version}", f"-{version[:-2]}", 1))
    if re.match(r"^\d", version):
        aliases.append(base.replace(f"-{version}", f"-v{version}", 1))
    return base, aliases


def display_name(m: dict[str, Any]) -> str:
    label = FAMILY_LABELS.get(m["family"], m["family"])
    version = m["version"]
    tier = m.get("tier")
    if m["family"] == "minimax" and version.startswith("hailuo-"):
        label, version = "MiniMax Hailuo", version.removeprefix("hailuo-")
    text = f"{label} {version}"
    if tier and tier not in version:
        text += f" {tier.replace('-', ' ').title()}"
    return f"{text} {kind_of(m['endpoint_id'])}"


def kind_of(endpoint_id: str) -> str:
    """What an endpoint makes a video from, by its id."""
    if "reference-to-video" in endpoint_id:
        return "reference-to-video"
    if re.search(r"first-last-frame|flf2v|transition|start-end", endpoint_id):
        return "first-last-frame-to-video"
    return "image-to-video"


def build(reference: dict[str, Any]) -> dict[str, Any]:
    """The whole snapshot: entries in the research file's order, plus the name tables."""
    entries = []
    names: dict[str, str] = {}
    for m in reference["models"]:
        eid = m["endpoint_id"]
        fields = m["input"]
        fixes = DEFAULT_FIXES.get(eid)
        priced = {
            k: {**v, "default": fixes[k][0]} if fixes and k in fixes else v
            for k, v in fields.items()
        }
        status, replacement = STATUS.get(eid, (m["status"], None))
        name, aliases = names_for(m)
        entry = {
            "endpoint_id": eid,
            "name": name,
            "family": m["family"],
            "version": m["version"],
            "tier": m.get("tier"),
            "display_name": display_name(m),
            "status": status,
            "replacement": replacement,
            "status_evidence": m.get("status_evidence", []),
            "image_field": m["image_field"],
            "end_image_field": m.get("end_image_field"),
            "audio_field": audio_field(fields),
            "audio": m.get("audio"),
            "input": convert_input(fields, fixes),
            "video_path": m["output"].get("video_path", "video.url").split("."),
            "price": convert_price(m, priced),
            "sources": m.get("sources", []),
            "read_on": reference["read_on"],
        }
        if m["family"] in BYTE_PROMPT_LIMITS:
            entry["prompt_limit"] = {"max": BYTE_PROMPT_LIMITS[m["family"]], "unit": "bytes"}
        entries.append(entry)
        for n in (name, *aliases):
            assert n not in names, f"name {n} for {eid} already names {names[n]}"
            names[n] = eid
    # family-version without a tier: the standard tier, else the first listed
    by_version: dict[str, list[dict[str, Any]]] = {}
    for e in entries:
        if "first-last-frame" not in e["endpoint_id"]:
            key = e["name"].rsplit("-", 1)[0] if e["tier"] else e["name"]
            by_version.setdefault(key, []).append(e)
    for key, group in by_version.items():
        if key not in names:
            standard = [e for e in group if e["tier"] == "standard"]
            names[key] = (standard or group)[0]["endpoint_id"]
    families = pick_all(entries)
    for alias, fam in FAMILY_ALIASES.items():
        families[alias] = families[fam]
    for n, eid in {**LEGACY_NAMES, **families}.items():
        names[n] = eid
    return {
        "read_on": reference["read_on"],
        "built_by": "i2vkit/catalogue/build.py",
        "data_sources": DATA_SOURCES,
        "family_rule": RULE,
        "sources": reference.get("sources", []),
        "families": families,
        "names": dict(sorted(names.items())),
        "endpoints": entries,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("reference", type=Path, help="the fal-i2v-models.json research file")
    parser.add_argument("--out", type=Path, default=SNAPSHOT)
    args = parser.parse_args(argv)
    snapshot = build(json.loads(args.reference.read_text(encoding="utf-8")))
    args.out.write_text(json.dumps(snapshot, indent=1, ensure_ascii=False) + "\n", "utf-8")
    print(
        f"{len(snapshot['endpoints'])} endpoints, {len(snapshot['names'])} names -> {args.out.name}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
