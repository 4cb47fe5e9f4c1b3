"""The catalogue as text: the ``i2vkit models`` table (fits 100 columns) and one model's
options (``i2vkit models NAME``; a family name also says why it means that version),
straight from the schema."""

from __future__ import annotations

import json
import textwrap
from typing import TYPE_CHECKING, Any

from .. import money
from . import pricing, schema
from .core import ACTIVE, SHUT_DOWN, Catalogue, defaults
from .families import RULE, needs

if TYPE_CHECKING:
    from ..models import ModelSpec

WIDTH = 100
DEFAULT_WIDTH = 22  # a default longer than this is cut with "..." (quotes kept closed)
STATUS_TEXT = {ACTIVE: "active", "deprecated": "deprecated", SHUT_DOWN: "shut down"}
LEGEND = (
    "price: one clip at the model's defaults (length in brackets); ~ = approximate: an "
    "unverified (inferred or third-party) figure, or a length or frame size assumed where "
    "fal's default is `auto` or absent (`i2vkit models NAME` says which); unknown = i2vkit "
    "asks before spending. NEEDS: an input a folder batch cannot give (-o FIELD=URL gives "
    "it, the same for every job). `i2vkit models NAME` shows a model's options."
)
NEED_WORDS = {"an audio track": "audio", "a video": "video", "LoRA weights": "lora"}


def clip_price(entry: dict) -> str:
    """``US$ 0.63 (5s)``, ``US$ 0.97 (4s~)``, ``US$ 0.40~`` or ``unknown`` for one clip at
    the defaults; ``~`` after the length marks a length assumed, at the end a figure."""
    rule = entry.get("price") or {}
    args = defaults(entry)
    usd = pricing.estimate(rule, args)
    if usd is None:
        return "unknown"
    secs = pricing.seconds(rule, args)
    assumed = "~" if pricing.assumption(rule, args) else ""
    length = f" ({secs:.3g}s{assumed})" if secs and rule.get("unit") != "video" else ""
    if assumed and not length:
        length = " ~"
    mark = "~" if rule.get("verified") == "unverified" else ""
    return f"{money.usd(usd)}{length}{mark}"


def _needs_cell(entry: dict) -> str:
    return ",".join(NEED_WORDS.get(w, "file") for w in needs(entry).values()) or "-"


def models_table(cat: Catalogue) -> str:
    """Every endpoint fal runs: name, family, status, clip price, end image, audio, needs."""
    listed = cat.listed
    wide = max((len(e["name"]) for e in listed), default=4)
    head = f"{'NAME':<{wide}} {'FAMILY':<14} {'STATUS':<10} {'PRICE/CLIP':<18} END AUDIO NEEDS"
    lines = [head]
    for e in listed:
        status = STATUS_TEXT.get(e["status"], e["status"])
        end = "yes" if e.get("end_image_field") else "-"
        audio = "yes" if e.get("audio_field") else "-"
        lines.append(
            f"{e['name']:<{wide}} {e['family'][:14]:<14} {status:<10} {clip_price(e):<18} "
            f"{end:<3} {audio:<5} {_needs_cell(e)}"
        )
    fams = ", ".join(f"{f} = {cat.name_of(eid)}" for f, eid in sorted(cat.families.items()))
    lines.append("")
    lines += textwrap.wrap(f"Family names: {fams} (`i2vkit models FAMILY` says why).", WIDTH)
    lines += textwrap.wrap(f"Catalogue: {cat.dates()}. {LEGEND}", WIDTH)
    return "\n".join(lines)


def shown_default(value: Any, width: int = DEFAULT_WIDTH) -> str:
    """A default as JSON, whole, or cut with ``...`` inside a closed quote: a cut text
    must not read as the value (``"blur, distort text`` is not what fal uses)."""
    text = json.dumps(value, ensure_ascii=False)
    if len(text) <= width:
        return text
    if isinstance(value, str):
        return text[: width - 4] + '..."'
    return text[: width - 3] + "..."


def family_header(family: str, spec: ModelSpec, cat: Catalogue) -> list[str]:
    """Why a family name means this endpoint, and the family's other endpoints."""
    lines = textwrap.wrap(
        f"{family} = {spec.entry.get('name', spec.endpoint_id)} ({spec.endpoint_id}): {RULE}.",
        WIDTH,
    )
    others = [
        e for e in cat.listed if e["family"] == spec.family and e["endpoint_id"] != spec.endpoint_id
    ]
    if others:
        lines.append(f"Other {spec.family} endpoints (use the name with --model):")
        for e in others:
            status = STATUS_TEXT.get(e["status"], e["status"])
            note = f"{status}, {clip_price(e)}"
            if needs(e):
                note += ", needs " + " and ".join(needs(e).values())
            lines.append(f"  {e['name']:<34} {note}")
    lines.append("")
    return lines


def model_detail(spec: ModelSpec, cat: Catalogue) -> str:
    """One model: endpoint, status, image fields, price rule, and every option (a family
    name first says why it means this endpoint and lists the family's others)."""
    e = spec.entry
    status = STATUS_TEXT.get(spec.status, spec.status)
    if spec.replacement:
        status += f" (use {cat.name_of(spec.replacement)} instead)"
    lines = family_header(spec.name, spec, cat) if spec.name in cat.families else []
    lines += [
        f"{spec.name}: {spec.title}",
        f"  endpoint:  {spec.endpoint_id}",
        f"  status:    {status}",
        f"  image:     {spec.image_field} (filled from each image)",
        f"  end image: {spec.end_image_field or 'not supported'}"
        + (" (--end-image PATH or -o end_image_url=PATH)" if spec.end_image_field else ""),
        f"  audio:     {spec.audio_field or 'no audio option'}",
    ]
    for field, what in needs(e).items():
        lines.append(
            f"  needs:     {what} ({field}), which a folder batch cannot give: -o {field}=URL"
        )
    price = pricing.describe(spec.price_rule)
    lines += textwrap.wrap(
        f"price: {price}; one clip at the defaults: {clip_price(dict(e))}",
        WIDTH,
        initial_indent="  ",
        subsequent_indent="         ",
    )
    lines += textwrap.wrap(
        f"data:      {cat.dates()}", WIDTH, initial_indent="  ", subsequent_indent="             "
    )
    lines.append("")
    lines += _options(spec)
    return "\n".join(lines)


def _options(spec: ModelSpec) -> list[str]:
    """The option table; the star's legend only when a field is starred."""
    lines = [f"  {'OPTION':<26} {'TYPE':<8} {'DEFAULT':<{DEFAULT_WIDTH}} ALLOWED"]
    props = spec.input_schema["properties"] if spec.input_schema else {}
    required = set(spec.input_schema["required"]) if spec.input_schema else set()
    starred = False
    for name, prop in props.items():
        if name in (spec.prompt_field, spec.image_field):
            continue
        default = shown_default(prop["default"]) if "default" in prop else "-"
        star = name in required and "default" not in prop
        starred = starred or star
        kind = prop.get("type", "string") + ("*" if star else "")
        allowed = schema.describe(prop, name)
        if name == spec.end_image_field:
            allowed = "an image's URL or a local file (the end frame; --end-image PATH)"
        row = f"  {name[:26]:<26} {kind:<8} {default:<{DEFAULT_WIDTH}} "
        wrapped = textwrap.wrap(allowed, WIDTH - len(row)) or [""]
        lines.append(row + wrapped[0])
        lines += [" " * len(row) + w for w in wrapped[1:]]
    lines.append(("  * = required. " if starred else "  ") + "Give options as -o NAME=VALUE.")
    return lines
