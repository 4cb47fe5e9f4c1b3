"""When fal's model list cannot be read: say what failed, which copy stays in use (and its
date), and exit 4 unless the key or the account was refused (3).

`i2vkit models --refresh` runs against a plain web server (Python's http.server, which
has no /v1/models: 404), against the emulator answering 404 to the next requests (its
``fail_next`` knob, as nginx in front of fal would), and against a closed port. The weekly
refresh is met by ageing the stored copy, as tests/test_catalogue.py does.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from clitools import cli_env, run_cli, write_prompts
from helpers import TEST_KEY, make_images
from test_not_fal import plain_server
from test_unreachable import closed_port_url

from i2vkit.emulator import Emulator

ROOT = Path(__file__).resolve().parents[1]
SNAPSHOT_DATE = json.loads((ROOT / "i2vkit/catalogue/snapshot.json").read_text())["read_on"]


def models_refresh(tmp_path: Path, url: str, key: str | None = TEST_KEY):
    args = [sys.executable, "-m", "i2vkit", "models", "--refresh"]
    return run_cli(args, cli_env(tmp_path, url, key), tmp_path, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("kind", ["static", "json 404", "html 200"])
def test_refresh_from_a_server_without_the_model_list_exits_4_and_names_the_copy(kind, tmp_path):
    with plain_server(kind, tmp_path) as (url, seen):
        out = models_refresh(tmp_path, url)
    assert out.returncode == 4, out.stdout + out.stderr
    [error] = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert f"{url}/v1: reading fal's model list" in error, error  # what failed, and where
    assert "HTTP 404" in error or "not JSON" in error, error
    assert SNAPSHOT_DATE in error and "in use" in error, error  # the copy, with its date
    assert "Traceback" not in out.stderr and seen


def test_refresh_answered_404_keeps_the_stored_copy_and_says_its_date(tmp_path):
    with Emulator(port=0, key=TEST_KEY, job_seconds=0) as emu:
        first = models_refresh(tmp_path, emu.url)
        assert first.returncode == 0, first.stdout + first.stderr
        emu.configure(fail_next=20, fail_status=404)
        out = models_refresh(tmp_path, emu.url)
    assert out.returncode == 4, out.stdout + out.stderr
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    [error] = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert "HTTP 404" in error and "in use" in error and today in error, error
    assert "Platform API" in error, error  # the stored copy, not the snapshot


def test_refresh_from_a_closed_port_exits_4_and_a_rejected_key_3(tmp_path):
    out = models_refresh(tmp_path, closed_port_url())
    assert out.returncode == 4, out.stdout + out.stderr
    assert "could not connect" in out.stderr and SNAPSHOT_DATE in out.stderr, out.stderr
    with Emulator(port=0, key=TEST_KEY, job_seconds=0) as emu:
        rejected = models_refresh(tmp_path, emu.url, key="testid:not-the-emulators-secret")
    assert rejected.returncode == 3, rejected.stdout + rejected.stderr
    assert "rejected" in rejected.stderr and SNAPSHOT_DATE in rejected.stderr


def test_the_weekly_refresh_that_fails_says_so_in_one_line_and_the_plan_goes_on(tmp_path):
    make_images(tmp_path / "pics", 2)
    prompts = write_prompts(tmp_path / "p.txt", 2)
    plan = [sys.executable, "-m", "i2vkit", "bulk", str(prompts), "--images-dir", "pics"]
    plan += ["--dry-run", "--no-progress"]
    with Emulator(port=0, key=TEST_KEY, job_seconds=0) as emu:
        env = cli_env(tmp_path, emu.url)
        assert models_refresh(tmp_path, emu.url).returncode == 0
        read = datetime.now(UTC) - timedelta(days=8)
        with sqlite3.connect(tmp_path / "ledger.db") as db:
            db.execute("UPDATE catalogue SET read_at = ?", [read.isoformat()])
        emu.configure(fail_next=20, fail_status=404)
        out = run_cli(plan, env, tmp_path, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stdout + out.stderr
    notes = [ln for ln in (out.stdout + out.stderr).splitlines() if "catalogue" in ln]
    assert len(notes) == 1, out.stdout + out.stderr
    assert "could not refresh" in notes[0] and "HTTP 404" in notes[0], notes[0]
    assert f"read {read:%Y-%m-%d}" in notes[0] and "goes on" in notes[0], notes[0]
    assert "4 jobs" in out.stdout
