"""Talking to fal: one connection object for a whole batch.

Uploads go through `fal_client` itself (its v3 CDN path with its own fallback to
the signed-URL path). Queue calls (submit, status, result, cancel) go through one
shared `httpx.AsyncClient` that speaks the same wire protocol as fal_client but
lets us do what fal_client cannot: one request budget for the whole process,
Retry-After on 429, a count of every request, and a submit POST that is not
silently retried into a second paid job.

`I2VKIT_FAL_URL` replaces every fal host (queue, REST, CDN) with one base URL;
fal_client only reads its hosts from module globals, so we set those.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

import fal_client
import fal_client.client as fal_client_module
import httpx

from .config import Settings, redact
from .errors import (
    FalAuthError,
    FalError,
    FalLockedError,
    FalTransientError,
    FalValidationError,
)

REAL_HOSTS = {
    "QUEUE_URL_FORMAT": fal_client_module.QUEUE_URL_FORMAT,
    "RUN_URL_FORMAT": fal_client_module.RUN_URL_FORMAT,
    "REST_URL": fal_client_module.REST_URL,
    "CDN_URL": fal_client_module.CDN_URL,
}
DEMO_KEY = "demo:i2vkit-emulator"
RETRY_STATUSES = {408, 409, 429, 500, 502, 503, 504}
MAX_ATTEMPTS = 8


@dataclass
class ReusingAsyncClient(fal_client.AsyncClient):
    """fal_client's AsyncClient, but its CDN uploads reuse one httpx client.

    Stock fal_client opens a fresh httpx client (and TLS context, ~20 ms of CPU on
    the event loop) for every upload; a batch of 1,000 images should not.
    """

    cdn_http: httpx.AsyncClient | None = field(default=None, repr=False)

    @contextlib.asynccontextmanager
    async def _cdn_client(self):
        if self.cdn_http is None:
            async with super()._cdn_client() as client:
                yield client
        else:
            yield self.cdn_http


def point_fal_client_at(base_url: str | None) -> None:
    """Make fal_client's hosts follow I2VKIT_FAL_URL (or restore fal's own)."""
    if base_url is None:
        for name, value in REAL_HOSTS.items():
            setattr(fal_client_module, name, value)
        return
    base = base_url.rstrip("/")
    fal_client_module.QUEUE_URL_FORMAT = fal_client_module.RUN_URL_FORMAT = base + "/"
    fal_client_module.REST_URL = fal_client_module.CDN_URL = base


def queue_base(settings: Settings) -> str:
    return (settings.fal_url or REAL_HOSTS["QUEUE_URL_FORMAT"]).rstrip("/")


class RequestBudget:
    """A process-wide token bucket for fal requests that every 429 slows down.

    Polling 1,000 jobs must never be what gets an account rate-limited, so every
    request to fal waits for a token (small bursts, a steady rate). A 429 pauses
    everyone for Retry-After and halves the rate, once per episode rather than once
    per request that was already in flight; successes win the rate back gradually.
    """

    def __init__(self, rate: float = 300.0, burst: float | None = None, min_rate: float = 0.5):
        self.max_rate = self.rate = rate
        self.min_rate = min_rate
        self.capacity = burst if burst is not None else max(2.0, min(20.0, rate / 4))
        self.tokens = self.capacity
        self.updated = time.monotonic()
        self.paused_until = 0.0
        self.lock = asyncio.Lock()
        self.throttled = 0
        self.sent: collections.deque[float] = collections.deque()  # send times, last second

    async def acquire(self) -> None:
        async with self.lock:
            while True:
                now = time.monotonic()
                if now < self.paused_until:
                    await asyncio.sleep(self.paused_until - now)
                    continue
                self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
                self.updated = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    self.sent.append(now)
                    while self.sent and self.sent[0] < now - 1.0:
                        self.sent.popleft()
                    return
                await asyncio.sleep((1 - self.tokens) / self.rate)

    def throttle(self, retry_after: float | None) -> None:
        """fal said 429: everyone waits for Retry-After, and the rate halves."""
        self.throttled += 1
        now = time.monotonic()
        if now >= self.paused_until:
            # halve what we were really sending, not a cap we never reached
            recent = sum(1 for t in self.sent if t >= now - 1.0)
            self.rate = max(self.min_rate, min(self.rate, max(recent, 1)) / 2)
        wait = retry_after if retry_after is not None else 1.0 / self.rate
        self.paused_until = max(self.paused_until, now + wait)
        self.tokens = 0

    def relax(self) -> None:
        """A success: win the rate back, 1% (at least 0.25/s) per success."""
        if self.rate < self.max_rate:
            self.rate = min(self.max_rate, self.rate + max(0.01 * self.rate, 0.25))


def retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        with contextlib.suppress(TypeError, ValueError):
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    return None


def error_message(response: httpx.Response) -> tuple[str, str | None]:
    """fal's error body, as a readable sentence, and its error_type."""
    try:
        body = response.json()
    except ValueError:
        return (response.text[:300] or response.reason_phrase), None
    if not isinstance(body, dict):
        return str(body)[:300], None
    detail = body.get("detail", body)
    error_type = body.get("error_type") or response.headers.get("x-fal-error-type")
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                where = ".".join(str(p) for p in item.get("loc", []) if p != "body")
                parts.append(f"{where}: {item.get('msg', item)}" if where else str(item.get("msg")))
                error_type = error_type or item.get("type")
            else:
                parts.append(str(item))
        return "; ".join(parts), error_type
    return str(detail), error_type


@dataclass
class FalConnection:
    """Everything that talks to fal for one batch: reuse it, then `await aclose()`."""

    settings: Settings
    budget: RequestBudget = field(default_factory=RequestBudget)
    timeout: float = 60.0
    requests: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.key = self.settings.fal_key or DEMO_KEY
        self.base = queue_base(self.settings)
        point_fal_client_at(self.settings.fal_url)
        self.http = httpx.AsyncClient(
            headers={
                "Authorization": f"Key {self.key}",
                "User-Agent": f"i2vkit (fal-client/{fal_client.__version__})",
            },
            timeout=httpx.Timeout(self.timeout, connect=15.0),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
            follow_redirects=True,
        )
        self.cdn_http = httpx.AsyncClient(
            headers={"User-Agent": fal_client_module.USER_AGENT},
            timeout=httpx.Timeout(self.timeout * 2, connect=15.0),
        )
        self.uploader = ReusingAsyncClient(key=self.key, cdn_http=self.cdn_http)

    async def aclose(self) -> None:
        await self.http.aclose()
        await self.cdn_http.aclose()
        client = self.uploader.__dict__.get("_client")
        if client is not None:
            with contextlib.suppress(Exception):
                await (await client).aclose()

    async def __aenter__(self) -> FalConnection:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def clean(self, text: str) -> str:
        return redact(text, self.key)

    def raise_for_response(self, response: httpx.Response, what: str) -> None:
        """Turn fal's error answers into our exception hierarchy (never retried here)."""
        if response.status_code < 400:
            return
        message, error_type = error_message(response)
        message = self.clean(message)
        code = response.status_code
        if code == 401:
            raise FalAuthError(
                "FAL_KEY was rejected by fal (401). Check the key at fal.ai/dashboard/keys and "
                "set FAL_KEY again; nothing more was submitted.",
                status_code=401,
            )
        if code == 403:
            if "locked" in message.lower():
                raise FalLockedError(
                    f"fal refused the request: {message} Your fal account is locked, usually "
                    "because its balance is exhausted: top up at fal.ai/dashboard/billing, then "
                    "run the same command again to resume.",
                    status_code=403,
                    error_type="user_locked",
                )
            raise FalAuthError(
                f"fal refused the request (403): {message}. Check that FAL_KEY may use this model.",
                status_code=403,
            )
        if code == 422:
            raise FalValidationError(
                f"fal rejected the input: {message}", status_code=422, error_type=error_type
            )
        if code in RETRY_STATUSES:
            raise FalTransientError(
                f"{what} failed after retries: HTTP {code} {message}",
                status_code=code,
                error_type=error_type,
            )
        raise FalError(f"{what}: HTTP {code} {message}", status_code=code, error_type=error_type)

    async def request(
        self,
        method: str,
        url: str,
        what: str,
        *,
        retry_ambiguous: bool = True,
        retry_server_errors: bool = True,
        **kwargs: Any,
    ) -> httpx.Response:
        """One request to fal under the budget, retrying what is safe to retry.

        `retry_ambiguous=False` is for the submit POST: a read timeout or a dropped
        connection after the body was sent may have created a paid job, so we stop
        and let the ledger decide instead of paying twice.
        """
        delay = 0.5
        for attempt in range(1, MAX_ATTEMPTS + 1):
            await self.budget.acquire()
            self.requests[what] += 1
            try:
                response = await self.http.request(method, url, **kwargs)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                error: Exception = exc
            except httpx.TransportError as exc:
                if not retry_ambiguous:
                    raise FalTransientError(
                        f"{what}: the connection failed after the request was sent "
                        f"({type(exc).__name__}); fal may or may not have it."
                    ) from None
                error = exc
            else:
                if response.status_code == 429:
                    self.budget.throttle(retry_after_seconds(response))
                    self.requests["429"] += 1
                    if attempt < MAX_ATTEMPTS:
                        continue
                elif (
                    response.status_code in RETRY_STATUSES - {429}
                    and attempt < MAX_ATTEMPTS
                    and retry_server_errors
                    and (retry_ambiguous or "x-fal-request-id" not in response.headers)
                ):
                    await asyncio.sleep(delay * random.uniform(0.5, 1.5))
                    delay = min(delay * 2, 15.0)
                    continue
                if response.status_code < 400:
                    self.budget.relax()  # only a real success wins rate back
                return response
            if attempt == MAX_ATTEMPTS:
                raise FalTransientError(
                    self.clean(f"{what}: could not reach fal ({type(error).__name__}: {error}).")
                ) from None
            await asyncio.sleep(delay * random.uniform(0.5, 1.5))
            delay = min(delay * 2, 15.0)
        raise AssertionError("unreachable")

    async def json_call(self, method: str, url: str, what: str, **kwargs: Any) -> tuple[int, Any]:
        response = await self.request(method, url, what, **kwargs)
        self.raise_for_response(response, what)
        try:
            return response.status_code, response.json()
        except ValueError:
            raise FalError(
                f"{what}: fal answered HTTP {response.status_code} with a body that is not JSON."
            ) from None

    async def check_key(self) -> None:
        """One cheap authenticated call before a batch, so a bad key or a locked account
        stops everything after one request instead of after a wave of failed uploads."""
        rest = (self.settings.fal_url or REAL_HOSTS["REST_URL"]).rstrip("/")
        try:
            response = await self.request(
                "POST",
                f"{rest}/storage/auth/token",
                "check_key",
                params={"storage_type": "fal-cdn-v3"},
                json={},
            )
        except FalTransientError:
            return  # fal is flaky right now; the batch's own retries will deal with it
        if response.status_code in (401, 403):
            self.raise_for_response(response, "check_key")

    # -- the queue ---------------------------------------------------------------------

    async def submit(self, endpoint_id: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """POST a job; returns fal's answer with request_id and the status/result/cancel URLs."""
        _, body = await self.json_call(
            "POST",
            f"{self.base}/{endpoint_id}",
            "submit",
            json=arguments,
            retry_ambiguous=False,
        )
        if not isinstance(body, dict) or not isinstance(body.get("request_id"), str):
            raise FalError(f"submit: fal's answer has no request_id: {json.dumps(body)[:200]}")
        return body

    def request_urls(self, endpoint_id: str, request_id: str) -> dict[str, str]:
        """fal's queue URLs use only owner/alias of the endpoint id."""
        owner_alias = "/".join(endpoint_id.split("/")[:2])
        base = f"{self.base}/{owner_alias}/requests/{request_id}"
        return {
            "response_url": base,
            "status_url": base + "/status",
            "cancel_url": base + "/cancel",
        }

    async def status(self, status_url: str, *, logs: bool = False) -> dict[str, Any]:
        _, body = await self.json_call(
            "GET", status_url, "status", params={"logs": "1" if logs else "0"}
        )
        if not isinstance(body, dict) or body.get("status") not in (
            "IN_QUEUE",
            "IN_PROGRESS",
            "COMPLETED",
        ):
            raise FalError(f"status: unexpected answer from fal: {json.dumps(body)[:200]}")
        return body

    async def result(self, response_url: str, *, failed: bool = False) -> dict[str, Any]:
        """A job's output; for a job fal says failed, its 4xx/5xx answer *is* the error."""
        _, body = await self.json_call(
            "GET", response_url, "result", retry_server_errors=not failed
        )
        if not isinstance(body, dict):
            raise FalError(f"result: fal's result is not a JSON object: {json.dumps(body)[:200]}")
        return body

    async def cancel(self, cancel_url: str) -> int:
        response = await self.request("PUT", cancel_url, "cancel")
        return response.status_code

    # -- uploads ---------------------------------------------------------------------

    async def upload_file(self, path: str, lifetime_seconds: int | None) -> str:
        """Upload one file through fal_client (v3 CDN, falling back to signed URLs)."""
        lifecycle = (
            fal_client.StorageSettings(expires_in=int(lifetime_seconds))
            if lifetime_seconds
            else None
        )
        self.requests["upload"] += 1  # bounded by the uploader's concurrency, not the queue budget
        return await self.uploader.upload_file(path, lifecycle=lifecycle)
