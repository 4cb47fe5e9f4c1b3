"""fal's Platform API (``api.fal.ai/v1``): model metadata with OpenAPI schemas, and prices.

Why: fal publishes each endpoint's input schema, status and the account's own unit price;
reading them is how the catalogue stays true when fal adds, changes or retires a model.
Requests go through :class:`~i2vkit.fal.FalConnection` (the ``Authorization: Key``
header, the one retry policy, the key kept out of every message) with short timeouts
and two tries: a refresh that cannot happen must not hold up a batch.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from .backend import Backend
from .errors import BillingUnavailable, FalError, HistoryUnavailable, NotFal
from .fal import FalConnection, platform_url
from .http import fal_error

MAX_IDS = 50  # endpoint ids per call, as the API allows
MAX_PAGES = 100  # a listing reads at most this many pages (a cursor that never ends)
EVENTS_PAGE = 100  # billing events a page: the smaller of the two documented maxima
TIMEOUT = 10.0
ATTEMPTS = 2


def _utc(when: datetime) -> str:
    """A time parameter as fal's examples write it (UTC, ``Z``)."""
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _chunks(ids: Sequence[str]) -> Iterable[list[str]]:
    for i in range(0, len(ids), MAX_IDS):
        yield list(ids[i : i + MAX_IDS])


class PlatformClient:
    """``GET /models`` (with ``expand=openapi-3.0``), ``GET /models/pricing`` and
    ``POST /models/pricing/estimate`` for one backend and key."""

    def __init__(self, backend: Backend, key: str | None, *, timeout: float = TIMEOUT):
        self.base = platform_url(backend)
        self.fal = FalConnection(backend, key, timeout=timeout)

    async def __aenter__(self) -> PlatformClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.fal.aclose()

    async def _get(self, path: str, params: list[tuple[str, str]], what: str) -> Any:
        return await self.fal.json_call(
            "GET", f"{self.base}{path}", what, params=params, attempts=ATTEMPTS
        )

    async def _paged(self, path: str, params: list[tuple[str, str]], key: str, what: str):
        out: list[dict[str, Any]] = []
        cursor = None
        for _ in range(MAX_PAGES):
            page = await self._get(path, params + ([("cursor", cursor)] if cursor else []), what)
            if not isinstance(page, dict) or not isinstance(page.get(key) or [], list):
                raise NotFal(f"{what}: JSON that is not fal's: {json.dumps(page)[:120]}")
            out += page.get(key) or []
            cursor = page.get("next_cursor")
            if not page.get("has_more") or not cursor:
                break
        return out

    async def models(self, endpoint_ids: Sequence[str]) -> list[dict[str, Any]]:
        """Metadata and OpenAPI document of each endpoint fal still knows."""
        out: list[dict[str, Any]] = []
        for chunk in _chunks(endpoint_ids):
            params = [("endpoint_id", e) for e in chunk] + [("expand", "openapi-3.0")]
            out += await self._paged("/models", params, "models", "reading fal's model list")
        return out

    async def listing(self, category: str = "image-to-video") -> list[dict[str, Any]]:
        """Every endpoint fal lists in ``category``, with its OpenAPI document (all pages):
        how a refresh finds endpoints fal published after the catalogue was built."""
        params = [("category", category), ("expand", "openapi-3.0"), ("limit", str(MAX_IDS))]
        return await self._paged("/models", params, "models", "listing fal's models")

    async def pricing(self, endpoint_ids: Sequence[str]) -> list[dict[str, Any]]:
        """``{endpoint_id, unit_price, unit, currency}`` per endpoint, with account discounts."""
        out: list[dict[str, Any]] = []
        for chunk in _chunks(endpoint_ids):
            params = [("endpoint_id", e) for e in chunk]
            out += await self._paged("/models/pricing", params, "prices", "reading fal's prices")
        return out

    async def estimate(self, units: dict[str, float]) -> dict[str, Any]:
        """fal's quote for ``unit_quantity`` units of each endpoint (one total)."""
        body = {
            "estimate_type": "unit_price",
            "endpoints": {e: {"unit_quantity": q} for e, q in units.items()},
        }
        return await self.fal.json_call(
            "POST",
            f"{self.base}/models/pricing/estimate",
            "asking fal for an estimate",
            json=body,
            attempts=ATTEMPTS,
        )

    async def _admin(self, path: str, params: list[tuple[str, str]], what: str) -> Any:
        """A GET only an admin key may make; a refusal is :class:`BillingUnavailable`."""
        response = await self.fal.request(
            "GET", f"{self.base}{path}", what, params=params, raise_errors=False, attempts=ATTEMPTS
        )
        code = response.status_code
        if code in (401, 403, 404, 405):
            raise BillingUnavailable(
                f"{what}: the key may not read the account's billing (HTTP {code})"
                if code in (401, 403)
                else f"{what}: {self.base} serves no billing records (HTTP {code})",
                status_code=code,
            )
        if code >= 400:
            raise fal_error(response, what, self.fal.key)
        try:
            return response.json()
        except ValueError:
            raise FalError(f"{what}: fal's answer is not JSON.") from None

    async def _admin_pages(
        self, path: str, params: list[tuple[str, str]], key: str, what: str
    ) -> list[dict[str, Any]]:
        """Every page of an admin listing (``next_cursor`` while ``has_more``)."""
        out: list[dict[str, Any]] = []
        cursor = None
        for _ in range(MAX_PAGES):
            page = await self._admin(path, params + ([("cursor", cursor)] if cursor else []), what)
            if not isinstance(page, dict):
                raise NotFal(f"{what}: JSON that is not fal's: {json.dumps(page)[:120]}")
            out += [e for e in page.get(key) or [] if isinstance(e, dict)]
            cursor = page.get("next_cursor")
            if not page.get("has_more") or not cursor:
                break
        return out

    async def billing_events(
        self,
        start: datetime,
        end: datetime,
        *,
        request_ids: Sequence[str] = (),
        endpoint_ids: Sequence[str] = (),
    ) -> list[dict[str, Any]]:
        """``GET /models/billing-events``: what fal charged each request in [start, end),
        of the given request ids (50 a call), else of the given endpoints (50 a call)."""
        window = [("start", _utc(start)), ("end", _utc(end)), ("limit", str(EVENTS_PAGE))]
        name, ids = ("request_id", request_ids) if request_ids else ("endpoint_id", endpoint_ids)
        out: list[dict[str, Any]] = []
        for chunk in _chunks(ids):
            params = [(name, i) for i in chunk] + window
            out += await self._admin_pages(
                "/models/billing-events", params, "billing_events", "reading fal's billing records"
            )
        return out

    async def usage(
        self, endpoint_ids: Sequence[str], start: datetime, end: datetime
    ) -> list[dict[str, Any]]:
        """``GET /models/usage`` over exactly [start, end): the line items of every time
        bucket of every page (``bound_to_timeframe=false``: fal would otherwise widen the
        window to whole buckets, an hour or a day of other requests; the summary is not
        read, as a paged answer need not repeat or split it)."""
        window = [("start", _utc(start)), ("end", _utc(end)), ("timezone", "UTC"),
                  ("bound_to_timeframe", "false"), ("expand", "time_series")]  # fmt: skip
        out: list[dict[str, Any]] = []
        for chunk in _chunks(endpoint_ids):
            params = [("endpoint_id", e) for e in chunk] + window
            buckets = await self._admin_pages(
                "/models/usage", params, "time_series", "reading fal's usage"
            )
            out += [i for b in buckets for i in b.get("results") or [] if isinstance(i, dict)]
        return out

    async def balance(self) -> float | None:
        """``GET /account/billing?expand=credits``: the credit balance in US$ (None: unsaid)."""
        page = await self._admin(
            "/account/billing", [("expand", "credits")], "reading fal's balance"
        )
        credits = page.get("credits") if isinstance(page, dict) else None
        value = credits.get("current_balance") if isinstance(credits, dict) else None
        return float(value) if isinstance(value, int | float) else None

    async def requests_by_endpoint(self, endpoint_id: str, **kwargs: Any) -> list[dict[str, Any]]:
        """See :func:`requests_by_endpoint`."""
        return await requests_by_endpoint(self.fal, endpoint_id, **kwargs)


# -- request history (GET /models/requests/by-endpoint) --------------------------------

HISTORY_PAGE = 100  # the largest page fal serves
HISTORY_PAGES = 50  # a lookup reads at most this many pages (5,000 requests)


async def requests_by_endpoint(
    fal: FalConnection,
    endpoint_id: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    request_id: str | None = None,
    payloads: bool = True,
) -> list[dict[str, Any]]:
    """fal's record of an endpoint's requests: those sent in [start, end), or the one
    `request_id`; with their exact input and output (`json_input`, `json_output`) when
    `payloads`. Every page, up to HISTORY_PAGES. Over `fal` (a batch's connection: its
    budget and retry policy); a refusal is :class:`HistoryUnavailable`.

    Why: a crash between a submit reaching fal and its answer reaching the ledger leaves
    a job fal may have; this is where to look before paying for it again.
    """
    base = platform_url(fal.backend)
    params = [("endpoint_id", endpoint_id), ("limit", str(HISTORY_PAGE))]
    if start is not None:
        params.append(("start", start.isoformat()))
    if end is not None:
        params.append(("end", end.isoformat()))
    if request_id is not None:
        params.append(("request_id", request_id))
    if payloads:
        params.append(("expand", "payloads"))
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(HISTORY_PAGES):
        page_params = params + ([("cursor", cursor)] if cursor else [])
        response = await fal.request(
            "GET",
            f"{base}/models/requests/by-endpoint",
            "request_history",
            params=page_params,
            raise_errors=False,
        )
        code = response.status_code
        if code in (403, 404, 405):
            raise HistoryUnavailable(
                "the key may not read this account's request history (403: restricted "
                "request view; an admin key can)"
                if code == 403
                else f"{base} serves no request history (HTTP {code})",
                status_code=code,
            )
        if code >= 400:
            raise fal_error(response, "request_history", fal.key)
        try:
            page = response.json()
        except ValueError:
            page = None
        if not isinstance(page, dict):
            raise FalError("request_history: fal's answer is not a JSON object.")
        items.extend(i for i in page.get("items") or [] if isinstance(i, dict))
        cursor = page.get("next_cursor")
        if not page.get("has_more") or not cursor:
            break
    return items
