"""Following a submitted request until fal says it is done."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ..errors import FalError, FalTransientError
from ..jobs import JobStatus
from .context import RunContext

LOST = None


async def follow(run: RunContext, job_id: int) -> dict[str, Any] | None:
    """Poll one request on the :class:`PollSchedule` until it is COMPLETED; return that
    status. None means fal no longer knows the request (404): the caller decides."""
    job = run.jobs.get(job_id)
    submitted = time.monotonic()
    started: float | None = None
    polls = 0
    position = job["queue_position"]
    queued = job["status"] in (JobStatus.QUEUED, JobStatus.SUBMITTING)
    state = "IN_QUEUE" if queued else "IN_PROGRESS"
    was_running = job["status"] == JobStatus.RUNNING
    waited = False  # seen waiting in fal's queue: its run then starts when we see it start
    while True:
        delay = run.schedule.next_delay(
            state,
            time.monotonic() - submitted,
            None if started is None or not waited else time.monotonic() - started,
            polls,
            position,
        )
        await asyncio.sleep(delay)
        polls += 1
        run.jobs.store.count(job_id, "status_requests")
        try:
            status = await run.fal.status(job["status_url"])
        except FalTransientError:
            continue
        except FalError as exc:
            if exc.status_code == 404:
                return LOST
            raise
        state = status["status"]
        if state == "IN_QUEUE":
            waited = True
            position = status.get("queue_position")
            run.jobs.store.update_job(job_id, queue_position=position)
        elif state == "IN_PROGRESS" and started is None:
            started = time.monotonic()
            if not was_running:
                was_running = True
                run.jobs.running(job_id)
                run.progress.running += 1
                run.emit()
        elif state == "COMPLETED":
            if was_running:
                run.progress.running -= 1
            metrics = status.get("metrics")
            ran = metrics.get("inference_time") if isinstance(metrics, dict) else None
            if not isinstance(ran, int | float) or ran <= 0:
                ran = time.monotonic() - (started if started and waited else submitted)
            run.schedule.observe(ran)
            return status
