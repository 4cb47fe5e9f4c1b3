"""This run's URL for each image (and end frame), and uploading one again when fal cannot
fetch it."""

from __future__ import annotations

import asyncio
from typing import Any

from ..refs import is_remote
from ..rows import JobRow, job_url
from ..uploads import Uploader
from .context import RunContext


class ImageURLs:
    """Image path -> a URL fal can fetch now. A URL fal failed to fetch (a cached upload
    that expired early) is expired in the cache and the image uploaded again, once per
    image however many jobs hit it at the same time."""

    def __init__(self, run: RunContext, cache_enabled: bool):
        self.run = run
        self.cache_enabled = cache_enabled
        self.urls: dict[str, str] = {}
        self.reuploads: dict[str, asyncio.Future[str | None]] = {}

    def uploader(self, concurrency: int = 4) -> Uploader:
        return Uploader(
            self.run.jobs.store,
            self.run.fal,
            cache_enabled=self.cache_enabled,
            concurrency=concurrency,
        )

    def for_job(self, job: JobRow) -> str:
        return self.urls.get(job["image_path"]) or job_url(job, "image_url")

    async def refresh(self, job: JobRow, field: str) -> dict[str, Any] | None:
        """Upload again the image of ours that fal could not fetch for ``job``, named by
        the argument ``field`` in fal's error: the start image (the returned ledger
        change is its new URL) or the end frame (every job of the run that sends the same
        end frame gets the new URL; nothing changes in the job's row). None when it
        cannot be uploaded again (a URL the user gave, a file gone): the job fails.
        """
        model = self.run.plan.model_for(job)
        if field and field == model.end_image_field:
            path = job.get("end_image_path")
            if not path or is_remote(path):
                return None
            url = await self.fresh(path, self.run.plan.end_image_urls.get(path))
            if url is None:
                return None
            self.run.plan.end_image_urls[path] = url
            return {}
        url = await self.fresh(job["image_path"], job["image_url"])
        return None if url is None else {"image_url": url}

    async def fresh(self, path: str, stale_url: str | None) -> str | None:
        """A new URL for `path`, or None when the image cannot be uploaded again."""
        pending = self.reuploads.get(path)
        if pending is None:
            pending = self.reuploads[path] = asyncio.ensure_future(self._reupload(path, stale_url))
        return await asyncio.shield(pending)

    async def _reupload(self, path: str, stale_url: str | None) -> str | None:
        if stale_url:  # every cache row with that URL is expired from now on
            self.run.jobs.store.expire_url(stale_url)
        report = await self.uploader().upload_all([path])
        url = report.urls.get(path)
        if url is not None:
            self.urls[path] = url
        return url
