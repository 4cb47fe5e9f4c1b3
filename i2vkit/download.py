"""Streaming video downloads that are never left half-written.

A video is streamed to a hidden `.part` file in the output folder and renamed into
place only when its byte count matches what the server announced, so a file that
exists under its final name is always complete (and a re-run rightly skips it).
A dropped transfer resumes with a Range request; a crash leaves only the `.part`,
which the next run resumes or replaces.
"""

from __future__ import annotations

import asyncio
import errno
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from .errors import DownloadError, ExpiredURLError, RenameBlockedError
from .filenames import safe_component
from .http import ATTEMPTS, RequestBudget, _Retry, retry_if_transient, retrying

MAX_VIDEO_BYTES = 2 * 1024**3
CHUNK = 1024 * 1024


def finish(dest: Path, size: int) -> None:
    """Rename the complete `.part` of `dest` (`size` bytes) to `dest`, or say why it can't."""
    try:
        os.replace(part_path(dest), dest)
    except OSError as exc:
        raise RenameBlockedError(dest, size, exc, part_path(dest)) from None


def video_filename(job_id: int, model: str, when: datetime | None = None) -> str:
    """`{job_id}_{model}_{timestamp}.mp4`, as the PRD says; the model made filesystem-safe.

    The model part never holds a ``_`` (it becomes ``-``), so the name splits back into
    its three parts. The name alone does not say whose video it is: job ids start at 1 in
    every ledger, so two ledgers writing to one folder can meet on a name; the ledger
    records each job's name (see :func:`unused_video_path`).
    """
    slug = safe_component(model or "model", max_len=60).replace("_", "-")
    stamp = (when or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{job_id}_{slug}_{stamp}.mp4"


def unused_video_path(
    output_dir: Path, job_id: int, model: str, record: Callable[[Path], None] | None = None
) -> Path:
    """Claim a name for a job's video that no file (finished or `.part`) in the folder has.

    `{job_id}_{model}_{timestamp}.mp4`, or with ``-2`` (then ``-3``, ...) before ``.mp4``
    when a file (another ledger's video, anything) or a `.part` has that name. The name is
    held by creating its empty `.part` (exclusively, so two runs picking at once never get
    the same name), and the download writes to that `.part`. ``record(dest)`` writes each
    candidate into the ledger before its `.part` is created: a kill between the two then
    leaves a name the next run resumes, never a `.part` no ledger knows. A file found on
    disk is the job's only when its ledger recorded that name (see :func:`owned_video`).
    """
    base = video_filename(job_id, model, datetime.now(UTC))
    n = 1
    while True:
        dest = output_dir / (base if n == 1 else f"{base[: -len('.mp4')]}-{n}.mp4")
        n += 1
        if record is not None:
            record(dest)
        try:
            # the .part first: a finished download is renamed from it, so once it is ours
            # no one else can be renaming a video onto `dest`
            with open(part_path(dest), "xb"):
                pass
        except FileExistsError:
            continue
        except OSError as exc:
            raise DownloadError(f"cannot write in {output_dir}: {exc.strerror}.") from None
        if not os.path.lexists(dest):
            return dest
        part_path(dest).unlink()  # a file already has the name: ours is the next one


def owned_video(dest: Path, size: int | None) -> bool:
    """Is the finished file at `dest` (a name the job's ledger recorded) the job's video?

    The name was recorded before the download started and no other job picks a name that
    exists, so a complete file there was written by this job's download (it is renamed
    into place only when whole); `size`, when fal said it, must match too.
    """
    try:
        if not dest.is_file():  # a folder or anything else at that name is not the video
            return False
        found = dest.stat().st_size
    except OSError:
        return False
    return found > 0 and (size is None or found == size)


def part_path(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.part")


def check_url(url: str) -> None:
    if urlsplit(url).scheme not in ("http", "https"):
        raise DownloadError(f"refusing to download {url[:80]!r}: only http(s) URLs are followed.")


async def download(
    client: httpx.AsyncClient,
    url: str,
    dest: Path,
    *,
    max_bytes: int = MAX_VIDEO_BYTES,
    attempts: int = ATTEMPTS,
    budget: RequestBudget | None = None,
    size: int | None = None,
    finishing: Callable[[Path], int] | None = None,
) -> int:
    """Download `url` to `dest` atomically; returns the size. Resumes drops with Range.

    `finishing`, when given, runs (in a thread) on the complete `.part` before the rename
    that makes the video visible and returns its new size (the recipe tags, see
    :mod:`i2vkit.provenance`); it must leave a whole video, and be harmless twice.

    `size` is the video's length when the ledger knows it: a `.part` that already holds
    that many bytes is a finished download whose rename failed (:class:`RenameBlockedError`)
    and is only renamed, with no request.

    Each try is one attempt of :func:`i2vkit.http.retrying`, so downloads follow the same
    policy as every other request: with a `budget` (the batch's RequestBudget), each try
    waits for a token and a 429 pauses the whole batch for Retry-After instead of burning
    an attempt, so downloads never hammer a rate-limited server. A try that dropped keeps
    its bytes in the `.part` file and the next one asks only for the rest.
    """
    check_url(url)
    dest = Path(dest)
    part = part_path(dest)
    if size and part.is_file() and part.stat().st_size == size:
        if finishing is not None:
            size = await asyncio.to_thread(finishing, part)
        finish(dest, size)
        return size

    async def attempt() -> int:
        return await _download_once(client, url, dest, max_bytes, finishing)

    def give_up(last: _Retry) -> DownloadError:
        return DownloadError(f"download of {dest.name} failed after {attempts} tries ({last}).")

    try:
        return await retrying(attempt, give_up=give_up, budget=budget, attempts=attempts)
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise _cannot_write(dest, exc) from None
    except (ExpiredURLError, RenameBlockedError):
        raise
    except DownloadError:
        part.unlink(missing_ok=True)
        raise


async def _download_once(
    client: httpx.AsyncClient,
    url: str,
    dest: Path,
    max_bytes: int,
    finishing: Callable[[Path], int] | None = None,
) -> int:
    """One try: ask for what the `.part` lacks (a Range request when it has bytes), write
    it, and rename the `.part` to `dest` once whole; returns the size."""
    part = part_path(dest)
    offset = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    async with client.stream("GET", url, headers=headers, follow_redirects=True) as response:
        if response.status_code in (401, 403, 404, 410):
            raise ExpiredURLError(
                f"the video URL answered HTTP {response.status_code}; it has expired."
            )
        if response.status_code == 416 and offset:
            part.unlink(missing_ok=True)  # the .part is not a prefix of this file
            raise _Retry("the partial download did not match; starting over")
        retry_if_transient(response)
        if response.status_code not in (200, 206):
            raise DownloadError(
                f"download of {dest.name} failed: the server answered HTTP {response.status_code}."
            )
        start = 0 if response.status_code == 200 else offset
        size = await _write_part(response, part, start, max_bytes)
    if finishing is not None:
        size = await asyncio.to_thread(finishing, part)
    finish(dest, size)
    return size


async def _write_part(response: httpx.Response, part: Path, offset: int, max_bytes: int) -> int:
    """Write the body into `part` from `offset` on, durably; returns the `.part`'s size.
    Asks for another try (:class:`~i2vkit.http._Retry`) when the body came short or empty."""
    length = response.headers.get("content-length")
    total = offset + int(length) if length is not None else None
    if total is not None and total > max_bytes:
        raise DownloadError(
            f"the video is {total} bytes, over the {max_bytes} byte cap; not downloaded."
        )
    size = offset
    with open(part, "r+b" if offset else "wb", buffering=CHUNK) as f:
        f.seek(offset)
        f.truncate()
        async for chunk in response.aiter_raw():
            size += len(chunk)
            if size > max_bytes:
                raise DownloadError(f"the download passed the {max_bytes} byte cap; stopped.")
            f.write(chunk)
        f.flush()
        # durable before the rename, without stalling the whole batch on the disk
        await asyncio.to_thread(os.fsync, f.fileno())
    if total is not None and size != total:
        raise _Retry(f"got {size} of {total} bytes")
    if size == 0:
        raise _Retry("the server sent an empty file")
    return size


def _cannot_write(dest: Path, exc: OSError) -> DownloadError:
    """The error for a `.part` that could not be written (a full disk says what to do)."""
    if exc.errno == errno.ENOSPC or exc.errno == errno.EFBIG:
        return DownloadError(
            f"no space left to write {dest.name} in {dest.parent}; free some space and "
            "run the same command again (the job is kept and will download then)."
        )
    return DownloadError(f"cannot write {dest}: {exc.strerror}.")
