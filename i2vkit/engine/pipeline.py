"""A run's images, each checked (when its plan left that to the run), hashed and uploaded
in a bounded window, in the folder's order, while the first ones are already submitted.

Why a window: a folder of a thousand 12-megapixel photos is gigabytes. Only ``window``
photos are between "next" and "handed to the runner" at any time (each at most one
thread's check, one hash buffer and one upload's bytes), so memory does not depend on
the folder's size, and the first job reaches fal as soon as its own photo is through,
not after the whole folder.

Why in order: the runner records and submits jobs in the plan's order (the ledger's
order, which every listing shows), so photos come out in the order they went in; those
behind a slow one wait in the window, they are not re-ordered.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..errors import UploadError
from ..images import CHECK_WORKERS, ImageFile, check_data_of
from ..uploads import Uploader, UploadReport

NOT_UPLOADED = "nothing was sent to fal for it"


@dataclass(frozen=True)
class Ready:
    """One image through the pipeline: its URL, or why it has none."""

    path: str
    url: str | None
    failure: str | None = None


#: glibc's M_MMAP_THRESHOLD (mallopt's parameter number)
_M_MMAP_THRESHOLD = -3


def give_photo_buffers_back() -> None:
    """Have glibc map every allocation of 1 MB or more on its own, so a photo's bytes go
    back to the system when they are freed. By default glibc raises that threshold to
    32 MB after the first such buffer is freed, after which photo after photo is carved
    from its heaps and the process keeps the high-water mark: measured, +9 MB per 110
    photos of 12 MP without this, +1 MB with it. No-op where there is no glibc."""
    try:
        import ctypes

        ctypes.CDLL(None).mallopt(_M_MMAP_THRESHOLD, 1 << 20)
    except (OSError, AttributeError, TypeError):  # no C library to ask (Windows)
        pass


def window_for(upload_concurrency: int) -> int:
    """Photos in flight: enough to keep every checking thread and upload slot busy."""
    return max(2, upload_concurrency + CHECK_WORKERS)


async def through(
    uploader: Uploader,
    paths: list[str],
    unchecked: dict[str, ImageFile],
    report: UploadReport,
    *,
    window: int,
) -> AsyncGenerator[Ready, None]:
    """Each of ``paths`` (absolute, distinct) as it is ready, in order, at most ``window``
    at a time. The images in ``unchecked`` have their data checked first, on threads; one
    that fails is never uploaded. A rejected key or a locked account (from the upload)
    propagates and stops the run; what is still in the window is cancelled."""
    give_photo_buffers_back()
    loop = asyncio.get_running_loop()
    pool = ThreadPoolExecutor(CHECK_WORKERS, thread_name_prefix="i2vkit-check")

    async def one(path: str) -> Ready:
        image = unchecked.get(path)
        data = None
        if image is not None:  # read once: checked, hashed and sent from these bytes
            problem = None
            try:
                data = await loop.run_in_executor(pool, Path(path).read_bytes)
            except OSError as exc:
                problem = f"cannot be read ({exc.strerror or exc})"
            if data is not None:
                problem = await loop.run_in_executor(pool, check_data_of, image, data)
            if problem is not None:
                report.failed[path] = f"{path}: {problem}; {NOT_UPLOADED}"
                return Ready(path, None, report.failed[path])
        try:
            url = report.urls[path] = await uploader.upload(path, report, data)
        except UploadError as exc:
            report.failed[path] = str(exc)
            return Ready(path, None, str(exc))
        return Ready(path, url)

    pending: deque[asyncio.Task[Ready]] = deque()
    try:
        for path in paths:
            pending.append(asyncio.create_task(one(path)))
            if len(pending) >= window:
                yield await pending.popleft()
        while pending:
            yield await pending.popleft()
    finally:
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        pool.shutdown(wait=False, cancel_futures=True)
