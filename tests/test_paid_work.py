"""Paid work is never lost to another batch: two ledgers writing to one output folder each
get their own videos (issue 14, item 1). The real CLI in a subprocess, a live emulator."""

from __future__ import annotations

import re
from pathlib import Path

from clitools import bulk_args, cli_env, ledger, playable, run_cli, videos, write_prompts
from helpers import make_images


def test_two_ledgers_in_one_output_folder_never_adopt_each_others_videos(tmp_path, emulator):
    """`I2VKIT_DB=a.db i2vkit bulk ... --output-dir shared-out` (9 jobs), then a 6 x 10 batch
    with `I2VKIT_DB=b.db` into the same folder, then the first command again with a third
    ledger c.db (the same batch id as a.db's, a new ledger). Job ids start at 1 in every
    ledger; each ledger's jobs still get videos of their own, downloaded from their own
    requests: 9 + 60 + 9 files, no row pointing at another ledger's file."""
    shared = tmp_path / "shared-out"
    small, big = tmp_path / "small", tmp_path / "big"
    make_images(small, 3)
    make_images(big, 6, start=10)
    three = write_prompts(tmp_path / "three.txt", 3)
    ten = write_prompts(tmp_path / "ten.txt", 10)
    runs = [("a.db", three, small, 9), ("b.db", ten, big, 60), ("c.db", three, small, 9)]
    files_of: dict[str, set[Path]] = {}
    downloads = 0
    for db_name, prompts, images, jobs in runs:
        db = tmp_path / db_name
        env = cli_env(tmp_path, emulator.url, I2VKIT_DB=str(db))
        out = run_cli(bulk_args(prompts, images, "--output-dir", str(shared)), env, tmp_path)
        assert out.returncode == 0, out.stdout + out.stderr
        assert f"{jobs} downloaded" in out.stdout, out.stdout
        rows = ledger(db, "SELECT id, status, local_file, video_size FROM jobs")
        assert len(rows) == jobs and {r[1] for r in rows} == {"downloaded"}
        mine = {Path(r[2]) for r in rows}
        assert len(mine) == jobs, f"{db_name}: two jobs share a file"
        for other, theirs in files_of.items():
            assert not mine & theirs, f"{db_name} adopted {other}'s videos: {sorted(mine & theirs)}"
        for _, _, local, size in rows:
            assert Path(local).parent == shared and Path(local).stat().st_size == size
        files_of[db_name] = mine
        downloads += jobs
        assert emulator.stats()["downloads"] == downloads, "a job was skipped, not downloaded"
    on_disk = videos(shared)
    assert len(on_disk) == 9 + 60 + 9
    assert set(on_disk) == set().union(*files_of.values())
    assert all(playable(f) for f in sorted(files_of["b.db"])[:3])
    batch_a = ledger(tmp_path / "a.db", "SELECT id FROM batches")[0][0]
    batch_b = ledger(tmp_path / "b.db", "SELECT id FROM batches")[0][0]
    assert batch_a != batch_b
    name = re.compile(
        r"^(\d+)_wan-2\.1_(\d{8}T\d{6}Z)(-\d+)?\.mp4$"
    )  # as the PRD says (clitools runs wan-2.1)
    for db_name, files in files_of.items():
        ids = {
            int(r[0]): Path(r[1]).name
            for r in ledger(tmp_path / db_name, "SELECT id, local_file FROM jobs")
        }
        assert all(name.match(f.name) for f in files), sorted(files)
        assert all(name.match(n).group(1) == str(i) for i, n in ids.items())
