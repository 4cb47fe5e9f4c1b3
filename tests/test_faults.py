"""Fault injection: the real `i2vkit bulk` CLI in a subprocess against the emulator, with the
faults a long batch meets (kill -9, 429 storms, 5xx bursts, dropped and expired downloads,
a full disk, a locked ledger, a second process, nonsense from fal).

Run alone with `python -m pytest -m faults -s` (``-s`` shows the measurements).
`I2VKIT_FAULT_TRIALS` sets the number of kill -9 trials (default 6 for CI; use 20 or more
for the full run), `I2VKIT_FAULT_SEED` their seed.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
from pathlib import Path

import pytest
from clitools import (
    assert_one_playable_video_per_job,
    bulk_args,
    cli_env,
    ledger,
    leftovers,
    run_cli,
    videos,
    wait_until,
    write_prompts,
)
from helpers import TEST_KEY
from PIL import Image

from i2vkit.emulator import Emulator

pytestmark = pytest.mark.faults

TRIALS = int(os.environ.get("I2VKIT_FAULT_TRIALS", "6"))
SEED = int(os.environ.get("I2VKIT_FAULT_SEED", "20250607"))


def noisy_images(folder: Path, count: int, side: int) -> list[Path]:
    """Distinct images of random pixels: big enough that uploading them takes a moment."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        rng = random.Random(i)
        img = Image.frombytes("RGB", (side, side), rng.randbytes(side * side * 3))
        path = folder / f"photo {i + 1}.png"
        img.save(path, compress_level=0)
        paths.append(path)
    return paths


@pytest.fixture
def emu():
    with Emulator(port=0, key=TEST_KEY, job_seconds=0) as emulator:
        yield emulator


# ----------------------------------------------------------------------------- kill -9


KILL_PHASES = ("upload", "submit", "poll", "download")


def landed_phase(stats: dict, images: int, statuses: list[str], partials: int) -> str:
    """Where the batch was when the kill landed, from the emulator's upload count and the
    ledger: jobs pending or submitting -> submit; a video URL recorded but the file not yet
    on disk, or a `.part` file -> download; jobs queued or running -> poll."""
    if stats["uploads"] < images or not statuses:
        return "upload"
    if {"pending", "submitting"} & set(statuses):
        return "submit"
    if "completed" in statuses or partials:
        return "download"
    return "poll"


def test_kill_9_at_random_moments_then_resume(tmp_path, emu):
    """kill -9 of the CLI at seeded random moments of a 50-job batch, then the same command
    again: every pair ends with exactly one complete, playable video, no .part file is left,
    and paid submits exceed 50 only by jobs that were inside their one-request submit window
    (status 'submitting', no request_id) when the kill landed."""
    n_images, n_prompts = 10, 5
    jobs = n_images * n_prompts
    pics = tmp_path / "pics"
    noisy_images(pics, n_images, 700)  # ~1.5 MB each: the upload phase lasts long enough
    prompts = write_prompts(tmp_path / "prompts.txt", n_prompts)
    emu.configure(job_seconds=(0.2, 0.6), video_size=300_000, seed=SEED)
    rng = random.Random(SEED)
    report = []
    for trial in range(TRIALS):
        phase = KILL_PHASES[trial % len(KILL_PHASES)]
        where = tmp_path / f"trial{trial:02d}"
        where.mkdir()
        db, out = where / "ledger.db", where / "videos"
        env = cli_env(where, emu.url)
        emu.reset_stats()
        if phase == "upload":
            target = rng.randrange(0, n_images - 1)

            def reached(s, target=target):
                return s["uploads"] > target

        elif phase == "submit":
            target = rng.randrange(1, jobs)

            def reached(s, target=target):
                return s["submits"]["total"] >= target

        elif phase == "poll":
            target = rng.randrange(0, jobs // 2)

            def reached(s, target=target):
                return s["submits"]["total"] >= jobs and s["jobs"]["COMPLETED"] >= target

        else:
            target = rng.randrange(1, jobs)

            def reached(s, target=target):
                return s["downloads"] >= target

        args = bulk_args(prompts, pics, "--concurrency", str(jobs))
        proc = subprocess.Popen(
            args, env=env, cwd=where, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            wait_until(
                lambda reached=reached: reached(emu.stats()) or proc.poll() is not None,
                120,
                f"trial {trial}: the {phase} phase",
                step=0.002,
            )
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.wait(timeout=30)
        at_kill = emu.stats()
        killed = proc.returncode == -signal.SIGKILL
        rows = ledger(db, "SELECT status, request_id FROM jobs") if db.exists() else []
        window = sum(1 for status, request_id in rows if status == "submitting" and not request_id)
        partials = len(leftovers(out))
        statuses = [r[0] for r in rows]
        landed = landed_phase(at_kill, n_images, statuses, partials) if killed else "finished"
        again = run_cli(bulk_args(prompts, pics), env, where)
        assert again.returncode == 0, again.stdout + again.stderr
        assert_one_playable_video_per_job(db, out, jobs)
        after = emu.stats()
        extra = after["submits"]["total"] - jobs
        report.append((trial, phase, landed, window, extra, partials))
        assert window <= 1, f"trial {trial}: {window} jobs inside the submit window at once"
        assert 0 <= extra <= window, (
            f"trial {trial} (kill in {landed}): {extra} duplicate submits but only {window} "
            "jobs were inside the submit window at the kill"
        )
        assert after["uploads"] <= 2 * n_images
    kills_in_window = sum(1 for r in report if r[3] > 0)
    duplicates = sum(r[4] for r in report)
    print(f"\nkill -9 trials: {len(report)} (seed {SEED})")
    for trial, phase, landed, window, extra, partials in report:
        print(
            f"  trial {trial:2d}: aimed at {phase:<8} landed in {landed:<8} "
            f"jobs in submit window {window:2d}, duplicate submits {extra}, "
            f".part files at kill {partials}"
        )
    print(
        f"kills inside the submit window: {kills_in_window}; jobs inside it: "
        f"{sum(r[3] for r in report)}; duplicate (paid twice) submits: {duplicates}"
    )
    landed_in = {r[2] for r in report}
    if TRIALS >= len(KILL_PHASES):
        assert set(KILL_PHASES) <= landed_in, f"kills landed only in {sorted(landed_in)}"
