"""fal's Platform API (``/v1/models``, ``/v1/models/pricing``, ``/v1/models/pricing/estimate``)
served from the catalogue snapshot, and each submit checked against its endpoint's schema.

Why: ``i2vkit models --refresh`` and the plan's stale-catalogue refresh must be tested
on the real path (HTTP, fal's shapes, fal's auth and error envelope), and a submit the
real endpoint would refuse with a 422 must be refused here too, or a wrong argument
passes every test and fails on fal.

Control: ``POST /_emulator/prices`` with ``{"<endpoint_id>": unit_price, ...}`` changes
what ``/v1/models/pricing`` answers (a test's "fal changed its price"). ``POST
/_emulator/models`` with ``{"add": [entry, ...], "remove": [endpoint_id, ...]}`` changes
what fal runs: an added entry (the catalogue's shape) is listed by ``/v1/models`` and
priced (a test's "fal published a new model"); a removed endpoint's app is gone, so the
queue answers 404 "Application '...' not found" for it, as fal does for an app it does
not have (a test's "fal took the model down").
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aiohttp import web

from ..catalogue import openapi, schema
from ..catalogue.core import Catalogue, snapshot
from .auth import Auth
from .routes import Route
from .wire import app_of, json_response, validation_error

MAX_IDS = 50
PAGE = 20  # models per page of /v1/models when no limit is given (so paging is exercised)
MAX_PAGE = 50


@cache
def _catalogue() -> Catalogue:
    return snapshot()


def entry_for(endpoint: str) -> dict[str, Any] | None:
    """The snapshot entry of a submitted endpoint id, or None for one it does not know."""
    return _catalogue().by_id.get(endpoint)


def image_field(endpoint: str) -> str | None:
    """The field the endpoint takes its (start) image from, when the snapshot knows it."""
    entry = entry_for(endpoint)
    return entry["image_field"] if entry else None


def end_image_field(endpoint: str) -> str | None:
    """The field the endpoint takes an end frame from, when the snapshot knows one."""
    entry = entry_for(endpoint)
    return entry.get("end_image_field") if entry else None


def submit_problems(endpoint: str, payload: dict[str, Any]) -> list[dict[str, Any]] | None:
    """fal's 422 ``detail`` entries for a known endpoint's body; None for an unknown one."""
    entry = entry_for(endpoint)
    if entry is None:
        return None
    return [
        validation_error(["body", field], msg, type_, payload.get(field))
        for field, msg, type_ in schema.payload_problems(entry["input"], payload)
    ]


def _error(status: int, type_: str, message: str) -> web.Response:
    """The Platform API's error envelope (not the queue's ``detail``)."""
    return json_response(status, {"error": {"type": type_, "message": message}})


class PlatformAPI:
    """The three Platform API operations an i2v client uses, plus a price control."""

    def __init__(self, auth: Auth) -> None:
        self._auth = auth
        self.prices: dict[str, float] = {}  # overrides set through /_emulator/prices
        self.added: dict[str, dict[str, Any]] = {}  # endpoints fal "published" (control)
        self.gone_apps: set[str] = set()  # apps fal no longer has (control)

    def serves(self, endpoint: str) -> bool:
        """False for an endpoint whose app was removed: the queue answers 404 for it."""
        return app_of(endpoint.strip("/")) not in self.gone_apps

    def entry(self, endpoint: str) -> dict[str, Any] | None:
        """The catalogue entry this fal has for an endpoint (snapshot or added), or None."""
        return self._entries().get(endpoint)

    def _entries(self) -> dict[str, dict[str, Any]]:
        """Every endpoint this fal lists: the snapshot's and the added ones, minus gone apps."""
        entries = {**_catalogue().by_id, **self.added}
        return {eid: e for eid, e in entries.items() if self.serves(eid)}

    def routes(self) -> list[Route]:
        return [
            Route("GET", "/v1/models", self._h_models),
            Route("GET", "/v1/models/pricing", self._h_pricing),
            Route("POST", "/v1/models/pricing/estimate", self._h_estimate),
            Route("POST", "/_emulator/prices", self._h_set_prices, counted=False),
            Route("POST", "/_emulator/models", self._h_set_models, counted=False),
        ]

    def _auth_error(self, request: web.Request) -> web.Response | None:
        refused = self._auth.key_or_locked_error(request)
        if refused is None:
            return None
        status = refused.status
        message = "Access denied" if status == 403 else "Invalid or missing API key"
        return _error(status, "authorization_error", message)

    @staticmethod
    def _ids(request: web.Request) -> list[str] | web.Response:
        ids = [i for v in request.query.getall("endpoint_id", []) for i in v.split(",") if i]
        if len(ids) > MAX_IDS:
            return _error(400, "validation_error", f"At most {MAX_IDS} endpoint_id values")
        return ids

    def _price(self, entry: dict[str, Any]) -> dict[str, Any] | None:
        answer = openapi.price_answer(entry)
        override = self.prices.get(entry["endpoint_id"])
        if override is not None:
            answer = {
                **(answer or {"unit": "video", "currency": "USD"}),
                "endpoint_id": entry["endpoint_id"],
                "unit_price": override,
            }
        return answer

    async def _h_models(self, request: web.Request) -> web.Response:
        ids = self._ids(request)
        if isinstance(ids, web.Response):
            return ids
        if request.headers.get("Authorization") and (err := self._auth_error(request)):
            return err  # auth is optional here, but a wrong key is still refused
        expand = "openapi-3.0" in request.query.getall("expand", [])
        known = self._entries()
        entries = [known[i] for i in ids if i in known] if ids else list(known.values())
        category = request.query.get("category")
        if category and category != "image-to-video":
            entries = []
        try:
            limit = min(MAX_PAGE, max(1, int(request.query.get("limit", PAGE))))
            start = int(request.query.get("cursor") or 0)
        except ValueError:
            return _error(400, "validation_error", "limit and cursor must be whole numbers")
        page = entries[start : start + limit]
        more = start + limit < len(entries)
        models = [openapi.model_answer(e, with_openapi=expand) for e in page]
        return json_response(
            200,
            {
                "models": models,
                "next_cursor": str(start + limit) if more else None,
                "has_more": more,
            },
        )

    async def _h_pricing(self, request: web.Request) -> web.Response:
        if err := self._auth_error(request):
            return err
        ids = self._ids(request)
        if isinstance(ids, web.Response):
            return ids
        if not ids:
            return _error(400, "validation_error", "endpoint_id is required")
        known = self._entries()
        prices = [p for i in ids if i in known and (p := self._price(known[i]))]
        return json_response(200, {"prices": prices, "next_cursor": None, "has_more": False})

    async def _h_estimate(self, request: web.Request) -> web.Response:
        if err := self._auth_error(request):
            return err
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "validation_error", "Body is not JSON")
        kind = body.get("estimate_type") if isinstance(body, dict) else None
        endpoints = body.get("endpoints") if isinstance(body, dict) else None
        if kind not in ("unit_price", "historical_api_price") or not isinstance(endpoints, dict):
            return _error(400, "validation_error", "estimate_type and endpoints are required")
        total = 0.0
        known = self._entries()
        for eid, q in endpoints.items():
            price = self._price(known[eid]) if eid in known else None
            if price is None:
                return _error(404, "not_found", f"No price for endpoint {eid}")
            n = q.get("unit_quantity" if kind == "unit_price" else "call_quantity", 0)
            total += price["unit_price"] * float(n)
        return json_response(
            200, {"estimate_type": kind, "total_cost": round(total, 6), "currency": "USD"}
        )

    async def _h_set_prices(self, request: web.Request) -> web.Response:
        body = await request.json()
        if not isinstance(body, dict) or not all(
            isinstance(v, int | float) and v >= 0 for v in body.values()
        ):
            return json_response(400, {"detail": "expected {endpoint_id: unit_price >= 0}"})
        self.prices.update({k: float(v) for k, v in body.items()})
        return json_response(200, {"prices": self.prices})

    async def _h_set_models(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        add = body.get("add", []) if isinstance(body, dict) else None
        remove = body.get("remove", []) if isinstance(body, dict) else None
        if not isinstance(add, list) or not isinstance(remove, list):
            return json_response(400, {"detail": 'expected {"add": [entry], "remove": [id]}'})
        for entry in add:
            if not isinstance(entry, dict) or not isinstance(entry.get("endpoint_id"), str):
                return json_response(400, {"detail": "each added entry needs an endpoint_id"})
            if not isinstance(entry.get("input"), dict):
                return json_response(400, {"detail": "each added entry needs an input schema"})
        for entry in add:
            self.added[entry["endpoint_id"]] = entry
            self.gone_apps.discard(app_of(entry["endpoint_id"]))
        self.gone_apps.update(app_of(str(e).strip("/")) for e in remove)
        return json_response(200, {"added": sorted(self.added), "gone": sorted(self.gone_apps)})
