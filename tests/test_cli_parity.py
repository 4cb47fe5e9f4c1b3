"""`i2vkit bulk` and the exported 01_generate notebook are one command line.

The same cases go through both, each against its own fresh emulator on 127.0.0.1 (so
the emulator's counters belong to one run), with the same arguments: every job done,
some failed, bad input, a wrong key, a locked account, Ctrl-C, and a plan above the
spending threshold on a billed backend with stdin closed and no --yes. Both must give
the same exit code, and both must refuse to spend in the same way (nothing uploaded,
nothing submitted).
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import clitools
import pytest
from clitools import videos, wait_until, write_prompts
from helpers import TEST_KEY, make_images

from i2vkit.emulator import Emulator
from i2vkit.models import get_model
from i2vkit.planning import BatchRequest

WAN = get_model(BatchRequest.model).estimate_cost()  # the default model's clip, from the catalogue

ROOT = Path(__file__).resolve().parents[1]
WRONG_KEY = "wrongid:WRONG-SECRET-abcdef123"


@pytest.fixture(scope="module")
def script(tmp_path_factory) -> Path:
    """The notebook exported the documented way, run with plain python."""
    build = tmp_path_factory.mktemp("build")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "jupyter",
            "nbconvert",
            "--to",
            "script",
            "notebooks/01_generate.ipynb",
            "--output-dir",
            str(build),
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return build / "01_generate.py"


@dataclass
class Case:
    images: int = 2
    prompts: int = 3
    extra: tuple[str, ...] = ("--yes",)
    knobs: dict = field(default_factory=dict)
    key: str = TEST_KEY
    images_dir: str | None = None  # default: the folder of generated images
    interrupt: bool = False
    env: dict = field(default_factory=dict)  # extra environment variables
    before: tuple[str, ...] | None = None  # run first with these flags (same ledger, emulator)
    unreachable: bool = False  # I2VKIT_FAL_URL at a closed port instead of the emulator


@dataclass
class Outcome:
    code: int
    output: str
    stats: dict
    videos: int


def command(which: str, script: Path, prompts: Path, images: str, extra: tuple[str, ...]):
    head = [sys.executable, "-m", "i2vkit", "bulk"] if which == "cli" else [sys.executable, script]
    return [*map(str, head), str(prompts), "--images-dir", images, "--no-progress", *extra]


def run(which: str, case: Case, tmp: Path, script: Path) -> Outcome:
    """One run of `case` through `which` ("cli" or "notebook") against a fresh emulator."""
    tmp.mkdir()
    pics = tmp / "pics"
    make_images(pics, case.images)
    prompts = write_prompts(tmp / "prompts.txt", case.prompts)
    knobs = {"job_seconds": 0, **case.knobs}
    with Emulator(port=0, key=TEST_KEY, **knobs) as emu:
        url = closed_port_url() if case.unreachable else emu.url
        env = {**clitools.cli_env(tmp, url, case.key), **case.env}
        images = case.images_dir or str(pics)
        if case.before is not None:
            first = command(which, script, prompts, images, case.before)
            done = clitools.run_cli(first, env, tmp, stdin=subprocess.DEVNULL)
            assert done.returncode == 0, done.stdout + done.stderr
        args = command(which, script, prompts, images, case.extra)
        proc = clitools.start_cli(
            args,
            env,
            tmp,
            stdin=subprocess.DEVNULL,  # nobody can answer a question
            stderr=subprocess.STDOUT,
        )
        try:
            if case.interrupt:

                def submitted() -> bool:
                    assert proc.poll() is None, "the batch ended before it was interrupted"
                    return emu.stats()["submits"]["total"] >= 1

                wait_until(submitted, 120, "a first submit")
                proc.send_signal(signal.SIGINT)
            output, _ = proc.communicate(timeout=240)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        stats = emu.stats()
    return Outcome(proc.returncode, output, stats, len(videos(tmp / "videos")))


def closed_port_url() -> str:
    """A loopback port nobody listens on (bound, then released): "no network"."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def both(case: Case, tmp_path: Path, script: Path) -> tuple[Outcome, Outcome]:
    return run("cli", case, tmp_path / "cli", script), run(
        "notebook", case, tmp_path / "nb", script
    )


CASES: dict[str, tuple[Case, int, Callable[[Outcome], None]]] = {}


def case(name: str, spec: Case, code: int):
    def register(check: Callable[[Outcome], None]):
        CASES[name] = (spec, code, check)
        return check

    return register


@case("all done", Case(), 0)
def _all_done(o: Outcome) -> None:
    assert o.videos == 6 and o.stats["submits"]["total"] == 6


@case("some failed", Case(images=3, knobs={"fail_rate": 0.5, "seed": 3}), 1)
def _some_failed(o: Outcome) -> None:
    assert 0 < o.videos < 9 and "FAILED job" in o.output


@case("bad input", Case(images_dir="no/such/folder"), 2)
def _bad_input(o: Outcome) -> None:
    assert o.output.count("Images folder not found") == 1  # said once, not twice
    assert "Traceback" not in o.output and o.stats["requests"] == 0


@case("wrong key", Case(key=WRONG_KEY), 3)
def _wrong_key(o: Outcome) -> None:
    assert "FAL_KEY was rejected" in o.output and o.stats["submits"]["total"] == 0
    assert "WRONG-SECRET" not in o.output and "Traceback" not in o.output


@case("locked account", Case(knobs={"locked": True}), 3)
def _locked(o: Outcome) -> None:
    assert "top up" in o.output.lower() and o.stats["submits"]["total"] == 0


@case("interrupted", Case(images=3, knobs={"job_seconds": 60}, interrupt=True), 130)
def _interrupted(o: Outcome) -> None:
    assert "Resume with:" in o.output and "Traceback" not in o.output
    assert o.videos == 0


# 4 images x 4 prompts on wan (US$ WAN a video): above the US$ 5 threshold, on a
# billed backend (I2VKIT_FAL_URL is never the free built-in emulator), stdin closed, no --yes.
@case("not confirmed", Case(images=4, prompts=4, extra=()), 2)
def _refused(o: Outcome) -> None:
    assert 16 * WAN > 5 and f"US$ {16 * WAN:.2f}" in o.output and "re-run with --yes" in o.output
    assert o.stats["uploads"] == 0 and o.stats["submits"]["total"] == 0


@case("confirmed with --yes", Case(images=4, prompts=4, extra=("--yes",)), 0)
def _confirmed(o: Outcome) -> None:
    assert o.videos == 16 and "re-run with --yes" not in o.output


@case("below the threshold", Case(extra=()), 0)
def _below(o: Outcome) -> None:
    assert 6 * WAN < 5 and o.videos == 6  # below US$ 5: runs without asking in both


# An endpoint with no published price is never "free": with nobody to answer, both refuse.
@case("unknown price", Case(extra=("--model", "someone/unpriced-i2v")), 2)
def _unknown_price(o: Outcome) -> None:
    assert "whose price is unknown" in o.output and "re-run with --yes" in o.output
    assert o.stats["uploads"] == 0 and o.stats["submits"]["total"] == 0


# 6 wan jobs against a US$ 1 cap: refused before any upload, --yes or not.
@case("over --max-cost", Case(extra=("--yes", "--max-cost", "1")), 2)
def _over_cap(o: Outcome) -> None:
    assert f"US$ {6 * WAN:.2f}" in o.output and "spend cap of US$ 1.00" in o.output
    assert o.stats["uploads"] == 0 and o.stats["submits"]["total"] == 0


@case("over I2VKIT_MAX_COST", Case(env={"I2VKIT_MAX_COST": "1"}), 2)
def _over_env_cap(o: Outcome) -> None:
    assert "spend cap of US$ 1.00" in o.output and o.stats["uploads"] == 0


# A finished batch of 16 wan videos run again without --yes: it adds nothing, so nothing to confirm.
@case("finished batch again", Case(images=4, prompts=4, before=("--yes",), extra=()), 0)
def _again(o: Outcome) -> None:
    assert "re-run with --yes" not in o.output and "this run: US$ 0.00 (0 jobs)" in o.output
    assert f"earlier runs: US$ {16 * WAN:.2f} (16 jobs)" in o.output
    assert o.stats["submits"]["total"] == 16 and o.videos == 16


@case("unreachable backend", Case(unreachable=True), 4)
def _unreachable(o: Outcome) -> None:
    assert "Cannot reach 127.0.0.1:" in o.output and "Traceback" not in o.output
    assert "cost (" not in o.output and o.stats["requests"] == 0


@pytest.mark.parametrize("name", list(CASES))
def test_bulk_and_the_exported_notebook_behave_the_same(name, tmp_path, script):
    spec, code, check = CASES[name]
    cli, notebook = both(spec, tmp_path, script)
    for which, outcome in (("i2vkit bulk", cli), ("exported notebook", notebook)):
        assert outcome.code == code, f"{which} exited {outcome.code}:\n{outcome.output}"
        check(outcome)
    assert cli.videos == notebook.videos
    assert cli.stats["submits"]["total"] == notebook.stats["submits"]["total"] or spec.interrupt
