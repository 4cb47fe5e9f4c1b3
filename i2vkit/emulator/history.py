"""fal's request history (Platform API): ``GET /v1/models/requests/by-endpoint``.

fal keeps every request's input and output (payloads) for 30 days and lists them by
endpoint; a client uses it to find a request whose answer it never got, and the output
of a request whose queue result has expired. The emulator serves it from its queue:
every submitted job is listed with its exact input from the moment it is queued.

Choices where fal's behaviour is not documented:

* the time window (``start``/``end``, ISO 8601; default the last 24 h) applies to when
  the request was sent; a ``request_id`` lookup ignores it (fal widens it to 90 days);
* requests still in the queue or running are listed with ``ended_at`` and
  ``status_code`` null (whether fal lists them before they end is not documented);
* ``json_output`` is the result body (also an error's), absent until the request ends;
* the ``history_restricted`` knob answers 403 as fal does for a normal key on an account
  with "restricted request view".
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .routes import Route
from .wire import instant, json_response, platform_error

if TYPE_CHECKING:
    from .auth import Auth
    from .queue import JobQueue
    from .runtime import Runtime

__all__ = ["PATH", "history_routes"]

PATH = "/v1/models/requests/by-endpoint"
MAX_LIMIT = 100


def _iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")


def history_routes(rt: Runtime, queue: JobQueue, auth: Auth) -> list[Route]:
    """The request-history route over ``queue`` (a counted route: fal traffic)."""

    def item(job: Any, payloads: bool) -> dict[str, Any]:
        sent = rt.clock.to_wall(job.submitted_at)
        ended = rt.clock.to_wall(job.finished_at)
        started = rt.clock.to_wall(job.started_at)
        row: dict[str, Any] = {
            "request_id": job.id,
            "endpoint_id": job.endpoint,
            "sent_at": _iso(sent),
            "started_at": _iso(started if started is not None else sent),
            "ended_at": _iso(ended),
            "status_code": job.result_status if job.state == "COMPLETED" else None,
            "duration": None if ended is None or started is None else round(ended - started, 3),
        }
        if payloads:
            row["json_input"] = job.payload
            if job.state == "COMPLETED":
                row["json_output"] = job.result_body
        return row

    async def by_endpoint(request: web.Request) -> web.Response:
        if err := auth.key_error(request):
            return err
        rt.stats.history_requests += 1
        if rt.knobs["history_restricted"]:
            return platform_error(403, "authorization_error", "Access denied")
        q = request.query
        endpoints = [e for v in q.getall("endpoint_id", []) for e in v.split(",") if e]
        if not endpoints:
            return platform_error(400, "validation_error", "endpoint_id is required")
        try:
            now = datetime.fromtimestamp(rt.clock.wall_now(), UTC)
            start = instant(q.get("start"), now - timedelta(days=1))
            end = instant(q.get("end"), now)
            limit = int(q.get("limit", "50"))
            offset = int(base64.b64decode(q["cursor"]).decode()) if q.get("cursor") else 0
        except (ValueError, TypeError) as exc:
            return platform_error(400, "validation_error", f"bad query: {exc}")
        if not 1 <= limit <= MAX_LIMIT:
            return platform_error(400, "validation_error", f"limit must be within 1..{MAX_LIMIT}")
        payloads = "payloads" in [e for v in q.getall("expand", []) for e in v.split(",")]
        wanted = q.get("request_id")
        rows = []
        for job in queue.jobs.values():
            if job.endpoint not in endpoints or (wanted and job.id != wanted):
                continue
            sent = datetime.fromtimestamp(rt.clock.to_wall(job.submitted_at), UTC)
            if not wanted and not start <= sent < end:
                continue
            rows.append(job)
        page = rows[offset : offset + limit]
        more = offset + limit < len(rows)
        cursor = base64.b64encode(str(offset + limit).encode()).decode() if more else None
        body = {
            "items": [item(job, payloads) for job in page],
            "next_cursor": cursor,
            "has_more": more,
        }
        return json_response(200, body)

    return [Route("GET", PATH, by_endpoint)]
