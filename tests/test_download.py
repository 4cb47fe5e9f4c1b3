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
    # the model part never holds a "_": the name splits back into its three parts
    assert video_filename(7, "my_model", when) == "7_my-model_20261125T141500Z.mp4"
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


def test_a_new_name_is_claimed_and_gets_a_number_where_a_file_or_part_has_it(tmp_path):
    """Job 3 of one ledger, then job 3 of another in the same second: where a file (or a
    folder) has the name, the next number is taken; each claimed name is held by its
    empty `.part`, so no one else is handed it before the download starts."""
    name = re.compile(r"^3_wan_(\d{8}T\d{6}Z)(-\d+)?\.mp4$")
    first = unused_video_path(tmp_path, 3, "wan")
    assert name.match(first.name) and name.match(first.name).group(2) is None
    assert part_path(first).read_bytes() == b""  # claimed: held by its empty .part
    first.write_bytes(b"another ledger's video")
    stamp = name.match(first.name).group(1)
    # names meet only within one second (the timestamp): when the next claim falls in
    # the same second, -2 and -3 are taken too and it gets -4
    (tmp_path / f"3_wan_{stamp}-2.mp4").write_bytes(b"someone's file")
    (tmp_path / f"3_wan_{stamp}-3.mp4").mkdir()  # any entry holds its name, a folder too
    second = unused_video_path(tmp_path, 3, "wan")
    assert second != first and name.match(second.name) and part_path(second).is_file()
    if name.match(second.name).group(1) == stamp:
        assert second.name == f"3_wan_{stamp}-4.mp4"
    else:  # a new second: the plain name of that second
        assert name.match(second.name).group(2) is None
    assert first.read_bytes() == b"another ledger's video"  # nothing overwritten
    assert (tmp_path / f"3_wan_{stamp}-2.mp4").read_bytes() == b"someone's file"
    assert (tmp_path / f"3_wan_{stamp}-3.mp4").is_dir()


def test_names_that_meet_are_numbered_in_order(tmp_path):
    """Claimed in the same second for the same job id: the name, then -2, -3, ... (each
    held by its `.part` before any download has started)."""
    claimed = [unused_video_path(tmp_path, 1, "wan") for _ in range(4)]
    assert len(set(claimed)) == 4 and all(part_path(p).is_file() for p in claimed)
    by_second: dict[str, list[str]] = {}
    for path in claimed:
        stamp, _, rest = path.name.partition("Z")
        by_second.setdefault(stamp, []).append(rest)
    for endings in by_second.values():
        assert endings == [".mp4"] + [f"-{n}.mp4" for n in range(2, len(endings) + 1)]


def test_a_name_cannot_be_claimed_in_a_folder_that_is_a_file(tmp_path):
    (tmp_path / "out").write_bytes(b"not a folder")
    with pytest.raises(DownloadError, match="cannot write in"):
        unused_video_path(tmp_path / "out", 1, "wan")


def test_a_file_is_the_jobs_only_at_its_recorded_name_and_size(tmp_path):
    dest = tmp_path / "1_wan_20261125T000000Z.mp4"
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
