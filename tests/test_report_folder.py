"""Reports that do not bite: one batch per report folder, and CSV cells no spreadsheet runs.

Two real batches run on the emulator (one with prompts a spreadsheet would run as
formulas). `i2vkit report` into the first one's folder must stop naming both batches;
``--replace`` must remove what the first report wrote there and nothing else. The
notebook's Export button must follow the batch picked when it is pressed. jobs.csv and
`--write-shots` must write no cell starting with a formula character, the shot list must
read back to the same prompts, and jobs.csv must carry no absolute local path.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from clitools import cli_env, run_cli
from helpers import TEST_KEY, make_images

from i2vkit.config import Settings
from i2vkit.emulator import Emulator
from i2vkit.engine import run_batch
from i2vkit.planning import BatchRequest
from i2vkit.planning.shots import read_shots
from i2vkit.report_folder import MANIFEST

FORMULAS = [
    '=HYPERLINK("http://example.invalid/","click")',
    "@SUM(1+1)",
    "+1+2",
    "-dash first",
    "\tstarts with a tab",
    "'=already quoted",
    "'Tis the season",
]
RUNNERS = ("=", "+", "-", "@", "\t", "\r")


@pytest.fixture(scope="module")
def two_batches(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("two")
    make_images(tmp / "pics", 2)
    with Emulator(port=0, key=TEST_KEY, job_seconds=0) as emu:
        settings = Settings(
            fal_key=TEST_KEY,
            download_dir=tmp / "videos",
            db_path=tmp / "ledger.db",
            fal_url=emu.url,
        )
        first = run_batch(BatchRequest(tmp / "pics", prompts=FORMULAS[:3], batch="first"), settings)
        second = run_batch(
            BatchRequest(tmp / "pics", prompts=["calm sea"], batch="second"), settings
        )
    assert first.ok and second.ok
    return {"tmp": tmp, "settings": settings, "first": first.batch_id, "second": second.batch_id}


def report(two_batches, batch: str, out: Path, *extra: str) -> subprocess.CompletedProcess:
    tmp = two_batches["tmp"]
    env = cli_env(tmp, "http://127.0.0.1:9", I2VKIT_DB=str(tmp / "ledger.db"))
    args = [sys.executable, "-m", "i2vkit", "report", batch, "--out", str(out), *extra]
    return run_cli(args, env, tmp, stdin=subprocess.DEVNULL)


def test_a_report_into_another_batchs_folder_stops_and_replace_removes_only_its_files(
    two_batches, tmp_path
):
    out = tmp_path / "shared"
    first = report(two_batches, "first", out)
    assert first.returncode == 0, first.stdout + first.stderr
    assert len(mp4s(out)) == 6 and len(sidecars(out)) == 6  # 2 images x 3 prompts
    (out / "notes.txt").write_text("mine")  # the user's own files in the folder
    (out / "videos" / "keep-me.mp4").write_bytes(b"mine too")
    page = (out / "index.html").read_text()

    refused = report(two_batches, "second", out)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    [error] = [ln for ln in refused.stderr.splitlines() if ln.startswith("error:")]
    assert two_batches["first"] in error and two_batches["second"] in error, error
    assert "--replace" in error
    assert (out / "index.html").read_text() == page  # nothing written
    assert len(mp4s(out)) == 7

    replaced = report(two_batches, "second", out, "--replace")
    assert replaced.returncode == 0, replaced.stdout + replaced.stderr
    videos = mp4s(out)
    assert len(videos) == 3 and "keep-me.mp4" in videos, videos  # 2 of batch 2, and mine
    assert len(sidecars(out)) == 2  # the first batch's recipes went with its videos
    assert (out / "notes.txt").read_text() == "mine"
    assert two_batches["second"] in (out / "index.html").read_text()
    assert json.loads((out / MANIFEST).read_text())["batch"] == two_batches["second"]
    with open(out / "jobs.csv", encoding="utf-8-sig", newline="") as f:
        assert len(list(csv.DictReader(f))) == 2


def mp4s(report_folder: Path) -> list[str]:
    return sorted(p.name for p in (report_folder / "videos").glob("*.mp4"))


def sidecars(report_folder: Path) -> list[str]:
    """The recipes beside the videos (NAME.json, provenance.py)."""
    return sorted(p.name for p in (report_folder / "videos").glob("*.json"))


def test_the_same_batch_again_writes_over_its_own_report(two_batches, tmp_path):
    out = tmp_path / "again"
    assert report(two_batches, "second", out).returncode == 0
    again = report(two_batches, "second", out)
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(mp4s(out)) == 2 and len(sidecars(out)) == 2


def test_jobs_csv_runs_no_formula_and_names_images_without_local_paths(two_batches, tmp_path):
    out = tmp_path / "csv"
    assert report(two_batches, "first", out).returncode == 0
    text = (out / "jobs.csv").read_text(encoding="utf-8-sig")
    with open(out / "jobs.csv", encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f))
    cells = [c for row in rows for c in row]
    assert not [c for c in cells if c.startswith(RUNNERS)], [c for c in cells if c[:1] in "=+-@"]
    assert str(two_batches["tmp"]) not in text and os.path.expanduser("~") + "/" not in text
    header = rows[0]
    images = {row[header.index("image")] for row in rows[1:]}
    assert images == {p.name for p in (two_batches["tmp"] / "pics").iterdir()}
    prompts = {row[header.index("prompt")] for row in rows[1:]}
    assert "'" + FORMULAS[0] in prompts  # a leading apostrophe: text, not a formula


def test_a_shot_list_written_and_read_back_keeps_every_prompt(tmp_path):
    make_images(tmp_path / "pics", 1)
    (tmp_path / "p.txt").write_text("\n".join(FORMULAS) + "\n", encoding="utf-8")
    env = cli_env(tmp_path, "http://127.0.0.1:9", key=None)
    env.pop("I2VKIT_FAL_URL")  # demo mode: nothing is contacted for a dry run
    args = [sys.executable, "-m", "i2vkit", "bulk", "p.txt", "--images-dir", "pics"]
    args += ["--dry-run", "--write-shots", "shots.csv"]
    done = run_cli(args, env, tmp_path, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout + done.stderr
    with open(tmp_path / "shots.csv", encoding="utf-8-sig", newline="") as f:
        cells = [c for row in csv.reader(f) for c in row]
    assert not [c for c in cells if c.startswith(RUNNERS)], cells
    expected = [p.strip() for p in FORMULAS]  # a prompts file's lines are stripped
    assert [row.cells["prompt"] for row in read_shots(tmp_path / "shots.csv")] == expected
    planned = run_cli(
        [sys.executable, "-m", "i2vkit", "bulk", "--shots", "shots.csv", "--dry-run"],
        env,
        tmp_path,
        stdin=subprocess.DEVNULL,
    )
    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert f"{len(FORMULAS)} jobs" in planned.stdout or f"= {len(FORMULAS)} jobs" in planned.stdout


def test_the_notebook_export_follows_the_batch_picked_and_keeps_the_guard(two_batches, monkeypatch):
    from i2vkit.notebook import display, results

    for module in (display, results):
        monkeypatch.setattr(module, "widgets_available", lambda: True)
    browser = results.ResultsBrowser(two_batches["settings"], base=two_batches["tmp"])
    browser.batch_w.value = two_batches["first"]
    browser.report_button()
    folder, button, status, replace = browser.report_w
    browser.batch_w.value = two_batches["second"]  # picked after the button was drawn
    button.click()
    assert "Report written" in status.value, status.value
    written = Path(folder.value)
    assert written == two_batches["tmp"] / "videos" / "reports" / two_batches["second"]
    assert json.loads((written / MANIFEST).read_text())["batch"] == two_batches["second"]
    browser.batch_w.value = two_batches["first"]
    folder.value = str(written)  # typed: the second batch's folder, for the first batch
    button.click()
    assert two_batches["first"] in status.value and two_batches["second"] in status.value
    assert json.loads((written / MANIFEST).read_text())["batch"] == two_batches["second"]
    replace.value = True
    button.click()
    assert "Report written" in status.value, status.value
    assert json.loads((written / MANIFEST).read_text())["batch"] == two_batches["first"]
    browser.close()
