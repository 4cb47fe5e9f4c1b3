"""fal's wire shapes that more than one part of the emulator answers with.

JSON responses, pydantic-style validation errors, fal's random ids, the object
lifecycle headers and the app part of an endpoint id look the same whether storage, the
queue or the Platform API uses them, so they are written here once.
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

__all__ = [
    "platform_error",
    "instant",
    "app_of",
    "invalid_json",
    "json_response",
    "lifecycle_seconds",
    "rand_id",
    "validation_error",
]

_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"
_UNLINKED_ERROR_TYPES = ("value_error.missing", "type_error.str", "type_error.dict")
APP_NAMESPACES = ("workflows", "comfy")


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(body).encode(),
        content_type="application/json",
        headers=headers,
    )


def validation_error(
    loc: list[str], msg: str, type_: str, value: Any = None, **extra: Any
) -> dict[str, Any]:
    """One entry of a 422 ``detail`` list, as fal's pydantic models write it."""
    d: dict[str, Any] = {"loc": loc, "msg": msg, "type": type_}
    if type_ not in _UNLINKED_ERROR_TYPES:
        d["url"] = f"https://docs.fal.ai/errors#{type_}"
        d["ctx"] = {}
        d["input"] = value
    d.update(extra)
    return d


def invalid_json(msg: str = "Invalid JSON body", type_: str = "value_error.jsondecode"):
    """422 for a request body that is not the JSON the route wants."""
    return json_response(422, {"detail": [validation_error(["body"], msg, type_)]})


def rand_id(n: int = 21) -> str:
    """An id shaped like fal's file ids."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(n))


def lifecycle_seconds(request: web.Request, *headers: str) -> float | None:
    """``expiration_duration_seconds`` from the first of ``headers`` that holds a valid
    ``{"expiration_duration_seconds": N}`` (fal's object lifecycle headers); else None."""
    for h in headers:
        raw = request.headers.get(h)
        if not raw:
            continue
        try:
            secs = json.loads(raw).get("expiration_duration_seconds")
            if secs is not None and float(secs) > 0:
                return float(secs)
        except (ValueError, TypeError, AttributeError):
            continue
    return None


def app_of(endpoint: str) -> str:
    """The ``owner/alias`` (or ``workflows/owner/alias``) part that request URLs use."""
    parts = endpoint.split("/")
    if parts[0] in APP_NAMESPACES and len(parts) >= 3:
        return "/".join(parts[:3])
    return "/".join(parts[:2])


def platform_error(status: int, kind: str, message: str) -> web.Response:
    """An error as fal's Platform API answers one: ``{"error": {"type", "message"}}``."""
    return json_response(status, {"error": {"type": kind, "message": message}})


def instant(text: str | None, default: datetime) -> datetime:
    """A Platform API time parameter (ISO 8601, ``Z`` or an offset, naive = UTC)."""
    if not text:
        return default
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)
