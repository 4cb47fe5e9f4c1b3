"""A backend that cannot be reached, and keys that cannot work: stop at once, say why.

The CLI runs in a subprocess. "No network" is simulated with I2VKIT_FAL_URL at a closed
port on 127.0.0.1 (a port bound and released, so nothing listens there): no real host
is ever contacted.
"""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest
from clitools import bulk_args, cli_env, ledger, run_cli, write_prompts
from helpers import TEST_KEY, make_images

from i2vkit.emulator import Emulator
from i2vkit.exits import EXIT_UNREACHABLE


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("key", [TEST_KEY, None], ids=["FAL_KEY set", "no key"])
def test_unreachable_backend_stops_at_once_with_its_own_exit_code(tmp_path, key):
    """Exit 4, one line naming the host and what to do; nothing recorded as failed, no
    cost claimed, no library log lines, no traceback."""
    url = closed_port_url()
    make_images(tmp_path / "pics", 3)
    args = bulk_args(write_prompts(tmp_path / "p.txt", 3), tmp_path / "pics")
    out = run_cli(args, cli_env(tmp_path, url, key), tmp_path, stdin=subprocess.DEVNULL)
    text = out.stdout + out.stderr
    assert out.returncode == EXIT_UNREACHABLE == 4, text
    error_lines = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1, out.stderr
    assert f"Cannot reach {url.removeprefix('http://')}" in error_lines[0]
    assert "I2VKIT_FAL_URL" in error_lines[0] and "run the same command again" in error_lines[0]
    assert "cost (" not in text and "(estimate" not in text and "FAILED" not in text
    assert "fal_client" not in text and "HTTP Request" not in text and "Traceback" not in text
    db = tmp_path / "ledger.db"
    if db.exists():
        assert ledger(db, "SELECT count(*) FROM jobs WHERE status = 'failed'") == [(0,)]
        assert ledger(db, "SELECT count(*) FROM jobs") == [(0,)]


def test_fal_url_without_a_key_says_the_key_is_missing(tmp_path):
    """I2VKIT_FAL_URL set, no FAL_KEY, and the service asks for one (401): the message says
    FAL_KEY is not set for that URL, not that fal rejected it."""
    make_images(tmp_path / "pics", 2)
    with Emulator(port=0, key=TEST_KEY, job_seconds=0) as emu:
        args = bulk_args(write_prompts(tmp_path / "p.txt", 1), tmp_path / "pics")
        out = run_cli(args, cli_env(tmp_path, emu.url, None), tmp_path, stdin=subprocess.DEVNULL)
        stats = emu.stats()
    text = out.stdout + out.stderr
    assert out.returncode == 3, text
    [error] = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert "FAL_KEY is not set" in error and emu.url in error
    assert "rejected" not in error
    assert stats["uploads"] == 0 and stats["submits"]["total"] == 0


@pytest.mark.parametrize(
    "env, names",
    [
        ({"FAL_KEY": "nocolonkey-0123456789"}, "FAL_KEY"),
        ({"FAL_KEY_ID": "keyid-0123456789"}, "FAL_KEY_SECRET"),
        ({"FAL_KEY_SECRET": "secret-0123456789"}, "FAL_KEY_ID"),
    ],
    ids=["no colon", "id without secret", "secret without id"],
)
def test_keys_that_cannot_work_are_refused_before_anything_is_sent(tmp_path, env, names):
    """Exit 2 naming the variable, never echoing the value, never falling back to demo mode."""
    make_images(tmp_path / "pics", 2)
    with Emulator(port=0, key=TEST_KEY, job_seconds=0) as emu:
        args = bulk_args(write_prompts(tmp_path / "p.txt", 1), tmp_path / "pics")
        full_env = {**cli_env(tmp_path, emu.url, None), **env}
        out = run_cli(args, full_env, tmp_path, stdin=subprocess.DEVNULL)
        stats = emu.stats()
    text = out.stdout + out.stderr
    assert out.returncode == 2, text
    assert names in out.stderr and "DEMO MODE" not in text
    assert not any(value in text for value in env.values())
    assert stats["requests"] == 0


def test_demo_mode_needs_neither_url_nor_key(tmp_path: Path):
    """The half-set key check does not touch demo mode: no key variables, no URL."""
    from i2vkit.config import load_settings

    assert load_settings({}, env_file=tmp_path / "none").demo
