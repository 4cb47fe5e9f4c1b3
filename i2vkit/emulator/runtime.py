"""What every part of one running emulator shares: knobs, clocks, counters, disk and threads.

Storage, the queue and the routes each get this one :class:`Runtime` instead of a
reference to the whole emulator, so each part sees only the shared state and none of the
others' internals. Everything here is touched on the emulator's event loop only.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, overload

from aiohttp import web

__all__ = ["Clock", "Runtime", "Stats", "Tally"]

T = TypeVar("T")


class Clock:
    """The emulator's clocks.

    Job timing uses the event loop's monotonic clock. Expiry (files, results, tokens) uses
    the same clock plus ``offset``, which :meth:`advance` moves forward so tests of TTLs
    need not wait; token expiry is on the wall clock (fal reports it as a date).
    """

    def __init__(self) -> None:
        self.offset = 0.0
        self.loop: asyncio.AbstractEventLoop | None = None

    def loop_time(self) -> float:
        return (self.loop or asyncio.get_running_loop()).time()

    def now(self) -> float:
        """The expiry clock."""
        return self.loop_time() + self.offset

    def wall_now(self) -> float:
        """The expiry clock on the wall (for token expiry dates)."""
        return time.time() + self.offset

    @overload
    def to_wall(self, loop_seconds: float) -> float: ...
    @overload
    def to_wall(self, loop_seconds: float | None) -> float | None: ...
    def to_wall(self, loop_seconds: float | None) -> float | None:
        """A loop-clock instant (a job's submitted/started/finished time) as ``time.time()``."""
        if loop_seconds is None:
            return None
        return loop_seconds + time.time() - self.loop_time()

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@dataclass
class Tally:
    """A counter with a breakdown by key (by endpoint, by request id)."""

    total: int = 0
    by: dict[str, int] = field(default_factory=dict)

    def add(self, key: str) -> None:
        self.total += 1
        self.by[key] = self.by.get(key, 0) + 1


@dataclass
class Stats:
    """The request and traffic counters behind ``GET /_emulator/stats``."""

    max_concurrency: int = 0
    requests: int = 0
    responses: dict[str, int] = field(
        default_factory=lambda: {"401": 0, "403": 0, "422": 0, "429": 0}
    )
    token_requests: int = 0
    uploads: int = 0
    upload_bytes: int = 0
    upload_hashes: dict[str, int] = field(default_factory=dict)
    multipart_uploads: int = 0
    multipart_parts: int = 0
    submits: Tally = field(default_factory=Tally)
    status_requests: Tally = field(default_factory=Tally)
    result_requests: Tally = field(default_factory=Tally)
    cancels: Tally = field(default_factory=Tally)
    history_requests: int = 0
    downloads: int = 0
    download_bytes: int = 0
    downloads_dropped: int = 0
    downloads_aborted: int = 0
    encodes: int = 0
    injected_failures: int = 0
    rate_limited: int = 0

    def count_response(self, status: int) -> None:
        self.responses[str(status)] = self.responses.get(str(status), 0) + 1

    def count_upload(self, size: int, digest: str) -> None:
        self.uploads += 1
        self.upload_bytes += size
        self.upload_hashes[digest] = self.upload_hashes.get(digest, 0) + 1

    def snapshot(self) -> dict[str, Any]:
        def tally(t: Tally, by: str) -> dict[str, Any]:
            return {"total": t.total, by: dict(t.by)}

        return {
            "requests": self.requests,
            "responses": dict(self.responses),
            "token_requests": self.token_requests,
            "uploads": self.uploads,
            "upload_bytes": self.upload_bytes,
            "upload_hashes": dict(self.upload_hashes),
            "multipart_uploads": self.multipart_uploads,
            "multipart_parts": self.multipart_parts,
            "submits": tally(self.submits, "by_endpoint"),
            "status_requests": tally(self.status_requests, "by_request"),
            "result_requests": tally(self.result_requests, "by_request"),
            "cancels": tally(self.cancels, "by_request"),
            "history_requests": self.history_requests,
            "downloads": self.downloads,
            "download_bytes": self.download_bytes,
            "downloads_dropped": self.downloads_dropped,
            "downloads_aborted": self.downloads_aborted,
            "encodes": self.encodes,
            "max_concurrency": self.max_concurrency,
            "injected_failures": self.injected_failures,
            "rate_limited": self.rate_limited,
        }


@dataclass
class Runtime:
    """The shared state of one emulator (see the module docstring)."""

    knobs: dict[str, Any]
    host: str
    port: int
    public_url: str | None = None
    clock: Clock = field(default_factory=Clock)
    stats: Stats = field(default_factory=Stats)
    storage_dir: Path | None = None
    executor: concurrent.futures.ThreadPoolExecutor | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:41234`` (no trailing slash)."""
        if self.public_url:
            return self.public_url
        host = self.host
        if host in ("0.0.0.0", ""):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    def base(self, request: web.Request) -> str:
        """The base URL to write into returned URLs: the Host the client used."""
        if self.public_url:
            return self.public_url
        return f"{request.scheme}://{request.host}"

    def is_own_url(self, parsed: urllib.parse.SplitResult, base: str) -> bool:
        """Whether a URL points at this emulator (by the base a client used, or by address)."""
        netloc = parsed.netloc.lower()
        if netloc in (urllib.parse.urlsplit(base).netloc.lower(),
                      urllib.parse.urlsplit(self.url).netloc.lower()):  # fmt: skip
            return True
        host = (parsed.hostname or "").lower()
        return host in ("127.0.0.1", "localhost", "::1", self.host.lower()) and (
            parsed.port == self.port
        )

    def path(self, *parts: str) -> Path:
        assert self.storage_dir is not None, "the emulator is not started"
        return self.storage_dir.joinpath(*parts)

    async def in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking ``fn(*args)`` (file copies, encodes) on the emulator's small pool."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)
