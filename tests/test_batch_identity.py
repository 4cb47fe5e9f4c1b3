"""Which batch a run joins, through the real CLI against the emulator (billed mode).

A batch is what the command names: a second prompts file on the same folder is a new
batch; the same command again continues its batch, and the plan's first line says which;
`--batch NAME` names a batch and every command that takes a batch takes the name; a
ledger written by the previous version (schema 7, batch ids without the prompts, video
names with the batch id) resumes without paying again. Planning itself reaches for
nothing: with a week-old catalogue copy and fal unreachable, `plan_batch` plans from the
copy without a single connection.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from clitools import bulk_args, cli_env, ledger, run_cli, videos, write_prompts
from helpers import TEST_KEY, make_images

from i2vkit.catalogue import snapshot
from i2vkit.config import Settings
from i2vkit.planning import BatchRequest, plan_batch
from i2vkit.store import Store
from i2vkit.workspace import Workspace

WAN = 0.40  # US$ per wan video (the snapshot's price)


def i2vkit(*args: str) -> list[str]:
    return [sys.executable, "-m", "i2vkit", *args]


def first_line_after_banner(output: str) -> str:
    return next(ln for ln in output.splitlines() if "batch" in ln and not ln.startswith("DEMO"))


def test_a_second_prompts_file_is_a_new_batch_and_a_rerun_continues(tmp_path, emulator):
    make_images(tmp_path / "pics", 2)
    env = cli_env(tmp_path, emulator.url)
    a = write_prompts(tmp_path / "A.txt", 2)
    b = tmp_path / "B.txt"
    b.write_text("a crane shot over the harbour\n")
    first = run_cli(bulk_args(a, tmp_path / "pics"), env, tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    a_id = re.search(r"^new batch (\w+)$", first.stdout, re.M)
    assert a_id, first.stdout
    submits = emulator.stats()["submits"]["total"]
    second = run_cli(bulk_args(b, tmp_path / "pics"), env, tmp_path)
    assert second.returncode == 0, second.stdout + second.stderr
    b_id = re.search(r"^new batch (\w+)$", second.stdout, re.M)
    assert b_id and b_id.group(1) != a_id.group(1), second.stdout
    assert emulator.stats()["submits"]["total"] - submits == 2  # B's 2 jobs, nothing of A's
    assert "earlier runs: US$ 0.00 (0 jobs)" in second.stdout
    rows = ledger(tmp_path / "ledger.db", "SELECT batch_id, prompt FROM jobs")
    assert {p for bid, p in rows if bid == b_id.group(1)} == {"a crane shot over the harbour"}
    assert len([1 for bid, _ in rows if bid == a_id.group(1)]) == 4

    again = run_cli(bulk_args(a, tmp_path / "pics"), env, tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    expected = f"continues batch {a_id.group(1)} (4 earlier jobs: 4 videos, US$ {4 * WAN:.2f})"
    assert first_line_after_banner(again.stdout) == expected
    assert "this run: US$ 0.00 (0 jobs)" in again.stdout
    with a.open("a") as fh:  # a line added to the same file: the same batch, 2 more jobs
        fh.write("a third prompt\n")
    more = run_cli(bulk_args(a, tmp_path / "pics"), env, tmp_path)
    assert first_line_after_banner(more.stdout).startswith(f"continues batch {a_id.group(1)}")
    assert f"this run: US$ {2 * WAN:.2f} (2 jobs)" in more.stdout
    status = run_cli(i2vkit("status", b_id.group(1)), env, tmp_path)
    assert "harbour" in status.stdout and "prompt 1" not in status.stdout


def test_a_named_batch_works_in_every_command(tmp_path, emulator):
    make_images(tmp_path / "pics", 2)
    env = cli_env(tmp_path, emulator.url)
    emulator.configure(fail_rate=1.0)  # every job fails: retry has work
    prompts = write_prompts(tmp_path / "p.txt", 1)
    named = ("--batch", "harbour")
    run = run_cli(bulk_args(prompts, tmp_path / "pics", *named), env, tmp_path)
    assert run.returncode == 1, run.stdout + run.stderr
    batch_id = ledger(tmp_path / "ledger.db", "SELECT id FROM batches WHERE name = 'harbour'")
    assert len(batch_id) == 1 and f"new batch harbour [{batch_id[0][0]}]" in run.stdout
    emulator.configure(fail_rate=0.0)
    retry = run_cli(i2vkit("retry", "harbour", "--yes", "--no-progress"), env, tmp_path)
    assert retry.returncode == 0, retry.stdout + retry.stderr
    assert "retry of batch harbour" in retry.stdout
    assert len(videos(tmp_path / "videos")) == 2
    other = tmp_path / "other.txt"
    other.write_text("another prompt\n")  # another file, the same name: the same batch
    more = run_cli(bulk_args(other, tmp_path / "pics", *named), env, tmp_path)
    assert more.returncode == 0 and "continues batch harbour" in more.stdout, more.stdout
    status = run_cli(i2vkit("status", "harbour"), env, tmp_path)
    assert status.returncode == 0 and "another prompt" in status.stdout
    job = ledger(tmp_path / "ledger.db", "SELECT id FROM jobs WHERE status = 'downloaded'")[0][0]
    keep = run_cli(i2vkit("keep", "harbour", str(job)), env, tmp_path)
    assert keep.returncode == 0, keep.stdout + keep.stderr
    export = run_cli(i2vkit("export", "harbour", "--keepers", "kept"), env, tmp_path)
    assert export.returncode == 0 and len(videos(tmp_path / "kept")) == 1, export.stdout
    report = run_cli(i2vkit("report", "harbour", "--out", "rep"), env, tmp_path)
    assert report.returncode == 0 and (tmp_path / "rep" / "index.html").is_file()
    cancel = run_cli(i2vkit("cancel", "harbour"), env, tmp_path)
    assert cancel.returncode == 0, cancel.stdout + cancel.stderr
    unknown = run_cli(i2vkit("status", "no-such-batch"), env, tmp_path)
    assert unknown.returncode == 2


def test_a_ledger_of_the_previous_version_resumes(tmp_path, emulator):
    """A batch recorded by the previous version: schema 7 (no batch names or identities), the
    batch id made without the prompts, videos named with the batch id. The same command
    continues it: nothing submitted, nothing downloaded, the old files kept."""
    make_images(tmp_path / "pics", 2)
    env = cli_env(tmp_path, emulator.url)
    prompts = write_prompts(tmp_path / "p.txt", 2)
    done = run_cli(bulk_args(prompts, tmp_path / "pics"), env, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    db = tmp_path / "ledger.db"
    old_id = hashlib.sha256(  # the previous version's formula for a one-model folder batch
        json.dumps(
            [
                emulator.url,
                "fal-ai/wan-i2v",
                {},
                "all",
                str(tmp_path / "pics"),
                str(tmp_path / "videos"),
            ],
            sort_keys=True,
        ).encode()
    ).hexdigest()[:12]
    as_the_previous_version_left_it(db, old_id)
    before = emulator.stats()
    again = run_cli(bulk_args(prompts, tmp_path / "pics"), env, tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert first_line_after_banner(again.stdout).startswith(f"continues batch {old_id} (4 ")
    after = emulator.stats()
    assert after["submits"]["total"] == before["submits"]["total"]
    assert after["downloads"] == before["downloads"]
    assert all("_" + old_id in p.name for p in videos(tmp_path / "videos"))
    assert ledger(db, "SELECT id, identity IS NOT NULL FROM batches") == [(old_id, 1)]
    other = tmp_path / "q.txt"  # from now on the batch is p.txt's: another file is new
    other.write_text("a new prompt\n")
    new = run_cli(bulk_args(other, tmp_path / "pics"), env, tmp_path)
    assert re.search(r"^new batch \w+$", new.stdout, re.M), new.stdout


def as_the_previous_version_left_it(db: Path, old_id: str) -> None:
    """The ledger as schema 7 wrote it: the batch under its old id, without name and
    identity, and its videos under the old names (with the batch id)."""
    conn = sqlite3.connect(db)
    with conn:
        (new_id,) = conn.execute("SELECT id FROM batches").fetchone()
        conn.execute("UPDATE batches SET id = ? WHERE id = ?", [old_id, new_id])
        conn.execute("UPDATE jobs SET batch_id = ? WHERE batch_id = ?", [old_id, new_id])
        for job_id, path in conn.execute("SELECT id, local_file FROM jobs").fetchall():
            old = Path(path).with_name(Path(path).stem + f"_{old_id}.mp4")
            Path(path).rename(old)
            conn.execute("UPDATE jobs SET local_file = ? WHERE id = ?", [str(old), job_id])
        conn.execute("DROP INDEX idx_batches_name")
        conn.execute("ALTER TABLE batches DROP COLUMN name")
        conn.execute("ALTER TABLE batches DROP COLUMN identity")
        conn.execute("DELETE FROM _i2vkit_migrations WHERE version > 7")
    conn.close()
    assert ledger(db, "SELECT MAX(version) FROM _i2vkit_migrations") == [(7,)]


@pytest.fixture
def connections():
    """Counts every socket connect this process attempts (an audit hook: the real calls)."""
    seen: list[object] = []
    if not hasattr(sys, "_i2vkit_connects"):
        box: list[list[object] | None] = [None]

        def hook(event: str, args: tuple) -> None:
            if event == "socket.connect" and box[0] is not None:
                box[0].append(args[1])

        sys.addaudithook(hook)
        sys._i2vkit_connects = box  # type: ignore[attr-defined]
    box = sys._i2vkit_connects  # type: ignore[attr-defined]
    box[0] = seen
    yield seen
    box[0] = None


def test_planning_reaches_for_nothing(tmp_path, connections):
    """A week-old catalogue copy and I2VKIT_FAL_URL at a closed port: opening the workspace
    tries fal once and says in one line which copy is used; planning connects to nothing
    and plans from that copy (a price only the copy has shows in the plan)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"  # closed once the block ends
    settings = Settings(fal_key=TEST_KEY, fal_url=url, db_path=tmp_path / "l.db")
    copy = snapshot().data
    entry = next(e for e in copy["endpoints"] if e["endpoint_id"] == "fal-ai/wan-i2v")
    assert entry["price"]["rates"][0]["usd"] != 7.25
    entry["price"]["rates"] = [{"when": {}, "usd": 7.25}]  # only the copy says US$ 7.25
    read_at = datetime.now(UTC) - timedelta(days=8)
    with Store(settings.db_path) as store:
        store.save_catalogue(url, read_at.isoformat(), json.dumps(copy))
    make_images(tmp_path / "pics", 1)
    request = BatchRequest(tmp_path / "pics", prompts=["a slow pan"], model="wan-2.1")
    with Workspace.open(settings) as ws:
        assert connections, "opening the workspace did not try to refresh the stale copy"
        assert ws.note and "could not refresh" in ws.note
        assert f"read {read_at:%Y-%m-%d}" in ws.note  # which copy, with its date
        connections.clear()
        plan = plan_batch(request, ws)
        assert connections == []
    assert plan.estimated_cost == pytest.approx(7.25)
