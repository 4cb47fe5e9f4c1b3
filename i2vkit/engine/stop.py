"""Stopping a run: the first Ctrl-C (or a kernel interrupt) and a second one.

The first stop cancels the run's task: nothing more is submitted. Then, bounded by the
connection timeout and said on the progress display (what it waits for, how long at
most), the POSTs already on the wire bring back their request_ids and every request of
the run still waiting in fal's queue is cancelled (fal never runs nor bills it; the
ledger says `cancelled` and the same command submits it again). Running requests go
on: the lines it returns say how many and how to collect them.

A second stop while it waits (the task cancelled again) stops waiting: the requests
whose fate is unknown (a POST without its answer, a queued request whose cancel was not
answered) are noted in the ledger and named, with the command that cancels them. The
next run of the batch settles them first: it takes them over and follows each (fal
cancelled it: `cancelled`; it ran: its video is downloaded; a POST without answer is
looked up in fal's request history, adopt.py).
"""

from __future__ import annotations

import asyncio

from ..errors import FalError
from ..jobs import IN_FLIGHT, JobStatus
from ..money import plural
from .cancel import CancelReport, cancel_requests
from .context import RunContext
from .submit import Submitter

UNSETTLED = (
    "stopped while its cancel (or its submit) was unanswered: it may still be queued at fal; "
    "`i2vkit cancel {batch}` cancels it, the same command follows it"
)


async def stop_run(run: RunContext, submitter: Submitter, job_ids: list[int]) -> list[str]:
    """After the first stop: settle what fal has, within the connection timeout. Returns
    the summary's lines (what was cancelled, what runs on, what is unknown)."""
    limit = run.fal.timeout
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    lines: list[str] = []
    settled: set[int] = set()  # what fal answered about: not unknown
    try:
        if submitter.on_the_wire:
            run.emit(
                f"stopping: waiting at most {limit:.0f}s for {len(submitter.on_the_wire)} "
                "submit(s) already sent; Ctrl-C again stops waiting",
                state="stopping",
            )
            await submitter.settle(limit)
        mine = [run.jobs.get(i) for i in job_ids]
        mine = [j for j in mine if j["owner"] == run.jobs.owner and j["status"] in IN_FLIGHT]
        if mine:
            left = max(1.0, deadline - loop.time())
            run.emit(
                f"stopping: asking fal to cancel {plural(len(mine), 'request')} still queued "
                f"(waiting at most {left:.0f}s for fal's answers; Ctrl-C again stops waiting)",
                state="stopping",
            )
            report = await asyncio.wait_for(cancel_requests(run.fal, run.jobs, mine), left)
            lines += _report_lines(report, run.batch_id)
            settled.update(report.left_running, report.finished)
    except asyncio.CancelledError:  # a second stop: stop waiting, say what is unknown
        lines.append("stopped waiting for fal's answers (a second Ctrl-C)")
    except (TimeoutError, FalError) as exc:
        lines.append(f"fal did not answer every cancel in time ({exc or 'timed out'})")
    lines += _unsettled(run, [i for i in job_ids if i not in settled])
    return lines


def _report_lines(report: CancelReport, batch_id: str) -> list[str]:
    lines = []
    if report.cancelled:
        lines.append(
            f"cancelled {plural(len(report.cancelled), 'request')} waiting in fal's queue "
            "(fal does not bill them); the same command submits them again"
        )
    if report.left_running:
        lines.append(
            f"left {plural(len(report.left_running), 'request')} running at fal (billed): the "
            f"same command again downloads their videos; `i2vkit cancel {batch_id} --running` "
            "cancels them"
        )
    if report.finished:
        lines.append(
            f"{plural(len(report.finished), 'request')} had finished at fal: the same command "
            "again downloads their videos"
        )
    lines += [f"job {i}: could not cancel: {e}" for i, e in report.errors.items()]
    return lines


def _unsettled(run: RunContext, job_ids: list[int]) -> list[str]:
    """Note in the ledger, and name, this run's requests whose fate at fal is unknown."""
    note = UNSETTLED.format(batch=run.batch_id)
    unknown = []
    for job_id in job_ids:
        job = run.jobs.get(job_id)
        if job["owner"] != run.jobs.owner:
            continue
        if job["status"] in (JobStatus.SUBMITTING, JobStatus.QUEUED):
            run.jobs.note(job_id, note)
            unknown.append(job_id)
    if not unknown:
        return []
    return [
        f"{plural(len(unknown), 'request')} may still be queued at fal: "
        f"`i2vkit cancel {run.batch_id}` (the same command again follows them instead)"
    ]
