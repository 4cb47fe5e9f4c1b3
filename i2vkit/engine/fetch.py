"""Getting a finished job's video: its result, then the mp4 on disk.

The video URL is recorded before the download starts, because fal keeps a finished
request's result for an hour (six minutes when it is 10 KB or more) while the video
on its CDN lasts days; an expired video URL is refreshed once by asking for the
result again by request id.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..download import ExpiredURLError, check_url, download, index_videos, video_filename
from ..errors import DownloadError, FalError, FalTransientError
from .context import RunContext
from .outcome import Outcome, outcome


async def fetch_result(run: RunContext, job: dict[str, Any], status: dict[str, Any]) -> Outcome:
    """Ask for a completed request's result and decide what it means (see outcome.py)."""
    failed = bool(status.get("error"))
    run.jobs.store.count(job["id"], "result_requests")
    result, error = None, None
    try:
        result = await run.fal.result(job["response_url"], failed=failed)
    except FalTransientError:
        if not failed:
            raise
    except FalError as exc:
        error = exc
    return outcome(status, result, error, run.model)


class VideoFetcher:
    """Downloads finished jobs' videos into the plan's output folder."""

    def __init__(self, run: RunContext):
        self.run = run
        self.on_disk: dict[int, tuple[Path | None, Path | None]] | None = None

    async def fetch(self, job: dict[str, Any]) -> None:
        run, job_id = self.run, job["id"]
        out = run.plan.output_dir
        out.mkdir(parents=True, exist_ok=True)
        if self.on_disk is None:  # list the folder once per run, not once per job
            self.on_disk = index_videos(out, run.model.name)
        found, unfinished = self.on_disk.pop(job_id, (None, None))
        if found is not None and not found.exists():
            found = None
        if found is None:
            dest = unfinished or out / video_filename(job_id, run.model.name)
            if not await self._download(job, dest):
                return
            found = dest
        run.jobs.downloaded(job_id, str(found))
        run.progress.downloaded += 1
        run.emit()

    async def _download(self, job: dict[str, Any], dest: Path) -> bool:
        run, job_id = self.run, job["id"]
        url = job["video_url"]
        for attempt in range(2):
            run.jobs.store.count(job_id, "download_attempts")
            try:
                # the CDN client: a video URL may point anywhere, and only fal's own API
                # gets the key
                await download(run.fal.cdn_http, url, dest, budget=run.fal.budget)
                return True
            except ExpiredURLError as exc:
                if attempt:
                    run.fail(
                        job_id,
                        f"the video URL expired ({exc}) and fal's result, fetched again by "
                        f"request id, names the same expired file; {run.retry_hint()}.",
                        "video_expired",
                    )
                    return False
                url = await self._refresh_url(job)
                if url is None:
                    return False
            except DownloadError as exc:
                run.jobs.note(job_id, f"download failed: {exc}")
                run.emit(f"job {job_id}: {exc}")
                return False
        return False

    async def _refresh_url(self, job: dict[str, Any]) -> str | None:
        """The video URL expired: ask fal for the result again by request id."""
        run = self.run
        try:
            result = await run.fal.result(job["response_url"])
            url = run.model.video_url(result)
            check_url(url)
        except (FalError, DownloadError) as exc:
            run.fail(
                job["id"],
                f"the video URL expired and fal no longer has the result ({exc}); "
                f"{run.retry_hint()}.",
                "video_expired",
            )
            return None
        run.jobs.store.update_job(job["id"], video_url=url)
        return url
