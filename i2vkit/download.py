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
import re
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from .errors import DownloadError
from .http import ATTEMPTS, RequestBudget, Retry, retry_if_transient, retrying

MAX_VIDEO_BYTES = 2 * 1024**3
CHUNK = 1024 * 1024
SAFE = re.compile(r"[^A-Za-z0-9._-]+")


class ExpiredURLError(DownloadError):
    """The video URL answers 403/404/410: ask fal for the result again."""


def video_filename(job_id: int, model: str, when: datetime | None = None) -> str:
    """`{job_id}_{model}_{timestamp}.mp4`, with the model made filesystem-safe."""
    slug = SAFE.sub("-", model).strip("-.") or "model"
    stamp = (when or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{job_id}_{slug[:60]}_{stamp}.mp4"


def index_videos(output_dir: Path, model: str) -> dict[int, tuple[Path | None, Path | None]]:
    """One listing of the output folder: per job id, its finished file from an earlier run
    (whatever its timestamp), or the name its interrupted download was heading for (so it
    resumes there instead of leaving an orphaned `.part`)."""
    slug = SAFE.sub("-", model).strip("-.") or "model"
    name = re.compile(rf"^(\.?)(\d+)_{re.escape(slug[:60])}_\d{{8}}T\d{{6}}Z\.mp4(\.part)?$")
    index: dict[int, tuple[Path | None, Path | None]] = {}
    if not output_dir.is_dir():
        return index
    for entry in os.scandir(output_dir):
        match = name.match(entry.name)
        if not match or bool(match.group(1)) != bool(match.group(3)):
            continue
        job_id = int(match.group(2))
        found, unfinished = index.get(job_id, (None, None))
        if match.group(3):
            unfinished = unfinished or Path(entry.path).with_name(entry.name[1 : -len(".part")])
        else:
            found = found or Path(entry.path)
        index[job_id] = (found, None if found else unfinished)
    return index


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
) -> int:
    """Download `url` to `dest` atomically; returns the size. Resumes drops with Range.

    Each try is one attempt of :func:`i2vkit.http.retrying`, so downloads follow the same
    policy as every other request: with a `budget` (the batch's RequestBudget), each try
    waits for a token and a 429 pauses the whole batch for Retry-After instead of burning
    an attempt, so downloads never hammer a rate-limited server. A try that dropped keeps
    its bytes in the `.part` file and the next one asks only for the rest.
    """
    check_url(url)
    dest = Path(dest)
    part = part_path(dest)

    async def attempt() -> int:
        offset = part.stat().st_size if part.exists() else 0
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        async with client.stream("GET", url, headers=headers, follow_redirects=True) as response:
            if response.status_code in (401, 403, 404, 410):
                raise ExpiredURLError(
                    f"the video URL answered HTTP {response.status_code}; it has expired."
                )
            if response.status_code == 416 and offset:
                part.unlink(missing_ok=True)  # the .part is not a prefix of this file
                raise Retry("the partial download did not match; starting over")
            retry_if_transient(response)
            if response.status_code not in (200, 206):
                raise DownloadError(
                    f"download of {dest.name} failed: the server answered HTTP "
                    f"{response.status_code}."
                )
            return await write_part(response, 0 if response.status_code == 200 else offset)

    async def write_part(response: httpx.Response, offset: int) -> int:
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
            raise Retry(f"got {size} of {total} bytes")
        if size == 0:
            raise Retry("the server sent an empty file")
        os.replace(part, dest)
        return size

    def give_up(last: Retry) -> DownloadError:
        return DownloadError(f"download of {dest.name} failed after {attempts} tries ({last}).")

    try:
        return await retrying(attempt, give_up=give_up, budget=budget, attempts=attempts)
    except OSError as exc:
        part.unlink(missing_ok=True)
        if exc.errno == errno.ENOSPC or exc.errno == errno.EFBIG:
            raise DownloadError(
                f"no space left to write {dest.name} in {dest.parent}; free some space and "
                "run the same command again (the job is kept and will download then)."
            ) from None
        raise DownloadError(f"cannot write {dest}: {exc.strerror}.") from None
    except ExpiredURLError:
        raise
    except DownloadError:
        part.unlink(missing_ok=True)
        raise
