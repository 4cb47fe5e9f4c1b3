"""The question at the spend threshold: its answers, its exit codes, and its threshold.

The real `i2vkit` CLI runs against the built-in emulator reached through I2VKIT_FAL_URL
(billed: it may be a proxy of fal). The question is answered on a real pseudo-terminal
(the pty module), so `n`, Ctrl-D and Ctrl-C arrive as a person types them; the
terminal's line discipline turns Ctrl-C into SIGINT. The emulator's counters say what
was uploaded and submitted. Wan costs US$ 0.40 a clip in the catalogue: 16 jobs are
US$ 6.40, above the default threshold of US$ 5; 1 job is US$ 0.40, below it.
"""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from clitools import bulk_args, cli_env, ledger, run_cli, write_prompts
from helpers import TEST_KEY, make_images

from i2vkit.emulator import Emulator

ROOT = Path(__file__).resolve().parents[1]
QUESTION = b"[y/N]"


@pytest.fixture
def emu():
    with Emulator(port=0, key=TEST_KEY, job_seconds=0) as emulator:
        yield emulator


def asking(tmp_path: Path, images: int = 4, prompts: int = 4) -> list[str]:
    """`i2vkit bulk` of images x prompts wan jobs, without --yes."""
    make_images(tmp_path / "pics", images)
    args = bulk_args(write_prompts(tmp_path / "p.txt", prompts), tmp_path / "pics")
    return [a for a in args if a != "--yes"]


def read_until(fd: int, wanted: bytes, seen: bytearray, deadline: float) -> None:
    while wanted not in seen:
        if time.monotonic() > deadline:
            raise AssertionError(f"no {wanted!r} on the terminal; it showed:\n{seen.decode()}")
        ready, _, _ = select.select([fd], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                chunk = b""
            if not chunk:
                raise AssertionError(f"the terminal closed before {wanted!r}:\n{seen.decode()}")
            seen += chunk


def on_a_terminal(args: list[str], env: dict[str, str], cwd: Path, keys: bytes) -> tuple[int, str]:
    """Run ``args`` on a pseudo-terminal, type ``keys`` at the question; (exit code, screen)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: the terminal is its stdin, stdout and stderr
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # a test runner's worker may ignore it
        os.chdir(cwd)
        os.execvpe(args[0], args, env)
    seen = bytearray()
    deadline = time.monotonic() + 120
    try:
        read_until(fd, QUESTION, seen, deadline)
        os.write(fd, keys)
        while True:
            if time.monotonic() > deadline:
                os.kill(pid, 9)
                raise AssertionError(f"still running after the answer:\n{seen.decode()}")
            ready, _, _ = select.select([fd], [], [], 1.0)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return code, seen.decode(errors="replace")


@pytest.mark.parametrize(
    ("keys", "what"), [(b"n\r", "answered n"), (b"\r", "empty answer"), (b"\x04", "Ctrl-D")]
)
def test_no_or_end_of_input_at_the_question_submits_nothing_and_exits_2(keys, what, tmp_path, emu):
    code, screen = on_a_terminal(asking(tmp_path), cli_env(tmp_path, emu.url), tmp_path, keys)
    assert code == 2, f"{what}: {screen}"
    assert "Nothing submitted" in screen and "Traceback" not in screen, screen
    stats = emu.stats()
    assert (stats["uploads"], stats["submits"]["total"]) == (0, 0)


def test_ctrl_c_at_the_question_exits_130_without_a_traceback(tmp_path, emu):
    code, screen = on_a_terminal(asking(tmp_path), cli_env(tmp_path, emu.url), tmp_path, b"\x03")
    assert code == 130, screen
    assert "Traceback" not in screen and "KeyboardInterrupt" not in screen, screen
    assert "Nothing submitted" in screen, screen
    assert emu.stats()["submits"]["total"] == 0


def test_yes_at_the_question_runs_the_batch(tmp_path, emu):
    code, screen = on_a_terminal(asking(tmp_path), cli_env(tmp_path, emu.url), tmp_path, b"y\r")
    assert code == 0, screen
    assert emu.stats()["submits"]["total"] == 16


def test_the_threshold_from_the_flag_and_from_the_variable(tmp_path, emu):
    """US$ 6.40 with nobody to answer: refused at the default threshold, run under
    --confirm-above 10; a US$ 0.40 run is asked about with I2VKIT_CONFIRM_ABOVE=0."""
    args, env = asking(tmp_path), cli_env(tmp_path, emu.url)
    refused = run_cli(args, env, tmp_path, stdin=subprocess.DEVNULL)
    assert refused.returncode == 2 and "re-run with --yes" in refused.stdout, refused.stdout
    assert emu.stats()["submits"]["total"] == 0
    low = run_cli([*args, "--confirm-above", "7"], env, tmp_path, stdin=subprocess.DEVNULL)
    assert low.returncode == 0, low.stdout + low.stderr
    assert "confirmation: asks above US$ 7.00" in low.stdout
    assert emu.stats()["submits"]["total"] == 16
    (tmp_path / "p.txt").write_text("one more prompt\n")  # a new batch: 4 images x 1 prompt
    one = [str(tmp_path / "one") if a == str(tmp_path / "pics") else a for a in args]
    make_images(tmp_path / "one", 1)
    every = run_cli(one, {**env, "I2VKIT_CONFIRM_ABOVE": "0"}, tmp_path, stdin=subprocess.DEVNULL)
    assert every.returncode == 2, every.stdout + every.stderr
    assert "US$ 0.40" in every.stdout and "re-run with --yes" in every.stdout
    assert "confirmation: asks every time" in every.stdout
    assert emu.stats()["submits"]["total"] == 16
    bad = run_cli([*one, "--confirm-above", "lots"], env, tmp_path, stdin=subprocess.DEVNULL)
    assert bad.returncode == 2 and "--confirm-above='lots'" in bad.stderr, bad.stderr


def test_retry_takes_the_threshold(tmp_path, emu):
    """16 failed jobs (US$ 6.40 to retry): I2VKIT_CONFIRM_ABOVE=10 lets the retry run
    unasked; --confirm-above 0 asks even for what is left after that (nobody answers)."""
    emu.configure(fail_rate=1.0)
    env = cli_env(tmp_path, emu.url)
    first = run_cli([*asking(tmp_path), "--yes"], env, tmp_path)
    assert first.returncode == 1, first.stdout + first.stderr
    batch = ledger(tmp_path / "ledger.db", "SELECT id FROM batches")[0][0]
    retry = [sys.executable, "-m", "i2vkit", "retry", batch, "--no-progress"]
    submits = emu.stats()["submits"]["total"]
    asked = run_cli([*retry, "--confirm-above", "0"], env, tmp_path, stdin=subprocess.DEVNULL)
    assert asked.returncode == 2 and "re-run with --yes" in asked.stdout, asked.stdout
    assert emu.stats()["submits"]["total"] == submits
    unasked = run_cli(
        retry, {**env, "I2VKIT_CONFIRM_ABOVE": "10"}, tmp_path, stdin=subprocess.DEVNULL
    )
    assert unasked.returncode == 1, unasked.stdout + unasked.stderr  # ran; failed again
    assert emu.stats()["submits"]["total"] == submits + 16


def test_the_exported_script_takes_the_threshold(tmp_path, emu):
    build = tmp_path / "build"
    subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "script"]
        + ["notebooks/01_generate.ipynb", "--output-dir", str(build)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    make_images(tmp_path / "pics", 1)
    write_prompts(tmp_path / "p.txt", 1)
    script = [sys.executable, str(build / "01_generate.py"), "p.txt", "--images-dir", "pics"]
    script.append("--no-progress")
    env = cli_env(tmp_path, emu.url)
    asked = run_cli(
        script, {**env, "I2VKIT_CONFIRM_ABOVE": "0"}, tmp_path, stdin=subprocess.DEVNULL
    )
    assert asked.returncode == 2, asked.stdout + asked.stderr
    assert "re-run with --yes" in asked.stdout and emu.stats()["submits"]["total"] == 0
    ran = run_cli(script, env, tmp_path, stdin=subprocess.DEVNULL)  # US$ 0.40 < US$ 5
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert emu.stats()["submits"]["total"] == 1


def test_again_takes_the_threshold(tmp_path, emu):
    """`i2vkit again` of a US$ 0.40 clip asks with --confirm-above 0 (`n` on a terminal:
    nothing submitted) and with I2VKIT_CONFIRM_ABOVE=0 (nobody to answer: refused)."""
    env = cli_env(tmp_path, emu.url)
    first = run_cli([*asking(tmp_path, 1, 1), "--yes"], env, tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    [(video,)] = ledger(tmp_path / "ledger.db", "SELECT local_file FROM jobs")
    submits = emu.stats()["submits"]["total"]
    again = [sys.executable, "-m", "i2vkit", "again", video, "--no-progress"]
    code, screen = on_a_terminal([*again, "--confirm-above", "0"], env, tmp_path, b"n\r")
    assert code == 2 and "Nothing submitted" in screen, screen
    assert "US$ 0.40" in screen and "confirmation: asks every time" in screen, screen
    variable = {**env, "I2VKIT_CONFIRM_ABOVE": "0"}
    refused = run_cli(again, variable, tmp_path, stdin=subprocess.DEVNULL)
    assert refused.returncode == 2 and "re-run with --yes" in refused.stdout, refused.stdout
    assert emu.stats()["submits"]["total"] == submits
