"""Cached uploads against the emulator: its counters prove what crossed the wire."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import sys
from datetime import UTC, datetime, timedelta

import httpx
from helpers import make_images

from i2vkit.backend import URL, Backend
from i2vkit.fal import FalConnection
from i2vkit.store import Store
from i2vkit.uploads import Uploader, hash_file


def uploads(emulator) -> int:
    return emulator.stats()["uploads"]


def run_upload(settings, paths, **kwargs):
    async def go():
        with Store(settings.db_path) as store:
            async with FalConnection(Backend(URL, settings.fal_url), settings.fal_key) as fal:
                uploader = Uploader(
                    store, fal, cache_enabled=settings.upload_cache_enabled, **kwargs
                )
                return await uploader.upload_all(paths)

    return asyncio.run(go())


def test_five_images_upload_once_then_never(settings, emulator, tmp_path):
    paths = make_images(tmp_path / "pics", 5)
    first = run_upload(settings, paths)
    assert first.uploaded == 5 and not first.failed
    assert uploads(emulator) == 5
    # the URLs serve exactly the bytes we uploaded
    for p in paths:
        body = httpx.get(first.urls[str(p)]).content
        assert hashlib.sha256(body).hexdigest() == first.hashes[str(p)]
    second = run_upload(settings, paths)
    assert second.uploaded == 0 and second.reused == 5
    assert second.hashed == 0  # unchanged (path, size, mtime): not even read
    assert uploads(emulator) == 5
    assert second.urls == first.urls


def test_renamed_copy_is_not_uploaded_and_edit_is(settings, emulator, tmp_path):
    [p] = make_images(tmp_path / "pics", 1)
    first = run_upload(settings, [p])
    moved = tmp_path / "elsewhere" / "renamed.png"
    moved.parent.mkdir()
    shutil.copy(p, moved)
    again = run_upload(settings, [moved])
    assert again.uploaded == 0 and again.urls[str(moved)] == first.urls[str(p)]
    assert uploads(emulator) == 1
    # an edit changes the bytes: uploaded once, and only once
    make_images(tmp_path / "edit", 1, start=40)
    shutil.copy(tmp_path / "edit" / "img41.png", p)
    edited = run_upload(settings, [p])
    assert edited.uploaded == 1 and edited.urls[str(p)] != first.urls[str(p)]
    assert run_upload(settings, [p]).uploaded == 0
    assert uploads(emulator) == 2


def test_touched_file_is_rehashed_but_not_uploaded(settings, emulator, tmp_path):
    [p] = make_images(tmp_path / "pics", 1)
    run_upload(settings, [p])
    p.touch()
    import os

    os.utime(p, ns=(p.stat().st_atime_ns, p.stat().st_mtime_ns + 10**9))
    again = run_upload(settings, [p])
    assert again.hashed == 1 and again.uploaded == 0
    assert run_upload(settings, [p]).hashed == 0  # the new mtime was remembered
    assert uploads(emulator) == 1


def test_identical_files_in_one_batch_upload_once(settings, emulator, tmp_path):
    [p] = make_images(tmp_path / "pics", 1)
    twins = [tmp_path / "pics" / f"twin{i}.png" for i in range(4)]
    for t in twins:
        shutil.copy(p, t)
    report = run_upload(settings, [p, *twins], concurrency=5)
    assert report.uploaded == 1
    assert len(set(report.urls.values())) == 1
    assert uploads(emulator) == 1


def test_identical_files_upload_once_without_cache(no_cache, emulator, tmp_path):
    [p] = make_images(tmp_path / "pics", 1)
    shutil.copy(p, tmp_path / "pics" / "twin.png")
    report = run_upload(no_cache, [p, tmp_path / "pics" / "twin.png"])
    assert report.uploaded == 1


def test_cache_disabled_uploads_every_time_and_writes_nothing(no_cache, emulator, tmp_path):
    paths = make_images(tmp_path / "pics", 3)
    run_upload(no_cache, paths)
    run_upload(no_cache, paths)
    assert uploads(emulator) == 6
    with Store(no_cache.db_path) as store:
        assert store.db["upload_cache"].count == 0


def test_expired_entry_uploads_again(settings, emulator, tmp_path):
    paths = make_images(tmp_path / "pics", 2)
    first = run_upload(settings, paths, lifetime=timedelta(days=7))
    with Store(settings.db_path) as store:
        row = store.cached_by_path(str(paths[0]))
        expires = datetime.fromisoformat(row["expires_at"])
        assert timedelta(days=6.9) < expires - datetime.now(UTC) <= timedelta(days=7)
    # eight days later every URL has expired (or expires too soon to trust): upload again
    later = run_upload(settings, paths, clock=lambda: datetime.now(UTC) + timedelta(days=8))
    assert later.uploaded == 2 and later.urls != first.urls
    # within the refresh margin of expiry counts as expired too
    soon = run_upload(
        settings, paths, clock=lambda: datetime.now(UTC) + timedelta(days=8 + 6, hours=12)
    )
    assert soon.uploaded == 2
    assert uploads(emulator) == 6


def test_urls_never_cross_backends(settings, emulator, tmp_path):
    """A URL cached for one backend is never handed to another: the emulator's URLs mean
    nothing to fal (or to a second emulator)."""
    paths = make_images(tmp_path / "pics", 2)
    first = run_upload(settings, paths)
    digest = hash_file(paths[0])[0]
    with Store(settings.db_path) as store:
        row = store.cached_by_hash(digest, emulator.url, "")
        assert row is not None and row["fal_url"] == first.urls[str(paths[0])]
        assert store.cached_by_hash(digest, "fal", "") is None
    # the same images for another scope are uploaded again, not reused
    other = run_upload(settings, paths, scope="http://127.0.0.1:9/other-service")
    assert other.uploaded == 2 and other.reused == 0
    assert uploads(emulator) == 4
    with Store(settings.db_path) as store:
        assert store.cached_by_hash(digest, "http://127.0.0.1:9/other-service", "") is not None


def test_per_file_errors_do_not_stop_the_batch(settings, emulator, tmp_path):
    good = make_images(tmp_path / "pics", 2)
    empty = tmp_path / "pics" / "empty.png"
    empty.write_bytes(b"")
    gone = tmp_path / "pics" / "gone.png"
    fake = tmp_path / "pics" / "fake.png"
    fake.write_bytes(b"this is a text file now")
    report = run_upload(settings, [*good, empty, gone, fake])
    assert report.uploaded == 2
    assert "empty (0 bytes)" in report.failed[str(empty)]
    assert "disappeared" in report.failed[str(gone)]
    assert "not a JPEG, PNG or WebP" in report.failed[str(fake)]


def test_too_large_file_names_the_limit(settings, emulator, tmp_path, monkeypatch):
    import i2vkit.uploads as uploads_module

    [p] = make_images(tmp_path / "pics", 1)
    monkeypatch.setattr(uploads_module, "MAX_UPLOAD_BYTES", 100)
    report = run_upload(settings, [p])
    assert "MiB i2vkit uploads" in report.failed[str(p)]


def test_second_run_over_1000_cached_images_opens_none(settings, emulator, tmp_path):
    paths = make_images(tmp_path / "many", 1000, size=(8, 8))
    first = run_upload(settings, paths, concurrency=8)
    assert first.uploaded == 1000
    opened: list[str] = []
    folder = str(tmp_path / "many")
    watching = [True]

    def audit(event, args):
        if (
            watching[0]
            and event == "open"
            and isinstance(args[0], str)
            and args[0].startswith(folder)
        ):
            opened.append(args[0])

    sys.addaudithook(audit)
    try:
        second = run_upload(settings, paths, concurrency=8)
    finally:
        watching[0] = False
    assert second.uploaded == 0 and second.reused == 1000
    assert opened == []


def test_hashing_streams_large_files(tmp_path):
    import tracemalloc

    big = tmp_path / "big.png"
    with open(big, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.truncate(200 * 1024 * 1024)
    tracemalloc.start()
    digest, kind = hash_file(big)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert kind == "png" and len(digest) == 64
    assert peak < 8 * 1024 * 1024
