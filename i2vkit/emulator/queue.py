"""fal's queue: submit, status, result and cancel, and the jobs behind them.

``POST /{endpoint_id}`` validates the payload and queues a :class:`Job`; jobs start in
order while fewer than the ``concurrency`` knob run; a running job fetches its input
image (a data URI or one of our stored files), gets its clip from the
:class:`~i2vkit.emulator.clips.ClipCache`, waits out its drawn duration and completes
with a result or an error. ``GET /{owner}/{alias}/requests/{id}[/status[/stream]]``
and ``PUT .../cancel`` read and steer it.

Where fal's behaviour is not documented, the choices are:

* ``GET .../requests/{id}`` before the job is COMPLETED answers ``400 {"detail":
  "Request is still in progress", "status": ...}`` (fal_client polls status first).
* Cancelling a queued job answers ``202 {"status": "OK"}`` (it leaves the queue and never
  runs); it becomes COMPLETED with ``error_type`` ``"request_cancelled"`` and a 400
  result. A running job keeps running (fal only signals the runner) unless the
  ``cancel_running`` knob is set.
* Expired results (``result_ttl``) answer 404 on the result endpoint; the status
  endpoint still says COMPLETED.
* Result: ``{"video": {"url", "content_type": "video/mp4", "file_name": "output.mp4",
  "file_size"}, "seed"}``; every job gets its own URL.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import math
import random
import re
import urllib.parse
import uuid
from collections import deque
from typing import Any

from aiohttp import web

from i2vkit.config import yes_no
from i2vkit.refs import is_data_uri

from .auth import Auth
from .clips import GREY_PNG, ClipCache, ImageLoadError
from .jobs import (
    CANCELLED,
    Job,
    JobError,
    Outcome,
    error_outcome,
    field_error,
    injected_failure,
    payload_problems,
    required_fields,
)
from .platform import PlatformAPI, end_image_field
from .routes import Route
from .runtime import Runtime
from .storage import Storage
from .wire import app_of, invalid_json, json_response, lifecycle_seconds, rand_id

__all__ = ["JobQueue"]

log = logging.getLogger("i2vkit.emulator")

RESERVED_ROOTS = {"files", "storage", "_emulator"}
SMALL_RESULT_TTL = 3600.0
LARGE_RESULT_TTL = 360.0
LARGE_RESULT_BYTES = 10 * 1024
MAX_IMAGE_BYTES = 256 * 1024**2


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


def _positive_seconds(value: str | None) -> float | None:
    try:
        v = float(value) if value else None
    except ValueError:
        return None
    return v if v is not None and v > 0 and math.isfinite(v) else None


def app_not_found(endpoint: str) -> web.Response:
    """fal's answer for an app it does not have (deleted, or never deployed)."""
    return json_response(404, {"detail": f"Application '{app_of(endpoint.strip('/'))}' not found"})


class JobQueue:
    """All jobs, the FIFO of queued ones and the queue routes."""

    def __init__(self, runtime: Runtime, auth: Auth, storage: Storage, clips: ClipCache) -> None:
        self._rt = runtime
        self._auth = auth
        self._storage = storage
        self._clips = clips
        self.jobs: dict[str, Job] = {}
        self._queue: deque[Job] = deque()
        self._positions: dict[str, int] | None = None  # cache, rebuilt after queue changes
        self.running = 0
        self.started = 0  # jobs ever started (the start_limit knob counts these)
        self._submitted = 0
        self._state_counts = {"IN_QUEUE": 0, "IN_PROGRESS": 0, "COMPLETED": 0}
        self._failed = 0
        self._cancelled = 0
        # status streams: the open ones per job (woken on every change), and their counters
        self._watchers: dict[str, set[asyncio.Event]] = {}
        self._streams = {"opened": 0, "refused": 0, "dropped": 0, "keepalives": 0}
        self._counted_in = self._rt.stats
        self._submits_open = 0
        self._max_submits_open = 0
        self.platform = PlatformAPI(self._auth)  # fal's Platform API; which apps exist

    def routes(self) -> list[Route]:
        """The catch-all queue routes (after fal's Platform API ones, which are more specific):
        register them after every more specific route."""
        return [
            *self.platform.routes(),
            Route("POST", "/{tail:.+}", self._h_submit),
            Route("GET", "/{tail:.+}", self._h_get),
            Route("PUT", "/{tail:.+}", self._h_cancel),
        ]

    def knobs_changed(self, names: Any) -> None:
        if "concurrency" in names or "start_limit" in names:
            self._pump()

    def summary(self) -> dict[str, Any]:
        """The queue's part of the stats."""
        return {
            "in_progress": self.running,
            "in_queue": len(self._queue),
            "status_streams": dict(self._counters()),
            "max_concurrent_submits": self._max_submits_open,
            "jobs": {
                **self._state_counts,
                "failed": self._failed,
                "cancelled": self._cancelled,
                "total": len(self.jobs),
            },
        }

    def _counters(self) -> dict[str, int]:
        """The stream and submit counters, zeroed with the emulator's stats (a reset replaces
        the Stats object)."""
        if self._counted_in is not self._rt.stats:
            self._counted_in = self._rt.stats
            self._streams = dict.fromkeys(self._streams, 0)
            self._max_submits_open = self._submits_open
        return self._streams

    def stop_all(self) -> None:
        for job in list(self.jobs.values()):
            if job.task is not None and not job.task.done():
                job.task.cancel()

    # ------------------------------------------------------------ submit

    async def _h_submit(self, request: web.Request) -> web.Response:
        endpoint = request.match_info["tail"].strip("/")
        if err := self._auth.key_or_locked_error(request):
            return err
        segments = endpoint.split("/")
        if (
            len(segments) < 2
            or segments[0] in RESERVED_ROOTS
            or any(not s for s in segments)
            or (len(segments) >= 3 and segments[2] == "requests")
        ):
            return json_response(404, {"detail": f"Application '{endpoint}' not found"})
        if not self.platform.serves(endpoint):
            return app_not_found(endpoint)
        self._rt.stats.submits.add(endpoint)
        self._submits_open += 1
        self._counters()
        self._max_submits_open = max(self._max_submits_open, self._submits_open)
        try:
            return await self._submit(request, endpoint)
        finally:
            self._submits_open -= 1

    async def _submit(self, request: web.Request, endpoint: str) -> web.Response:
        try:
            payload = await request.json()
        except ValueError:
            return invalid_json()
        if problems := payload_problems(endpoint, payload):
            return json_response(422, {"detail": problems})
        job = self._new_job(request, endpoint, payload)
        self.jobs[job.id] = job
        self._state_counts["IN_QUEUE"] += 1
        self._enqueue(job)
        self._pump()
        start_timeout = _positive_seconds(request.headers.get("X-Fal-Request-Timeout"))
        if start_timeout and job.state == "IN_QUEUE":
            asyncio.get_running_loop().call_later(start_timeout, self._start_deadline, job)
        body = self._urls(job)
        body.update({"status": "IN_QUEUE", "queue_position": self._position(job)})
        if self._rt.knobs["submit_delay"]:
            await asyncio.sleep(self._rt.knobs["submit_delay"])
        return json_response(200, body)

    def _new_job(self, request: web.Request, endpoint: str, payload: dict[str, Any]) -> Job:
        """A job with its failure and seed drawn from the ``seed`` knob and its submit order,
        so the same batch fails the same way on every run."""
        k = self._rt.knobs
        self._submitted += 1
        rng = random.Random(f"{k['seed']}:{self._submitted}")
        fail = None
        if rng.random() < k["fail_rate"]:
            fail = k["fail_kind"]
            if fail == "mixed":
                fail = rng.choice(("validation", "runner", "timeout"))
        seed = payload.get("seed")
        if not isinstance(seed, int) or isinstance(seed, bool):
            seed = rng.randrange(2**31)
        _, image_field = required_fields(endpoint)
        return Job(
            id=str(uuid.uuid4()),
            index=self._submitted,
            endpoint=endpoint,
            app=app_of(endpoint),
            payload=payload,
            image_field=image_field if image_field in payload else None,
            fail=fail,
            seed=seed,
            submitted_at=self._rt.clock.loop_time(),
            output_ttl=lifecycle_seconds(request, "X-Fal-Object-Lifecycle-Preference"),
            base=self._rt.base(request),
            headers={k: v for k, v in request.headers.items() if k.lower().startswith("x-fal-")},
            priority="low"
            if request.headers.get("X-Fal-Queue-Priority", "").strip().lower() == "low"
            else "normal",
        )

    def _enqueue(self, job: Job) -> None:
        """Into the queue in order, except that a normal-priority job goes before every
        queued low-priority one (X-Fal-Queue-Priority: low waits)."""
        if job.priority != "low":
            for i, queued in enumerate(self._queue):
                if queued.priority == "low":
                    self._queue.insert(i, job)
                    break
            else:
                self._queue.append(job)
        else:
            self._queue.append(job)
        self._positions = None

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
        if self._positions is None:
            self._positions = {j.id: i for i, j in enumerate(self._queue)}
        return self._positions.get(job.id, 0)

    def _dequeue(self, job: Job) -> None:
        self._queue.remove(job)
        self._positions = None
        self._notify_queued()

    def _notify(self, job: Job) -> None:
        """Wake the status streams of one job (its status changed)."""
        for event in self._watchers.get(job.id, ()):
            event.set()

    def _notify_queued(self) -> None:
        """Queue positions moved: wake the streams of queued jobs (only watched ones cost)."""
        for job_id in self._watchers:
            job = self.jobs.get(job_id)
            if job is not None and job.state == "IN_QUEUE":
                self._notify(job)

    def _start_deadline(self, job: Job) -> None:
        """X-Fal-Request-Timeout: a job still queued at its deadline fails with a
        user-deadline 504 (fal_client never retries those)."""
        if job.state != "IN_QUEUE":
            return
        self._dequeue(job)
        msg = "Request timed out before it started (X-Fal-Request-Timeout)"
        outcome = error_outcome(
            504, msg, "request_timeout", **{"X-Fal-Request-Timeout-Type": "user"}
        )
        self._finish(job, outcome)

    # ------------------------------------------------------------ lifecycle

    def _set_state(self, job: Job, state: str) -> None:
        self._state_counts[job.state] -= 1
        job.state = state
        self._state_counts[state] += 1
        self._notify(job)

    def _pump(self) -> None:
        """Start queued jobs while there is capacity (FIFO)."""
        limit = self._rt.knobs["concurrency"]
        while self._queue and (limit is None or self.running < limit):
            start_limit = self._rt.knobs["start_limit"]
            if start_limit is not None and self.started >= start_limit:
                break
            job = self._queue.popleft()
            self._positions = None
            self._start(job)
            self._notify_queued()

    def _start(self, job: Job) -> None:
        self._set_state(job, "IN_PROGRESS")
        job.started_at = self._rt.clock.loop_time()
        js = self._rt.knobs["job_seconds"]
        if isinstance(js, tuple):
            rng = random.Random(f"{self._rt.knobs['seed']}:{job.index}:duration")
            job.duration = rng.uniform(js[0], js[1])
        else:
            job.duration = float(js)
        self.running += 1
        self.started += 1
        stats = self._rt.stats
        stats.max_concurrency = max(stats.max_concurrency, self.running)
        job.task = asyncio.get_running_loop().create_task(self._run(job))

    async def _run(self, job: Job) -> None:
        """Run one job to its outcome: the injected failure or the real clip, delivered no
        earlier than its drawn duration after it started. Only a ``cancel_running`` abort
        turns a cancellation into an outcome; the emulator shutting down just cancels."""
        try:
            job.log(f"Starting {job.endpoint} (emulated)")
            outcome = await self._outcome(job)
            remaining = (job.started_at or 0) + job.duration - self._rt.clock.loop_time()
            if remaining > 0:
                await asyncio.sleep(remaining)
            if outcome[0] == 200:
                job.log("Video generated")
        except asyncio.CancelledError:
            if not job.aborting:
                raise
            outcome = CANCELLED
        except Exception as exc:  # pragma: no cover - emulator bug
            log.exception("job %s crashed", job.id)
            outcome = error_outcome(500, "Internal server error", "internal_server_error")
            outcome[1]["detail"] = f"Internal server error: {exc}"
        self._finish(job, outcome)

    async def _outcome(self, job: Job) -> Outcome:
        if job.fail:
            outcome = injected_failure(job)
        else:
            try:
                body = await self._produce(job)
                if self._rt.knobs["result_override"]:
                    body = self._rt.knobs["result_override"].pop(0)
                return (200, body, None, None, {})
            except JobError as exc:
                outcome = exc.outcome
        job.log(f"Error: {outcome[2]}", "ERROR")
        return outcome

    def _finish(self, job: Job, outcome: Outcome) -> None:
        status, body, error, error_type, headers = outcome
        was_running = job.state == "IN_PROGRESS"
        self._set_state(job, "COMPLETED")
        job.finished_at = self._rt.clock.loop_time()
        job.done_at = self._rt.clock.now()
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
            self.running -= 1
            self._pump()

    # ------------------------------------------------------------ producing a result

    async def _produce(self, job: Job) -> dict[str, Any]:
        image_bytes = await self._fetch_image(job)
        end_field = end_image_field(job.endpoint)
        if end_field and isinstance(job.payload.get(end_field), str):
            await self._fetch_image(job, end_field)  # fal fetches the end frame too
        job.log("Generating video")
        field_name = job.image_field or "image_url"
        try:
            path, size = await self._clips.clip(image_bytes)
        except ImageLoadError as exc:
            raise field_error(
                field_name,
                "image_load_error",
                "Failed to load the image. Please ensure the image file is not corrupted "
                "and is in a supported format.",
                job.payload.get(field_name),
            ) from exc
        fid, name = rand_id(), "output.mp4"
        self._storage.add(fid, name, path, "video/mp4", size, job.output_ttl, shared=True)
        return {
            "video": {
                "url": f"{job.base}/files/{fid}/{name}",
                "content_type": "video/mp4",
                "file_name": name,
                "file_size": size,
            },
            "seed": job.seed,
        }

    async def _fetch_image(self, job: Job, field: str | None = None) -> bytes:
        field_name = field or job.image_field or "image_url"
        url = job.payload.get(field_name)
        if url is None:
            return GREY_PNG  # an endpoint where the image is optional
        if is_data_uri(url):
            data = _decode_data_uri(url)
        else:
            sf = self._storage.resolve(url, job.base)
            if sf is not None and sf.size > MAX_IMAGE_BYTES:
                raise field_error(field_name, "image_too_large", "Image file is too large.", url)
            data = None if sf is None else await self._rt.in_thread(sf.path.read_bytes)
        if data is None:
            raise field_error(
                field_name,
                "file_download_error",
                "Failed to download the file. Please check if the URL is accessible.",
                url,
            )
        return data

    # ------------------------------------------------------------ status, result, cancel

    async def _h_get(self, request: web.Request) -> web.StreamResponse:
        tail = request.match_info["tail"]
        m = re.fullmatch(r"(.+)/requests/([^/]+)(/status(/stream)?)?/?", tail)
        if not m:
            return json_response(404, {"detail": "Not Found"})
        if err := self._auth.key_error(request):
            return err
        app, request_id, status_part, stream = m.groups()
        if not self.platform.serves(app):
            return app_not_found(app)
        if status_part:
            return await self._status(request, app, request_id, stream=bool(stream))
        return self._result(app, request_id)

    def _find(self, app: str, request_id: str) -> Job | None:
        job = self.jobs.get(request_id)
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
        self._rt.stats.status_requests.add(request_id)
        job = self._find(app, request_id)
        if job is None:
            return json_response(404, {"detail": f"Request {request_id} not found"})
        with_logs = yes_no(request.query.get("logs", "")) is True
        if not stream:
            return json_response(*self._status_body(job, with_logs))
        return await self._stream(request, job, with_logs)

    async def _stream(self, request: web.Request, job: Job, with_logs: bool) -> web.StreamResponse:
        """fal's status stream (server-sent events): one ``data:`` line with the status
        object each time it changes, a ``: keep-alive`` comment every ``stream_keepalive``
        seconds of silence, closed after COMPLETED. The ``stream_refuse`` knob answers 404
        instead (a host without streams); ``stream_drop`` cuts a stream off where it would
        have sent COMPLETED, so a client must find the completion some other way."""
        knobs = self._rt.knobs
        if knobs["stream_refuse"]:
            self._counters()["refused"] += 1
            return json_response(404, {"detail": "Not Found"})
        drop = knobs["stream_drop"] > 0
        if drop:
            knobs["stream_drop"] -= 1
        self._counters()["opened"] += 1
        resp = web.StreamResponse(
            status=200, headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await resp.prepare(request)
        changed = asyncio.Event()
        self._watchers.setdefault(job.id, set()).add(changed)
        try:
            last = None
            while True:
                changed.clear()  # before reading the state: a change while writing wakes us
                if drop and job.state == "COMPLETED":
                    self._counters()["dropped"] += 1
                    break
                text = json.dumps(self._status_body(job, with_logs)[1])
                if text != last:
                    await resp.write(f"data: {text}\n\n".encode())
                    last = text
                if job.state == "COMPLETED":
                    break
                try:
                    await asyncio.wait_for(changed.wait(), knobs["stream_keepalive"])
                except TimeoutError:
                    self._counters()["keepalives"] += 1
                    await resp.write(b": keep-alive\n\n")
        finally:
            watchers = self._watchers.get(job.id)
            if watchers is not None:
                watchers.discard(changed)
                if not watchers:
                    del self._watchers[job.id]
        await resp.write_eof()
        return resp

    def _result(self, app: str, request_id: str) -> web.Response:
        self._rt.stats.result_requests.add(request_id)
        job = self._find(app, request_id)
        if job is None:
            return json_response(404, {"detail": f"Request {request_id} not found"})
        if job.state != "COMPLETED":
            return json_response(
                400, {"detail": "Request is still in progress", "status": job.state}
            )
        ttl = self._rt.knobs["result_ttl"]
        if ttl is None:
            ttl = LARGE_RESULT_TTL if job.result_size >= LARGE_RESULT_BYTES else SMALL_RESULT_TTL
        if self._rt.clock.now() >= (job.done_at or 0) + ttl:
            return json_response(
                404, {"detail": f"Request {request_id} not found (result expired)"}
            )
        return json_response(job.result_status, job.result_body, dict(job.result_headers))

    async def _h_cancel(self, request: web.Request) -> web.Response:
        m = re.fullmatch(r"(.+)/requests/([^/]+)/cancel/?", request.match_info["tail"])
        if not m:
            return json_response(404, {"detail": "Not Found"})
        if err := self._auth.key_error(request):
            return err
        app, request_id = m.groups()
        self._rt.stats.cancels.add(request_id)
        job = self._find(app, request_id)
        if job is None:
            return json_response(404, {"status": "NOT_FOUND"})
        if job.state == "COMPLETED":
            return json_response(400, {"status": "ALREADY_COMPLETED"})
        if job.state == "IN_QUEUE":
            self._dequeue(job)
            job.cancelled = True
            self._cancelled += 1
            self._finish(job, CANCELLED)
            return json_response(202, {"status": "OK"})  # left the queue: it never runs
        # IN_PROGRESS: fal signals the runner; the app decides
        if not job.cancelled:
            job.cancelled = True
            job.log("Cancellation requested", "WARN")
        if self._rt.knobs["cancel_running"] and job.task is not None and not job.aborting:
            job.aborting = True
            self._cancelled += 1
            job.task.cancel()
        return json_response(202, {"status": "CANCELLATION_REQUESTED"})
