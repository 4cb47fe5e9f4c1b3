"""Getting a finished job's video: its result, then the mp4 on disk.

The video URL is recorded before the download starts, because fal keeps a finished
request's result for an hour (six minutes when it is 10 KB or more) while the video
on its CDN lasts days; an expired video URL is refreshed once by asking for the
result again by request id.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import provenance
from ..download import check_url, download, owned_video, part_path, unused_video_path
from ..errors import (
    DownloadError,
    ExpiredURLError,
    FalError,
    FalTransientError,
    I2vkitError,
    RenameBlockedError,
)
from ..planning.options import model_of_row, row_cost
from ..rows import JobRow, job_url
from ..store import utcnow
from .context import RunContext
from .outcome import Outcome, outcome

if TYPE_CHECKING:
    from .adopt import RequestHistory


async def fetch_result(
    run: RunContext,
    job: JobRow,
    status: dict[str, Any],
    history: RequestHistory | None = None,
) -> Outcome:
    """Ask for a completed request's result and decide what it means (see outcome.py).

    A result the queue no longer has (404: kept an hour) is looked up in fal's request
    history (`history`) before the job is failed."""
    failed = bool(status.get("error"))
    run.jobs.store.count(job["id"], "result_requests")
    result: dict[str, Any] | None = None
    error: FalError | None = None
    try:
        result = await run.fal.result(job_url(job, "response_url"), failed=failed)
    except FalTransientError as exc:
        if not failed:
            raise
        error = exc if exc.status_code else None  # a 5xx answer is the failure's reason
    except FalError as exc:
        error = exc
    if error is not None and error.status_code == 404 and not failed and history is not None:
        recovered = await history.output(job)
        if recovered is not None:
            result, error = recovered, None
    return outcome(status, result, error, run.plan.model_for(job))


class VideoFetcher:
    """Downloads finished jobs' videos into the plan's output folder."""

    def __init__(self, run: RunContext, history: RequestHistory | None = None):
        self.run = run
        self.history = history  # where an expired result is looked up

    async def fetch(self, job: JobRow) -> None:
        """Download one job's video to the name its ledger row records.

        The name, `{job_id}_{model}_{timestamp}.mp4` (``-2``, ``-3``... before ``.mp4``
        when a file or `.part` has it), is claimed and recorded before the download
        starts, so a crash leaves a `.part` the next run finds through the ledger and
        resumes, and a file on disk is taken as this job's video only when the ledger
        names it: another batch's or another ledger's files in the same folder are never
        overwritten or adopted. A name recorded by an earlier version (with the batch id
        after the timestamp) is used as recorded.
        """
        run, job_id = self.run, job["id"]
        out = run.plan.output_dir
        out.mkdir(parents=True, exist_ok=True)
        recorded = job["local_file"]
        if recorded and Path(recorded).parent == out:
            dest = Path(recorded)
        else:
            try:
                dest = unused_video_path(
                    out,
                    job_id,
                    run.plan.model_for(job).name,
                    lambda name: run.jobs.store.update_job(job_id, local_file=str(name)),
                )
            except DownloadError as exc:
                run.jobs.note(job_id, f"download failed: {exc}")
                run.emit(f"job {job_id}: {exc}")
                return
        if self._owned(job, dest):  # finished before a crash: renamed, not recorded
            part_path(dest).unlink(missing_ok=True)
        elif not await self._download(job, dest):
            return
        if run.sidecars:
            recipe = provenance.read_recipe(dest) or self.recipe(job)
            provenance.write_sidecar(dest, recipe)
        run.jobs.store.update_job(job_id, video_size=dest.stat().st_size)
        run.jobs.downloaded(job_id, str(dest))
        run.emit()

    def _owned(self, job: JobRow, dest: Path) -> bool:
        """The job's finished video is at `dest`: fal's size, or tagged with its request."""
        if owned_video(dest, job["video_size"]):
            return True
        if not owned_video(dest, None) or not job["request_id"]:
            return False
        recipe = provenance.read_recipe(dest)
        return recipe is not None and recipe.get("request_id") == job["request_id"]

    def recipe(self, job: JobRow) -> dict[str, Any]:
        """The video's recipe from the ledger's freshest row (see :mod:`i2vkit.provenance`)."""
        store = self.run.jobs.store
        row = store.job(job["id"])
        batch = store.get_batch_exact(row["batch_id"])
        try:
            estimated = row_cost(row, model_of_row(row))
        except I2vkitError:
            estimated = None
        request_id = row["request_id"] or ""
        billed = store.billed([request_id]).get(request_id)
        return provenance.recipe_of(
            row,
            batch_name=batch["name"] if batch else None,
            estimated=estimated,
            billed=billed,  # known only when `i2vkit cost` read it before this download
            fetched_at=utcnow(),
        )

    def _tagger(self, job: JobRow) -> Callable[[Path], int]:
        """What writes the recipe into the complete `.part` before its rename. A video
        whose tags cannot be written is kept untagged (said in the job's note)."""
        recipe = self.recipe(job)

        def tag(part: Path) -> int:
            try:
                return provenance.tag_video(part, recipe)
            except Exception as exc:  # noqa: BLE001 - a tag is never worth a lost video
                self.run.jobs.note(job["id"], f"recipe not written into the video: {exc}")
                return part.stat().st_size

        return tag

    async def _download(self, job: JobRow, dest: Path) -> bool:
        run, job_id = self.run, job["id"]
        url = job_url(job, "video_url")
        tagger = self._tagger(job)
        for attempt in range(2):
            run.jobs.store.count(job_id, "download_attempts")
            try:
                # the CDN client: a video URL may point anywhere, and only fal's own API
                # gets the key
                await download(
                    run.fal.cdn_http,
                    url,
                    dest,
                    budget=run.fal.budget,
                    size=job["video_size"],
                    finishing=tagger,
                )
                return True
            except RenameBlockedError as exc:
                # the bytes are all here: stay `completed`, and let the next run rename them
                run.jobs.store.update_job(job_id, video_size=exc.size)
                run.jobs.note(job_id, str(exc))
                run.emit(f"job {job_id}: {exc}")
                return False
            except ExpiredURLError as exc:
                if attempt:
                    part_path(dest).unlink(missing_ok=True)  # a resubmit gets a new video
                    run.fail(
                        job_id,
                        f"the video URL expired ({exc}) and fal's result, fetched again by "
                        f"request id, names the same expired file; {run.retry_hint()}.",
                        "video_expired",
                    )
                    return False
                fresh = await self._refresh_url(job, dest)
                if fresh is None:
                    return False
                url = fresh
            except DownloadError as exc:
                run.jobs.note(job_id, f"download failed: {exc}")
                run.emit(f"job {job_id}: {exc}")
                return False
        return False

    async def _refresh_url(self, job: JobRow, dest: Path) -> str | None:
        """The video URL expired: ask fal for the result again by request id."""
        run = self.run
        try:
            try:
                result = await run.fal.result(job_url(job, "response_url"))
            except FalError as exc:
                recovered = None
                if exc.status_code == 404 and self.history is not None:
                    recovered = await self.history.output(job)
                if recovered is None:
                    raise
                result = recovered
            url = run.plan.model_for(job).video_url(result)
            check_url(url)
        except (FalError, DownloadError) as exc:
            part_path(dest).unlink(missing_ok=True)  # a resubmit gets a new video and name
            run.fail(
                job["id"],
                f"the video URL expired and fal no longer has the result ({exc}); "
                f"{run.retry_hint()}.",
                "video_expired",
            )
            return None
        run.jobs.store.update_job(job["id"], video_url=url)
        return url
