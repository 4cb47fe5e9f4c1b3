"""Video names as the PRD says, `{job_id}_{model}_{timestamp}.mp4` (issue 21), with real
batches against a live emulator: the names a run gives, two ledgers meeting in one output
folder (`-2`, nothing overwritten, each ledger's rows naming its own files), and a ledger
whose jobs recorded names of an earlier version (with the batch id) resuming on them."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from clitools import packets, wait_until
from helpers import make_images

from i2vkit.download import part_path
from i2vkit.engine import run_batch
from i2vkit.planning import BatchRequest

PRD_NAME = re.compile(r"^\d+_[^_]+_\d{8}T\d{6}Z(-\d+)?\.mp4$")


def rows(db: Path) -> list[dict]:
    conn = sqlite3.connect(db, timeout=30)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM jobs ORDER BY id")]
    finally:
        conn.close()


@pytest.fixture
def settings(settings):
    """Names are what these tests are about: no recipe sidecars beside the videos (the
    recipe stays in each video's tags; tests/test_provenance.py covers sidecars)."""
    return dataclasses.replace(settings, sidecars=False)


def on_disk(folder: Path) -> dict[str, tuple[int, str]]:
    """Every entry of the folder: name -> (inode, sha256 of the bytes)."""
    return {
        p.name: (p.stat().st_ino, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in folder.iterdir()
    }


def test_every_video_a_batch_makes_is_named_job_model_timestamp(emulator, settings, tmp_path):
    images = tmp_path / "pics"
    make_images(images, 2)
    spec = BatchRequest(images_dir=images, prompts=["a slow pan", "a zoom"], model=["wan", "kling"])
    result = run_batch(spec, settings)
    assert result.ok, result.jobs
    files = sorted(settings.download_dir.iterdir())
    jobs = rows(settings.db_path)
    assert len(jobs) == len(files) == 8
    assert {Path(j["local_file"]) for j in jobs} == set(files)
    for job in jobs:
        name = Path(job["local_file"]).name
        assert PRD_NAME.match(name), name
        job_id, model, stamp = name.removesuffix(".mp4").split("_")
        assert int(job_id) == job["id"]
        assert model == job["model"]  # the short name, as given
        # the UTC time the name was given: after the job completed, before its download
        named = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        completed = datetime.fromisoformat(job["completed_at"]).replace(microsecond=0)
        assert completed <= named <= datetime.fromisoformat(job["downloaded_at"])


def test_two_ledgers_in_one_folder_meet_on_names_and_keep_their_own_videos(emulator, settings):
    """Ledgers a.db and b.db (job ids 1, 2, 3 in each) run batches at the same time into one
    folder, round after round. Jobs of both are held in fal's queue and let go together, so
    job k of each ledger is named in the same second and the second one gets `-2`. Every
    round: the files already there keep their inode and bytes, every video is the one its
    own ledger's request made (each job has its own image, so its own clip), each ledger's
    rows point at their own files, and every video was downloaded once."""
    out = settings.download_dir
    ledgers = {
        name: dataclasses.replace(settings, db_path=settings.db_path.with_name(f"{name}.db"))
        for name in ("a", "b")
    }
    met: list[tuple[str, str]] = []
    rounds, jobs_so_far = 0, 0
    results: dict[str, object] = {}

    def run(name: str, spec: BatchRequest) -> None:
        try:
            results[name] = run_batch(spec, ledgers[name])
        except Exception as exc:  # reported by the asserts below, not lost in the thread
            results[name] = exc

    while rounds < 2 or (not met and rounds < 6):
        rounds += 1
        before = on_disk(out) if out.exists() else {}
        emulator.configure(start_limit=jobs_so_far)  # this round's jobs wait in the queue
        results.clear()
        threads = []
        for n, name in enumerate(ledgers):
            pics = out.parent / f"pics-{name}-{rounds}"
            make_images(pics, 3, start=100 * rounds + 10 * n)
            spec = BatchRequest(images_dir=pics, prompts=[f"round {rounds}"], output_dir=out)
            threads.append(threading.Thread(target=run, args=(name, spec), daemon=True))
        for t in threads:
            t.start()
        queued = jobs_so_far + 6
        wait_until(
            lambda queued=queued: len(emulator.jobs()) == queued or len(results) == 2,
            60,
            "both ledgers' jobs in the queue",
        )
        emulator.configure(start_limit=None)  # let them all run: they finish together
        assert len(emulator.jobs()) == queued, results
        for t in threads:
            t.join(timeout=120)
        assert all(not t.is_alive() for t in threads)
        assert all(getattr(r, "ok", False) for r in results.values()), results
        jobs_so_far += 6

        # nothing that was there is overwritten, replaced or gone
        after = on_disk(out)
        assert {k: after.get(k) for k in before} == before
        assert not [p for p in out.iterdir() if p.name.endswith(".part")]
        mine: dict[str, set[str]] = {}
        for name, ledger in ledgers.items():
            jobs = rows(ledger.db_path)
            assert len(jobs) == 3 * rounds and {j["status"] for j in jobs} == {"downloaded"}
            names = {Path(j["local_file"]).name for j in jobs}
            assert len(names) == len(jobs) and all(PRD_NAME.match(n) for n in names), names
            for job in jobs[-3:]:  # this round's: the bytes of this ledger's own video
                local = Path(job["local_file"])
                assert local.parent == out
                # the ledger's own clip (remuxed with its recipe: the frames are fal's)
                assert packets(local) == packets(httpx.get(job["video_url"]).content), local
                assert local.stat().st_size == job["video_size"]
            mine[name] = names
        assert not mine["a"] & mine["b"], "two ledgers point at one file"
        assert set(after) == mine["a"] | mine["b"], "a file no ledger names"
        this_round = [rows(ledger.db_path)[-3:] for ledger in ledgers.values()]
        for a_job, b_job in zip(*this_round, strict=True):
            a, b = Path(a_job["local_file"]).name, Path(b_job["local_file"]).name
            a_base, b_base = re.sub(r"-\d+\.mp4$", ".mp4", a), re.sub(r"-\d+\.mp4$", ".mp4", b)
            if a_base == b_base:  # the same job id named in the same second: one gets -2
                assert sorted([a, b]) == sorted([a_base, a_base.replace(".mp4", "-2.mp4")])
                met.append((a, b))
        # downloaded once each (the checks above fetched each of this round's videos again)
        assert emulator.stats()["downloads"] == 2 * jobs_so_far
    assert met, f"no names met in {rounds} rounds"


def test_a_ledger_with_names_of_an_earlier_version_resumes_on_them(emulator, settings, tmp_path):
    """Names recorded before issue 21 carry the batch id (`1_wan_..._{batch}.mp4`). A ledger
    left by that version resumes on them: a finished video (the run stopped before recording
    it) is kept and taken as the job's, a whole `.part` is only renamed, one already recorded
    as downloaded stays; nothing is downloaded again and no new-style name appears."""
    images = tmp_path / "pics"
    make_images(images, 3)
    spec = BatchRequest(images_dir=images, prompts=["a slow pan"])
    first = run_batch(spec, settings)
    assert first.ok, first.jobs
    served = emulator.stats()
    assert served["downloads"] == 3
    out, batch = settings.download_dir, first.batch_id
    conn = sqlite3.connect(settings.db_path)
    with conn:
        for job in rows(settings.db_path):
            new = Path(job["local_file"])
            old = new.with_name(f"{new.stem}_{batch}.mp4")  # as the earlier version named it
            if job["id"] == 1:  # finished and renamed into place, not yet recorded
                os.replace(new, old)
                state = ("completed", None)
            elif job["id"] == 2:  # downloaded whole, not yet renamed (a player held it)
                os.replace(new, part_path(old))
                state = ("completed", None)
            else:  # all done
                os.replace(new, old)
                state = ("downloaded", job["downloaded_at"])
            conn.execute(
                "UPDATE jobs SET status = ?, downloaded_at = ?, local_file = ? WHERE id = ?",
                (*state, str(old), job["id"]),
            )
    conn.close()
    before = {
        job["id"]: (Path(job["local_file"]), on_disk(out).get(Path(job["local_file"]).name))
        for job in rows(settings.db_path)
    }
    part_bytes = part_path(before[2][0]).read_bytes()

    again = run_batch(spec, settings)
    assert again.ok and again.batch_id == batch, again.jobs
    assert emulator.stats()["downloads"] == 3, "a video was downloaded again"
    assert emulator.stats()["download_bytes"] == served["download_bytes"]
    jobs = rows(settings.db_path)
    assert {j["status"] for j in jobs} == {"downloaded"}
    assert {j["id"]: Path(j["local_file"]) for j in jobs} == {k: v[0] for k, v in before.items()}
    assert sorted(str(v) for v in again.videos) == sorted(str(v[0]) for v in before.values())
    now = on_disk(out)
    assert set(now) == {v[0].name for v in before.values()}  # no new name, no .part left
    assert now[before[1][0].name] == before[1][1]  # the same file, untouched
    assert now[before[3][0].name] == before[3][1]
    assert before[2][0].read_bytes() == part_bytes  # the .part, renamed
    assert all(re.search(rf"Z_{batch}\.mp4$", name) for name in now)


def test_a_name_is_recorded_before_its_part_file_is_created(tmp_path):
    """A kill -9 between claiming a name (its empty `.part`) and recording it left a `.part`
    no ledger knew: the next run downloaded under a new name and the orphan stayed
    (test_kill_9_mid_batch_then_resume, 1 busy run). Each candidate is recorded first."""
    from i2vkit.download import part_path, unused_video_path, video_filename

    taken = tmp_path / video_filename(7, "wan")  # another ledger's video has the first name
    taken.write_bytes(b"x")
    recorded: list[tuple[Path, bool]] = []

    def record(name: Path) -> None:
        recorded.append((name, part_path(name).exists()))

    dest = unused_video_path(tmp_path, 7, "wan", record)
    assert recorded[-1] == (dest, False)  # recorded while its .part did not exist yet
    assert all(not existed for _, existed in recorded)
    assert part_path(dest).exists() and dest != taken
