"""Stopping cancels what only waits (issue 14): Ctrl-C, or `i2vkit cancel BATCH`, cancels the
batch's requests still IN_QUEUE on fal (never run, never billed) and records them
`cancelled`; running ones finish; the same command later submits the cancelled ones.
The real CLI in a subprocess against a live emulator with 2 account slots."""

from __future__ import annotations

import signal
import sqlite3
import subprocess

from clitools import (
    assert_one_playable_video_per_job,
    bulk_args,
    cli_env,
    ledger,
    run_cli,
    start_cli,
    wait_until,
    write_prompts,
)
from helpers import make_images


def submitted(db) -> int:
    try:
        return ledger(db, "SELECT COUNT(*) FROM jobs WHERE request_id IS NOT NULL")[0][0]
    except sqlite3.OperationalError:  # the ledger is not created yet
        return 0


def bulk_queued_behind_two_slots(tmp_path, emulator, images: int, prompts: int, job_seconds):
    """Start `i2vkit bulk` on images x prompts jobs, all submitted at once on an account of
    2 slots, and return (args, env, proc) once 2 run and the rest wait in fal's queue."""
    emulator.configure(concurrency=2, job_seconds=job_seconds)
    make_images(tmp_path / "pics", images)
    jobs = images * prompts
    args = bulk_args(
        write_prompts(tmp_path / "prompts.txt", prompts),
        tmp_path / "pics",
        "--concurrency",
        str(jobs),
    )
    env = cli_env(tmp_path, emulator.url)
    proc = start_cli(args, env, tmp_path)
    queued_behind_two_slots(emulator, tmp_path / "ledger.db", jobs, proc)
    return args, env, proc


def queued_behind_two_slots(emulator, db, jobs: int, proc: subprocess.Popen):
    """Wait until every job is submitted: 2 running in the account's 2 slots, the rest queued."""

    def ready():
        if proc.poll() is not None:
            raise AssertionError(f"the batch ended first: {proc.communicate()}")
        s = emulator.stats()
        return submitted(db) == jobs and s["in_progress"] == 2 and s["in_queue"] == jobs - 2

    wait_until(ready, 60, f"{jobs} jobs submitted, 2 running and {jobs - 2} queued")


def test_ctrl_c_cancels_queued_requests_then_the_same_command_resumes_them(tmp_path, emulator):
    """24 jobs queued behind 2 account slots, then SIGINT: the 22 waiting requests are
    cancelled on fal (the emulator never runs any of them) and recorded `cancelled`; the 2
    running finish. The same command then submits exactly the 22 again and every pair gets
    its video."""
    args, env, proc = bulk_queued_behind_two_slots(tmp_path, emulator, 4, 6, job_seconds=5)
    db, out = tmp_path / "ledger.db", tmp_path / "videos"
    waiting = {j["request_id"] for j in emulator.jobs() if j["state"] == "IN_QUEUE"}
    assert len(waiting) == 22
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stdout + stderr
    assert "cancelled 22 requests waiting in fal's queue" in stdout, stdout
    rows = ledger(db, "SELECT request_id, status, error FROM jobs")
    cancelled = {r[0] for r in rows if r[1] == "cancelled"}
    assert cancelled == waiting
    assert all("fal does not bill it" in r[2] for r in rows if r[1] == "cancelled")
    # 20 named one per line, the rest counted, with where to read them all
    assert stdout.count("CANCELLED job") == 20, stdout
    assert "CANCELLED ... and 2 more: `i2vkit status" in stdout, stdout
    # the 2 running requests end on the emulator; none of the cancelled ones ever starts
    wait_until(lambda: emulator.stats()["in_progress"] == 0, 60, "the running jobs to end")
    views = emulator.jobs()
    assert sum(1 for j in views if j["started_at"] is not None) == 2
    assert not [j for j in views if j["request_id"] in waiting and j["started_at"] is not None]
    assert emulator.stats()["jobs"]["cancelled"] == 22

    emulator.configure(job_seconds=0.2)
    again = run_cli(args, env, tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert_one_playable_video_per_job(db, out, 24)
    assert emulator.stats()["submits"]["total"] == 24 + 22  # only the cancelled ones again


def test_cancel_command_stops_a_running_batch_from_another_terminal(tmp_path, emulator):
    """`i2vkit cancel BATCH` while `i2vkit bulk` runs: the queued requests are cancelled on
    fal and recorded, the running ones are left to finish and the running CLI downloads
    them and ends (exit 1: not every job has its video); the same bulk command then submits
    the cancelled jobs and finishes. The account starts no more than the first 2 jobs
    (start_limit), so the queued 6 are still waiting when the cancel lands however slowly
    a busy machine starts it."""
    emulator.configure(start_limit=2)
    args, env, proc = bulk_queued_behind_two_slots(tmp_path, emulator, 2, 4, job_seconds=8)
    db, out = tmp_path / "ledger.db", tmp_path / "videos"
    batch = ledger(db, "SELECT id FROM batches")[0][0]
    cancel = run_cli([*args[:3], "cancel", batch], env, tmp_path)
    assert cancel.returncode == 0, cancel.stdout + cancel.stderr
    assert "cancelled 6 request(s) waiting in fal's queue" in cancel.stdout, cancel.stdout
    assert "left 2 running request(s) to finish" in cancel.stdout, cancel.stdout
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1, stdout + stderr
    statuses = sorted(r[0] for r in ledger(db, "SELECT status FROM jobs"))
    assert statuses == ["cancelled"] * 6 + ["downloaded"] * 2
    assert stdout.count("CANCELLED job") == 6, stdout
    # fal bills the 2 that ran, not the 6 cancelled while queued: the summary says both
    money = "this run: US$ 0.80 (2 requests fal may bill; 6 cancelled while queued not billed)"
    assert money in stdout and "batch total: US$ 0.80" in stdout, stdout
    assert sum(1 for j in emulator.jobs() if j["started_at"] is not None) == 2

    emulator.configure(job_seconds=0.2, start_limit=None)
    again = run_cli(args, env, tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert_one_playable_video_per_job(db, out, 8)
    assert emulator.stats()["submits"]["total"] == 8 + 6


def test_a_cancelled_batch_task_cancels_its_queued_requests(tmp_path, emulator, settings):
    """The library path a kernel interrupt takes (`run_blocking` cancels the batch's task):
    the run ends with a summary, its queued requests are cancelled on fal and recorded,
    the running one is left to finish."""
    import asyncio

    from i2vkit.engine import run_batch_async
    from i2vkit.planning import BatchRequest

    emulator.configure(concurrency=1, job_seconds=5)
    make_images(tmp_path / "pics", 1)
    spec = BatchRequest(images_dir=tmp_path / "pics", prompts=["a", "b", "c", "d"], concurrency=4)

    async def interrupted():
        task = asyncio.create_task(run_batch_async(spec, settings))
        deadline = asyncio.get_running_loop().time() + 60
        while not (submitted(settings.db_path) == 4 and emulator.stats()["in_queue"] == 3):
            assert not task.done(), task
            assert asyncio.get_running_loop().time() < deadline, "never queued behind 1 slot"
            await asyncio.sleep(0.01)  # polling a condition
        task.cancel()
        return await task

    result = asyncio.run(interrupted())
    assert result.interrupted
    statuses = sorted(j.status for j in result.jobs)
    assert statuses[:3] == ["cancelled"] * 3 and statuses[3] in ("queued", "running")
    assert "cancelled 3 requests waiting in fal's queue" in result.summary()
    assert emulator.stats()["jobs"]["cancelled"] == 3


def test_a_second_ctrl_c_stops_waiting_and_names_what_may_still_be_queued(tmp_path, emulator):
    """Two Ctrl-C: the first asks fal to cancel the 6 queued requests and says what it waits
    for; fal answers nothing (503s: the cancels are retried), so a second Ctrl-C stops the
    waiting. The 6 stay `queued` in the ledger, noted and named with `i2vkit cancel BATCH`,
    which then cancels them: fal never runs any of them, and none is `failed`."""
    emulator.configure(concurrency=2, start_limit=2, job_seconds=30)
    make_images(tmp_path / "pics", 2)
    args = bulk_args(write_prompts(tmp_path / "prompts.txt", 4), tmp_path / "pics")
    args += ["--concurrency", "8"]
    env = cli_env(tmp_path, emulator.url)
    err = tmp_path / "stderr.txt"
    with err.open("w") as stderr:
        proc = start_cli(args, env, tmp_path, stderr=stderr)
        queued_behind_two_slots(emulator, tmp_path / "ledger.db", 8, proc)
        running = "SELECT COUNT(*) FROM jobs WHERE status = 'running'"
        wait_until(lambda: ledger(tmp_path / "ledger.db", running)[0][0] == 2, 60, "2 running")
        emulator.configure(fail_next=100000)  # fal answers nothing but 503 from now on
        proc.send_signal(signal.SIGINT)
        wait_until(lambda: "stopping: asking fal to cancel" in err.read_text(), 60, "the wait")
        assert "waiting at most 60s" in err.read_text()
        proc.send_signal(signal.SIGINT)
        stdout, _ = proc.communicate(timeout=120)
    emulator.configure(fail_next=0)
    assert proc.returncode == 130, stdout + err.read_text()
    batch = ledger(tmp_path / "ledger.db", "SELECT id FROM batches")[0][0]
    assert f"6 requests may still be queued at fal: `i2vkit cancel {batch}`" in stdout, stdout
    rows = ledger(tmp_path / "ledger.db", "SELECT status, error FROM jobs")
    queued = [e for s, e in rows if s == "queued"]
    assert len(queued) == 6 and all(f"i2vkit cancel {batch}" in e for e in queued), rows
    cancel = run_cli([*args[:3], "cancel", batch], env, tmp_path)
    assert cancel.returncode == 0, cancel.stdout + cancel.stderr
    statuses = sorted(
        s for s, _ in ledger(tmp_path / "ledger.db", "SELECT status, error FROM jobs")
    )
    assert statuses == ["cancelled"] * 6 + ["running"] * 2
    assert sum(1 for j in emulator.jobs() if j["started_at"] is not None) == 2


def test_a_request_fal_cancelled_after_a_kill_is_cancelled_never_failed(tmp_path, emulator):
    """kill -9 with 6 requests queued; fal cancels them meanwhile (a second Ctrl-C's cancels
    that landed after the CLI stopped waiting look the same). The same command then follows
    them: each is `cancelled` (fal answers its result with 400 "Request was cancelled"),
    never `failed`, and no retry is suggested; the next run submits them."""
    import httpx

    emulator.configure(start_limit=2)
    args, env, proc = bulk_queued_behind_two_slots(tmp_path, emulator, 2, 4, job_seconds=0.3)
    proc.kill()
    proc.communicate(timeout=60)
    db = tmp_path / "ledger.db"
    waiting = ledger(db, "SELECT cancel_url FROM jobs WHERE status = 'queued'")
    waiting = [u for (u,) in waiting if u]
    queued_at_fal = [j for j in emulator.jobs() if j["state"] == "IN_QUEUE"]
    assert len(queued_at_fal) == 6 and len(waiting) >= 6
    for j in queued_at_fal:
        url = next(u for u in waiting if j["request_id"] in u)
        answer = httpx.put(url, headers={"Authorization": f"Key {env['FAL_KEY']}"})
        assert answer.json()["status"] == "OK", answer.text
    emulator.configure(start_limit=None)
    again = run_cli(args, env, tmp_path)
    statuses = sorted(r[0] for r in ledger(db, "SELECT status FROM jobs"))
    assert statuses == ["cancelled"] * 6 + ["downloaded"] * 2, again.stdout + again.stderr
    assert "failed" not in again.stdout.split("videos in")[0]
    assert "i2vkit retry" not in again.stdout, again.stdout
    assert "6 cancelled while queued not billed" in again.stdout, again.stdout
    last = run_cli(args, env, tmp_path)
    assert last.returncode == 0, last.stdout + last.stderr
    assert_one_playable_video_per_job(db, tmp_path / "videos", 8)
    assert sum(1 for j in emulator.jobs() if j["started_at"] is not None) == 8
