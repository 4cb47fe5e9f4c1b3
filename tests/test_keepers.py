"""Keepers (issue 16): picked with `i2vkit keep`, kept in the ledger across processes, exported
under readable names that never overwrite anything."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from clitools import cli_env, ledger, run_cli
from helpers import make_images

from i2vkit.keepers import export, keepers, mark
from i2vkit.store import Store


def i2vkit(*args: str) -> list[str]:
    return [sys.executable, "-m", "i2vkit", *args]


def run_batch(tmp_path: Path, emulator) -> tuple[dict, str, list[tuple]]:
    make_images(tmp_path / "pics", 2)
    (tmp_path / "p.txt").write_text("A slow pan, over the sea!\n", encoding="utf-8")
    env = cli_env(tmp_path, emulator.url)
    args = i2vkit("bulk", str(tmp_path / "p.txt"), "--images-dir", str(tmp_path / "pics"),
                  "--model", "wan", "--takes", "2", "--yes", "--no-progress")  # fmt: skip
    done = run_cli(args, env, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = ledger(
        tmp_path / "ledger.db",
        "SELECT id, batch_id, image_path, take, local_file FROM jobs ORDER BY id",
    )
    return env, rows[0][1], rows


def test_keepers_survive_a_new_process_and_export_readably(tmp_path, emulator):
    env, batch, rows = run_batch(tmp_path, emulator)
    img1_take2 = next(r for r in rows if r[2].endswith("img1.png") and r[3] == 2)
    img2_take1 = next(r for r in rows if r[2].endswith("img2.png") and r[3] == 1)
    kept = run_cli(i2vkit("keep", batch[:6], str(img1_take2[0]), str(img2_take1[0])), env, tmp_path)
    assert kept.returncode == 0, kept.stdout + kept.stderr
    # another process (a new kernel, the notebook) reads them from the ledger
    with Store(tmp_path / "ledger.db") as store:
        assert {j["id"] for j in keepers(store, batch)} == {img1_take2[0], img2_take1[0]}
    undo = run_cli(i2vkit("keep", batch, str(img2_take1[0]), "--undo"), env, tmp_path)
    assert undo.returncode == 0
    assert ledger(tmp_path / "ledger.db", "SELECT id FROM jobs WHERE keeper = 1") == [
        (img1_take2[0],)
    ]

    out = tmp_path / "picks"
    exported = run_cli(i2vkit("export", batch, "--keepers", str(out)), env, tmp_path)
    assert exported.returncode == 0, exported.stdout + exported.stderr
    files = sorted(p.name for p in out.iterdir() if p.suffix == ".mp4")
    assert files == ["img1_a-slow-pan-over-the-sea_wan_take2.mp4"]
    assert (out / "img1_a-slow-pan-over-the-sea_wan_take2.json").is_file()  # its recipe
    assert (out / files[0]).read_bytes() == Path(img1_take2[4]).read_bytes()

    again = run_cli(i2vkit("export", batch, "--keepers", str(out)), env, tmp_path)
    assert again.returncode == 0 and "1 already there" in again.stdout
    mp4s = sorted(p.name for p in out.iterdir() if p.suffix == ".mp4")
    assert mp4s == files  # the same video is not copied twice


def test_a_name_taken_by_another_file_gets_a_suffix(tmp_path, emulator):
    _env, batch, rows = run_batch(tmp_path, emulator)
    out = tmp_path / "picks"
    out.mkdir()
    taken = out / "img1_a-slow-pan-over-the-sea_wan_take1.mp4"
    taken.write_bytes(b"someone else's file")
    with Store(tmp_path / "ledger.db") as store:
        first = next(r for r in rows if r[2].endswith("img1.png") and r[3] == 1)
        mark(store, batch, [first[0]])
        report = export(store, batch, out)
    assert taken.read_bytes() == b"someone else's file"  # never overwritten
    assert [p.name for p in report.written] == ["img1_a-slow-pan-over-the-sea_wan_take1-2.mp4"]
    assert report.written[0].read_bytes() == Path(first[4]).read_bytes()


def test_unknown_job_ids_are_refused_and_nothing_changes(tmp_path, emulator):
    env, batch, rows = run_batch(tmp_path, emulator)
    out = run_cli(i2vkit("keep", batch, str(rows[0][0]), "9999", "x"), env, tmp_path)
    assert out.returncode == 2
    assert f"Batch {batch} has no job 'x', 9999" in out.stderr
    assert ledger(tmp_path / "ledger.db", "SELECT id FROM jobs WHERE keeper = 1") == []


def test_a_keeper_without_its_video_is_reported(tmp_path, emulator):
    env, batch, rows = run_batch(tmp_path, emulator)
    os.remove(rows[0][4])
    assert run_cli(i2vkit("keep", batch, str(rows[0][0])), env, tmp_path).returncode == 0
    out = run_cli(i2vkit("export", batch, "--keepers", str(tmp_path / "k")), env, tmp_path)
    assert out.returncode == 1
    assert f"job {rows[0][0]} has no video on disk" in out.stdout
