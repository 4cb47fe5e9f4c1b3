"""Submitting a job: claim it in the ledger, POST it to fal, record its request_id.

This is the one place money is committed. A job is claimed `submitting` (a
compare-and-set from `pending`, with its exact arguments, in one write) before the
POST and gets its request_id right after, so a crash can leave only the jobs whose
POST was on the wire without a request_id in the ledger, and the next run settles each
of those from fal's request history (adopt.py) instead of paying twice. A POST whose
connection broke after it was sent is left the same way (fal may have it). That is why
submits need not be serialized: up to :data:`SUBMITS_IN_FLIGHT` POSTs are on the wire
at once (a batch fills its slots at the speed of the network, not of one round trip
at a time). Ctrl-C never cuts a POST off from its answer (each is a shielded task and
:meth:`Submitter.settle` waits for them all).
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
    SubmitUnanswered,
)
from ..planning.options import row_options
from ..planning.plan import Plan
from ..refs import is_remote
from ..rows import JobRow
from ..store import utcnow
from .context import RunContext

SUBMITS_IN_FLIGHT = 8  # POSTs on the wire at once (also bounded by --concurrency)
UNANSWERED = (
    "Not known whether fal received it; the next run checks fal's request history before "
    "submitting it again."
)


def submit_headers(plan: Plan) -> dict[str, str]:
    """fal's request options of the batch, as the headers of every submit: the queue
    priority, the start deadline, and model fallbacks disabled where the batch says
    (``compare``: when it compares models, so each clip is the model it is labelled with)."""
    request = plan.request
    headers = {}
    if request.priority == "low":
        headers["X-Fal-Queue-Priority"] = "low"
    if request.start_timeout is not None:
        headers["X-Fal-Request-Timeout"] = str(float(request.start_timeout))
    comparing = len({m.endpoint_id for m in plan.models}) > 1
    if request.fallbacks == "off" or (request.fallbacks == "compare" and comparing):
        headers["x-fal-disable-fallbacks"] = "true"
    return headers


class Submitter:
    def __init__(self, run: RunContext, image_url: Any):
        self.run = run
        self.headers = submit_headers(run.plan)
        self.image_url = image_url  # (job) -> this run's valid URL for the job's image
        self.wire = asyncio.Semaphore(max(1, min(run.plan.request.concurrency, SUBMITS_IN_FLIGHT)))
        self.on_the_wire: set[asyncio.Task[bool]] = set()

    async def submit(self, job: JobRow) -> bool:
        """Claim, POST and record one job; True when fal accepted it.

        The bound is taken before the task exists: a submit still waiting for its turn
        when Ctrl-C lands is simply cancelled (nothing claimed, nothing sent)."""
        async with self.wire:
            task = asyncio.create_task(self._submit(job))
            self.on_the_wire.add(task)
            task.add_done_callback(self.on_the_wire.discard)
            return await asyncio.shield(task)

    async def settle(self, timeout: float) -> None:
        """After an interrupt: let POSTs already sent bring back their request_ids."""
        if self.on_the_wire:
            await asyncio.wait(self.on_the_wire, timeout=timeout)

    async def _submit(self, job: JobRow) -> bool:
        run, job_id = self.run, job["id"]
        if not run.spend.allows_another(job):
            run.emit("spend cap reached: submitting stopped")
            return False  # the job stays pending, for a run with a higher cap
        image_url = self.image_url(job)
        model = run.plan.model_for(job)  # each job runs on its own model, with its own options
        try:
            options, end = row_options(job, model)
            end_url = end if end is None or is_remote(end) else run.plan.end_image_urls.get(end)
            arguments = model.build_arguments(
                image_url, job["prompt"], options, end_image_url=end_url
            )
        except InputError as exc:
            if run.jobs.claim(job_id):
                run.fail(job_id, str(exc), "invalid_input")
            return False
        # the claim carries the exact arguments and when, committed before the POST: what
        # fal's request history is searched for if this process dies before the answer is
        # recorded (adopt.py)
        if not run.jobs.claim(
            job_id, arguments=json.dumps(arguments), image_url=image_url, submitted_at=utcnow()
        ):
            return False
        run.spend.count(job)
        try:
            answer = await run.fal.submit(model.endpoint_id, arguments, headers=self.headers)
        except (FalAuthError, FalLockedError):
            run.spend.uncount(job)
            run.jobs.release(job_id)
            raise
        except FalValidationError as exc:
            run.spend.uncount(job)
            run.fail(job_id, str(exc), exc.error_type or "validation_error")
            return False
        except SubmitUnanswered as exc:
            # sent, answer lost: fal may have it (and bill it). Kept `submitting` with its
            # claim and arguments, so the next run finds it in fal's request history
            # (adopt.py) instead of paying for it again
            run.jobs.note(job_id, f"{exc} {UNANSWERED}")
            run.emit()
            return False
        except FalTransientError as exc:
            # not accepted (nothing reached fal): the next run (or `retry`) submits it
            run.spend.uncount(job)
            run.jobs.release(job_id, error=str(exc), error_type=exc.error_type)
            run.emit()
            return False
        except FalError as exc:  # refused outright: fal made no request of it
            run.spend.uncount(job)
            run.fail(job_id, str(exc), exc.error_type)
            return False
        urls = run.fal.request_urls(model.endpoint_id, answer["request_id"])
        for name in urls:
            urls[name] = answer.get(name) or urls[name]
        run.jobs.submitted(job_id, answer["request_id"], urls, answer.get("queue_position"))
        run.emit()
        return True
