"""The README's demo: no key, no URL, the built-in emulator, the shipped sample data."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEMO = [
    "bulk",
    str(REPO / "data/prompts.txt"),
    "--images-dir",
    str(REPO / "data/images"),
    "--model",
    "wan",
    "--yes",
    "--no-progress",
]


def demo_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAL_", "I2VKIT_"))}
    env.pop("AUTO_DOWNLOAD_DIR", None)
    env["I2VKIT_DB"] = str(tmp_path / "ledger.db")
    return env


def mp4s(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.mp4")) if folder.exists() else []


def test_readme_demo_runs_on_the_emulator(tmp_path):
    readme = (REPO / "README.md").read_text()
    assert "i2vkit bulk data/prompts.txt --images-dir data/images --model wan --yes" in readme
    out = subprocess.run(
        [sys.executable, "-m", "i2vkit", *DEMO],
        cwd=tmp_path,
        env=demo_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "DEMO MODE" in out.stdout
    files = mp4s(tmp_path / "downloads")
    assert len(files) == 9
    conn = sqlite3.connect(tmp_path / "ledger.db")
    backends = {r[0] for r in conn.execute("SELECT backend FROM jobs")}
    conn.close()
    assert backends == {"emulator"}


def test_interrupted_demo_resumes_on_a_new_emulator(tmp_path):
    env = demo_env(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "i2vkit", *DEMO],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    db = tmp_path / "ledger.db"

    def count(where: str) -> int:
        if not db.exists():
            return 0
        conn = sqlite3.connect(db, timeout=30)
        try:
            return conn.execute(f"SELECT COUNT(*) FROM jobs WHERE {where}").fetchone()[0]
        except sqlite3.OperationalError:  # the ledger's tables are not created yet
            return 0
        finally:
            conn.close()

    deadline = time.monotonic() + 120
    try:
        while count("request_id IS NOT NULL") < 3:
            assert proc.poll() is None, "the demo ended before 3 jobs were submitted"
            assert time.monotonic() < deadline, "3 jobs not submitted within 120 s"
            time.sleep(0.02)  # polling a condition, not synchronising on time
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    # the kill landed mid-batch: the process died of it and work was left to resume
    assert proc.returncode == -signal.SIGKILL
    assert count("status = 'downloaded'") < 9
    again = subprocess.run(
        [sys.executable, "-m", "i2vkit", *DEMO],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    files = mp4s(tmp_path / "downloads")
    assert len(files) == 9
    assert len({f.name.split("_")[0] for f in files}) == 9
    assert not list((tmp_path / "downloads").glob(".*.part"))
