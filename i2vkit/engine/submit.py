"""Submitting a job: claim it in the ledger, POST it to fal, record its request_id.

This is the one place money is committed. A job is claimed `submitting` (a
compare-and-set from `pending`) before the POST and gets its request_id right
after, so a crash can leave at most the jobs whose POST was on the wire without a
request_id in the ledger. Submits are serialized within a process, which bounds
that to one job, and Ctrl-C never cuts a POST off from its answer (the task is
shielded and :meth:`Submitter.settle` waits for it).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from ..errors import (
    FalAuthError,
    FalError,
    FalLockedError,
    FalTransientError,
    FalValidationError,
    InputError,
)
from ..store import utcnow
from .context import RunContext


class Submitter:
    def __init__(self, run: RunContext, image_url: Any):
        self.run = run
        self.image_url = image_url  # (job) -> this run's valid URL for the job's image
        self.lock = asyncio.Lock()
        self.on_the_wire: set[asyncio.Task[bool]] = set()

    async def submit(self, job: dict[str, Any]) -> bool:
        """Claim, POST and record one job; True when fal accepted it."""
        async with self.lock:
            task = asyncio.create_task(self._submit(job))
            self.on_the_wire.add(task)
            task.add_done_callback(self.on_the_wire.discard)
            return await asyncio.shield(task)

    async def settle(self, timeout: float) -> None:
        """After an interrupt: let POSTs already sent bring back their request_ids."""
        if self.on_the_wire:
            await asyncio.wait(self.on_the_wire, timeout=timeout)

    async def _submit(self, job: dict[str, Any]) -> bool:
        run, job_id = self.run, job["id"]
        if not run.spend.allows_another():
            run.emit("spend cap reached: submitting stopped")
            return False  # the job stays pending, for a run with a higher cap
        if not run.jobs.claim(job_id):
            return False
        image_url = self.image_url(job)
        try:
            arguments = run.model.build_arguments(
                image_url, job["prompt"], run.plan.options, end_image_url=run.plan.end_image_url
            )
        except InputError as exc:
            run.fail(job_id, str(exc), "invalid_input")
            return False
        # the exact arguments and when, before the POST: what fal's request history is
        # searched for if this process dies before the answer is recorded (adopt.py)
        run.jobs.store.update_job(
            job_id, arguments=json.dumps(arguments), image_url=image_url, submitted_at=utcnow()
        )
        run.spend.count()
        try:
            answer = await run.fal.submit(run.model.endpoint_id, arguments)
        except (FalAuthError, FalLockedError):
            run.spend.uncount()
            run.jobs.release(job_id)
            raise
        except FalValidationError as exc:
            run.spend.uncount()
            run.fail(job_id, str(exc), exc.error_type or "validation_error")
            return False
        except FalTransientError as exc:
            # not accepted, or unknown whether accepted: the next run (or `retry`) decides
            run.jobs.release(job_id, error=str(exc), error_type=exc.error_type)
            run.emit()
            return False
        except FalError as exc:
            run.fail(job_id, str(exc), exc.error_type)
            return False
        urls = run.fal.request_urls(run.model.endpoint_id, answer["request_id"])
        for name in urls:
            urls[name] = answer.get(name) or urls[name]
        run.jobs.submitted(job_id, answer["request_id"], urls, answer.get("queue_position"))
        run.progress.submitted += 1
        run.emit()
        return True
