"""Following a submitted request until fal says it is done: by its status stream, else by polling.

fal's status stream (`GET {status_url}/stream`) tells of every change the moment it
happens, over one request for the job's whole life, so a completion is seen within
milliseconds and the job's slot goes to the next job at once. When the stream is
refused (404/405), drops, or stalls past fal's keep-alive, the job is polled on the
adaptive :class:`~i2vkit.engine.schedule.PollSchedule` instead; after repeated refusals
the whole batch polls (:class:`~i2vkit.engine.schedule.StreamPolicy`). The ledger
counts both: `status_requests` (a stream opened counts one, as does each poll) and
`status_streams`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ..errors import FalError, FalTransientError, StreamUnavailable
from ..jobs import JobStatus
from ..rows import JobRow, job_url
from .context import RunContext
from .schedule import PollSchedule

LOST = None


class Watch:
    """What this run has seen of one request; each status fal reports goes through
    :meth:`see`, whether it came from the stream or a poll, so both move the ledger the
    same way (one write per transition)."""

    def __init__(self, run: RunContext, job: JobRow):
        self.run, self.job_id = run, job["id"]
        self.submitted = time.monotonic()
        self.started: float | None = None
        self.position = job["queue_position"]
        queued = job["status"] in (JobStatus.QUEUED, JobStatus.SUBMITTING)
        self.state = "IN_QUEUE" if queued else "IN_PROGRESS"
        self.was_running = job["status"] == JobStatus.RUNNING
        self.waited = False  # seen waiting in fal's queue: its run starts when we see it start

    @property
    def since_start(self) -> float | None:
        if self.started is None or not self.waited:
            return None
        return time.monotonic() - self.started

    def _show_position(self, position: Any) -> None:
        """fal's queue position of this job in the run's progress (None: no longer waits)."""
        shown = self.run.progress.queue_positions
        if isinstance(position, int) and not isinstance(position, bool):
            if shown.get(self.job_id) != position:
                shown[self.job_id] = position
                self.run.emit()
        elif shown.pop(self.job_id, None) is not None:
            self.run.emit()

    def see(self, status: dict[str, Any], schedule: PollSchedule) -> bool:
        """Record one status; True when it is COMPLETED."""
        run = self.run
        self.state = state = status["status"]
        self._show_position(status.get("queue_position") if state == "IN_QUEUE" else None)
        if state == "IN_QUEUE":
            self.waited = True
            position = status.get("queue_position")
            if position != self.position:
                self.position = position
                run.jobs.store.update_job(self.job_id, queue_position=position)
        elif state == "IN_PROGRESS" and self.started is None:
            self.started = time.monotonic()
            if not self.was_running:
                self.was_running = True
                run.jobs.running(self.job_id)
                run.emit()
        elif state == "COMPLETED":
            metrics = status.get("metrics")
            ran = metrics.get("inference_time") if isinstance(metrics, dict) else None
            if not isinstance(ran, int | float) or ran <= 0:
                since = self.started if self.started and self.waited else self.submitted
                ran = time.monotonic() - since
            schedule.observe(ran)
            return True
        return False


async def follow(run: RunContext, job_id: int) -> dict[str, Any] | None:
    """Follow one request until it is COMPLETED; return that status. None means fal no
    longer knows the request (404): the caller decides."""
    job = run.jobs.get(job_id)
    # the catalogue's estimate for the job's own model (a batch may compare several);
    # else the median run of that model's finished jobs in the ledger
    entry = run.plan.model_for(job).entry
    schedule = run.schedules.get(job["endpoint_id"], entry, run.jobs.store)
    watch = Watch(run, job)
    try:
        if run.streams.usable:
            done = await _stream(run, job, watch, schedule)
            if done is not None:
                return done
        return await _poll(run, job, watch, schedule)
    finally:
        run.progress.queue_positions.pop(job_id, None)  # it no longer waits, whatever ended


async def _stream(
    run: RunContext, job: JobRow, watch: Watch, schedule: PollSchedule
) -> dict[str, Any] | None:
    """Follow by fal's status stream: the COMPLETED status, or None to poll instead."""
    run.jobs.store.count(job["id"], "status_requests", status_streams=1)
    run.streams.opened += 1
    try:
        async for status in run.fal.status_stream(job_url(job, "status_url")):
            if watch.see(status, schedule):
                return status
    except StreamUnavailable as exc:
        if exc.refused:
            run.streams.refused()
    return None


async def _poll(
    run: RunContext, job: JobRow, watch: Watch, schedule: PollSchedule
) -> dict[str, Any] | None:
    """Poll on the schedule until COMPLETED; None when fal answers 404 (LOST)."""
    polls = 0
    while True:
        delay = schedule.next_delay(
            watch.state,
            time.monotonic() - watch.submitted,
            watch.since_start,
            polls,
            watch.position,
        )
        await asyncio.sleep(delay)
        polls += 1
        run.jobs.store.count(job["id"], "status_requests")
        try:
            status = await run.fal.status(job_url(job, "status_url"))
        except FalTransientError:
            continue
        except FalError as exc:
            if exc.status_code == 404:
                return LOST
            raise
        if watch.see(status, schedule):
            return status
