"""The batch engine end to end: the `i2vkit bulk` CLI in a subprocess against a live emulator."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import clitools
from clitools import videos, write_prompts
from helpers import TEST_KEY, make_images

from i2vkit.emulator.clips import probe

NAME = re.compile(r"^(\d+)_wan-2\.1_\d{8}T\d{6}Z(-\d+)?\.mp4$")  # clitools runs wan-2.1


def cli_env(tmp_path: Path, emulator, key: str = TEST_KEY) -> dict[str, str]:
    return clitools.cli_env(tmp_path, emulator.url, key)


def bulk_args(tmp_path: Path, prompts: Path, *extra: str) -> list[str]:
    return clitools.bulk_args(prompts, tmp_path / "pics", *extra)


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return clitools.run_cli(args, env, cwd=Path(env["I2VKIT_DB"]).parent)


def ledger(tmp_path: Path, sql: str) -> list[tuple]:
    return clitools.ledger(tmp_path / "ledger.db", sql)


def test_five_by_six_then_rerun_does_nothing(tmp_path, emulator):
    make_images(tmp_path / "pics", 5)
    prompts = write_prompts(tmp_path / "prompts.txt", 6)
    env = cli_env(tmp_path, emulator)
    first = run_cli(bulk_args(tmp_path, prompts), env)
    assert first.returncode == 0, first.stdout + first.stderr
    files = videos(tmp_path / "videos")
    assert len(files) == 30
    assert all(NAME.match(f.name) for f in files)
    assert sorted(int(NAME.match(f.name).group(1)) for f in files) == sorted(
        r[0] for r in ledger(tmp_path, "SELECT id FROM jobs")
    )
    stats = emulator.stats()
    assert stats["uploads"] == 5
    assert stats["submits"]["total"] == 30
    assert stats["downloads"] == 30
    info = probe(files[0])
    assert info["codec"] == "h264" and info["duration"] >= 1.0
    assert "30 downloaded" in first.stdout
    # every job's row says where its file is and how many status requests it took
    rows = ledger(tmp_path, "SELECT status, local_file, status_requests, backend FROM jobs")
    assert all(r[0] == "downloaded" and Path(r[1]).exists() and r[2] >= 1 for r in rows)
    assert {r[3] for r in rows} == {emulator.url}

    again = run_cli(bulk_args(tmp_path, prompts), env)
    assert again.returncode == 0, again.stdout + again.stderr
    after = emulator.stats()
    assert after["uploads"] == 5
    assert after["submits"]["total"] == 30
    assert after["downloads"] == 30
    assert len(videos(tmp_path / "videos")) == 30


def test_one_to_one(tmp_path, emulator):
    make_images(tmp_path / "pics", 5)
    env = cli_env(tmp_path, emulator)
    ok = run_cli(bulk_args(tmp_path, write_prompts(tmp_path / "p5.txt", 5), "--one-to-one"), env)
    assert ok.returncode == 0, ok.stderr
    assert len(videos(tmp_path / "videos")) == 5
    assert emulator.stats()["submits"]["total"] == 5
    prompts6 = write_prompts(tmp_path / "p6.txt", 6)
    bad = run_cli(bulk_args(tmp_path, prompts6, "--one-to-one"), env)
    assert bad.returncode == 2
    assert "5 images" in bad.stderr and "6 prompts" in bad.stderr
    assert "drop --one-to-one" in bad.stderr  # the fix in the CLI's words, not the API's
    assert emulator.stats()["submits"]["total"] == 5


def test_dry_run_submits_nothing(tmp_path, emulator):
    make_images(tmp_path / "pics", 2)
    env = cli_env(tmp_path, emulator)
    out = run_cli(bulk_args(tmp_path, write_prompts(tmp_path / "p.txt", 3), "--dry-run"), env)
    assert out.returncode == 0
    assert "6 jobs" in out.stdout and "estimated cost" in out.stdout
    assert f"ledger: {tmp_path / 'ledger.db'}" in out.stdout
    stats = emulator.stats()
    assert stats["uploads"] == 0 and stats["submits"]["total"] == 0


def test_failures_rate_limits_and_drops(tmp_path, emulator):
    emulator.configure(
        fail_rate=0.1,
        rate_limit=30,
        rate_burst=5,
        drop_downloads=0.3,
        seed=7,
        job_seconds=(0.05, 0.3),
    )
    make_images(tmp_path / "pics", 5)
    env = cli_env(tmp_path, emulator)
    out = run_cli(bulk_args(tmp_path, write_prompts(tmp_path / "p.txt", 6)), env)
    assert out.returncode == 1, out.stdout + out.stderr
    rows = ledger(tmp_path, "SELECT id, status, local_file, error, request_id FROM jobs")
    failed = [r for r in rows if r[1] == "failed"]
    done = [r for r in rows if r[1] == "downloaded"]
    assert failed and len(failed) + len(done) == 30
    stats = emulator.stats()
    assert stats["jobs"]["failed"] == len(failed)
    for _, _, local, _, _ in done:
        assert probe(local)["duration"] >= 1.0
    for job_id, _, _, error, request_id in failed:
        truth = emulator.job(request_id)
        assert truth["error"] and truth["error"] in error
        assert truth["error_type"] in error
        assert f"FAILED job {job_id} " in out.stdout
    assert stats["responses"].get("429", 0) > 0 or stats["rate_limited"] > 0
    assert stats["downloads_dropped"] > 0
    assert not list((tmp_path / "videos").glob(".*.part"))


def test_kill_9_mid_batch_then_resume(tmp_path, emulator):
    # fal's queue stalls after 5 started jobs, so the batch cannot finish before the kill
    # lands, however slow this test is to notice; it is released for the re-run
    emulator.configure(job_seconds=(0.2, 0.5), start_limit=5)
    make_images(tmp_path / "pics", 5)
    prompts = write_prompts(tmp_path / "p.txt", 6)
    env = cli_env(tmp_path, emulator)
    proc = subprocess.Popen(
        bulk_args(tmp_path, prompts, "--concurrency", "30"),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        # kill once everything is submitted and some videos are on disk: outside the submit window
        while True:
            s = emulator.stats()
            # 30 jobs created on fal (every submit POST complete), some videos on disk
            if s["downloads"] >= 3 and len(emulator.jobs()) == 30:
                break
            assert proc.poll() is None, "the batch ended before it could be killed"
            assert time.monotonic() < deadline, "batch never reached the kill point"
            time.sleep(0.02)  # polling a condition, not synchronising on time
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert len(videos(tmp_path / "videos")) <= 5
    emulator.configure(start_limit=None)
    again = run_cli(bulk_args(tmp_path, prompts), env)
    assert again.returncode == 0, again.stdout + again.stderr
    files = videos(tmp_path / "videos")
    assert len(files) == 30
    ids = [int(NAME.match(f.name).group(1)) for f in files]
    assert len(set(ids)) == 30  # exactly one video per pair
    for f in files:
        assert probe(f)["duration"] >= 1.0
    assert not [p for p in (tmp_path / "videos").iterdir() if p.name.endswith(".part")]
    assert emulator.stats()["submits"]["total"] == 30


def test_wrong_key_stops_after_one_request(tmp_path):
    from i2vkit.emulator import Emulator

    with Emulator(port=0, key=TEST_KEY, job_seconds=0) as emu:
        make_images(tmp_path / "pics", 3)
        wrong = "wrongid:WRONG-SECRET-abcdef123"
        env = cli_env(tmp_path, emu, key=wrong)
        out = run_cli(bulk_args(tmp_path, write_prompts(tmp_path / "p.txt", 2)), env)
        stats = emu.stats()
    assert out.returncode == 3
    assert "FAL_KEY was rejected by fal" in out.stderr + out.stdout
    assert stats["responses"].get("401") == 1
    assert stats["requests"] == 1
    assert stats["submits"]["total"] == 0
    for secret in (wrong, "WRONG-SECRET-abcdef123"):
        assert secret not in out.stdout and secret not in out.stderr


def test_locked_account_stops_with_top_up_advice(tmp_path, emulator):
    emulator.configure(locked=True)
    make_images(tmp_path / "pics", 2)
    out = run_cli(
        bulk_args(tmp_path, write_prompts(tmp_path / "p.txt", 2)), cli_env(tmp_path, emulator)
    )
    assert out.returncode == 3
    assert "top up" in (out.stderr + out.stdout).lower()
    assert emulator.stats()["submits"]["total"] == 0


def test_status_and_retry(tmp_path, emulator):
    emulator.configure(fail_rate=0.5, seed=3)
    make_images(tmp_path / "pics", 2)
    env = cli_env(tmp_path, emulator)
    out = run_cli(bulk_args(tmp_path, write_prompts(tmp_path / "p.txt", 3)), env)
    assert out.returncode == 1
    batch = ledger(tmp_path, "SELECT id FROM batches")[0][0]
    listing = run_cli([sys.executable, "-m", "i2vkit", "status"], env)
    assert batch in listing.stdout
    assert listing.stdout.splitlines()[0] == f"ledger: {tmp_path / 'ledger.db'}"
    emulator.configure(fail_rate=0.0)
    retried = run_cli([sys.executable, "-m", "i2vkit", "retry", batch[:6]], env)
    assert retried.returncode == 0, retried.stdout + retried.stderr
    rows = ledger(tmp_path, "SELECT status FROM jobs")
    assert {r[0] for r in rows} == {"downloaded"}
    assert len(videos(tmp_path / "videos")) == 6


def test_status_lines_show_each_jobs_model_take_and_keeper(tmp_path, emulator):
    """`i2vkit status BATCH` of a 2-model x 2-take batch: every job's line says its model,
    its take and whether it is a keeper (after `i2vkit keep`), read from the ledger."""
    make_images(tmp_path / "pics", 2)
    env = cli_env(tmp_path, emulator)
    prompts = write_prompts(tmp_path / "p.txt", 1)
    args = clitools.bulk_args(prompts, tmp_path / "pics", "--takes", "2", model="wan-2.1,ltx")
    out = run_cli(args, env)
    assert out.returncode == 0, out.stdout + out.stderr
    batch = ledger(tmp_path, "SELECT id FROM batches")[0][0]
    rows = ledger(tmp_path, "SELECT id, model, take FROM jobs ORDER BY id")
    assert len(rows) == 8  # 2 images x 1 prompt x 2 models x 2 takes
    assert {(r[1], r[2]) for r in rows} == {("wan-2.1", 1), ("wan-2.1", 2), ("ltx", 1), ("ltx", 2)}
    kept = [r[0] for r in rows if r[2] == 2][:2]  # a second take of each of two jobs
    keep = run_cli([sys.executable, "-m", "i2vkit", "keep", batch, *map(str, kept)], env)
    assert keep.returncode == 0, keep.stdout + keep.stderr

    status = run_cli([sys.executable, "-m", "i2vkit", "status", batch[:8]], env)
    assert status.returncode == 0, status.stdout + status.stderr
    lines = status.stdout.splitlines()
    assert lines[0] == f"ledger: {tmp_path / 'ledger.db'}"
    assert lines[1].startswith("batch ")  # which batch the lines are of
    header = lines[2]
    columns = ["model", "take", "keeper", "file"]
    starts = [header.index(c) for c in columns]
    assert starts == sorted(starts), header
    by_id = {int(line.split()[0]): line for line in lines[3:]}
    assert sorted(by_id) == [r[0] for r in rows]
    for job_id, model, take in rows:
        line = by_id[job_id]
        model_cell, take_cell, keeper_cell = (
            line[a:b].strip() for a, b in zip(starts, starts[1:], strict=False)
        )
        assert (model_cell, take_cell) == (model, str(take)), line
        assert keeper_cell == ("yes" if job_id in kept else ""), line
        assert line[starts[-1] :].endswith(".mp4"), line


def test_ctrl_c_keeps_jobs_and_prints_the_resume_command(tmp_path, emulator):
    emulator.configure(job_seconds=(1.0, 2.0))
    make_images(tmp_path / "pics", 3)
    prompts = write_prompts(tmp_path / "p.txt", 3)
    env = cli_env(tmp_path, emulator)
    proc = clitools.start_cli(bulk_args(tmp_path, prompts), env, None)

    def three_submitted() -> bool:
        assert proc.poll() is None, "the batch finished before it could be interrupted"
        return emulator.stats()["submits"]["total"] >= 3

    clitools.wait_until(three_submitted, 60, "3 submits")  # fails at its deadline
    proc.send_signal(signal.SIGINT)
    stdout, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, stdout
    assert "Resume with" in stdout and "i2vkit bulk" in stdout
    kept = ledger(tmp_path, "SELECT COUNT(*) FROM jobs WHERE request_id IS NOT NULL")[0][0]
    assert kept >= 3
    submitted = emulator.stats()["submits"]["total"]
    again = run_cli(bulk_args(tmp_path, prompts), env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(videos(tmp_path / "videos")) == 9
    assert emulator.stats()["submits"]["total"] == 9 and submitted <= 9


def test_status_into_a_closed_pipe_ends_quietly(tmp_path, emulator):
    """`i2vkit status | head -1`: the reader is gone before the output is flushed."""
    make_images(tmp_path / "pics", 2)
    env = cli_env(tmp_path, emulator)
    assert run_cli(bulk_args(tmp_path, write_prompts(tmp_path / "p.txt", 3)), env).returncode == 0
    env.pop("PYTHONUNBUFFERED")  # block-buffered, as in a shell pipeline
    read_end, write_end = os.pipe()
    os.close(read_end)  # like `head` after its first line: every write now fails with EPIPE
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "i2vkit", "status"],
            env=env,
            cwd=tmp_path,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert proc.stderr == ""  # no BrokenPipeError traceback, no "Exception ignored"
    assert proc.returncode == 141  # 128 + SIGPIPE, as a C tool in the pipeline would


def test_progress_lines_when_stderr_is_not_a_terminal(tmp_path, emulator):
    """In a log (stderr a pipe) the CLI prints plain progress lines, not tqdm bars."""
    emulator.configure(job_seconds=(0.2, 0.6))
    make_images(tmp_path / "pics", 2)
    prompts = write_prompts(tmp_path / "p.txt", 3)
    args = [a for a in bulk_args(tmp_path, prompts) if a != "--no-progress"]
    out = subprocess.run(
        args,
        env=cli_env(tmp_path, emulator),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # one pipe, so the order of progress and summary shows
        text=True,
        timeout=240,
    )
    assert out.returncode == 0, out.stdout
    lines = out.stdout.splitlines()
    progress = [i for i, line in enumerate(lines) if line.startswith("uploaded ")]
    summary = next(i for i, line in enumerate(lines) if line.startswith("batch "))
    assert progress and progress[0] < summary, out.stdout
    assert lines[progress[-1]].startswith(
        "uploaded 2/2  pending 0  queued 0  running 0  completed 0  downloaded 6/6  failed 0  "
        "cancelled 0"
    )
    assert "\r" not in out.stdout and "it/s" not in out.stdout  # no tqdm redraws


def test_help_documents_the_ledger_location_and_every_flag(tmp_path):
    env = clitools.cli_env(tmp_path, "http://127.0.0.1:9")
    bulk = run_cli([sys.executable, "-m", "i2vkit", "bulk", "--help"], env)
    retry = run_cli([sys.executable, "-m", "i2vkit", "retry", "--help"], env)
    assert bulk.returncode == 0 and retry.returncode == 0
    for flag in ("--no-progress", "--yes", "--dry-run", "-o KEY=VALUE", "XDG_DATA_HOME"):
        assert flag in bulk.stdout, flag
    for flag in ("--no-progress", "--yes"):
        assert flag in retry.stdout, flag


def test_retry_shows_its_plan_and_asks_before_spending(tmp_path, emulator):
    """A retry is planned from the ledger and confirmed like any batch: 16 failed wan jobs are
    US$ 6.40 on a billed backend, so without --yes and with no terminal it submits nothing;
    I2VKIT_YES=1 says yes as --yes does (every field of the table has its variable)."""
    emulator.configure(fail_rate=1.0)
    make_images(tmp_path / "pics", 4)
    env = cli_env(tmp_path, emulator)
    first = run_cli(bulk_args(tmp_path, write_prompts(tmp_path / "p.txt", 4)), env)
    assert first.returncode == 1, first.stdout + first.stderr
    batch = ledger(tmp_path, "SELECT id FROM batches")[0][0]
    emulator.configure(fail_rate=0.0)
    submits = emulator.stats()["submits"]["total"]
    retry = [sys.executable, "-m", "i2vkit", "retry", batch, "--no-progress"]
    refused = run_cli(retry, env)  # stdin is not a terminal
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "retry of batch" in refused.stdout and "16 failed or cancelled jobs" in refused.stdout
    assert "US$ 6.40" in refused.stdout and "re-run with --yes" in refused.stdout
    assert emulator.stats()["submits"]["total"] == submits
    confirmed = run_cli(retry, {**env, "I2VKIT_YES": "1"})  # --yes as its variable
    assert confirmed.returncode == 0, confirmed.stdout + confirmed.stderr
    assert emulator.stats()["submits"]["total"] == submits + 16
    assert len(videos(tmp_path / "videos")) == 16
