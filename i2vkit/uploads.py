"""Cached uploads of local images to fal's CDN.

The cache key is the content (sha256 of the bytes), so a renamed, moved or copied
image is never uploaded again and an edited one is. A re-run does not even read
unchanged files: a (path, size, mtime) that matches the ledger reuses its hash.
URLs are remembered per backend (fal, or the base URL of an emulator) together
with when they stop being valid, and an expiring URL is uploaded again before a
job can use it.
"""

from __future__ import annotations

import asyncio
import hashlib
import mimetypes
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from .errors import FalAuthError, FalError, FalLockedError, UploadError
from .fal import FalConnection
from .store import Store

MAX_UPLOAD_BYTES = 100 * 1024 * 1024
DEFAULT_LIFETIME = timedelta(days=7)
REFRESH_MARGIN = timedelta(days=1)
HASH_CHUNK = 1024 * 1024
MAGIC = {
    "jpeg": (b"\xff\xd8\xff",),
    "png": (b"\x89PNG\r\n\x1a\n",),
    "webp": (b"RIFF",),
}


def sniff_format(head: bytes) -> str | None:
    for name, prefixes in MAGIC.items():
        if any(head.startswith(p) for p in prefixes):
            if name == "webp" and head[8:12] != b"WEBP":
                continue
            return name
    return None


def hash_file(path: str | os.PathLike) -> tuple[str, str | None]:
    """Stream the file through sha256 (flat memory on any size); also sniff its format."""
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        head = f.read(HASH_CHUNK)
        digest.update(head)
        buffer = bytearray(HASH_CHUNK)
        view = memoryview(buffer)
        while n := f.readinto(buffer):
            digest.update(view[:n])
    return digest.hexdigest(), sniff_format(head[:16])


def hash_bytes(data: bytes) -> tuple[str, str | None]:
    """:func:`hash_file` of bytes already in memory."""
    return hashlib.sha256(data).hexdigest(), sniff_format(data[:16])


@dataclass
class UploadReport:
    """What happened to each image: its URL, or why it has none."""

    urls: dict[str, str] = field(default_factory=dict)
    hashes: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    uploaded: int = 0
    reused: int = 0
    hashed: int = 0


class Uploader:
    """Uploads a batch's images once, with bounded concurrency."""

    def __init__(
        self,
        store: Store,
        fal: FalConnection,
        *,
        cache_enabled: bool = True,
        concurrency: int = 4,
        scope: str | None = None,
        lifetime: timedelta = DEFAULT_LIFETIME,
        refresh_margin: timedelta = REFRESH_MARGIN,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        """`scope` is which service the URLs belong to; it defaults to the connection's
        backend (`fal.backend.url_scope`), so cached URLs never cross backends."""
        self.store = store
        self.fal = fal
        self.backend = scope if scope is not None else fal.backend.url_scope
        self.cache_enabled = cache_enabled
        self.semaphore = asyncio.Semaphore(max(1, concurrency))
        self.lifetime = lifetime
        self.refresh_margin = refresh_margin
        self.clock = clock
        self.in_flight: dict[str, asyncio.Task[tuple[str, str, str | None]]] = {}

    async def upload_all(
        self, paths: Iterable[str | os.PathLike], on_progress: Callable[[str], None] | None = None
    ) -> UploadReport:
        report = UploadReport()

        async def one(path: str) -> None:
            try:
                report.urls[path] = await self.upload(path, report)
            except UploadError as exc:
                report.failed[path] = str(exc)
            finally:
                if on_progress:
                    on_progress(path)

        async with asyncio.TaskGroup() as group:
            for p in paths:
                group.create_task(one(str(Path(p).absolute())))
        return report

    async def file_hash(
        self, path: str, report: UploadReport, data: bytes | None = None
    ) -> tuple[str, os.stat_result]:
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            raise UploadError(
                f"{path}: the file disappeared after the folder was scanned; put it back and "
                "run again."
            ) from None
        except OSError as exc:
            raise UploadError(f"{path}: cannot read it ({exc.strerror}).") from None
        if stat.st_size == 0:
            raise UploadError(f"{path}: the file is empty (0 bytes); re-export the image.")
        if stat.st_size > MAX_UPLOAD_BYTES:
            raise UploadError(
                f"{path}: {stat.st_size / 1e6:.0f} MB is larger than the "
                f"{MAX_UPLOAD_BYTES // 2**20} MiB i2vkit uploads for one image; scale it down."
            )
        if known := self.unchanged_hash(path, stat):
            return known, stat
        if data is not None and len(data) != stat.st_size:
            raise UploadError(f"{path}: the file changed while it was read; run the batch again.")
        try:
            if data is not None:  # read once by the caller: hashed, not read again
                digest, kind = await asyncio.to_thread(hash_bytes, data)
            else:
                digest, kind = await asyncio.to_thread(hash_file, path)
        except OSError as exc:
            raise UploadError(f"{path}: cannot read it ({exc.strerror}).") from None
        report.hashed += 1
        if kind is None:
            raise UploadError(
                f"{path}: the file is not a JPEG, PNG or WebP image after all (it changed since "
                "the scan?); re-export it."
            )
        return digest, stat

    def unchanged_hash(self, path: str, stat: os.stat_result) -> str | None:
        """The sha256 the cache recorded for this path, while its size and mtime match:
        known without reading the file."""
        if not self.cache_enabled:
            return None
        row = self.store.cached_by_path(path)
        if (
            row
            and row["file_hash"]
            and (row["size"], row["mtime_ns"])
            == (
                stat.st_size,
                stat.st_mtime_ns,
            )
        ):
            return row["file_hash"]
        return None

    async def upload(self, path: str, report: UploadReport, data: bytes | None = None) -> str:
        """The fal URL for one local image, uploading only when no valid one is known.
        ``data``: its bytes, already read and checked by the caller (the run's pipeline):
        hashed and sent as they are, so what was checked is what is uploaded."""
        digest, stat = await self.file_hash(path, report, data)
        report.hashes[path] = digest
        if self.cache_enabled:
            valid_until = (self.clock() + self.refresh_margin).isoformat()
            hit = self.store.cached_by_hash(digest, self.backend, valid_until)
            cached_url = hit["fal_url"] if hit else None  # the query only finds rows with one
            if hit and cached_url:
                report.reused += 1
                if hit["local_path"] != path or hit["mtime_ns"] != stat.st_mtime_ns:
                    self.remember(
                        path,
                        digest,
                        stat,
                        cached_url,
                        hit["uploaded_at"],
                        hit["expires_at"],
                        hit["content_type"],
                    )
                return cached_url
        task = self.in_flight.get(digest)
        first = task is None
        if task is None:
            task = self.in_flight[digest] = asyncio.create_task(self.send(path, data))
        try:
            url, uploaded_at, expires_at = await asyncio.shield(task)
        except UploadError as exc:
            if first:
                raise
            raise UploadError(f"{path}: same bytes as an image that failed: {exc}") from None
        if first:
            report.uploaded += 1
        else:
            report.reused += 1
        if self.cache_enabled:
            self.remember(path, digest, stat, url, uploaded_at, expires_at)
        return url

    def remember(
        self,
        path: str,
        digest: str,
        stat: os.stat_result,
        url: str,
        uploaded_at: str | None,
        expires_at: str | None,
        content_type: str | None = None,
    ) -> None:
        self.store.remember_upload(
            local_path=path,
            file_hash=digest,
            fal_url=url,
            uploaded_at=uploaded_at or self.clock().isoformat(),
            size=stat.st_size,
            mtime_ns=stat.st_mtime_ns,
            content_type=content_type or mimetypes.guess_type(path)[0],
            expires_at=expires_at,
            backend=self.backend,
        )

    async def send(self, path: str, data: bytes | None = None) -> tuple[str, str, str | None]:
        """Upload one file (retries live in the connection's one retry loop); a rejected key
        or a locked account stops the whole batch, any other failure only this image."""
        started = self.clock()
        try:
            async with self.semaphore:
                url = await self.fal.upload_file(path, int(self.lifetime.total_seconds()), data)
        except (FalAuthError, FalLockedError):
            raise
        except FalError as exc:
            raise UploadError(f"{path}: upload to fal failed ({exc}).") from None
        except OSError as exc:
            raise UploadError(f"{path}: cannot read it ({exc.strerror}).") from None
        expires = started + self.lifetime if self.lifetime else None
        return url, started.isoformat(), expires.isoformat() if expires else None
