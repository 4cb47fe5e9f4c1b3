"""Stopping a batch without paying for what only waits: cancel its queued requests on fal.

fal bills a request for the time it runs, never for its wait in the queue. So when a
batch is stopped (Ctrl-C, a kernel interrupt, `i2vkit cancel BATCH`), every request of
it still IN_QUEUE is cancelled on fal and recorded `cancelled`; running ones are left
to finish (the run that follows or resumes them downloads them) unless `running` asks
to cancel those too. Running the batch again submits the cancelled jobs.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from ..backend import backend_for, resolve_backend
from ..blocking import run_blocking
from ..config import Settings, load_settings
from ..errors import FalError, InputError, StoreError
from ..fal import FalConnection
from ..jobs import Jobs, JobStatus
from ..rows import JobRow, job_url
from ..store import Store

CANCEL_CONCURRENCY = 8
QUEUED_MESSAGE = (
    "cancelled while it waited in fal's queue (fal does not bill it); running the same "
    "command again submits it"
)
RUNNING_MESSAGE = (
    "cancelled while running on request (fal may bill the time it ran); running the same "
    "command again submits it"
)
UNSENT_MESSAGE = "cancelled before it was submitted; running the same command again submits it"


@dataclass
class CancelReport:
    """What stopping a batch did on fal, job by job."""

    cancelled: list[int] = field(default_factory=list)  # queued requests fal dropped
    cancelled_running: list[int] = field(default_factory=list)  # with `running`
    unsent: list[int] = field(default_factory=list)  # pending jobs, never submitted
    left_running: list[int] = field(default_factory=list)
    finished: list[int] = field(default_factory=list)  # done on fal already: to download
    errors: dict[int, str] = field(default_factory=dict)

    def summary(self) -> str:
        lines = [
            f"cancelled {len(self.cancelled)} request(s) waiting in fal's queue "
            "(fal does not bill them)"
        ]
        if self.cancelled_running:
            lines.append(
                f"cancelled {len(self.cancelled_running)} running request(s) "
                "(fal may bill the time they ran)"
            )
        if self.unsent:
            lines.append(f"cancelled {len(self.unsent)} job(s) not submitted yet")
        if self.left_running:
            lines.append(
                f"left {len(self.left_running)} running request(s) to finish: the run that "
                "follows them (or the same command again) downloads their videos; "
                "--running cancels them too"
            )
        if self.finished:
            lines.append(
                f"{len(self.finished)} request(s) had already finished: the same command "
                "again downloads them"
            )
        for job_id, error in self.errors.items():
            lines.append(f"job {job_id}: could not cancel: {error}")
        if self.cancelled or self.cancelled_running or self.unsent:
            lines.append("Running the same command again submits the cancelled jobs.")
        return "\n".join(lines)


async def cancel_requests(
    fal: FalConnection, jobs: Jobs, rows: list[JobRow], *, running: bool = False
) -> CancelReport:
    """Cancel the requests of `rows` (ledger rows) that still wait in fal's queue, and the
    running ones too when `running`; record each cancelled one in the ledger.

    A request's status is asked first, so one that started running is never signalled
    unless `running` says so (fal would pass the cancel to its runner). fal's `OK` means
    the request left the queue and will never run. `CANCELLATION_REQUESTED` for a queued
    request is checked once more: it is cancelled unless it started meanwhile.
    """
    report = CancelReport()
    slots = asyncio.Semaphore(CANCEL_CONCURRENCY)

    async def one(job: JobRow) -> None:
        job_id = job["id"]
        async with slots:
            try:
                verdict = await _cancel_one(fal, job, running)
            except (FalError, StoreError) as exc:
                report.errors[job_id] = fal.clean(str(exc))
                return
        if verdict == "queued":
            jobs.cancelled(job_id, QUEUED_MESSAGE)
            report.cancelled.append(job_id)
        elif verdict == "running-cancelled":
            jobs.cancelled(job_id, RUNNING_MESSAGE, running=True)
            report.cancelled_running.append(job_id)
        elif verdict == "running":
            if job["status"] != JobStatus.RUNNING:
                jobs.running(job_id)  # fal says it runs: the ledger says so too
            report.left_running.append(job_id)
        else:
            report.finished.append(job_id)

    in_flight = (JobStatus.SUBMITTING, JobStatus.QUEUED, JobStatus.RUNNING)
    targets = [j for j in rows if j["status"] in in_flight and j["request_id"]]
    await asyncio.gather(*(one(j) for j in targets))
    for bucket in (report.cancelled, report.cancelled_running, report.left_running):
        bucket.sort()
    report.finished.sort()
    return report


async def _cancel_one(fal: FalConnection, job: JobRow, running: bool) -> str:
    """'queued' (cancelled), 'running' (left alone), 'running-cancelled' or 'finished'."""
    state = await _state(fal, job)
    if state == "COMPLETED":
        return "finished"
    if state == "IN_PROGRESS" and not running:
        return "running"
    answer = "NOT_FOUND" if state == "NOT_FOUND" else await fal.cancel(job_url(job, "cancel_url"))
    if answer in ("OK", "NOT_FOUND"):  # out of the queue (or unknown to fal): never runs
        return "queued" if state != "IN_PROGRESS" else "running-cancelled"
    if answer == "ALREADY_COMPLETED":
        return "finished"
    if state == "IN_PROGRESS":
        return "running-cancelled"
    now = await _state(fal, job)  # CANCELLATION_REQUESTED for a queued request
    if now == "IN_PROGRESS":
        return "running"  # it started meanwhile; it runs to its end and is downloaded
    return "queued"


async def _state(fal: FalConnection, job: JobRow) -> str:
    try:
        return (await fal.status(job_url(job, "status_url")))["status"]
    except FalError as exc:
        if exc.status_code == 404:
            return "NOT_FOUND"
        raise


async def cancel_batch_async(
    batch_id: str, settings: Settings | None = None, *, running: bool = False
) -> CancelReport:
    """Stop a batch from another process (or after it ended): its jobs not yet submitted
    are cancelled (a run still going then skips them), its queued requests are cancelled
    on fal, its running ones are left to finish unless `running`."""
    settings = settings or load_settings()
    with Store(settings.db_path) as store:
        batch = store.get_batch(batch_id)
        if batch is None:
            raise InputError(
                f"No batch {batch_id!r} in {settings.db_path}; `i2vkit status` lists them."
            )
        here = backend_for(settings).label
        if batch["backend"] != here:
            raise InputError(
                f"Batch {batch['id']} ran on {batch['backend']}, but this would reach "
                f"{here}; set FAL_KEY / I2VKIT_FAL_URL as they were for that batch."
            )
        jobs = Jobs(store)
        rows = store.jobs(batch["id"])
        unsent = [j["id"] for j in rows if j["status"] == JobStatus.PENDING]
        unsent = [i for i in unsent if jobs.cancel_if(store.job(i), UNSENT_MESSAGE)]
        with resolve_backend(settings) as backend:
            async with FalConnection(backend, settings.fal_key) as fal:
                report = await cancel_requests(fal, jobs, rows, running=running)
        report.unsent = unsent
        return report


def cancel_batch(batch_id: str, settings: Settings | None = None, **kwargs: Any) -> CancelReport:
    """Blocking :func:`cancel_batch_async`."""
    return run_blocking(cancel_batch_async(batch_id, settings, **kwargs))
