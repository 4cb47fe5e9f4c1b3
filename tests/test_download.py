"""The downloader against the emulator's file server: atomic, resumable, capped."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime

import httpx
import pytest
from helpers import upload_blob

from i2vkit.download import download, owned_video, part_path, unused_video_path, video_filename
from i2vkit.errors import DownloadError


def fetch(url, dest, **kwargs):
    async def go():
        async with httpx.AsyncClient() as client:
            return await download(client, url, dest, **kwargs)

    return asyncio.run(go())


def test_filename_pattern_is_safe():
    when = datetime(2026, 11, 25, 14, 15, 0, tzinfo=UTC)
    assert video_filename(7, "wan", when) == "7_wan_20261125T141500Z.mp4"
    assert (
        video_filename(7, "wan", when, "0a1b2c3d4e5f") == "7_wan_20261125T141500Z_0a1b2c3d4e5f.mp4"
    )
    name = video_filename(8, "../../etc/x", when)
    assert "/" not in name and not name.startswith(".") and re.match(r"^8_[\w.-]+_\d{8}T", name)


def test_dropped_transfers_resume_and_complete(emulator, tmp_path):
    data = bytes(range(256)) * 4096  # 1 MiB
    url = upload_blob(emulator, data)
    emulator.configure(drop_downloads=2)
    dest = tmp_path / "1_wan_20261125T000000Z.mp4"
    assert fetch(url, dest) == len(data)
    assert dest.read_bytes() == data
    assert not part_path(dest).exists()
    assert emulator.stats()["downloads_dropped"] == 2


def test_a_failed_download_leaves_no_final_file(emulator, tmp_path):
    url = upload_blob(emulator, b"x" * 100_000)
    emulator.configure(drop_downloads=50)
    dest = tmp_path / "v.mp4"
    with pytest.raises(DownloadError):
        fetch(url, dest, attempts=2)
    assert not dest.exists()
    # a later run resumes the partial file and finishes it
    emulator.configure(drop_downloads=0)
    assert fetch(url, dest) == 100_000 and dest.read_bytes() == b"x" * 100_000


def test_size_cap_and_schemes(emulator, tmp_path):
    url = upload_blob(emulator, b"y" * 50_000)
    with pytest.raises(DownloadError, match="cap"):
        fetch(url, tmp_path / "big.mp4", max_bytes=10_000)
    assert not (tmp_path / "big.mp4").exists() and not part_path(tmp_path / "big.mp4").exists()
    for bad in ("file:///etc/passwd", "ftp://example.invalid/v.mp4"):
        with pytest.raises(DownloadError, match="only http"):
            fetch(bad, tmp_path / "evil.mp4")


def test_a_new_name_is_one_no_file_has_and_carries_the_batch(tmp_path):
    """Job 3 of batch aaa and job 3 of batch bbb get different names; a name a finished
    file or a `.part` already has is never handed out again."""
    a = unused_video_path(tmp_path, 3, "wan", "aaa")
    b = unused_video_path(tmp_path, 3, "wan", "bbb")
    assert a != b and a.name.startswith("3_wan_") and a.name.endswith("_aaa.mp4")
    a.write_bytes(b"taken")
    part_path(b).write_bytes(b"half")
    again_a = unused_video_path(tmp_path, 3, "wan", "aaa")
    again_b = unused_video_path(tmp_path, 3, "wan", "bbb")
    assert again_a not in (a, b) and again_b not in (a, b)
    assert again_a.name.startswith("3_wan_") and again_b.name.startswith("3_wan_")


def test_a_file_is_the_jobs_only_at_its_recorded_name_and_size(tmp_path):
    dest = tmp_path / "1_wan_20261125T000000Z_aaa.mp4"
    assert not owned_video(dest, None)  # nothing there
    dest.write_bytes(b"x" * 10)
    assert owned_video(dest, 10) and owned_video(dest, None)
    assert not owned_video(dest, 11)  # the size fal announced differs: not this video
    dest.write_bytes(b"")
    assert not owned_video(dest, None)


def test_a_429_pauses_the_budget_without_spending_an_attempt(emulator, tmp_path):
    from i2vkit.http import RequestBudget

    url = upload_blob(emulator, b"z" * 20_000)
    emulator.configure(rate_limit=0.5, rate_burst=1)  # one request per 2 s
    assert httpx.get(url).status_code == 200  # spends the token: the download gets a 429
    budget = RequestBudget(rate=100, min_rate=100)
    dest = tmp_path / "v.mp4"
    assert fetch(url, dest, attempts=1, budget=budget) == 20_000
    assert emulator.stats()["rate_limited"] >= 1 and budget.throttled >= 1
    assert dest.read_bytes() == b"z" * 20_000


def test_gateway_errors_are_retried_until_the_attempts_run_out(emulator, tmp_path, monkeypatch):
    monkeypatch.setattr("i2vkit.http.BACKOFF_FIRST", 0.001)
    url = upload_blob(emulator, b"w" * 20_000)
    emulator.configure(fail_next=2, fail_status=502)
    with pytest.raises(DownloadError, match=r"after 2 tries \(HTTP 502\)"):
        fetch(url, tmp_path / "a.mp4", attempts=2)
    emulator.configure(fail_next=2, fail_status=502)
    assert fetch(url, tmp_path / "b.mp4", attempts=3) == 20_000
    assert not (tmp_path / "a.mp4").exists()
