"""Catalogue entries to and from fal's Platform API answers.

fal's ``GET /v1/models?expand=openapi-3.0`` gives, per endpoint, metadata (display name,
status) and an OpenAPI 3.0 document whose ``<Name>Input`` schema is the endpoint's input;
``GET /v1/models/pricing`` gives one unit price. :func:`merge` folds both into a
catalogue entry (:func:`new_entry` makes one for an endpoint the catalogue lacks) (keeping the price rule's shape, see :func:`.pricing.rescaled`);
:func:`model_answer` and :func:`price_answer` are the reverse, which the emulator serves.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Container, Iterable, Mapping
from typing import Any

from . import pricing
from .core import ACTIVE, DEPRECATED, SHUT_DOWN, defaults

_KEYS = {
    "enum": "enum",
    "default": "default",
    "minimum": "minimum",
    "maximum": "maximum",
    "maxLength": "maxLength",
    "minLength": "minLength",
    "description": "description",
}
IMAGE_FIELDS = ("image_url", "start_image_url", "first_frame_url")
END_IMAGE_FIELDS = ("end_image_url", "tail_image_url", "last_frame_url")
UNITS = {
    "video": "video",
    "second": "video_second",
    "token": "1m_tokens",
    "megapixel": "megapixel",
}


def _schema_name(endpoint_id: str) -> str:
    return "".join(p.capitalize() for p in re.split(r"[^A-Za-z0-9]+", endpoint_id) if p)


def model_answer(entry: Mapping[str, Any], *, with_openapi: bool) -> dict[str, Any]:
    """One ``models[]`` item of ``GET /v1/models`` for a catalogue entry."""
    status = DEPRECATED if entry["status"] != ACTIVE else ACTIVE
    item: dict[str, Any] = {
        "endpoint_id": entry["endpoint_id"],
        "metadata": {
            "display_name": entry["display_name"],
            "category": "image-to-video",
            "description": entry["display_name"],
            "status": status,
            "tags": [],
            "updated_at": f"{entry['read_on']}T00:00:00Z",
            "is_favorited": None,
            "thumbnail_url": "",
            "model_url": f"https://fal.run/{entry['endpoint_id']}",
            "date": f"{entry['read_on']}T00:00:00Z",
            "highlighted": False,
            "pinned": False,
            "kind": "inference",
        },
    }
    if with_openapi:
        item["openapi"] = openapi_document(entry)
    return item


def openapi_document(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The endpoint's queue OpenAPI document, as fal's expansion shapes it."""
    name = _schema_name(entry["endpoint_id"])
    props = {}
    for field, prop in entry["input"]["properties"].items():
        out = {"type": "string" if prop["type"] == "file" else prop["type"]}
        out.update({k: prop[k] for k in _KEYS if k in prop})
        props[field] = out
    eid = entry["endpoint_id"]
    return {
        "openapi": "3.0.4",
        "info": {"title": entry["display_name"], "x-fal-metadata": {"endpointId": eid}},
        "servers": [{"url": "https://queue.fal.run"}],
        "paths": {
            f"/{eid}": {
                "post": {
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": f"#/components/schemas/{name}Input"}
                            }
                        },
                    }
                }
            }
        },
        "components": {
            "schemas": {
                f"{name}Input": {
                    "type": "object",
                    "properties": props,
                    "required": list(entry["input"]["required"]),
                    "x-fal-order-properties": list(props),
                },
                f"{name}Output": {
                    "type": "object",
                    "properties": {"video": {"$ref": "#/components/schemas/File"}},
                    "required": ["video"],
                },
                "File": {"type": "object", "properties": {"url": {"type": "string"}}},
            }
        },
    }


def price_answer(entry: Mapping[str, Any]) -> dict[str, Any] | None:
    """One ``prices[]`` item of ``GET /v1/models/pricing``, or None for an unknown price."""
    rule = entry.get("price")
    usd = pricing.base_rate(rule, defaults(entry))
    if not rule or usd is None:
        return None
    return {
        "endpoint_id": entry["endpoint_id"],
        "unit_price": usd,
        "unit": UNITS.get(rule.get("unit", "video"), "video"),
        "currency": "USD",
    }


def input_schema(document: Mapping[str, Any]) -> dict[str, Any] | None:
    """``properties``/``required`` of the POST body in an OpenAPI document, or None."""
    if not isinstance(document, Mapping) or "paths" not in document:
        return None
    schemas = document.get("components", {}).get("schemas", {})
    for path in document["paths"].values():
        body = path.get("post", {}).get("requestBody", {})
        ref = body.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref")
        if ref:
            raw = schemas.get(ref.rsplit("/", 1)[-1])
            if raw:
                return _convert(raw, schemas)
    return None


def _convert(raw: Mapping[str, Any], schemas: Mapping[str, Any]) -> dict[str, Any]:
    props = {}
    for field, prop in raw.get("properties", {}).items():
        options = prop.get("anyOf") or prop.get("allOf") or [prop]
        chosen = next((p for p in options if p.get("type") not in (None, "null")), options[0])
        if "$ref" in chosen:
            chosen = {**schemas.get(chosen["$ref"].rsplit("/", 1)[-1], {}), **chosen}
        kind = chosen.get("type", "object" if "properties" in chosen else "string")
        if kind == "string" and re.search(r"_urls?$", field):
            kind = "file"
        out = {"type": kind}
        for src in (prop, chosen):
            out.update({k: src[k] for k in _KEYS if k in src})
        props[field] = out
    return {"properties": props, "required": list(raw.get("required", []))}


def merge(
    entry: Mapping[str, Any],
    model: Mapping[str, Any] | None,
    price: Mapping[str, Any] | None,
    read_at: str,
) -> dict[str, Any]:
    """``entry`` updated with what fal answered; ``model`` None means fal no longer lists it."""
    new = copy.deepcopy(dict(entry))
    if model is None:
        if new["status"] != SHUT_DOWN:
            new["status"] = DEPRECATED
            new.setdefault("status_evidence", []).append(f"not in fal's model list on {read_at}")
        return new
    meta = model.get("metadata") or {}
    if meta.get("status") in (ACTIVE, DEPRECATED) and new["status"] != SHUT_DOWN:
        new["status"] = meta["status"]
    if meta.get("display_name"):
        new["display_name"] = meta["display_name"]
    schema = input_schema(model.get("openapi") or {})
    if schema and schema["properties"]:
        new["input"] = schema
        fields = schema["properties"]
        if new["image_field"] not in fields:
            new["image_field"] = next((f for f in IMAGE_FIELDS if f in fields), "image_url")
        if new.get("end_image_field") not in fields:
            new["end_image_field"] = next((f for f in END_IMAGE_FIELDS if f in fields), None)
    new["read_on"] = read_at[:10]
    if price and isinstance(price.get("unit_price"), int | float):
        rule = new.get("price") or {}
        if rule.get("rates"):
            new["price"] = pricing.rescaled(rule, float(price["unit_price"]), defaults(new))
        else:
            unit = str(price.get("unit", ""))
            kind = "second" if "second" in unit else "video" if unit == "video" else None
            if kind:
                new["price"] = {
                    **rule,
                    "unit": kind,
                    "rates": [{"when": {}, "usd": float(price["unit_price"])}],
                }
        if new.get("price", {}).get("rates"):
            new["price"]["verified"] = "verified"
            new["price"]["live"] = read_at[:10]
    return new


_PREFIXES = ("fal-ai/",)
_SUFFIXES = ("/image-to-video",)


def _short_name(endpoint_id: str) -> str:
    """``fal-ai/newco/v1/image-to-video`` -> ``newco-v1``."""
    name = endpoint_id
    for prefix in _PREFIXES:
        name = name.removeprefix(prefix)
    for suffix in _SUFFIXES:
        name = name.removesuffix(suffix)
    return re.sub(r"[^a-z0-9.]+", "-", name.lower()).strip("-")


def new_entry(
    model: Mapping[str, Any],
    price: Mapping[str, Any] | None,
    read_at: str,
    families: Iterable[str],
    taken: Container[str],
) -> dict[str, Any] | None:
    """A catalogue entry for an endpoint fal lists that the catalogue does not have yet.

    Why: fal publishes new image-to-video models every few weeks; a refresh should offer
    them with their real schema (checked before any upload like every other) instead of
    waiting for a new release. None when fal's answer has no input schema with an image
    field (nothing i2vkit could send). The price is fal's unit price when it returned
    one, else unknown (the plan then asks before spending). The family is a known one
    when the id starts with it (``fal-ai/kling-video/v4/...`` is kling), else the id's
    first part; the name is the id without ``fal-ai/`` and ``/image-to-video`` (the
    endpoint id itself when that name is taken).
    """
    schema = input_schema(model.get("openapi") or {})
    fields = (schema or {}).get("properties") or {}
    image = next((f for f in IMAGE_FIELDS if f in fields), None)
    eid = model.get("endpoint_id")
    if image is None or not isinstance(eid, str):
        return None
    short = _short_name(eid)
    head = short.split("-", 1)[0] if short else eid
    first = eid.removeprefix("fal-ai/").split("/", 1)[0].lower()
    family = next((f for f in families if first == f or first.startswith(f + "-")), head)
    meta = model.get("metadata") or {}
    entry = {
        "endpoint_id": eid,
        "name": short if short and short not in taken else eid,
        "family": family,
        "version": short.removeprefix(f"{family}-") if short else "",
        "tier": None,
        "display_name": meta.get("display_name") or eid,
        "status": ACTIVE,
        "replacement": None,
        "status_evidence": [f"listed by fal's Platform API on {read_at[:10]}"],
        "image_field": image,
        "end_image_field": None,
        "audio_field": next(
            (f for f in ("generate_audio", "generate_audio_switch") if f in fields), None
        ),
        "audio": None,
        "input": schema,
        "video_path": ["video", "url"],
        "price": {"unit": "video", "verified": "unknown", "rates": []},
        "sources": [f"fal Platform API GET /v1/models?category=image-to-video ({read_at[:10]})"],
        "read_on": read_at[:10],
    }
    return merge(entry, model, price, read_at)
