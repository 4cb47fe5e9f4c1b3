"""The catalogue as text: the ``i2vkit models`` table (fits 100 columns) and one model's
options (``i2vkit models NAME``), straight from the schema."""

from __future__ import annotations

import json
import textwrap
from typing import TYPE_CHECKING

from .. import money
from . import pricing, schema
from .core import ACTIVE, SHUT_DOWN, Catalogue, defaults

if TYPE_CHECKING:
    from ..models import ModelSpec

WIDTH = 100
STATUS_TEXT = {ACTIVE: "active", "deprecated": "deprecated", SHUT_DOWN: "shut down"}
LEGEND = (
    "price: one clip at the model's defaults (length in brackets); ~ = unverified "
    "(inferred or third-party figure); unknown = i2vkit asks before spending. "
    "`i2vkit models NAME` shows a model's options."
)


def clip_price(entry: dict) -> str:
    """``US$ 0.63 (5s)``, ``US$ 0.40~`` or ``unknown`` for one clip at the defaults."""
    rule = entry.get("price") or {}
    args = defaults(entry)
    usd = pricing.estimate(rule, args)
    if usd is None:
        return "unknown"
    secs = pricing.seconds(rule, args)
    length = f" ({secs:.3g}s)" if secs and rule.get("unit") != "video" else ""
    mark = "~" if rule.get("verified") == "unverified" else ""
    return f"{money.usd(usd)}{length}{mark}"


def models_table(cat: Catalogue) -> str:
    """Every endpoint: name, family, version, status, clip price, end image, audio."""
    head = (
        f"{'NAME':<24} {'FAMILY':<12} {'VERSION':<19} {'STATUS':<10} {'PRICE/CLIP':<18} END AUDIO"
    )
    lines = [head]
    for e in cat.entries:
        status = STATUS_TEXT.get(e["status"], e["status"])
        end = "yes" if e.get("end_image_field") else "-"
        audio = "yes" if e.get("audio_field") else "-"
        lines.append(
            f"{e['name'][:24]:<24} {e['family'][:12]:<12} {str(e['version'])[:19]:<19} "
            f"{status:<10} {clip_price(e):<18} {end:<3} {audio}"
        )
    fams = ", ".join(f"{f} = {cat.name_of(eid)}" for f, eid in sorted(cat.families.items()))
    lines.append("")
    lines += textwrap.wrap(f"Family names: {fams}.", WIDTH)
    lines += textwrap.wrap(f"Catalogue: {cat.origin}. {LEGEND}", WIDTH)
    return "\n".join(lines)


def model_detail(spec: ModelSpec, cat: Catalogue) -> str:
    """One model: endpoint, status, image fields, price rule, and every option."""
    e = spec.entry
    status = STATUS_TEXT.get(spec.status, spec.status)
    if spec.replacement:
        status += f" (use {cat.name_of(spec.replacement)} instead)"
    lines = [
        f"{spec.name}: {spec.title}",
        f"  endpoint:  {spec.endpoint_id}",
        f"  status:    {status}",
        f"  image:     {spec.image_field} (filled from each image)",
        f"  end image: {spec.end_image_field or 'not supported'}"
        + (" (--end-image PATH or -o end_image_url=PATH)" if spec.end_image_field else ""),
        f"  audio:     {spec.audio_field or 'no audio option'}",
    ]
    price = pricing.describe(spec.price_rule)
    lines += textwrap.wrap(
        f"price: {price}; one clip at the defaults: {clip_price(dict(e))}",
        WIDTH,
        initial_indent="  ",
        subsequent_indent="         ",
    )
    lines.append(f"  read:      {e.get('read_on', '?')} ({cat.origin})")
    lines.append("")
    lines.append(f"  {'OPTION':<26} {'TYPE':<8} {'DEFAULT':<14} ALLOWED")
    props = spec.input_schema["properties"] if spec.input_schema else {}
    required = set(spec.input_schema["required"]) if spec.input_schema else set()
    for name, prop in props.items():
        if name in (spec.prompt_field, spec.image_field):
            continue
        default = json.dumps(prop["default"]) if "default" in prop else "-"
        kind = prop.get("type", "string") + ("*" if name in required else "")
        allowed = schema.describe(prop)
        row = f"  {name[:26]:<26} {kind:<8} {str(default)[:14]:<14} "
        wrapped = textwrap.wrap(allowed, WIDTH - len(row)) or [""]
        lines.append(row + wrapped[0])
        lines += [" " * len(row) + w for w in wrapped[1:]]
    lines.append("  * = required. Give options as -o NAME=VALUE.")
    return "\n".join(lines)
