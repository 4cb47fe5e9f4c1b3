"""The one HTTP policy every request to fal (queue, uploads, video downloads) follows.

Written once here so the three kinds of traffic cannot drift apart again:

* :class:`RequestBudget`: one token bucket per batch that every request waits on and
  every 429 slows down;
* :func:`verdict`: THE decision whether an answer or a transport error is worth another
  try, including the case a submit must never retry (the body may have reached fal);
* :func:`backoff_delay` and :data:`ATTEMPTS`: the one backoff schedule;
* :func:`parse_retry_after`: both forms of the Retry-After header;
* :func:`error_message` and :func:`fal_error`: fal's error bodies and THE mapping from
  an HTTP status to i2vkit's exception hierarchy;
* :func:`retrying`: the one retry loop, which runs any async callable (a plain request
  or a whole streaming download) as one attempt.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import random
import re
import time
from collections.abc import Awaitable, Callable
from email.utils import parsedate_to_datetime
from typing import TypeVar

import httpx

from .config import redact
from .errors import (
    FalAuthError,
    FalError,
    FalLockedError,
    FalTransientError,
    FalValidationError,
)

T = TypeVar("T")

RETRYABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
ATTEMPTS = 8  # tries per request for 5xx and dropped connections (429s are not counted)
MAX_THROTTLES = 100  # 429s one request may wait out before giving up
BACKOFF_FIRST = 0.5  # seconds before the second try; doubles each time ...
BACKOFF_CAP = 15.0  # ... up to this, each jittered by x0.5..1.5
NOTHING_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


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


# -- what is worth another try ------------------------------------------------------------


class Verdict(enum.Enum):
    DONE = "done"  # a success: use it
    RETRY = "retry"  # fal did not act on it (or repeating it is harmless): try again
    FINAL = "final"  # an answer to report as it is (4xx, or a 5xx fal may have acted on)
    AMBIGUOUS = "ambiguous"  # the connection broke after a non-repeatable request was sent


def verdict(
    outcome: httpx.Response | BaseException,
    *,
    idempotent: bool = True,
    retry_server_errors: bool = True,
) -> Verdict:
    """Whether one HTTP outcome is worth another try: THE transient decision.

    A 429 is always retried (fal turned the request away). Other 408/409/5xx are retried
    unless the caller reads them as the answer (`retry_server_errors=False`: a failed job's
    result *is* a 5xx) or the request is not `idempotent` (a submit) and the answer carries
    `x-fal-request-id`, i.e. fal itself, not its ingress, took the request and may have
    queued a paid job. Transport errors before anything was sent are retried; after the
    body went out they are retried only for idempotent requests, and are AMBIGUOUS for a
    submit: fal may or may not have it, and only the ledger can settle that without paying
    twice. Anything that is not an httpx transport error is no HTTP outcome: FINAL.
    """
    if isinstance(outcome, httpx.Response):
        code = outcome.status_code
        if code < 400:
            return Verdict.DONE
        if code == 429:
            return Verdict.RETRY
        fal_took_it = "x-fal-request-id" in outcome.headers
        if code in RETRYABLE_STATUSES and retry_server_errors and (idempotent or not fal_took_it):
            return Verdict.RETRY
        return Verdict.FINAL
    if isinstance(outcome, NOTHING_SENT):
        return Verdict.RETRY
    if isinstance(outcome, httpx.TransportError):
        return Verdict.RETRY if idempotent else Verdict.AMBIGUOUS
    return Verdict.FINAL


def backoff_delay(tries: int) -> float:
    """Seconds to wait after the `tries`-th failed try: exponential, capped, jittered so a
    burst of failures does not come back as a synchronized burst of retries."""
    return min(BACKOFF_FIRST * 2 ** (tries - 1), BACKOFF_CAP) * random.uniform(0.5, 1.5)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Retry-After in seconds from now: delta-seconds or an HTTP-date; None if absent or
    unreadable (the budget then picks its own pause); never negative."""
    if not value or not value.strip():
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 850 / asctime forms parse naive; HTTP dates are GMT
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def retry_after_seconds(response: httpx.Response) -> float | None:
    return parse_retry_after(response.headers.get("retry-after"))


# -- fal's errors -------------------------------------------------------------------------


def body_text(response: httpx.Response, limit: int = 160) -> str:
    """A body that is not JSON, in one short line: an HTML page by the text of its body
    (else its title), so "what it answered" reads as a sentence, not as markup."""
    text = response.text
    if "<" in text:
        flags = re.IGNORECASE | re.DOTALL
        body = re.search(r"<body[^>]*>(.*?)(</body>|$)", text, flags)
        title = re.search(r"<title[^>]*>(.*?)</title>", text, flags)
        text = re.sub(r"<[^>]*>", " ", body.group(1) if body else text)
        text = text if text.strip() or not title else title.group(1)
    text = " ".join(text.split())
    kind = response.headers.get("content-type", "").split(";")[0].strip()
    text = (text[:limit] + "...") if len(text) > limit else text
    text = text or response.reason_phrase
    return f"{text} ({kind})" if kind and kind != "application/json" else text


def error_message(response: httpx.Response) -> tuple[str, str | None]:
    """fal's error body, as a readable sentence, and its error_type."""
    try:
        body = response.json()
    except ValueError:
        return body_text(response), None
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


def fal_error(response: httpx.Response, what: str, key: str | None = None) -> FalError:
    """THE mapping from fal's error answers to i2vkit's exceptions (queue and uploads alike).

    401 is a rejected key and 403 "locked" an exhausted balance: both stop the whole batch.
    Any other 403 means the key may not use this endpoint (also fatal). 422 is this job's
    input. Statuses worth retrying surface here only after the retries ran out.
    """
    message, error_type = error_message(response)
    message = redact(message, key)
    code = response.status_code
    if code == 401:
        return FalAuthError(
            "FAL_KEY was rejected by fal (401). Check the key on the Keys page of your fal "
            "dashboard and set FAL_KEY again; nothing more was submitted.",
            status_code=401,
        )
    if code == 403:
        if "locked" in message.lower():
            return FalLockedError(
                f"fal refused the request: {message} Your fal account is locked, usually "
                "because its balance is exhausted: top up on the Billing page of your fal "
                "dashboard, then run the same command again to resume.",
                status_code=403,
                error_type="user_locked",
            )
        return FalAuthError(
            f"fal refused the request (403): {message}. Check that FAL_KEY may use this model.",
            status_code=403,
        )
    if code == 422:
        return FalValidationError(
            f"fal rejected the input: {message}", status_code=422, error_type=error_type
        )
    if code in RETRYABLE_STATUSES:
        return FalTransientError(
            f"{what} failed after retries: HTTP {code} {message}",
            status_code=code,
            error_type=error_type,
        )
    return FalError(f"{what}: HTTP {code} {message}", status_code=code, error_type=error_type)


# -- the retry loop ------------------------------------------------------------------------


class _Retry(Exception):
    """Raised by one attempt to ask :func:`retrying` for another: why, and the answer if any.

    Control flow, not an error: :func:`retrying` catches every one, and when the tries run
    out the caller's ``give_up`` turns the last one into a real error (see
    :mod:`i2vkit.errors`). Private for that reason; only attempt functions (here, in
    :mod:`i2vkit.fal` and :mod:`i2vkit.download`) raise it."""

    def __init__(
        self, reason: str, *, response: httpx.Response | None = None, ambiguous: bool = False
    ):
        super().__init__(reason)
        self.reason = reason
        self.response = response
        self.ambiguous = ambiguous

    @property
    def status_code(self) -> int | None:
        return self.response.status_code if self.response is not None else None


def retry_if_transient(
    response: httpx.Response, *, idempotent: bool = True, retry_server_errors: bool = True
) -> httpx.Response:
    """Inside an attempt: raise :class:`_Retry` for an answer worth another try, else return it."""
    if (
        verdict(response, idempotent=idempotent, retry_server_errors=retry_server_errors)
        is Verdict.RETRY
    ):
        raise _Retry(f"HTTP {response.status_code}", response=response)
    return response


async def retrying(
    attempt: Callable[[], Awaitable[T]],
    *,
    give_up: Callable[[_Retry], BaseException],
    budget: RequestBudget | None = None,
    idempotent: bool = True,
    attempts: int = ATTEMPTS,
) -> T:
    """Run `attempt()` until it returns, under the budget: THE retry loop.

    Each try first waits for a budget token. An attempt asks for another try by raising
    :class:`_Retry` (see :func:`retry_if_transient`); httpx transport errors are judged by :func:`verdict`
    here, so a streaming download's dropped connection and a status poll's are the same
    case. A 429 pauses the whole budget for Retry-After instead of spending one of the
    `attempts` (the server is asking us to slow down, not failing), up to MAX_THROTTLES;
    anything else transient waits :func:`backoff_delay`. When tries run out, or a broken
    connection leaves a non-`idempotent` request ambiguous, `give_up(last _Retry)` is
    raised: each caller words its own error. Only an attempt that returns wins rate back.
    """
    tries = throttles = 0
    while True:
        if budget is not None:
            await budget.acquire()
        try:
            result = await attempt()
        except _Retry as retry:
            last = retry
        except httpx.TransportError as exc:
            kind = verdict(exc, idempotent=idempotent)
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            last = _Retry(reason, ambiguous=kind is Verdict.AMBIGUOUS)
            if last.ambiguous:
                raise give_up(last) from None
        else:
            if budget is not None:
                budget.relax()
            return result
        retry_after = retry_after_seconds(last.response) if last.response is not None else None
        if last.status_code == 429 and budget is not None and throttles < MAX_THROTTLES:
            throttles += 1
            budget.throttle(retry_after)
            continue
        tries += 1
        if tries >= attempts:
            raise give_up(last) from None
        await asyncio.sleep(max(backoff_delay(tries), retry_after or 0.0))
