"""One run of a planned batch: upload and record, then every job to its end, concurrently.

The runner owns the task group, the concurrency slots, and stopping: Ctrl-C (task
cancellation), the `stop` event, and a fatal answer from fal (401 bad key, 403
locked account) all stop new submits; what is already submitted is left in the
ledger for the next run.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from pathlib import Path
from typing import Any

from ..billing import Tally, billable_requests, tally
from ..errors import FalAuthError, FalLockedError
from ..jobs import (
    CONTINUE,
    RELEASE,
    SKIP,
    TAKE_OVER,
    UNSUCCESSFUL,
    JobStatus,
    owner_alive,
    resume_action,
)
from ..planning.batch import ledger_cost_in
from ..planning.cost import CostBreakdown
from ..planning.plan import PlannedJob
from ..refs import is_remote
from ..rows import JobRow
from ..summary import per_model, per_value
from ..uploads import UploadReport
from .adopt import RequestHistory
from .cancel import QUEUED_MESSAGE, RUNNING_MESSAGE
from .context import RunContext
from .fetch import VideoFetcher, fetch_result
from .follow import LOST, follow
from .image_urls import ImageURLs
from .outcome import Cancelled, Completed, FreshImage, outcome
from .pipeline import through, window_for
from .progress import BatchResult, JobResult
from .spend import SpendCap
from .stop import stop_run
from .submit import Submitter

DOWNLOAD_CONCURRENCY = 4


class Slot:
    """One of the run's concurrency slots, which a job may give back before it ends (its
    fal run is over) and take again (a resubmit)."""

    def __init__(self, slots: asyncio.Semaphore):
        self.slots, self.held = slots, False

    async def take(self) -> None:
        if not self.held:
            await self.slots.acquire()
            self.held = True

    def give_back(self) -> None:
        if self.held:
            self.held = False
            self.slots.release()

    async def __aenter__(self) -> Slot:
        await self.take()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.give_back()


class Runner:
    def __init__(self, run: RunContext, *, cache_enabled: bool):
        self.run = run
        self.images = ImageURLs(run, cache_enabled)
        self.submitter = Submitter(run, self.images.for_job)
        self.history = RequestHistory(run)  # fal's record of requests the ledger lost
        self.fetcher = VideoFetcher(run, self.history)
        self.notes: list[str] = []  # what the summary says about stopping
        self.slots = asyncio.Semaphore(run.plan.request.concurrency)
        self.download_slots = asyncio.Semaphore(DOWNLOAD_CONCURRENCY)
        self.image_retried: set[tuple[int, str]] = set()  # (job, field) resubmitted once
        self.upload_failures: dict[str, str] = {}
        self.uploads = 0
        self.cost: CostBreakdown | None = None  # the ledger's split before this run
        self.billed_before: Tally | None = None  # what fal may bill, before this run

    # -- into the ledger ---------------------------------------------------------------

    async def record(self) -> list[JobRow]:
        """Upload the plan's images (through the cache) and write its jobs to the ledger.

        Every local image and end frame is uploaded once, however many models and takes
        use it; a URL from a shot list is sent as is. A fresh plan adds one row per
        planned job, with its own model, options, take and seed (a row already there
        from an earlier run is kept as it is: that is what resume means); a retry plan
        releases its failed jobs back to pending with their image's new URL.
        """
        run, store = self.run, self.run.jobs.store
        plan = run.plan
        run.progress.total = run.progress.pending = plan.job_count
        uploader = self.images.uploader(plan.request.upload_concurrency)

        def uploaded(_path: str) -> None:
            run.progress.uploaded += 1
            run.emit()

        paths = self._local_images()
        report = await uploader.upload_all(paths, uploaded)
        for e in plan.end_images:
            url = report.urls.get(str(e.path))
            if url is not None:
                plan.end_image_urls[str(e.path)] = url
        self.images.urls.update(report.urls)
        self.upload_failures, self.uploads = dict(report.failed), report.uploaded

        def url_of(ref: str) -> str | None:
            return ref if is_remote(ref) else report.urls.get(ref)

        if plan.retry_of:
            for job in store.jobs(run.batch_id, statuses=UNSUCCESSFUL):
                url = url_of(job["image_path"])
                if job["id"] in plan.job_ids and url is not None:
                    run.jobs.release(job, image_url=url, error_type=None)
            return [store.job(i) for i in plan.job_ids]
        self._save_batch()
        return self._add(plan.jobs, report)

    async def recorded(self) -> AsyncIterator[list[JobRow]]:
        """:meth:`record`, photo by photo: each image goes through the pipeline (its data
        checked if the plan left that to the run, hashed, uploaded) and the jobs are
        recorded, in the plan's order, as soon as their images are through, so the first
        ones are submitted while later photos are still being read. A retry plan is
        recorded in one go (its images are few and already checked)."""
        run, plan = self.run, self.run.plan
        if plan.retry_of:
            yield await self.record()
            return
        run.progress.total = plan.job_count
        report = UploadReport()
        self.upload_failures = report.failed
        ends = [str(e.path) for e in plan.end_images]
        paths = self._local_images()
        unchecked = {str(im.path): im for im in plan.images if not im.data_checked}
        uploader = self.images.uploader(plan.request.upload_concurrency)
        window = window_for(plan.request.upload_concurrency)
        self._save_batch()
        through_now: set[str] = set()
        cursor = 0

        def next_ready() -> list[PlannedJob]:
            nonlocal cursor
            start = cursor
            while cursor < len(plan.jobs) and all(
                is_remote(r) or r in through_now
                for r in (plan.jobs[cursor].image_ref, plan.jobs[cursor].end_image_ref or "")
                if r
            ):
                cursor += 1
            return plan.jobs[start:cursor]

        try:
            async with aclosing(through(uploader, paths, unchecked, report, window=window)) as s:
                if first := next_ready():  # URLs from a shot list: nothing to wait for
                    yield self._add(first, report)
                async for item in s:
                    through_now.add(item.path)
                    if item.url is not None:
                        self.images.urls[item.path] = item.url
                        if item.path in ends:
                            plan.end_image_urls[item.path] = item.url
                    self.uploads = report.uploaded
                    run.progress.uploaded += 1
                    run.emit()
                    if ready := next_ready():
                        yield self._add(ready, report)
        except (FalAuthError, FalLockedError) as exc:  # stops the batch, as in run_job
            run.fatal = run.fatal or exc
            run.stop.set()

    def _local_images(self) -> list[str]:
        """The plan's local files to upload, end frames first (every job may wait for
        them), each once."""
        plan = self.run.plan
        ends = [str(e.path) for e in plan.end_images]
        return list(dict.fromkeys([*ends, *(str(im.path) for im in plan.images)]))

    def _recorded_earlier(self) -> list[int]:
        """The plan's jobs an earlier run recorded, found without reading a photo (the
        upload cache knows an unchanged file's hash): counted from the start, so the
        counters and a stop before their photo is through say what the ledger holds."""
        plan = self.run.plan
        uploader = self.images.uploader()
        hashes: dict[str, str | None] = {}
        for job in plan.jobs:
            ref = job.image_ref
            if ref in hashes or job.image is None:
                continue
            try:
                hashes[ref] = uploader.unchanged_hash(ref, os.stat(ref))
            except OSError:
                hashes[ref] = None
        keys = [
            j.key(hashes.get(j.image_ref))
            for j in plan.jobs
            if j.image is None or hashes.get(j.image_ref)
        ]
        return [r["id"] for r in self.run.jobs.store.jobs(self.run.batch_id, keys=keys)]

    def _add(self, planned: list[PlannedJob], report: UploadReport) -> list[JobRow]:
        """Record planned jobs whose images are through the upload step; a job whose image
        (or end frame) has no URL is failed with the reason, before any submit."""
        run, store = self.run, self.run.jobs.store

        def url_of(ref: str) -> str | None:
            return ref if is_remote(ref) else report.urls.get(ref)

        rows = [self._row(j, report.hashes, url_of) for j in planned]
        store.add_jobs(rows)
        keys = [r["job_key"] for r in rows]
        for job in store.jobs(run.batch_id, keys=keys):
            if job["status"] != JobStatus.PENDING:
                continue
            url = url_of(job["image_path"])
            end = job["end_image_path"]
            if url is None:
                reason = report.failed.get(job["image_path"], "the image was not uploaded")
                run.jobs.failed(job["id"], reason, "upload_failed")
            elif end and url_of(end) is None:
                reason = report.failed.get(end, "the end image was not uploaded")
                run.jobs.failed(job["id"], f"end image: {reason}", "upload_failed")
            elif url != job["image_url"]:
                store.update_job(job["id"], image_url=url)
        return store.jobs(run.batch_id, keys=keys)

    def _save_batch(self) -> None:
        """The batch's row: what it is (its identity, its name) and where its videos go."""
        run, store = self.run, self.run.jobs.store
        plan = run.plan
        names = [m.name for m in plan.models]
        source = plan.shots or plan.prompts_file
        store.save_batch(
            {
                "id": run.batch_id,
                "name": plan.batch.name,
                "identity": plan.batch.identity,
                "model": ",".join(names),
                "endpoint_id": ",".join(m.endpoint_id for m in plan.models),
                "options": plan.options
                if len(plan.models) == 1
                else dict(zip(names, plan.model_options, strict=True)),
                "pairing": "shots" if plan.shots else plan.request.pairing,
                "images_dir": str(plan.shots or plan.images_dir or Path(".").absolute()),
                "prompts_source": str(source) if source is not None else "inline",
                "output_dir": str(plan.output_dir),
                "backend": run.backend.label,
                "job_count": max(len(plan.jobs), len(store.jobs(run.batch_id))),
                "prompt_seed": plan.prompt_seed,
            }
        )

    def _row(
        self, j: PlannedJob, hashes: dict[str, str], url_of: Callable[[str], str | None]
    ) -> dict[str, Any]:
        """The ledger row of one planned job (before it is submitted)."""
        digest = hashes.get(j.image_ref) if j.image is not None else None
        return {
            "batch_id": self.run.batch_id,
            "job_key": j.key(digest),
            "pair_index": j.index,
            "image_path": j.image_ref,
            "image_hash": digest,
            "image_url": url_of(j.image_ref),
            "prompt": j.prompt,
            "model": j.model.name,
            "endpoint_id": j.model.endpoint_id,
            "backend": self.run.backend.label,
            "take": j.take,
            "seed": j.seed,
            "shot_name": j.shot_name,
            "options": json.dumps(j.options, sort_keys=True),
            "end_image_path": j.end_image_ref,
            "axes": j.axes,
        }

    # -- one job, start to finish ----------------------------------------------------

    async def run_job(self, job: JobRow) -> None:
        """Take one job from wherever the ledger says it is to its video (or its failure).

        Errors are the job's own (recorded, the batch goes on), except a rejected key
        or a locked account, which stop the whole batch.
        """
        run, job_id = self.run, job["id"]
        try:
            if job["status"] == JobStatus.DOWNLOADED and Path(job["local_file"] or "").is_file():
                return
            if self._left_by_a_vanished_demo(job):
                run.jobs.release(job)  # that emulator is gone, and its jobs with it (unpaid)
                job = run.jobs.get(job_id)
            action = resume_action(job, run.jobs.owner, owner_alive(job["owner"]))
            if action == SKIP:
                return
            if action == RELEASE and job["status"] == JobStatus.SUBMITTING:
                # died inside the submit window: did fal get it? (adopt.py)
                settled = await self.history.settle(job)
                if settled is None:
                    return
                job, action = settled, CONTINUE
            elif action == RELEASE and not run.jobs.release_if(job):
                return
            if action == TAKE_OVER and not run.jobs.take_over(job):
                return
            status = JobStatus.PENDING if action == RELEASE else job["status"]
            if status == JobStatus.PENDING:
                if run.stopping:
                    return
                async with Slot(self.slots) as slot:
                    if run.stopping or not await self.submitter.submit(job):
                        return
                    await self._follow_to_end(job_id, slot)
            elif status in (JobStatus.SUBMITTING, JobStatus.QUEUED, JobStatus.RUNNING):
                async with Slot(self.slots) as slot:
                    await self._follow_to_end(job_id, slot)
            job = run.jobs.get(job_id)
            if job["status"] in (JobStatus.COMPLETED, JobStatus.DOWNLOADED):
                async with self.download_slots:
                    await self.fetcher.fetch(job)
        except (FalAuthError, FalLockedError) as exc:
            run.fatal = run.fatal or exc
            run.stop.set()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # one job's surprise never stops the batch
            run.fail(job_id, f"unexpected error: {run.fal.clean(str(exc))}", "internal_error")

    def _left_by_a_vanished_demo(self, job: JobRow) -> bool:
        return (
            self.run.backend.kind == "emulator"
            and job["request_id"] is not None
            and not (job["status_url"] or "").startswith(self.run.fal.base + "/")
            and job["status"] in (JobStatus.SUBMITTING, JobStatus.QUEUED, JobStatus.RUNNING)
        )

    async def _follow_to_end(self, job_id: int, slot: Slot) -> None:
        """Follow a submitted job until its outcome is recorded. Its slot is given back the
        moment fal says it is done (as fal's own slot is), so the next job is submitted
        while this one's result is fetched; a resubmit takes a slot again."""
        run = self.run
        while True:
            await slot.take()
            status = await follow(run, job_id)
            slot.give_back()
            job = run.jobs.get(job_id)
            if job["status"] == JobStatus.CANCELLED:
                return  # cancelled meanwhile (`i2vkit cancel` from another process)
            if status is LOST:
                recovered = await self.history.output(job)
                if recovered is None:
                    await slot.take()
                    if not await self._lost(job):
                        return
                    continue
                decided = outcome({"status": "COMPLETED"}, recovered, None, run.plan.model_for(job))
            else:
                decided = await fetch_result(run, job, status, self.history)
            if isinstance(decided, Completed):
                run.jobs.completed(job_id, decided.video_url, decided.size)
                run.emit()
                return
            if isinstance(decided, Cancelled):  # by `i2vkit cancel` elsewhere: not a failure
                ran = job["status"] == JobStatus.RUNNING
                run.jobs.cancel_if(job, RUNNING_MESSAGE if ran else QUEUED_MESSAGE, running=ran)
                run.emit()
                return
            retried = (job_id, getattr(decided, "field", ""))  # once per job and image field
            if isinstance(decided, FreshImage) and retried not in self.image_retried:
                self.image_retried.add(retried)
                changes = await self.images.refresh(job, decided.field)
                if changes is not None:
                    run.jobs.release(
                        job,
                        **changes,
                        error=f"resubmitted with the image uploaded again after: {decided.message}",
                    )
                    await slot.take()
                    if not await self.submitter.submit(run.jobs.get(job_id)):
                        return
                    continue
            error_type = (
                "file_download_error" if isinstance(decided, FreshImage) else decided.error_type
            )
            run.fail(job_id, decided.message, error_type, seen=job)
            return

    async def _lost(self, job: JobRow) -> bool:
        """fal no longer knows a request we sent. True when it was submitted again.

        Only on the built-in emulator is that free (a restarted emulator forgets its
        requests), so only there is the job resubmitted, in the slot it already holds.
        Anywhere else it may be billed: it is reported with the retry command instead.
        """
        run = self.run
        if run.backend.billed:
            run.fail(
                job["id"],
                f"fal no longer knows request {job['request_id']} (it expired or the service "
                f"lost it); {run.retry_hint()}.",
                "request_lost",
            )
            return False
        run.jobs.release(job)
        return await self.submitter.submit(run.jobs.get(job["id"]))

    # -- the whole batch -------------------------------------------------------------

    async def run_all(self) -> BatchResult:
        run = self.run
        await run.fal.check_key()
        for model in run.plan.models:  # an endpoint fal no longer has: before any upload
            if await run.fal.app_missing(model.endpoint_id):
                raise model.not_found_error()
        self.cost = ledger_cost_in(run.plan, run.jobs.store)
        self.billed_before = self._billed()
        if run.backend.billed:  # the built-in emulator bills nothing: no cap to keep
            run.plan.check_spend_cap(self.cost)  # before any upload
            run.spend = SpendCap(run.plan.max_cost)
        run.spend.price = run.plan.cost_of  # each job at its own model's price
        run.job_ids = [] if run.plan.retry_of else self._recorded_earlier()  # and grows
        run.progress.uploads_total = len(self._local_images())
        run.emit("submitting")
        interrupted = False
        try:
            async with asyncio.TaskGroup() as group:
                async for rows in self.recorded():  # jobs start while later photos upload
                    known = set(run.job_ids)
                    run.job_ids += [j["id"] for j in rows if j["id"] not in known]
                    for job in rows:
                        group.create_task(self.run_job(job))
        except asyncio.CancelledError:  # Ctrl-C, a kernel interrupt (stop.py)
            interrupted = True
            self.notes += await stop_run(run, self.submitter, run.job_ids)
        run.emit(
            "stopped" if interrupted else "finished", state="stopped" if interrupted else "finished"
        )
        return self.result(run.job_ids, interrupted)

    def _billed(self) -> Tally:
        return tally(self.run.jobs.store.jobs(self.run.batch_id), self.run.plan.cost_of)

    def result(self, job_ids: list[int], interrupted: bool) -> BatchResult:
        run = self.run
        final = [run.jobs.get(i) for i in job_ids]
        return BatchResult(
            batch_id=run.batch_id,
            plan=run.plan,
            jobs=[
                JobResult(
                    id=j["id"],
                    image=j["image_path"],
                    prompt=j["prompt"],
                    status=j["status"],
                    video=j["local_file"] if j["status"] == JobStatus.DOWNLOADED else None,
                    error=j["error"],
                    request_id=j["request_id"],
                    model=j["model"],
                    take=j["take"] or 1,
                    may_be_billed=billable_requests(j) > 0,
                )
                for j in final
            ],
            backend=run.backend.label,
            billed=run.backend.billed,
            interrupted=interrupted or (run.stop.is_set() and not run.fatal),
            fatal=str(run.fatal) if run.fatal else None,
            upload_failures=self.upload_failures,
            uploads=self.uploads,
            requests=dict(run.fal.requests),
            submitted_now=run.spend.posted,  # with any cut off after sending: fal may have it
            earlier=self.cost,
            spend_cap_reached=run.spend.reached,
            submitted_usd=run.spend.amount,
            models=per_model(run.jobs.store, run.batch_id),
            values=per_value(run.jobs.store, run.batch_id),
            notes=[*self.history.notes, *self.notes],
            billed_before=self.billed_before,
            billed_now=self._billed(),
        )
