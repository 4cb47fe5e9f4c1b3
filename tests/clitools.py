"""Shared tools of the fault, bad-input and security suites: run the real `i2vkit` CLI in a
subprocess against an in-process emulator and inspect what it left behind."""

from __future__ import annotations

import io
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import av
from helpers import TEST_KEY

from i2vkit.emulator.clips import probe

VIDEO_NAME = re.compile(r"^(\d+)_([^_]+)_\d{8}T\d{6}Z(-\d+)?\.mp4$")


def cli_env(tmp_path: Path, url: str, key: str | None = TEST_KEY, **extra: str) -> dict[str, str]:
    """A clean environment for the CLI: no inherited FAL_/I2VKIT_ variables, no .env lookup
    outside tmp_path (the CLI runs with cwd=tmp_path)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAL_", "I2VKIT_"))}
    env.pop("AUTO_DOWNLOAD_DIR", None)
    env.pop("UPLOAD_CACHE_ENABLED", None)
    env.update(
        I2VKIT_FAL_URL=url,
        I2VKIT_DB=str(tmp_path / "ledger.db"),
        AUTO_DOWNLOAD_DIR=str(tmp_path / "videos"),
        PYTHONUNBUFFERED="1",
        PYTHONDONTWRITEBYTECODE="1",
    )
    if key is not None:
        env["FAL_KEY"] = key
    env.update(extra)
    return env


# wan-2.1: the per-video price (US$ 0.40) the budget tests count in; `wan` follows fal (issue 24)
def bulk_args(prompts: Path, images: Path, *extra: str, model: str = "wan-2.1") -> list[str]:
    return [
        sys.executable,
        "-m",
        "i2vkit",
        "bulk",
        str(prompts),
        "--images-dir",
        str(images),
        "--model",
        model,
        "--yes",
        "--no-progress",
        *extra,
    ]


def run_cli(
    args: list[str], env: dict[str, str], cwd: Path, timeout: float = 240, **kwargs
) -> subprocess.CompletedProcess:
    return subprocess.run(
        args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, **kwargs
    )


def start_cli(args: list[str], env: dict[str, str], cwd: Path | None, **kwargs) -> subprocess.Popen:
    """The CLI in the background, its output piped (text), SIGINT at its default in the
    child: a test run from a shell's background job ignores SIGINT, and so would a child
    that inherits that, however often a test presses Ctrl-C."""
    options = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True, **kwargs}
    if os.name == "posix":
        options.setdefault("preexec_fn", lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    return subprocess.Popen(args, env=env, cwd=cwd, **options)


def write_prompts(path: Path, n: int) -> Path:
    path.write_text("# prompts\n" + "\n".join(f"prompt {i}" for i in range(1, n + 1)) + "\n")
    return path


def videos(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix == ".mp4") if folder.exists() else []


def leftovers(folder: Path) -> list[Path]:
    """Temporary or hidden files a download may have left (`.NAME.part`)."""
    if not folder.exists():
        return []
    return sorted(p for p in folder.iterdir() if p.name.startswith(".") or ".part" in p.name)


def ledger(db: Path, sql: str, params: tuple = ()) -> list[tuple]:
    conn = sqlite3.connect(db, timeout=30)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def wait_until(condition: Callable[[], object], timeout: float, what: str, step: float = 0.005):
    """Poll `condition` until it is truthy (returned) or `timeout` seconds pass (AssertionError).
    Polling a condition with a deadline, never sleeping as synchronisation."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(step)


def packets(video: Path | bytes) -> list[bytes]:
    """The video's compressed frames: the same clip, whatever its container's tags say
    (a downloaded video is remuxed to carry its recipe, so its bytes differ from fal's)."""
    source = io.BytesIO(video) if isinstance(video, bytes) else str(video)
    with av.open(source) as container:
        return [bytes(p) for p in container.demux(video=0) if p.size]


def playable(path: Path) -> bool:
    """An H.264 clip of at least a second whose every frame decodes."""
    info = probe(path)
    if info["codec"] != "h264" or not info["duration"] or info["duration"] < 1.0:
        return False
    with av.open(str(path)) as container:
        decoded = sum(1 for _ in container.decode(video=0))
    return decoded >= 2 and (not info["frames"] or decoded == info["frames"])


def assert_one_playable_video_per_job(db: Path, out: Path, jobs: int) -> None:
    """Every job of the ledger is downloaded to exactly one complete, playable mp4 in `out`,
    and no temporary file is left."""
    rows = ledger(db, "SELECT id, status, local_file, error, video_size FROM jobs ORDER BY id")
    assert len(rows) == jobs, f"{len(rows)} jobs in the ledger, expected {jobs}"
    not_done = [r for r in rows if r[1] != "downloaded"]
    assert not not_done, f"jobs not downloaded: {not_done[:5]}"
    files = videos(out)
    ids = [int(VIDEO_NAME.match(f.name).group(1)) for f in files]
    assert sorted(ids) == [r[0] for r in rows], "not exactly one video per job"
    for row in rows:
        local = Path(row[2])
        assert local.parent == out and local.exists()
        assert row[4] is None or local.stat().st_size == row[4], f"{local} is incomplete"
    for f in files:
        assert playable(f), f"{f} is not playable"
    assert not leftovers(out), f"temporary files left: {leftovers(out)}"
