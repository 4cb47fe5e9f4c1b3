"""Talking to fal: one connection object for a whole batch.

Every call (queue: submit, status, result, cancel; uploads: CDN token, upload,
multipart) goes over our own httpx clients speaking fal_client's wire protocol, so
each follows the one policy in :mod:`i2vkit.http`: one request budget for the whole
process, Retry-After on 429, a count of every request, a submit POST that is not
silently retried into a second paid job, and one mapping of fal's errors.

fal_client's module globals (its hosts) are never touched by a batch: a demo run in a
notebook leaves the user's own fal_client calls going to fal. The benchmark, which
compares stock fal_client with i2vkit, points fal_client at the emulator explicitly
with :func:`i2vkit.fal_client_hosts.fal_client_pointed_at`.
"""

from __future__ import annotations

import asyncio
import json
import mimetypes
import os
import re
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

import fal_client
import fal_client.client as fal_client_module
import httpx

from .backend import Backend
from .config import redact
from .errors import (
    BackendUnreachable,
    FalAuthError,
    FalError,
    FalLockedError,
    FalTransientError,
    NotFal,
    StreamUnavailable,
    SubmitUnanswered,
)
from .http import (
    ATTEMPTS,
    RequestBudget,
    _Retry,
    body_text,
    fal_error,
    retry_after_seconds,
    retry_if_transient,
    retrying,
)

FAL_QUEUE_URL = "https://queue.fal.run"
FAL_REST_URL = "https://rest.fal.ai"
FAL_CDN_URL = "https://v3.fal.media"
FAL_PLATFORM_URL = "https://api.fal.ai/v1"
DEMO_KEY = "demo:i2vkit-emulator"
# fal_client's multipart rule, so what fal's CDN receives is what it receives from fal_client
MULTIPART_THRESHOLD = fal_client_module.MULTIPART_THRESHOLD
MULTIPART_CHUNK = fal_client_module.MULTIPART_CHUNK_SIZE
TOKEN_MARGIN = timedelta(seconds=30)  # a CDN token this close to expiry is renewed first
PREFLIGHT_ATTEMPTS = 2  # the first call of a batch: a closed port or no network fails fast
PREFLIGHT_CONNECT_SECONDS = 5.0
PROBE_REQUEST_ID = "00000000-0000-0000-0000-000000000000"  # never a real request
APP_NOT_FOUND = re.compile(r"\bapplication\b.*\bnot found\b", re.IGNORECASE)
NOT_CONNECTED = ("ConnectError", "ConnectTimeout")  # how _Retry.reason names "never connected"
STATUSES = ("IN_QUEUE", "IN_PROGRESS", "COMPLETED")
# fal sends a keep-alive comment every 15 s: a stream silent for two of them has stalled
STREAM_KEEPALIVE = 15.0
STREAM_IDLE = 2 * STREAM_KEEPALIVE


def platform_url(backend: Backend) -> str:
    """fal's Platform API: ``https://api.fal.ai/v1``, or ``{I2VKIT_FAL_URL}/v1`` like every
    other fal host."""
    return f"{backend.base_url.rstrip('/')}/v1" if backend.base_url else FAL_PLATFORM_URL


@dataclass(frozen=True)
class CdnToken:
    """A short-lived token for fal's CDN (`POST /storage/auth/token`), shared by uploads."""

    token: str
    token_type: str
    base_url: str
    expires_at: datetime

    @property
    def header(self) -> str:
        return f"{self.token_type} {self.token}"

    def fresh(self) -> bool:
        return datetime.now(UTC) + TOKEN_MARGIN < self.expires_at


class FalConnection:
    """Everything that talks to fal for one batch: use as `async with`, or `await aclose()`."""

    def __init__(
        self,
        backend: Backend,
        key: str | None,
        *,
        budget: RequestBudget | None = None,
        timeout: float = 60.0,
    ):
        self.backend = backend
        self.key = key or DEMO_KEY
        self.key_given = key is not None
        self.budget = budget if budget is not None else RequestBudget()
        self.timeout = timeout
        self.requests: Counter[str] = Counter()
        own = backend.base_url.rstrip("/") if backend.base_url else None
        self.base = own or FAL_QUEUE_URL  # queue base URL
        self.rest = own or FAL_REST_URL
        self.cdn = own or FAL_CDN_URL
        tls = httpx.create_ssl_context()  # one CA bundle load (~50 ms) for the three clients
        self.http = httpx.AsyncClient(
            verify=tls,
            headers={
                "Authorization": f"Key {self.key}",
                "User-Agent": f"i2vkit (fal-client/{fal_client.__version__})",
            },
            timeout=httpx.Timeout(timeout, connect=15.0),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
            follow_redirects=True,
        )
        # status streams on a pool of their own: each holds its connection for a job's whole
        # run, so in the shared pool (64) they would queue the submits and result fetches
        # behind them, and cap the jobs in flight; they are bounded by the run's slots instead
        self.stream_http = httpx.AsyncClient(
            verify=tls,
            headers=self.http.headers,
            timeout=httpx.Timeout(timeout, connect=15.0),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=16),
            follow_redirects=True,
        )
        # no key on this one: CDN uploads carry their token, video downloads nothing
        self.cdn_http = httpx.AsyncClient(
            verify=tls,
            headers={"User-Agent": fal_client_module.USER_AGENT},
            timeout=httpx.Timeout(timeout * 2, connect=15.0),
            follow_redirects=True,
        )
        self._token: CdnToken | None = None
        self._token_lock = asyncio.Lock()

    async def aclose(self) -> None:
        await self.http.aclose()
        await self.stream_http.aclose()
        await self.cdn_http.aclose()

    async def __aenter__(self) -> FalConnection:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def clean(self, text: str) -> str:
        return redact(text, self.key)

    # -- one request ----------------------------------------------------------------------

    async def request(
        self,
        method: str,
        url: str,
        what: str,
        *,
        idempotent: bool = True,
        retry_server_errors: bool = True,
        raise_errors: bool = True,
        attempts: int = ATTEMPTS,
        **kwargs: Any,
    ) -> httpx.Response:
        """One request to fal under the budget and the one retry policy; fal's error answers
        become i2vkit exceptions unless `raise_errors=False`.

        `idempotent=False` is for the submit POST: a read timeout or a dropped connection
        after the body was sent may have created a paid job, so we stop and let the ledger
        decide instead of paying twice.
        """

        async def attempt() -> httpx.Response:
            response = await self.send(self.http, what, method, url, **kwargs)
            retry_if_transient(
                response, idempotent=idempotent, retry_server_errors=retry_server_errors
            )
            if raise_errors and response.status_code >= 400:
                raise fal_error(response, what, self.key)
            return response

        return await retrying(
            attempt,
            give_up=self.gave_up(what),
            budget=self.budget,
            idempotent=idempotent,
            attempts=attempts,
        )

    async def send(
        self, client: httpx.AsyncClient, what: str, method: str, url: str, **kwargs: Any
    ) -> httpx.Response:
        """One try, counted by kind (answered or not), and every 429 counted too: what the
        batch summary and the benchmarks report."""
        self.requests[what] += 1
        response = await client.request(method, url, **kwargs)
        if response.status_code == 429:
            self.requests["429"] += 1
        return response

    def gave_up(self, what: str) -> Callable[[_Retry], Exception]:
        """How a request to fal that ran out of tries (or became ambiguous) is reported."""

        def give_up(last: _Retry) -> Exception:
            if last.response is not None:
                return fal_error(last.response, what, self.key)
            if last.ambiguous:
                return SubmitUnanswered(
                    f"{what}: the connection failed after the request was sent "
                    f"({last.reason.split(':')[0]}); fal may or may not have it."
                )
            if last.reason.startswith(NOT_CONNECTED):
                return BackendUnreachable(self.clean(f"{what}: could not connect ({last.reason})."))
            return FalTransientError(self.clean(f"{what}: could not reach fal ({last.reason})."))

        return give_up

    async def json_call(self, method: str, url: str, what: str, **kwargs: Any) -> Any:
        response = await self.request(method, url, what, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise NotFal(
                f"{what}: HTTP {response.status_code} with a body that is not JSON: "
                f"{body_text(response)}"
            ) from None

    async def check_key(self) -> None:
        """One cheap authenticated call before a batch, so a bad key or a locked account
        stops everything after one request instead of after a wave of failed uploads. (The
        call fetches a CDN token, which the uploads then use.)

        It is also the preflight: with no connection at all (a closed port, no network, an
        unknown host) it raises :class:`BackendUnreachable` within seconds, naming the host,
        before anything is uploaded or recorded; otherwise every upload and submit would
        retry its way through minutes of backoff and end the batch as a wall of failed jobs.
        """
        try:
            await self.cdn_token(
                force=True,
                attempts=PREFLIGHT_ATTEMPTS,
                timeout=httpx.Timeout(self.timeout, connect=PREFLIGHT_CONNECT_SECONDS),
            )
        except BackendUnreachable as exc:
            raise BackendUnreachable(self.unreachable(str(exc))) from None
        except FalAuthError as exc:
            if exc.status_code == 401 and not self.key_given and self.backend.base_url:
                raise FalAuthError(
                    f"{self.backend.base_url} (I2VKIT_FAL_URL) asks for a key (401), and "
                    "FAL_KEY is not set: set FAL_KEY to the key that service accepts, or "
                    "unset I2VKIT_FAL_URL to run the free demo. Nothing was submitted.",
                    status_code=401,
                ) from None
            raise
        except FalLockedError:
            raise
        except FalTransientError:
            return  # fal is flaky right now; the batch's own retries will deal with it
        except FalError as exc:  # an answer, but not fal's: 404, 501, HTML, other JSON
            answer = str(exc).removeprefix("upload_token: ")
            raise NotFal(self.not_fal(f"POST /storage/auth/token got {answer}")) from None

    def not_fal(self, answer: str) -> str:
        """What to say when the backend answers, but not as fal does: where, what it said."""
        if self.backend.base_url:
            where = f"{self.backend.base_url} (I2VKIT_FAL_URL)"
            advice = (
                "Point I2VKIT_FAL_URL at fal or a fal-compatible service (such as `i2vkit "
                "emulator`), or unset it to use fal.ai."
            )
        else:
            where = f"fal ({urlsplit(self.rest).netloc})"
            advice = "Something between this computer and fal (a proxy, a portal) may answer."
        return (
            f"{where} answers, but not as fal does: {answer.rstrip('.')}. {advice} Nothing was "
            "uploaded or submitted and no job was marked failed."
        )

    def unreachable(self, detail: str) -> str:
        """What to say when the backend cannot be reached at all: the host, and what to do."""
        host = urlsplit(self.rest).netloc
        if self.backend.base_url:
            advice = (
                f"Check that the service at I2VKIT_FAL_URL={self.backend.base_url} is running "
                "(start `i2vkit emulator` first if that is what it points at), or unset "
                "I2VKIT_FAL_URL to use fal.ai."
            )
        else:
            advice = "Check this computer's network connection (and any proxy or firewall)."
        return (
            f"Cannot reach {host}: {detail} {advice} Nothing was uploaded or submitted and no "
            "job was marked failed; run the same command again once it is reachable."
        )

    async def app_missing(self, endpoint_id: str) -> bool:
        """True when fal answers 404 "Application ... not found" for the endpoint's app.

        Part of the preflight, before any upload: a retired endpoint would otherwise only
        show itself as a failed submit per job, after every image was uploaded. Neither
        call creates a job or costs anything: fal's model list is asked first (an endpoint
        it lists exists); one it does not list (a private or unlisted app) is asked for
        the status of a request id that cannot exist, which fal's queue answers per app.
        Any other answer, or none, counts as "not missing": the batch's own calls decide.
        """
        try:
            listed = await self.request(
                "GET",
                f"{platform_url(self.backend)}/models",
                "model_lookup",
                params=[("endpoint_id", endpoint_id)],
                raise_errors=False,
                attempts=PREFLIGHT_ATTEMPTS,
            )
            if listed.status_code == 200:
                models = listed.json().get("models") or []
                if any(m.get("endpoint_id") == endpoint_id for m in models):
                    return False
            probe = await self.request(
                "GET",
                self.request_urls(endpoint_id, PROBE_REQUEST_ID)["status_url"],
                "app_check",
                raise_errors=False,
                attempts=PREFLIGHT_ATTEMPTS,
            )
            detail = probe.json().get("detail") if probe.status_code == 404 else None
        except (FalError, ValueError, AttributeError):
            return False
        return isinstance(detail, str) and bool(APP_NOT_FOUND.search(detail))

    # -- the queue ---------------------------------------------------------------------

    async def submit(
        self,
        endpoint_id: str,
        arguments: dict[str, Any],
        *,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """POST a job; returns fal's answer with request_id and the status/result/cancel URLs.
        `headers`: fal's request options (priority, start deadline, fallbacks)."""
        body = await self.json_call(
            "POST",
            f"{self.base}/{endpoint_id}",
            "submit",
            json=arguments,
            idempotent=False,
            headers=headers or {},
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
        body = await self.json_call(
            "GET", status_url, "status", params={"logs": "1" if logs else "0"}
        )
        if not isinstance(body, dict) or body.get("status") not in STATUSES:
            raise FalError(f"status: unexpected answer from fal: {json.dumps(body)[:200]}")
        return body

    async def status_stream(
        self, status_url: str, *, idle: float = STREAM_IDLE
    ) -> AsyncIterator[dict[str, Any]]:
        """fal's status stream (`GET {status_url}/stream`, server-sent events): yields each
        status object as fal sends it, the last one COMPLETED; one request for a job's life.

        One try under the request budget (a 429 slows the budget like any other). Raises
        :class:`StreamUnavailable` (refused for 404/405) when the stream cannot be opened,
        ends before COMPLETED, breaks, or stays silent for `idle` seconds (fal sends a
        keep-alive comment every 15 s, so silence means a stalled connection): the caller
        then polls. 401/403 are fal's errors as everywhere (a bad key stops the batch).
        """
        await self.budget.acquire()
        self.requests["status_stream"] += 1
        timeout = httpx.Timeout(self.timeout, connect=15.0, read=idle)
        try:
            async with self.stream_http.stream(
                "GET", status_url + "/stream", params={"logs": "0"}, timeout=timeout
            ) as response:
                code = response.status_code
                if code in (404, 405):
                    raise StreamUnavailable(f"status stream refused (HTTP {code})", refused=True)
                if code == 429:
                    self.requests["429"] += 1
                    self.budget.throttle(retry_after_seconds(response))
                if code in (401, 403):
                    await response.aread()
                    raise fal_error(response, "status stream", self.key)
                if code >= 300:
                    raise StreamUnavailable(f"status stream answered HTTP {code}")
                self.budget.relax()
                async for status in _sse_statuses(response):
                    yield status
                    if status["status"] == "COMPLETED":
                        return
        except httpx.TransportError as exc:
            what = type(exc).__name__
            raise StreamUnavailable(f"status stream broke ({what})") from None
        raise StreamUnavailable("status stream ended before COMPLETED")

    async def result(self, response_url: str, *, failed: bool = False) -> dict[str, Any]:
        """A job's output; for a job fal says failed, its 4xx/5xx answer *is* the error."""
        body = await self.json_call("GET", response_url, "result", retry_server_errors=not failed)
        if not isinstance(body, dict):
            raise FalError(f"result: fal's result is not a JSON object: {json.dumps(body)[:200]}")
        return body

    async def cancel(self, cancel_url: str) -> str:
        """Ask fal to cancel a request; its answer: ``OK`` (it left the queue and will never
        run), ``CANCELLATION_REQUESTED`` (the runner was told; it may still finish),
        ``ALREADY_COMPLETED`` or ``NOT_FOUND``. fal answers 202, 400 or 404 with one of
        these words; a body without one is named by its status code."""
        response = await self.request("PUT", cancel_url, "cancel", raise_errors=False)
        try:
            word = response.json().get("status")
        except (ValueError, AttributeError):
            word = None
        if isinstance(word, str) and word:
            return word
        if response.status_code == 404:
            return "NOT_FOUND"
        if response.status_code == 400:
            return "ALREADY_COMPLETED"
        if response.status_code >= 400:
            raise fal_error(response, "cancel", self.key)
        return "CANCELLATION_REQUESTED"

    # -- uploads (fal_client's wire format: CDN v3 token, then upload or multipart) ----------

    async def cdn_token(
        self, *, force: bool = False, stale: CdnToken | None = None, **call: Any
    ) -> CdnToken:
        """The CDN token uploads use, fetched once and renewed shortly before it expires (or
        when it is `stale`: rejected, and not yet replaced by a concurrent upload)."""
        async with self._token_lock:
            current = self._token
            if force or current is None or current is stale or not current.fresh():
                body = await self.json_call(
                    "POST",
                    f"{self.rest}/storage/auth/token",
                    "upload_token",
                    params={"storage_type": "fal-cdn-v3"},
                    json={},
                    **call,
                )
                try:
                    expires = datetime.fromisoformat(body["expires_at"])
                    if expires.tzinfo is None:
                        expires = expires.replace(tzinfo=UTC)
                    current = self._token = CdnToken(
                        str(body["token"]), str(body["token_type"]), str(body["base_url"]), expires
                    )
                except (KeyError, TypeError, ValueError):
                    raise NotFal(
                        "upload_token: HTTP 200 with JSON that is not a CDN token "
                        f"{{token, token_type, base_url, expires_at}}: {json.dumps(body)[:120]}"
                    ) from None
            return current

    async def cdn_request(self, method: str, url: str, what: str, **kwargs: Any) -> httpx.Response:
        """One CDN call with the current token; a rejected token (401) is renewed and the call
        tried again, since a token can expire between fetching and using it."""
        headers = dict(kwargs.pop("headers", {}))
        token = await self.cdn_token()
        renewed = False

        async def attempt() -> httpx.Response:
            nonlocal token, renewed
            headers["Authorization"] = token.header
            response = await self.send(self.cdn_http, what, method, url, headers=headers, **kwargs)
            if response.status_code == 401 and not renewed:
                renewed = True
                token = await self.cdn_token(stale=token)
                raise _Retry("the CDN token was rejected", response=response)
            retry_if_transient(response)
            if response.status_code >= 400:
                raise fal_error(response, what, self.key)
            return response

        return await retrying(attempt, give_up=self.gave_up(what), budget=self.budget)

    async def upload_file(
        self, path: str | os.PathLike, lifetime_seconds: int | None, data: bytes | None = None
    ) -> str:
        """Upload one file to fal's CDN; returns its URL. Files over fal_client's multipart
        threshold go up in parts, like fal_client sends them. ``data``: the file's bytes,
        already read (and checked) by the caller: sent as they are, not read again."""
        name = os.path.basename(path)
        headers = {"Content-Type": mimetypes.guess_type(name)[0] or "application/octet-stream"}
        # header values are ASCII: a name like "café 1.jpg" goes percent-encoded
        headers["X-Fal-File-Name"] = quote(name)
        if lifetime_seconds:
            lifecycle = json.dumps({"expiration_duration_seconds": int(lifetime_seconds)})
            headers["X-Fal-Object-Lifecycle"] = headers["X-Fal-Object-Lifecycle-Preference"] = (
                lifecycle
            )
        size = len(data) if data is not None else os.path.getsize(path)
        if size > MULTIPART_THRESHOLD:
            return await self.upload_multipart(path, size, headers)
        if data is None:
            data = await asyncio.to_thread(_read, path, 0, size)
        response = await self.cdn_request(
            "POST", f"{self.cdn}/files/upload", "upload", content=data, headers=headers
        )
        return _field(response, "access_url", "upload")

    async def upload_multipart(
        self, path: str | os.PathLike, size: int, headers: dict[str, str]
    ) -> str:
        """create, PUT each part (read from disk one at a time, so memory stays at one part;
        the uploader already runs several files at once), complete. A part is idempotent,
        so unlike fal_client's parts ours are retried."""
        token = await self.cdn_token()
        create = await self.cdn_request(
            "POST", f"{token.base_url}/files/upload/multipart", "upload", headers=headers
        )
        access_url = _field(create, "access_url", "upload")
        upload_id = _field(create, "uploadId", "upload")
        part_headers = {"Content-Type": headers["Content-Type"], "Accept-Encoding": "identity"}
        parts = []
        for number, offset in enumerate(range(0, size, MULTIPART_CHUNK), start=1):
            chunk = await asyncio.to_thread(_read, path, offset, MULTIPART_CHUNK)
            answer = await self.cdn_request(
                "PUT",
                f"{access_url}/multipart/{upload_id}/{number}",
                "upload_part",
                content=chunk,
                headers=part_headers,
            )
            etag = answer.headers.get("etag")
            if not etag:
                raise FalError(f"upload: fal's CDN answered part {number} without an ETag.")
            parts.append({"partNumber": number, "etag": etag})
        await self.cdn_request(
            "POST",
            f"{access_url}/multipart/{upload_id}/complete",
            "upload",
            json={"parts": parts},
        )
        return access_url


async def _sse_statuses(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """The status objects of a server-sent event stream: `data:` lines joined per event (a
    blank line ends one), comments (`:`, fal's keep-alives) and other fields skipped."""
    data: list[str] = []
    async for line in response.aiter_lines():
        if line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
            continue
        if line or not data:
            continue
        text, data = "\n".join(data), []
        try:
            status = json.loads(text)
        except ValueError:
            raise StreamUnavailable("status stream sent an event that is not JSON") from None
        if not isinstance(status, dict) or status.get("status") not in STATUSES:
            raise StreamUnavailable(f"status stream sent an unexpected event: {text[:200]}")
        yield status


def _read(path: str | os.PathLike, offset: int, length: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(length)


def _field(response: httpx.Response, name: str, what: str) -> str:
    try:
        value = response.json()[name]
    except (ValueError, KeyError, TypeError):
        value = None
    if not isinstance(value, str):
        raise FalError(f"{what}: fal's CDN answer has no {name}.")
    return value
