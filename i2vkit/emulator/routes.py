"""The HTTP surface: the route table, the ingress middleware and the control endpoints.

Every part of the emulator describes its routes as :class:`Route` values (storage, the
queue, the ``/_emulator/*`` control endpoints, and routes a caller adds through the
``plugins`` hook of :class:`~i2vkit.emulator.Emulator`); :func:`build_app` registers them
in one order, specific paths before the queue's catch-all ``/{endpoint}`` routes.

:class:`Ingress` plays fal's front door for every *counted* route: it counts requests and
response statuses, injects the ``fail_next`` nginx errors and the ``rate_limit`` 429s, and
stamps an ``x-fal-request-id``. Control routes (``counted=False``) bypass it, so looking at
the emulator never changes what it measures.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

from .knobs import coerce_knobs, knobs_view
from .runtime import Clock, Runtime
from .wire import json_response, rand_id

__all__ = ["Controlled", "Handler", "Ingress", "Route", "build_app", "control_routes"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_HTTP_REASONS = {
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Temporarily Unavailable",
    504: "Gateway Time-out",
}


@dataclass(frozen=True)
class Route:
    """One route. ``counted=False`` marks a control route: it is not fal traffic, so it is
    not counted in the stats and never gets an injected failure or 429."""

    method: str
    path: str
    handler: Handler
    counted: bool = True


class Controlled(Protocol):
    """What the control endpoints operate: the :class:`~i2vkit.emulator.Emulator`'s
    thread-safe methods (named here so this module does not import the server)."""

    @property
    def knobs(self) -> dict[str, Any]: ...

    @property
    def clock(self) -> Clock: ...

    def stats(self) -> dict[str, Any]: ...

    def apply_knobs(self, coerced: dict[str, Any]) -> dict[str, Any]: ...

    def reset_stats(self) -> None: ...

    def advance_clock(self, seconds: float) -> None: ...


def _ingress_html(status: int) -> str:
    reason = _HTTP_REASONS.get(status, "Error")
    return (
        f"<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
        f"<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n"
        "</body>\r\n</html>\r\n"
    )


class Ingress:
    """fal's front door: counters, injected ingress errors and a token-bucket rate limit."""

    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime
        self._uncounted: set[Handler] = set()
        self._tokens = 0.0
        self._tokens_at = 0.0

    def exempt(self, handler: Handler) -> None:
        self._uncounted.add(handler)

    def started(self) -> None:
        """The loop runs: the (empty) bucket starts filling now."""
        self._tokens_at = self._rt.clock.loop_time()

    def knobs_changed(self, names: Iterable[str]) -> None:
        if {"rate_limit", "rate_burst"} & set(names):
            self._tokens = self._burst()
            if self._rt.clock.loop is not None:
                self._tokens_at = self._rt.clock.loop_time()

    def _burst(self) -> float:
        k = self._rt.knobs
        if k["rate_burst"]:
            return float(k["rate_burst"])
        return max(1.0, float(k["rate_limit"] or 1.0))

    def _take_token(self) -> float:
        """0 if the request may pass, else seconds until a token is available."""
        now = self._rt.clock.loop_time()
        rate = float(self._rt.knobs["rate_limit"])
        self._tokens = min(self._burst(), self._tokens + (now - self._tokens_at) * rate)
        self._tokens_at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / rate

    def _refusal(self) -> web.Response | None:
        """The injected answer to this request, if any: a fail_next error or a 429."""
        k = self._rt.knobs
        stats = self._rt.stats
        if k["fail_next"] > 0:
            k["fail_next"] -= 1
            stats.injected_failures += 1
            status = k["fail_status"]
            return web.Response(status=status, text=_ingress_html(status), content_type="text/html")
        if k["rate_limit"] and (wait := self._take_token()) > 0:
            stats.rate_limited += 1
            return json_response(
                429,
                {"detail": "Rate limit exceeded"},
                {"Retry-After": str(max(1, math.ceil(wait))), "x-fal-request-id": rand_id()},
            )
        return None

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.match_info.handler in self._uncounted:
            return await handler(request)
        stats = self._rt.stats
        stats.requests += 1
        if refusal := self._refusal():
            stats.count_response(refusal.status)
            return refusal
        try:
            resp = await handler(request)
        except web.HTTPException as exc:
            self._rt.stats.count_response(exc.status)
            raise
        self._rt.stats.count_response(resp.status)  # stats may have been reset meanwhile
        if not resp.prepared and "x-fal-request-id" not in resp.headers:
            resp.headers["x-fal-request-id"] = str(uuid.uuid4())
        return resp


def build_app(ingress: Ingress, routes: Iterable[Route]) -> web.Application:
    """An aiohttp app serving ``routes`` in the given order behind ``ingress``."""
    app = web.Application(middlewares=[ingress.middleware], client_max_size=64 * 1024**2)
    for route in routes:
        if route.method == "GET":
            app.router.add_get(route.path, route.handler)  # also answers HEAD
        else:
            app.router.add_route(route.method, route.path, route.handler)
        if not route.counted:
            ingress.exempt(route.handler)
    return app


def control_routes(emu: Controlled) -> list[Route]:
    """``/_emulator/*``: what :class:`~i2vkit.emulator.EmulatorClient` calls from another
    process (the same operations as the :class:`~i2vkit.emulator.Emulator` methods)."""

    async def stats(request: web.Request) -> web.Response:
        return json_response(200, emu.stats())

    async def get_config(request: web.Request) -> web.Response:
        return json_response(200, knobs_view(emu.knobs))

    async def set_config(request: web.Request) -> web.Response:
        try:
            body: Any = await request.json()
            if not isinstance(body, dict):
                raise ValueError("expected a JSON object of knobs")
            coerced = coerce_knobs(body)
        except (ValueError, TypeError) as exc:
            return json_response(400, {"detail": str(exc)})
        return json_response(200, emu.apply_knobs(coerced))

    async def reset(request: web.Request) -> web.Response:
        emu.reset_stats()
        return json_response(200, {"ok": True})

    async def health(request: web.Request) -> web.Response:
        return json_response(200, {"ok": True})

    async def advance(request: web.Request) -> web.Response:
        try:
            seconds = float((await request.json())["seconds"])
            if seconds < 0:
                raise ValueError("seconds must be >= 0")
        except (ValueError, KeyError, TypeError) as exc:
            return json_response(400, {"detail": f"expected {{'seconds': N >= 0}}: {exc}"})
        emu.advance_clock(seconds)
        return json_response(200, {"clock_offset": emu.clock.offset})

    return [
        Route("GET", "/_emulator/stats", stats, counted=False),
        Route("GET", "/_emulator/config", get_config, counted=False),
        Route("POST", "/_emulator/config", set_config, counted=False),
        Route("POST", "/_emulator/reset", reset, counted=False),
        Route("GET", "/_emulator/health", health, counted=False),
        Route("POST", "/_emulator/advance", advance, counted=False),
    ]
