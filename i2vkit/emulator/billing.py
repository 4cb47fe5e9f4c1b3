"""fal's bill (Platform API, admin keys only): per-request billing events, usage per
endpoint, and the account's credit balance.

* ``GET /v1/models/billing-events``: one event per request fal charged (a job that
  completed successfully; failures and cancelled requests are not charged), filtered by
  ``request_id``/``endpoint_id`` and the ``start``/``end`` window;
* ``GET /v1/models/usage``: the same charges summed per endpoint and unit price
  (``expand=summary`` and/or ``time_series``); buckets of ``timeframe`` (picked from
  the range's length when omitted, as fal does), the window widened to whole buckets
  unless ``bound_to_timeframe=false``, UTC only, the time series paged by
  ``limit``/``cursor`` (the summary, of the whole range, on the first page);
* ``GET /v1/account/billing?expand=credits``: the balance, the ``balance`` knob minus
  what the emulator has charged so far.

A request is charged with the emulator's prices: the units the catalogue's price rule
counts for its arguments (a video, its seconds...) times the endpoint's unit price (a
``/_emulator/prices`` override, else the catalogue's), unless the ``billed_prices`` knob
bills the endpoint at another unit price: fal's bill disagreeing with its price list.
The ``records_lag`` knob holds back the billing records of the last requests charged
on an endpoint (fal's "request metrics lag"); usage and the balance count them.
Every route answers 403 ``Access denied`` unless the ``admin`` knob makes the key an
admin key, as fal does for a key created without ADMIN scope.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..catalogue import pricing
from ..catalogue.core import defaults
from .routes import Route
from .wire import instant, json_response, platform_error

if TYPE_CHECKING:
    from .auth import Auth
    from .jobs import Job
    from .queue import JobQueue
    from .runtime import Runtime

__all__ = ["billing_routes"]

MAX_LIMIT = 10000
USAGE_PAGE = 50  # time-series buckets per page of /models/usage
TIMEFRAMES = ("minute", "hour", "day", "week", "month")


@dataclass(frozen=True)
class Charge:
    job: Job
    when: datetime
    units: float
    unit_price: float
    unit: str

    @property
    def cost(self) -> float:
        return round(self.units * self.unit_price, 6)


def _values(request: web.Request, name: str) -> list[str]:
    return [v for raw in request.query.getall(name, []) for v in raw.split(",") if v]


class Billing:
    """What the emulator charged, read from its queue."""

    def __init__(self, rt: Runtime, queue: JobQueue, auth: Auth) -> None:
        self.rt, self.queue, self.auth = rt, queue, auth

    def charge(self, job: Job) -> Charge | None:
        """The charge of one request, or None: not charged (not done, failed, no price)."""
        if job.state != "COMPLETED" or job.result_status != 200 or job.finished_at is None:
            return None
        entry = self.queue.platform.entry(job.endpoint)
        rule = entry.get("price") if entry else None
        if not entry or not rule:
            return None
        args = {**defaults(entry), **job.payload}
        catalogue_rate = pricing.base_rate(rule, args)
        total = pricing.estimate(rule, args)
        if not catalogue_rate or total is None:
            return None
        listed = self.queue.platform.prices.get(job.endpoint, catalogue_rate)
        billed = self.rt.knobs["billed_prices"].get(job.endpoint, listed)
        units = round(total / catalogue_rate, 6)
        unit = {"second": "video_second", "token": "tokens"}.get(rule.get("unit", ""), "video")
        when = datetime.fromtimestamp(self.rt.clock.to_wall(job.finished_at), UTC)
        return Charge(job, when, units, float(billed), unit)

    def charges(self) -> list[Charge]:
        return [c for job in list(self.queue.jobs.values()) if (c := self.charge(job))]

    def refused(self, request: web.Request) -> web.Response | None:
        if err := self.auth.key_error(request):
            return err
        if not self.rt.knobs["admin"]:
            return platform_error(403, "authorization_error", "Access denied")
        return None

    def window(self, request: web.Request) -> tuple[datetime, datetime]:
        now = datetime.fromtimestamp(self.rt.clock.wall_now(), UTC)
        q = request.query
        return instant(q.get("start"), now - timedelta(days=1)), instant(q.get("end"), now)

    async def events(self, request: web.Request) -> web.Response:
        if err := self.refused(request):
            return err
        try:
            start, end = self.window(request)
            limit = int(request.query.get("limit", "100"))
            cursor = request.query.get("cursor")
            offset = int(base64.b64decode(cursor).decode()) if cursor else 0
        except (ValueError, TypeError) as exc:
            return platform_error(400, "validation_error", f"bad query: {exc}")
        ids, endpoints = _values(request, "request_id"), _values(request, "endpoint_id")
        if len(ids) > 50 or len(endpoints) > 50 or not 1 <= limit <= MAX_LIMIT:
            return platform_error(400, "validation_error", "at most 50 ids; limit within 1..10000")
        found = [
            c
            for c in self.recorded()
            if (not ids or c.job.id in ids)
            and (not endpoints or c.job.endpoint in endpoints)
            and start <= c.when < end
        ]
        page = found[offset : offset + limit]
        more = offset + limit < len(found)
        return json_response(
            200,
            {
                "billing_events": [_event(c) for c in page],
                "next_cursor": base64.b64encode(str(offset + limit).encode()).decode()
                if more
                else None,
                "has_more": more,
            },
        )

    def recorded(self) -> list[Charge]:
        """The charges that have a billing record: all but the ``records_lag`` knob's last
        N per endpoint (fal's records lag; usage counts those already)."""
        charges = self.charges()
        lag = self.rt.knobs["records_lag"]
        held: set[str] = set()
        for endpoint, n in lag.items():
            mine = sorted((c for c in charges if c.job.endpoint == endpoint), key=_when)
            held.update(c.job.id for c in (mine[-n:] if n else []))
        return [c for c in charges if c.job.id not in held]

    async def usage(self, request: web.Request) -> web.Response:
        if err := self.refused(request):
            return err
        q = request.query
        try:
            start, end = self.window(request)
            timeframe = q.get("timeframe") or _auto_timeframe(end - start)
            bound = q.get("bound_to_timeframe", "true")
            limit = int(q.get("limit", str(USAGE_PAGE)))
            cursor = q.get("cursor")
            offset = int(base64.b64decode(cursor).decode()) if cursor else 0
        except (ValueError, TypeError) as exc:
            return platform_error(400, "validation_error", f"bad query: {exc}")
        expand = _values(request, "expand") or ["time_series"]
        if (
            timeframe not in TIMEFRAMES
            or bound not in ("true", "false")
            or q.get("timezone", "UTC") != "UTC"
            or not {"time_series", "summary"} & set(expand)
            or limit < 1
        ):
            return platform_error(
                400,
                "validation_error",
                f"timeframe one of {TIMEFRAMES}, bound_to_timeframe 'true' or 'false', "
                "timezone UTC (the emulator's only one), expand time_series and/or summary",
            )
        if bound == "true":  # fal's default: the window grows to whole buckets
            start = _bucket(start, timeframe)
            if _bucket(end, timeframe) != end:
                end = _next_bucket(_bucket(end, timeframe), timeframe)
        endpoints = _values(request, "endpoint_id")
        found = [
            c
            for c in self.charges()
            if (not endpoints or c.job.endpoint in endpoints) and start <= c.when < end
        ]
        buckets = sorted({_bucket(c.when, timeframe) for c in found})
        page = buckets[offset : offset + limit]
        more = offset + limit < len(buckets)
        body: dict[str, Any] = {
            "next_cursor": base64.b64encode(str(offset + limit).encode()).decode()
            if more
            else None,
            "has_more": more,
        }
        if "summary" in expand and not offset:  # the whole range, on the first page
            body["summary"] = _line_items(found)
        if "time_series" in expand:
            body["time_series"] = [
                {
                    "bucket": b.isoformat(),
                    "results": _line_items([c for c in found if _bucket(c.when, timeframe) == b]),
                }
                for b in page
            ]
        return json_response(200, body)

    async def account(self, request: web.Request) -> web.Response:
        if err := self.refused(request):
            return err
        body: dict[str, Any] = {"username": "emulator"}
        if "credits" in _values(request, "expand"):
            spent = sum(c.cost for c in self.charges())
            balance = max(0.0, round(float(self.rt.knobs["balance"]) - spent, 6))
            body["credits"] = {"current_balance": balance, "currency": "USD"}
        return json_response(200, body)


def _when(c: Charge) -> datetime:
    return c.when


def _auto_timeframe(span: timedelta) -> str:
    """fal's pick when ``timeframe`` is omitted (by the length of the range)."""
    for limit, name in ((timedelta(hours=2), "minute"), (timedelta(days=2), "hour"),
                        (timedelta(days=64), "day"), (timedelta(days=183), "week")):  # fmt: skip
        if span < limit:
            return name
    return "month"


def _bucket(when: datetime, timeframe: str) -> datetime:
    """The start of the UTC bucket `when` falls in."""
    when = when.astimezone(UTC)
    if timeframe == "minute":
        return when.replace(second=0, microsecond=0)
    if timeframe == "hour":
        return when.replace(minute=0, second=0, microsecond=0)
    day = when.replace(hour=0, minute=0, second=0, microsecond=0)
    if timeframe == "week":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1) if timeframe == "month" else day


def _next_bucket(start: datetime, timeframe: str) -> datetime:
    if timeframe == "month":
        return start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
    step = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1),
            "day": timedelta(days=1), "week": timedelta(weeks=1)}[timeframe]  # fmt: skip
    return start + step


def _event(c: Charge) -> dict[str, Any]:
    return {
        "request_id": c.job.id,
        "endpoint_id": c.job.endpoint,
        "timestamp": c.when.isoformat().replace("+00:00", "Z"),
        "output_units": c.units,
        "unit_price": c.unit_price,
        "percent_discount": None,
        "cost_subtotal": c.cost,
        "cost_discount": 0,
        "cost_total": c.cost,
        "cost_estimate_nano_usd": round(c.cost * 1e9),
    }


def _line_items(charges: list[Charge]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, float, str], list[Charge]] = {}
    for c in charges:
        groups.setdefault((c.job.endpoint, c.unit_price, c.unit), []).append(c)
    items = []
    for (endpoint, price, unit), group in groups.items():
        quantity = round(sum(c.units for c in group), 6)
        cost = round(sum(c.cost for c in group), 6)
        items.append(
            {
                "endpoint_id": endpoint,
                "unit": unit,
                "quantity": quantity,
                "unit_price": price,
                "percent_discount": None,
                "cost_subtotal": cost,
                "cost_discount": 0,
                "cost_total": cost,
                "cost": cost,
                "currency": "USD",
            }
        )
    return items


def billing_routes(rt: Runtime, queue: JobQueue, auth: Auth) -> list[Route]:
    """The three admin routes over ``queue`` (counted: fal traffic)."""
    billing = Billing(rt, queue, auth)
    return [
        Route("GET", "/v1/models/billing-events", billing.events),
        Route("GET", "/v1/models/usage", billing.usage),
        Route("GET", "/v1/account/billing", billing.account),
    ]
