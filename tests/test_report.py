"""The batch report (`i2vkit report`), the comparison grid and keepers, on a real batch.

A mixed batch (2 images x 2 prompts x 2 models x 2 takes on the emulator, some jobs made
to fail) is run once; its report is checked on disk (videos hard-linked, names valid on
Windows, jobs.csv complete, no reference outside the folder, no key) and opened in the
headless Chromium the notebook browser test uses, from a file:// URL: every video plays,
no request leaves the folder, no console error, the row/column pickers re-lay the grid;
then the folder is moved and opened again.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import TEST_KEY
from test_browser import browser, find_chromium  # noqa: F401 - the shared fixture

from i2vkit import compare as cmp
from i2vkit.engine import run_batch
from i2vkit.filenames import safe_component
from i2vkit.models import get_model
from i2vkit.money import usd
from i2vkit.planning import BatchRequest
from i2vkit.report import CSV_COLUMNS, write_report
from i2vkit.store import Store

REPO = Path(__file__).resolve().parents[1]
SCREENSHOTS = REPO / "docs" / "screenshots"


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """A finished batch with done and failed jobs on two models and two takes."""
    from i2vkit.config import Settings
    from i2vkit.emulator import Emulator

    tmp = tmp_path_factory.mktemp("mixed")
    images = tmp / "images"
    images.mkdir()
    for name in sorted(p.name for p in (REPO / "data" / "images").iterdir())[:2]:
        shutil.copy(REPO / "data" / "images" / name, images / name)
    with Emulator(port=0, key=TEST_KEY, job_seconds=0, fail_rate=0.3, seed=7) as emu:
        settings = Settings(
            fal_key=TEST_KEY,
            download_dir=tmp / "downloads",
            db_path=tmp / "ledger.db",
            fal_url=emu.url,
        )
        spec = BatchRequest(
            images, prompts=["slow pan", "a $5 sign & <b>"], model="wan,kling", takes=2
        )
        result = run_batch(spec, settings)
    with Store(settings.db_path) as store:
        rows = store.jobs(result.batch_id)
    statuses = {r["status"] for r in rows}
    assert len(rows) == 16 and statuses == {"downloaded", "failed"}, statuses
    return {"tmp": tmp, "settings": settings, "batch": result.batch_id, "rows": rows}


@pytest.fixture(scope="module")
def report(mixed):
    with Store(mixed["settings"].db_path) as store:
        index = write_report(store, mixed["batch"], mixed["tmp"] / "out" / "my report")
    return index


def test_report_folder_holds_everything_and_only_relative_references(mixed, report):
    folder = report.parent
    rows = mixed["rows"]
    done = [r for r in rows if r["status"] == "downloaded"]
    videos = sorted((folder / "videos").glob("*.mp4"))
    assert len(videos) == len(done)
    assert all(v.with_suffix(".json").is_file() for v in videos)  # each with its recipe
    for v in videos:
        assert safe_component(v.stem) == v.stem  # valid on Windows as is
    # hard links: the same file as the download, no copy
    by_size = {os.stat(r["local_file"]).st_ino for r in done}
    assert {v.stat().st_ino for v in videos} == by_size
    thumbs = list((folder / "thumbs").iterdir())
    assert len(thumbs) == len(done) and all(t.read_bytes()[:2] == b"\xff\xd8" for t in thumbs)

    page = report.read_text(encoding="utf-8")
    refs = re.findall(r'(?:src|href|poster)="([^"]*)"', page)
    refs += re.findall(r"(?:src|href|poster)='([^']*)'", page)
    assert refs
    for ref in refs:
        assert "://" not in ref and not ref.startswith(("/", "file:", "data:")), ref
        assert (folder / ref).resolve().is_file(), ref
    assert str(mixed["tmp"]) not in page  # no absolute path of this machine in a URL or text
    assert TEST_KEY not in page and TEST_KEY.split(":")[-1] not in page
    # every failed job with fal's reason, and money that survives math rendering
    for r in rows:
        if r["status"] == "failed":
            assert r["error"] and cmp.esc(r["error"]) in page
    wan = usd(get_model("wan").estimate_cost())  # a wan clip's price, from the catalogue
    assert wan in page and "tex2jax_ignore mathjax_ignore" in page
    assert "a $5 sign &amp; &lt;b&gt;" in page and "<b>;" not in page


def test_jobs_csv_has_every_job_and_column(mixed, report):
    with open(report.parent / "jobs.csv", encoding="utf-8-sig", newline="") as f:
        got = list(csv.DictReader(f))
    assert list(got[0]) == CSV_COLUMNS
    assert sorted(int(r["job_id"]) for r in got) == sorted(r["id"] for r in mixed["rows"])
    ledger = {r["id"]: r for r in mixed["rows"]}
    for r in got:
        row = ledger[int(r["job_id"])]
        assert r["status"] == row["status"] and r["model"] == row["model"]
        assert r["seed"] == ("" if row["seed"] is None else str(row["seed"]))
        assert r["error"] == (row["error"] or "")
        assert r["prompt"] == row["prompt"] and r["image"] == Path(row["image_path"]).name
        assert float(r["cost_usd"]) > 0
        if row["status"] == "downloaded":
            assert (report.parent / r["video"]).is_file()
    assert any(r["seed"] for r in got)  # takes of a model that takes a seed record it


def test_report_copies_when_a_hard_link_is_refused(mixed, tmp_path, monkeypatch):
    """Another drive (or FAT) refuses hard links: the videos are copied instead."""

    def refuse(src, dst):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", refuse)
    with Store(mixed["settings"].db_path) as store:
        index = write_report(store, mixed["batch"], tmp_path / "copy")
    videos = list((index.parent / "videos").iterdir())
    assert videos and all(v.stat().st_nlink == 1 for v in videos)


def test_report_cli(mixed, tmp_path):
    env = {**os.environ, "I2VKIT_DB": str(mixed["settings"].db_path), "FAL_KEY": ""}
    out = tmp_path / "cli report"
    cmd = [sys.executable, "-m", "i2vkit", "report", mixed["batch"][:6], "--out", str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"open {out / 'index.html'}" in proc.stdout and "16 jobs" in proc.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "i2vkit", "report", "nosuchbatch"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "No batch 'nosuchbatch'" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_grid_layout_follows_the_chosen_axes(mixed):
    cells = cmp.cells_from_rows(mixed["rows"])
    assert cmp.default_axes(cells) == (("image", "prompt"), ("model", "take"))
    grid = cmp.arrange(cells, ("model",), ("take",))
    assert grid.row_keys == [("wan",), ("kling",)]
    assert grid.col_keys == [("take 1",), ("take 2",)]
    assert all(len(grid.slot(r, c)) == 4 for r in grid.row_keys for c in grid.col_keys)
    with pytest.raises(ValueError, match="model is on both"):
        cmp.arrange(cells, ("model",), ("model", "take"))
    failed = next(c for c in cells if c.status == "failed")
    html = cmp.cell_html(failed, None)
    assert "<video" not in html and cmp.esc(failed.error) in html
    done = next(c for c in cells if c.video)
    html = cmp.cell_html(done, "v.mp4", "t.jpg")
    for part in ('preload="none"', 'poster="t.jpg"', "muted", "loop", f"seed {done.seed}"):
        assert part in html


def test_first_frame_is_cached_next_to_the_video(mixed, tmp_path):
    video = Path(next(r["local_file"] for r in mixed["rows"] if r["local_file"]))
    thumb = cmp.first_frame(video)
    assert thumb.parent == video.parent / cmp.THUMB_DIR and thumb.read_bytes()[:2] == b"\xff\xd8"
    mtime = thumb.stat().st_mtime_ns
    assert cmp.first_frame(video) == thumb and thumb.stat().st_mtime_ns == mtime  # reused
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    assert cmp.first_frame(broken) is None


def test_keepers_survive_a_new_process(mixed, tmp_path):
    """A pick made through the notebook's view is in the ledger: a fresh process sees it."""
    from i2vkit.notebook import CompareView

    db = mixed["settings"].db_path
    done = [r["id"] for r in mixed["rows"] if r["status"] == "downloaded"][:2]
    with Store(db) as store:
        view = CompareView(lambda: store.jobs(mixed["batch"]), db, mixed["batch"], tmp_path)
        view.set_keeper(done[0], True)
        view.set_keeper(done[1], True)
        view.set_keeper(done[1], False)
    code = (
        "import sys; from i2vkit.store import Store; from i2vkit.keepers import keepers; "
        f"print([r['id'] for r in keepers(Store(sys.argv[1]), {mixed['batch']!r})])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(db)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str([done[0]])
    with Store(db) as store:
        store.db.execute("UPDATE jobs SET keeper = 0")


# ------------------------------------------------------------------ in the browser

JS_VIDEOS = """() => Array.from(document.querySelectorAll('video')).map(v => ({
  src: v.getAttribute('src'), readyState: v.readyState, duration: v.duration,
  error: v.error ? v.error.code : null}))"""


def open_and_check(browser, index: Path, shot: Path | None = None) -> dict:  # noqa: F811
    """Open the report from disk; every video is scrolled into view and must load."""
    folder = index.parent.resolve()
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    requests: list[str] = []
    errors: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    try:
        page.goto(index.resolve().as_uri())
        count = page.locator("video").count()
        assert count == len(list((folder / "videos").glob("*.mp4")))
        for i in range(count):
            page.locator("video").nth(i).scroll_into_view_if_needed()
        page.wait_for_function(
            """() => Array.from(document.querySelectorAll('video')).every(v =>
                 v.error || (v.readyState >= 1 && isFinite(v.duration) && v.duration > 0))""",
            timeout=30_000,
        )
        videos = page.evaluate(JS_VIDEOS)
        assert all(v["error"] is None and v["duration"] > 0 for v in videos), videos
        # the pickers: rows = model, columns = take, as a person reads the headers
        page.select_option("#i2v-rows", "model")
        page.select_option("#i2v-cols", "take")
        rows = [t.strip() for t in page.locator("#i2v-compare th.i2v-row").all_inner_texts()]
        cols = [t.strip() for t in page.locator("#i2v-compare th.i2v-col").all_inner_texts()]
        assert [r.split("\n")[0] for r in rows] == ["wan", "kling"], rows
        assert cols == ["take 1", "take 2"], cols
        page.select_option("#i2v-rows", "image × prompt")
        page.select_option("#i2v-cols", "model × take")
        page.evaluate("() => window.scrollTo(0, 0)")
        if shot is not None:
            page.screenshot(path=str(shot), full_page=True)
        outside = [
            u for u in requests if not u.startswith(folder.as_uri() + "/")
        ]  # the page itself is under the folder too
        assert not outside, f"requests outside the report folder: {outside}"
        assert not errors, errors
        return {"requests": requests, "videos": videos}
    finally:
        context.close()


def test_report_opens_from_disk_and_after_a_move(browser, mixed, report, tmp_path):  # noqa: F811
    artifacts = Path(os.environ.get("I2VKIT_TEST_ARTIFACTS") or REPO / "test-artifacts")
    artifacts.mkdir(parents=True, exist_ok=True)
    shot = artifacts / "report.png"
    first = open_and_check(browser, report, shot)
    assert any(u.endswith(".mp4") for u in first["requests"])
    if os.environ.get("I2VKIT_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, SCREENSHOTS / "report.png")
    moved = tmp_path / "elsewhere" / "sent by mail"
    moved.parent.mkdir()
    shutil.copytree(report.parent, moved)
    shutil.rmtree(report.parent)
    try:
        open_and_check(browser, moved / "index.html")
    finally:
        shutil.copytree(moved, report.parent)  # the module's other tests may still read it
