"""fal's request options (issue 26) as fields of the request table: the queue priority, the
start deadline and model fallbacks reach fal as headers (the emulator records them), and a
queued job's position shows in the plain progress lines."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from clitools import cli_env, ledger, run_cli, wait_until
from helpers import make_images

from i2vkit.planning.request import BY_NAME


def i2vkit(*args: str) -> list[str]:
    return [sys.executable, "-m", "i2vkit", *args]


def bulk(tmp_path: Path, *extra: str, images: int = 1) -> list[str]:
    make_images(tmp_path / "pics", images)
    (tmp_path / "p.txt").write_text("a slow pan\n", encoding="utf-8")
    return i2vkit("bulk", str(tmp_path / "p.txt"), "--images-dir", str(tmp_path / "pics"),
                  "--yes", *extra)  # fmt: skip


def headers_of(emulator) -> list[dict[str, str]]:
    return [{k.lower(): v for k, v in j["headers"].items()} for j in emulator.jobs()]


def test_priority_start_timeout_and_fallbacks_reach_fal_as_set(tmp_path, emulator):
    env = cli_env(tmp_path, emulator.url)
    args = bulk(tmp_path, "--model", "wan,kling", "--priority", "low", "--start-timeout", "600",
                "--no-progress")  # fmt: skip
    done = run_cli(args, env, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    sent = headers_of(emulator)
    assert len(sent) == 2
    for h in sent:
        assert h["x-fal-queue-priority"] == "low"
        assert float(h["x-fal-request-timeout"]) == 600.0
        assert h["x-fal-disable-fallbacks"] == "true"  # a batch comparing models

    # one model: fallbacks stay fal's default unless the setting says off for every batch
    one = run_cli(bulk(tmp_path, "--model", "wan", "--batch", "one", "--no-progress"), env,
                  tmp_path)  # fmt: skip
    assert one.returncode == 0, one.stdout + one.stderr
    last = headers_of(emulator)[-1]
    assert "x-fal-disable-fallbacks" not in last and "x-fal-queue-priority" not in last
    env_off = {**env, BY_NAME["fallbacks"].env: "off"}
    off = run_cli(bulk(tmp_path, "--model", "wan", "--batch", "two", "--no-progress"), env_off,
                  tmp_path)  # fmt: skip
    assert off.returncode == 0, off.stdout + off.stderr
    assert headers_of(emulator)[-1]["x-fal-disable-fallbacks"] == "true"


def test_a_job_that_cannot_start_in_time_fails_with_fal_s_user_deadline(tmp_path, emulator):
    emulator.configure(start_limit=0)  # nothing starts: the deadline passes in the queue
    env = cli_env(tmp_path, emulator.url)
    done = run_cli(bulk(tmp_path, "--model", "wan", "--start-timeout", "1.5", "--no-progress"),
                   env, tmp_path)  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    [(status, error, kind)] = ledger(
        tmp_path / "ledger.db", "SELECT status, error, error_type FROM jobs"
    )
    assert status == "failed" and kind == "request_timeout", error
    assert "before it started" in error
    assert emulator.stats()["submits"]["total"] == 1  # a user deadline is not retried


def test_bad_values_name_their_flag(tmp_path, emulator):
    env = cli_env(tmp_path, emulator.url)
    bad = run_cli(bulk(tmp_path, "--priority", "urgent", "--dry-run"), env, tmp_path)
    assert bad.returncode == 2 and "--priority" in bad.stdout + bad.stderr
    bad = run_cli(bulk(tmp_path, "--start-timeout", "0.5", "--dry-run"), env, tmp_path)
    assert bad.returncode == 2 and "--start-timeout" in bad.stdout + bad.stderr


def test_a_queued_job_s_position_shows_in_the_plain_progress_lines(tmp_path, emulator):
    emulator.configure(start_limit=0)  # the jobs wait in fal's queue
    env = cli_env(tmp_path, emulator.url)
    proc = subprocess.Popen(
        bulk(tmp_path, "--model", "wan", images=3), env=env, cwd=tmp_path, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    lines: list[str] = []
    printed: list[str] = []  # both pipes read by threads: communicate() would close stderr
    readers = [
        threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True),
        threading.Thread(target=lambda: printed.extend(proc.stdout), daemon=True),
    ]
    for reader in readers:
        reader.start()
    try:
        found = wait_until(
            lambda: [ln for ln in list(lines) if "waiting in fal's queue" in ln], 120,
            "a progress line with queue positions",
        )  # fmt: skip
        assert "waiting in fal's queue (next at position 0)" in found[0], found
    finally:
        emulator.configure(start_limit=None)
    proc.wait(timeout=120)
    for reader in readers:
        reader.join(timeout=10)
    assert proc.returncode == 0, "".join(printed + lines)


def test_the_emulator_starts_normal_priority_requests_before_low_ones(emulator):
    import httpx
    from helpers import TEST_KEY, upload_blob

    emulator.configure(start_limit=0)
    url = upload_blob(emulator, (Path(__file__).parent / "helpers.py").read_bytes())
    auth = {"Authorization": f"Key {TEST_KEY}"}

    def submit(priority: str) -> dict:
        headers = {**auth, "X-Fal-Queue-Priority": priority}
        body = {"prompt": "p", "image_url": url}
        return httpx.post(f"{emulator.url}/fal-ai/wan-i2v", json=body, headers=headers).json()

    low = submit("low")
    normal = submit("normal")
    assert low["queue_position"] == 0 and normal["queue_position"] == 0  # went before it
    status = httpx.get(low["status_url"], headers=auth).json()
    assert status["status"] == "IN_QUEUE" and status["queue_position"] == 1


def test_the_terminal_bars_show_queue_positions_too():
    import io

    from i2vkit.engine import Progress
    from i2vkit.reporters import TerminalBars

    screen = io.StringIO()
    bars = TerminalBars(screen)
    bars(Progress(total=3, submitted=3, queue_positions={1: 4, 2: 5, 3: 6}))
    bars.close()
    assert "3 waiting in fal's queue (next at position 4)" in screen.getvalue()
