"""Asking fal's request history what the ledger could not know: the one-request window.

A job is claimed `submitting` and its exact arguments recorded before its POST; its
request_id is recorded when fal answers. A crash in between leaves a job fal may or may
not have. Resubmitting it blindly may pay twice, so first the endpoint's request history
(Platform API, with payloads) is searched around the time of the claim for a request
whose input equals the job's arguments: found, the job adopts it (its request_id and
URLs) and is followed like any submitted job; not found, it is submitted again. When
the lookup is refused (403: a key without access to a restricted request view) the job
is submitted again as before, and the job's note and the summary say so.

The same history holds a finished request's output after its queue result expired
(fal keeps a result an hour, payloads 30 days): :meth:`RequestHistory.output` recovers
it before anything is failed or resubmitted.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from ..errors import FalAuthError, FalError, FalLockedError, HistoryUnavailable
from ..platform import requests_by_endpoint
from ..rows import JobRow
from ..timestamps import parse_timestamp
from .context import RunContext

# fal's clock and ours differ a little, and the claim is recorded just before the POST
CLOCK_MARGIN = timedelta(minutes=5)
# a process killed mid-POST and a POST whose connection broke leave the same ledger row
UNKNOWN = "an earlier run did not learn whether fal got it (stopped or cut off while submitting)"


class RequestHistory:
    """One run's use of fal's request history (adoption and expired results)."""

    def __init__(self, run: RunContext):
        self.run = run
        self.lock = asyncio.Lock()  # two jobs with the same arguments never adopt one request
        self.notes: list[str] = []

    def say(self, job_id: int, message: str) -> None:
        self.run.jobs.note(job_id, message)
        self.notes.append(f"job {job_id}: {message}")
        self.run.emit(f"job {job_id}: {message}")

    async def settle(self, job: JobRow) -> JobRow | None:
        """A job left `submitting` without a request_id by a process that died: take it
        over, then adopt its request from fal's history or release it to pending.

        Returns the job as it now is (queued: adopted; pending: to submit), or None when
        it is not this process's to handle (another took it, or the lookup failed and the
        job is kept `submitting` for the next run to ask again).
        """
        run = self.run
        if not run.jobs.take_over(job):
            return None
        job = run.jobs.get(job["id"])
        if not job["arguments"]:  # the claim never got as far as the POST
            run.jobs.release_if(job)
            return run.jobs.get(job["id"])
        async with self.lock:
            try:
                found = await self.find(job)
            except HistoryUnavailable as exc:
                return self._to_submit(
                    job,
                    f"{UNKNOWN}, and fal's request history could not be read ({exc}): "
                    "submitted again, so fal may bill it twice",
                )
            except (FalAuthError, FalLockedError):
                raise
            except FalError as exc:
                self.say(
                    job["id"],
                    f"could not check fal's request history ({run.fal.clean(str(exc))}); "
                    "kept, not submitted again: run the same command again",
                )
                return None
            if found is None:
                return self._to_submit(
                    job,
                    f"{UNKNOWN}; fal's request history has no request with its arguments, "
                    "so it never reached fal: submitted now",
                )
            request_id = found["request_id"]
            urls = run.fal.request_urls(job["endpoint_id"], request_id)
            run.jobs.submitted(job["id"], request_id, urls, None)
            self.say(
                job["id"],
                f"{UNKNOWN}; fal had it (request {request_id}, found in fal's request "
                "history): followed, not submitted again",
            )
        return run.jobs.get(job["id"])

    def _to_submit(self, job: JobRow, why: str) -> JobRow:
        """Back to pending, to be submitted by this run, and say why."""
        self.run.jobs.release_if(job)
        self.say(job["id"], why)
        return self.run.jobs.get(job["id"])

    async def find(self, job: JobRow) -> dict[str, Any] | None:
        """The request of the job's endpoint, sent around its claim, whose input is exactly
        the job's arguments and which no job of this batch already holds; the earliest."""
        if not job["arguments"]:  # never claimed with its arguments: nothing to look for
            return None
        arguments = json.loads(job["arguments"])
        claimed = parse_timestamp(job["submitted_at"])
        now = datetime.now(UTC)
        start = (claimed or now - timedelta(days=1)) - CLOCK_MARGIN
        items = await requests_by_endpoint(
            self.run.fal, job["endpoint_id"], start=start, end=now + CLOCK_MARGIN
        )
        held = {j["request_id"] for j in self.run.jobs.store.jobs(job["batch_id"])}
        matches = [
            i
            for i in items
            if i.get("json_input") == arguments
            and isinstance(i.get("request_id"), str)
            and i["request_id"] not in held
        ]
        matches.sort(key=lambda i: str(i.get("sent_at") or i.get("started_at") or ""))
        return matches[0] if matches else None

    async def output(self, job: JobRow) -> dict[str, Any] | None:
        """A finished request's output from fal's history (its queue result expired), or
        None when the history has none (or may not be read)."""
        try:
            items = await requests_by_endpoint(
                self.run.fal, job["endpoint_id"], request_id=job["request_id"]
            )
        except (FalAuthError, FalLockedError):
            raise
        except FalError:
            return None
        for item in items:
            out = item.get("json_output")
            ok = item.get("status_code") in (None, 200)
            if item.get("request_id") == job["request_id"] and isinstance(out, dict) and ok:
                self.notes.append(
                    f"job {job['id']}: fal's queue no longer had its result; its output was "
                    "recovered from fal's request history"
                )
                return out
        return None
