"""A local fal.ai emulator that speaks fal's real wire protocol.

One aiohttp server on one port answers what fal spreads over three hosts:

* REST (``rest.fal.ai``): ``POST /storage/auth/token`` and the legacy
  ``POST /storage/upload/initiate`` (+ ``PUT`` of the signed URL);
* CDN (``v3.fal.media``): ``POST /files/upload``, the multipart upload
  (``POST /files/upload/multipart``, ``PUT .../multipart/{id}/{n}``,
  ``POST .../multipart/{id}/complete``) and ``GET /files/...`` with Range;
* queue (``queue.fal.run``): ``POST /{endpoint_id}``, ``GET
  /{owner}/{alias}/requests/{id}[/status]`` and ``PUT .../cancel``.

Jobs turn the submitted image into a small, real H.264 mp4 (see
:mod:`i2vkit.video`), encoded once per distinct image. Knobs inject the
failures a real batch meets (locked account, 429s, 5xx bursts, failing jobs,
dropped downloads, expiring files and results, limited concurrency).

It proves our side of the protocol; it does not render generative video.

Use it in-process::

    with Emulator(port=0, job_seconds=0) as emu:
        with patch_fal_client(emu.url):
            ...  # fal_client talks to emu

or as a process: ``i2vkit emulator --port 8765`` / ``python -m i2vkit.emulator``
(the first stdout line is the base URL).

Design decisions where fal's behaviour is not documented:

* ``GET .../requests/{id}`` before the job is COMPLETED answers
  ``400 {"detail": "Request is still in progress", "status": "IN_QUEUE"|"IN_PROGRESS"}``
  (fal_client never does that: it polls status first).
* A cancelled queued job becomes COMPLETED with ``error_type``
  ``"request_cancelled"``; its result is ``400 {"detail": "Request was cancelled",
  "error_type": "request_cancelled"}``. A running job keeps running (fal only
  signals the runner) unless the ``cancel_running`` knob is set.
* Expired results (``result_ttl``) answer 404 on the result endpoint; the status
  endpoint still says COMPLETED. Expired or unknown files answer 404.
* Result video: ``{"video": {"url", "content_type": "video/mp4",
  "file_name": "output.mp4", "file_size"}, "seed"}``; every job gets its own URL.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import concurrent.futures
import contextlib
import hashlib
import json
import logging
import math
import os
import random
import re
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from i2vkit import video as _video

__all__ = [
    "DEFAULT_KNOBS",
    "Emulator",
    "EmulatorClient",
    "EmulatorProcess",
    "main",
    "patch_fal_client",
]

log = logging.getLogger("i2vkit.emulator")

# --------------------------------------------------------------------------- knobs

DEFAULT_KNOBS: dict[str, Any] = {
    # 403 "User is locked" on submits and storage calls
    "locked": False,
    # job run time in seconds: a number or a (min, max) pair drawn per job
    "job_seconds": 1.0,
    # jobs IN_PROGRESS at once (None = unlimited); the rest wait IN_QUEUE, FIFO
    "concurrency": None,
    # fraction of jobs that complete with an error (deterministic given seed)
    "fail_rate": 0.0,
    # which error those jobs get: mixed | validation | runner | timeout | internal
    "fail_kind": "mixed",
    # requests per second over all endpoints (token bucket); None = unlimited
    "rate_limit": None,
    # bucket size; None = max(1, rate_limit)
    "rate_burst": None,
    # the next N requests get fail_status with an nginx body (an ingress error)
    "fail_next": 0,
    "fail_status": 503,
    # GET /files responses cut off mid-body: a fraction (float < 1) or a count (int)
    "drop_downloads": 0,
    # seconds after which stored files answer 404 (None = never)
    "file_ttl": None,
    # seconds results stay fetchable after completion (None = fal's 1 h / 6 min >= 10 KB)
    "result_ttl": None,
    # bytes: pad the served video to exactly this size (None = the real clip)
    "video_size": None,
    # seed for job durations, failures, dropped downloads and result seeds
    "seed": 0,
    # cancel aborts running jobs too (fal only signals the runner)
    "cancel_running": False,
    # CDN token lifetime in seconds
    "token_ttl": 3600,
    # JSON values that replace the result of the next successful jobs, one each, in the
    # order jobs finish (malformed results, odd URLs); an empty list = real results
    "result_override": [],
    # clip shape
    "clip_seconds": 1.5,
    "clip_fps": 12,
    "clip_max_side": 256,
}

FAIL_KINDS = ("mixed", "validation", "runner", "timeout", "internal")
LOCKED_DETAIL = (
    "User is locked. Reason: Exhausted balance. Top up your balance at fal.ai/dashboard/billing."
)
RESERVED_ROOTS = {"files", "storage", "_emulator"}
APP_NAMESPACES = ("workflows", "comfy")
SMALL_RESULT_TTL = 3600.0
LARGE_RESULT_TTL = 360.0
LARGE_RESULT_BYTES = 10 * 1024
CHUNK = 1024 * 1024

_HTTP_REASONS = {
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Temporarily Unavailable",
    504: "Gateway Time-out",
}


def _parse_size(value: Any) -> int | None:
    """``500MB``/``1GiB``/``123`` -> bytes."""
    if value is None or value == "" or value is False:
        return None
    if isinstance(value, int | float):
        n = int(value)
        return n if n > 0 else None
    s = str(value).strip().lower().replace(" ", "")
    if s in ("none", "0", "off"):
        return None
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([kmgt]?)(i?b?)", s)
    if not m:
        raise ValueError(f"bad size {value!r}: use bytes or e.g. 500MB, 1GiB")
    num, unit, suffix = float(m.group(1)), m.group(2), m.group(3)
    base = 1024 if suffix.startswith("i") else 1000
    mult = {"": 1, "k": base, "m": base**2, "g": base**3, "t": base**4}[unit]
    return int(num * mult) or None


def _parse_job_seconds(value: Any) -> float | tuple[float, float]:
    if isinstance(value, str):
        parts = [p for p in re.split(r"[,:]", value) if p.strip()]
        value = float(parts[0]) if len(parts) == 1 else tuple(float(p) for p in parts)
    if isinstance(value, list | tuple):
        if len(value) != 2:
            raise ValueError("job_seconds range must be (min, max)")
        lo, hi = float(value[0]), float(value[1])
        if lo < 0 or hi < lo:
            raise ValueError("job_seconds range must satisfy 0 <= min <= max")
        return (lo, hi)
    v = float(value)
    if v < 0:
        raise ValueError("job_seconds must be >= 0")
    return v


def _opt_float(value: Any, name: str, *, minimum: float = 0.0) -> float | None:
    if value is None or value == "" or (isinstance(value, str) and value.lower() == "none"):
        return None
    v = float(value)
    if v < minimum:
        raise ValueError(f"{name} must be >= {minimum}")
    return v


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _coerce_knob(name: str, value: Any) -> Any:
    if name not in DEFAULT_KNOBS:
        raise ValueError(f"unknown emulator knob {name!r}; known: {', '.join(DEFAULT_KNOBS)}")
    if name in ("locked", "cancel_running"):
        return _bool(value)
    if name == "job_seconds":
        return _parse_job_seconds(value)
    if name == "concurrency":
        if value is None or value == 0 or (isinstance(value, str) and value.lower() == "none"):
            return None
        v = int(value)
        if v < 1:
            raise ValueError("concurrency must be >= 1 (or None for unlimited)")
        return v
    if name == "fail_rate":
        v = float(value)
        if not 0.0 <= v <= 1.0:
            raise ValueError("fail_rate must be within [0, 1]")
        return v
    if name == "fail_kind":
        if value not in FAIL_KINDS:
            raise ValueError(f"fail_kind must be one of {FAIL_KINDS}")
        return value
    if name == "rate_limit":
        v = _opt_float(value, name)
        return v if v else None
    if name == "rate_burst":
        v = _opt_float(value, name, minimum=1.0)
        return v
    if name == "fail_next":
        v = int(value or 0)
        if v < 0:
            raise ValueError("fail_next must be >= 0")
        return v
    if name == "fail_status":
        v = int(value)
        if not 400 <= v <= 599:
            raise ValueError("fail_status must be an HTTP error status")
        return v
    if name == "drop_downloads":
        if value is None or value is False:
            return 0
        if isinstance(value, str):
            value = float(value) if ("." in value or "e" in value.lower()) else int(value)
        if isinstance(value, float):
            if not 0.0 <= value <= 1.0:
                raise ValueError("drop_downloads as a fraction must be within [0, 1]")
            return value
        v = int(value)
        if v < 0:
            raise ValueError("drop_downloads count must be >= 0")
        return v
    if name in ("file_ttl", "result_ttl"):
        return _opt_float(value, name)
    if name == "video_size":
        return _parse_size(value)
    if name == "seed":
        return int(value)
    if name == "token_ttl":
        v = float(value)
        if v <= 0:
            raise ValueError("token_ttl must be > 0")
        return v
    if name == "clip_seconds":
        v = float(value)
        if v <= 0:
            raise ValueError("clip_seconds must be > 0")
        return v
    if name == "result_override":
        if value is None:
            return []
        if isinstance(value, str):
            value = json.loads(value)
        if not isinstance(value, list):
            raise ValueError("result_override must be a list of JSON values")
        return list(value)
    if name in ("clip_fps", "clip_max_side"):
        v = int(value)
        if v < 2:
            raise ValueError(f"{name} must be >= 2")
        return v
    return value  # pragma: no cover


# --------------------------------------------------------------------------- state


@dataclass(eq=False)
class StoredFile:
    fid: str
    name: str
    path: Path
    content_type: str
    size: int
    created: float  # loop clock
    expires_at: float | None = None  # loop clock, from a lifecycle header
    shared: bool = False  # the path belongs to the clip cache: never delete


@dataclass(eq=False)
class Job:
    id: str
    index: int
    endpoint: str
    app: str
    payload: dict[str, Any]
    image_field: str | None
    duration: float
    fail: str | None  # failure kind drawn at submit, or None
    seed: int
    submitted_at: float
    output_ttl: float | None = None
    base: str = ""
    state: str = "IN_QUEUE"
    started_at: float | None = None
    finished_at: float | None = None
    logs: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    error_type: str | None = None
    result_status: int = 200
    result_body: Any = None
    result_headers: dict[str, str] = field(default_factory=dict)
    result_size: int = 0
    cancelled: bool = False
    aborting: bool = False
    task: asyncio.Task | None = None
    done_at: float | None = None  # _now() at completion (result expiry)


class JobError(Exception):
    def __init__(self, status: int, body: Any, error: str, error_type: str, headers=None):
        super().__init__(error)
        self.status = status
        self.body = body
        self.error = error
        self.error_type = error_type
        self.headers = headers or {}


def _validation_error(
    loc: list[str], msg: str, type_: str, value: Any = None, **extra: Any
) -> dict[str, Any]:
    d: dict[str, Any] = {"loc": loc, "msg": msg, "type": type_}
    if type_ not in ("value_error.missing", "type_error.str", "type_error.dict"):
        d["url"] = f"https://docs.fal.ai/errors#{type_}"
        d["ctx"] = {}
        d["input"] = value
    d.update(extra)
    return d


def _field_error(field_name: str, type_: str, msg: str, value: Any) -> JobError:
    if isinstance(value, str) and value.startswith("data:") and len(value) > 80:
        value = value[:64] + "..."
    detail = [_validation_error(["body", field_name], msg, type_, value)]
    return JobError(422, {"detail": detail}, msg, type_)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


def _safe_name(name: str | None, content_type: str) -> str:
    if name:
        name = os.path.basename(name.replace("\\", "/"))
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or ""
    if not name:
        import mimetypes

        ext = mimetypes.guess_extension((content_type or "").split(";")[0].strip()) or ".bin"
        name = "upload" + ext
    return name[:200]


def _rand_id(n: int = 21) -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"
    return "".join(secrets.choice(alphabet) for _ in range(n))


def _app_of(endpoint: str) -> str:
    parts = endpoint.split("/")
    if parts[0] in APP_NAMESPACES and len(parts) >= 3:
        return "/".join(parts[:3])
    return "/".join(parts[:2])


def _required_fields(endpoint: str) -> tuple[list[str], str | None]:
    """(required string fields, the image field) for an endpoint id."""
    if re.search(r"kling-video/(v2\.6|v3)/", endpoint):
        return ["prompt", "start_image_url"], "start_image_url"
    if "luma-dream-machine/ray-2" in endpoint:
        return ["prompt"], "image_url"
    return ["prompt", "image_url"], "image_url"


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(body).encode(),
        content_type="application/json",
        headers=headers,
    )


def _ingress_html(status: int) -> str:
    reason = _HTTP_REASONS.get(status, "Error")
    return (
        f"<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
        f"<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n"
        "</body>\r\n</html>\r\n"
    )


class _Stats:
    def __init__(self) -> None:
        self.reset(0)

    def reset(self, running: int) -> None:
        self.requests = 0
        self.responses: dict[str, int] = {"401": 0, "403": 0, "422": 0, "429": 0}
        self.token_requests = 0
        self.uploads = 0
        self.upload_bytes = 0
        self.upload_hashes: dict[str, int] = {}
        self.multipart_uploads = 0
        self.multipart_parts = 0
        self.submits = 0
        self.submits_by_endpoint: dict[str, int] = {}
        self.status_requests = 0
        self.status_by_request: dict[str, int] = {}
        self.result_requests = 0
        self.result_by_request: dict[str, int] = {}
        self.cancels = 0
        self.cancels_by_request: dict[str, int] = {}
        self.downloads = 0
        self.download_bytes = 0
        self.downloads_dropped = 0
        self.downloads_aborted = 0
        self.encodes = 0
        self.max_concurrency = running
        self.injected_failures = 0
        self.rate_limited = 0


# --------------------------------------------------------------------------- emulator


class Emulator:
    """The fal emulator. ``with Emulator(port=0, **knobs) as emu: emu.url``.

    ``key``: the one ``id:secret`` accepted (default: any ``id:secret``).
    ``host``: bind address (127.0.0.1 by default; loopback only).
    ``storage_dir``: where uploads and clips live on disk (default: a fresh
    temporary folder removed on exit; a given folder is kept).
    ``public_url``: base URL written into returned URLs (default: the Host the
    client used). Other keyword arguments are knobs, see :data:`DEFAULT_KNOBS`.
    """

    def __init__(
        self,
        port: int = 0,
        key: str | None = None,
        *,
        host: str = "127.0.0.1",
        storage_dir: str | os.PathLike | None = None,
        public_url: str | None = None,
        access_log: bool = False,
        **knobs: Any,
    ) -> None:
        if key is not None and not self._key_shape_ok(key):
            raise ValueError("key must look like ID:SECRET")
        self.host = host
        self.port = port
        self.key = key
        self.public_url = public_url.rstrip("/") if public_url else None
        self._access_log = access_log
        self._own_storage = storage_dir is None
        self._storage_arg = storage_dir
        self.storage_dir: Path | None = None
        self.knobs: dict[str, Any] = dict(DEFAULT_KNOBS)
        for k, v in knobs.items():
            self.knobs[k] = _coerce_knob(k, v)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._sock: socket.socket | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._started = False
        self._init_state()

    # ------------------------------------------------------------ lifecycle

    def _init_state(self) -> None:
        self._stats = _Stats()
        self._files: dict[str, StoredFile] = {}
        self._tokens: dict[str, float] = {}  # token -> wall-clock expiry
        self._multipart: dict[str, dict[str, Any]] = {}
        self._signed: dict[str, dict[str, Any]] = {}
        self._jobs: dict[str, Job] = {}
        self._queue: deque[Job] = deque()
        self._qpos: dict[str, int] | None = None
        self._running = 0
        self._job_counter = 0
        self._clips: dict[str, asyncio.Future] = {}
        self._padded: dict[tuple[str, int], asyncio.Future] = {}
        self._bucket_tokens = 0.0
        self._bucket_at = 0.0
        self._drop_rng = random.Random(f"{self.knobs['seed']}:drop")
        self._state_counts = {"IN_QUEUE": 0, "IN_PROGRESS": 0, "COMPLETED": 0}
        self._failed = 0
        self._cancelled = 0
        self._clock_offset = 0.0

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

    def start(self) -> Emulator:
        if self._started:
            return self
        if self._own_storage:
            self.storage_dir = Path(tempfile.mkdtemp(prefix="i2vkit-emulator-"))
        else:
            self.storage_dir = Path(self._storage_arg)  # type: ignore[arg-type]
            self.storage_dir.mkdir(parents=True, exist_ok=True)
        for sub in ("files", "clips", "parts"):
            (self.storage_dir / sub).mkdir(exist_ok=True)
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(1024)
        sock.setblocking(False)
        self._sock = sock
        self.port = sock.getsockname()[1]
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=2, thread_name_prefix="i2vkit-emulator"
        )
        ready = threading.Event()
        errors: list[BaseException] = []
        self._thread = threading.Thread(
            target=self._thread_main, args=(ready, errors), name="i2vkit-emulator", daemon=True
        )
        self._thread.start()
        ready.wait()
        if errors:
            raise errors[0]
        self._started = True
        return self

    def _thread_main(self, ready: threading.Event, errors: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            self._bucket_at = loop.time()
            app = self._make_app()
            kwargs: dict[str, Any] = {"handle_signals": False, "shutdown_timeout": 0.25}
            if not self._access_log:
                kwargs["access_log"] = None
            self._runner = web.AppRunner(app, **kwargs)
            loop.run_until_complete(self._runner.setup())
            site = web.SockSite(self._runner, self._sock)  # type: ignore[arg-type]
            loop.run_until_complete(site.start())
        except BaseException as exc:  # pragma: no cover - startup failure
            errors.append(exc)
            ready.set()
            loop.close()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._shutdown())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _shutdown(self) -> None:
        for job in list(self._jobs.values()):
            if job.task is not None and not job.task.done():
                job.task.cancel()
        if self._runner is not None:
            with contextlib.suppress(Exception):
                await self._runner.cleanup()

    def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        assert self._loop is not None and self._thread is not None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
        if self._own_storage and self.storage_dir is not None:
            shutil.rmtree(self.storage_dir, ignore_errors=True)

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> Emulator:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)

    # ------------------------------------------------------------ thread-safe API

    def _call(self, fn, *args):
        """Run ``fn(*args)`` on the emulator's loop and return its result."""
        if not self._started or self._loop is None:
            return fn(*args)
        if threading.current_thread() is self._thread:
            return fn(*args)

        async def _run():
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(_run(), self._loop).result(timeout=30)

    def configure(self, **knobs: Any) -> dict[str, Any]:
        """Change knobs at run time (thread-safe). Returns all knobs."""
        coerced = {k: _coerce_knob(k, v) for k, v in knobs.items()}
        return self._call(self._apply_knobs, coerced)

    def stats(self) -> dict[str, Any]:
        """A snapshot of the counters (the same JSON as ``GET /_emulator/stats``)."""
        return self._call(self._stats_snapshot)

    def reset_stats(self) -> None:
        """Zero the counters (jobs and files stay)."""
        self._call(self._reset_stats)

    def job(self, request_id: str) -> dict[str, Any] | None:
        """Debug view of one job (state, timings, error)."""
        return self._call(self._job_view, request_id)

    def advance_clock(self, seconds: float) -> None:
        """Move the emulator's expiry clock forward (file, result and token
        expiry; job timers are not affected). For tests of TTLs without waiting."""
        if seconds < 0:
            raise ValueError("seconds must be >= 0")
        self._call(self._advance, float(seconds))

    def _advance(self, seconds: float) -> None:
        self._clock_offset += seconds

    def _now(self) -> float:
        """The expiry clock: the loop's monotonic clock plus advance_clock()."""
        assert self._loop is not None
        return self._loop.time() + self._clock_offset

    # ------------------------------------------------------------ knob/stats internals

    def _apply_knobs(self, coerced: dict[str, Any]) -> dict[str, Any]:
        self.knobs.update(coerced)
        if "seed" in coerced:
            self._drop_rng = random.Random(f"{self.knobs['seed']}:drop")
        if "rate_limit" in coerced or "rate_burst" in coerced:
            self._bucket_tokens = self._burst()
            if self._loop is not None:
                self._bucket_at = self._loop.time()
        if "concurrency" in coerced:
            self._pump()
        return self._knobs_view()

    def _knobs_view(self) -> dict[str, Any]:
        out = dict(self.knobs)
        out["result_override"] = list(out["result_override"])
        if isinstance(out["job_seconds"], tuple):
            out["job_seconds"] = list(out["job_seconds"])
        return out

    def _reset_stats(self) -> None:
        self._stats.reset(self._running)

    def _stats_snapshot(self) -> dict[str, Any]:
        s = self._stats
        return {
            "requests": s.requests,
            "responses": dict(s.responses),
            "token_requests": s.token_requests,
            "uploads": s.uploads,
            "upload_bytes": s.upload_bytes,
            "upload_hashes": dict(s.upload_hashes),
            "multipart_uploads": s.multipart_uploads,
            "multipart_parts": s.multipart_parts,
            "submits": {"total": s.submits, "by_endpoint": dict(s.submits_by_endpoint)},
            "status_requests": {
                "total": s.status_requests,
                "by_request": dict(s.status_by_request),
            },
            "result_requests": {
                "total": s.result_requests,
                "by_request": dict(s.result_by_request),
            },
            "cancels": {"total": s.cancels, "by_request": dict(s.cancels_by_request)},
            "downloads": s.downloads,
            "download_bytes": s.download_bytes,
            "downloads_dropped": s.downloads_dropped,
            "downloads_aborted": s.downloads_aborted,
            "encodes": s.encodes,
            "max_concurrency": s.max_concurrency,
            "in_progress": self._running,
            "in_queue": len(self._queue),
            "jobs": {
                **self._state_counts,
                "failed": self._failed,
                "cancelled": self._cancelled,
                "total": len(self._jobs),
            },
            "injected_failures": s.injected_failures,
            "rate_limited": s.rate_limited,
            "files": len(self._files),
        }

    def _job_view(self, request_id: str) -> dict[str, Any] | None:
        job = self._jobs.get(request_id)
        if job is None:
            return None
        return {
            "request_id": job.id,
            "endpoint": job.endpoint,
            "state": job.state,
            "duration": job.duration,
            "fail": job.fail,
            "submitted_at": job.submitted_at,
            "started_at": job.started_at,
            "finished_at": job.finished_at,
            "error": job.error,
            "error_type": job.error_type,
            "result_status": job.result_status if job.state == "COMPLETED" else None,
            "cancelled": job.cancelled,
        }

    # ------------------------------------------------------------ app

    def _make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024**2)
        r = app.router
        r.add_get("/_emulator/stats", self._h_stats)
        r.add_get("/_emulator/config", self._h_get_config)
        r.add_post("/_emulator/config", self._h_config)
        r.add_post("/_emulator/reset", self._h_reset)
        r.add_get("/_emulator/health", self._h_health)
        r.add_post("/_emulator/advance", self._h_advance)
        r.add_post("/storage/auth/token", self._h_token)
        r.add_post("/storage/upload/initiate", self._h_initiate)
        r.add_put("/storage/upload/signed/{uid}", self._h_signed_put)
        r.add_post("/files/upload", self._h_upload)
        r.add_post("/files/upload/multipart", self._h_multipart_create)
        r.add_get("/files/{tail:.+}", self._h_file_get)  # also HEAD
        r.add_put("/files/{tail:.+}", self._h_multipart_part)
        r.add_post("/files/{tail:.+}", self._h_multipart_complete)
        r.add_post("/{tail:.+}", self._h_submit)
        r.add_get("/{tail:.+}", self._h_queue_get)
        r.add_put("/{tail:.+}", self._h_cancel)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler) -> web.StreamResponse:
        if request.path.startswith("/_emulator/"):
            return await handler(request)
        s = self._stats
        s.requests += 1
        k = self.knobs
        if k["fail_next"] > 0:
            k["fail_next"] -= 1
            s.injected_failures += 1
            status = k["fail_status"]
            self._count(status)
            return web.Response(status=status, text=_ingress_html(status), content_type="text/html")
        if k["rate_limit"]:
            wait = self._take_token()
            if wait > 0:
                s.rate_limited += 1
                self._count(429)
                return _json(
                    429,
                    {"detail": "Rate limit exceeded"},
                    {"Retry-After": str(max(1, math.ceil(wait))), "x-fal-request-id": _rand_id()},
                )
        try:
            resp = await handler(request)
        except web.HTTPException as exc:
            self._count(exc.status)
            raise
        self._count(resp.status)
        if not resp.prepared and "x-fal-request-id" not in resp.headers:
            resp.headers["x-fal-request-id"] = str(uuid.uuid4())
        return resp

    def _count(self, status: int) -> None:
        key = str(status)
        self._stats.responses[key] = self._stats.responses.get(key, 0) + 1

    def _burst(self) -> float:
        k = self.knobs
        if k["rate_burst"]:
            return float(k["rate_burst"])
        return max(1.0, float(k["rate_limit"] or 1.0))

    def _take_token(self) -> float:
        """Token bucket: 0 if allowed, else seconds until a token is available."""
        assert self._loop is not None
        now = self._loop.time()
        rate = float(self.knobs["rate_limit"])
        burst = self._burst()
        self._bucket_tokens = min(burst, self._bucket_tokens + (now - self._bucket_at) * rate)
        self._bucket_at = now
        if self._bucket_tokens >= 1.0:
            self._bucket_tokens -= 1.0
            return 0.0
        return (1.0 - self._bucket_tokens) / rate

    def _base(self, request: web.Request) -> str:
        if self.public_url:
            return self.public_url
        return f"{request.scheme}://{request.host}"

    # ------------------------------------------------------------ auth helpers

    @staticmethod
    def _key_shape_ok(cred: str) -> bool:
        key_id, sep, secret = cred.partition(":")
        return bool(sep and key_id.strip() and secret.strip())

    def _check_key(self, request: web.Request) -> web.Response | None:
        header = request.headers.get("Authorization", "").strip()
        if not header:
            return _json(401, {"detail": "Missing authorization header"})
        scheme, _, cred = header.partition(" ")
        cred = cred.strip()
        if scheme.lower() != "key" or not self._key_shape_ok(cred):
            return _json(
                401, {"detail": "Invalid authorization header, expected 'Key <id>:<secret>'"}
            )
        if self.key is not None and not secrets.compare_digest(cred, self.key):
            return _json(401, {"detail": "No user found for Key ID and Secret"})
        return None

    def _check_token(self, request: web.Request) -> web.Response | None:
        header = request.headers.get("Authorization", "").strip()
        if not header:
            return _json(401, {"detail": "Missing authorization header"})
        scheme, _, token = header.partition(" ")
        expiry = self._tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if expiry is None:
            return _json(401, {"detail": "Invalid or missing upload token"})
        if time.time() + self._clock_offset >= expiry:
            return _json(401, {"detail": "Upload token expired"})
        return None

    def _check_locked(self) -> web.Response | None:
        if self.knobs["locked"]:
            return _json(403, {"detail": LOCKED_DETAIL})
        return None

    # ------------------------------------------------------------ emulator control

    async def _h_stats(self, request: web.Request) -> web.Response:
        return _json(200, self._stats_snapshot())

    async def _h_get_config(self, request: web.Request) -> web.Response:
        return _json(200, self._knobs_view())

    async def _h_config(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise ValueError("expected a JSON object of knobs")
            coerced = {k: _coerce_knob(k, v) for k, v in body.items()}
        except (ValueError, TypeError) as exc:
            return _json(400, {"detail": str(exc)})
        return _json(200, self._apply_knobs(coerced))

    async def _h_reset(self, request: web.Request) -> web.Response:
        self._reset_stats()
        return _json(200, {"ok": True})

    async def _h_health(self, request: web.Request) -> web.Response:
        return _json(200, {"ok": True})

    async def _h_advance(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            seconds = float(body["seconds"])
            if seconds < 0:
                raise ValueError("seconds must be >= 0")
        except (ValueError, KeyError, TypeError) as exc:
            return _json(400, {"detail": f"expected {{'seconds': N >= 0}}: {exc}"})
        self._advance(seconds)
        return _json(200, {"clock_offset": self._clock_offset})

    # ------------------------------------------------------------ storage

    def _lifecycle_seconds(self, request: web.Request, *headers: str) -> float | None:
        for h in headers:
            raw = request.headers.get(h)
            if not raw:
                continue
            try:
                data = json.loads(raw)
                secs = data.get("expiration_duration_seconds")
                if secs is not None and float(secs) > 0:
                    return float(secs)
            except (ValueError, TypeError, AttributeError):
                continue
        return None

    async def _h_token(self, request: web.Request) -> web.Response:
        self._stats.token_requests += 1
        if (err := self._check_key(request)) or (err := self._check_locked()):
            return err
        storage_type = request.query.get("storage_type", "fal-cdn-v3")
        if storage_type != "fal-cdn-v3":
            return _json(400, {"detail": f"Unsupported storage type: {storage_type}"})
        token = secrets.token_urlsafe(32)
        ttl = float(self.knobs["token_ttl"])
        expiry = time.time() + self._clock_offset + ttl
        self._tokens[token] = expiry
        expires_at = datetime.now(UTC) + timedelta(seconds=ttl)
        return _json(
            200,
            {
                "token": token,
                "token_type": "Bearer",
                "base_url": self._base(request),
                "expires_at": expires_at.isoformat(),
            },
        )

    async def _receive_to(self, request: web.Request, path: Path, *, md5: bool = False):
        """Stream the request body to ``path``. Returns (size, sha256 hex, md5 hex)."""
        sha = hashlib.sha256()
        m = hashlib.md5() if md5 else None
        size = 0
        with open(path, "wb") as f:
            async for chunk in request.content.iter_chunked(CHUNK):
                f.write(chunk)
                sha.update(chunk)
                if m is not None:
                    m.update(chunk)
                size += len(chunk)
        return size, sha.hexdigest(), (m.hexdigest() if m else None)

    def _register_upload(self, size: int, digest: str) -> None:
        s = self._stats
        s.uploads += 1
        s.upload_bytes += size
        s.upload_hashes[digest] = s.upload_hashes.get(digest, 0) + 1

    def _add_file(
        self,
        fid: str,
        name: str,
        path: Path,
        content_type: str,
        size: int,
        ttl: float | None,
        *,
        shared: bool = False,
    ) -> StoredFile:
        now = self._now()
        sf = StoredFile(
            fid=fid,
            name=name,
            path=path,
            content_type=content_type,
            size=size,
            created=now,
            expires_at=(now + ttl) if ttl else None,
            shared=shared,
        )
        self._files[fid] = sf
        return sf

    async def _h_upload(self, request: web.Request) -> web.Response:
        if (err := self._check_token(request)) or (err := self._check_locked()):
            return err
        ct = request.headers.get("Content-Type", "application/octet-stream")
        name = _safe_name(request.headers.get("X-Fal-File-Name"), ct)
        ttl = self._lifecycle_seconds(request, "X-Fal-Object-Lifecycle")
        fid = _rand_id()
        assert self.storage_dir is not None
        path = self.storage_dir / "files" / fid
        try:
            size, digest, _ = await self._receive_to(request, path)
        except (ConnectionError, asyncio.CancelledError):
            path.unlink(missing_ok=True)
            raise
        self._add_file(fid, name, path, ct, size, ttl)
        self._register_upload(size, digest)
        return _json(200, {"access_url": f"{self._base(request)}/files/{fid}/{name}"})

    async def _h_multipart_create(self, request: web.Request) -> web.Response:
        if (err := self._check_token(request)) or (err := self._check_locked()):
            return err
        ct = request.headers.get("Content-Type", "application/octet-stream")
        name = _safe_name(request.headers.get("X-Fal-File-Name"), ct)
        ttl = self._lifecycle_seconds(request, "X-Fal-Object-Lifecycle")
        fid = _rand_id()
        upload_id = uuid.uuid4().hex
        self._multipart[upload_id] = {
            "fid": fid,
            "name": name,
            "content_type": ct,
            "ttl": ttl,
            "parts": {},
        }
        return _json(
            200,
            {"access_url": f"{self._base(request)}/files/{fid}/{name}", "uploadId": upload_id},
        )

    _MP_RE = re.compile(r"^([^/]+)/([^/]+)/multipart/([^/]+)/(\d+|complete)$")

    async def _h_multipart_part(self, request: web.Request) -> web.Response:
        m = self._MP_RE.match(request.match_info["tail"])
        if not m or m.group(4) == "complete":
            return _json(404, {"detail": "Not Found"})
        if err := self._check_token(request):
            return err
        fid, _name, upload_id, part = m.groups()
        mp = self._multipart.get(upload_id)
        if mp is None or mp["fid"] != fid:
            return _json(404, {"detail": "Upload not found"})
        n = int(part)
        if n < 1 or n > 10000:
            return _json(400, {"detail": "partNumber must be within 1..10000"})
        assert self.storage_dir is not None
        path = self.storage_dir / "parts" / f"{upload_id}.{n}"
        size, _digest, md5 = await self._receive_to(request, path, md5=True)
        etag = f'"{md5}"'
        mp["parts"][n] = {"path": path, "size": size, "etag": etag}
        self._stats.multipart_parts += 1
        return web.Response(status=200, headers={"ETag": etag})

    async def _h_multipart_complete(self, request: web.Request) -> web.Response:
        m = self._MP_RE.match(request.match_info["tail"])
        if not m or m.group(4) != "complete":
            return _json(404, {"detail": "Not Found"})
        if err := self._check_token(request):
            return err
        fid, name, upload_id, _ = m.groups()
        mp = self._multipart.get(upload_id)
        if mp is None or mp["fid"] != fid:
            return _json(404, {"detail": "Upload not found"})
        try:
            body = await request.json()
            listed = body["parts"]
            order = []
            for p in listed:
                n = int(p["partNumber"])
                have = mp["parts"].get(n)
                if have is None:
                    return _json(400, {"detail": f"Part {n} was not uploaded"})
                if str(p.get("etag", "")).strip('"') != have["etag"].strip('"'):
                    return _json(400, {"detail": f"ETag mismatch for part {n}"})
                order.append(n)
        except (ValueError, KeyError, TypeError):
            return _json(400, {"detail": "Body must be {'parts': [{'partNumber', 'etag'}]}"})
        if not order:
            return _json(400, {"detail": "No parts listed"})
        order.sort()
        assert self.storage_dir is not None
        dest = self.storage_dir / "files" / fid
        paths = [mp["parts"][n]["path"] for n in order]
        loop = asyncio.get_running_loop()
        size, digest = await loop.run_in_executor(self._executor, _concat_files, paths, dest)
        for p in mp["parts"].values():
            p["path"].unlink(missing_ok=True)
        del self._multipart[upload_id]
        self._add_file(fid, mp["name"], dest, mp["content_type"], size, mp["ttl"])
        self._register_upload(size, digest)
        self._stats.multipart_uploads += 1
        return _json(200, {"access_url": f"{self._base(request)}/files/{fid}/{mp['name']}"})

    async def _h_initiate(self, request: web.Request) -> web.Response:
        if (err := self._check_key(request)) or (err := self._check_locked()):
            return err
        try:
            body = await request.json()
            file_name = body.get("file_name") or "upload.bin"
            ct = body.get("content_type") or "application/octet-stream"
        except (ValueError, AttributeError):
            return _json(
                422,
                {
                    "detail": [
                        _validation_error(["body"], "Invalid JSON body", "value_error.jsondecode")
                    ]
                },
            )
        name = _safe_name(str(file_name), str(ct))
        ttl = self._lifecycle_seconds(
            request, "X-Fal-Object-Lifecycle-Preference", "X-Fal-Object-Lifecycle"
        )
        uid = uuid.uuid4().hex
        sig = secrets.token_hex(16)
        fid = _rand_id()
        self._signed[uid] = {"sig": sig, "fid": fid, "name": name, "content_type": ct, "ttl": ttl}
        base = self._base(request)
        return _json(
            200,
            {
                "upload_url": f"{base}/storage/upload/signed/{uid}?X-Goog-Signature={sig}",
                "file_url": f"{base}/files/{fid}/{name}",
            },
        )

    async def _h_signed_put(self, request: web.Request) -> web.Response:
        uid = request.match_info["uid"]
        info = self._signed.get(uid)
        if info is None or not secrets.compare_digest(
            request.query.get("X-Goog-Signature", ""), info["sig"]
        ):
            return web.Response(
                status=403,
                text="<?xml version='1.0' encoding='UTF-8'?><Error><Code>SignatureDoesNotMatch"
                "</Code></Error>",
                content_type="application/xml",
            )
        assert self.storage_dir is not None
        path = self.storage_dir / "files" / info["fid"]
        size, digest, _ = await self._receive_to(request, path)
        ct = request.headers.get("Content-Type") or info["content_type"]
        self._add_file(info["fid"], info["name"], path, ct, size, info["ttl"])
        self._register_upload(size, digest)
        del self._signed[uid]
        return web.Response(status=200)

    def _lookup_file(self, fid: str, name: str | None = None) -> StoredFile | None:
        sf = self._files.get(fid)
        if sf is None or (name is not None and name != sf.name):
            return None
        now = self._now()
        ttl = self.knobs["file_ttl"]
        expired = (sf.expires_at is not None and now >= sf.expires_at) or (
            ttl is not None and now >= sf.created + ttl
        )
        if expired:
            del self._files[fid]
            if not sf.shared:
                sf.path.unlink(missing_ok=True)
            return None
        return sf

    def _should_drop(self) -> bool:
        d = self.knobs["drop_downloads"]
        if isinstance(d, float):
            return d > 0 and self._drop_rng.random() < d
        if d > 0:
            self.knobs["drop_downloads"] = d - 1
            return True
        return False

    async def _h_file_get(self, request: web.Request) -> web.StreamResponse:
        tail = request.match_info["tail"]
        parts = tail.split("/")
        sf = self._lookup_file(parts[0], parts[1] if len(parts) == 2 else None)
        if sf is None or len(parts) != 2:
            return _json(404, {"detail": "File not found"})
        size = sf.size
        start, end = 0, size - 1
        status = 200
        rng = request.headers.get("Range")
        headers = {
            "Content-Type": sf.content_type,
            "Accept-Ranges": "bytes",
            "ETag": f'"{sf.fid}"',
            "Cache-Control": "public, max-age=604800",
        }
        if rng:
            parsed = _parse_range(rng, size)
            if parsed == "invalid":
                pass  # ignore malformed ranges: serve the whole file
            elif parsed is None:
                headers["Content-Range"] = f"bytes */{size}"
                return web.Response(status=416, headers=headers)
            else:
                start, end = parsed
                status = 206
                headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        length = max(0, end - start + 1)
        resp = web.StreamResponse(status=status, headers=headers)
        resp.content_length = length
        if request.method == "HEAD":
            await resp.prepare(request)
            return resp
        drop = self._should_drop()
        limit = length // 2 if drop else length
        await resp.prepare(request)
        sent = 0
        try:
            with open(sf.path, "rb") as f:
                f.seek(start)
                while sent < limit:
                    chunk = f.read(min(CHUNK, limit - sent))
                    if not chunk:
                        break
                    await resp.write(chunk)
                    sent += len(chunk)
            if drop:
                self._stats.downloads_dropped += 1
                transport = request.transport
                if transport is not None:
                    transport.close()
                return resp
            await resp.write_eof()
        except (ConnectionError, asyncio.CancelledError):
            self._stats.downloads_aborted += 1
            raise
        self._stats.downloads += 1
        self._stats.download_bytes += sent
        return resp

    # ------------------------------------------------------------ queue

    async def _h_submit(self, request: web.Request) -> web.Response:
        endpoint = request.match_info["tail"].strip("/")
        if (err := self._check_key(request)) or (err := self._check_locked()):
            return err
        segments = endpoint.split("/")
        if (
            len(segments) < 2
            or segments[0] in RESERVED_ROOTS
            or any(not s for s in segments)
            or (len(segments) >= 3 and segments[2] == "requests")
        ):
            return _json(404, {"detail": f"Application '{endpoint}' not found"})
        s = self._stats
        s.submits += 1
        s.submits_by_endpoint[endpoint] = s.submits_by_endpoint.get(endpoint, 0) + 1
        try:
            payload = await request.json()
        except ValueError:
            return _json(
                422,
                {
                    "detail": [
                        _validation_error(["body"], "Invalid JSON body", "value_error.jsondecode")
                    ]
                },
            )
        required, image_field = _required_fields(endpoint)
        if not isinstance(payload, dict):
            return _json(
                422,
                {
                    "detail": [
                        _validation_error(["body"], "value is not a valid dict", "type_error.dict")
                    ]
                },
            )
        problems = []
        for name in required:
            if name not in payload or payload[name] is None:
                problems.append(
                    _validation_error(["body", name], "field required", "value_error.missing")
                )
            elif not isinstance(payload[name], str):
                problems.append(
                    _validation_error(["body", name], "str type expected", "type_error.str")
                )
        if (
            image_field not in required
            and image_field in payload
            and not isinstance(payload[image_field], str)
        ):
            problems.append(
                _validation_error(["body", image_field], "str type expected", "type_error.str")
            )
        if problems:
            return _json(422, {"detail": problems})

        assert self._loop is not None
        k = self.knobs
        self._job_counter += 1
        index = self._job_counter
        rng = random.Random(f"{k['seed']}:{index}")
        fail = None
        if rng.random() < k["fail_rate"]:
            fail = k["fail_kind"]
            if fail == "mixed":
                fail = rng.choice(("validation", "runner", "timeout"))
        seed = payload.get("seed")
        if not isinstance(seed, int) or isinstance(seed, bool):
            seed = rng.randrange(2**31)
        request_id = str(uuid.uuid4())
        job = Job(
            id=request_id,
            index=index,
            endpoint=endpoint,
            app=_app_of(endpoint),
            payload=payload,
            image_field=image_field if image_field in payload else None,
            duration=0.0,  # drawn when the job starts (job_seconds may change meanwhile)
            fail=fail,
            seed=seed,
            submitted_at=self._loop.time(),
            output_ttl=self._lifecycle_seconds(request, "X-Fal-Object-Lifecycle-Preference"),
            base=self._base(request),
        )
        self._jobs[request_id] = job
        self._state_counts["IN_QUEUE"] += 1
        self._queue.append(job)
        self._qpos = None
        self._pump()
        start_timeout = _opt_float_header(request.headers.get("X-Fal-Request-Timeout"))
        if start_timeout and job.state == "IN_QUEUE":
            self._loop.call_later(start_timeout, self._start_deadline, job)
        body = self._urls(job)
        body.update({"status": "IN_QUEUE", "queue_position": self._position(job)})
        return _json(200, body)

    def _urls(self, job: Job) -> dict[str, Any]:
        base = f"{job.base}/{job.app}/requests/{job.id}"
        return {
            "request_id": job.id,
            "response_url": base,
            "status_url": base + "/status",
            "cancel_url": base + "/cancel",
        }

    def _position(self, job: Job) -> int:
        if job.state != "IN_QUEUE":
            return 0
        if self._qpos is None:
            self._qpos = {j.id: i for i, j in enumerate(self._queue)}
        return self._qpos.get(job.id, 0)

    def _start_deadline(self, job: Job) -> None:
        """X-Fal-Request-Timeout: a job still queued at its deadline fails with a
        user-deadline 504 (fal_client never retries those)."""
        if job.state != "IN_QUEUE":
            return
        self._queue.remove(job)
        self._qpos = None
        msg = "Request timed out before it started (X-Fal-Request-Timeout)"
        self._finish(
            job,
            504,
            {"detail": msg, "error_type": "request_timeout"},
            msg,
            "request_timeout",
            {"x-fal-error-type": "request_timeout", "X-Fal-Request-Timeout-Type": "user"},
        )

    def _set_state(self, job: Job, state: str) -> None:
        self._state_counts[job.state] -= 1
        job.state = state
        self._state_counts[state] += 1

    def _pump(self) -> None:
        """Start queued jobs while there is capacity (FIFO)."""
        limit = self.knobs["concurrency"]
        while self._queue and (limit is None or self._running < limit):
            job = self._queue.popleft()
            self._qpos = None
            self._start(job)

    def _start(self, job: Job) -> None:
        assert self._loop is not None
        self._set_state(job, "IN_PROGRESS")
        job.started_at = self._loop.time()
        js = self.knobs["job_seconds"]
        if isinstance(js, tuple):
            rng = random.Random(f"{self.knobs['seed']}:{job.index}:duration")
            job.duration = rng.uniform(js[0], js[1])
        else:
            job.duration = float(js)
        self._running += 1
        if self._running > self._stats.max_concurrency:
            self._stats.max_concurrency = self._running
        job.task = self._loop.create_task(self._run(job))

    def _log(self, job: Job, message: str, level: str = "INFO") -> None:
        job.logs.append(
            {"message": message, "level": level, "source": "user", "timestamp": _now_iso()}
        )

    async def _run(self, job: Job) -> None:
        assert self._loop is not None
        outcome: tuple[int, Any, str | None, str | None, dict[str, str]]
        try:
            self._log(job, f"Starting {job.endpoint} (emulated)")
            try:
                if job.fail:
                    raise _injected_failure(job)
                body = await self._produce(job)
                if self.knobs["result_override"]:
                    body = self.knobs["result_override"].pop(0)
                outcome = (200, body, None, None, {})
            except JobError as exc:
                self._log(job, f"Error: {exc.error}", "ERROR")
                outcome = (exc.status, exc.body, exc.error, exc.error_type, exc.headers)
            remaining = (job.started_at or 0) + job.duration - self._loop.time()
            if remaining > 0:
                await asyncio.sleep(remaining)
            if outcome[0] == 200:
                self._log(job, "Video generated")
        except asyncio.CancelledError:
            if not job.aborting:
                raise
            outcome = _cancelled_outcome()
        except Exception as exc:  # pragma: no cover - emulator bug
            log.exception("job %s crashed", job.id)
            outcome = (
                500,
                {"detail": f"Internal server error: {exc}", "error_type": "internal_server_error"},
                "Internal server error",
                "internal_server_error",
                {"x-fal-error-type": "internal_server_error"},
            )
        self._finish(job, *outcome)

    def _finish(
        self,
        job: Job,
        status: int,
        body: Any,
        error: str | None,
        error_type: str | None,
        headers: dict[str, str],
    ) -> None:
        assert self._loop is not None
        was_running = job.state == "IN_PROGRESS"
        self._set_state(job, "COMPLETED")
        job.finished_at = self._loop.time()
        job.done_at = self._now()
        job.result_status = status
        job.result_body = body
        job.result_headers = headers
        job.error = error
        job.error_type = error_type
        job.result_size = len(json.dumps(body).encode())
        job.task = None
        if error is not None:
            self._failed += 1
        if was_running:
            self._running -= 1
            self._pump()

    async def _produce(self, job: Job) -> dict[str, Any]:
        image_bytes = await self._fetch_image(job)
        digest = hashlib.sha256(image_bytes).hexdigest()
        k = self.knobs
        clip_key = f"{digest}-{k['clip_seconds']}-{k['clip_fps']}-{k['clip_max_side']}"
        fut = self._clips.get(clip_key)
        if fut is None:
            fut = self._loop.create_future()  # type: ignore[union-attr]
            self._clips[clip_key] = fut
            asyncio.ensure_future(self._encode(clip_key, image_bytes, fut))
        self._log(job, "Generating video")
        try:
            clip_path, clip_size = await asyncio.shield(fut)
        except _video.ImageLoadError as exc:
            raise _field_error(
                job.image_field or "image_url",
                "image_load_error",
                "Failed to load the image. Please ensure the image file is not corrupted "
                "and is in a supported format.",
                job.payload.get(job.image_field or "image_url"),
            ) from exc
        path, size = clip_path, clip_size
        vsize = k["video_size"]
        if vsize:
            pkey = (clip_key, vsize)
            pfut = self._padded.get(pkey)
            if pfut is None:
                pfut = self._loop.create_future()  # type: ignore[union-attr]
                self._padded[pkey] = pfut
                asyncio.ensure_future(self._pad(clip_path, vsize, pfut))
            path, size = await asyncio.shield(pfut)
        fid = _rand_id()
        name = "output.mp4"
        self._add_file(fid, name, path, "video/mp4", size, job.output_ttl, shared=True)
        return {
            "video": {
                "url": f"{job.base}/files/{fid}/{name}",
                "content_type": "video/mp4",
                "file_name": name,
                "file_size": size,
            },
            "seed": job.seed,
        }

    async def _encode(self, clip_key: str, image_bytes: bytes, fut: asyncio.Future) -> None:
        k = self.knobs
        assert self.storage_dir is not None
        dest = self.storage_dir / "clips" / f"{clip_key}.mp4"
        loop = asyncio.get_running_loop()
        try:
            size = await loop.run_in_executor(
                self._executor,
                _encode_to_file,
                image_bytes,
                dest,
                k["clip_seconds"],
                k["clip_fps"],
                k["clip_max_side"],
            )
        except BaseException as exc:
            if not isinstance(exc, _video.ImageLoadError):
                # do not cache unexpected failures
                self._clips.pop(clip_key, None)
            if not fut.done():
                fut.set_exception(exc)
                fut.exception()  # mark retrieved
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        self._stats.encodes += 1
        fut.set_result((dest, size))

    async def _pad(self, clip_path: Path, vsize: int, fut: asyncio.Future) -> None:
        dest = clip_path.with_name(f"{clip_path.stem}-{vsize}.mp4")
        loop = asyncio.get_running_loop()
        try:
            size = await loop.run_in_executor(
                self._executor, _video.pad_mp4, clip_path, dest, vsize
            )
        except BaseException as exc:  # pragma: no cover
            fut.set_exception(exc)
            fut.exception()
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        fut.set_result((dest, size))

    async def _fetch_image(self, job: Job) -> bytes:
        field_name = job.image_field or "image_url"
        url = job.payload.get(field_name)
        if url is None:
            # an endpoint where the image is optional: use a flat grey frame
            return _GREY_PNG

        def download_error() -> JobError:
            return _field_error(
                field_name,
                "file_download_error",
                "Failed to download the file. Please check if the URL is accessible.",
                url,
            )

        if url.startswith("data:"):
            data = _decode_data_uri(url)
            if data is None:
                raise download_error()
            return data
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not self._is_own(parsed, job):
            raise download_error()
        segs = parsed.path.split("/")
        if len(segs) != 4 or segs[1] != "files":
            raise download_error()
        sf = self._lookup_file(segs[2], urllib.parse.unquote(segs[3]))
        if sf is None:
            raise download_error()
        if sf.size > 256 * 1024**2:
            raise _field_error(field_name, "image_too_large", "Image file is too large.", url)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, sf.path.read_bytes)

    def _is_own(self, parsed: urllib.parse.SplitResult, job: Job) -> bool:
        netloc = parsed.netloc.lower()
        base = urllib.parse.urlsplit(job.base).netloc.lower()
        if netloc in (base, urllib.parse.urlsplit(self.url).netloc.lower()):
            return True
        host = (parsed.hostname or "").lower()
        return host in ("127.0.0.1", "localhost", "::1", self.host.lower()) and (
            parsed.port == self.port
        )

    async def _h_queue_get(self, request: web.Request) -> web.Response:
        tail = request.match_info["tail"]
        m = re.fullmatch(r"(.+)/requests/([^/]+)(/status(/stream)?)?/?", tail)
        if not m:
            return _json(404, {"detail": "Not Found"})
        if err := self._check_key(request):
            return err
        app, request_id, status_part, stream = m.groups()
        if status_part:
            return await self._status(request, app, request_id, stream=bool(stream))
        return self._result(app, request_id)

    def _find(self, app: str, request_id: str) -> Job | None:
        job = self._jobs.get(request_id)
        if job is None or job.app != app.strip("/"):
            return None
        return job

    def _status_body(self, job: Job, with_logs: bool) -> tuple[int, dict[str, Any]]:
        body = self._urls(job)
        body["status"] = job.state
        if job.state == "IN_QUEUE":
            body["queue_position"] = self._position(job)
            return 202, body
        body["logs"] = list(job.logs) if with_logs else None
        if job.state == "IN_PROGRESS":
            return 202, body
        ran = (job.finished_at or 0) - (job.started_at or job.finished_at or 0)
        body["metrics"] = {"inference_time": round(ran, 3)} if job.started_at else {}
        body["error"] = job.error
        body["error_type"] = job.error_type
        return 200, body

    async def _status(
        self, request: web.Request, app: str, request_id: str, *, stream: bool
    ) -> web.StreamResponse:
        s = self._stats
        s.status_requests += 1
        s.status_by_request[request_id] = s.status_by_request.get(request_id, 0) + 1
        job = self._find(app, request_id)
        if job is None:
            return _json(404, {"detail": f"Request {request_id} not found"})
        with_logs = request.query.get("logs", "").strip().lower() in ("1", "true", "yes", "on")
        if not stream:
            code, body = self._status_body(job, with_logs)
            return _json(code, body)
        # SSE stream of status updates until COMPLETED (fal-js uses it; fal_client does not)
        resp = web.StreamResponse(
            status=200, headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await resp.prepare(request)
        last = None
        while True:
            _, body = self._status_body(job, with_logs)
            text = json.dumps(body)
            if text != last:
                await resp.write(f"data: {text}\n\n".encode())
                last = text
            if job.state == "COMPLETED":
                break
            await asyncio.sleep(0.1)
        await resp.write_eof()
        return resp

    def _result(self, app: str, request_id: str) -> web.Response:
        s = self._stats
        s.result_requests += 1
        s.result_by_request[request_id] = s.result_by_request.get(request_id, 0) + 1
        job = self._find(app, request_id)
        if job is None:
            return _json(404, {"detail": f"Request {request_id} not found"})
        if job.state != "COMPLETED":
            return _json(400, {"detail": "Request is still in progress", "status": job.state})
        ttl = self.knobs["result_ttl"]
        if ttl is None:
            ttl = LARGE_RESULT_TTL if job.result_size >= LARGE_RESULT_BYTES else SMALL_RESULT_TTL
        if self._now() >= (job.done_at or 0) + ttl:
            return _json(404, {"detail": f"Request {request_id} not found (result expired)"})
        return _json(job.result_status, job.result_body, dict(job.result_headers))

    async def _h_cancel(self, request: web.Request) -> web.Response:
        tail = request.match_info["tail"]
        m = re.fullmatch(r"(.+)/requests/([^/]+)/cancel/?", tail)
        if not m:
            return _json(404, {"detail": "Not Found"})
        if err := self._check_key(request):
            return err
        app, request_id = m.groups()
        s = self._stats
        s.cancels += 1
        s.cancels_by_request[request_id] = s.cancels_by_request.get(request_id, 0) + 1
        job = self._find(app, request_id)
        if job is None:
            return _json(404, {"status": "NOT_FOUND"})
        if job.state == "COMPLETED":
            return _json(400, {"status": "ALREADY_COMPLETED"})
        if job.state == "IN_QUEUE":
            self._queue.remove(job)
            self._qpos = None
            job.cancelled = True
            self._cancelled += 1
            self._finish(job, *_cancelled_outcome())
            return _json(202, {"status": "CANCELLATION_REQUESTED"})
        # IN_PROGRESS: fal signals the runner; the app decides
        if not job.cancelled:
            job.cancelled = True
            self._log(job, "Cancellation requested", "WARN")
        if self.knobs["cancel_running"] and job.task is not None and not job.aborting:
            job.aborting = True
            self._cancelled += 1
            job.task.cancel()
        return _json(202, {"status": "CANCELLATION_REQUESTED"})


# --------------------------------------------------------------------------- helpers


def _opt_float_header(value: str | None) -> float | None:
    try:
        v = float(value) if value else None
    except ValueError:
        return None
    return v if v is not None and v > 0 and math.isfinite(v) else None


def _cancelled_outcome() -> tuple[int, Any, str, str, dict[str, str]]:
    return (
        400,
        {"detail": "Request was cancelled", "error_type": "request_cancelled"},
        "Request was cancelled",
        "request_cancelled",
        {"x-fal-error-type": "request_cancelled"},
    )


def _injected_failure(job: Job) -> JobError:
    kind = job.fail
    if kind == "validation":
        msg = (
            "The content could not be processed because it contained material flagged "
            "by a content checker."
        )
        detail = [
            _validation_error(
                ["body", "prompt"], msg, "content_policy_violation", job.payload.get("prompt")
            )
        ]
        return JobError(422, {"detail": detail}, msg, "content_policy_violation")
    table = {
        "runner": (503, "Runner disconnected", "runner_disconnected"),
        "timeout": (504, "Request timed out", "request_timeout"),
        "internal": (500, "Internal server error", "internal_server_error"),
    }
    status, msg, etype = table[kind or "runner"]
    return JobError(
        status, {"detail": msg, "error_type": etype}, msg, etype, {"x-fal-error-type": etype}
    )


def _decode_data_uri(uri: str) -> bytes | None:
    head, sep, data = uri.partition(",")
    if not sep:
        return None
    try:
        if head.endswith(";base64"):
            return base64.b64decode(data, validate=False)
        return urllib.parse.unquote_to_bytes(data)
    except (binascii.Error, ValueError):
        return None


def _parse_range(header: str, size: int):
    """Single byte range -> (start, end) inclusive; None when unsatisfiable;
    "invalid" when malformed or multi-range (then the whole file is served)."""
    m = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header)
    if not m or (not m.group(1) and not m.group(2)):
        return "invalid"
    a, b = m.group(1), m.group(2)
    if a:
        start = int(a)
        end = min(int(b), size - 1) if b else size - 1
        if b and int(b) < start:
            return "invalid"
        if start >= size:
            return None
        return start, end
    suffix = int(b)
    if suffix == 0 or size == 0:
        return None
    return max(0, size - suffix), size - 1


def _concat_files(paths: list[Path], dest: Path) -> tuple[int, str]:
    sha = hashlib.sha256()
    size = 0
    with open(dest, "wb") as out:
        for p in paths:
            with open(p, "rb") as f:
                while chunk := f.read(CHUNK):
                    out.write(chunk)
                    sha.update(chunk)
                    size += len(chunk)
    return size, sha.hexdigest()


def _encode_to_file(image_bytes: bytes, dest: Path, seconds: float, fps: int, max_side: int) -> int:
    data = _video.synthesize_clip(image_bytes, seconds=seconds, fps=fps, max_side=max_side)
    tmp = dest.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, dest)
    return len(data)


def _grey_png() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (320, 180), (128, 128, 128)).save(buf, "PNG")
    return buf.getvalue()


_GREY_PNG = _grey_png()


# --------------------------------------------------------------------------- fal_client patch


@contextlib.contextmanager
def patch_fal_client(url: str):
    """Point the installed fal_client's module constants at ``url`` (an emulator
    base URL) for the duration of the ``with`` block, then restore them."""
    import fal_client.client as c

    url = url.rstrip("/")
    names = ("QUEUE_URL_FORMAT", "RUN_URL_FORMAT", "REST_URL", "CDN_URL")
    saved = {n: getattr(c, n) for n in names}
    c.QUEUE_URL_FORMAT = c.RUN_URL_FORMAT = url + "/"
    c.REST_URL = c.CDN_URL = url
    try:
        yield c
    finally:
        for n, v in saved.items():
            setattr(c, n, v)


# --------------------------------------------------------------------------- other processes


class EmulatorClient:
    """Control an emulator running elsewhere (another process) over its
    ``/_emulator/*`` endpoints: the same ``stats``/``configure``/``reset_stats``/
    ``advance_clock`` methods as :class:`Emulator`."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def _post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        import httpx

        r = httpx.post(self.url + path, json=body or {}, timeout=30)
        if r.status_code == 400:
            raise ValueError(r.json().get("detail"))
        r.raise_for_status()
        return r.json()

    def stats(self) -> dict[str, Any]:
        import httpx

        r = httpx.get(self.url + "/_emulator/stats", timeout=30)
        r.raise_for_status()
        return r.json()

    def configure(self, **knobs: Any) -> dict[str, Any]:
        return self._post("/_emulator/config", knobs)

    def reset_stats(self) -> None:
        self._post("/_emulator/reset")

    def advance_clock(self, seconds: float) -> None:
        self._post("/_emulator/advance", {"seconds": seconds})


class EmulatorProcess(EmulatorClient):
    """The emulator in a child process (``python -m i2vkit.emulator``), so that
    benchmarks do not share the GIL with it::

        with EmulatorProcess(key="id:secret", job_seconds=0) as emu:
            emu.url, emu.stats(), emu.configure(locked=True)
    """

    def __init__(
        self,
        port: int = 0,
        key: str | None = None,
        *,
        host: str = "127.0.0.1",
        storage_dir: str | os.PathLike | None = None,
        **knobs: Any,
    ) -> None:
        super().__init__("")
        for k, v in knobs.items():
            _coerce_knob(k, v)  # fail early on bad knobs
        self._argv = [sys.executable, "-m", "i2vkit.emulator", "--port", str(port), "--host", host]
        if key is not None:
            self._argv += ["--key", key]
        if storage_dir is not None:
            self._argv += ["--storage-dir", str(storage_dir)]
        self._knobs = {k: list(v) if isinstance(v, tuple) else v for k, v in knobs.items()}
        self._proc: Any = None

    def start(self) -> EmulatorProcess:
        import subprocess

        self._proc = subprocess.Popen(
            self._argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        line = self._proc.stdout.readline().strip()
        if not line.startswith("http"):
            self._proc.kill()
            self._proc.wait()
            raise RuntimeError(f"emulator process did not start (exit {self._proc.returncode})")
        self.url = line
        if self._knobs:
            self.configure(**self._knobs)
        return self

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=15)
        except Exception:  # pragma: no cover
            self._proc.kill()
            self._proc.wait()
        self._proc.stdout.close()
        self._proc = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def __enter__(self) -> EmulatorProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------- CLI


DEFAULT_CLI_PORT = 8765


def build_parser(prog: str = "i2vkit emulator") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Run a local fal.ai emulator (queue, storage and CDN on one port). "
        "Prints its base URL on the first line of stdout and serves until Ctrl-C.",
    )
    p.add_argument(
        "--port", type=int, default=DEFAULT_CLI_PORT, help="port (0 picks a free one; default 8765)"
    )
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--key", help="the one ID:SECRET key accepted (default: any ID:SECRET)")
    p.add_argument("--storage-dir", help="keep uploads and clips here (default: a temp dir)")
    p.add_argument("--public-url", help="base URL to put into returned URLs")
    p.add_argument("--access-log", action="store_true", help="log every request to stderr")
    g = p.add_argument_group("knobs")
    g.add_argument("--locked", action="store_true", help="answer 403 'User is locked'")
    g.add_argument("--job-seconds", help="job run time: SECONDS or MIN,MAX (default 1.0)")
    g.add_argument("--concurrency", type=int, help="jobs IN_PROGRESS at once (default unlimited)")
    g.add_argument("--fail-rate", type=float, help="fraction of jobs that fail (0..1)")
    g.add_argument("--fail-kind", choices=FAIL_KINDS, help="error of failing jobs (default mixed)")
    g.add_argument("--rate-limit", type=float, help="requests/second before 429 (default off)")
    g.add_argument("--rate-burst", type=float, help="token bucket size (default max(1, rate))")
    g.add_argument("--fail-next", type=int, help="answer the next N requests with --fail-status")
    g.add_argument("--fail-status", type=int, help="status for --fail-next (default 503)")
    g.add_argument(
        "--drop-downloads", help="cut off downloads: a fraction (0.2) or a count of the next N (3)"
    )
    g.add_argument("--file-ttl", type=float, help="seconds before stored files expire")
    g.add_argument("--result-ttl", type=float, help="seconds results stay (default fal's)")
    g.add_argument("--video-size", help="serve videos of exactly this size (e.g. 500MB)")
    g.add_argument("--seed", type=int, help="seed for the random knobs (default 0)")
    g.add_argument("--cancel-running", action="store_true", help="cancel aborts running jobs")
    g.add_argument("--token-ttl", type=float, help="CDN token lifetime in seconds")
    g.add_argument("--clip-seconds", type=float, help="clip length (default 1.5)")
    g.add_argument("--clip-fps", type=int, help="clip frame rate (default 12)")
    g.add_argument("--clip-max-side", type=int, help="clip long side in pixels (default 256)")
    return p


def main(argv: list[str] | None = None) -> int:
    """``i2vkit emulator [--port N] [--host H] [--key ID:SECRET] [knobs...]``."""
    args = build_parser().parse_args(argv)
    knobs: dict[str, Any] = {}
    for name in DEFAULT_KNOBS:
        value = getattr(args, name, None)
        if value is None or value is False:
            continue
        knobs[name] = value
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        emu = Emulator(
            port=args.port,
            key=args.key,
            host=args.host,
            storage_dir=args.storage_dir,
            public_url=args.public_url,
            access_log=args.access_log,
            **knobs,
        )
        emu.start()
    except (ValueError, OSError) as exc:
        print(f"i2vkit emulator: {exc}", file=sys.stderr, flush=True)
        return 2
    print(emu.url, flush=True)
    print(
        f"fal emulator serving on {emu.url} (storage {emu.storage_dir}); Ctrl-C to stop",
        file=sys.stderr,
        flush=True,
    )
    stop = threading.Event()

    def _on_signal(signum, frame):  # noqa: ARG001
        stop.set()

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, _on_signal)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        emu.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
