"""Progress tells the truth (issue 22): counters from the ledger, and no rate for uploads the
cache answered in an instant."""

from __future__ import annotations

import io
import threading
from dataclasses import replace

from helpers import make_images

from i2vkit.engine import Progress, run_batch
from i2vkit.planning import BatchRequest
from i2vkit.reporters import ProgressLines, TerminalBars, progress_line


def test_counters_put_every_job_in_exactly_one_place():
    p = Progress()
    statuses = ["pending", "submitting", "queued", "running", "completed", "downloaded"]
    p.count([*statuses, "failed", "cancelled", "cancelled"])
    counted = (p.pending, p.queued, p.running, p.completed, p.downloaded, p.failed, p.cancelled)
    assert counted == (1, 2, 1, 1, 1, 1, 2)
    assert sum(counted) == p.total == 9 and p.submitted == 8
    assert "pending 1  queued 2  running 1  completed 1  downloaded 1/9  failed 1  cancelled 2" in (
        progress_line(p)
    )


def test_cached_uploads_show_no_rate():
    """100 images found in the upload cache count at once: no `93206.76image/s`."""
    out = io.StringIO()
    bars = TerminalBars(out)
    bars(Progress(total=100, uploads_total=100, pending=100))
    bars(Progress(total=100, uploads_total=100, uploaded=100, pending=100))
    bars.close()
    text = out.getvalue()
    assert "100/100" in text and "/s" not in text, text


def test_a_stop_is_printed_at_once_in_a_log():
    out = io.StringIO()
    lines = ProgressLines(out, interval=3600)
    lines(Progress(total=2, pending=2))
    lines(Progress(total=2, queued=2, state="stopping", message="stopping: asking fal"))
    lines(Progress(total=2, cancelled=2, state="stopped"))
    printed = out.getvalue().splitlines()
    assert len(printed) == 3, printed
    assert printed[1].startswith("stopping: ") and printed[2].startswith("stopped: "), printed


def test_a_resumed_batch_counts_its_earlier_jobs_from_the_first_line(settings, emulator, tmp_path):
    """Continuing a batch with one more take: the first counters already show the earlier
    run's videos (the ledger has them), not every job pending; a stop before any photo is
    through still sums up the batch's jobs in the ledger."""
    make_images(tmp_path / "pics", 3)
    request = BatchRequest(
        images_dir=str(tmp_path / "pics"),
        prompts=["a slow zoom"],
        model="wan-2.1",
        output_dir=str(tmp_path / "out"),
    )
    first = run_batch(request, settings)
    assert [j.status for j in first.jobs] == ["downloaded"] * 3
    seen: list[tuple[int, int, int]] = []
    stop = threading.Event()

    def progress(p: Progress) -> None:
        seen.append((p.downloaded, p.pending, p.total, p.uploads_total))
        stop.set()  # Ctrl-C at the first line, before any photo went through

    again = run_batch(replace(request, takes=2), settings, progress=progress, stop=stop)
    assert seen[0] == (3, 3, 6, 3), seen  # and `uploaded 0/3`, not `0/0`
    assert again.interrupted
    statuses = [j.status for j in again.jobs]
    assert statuses.count("downloaded") == 3, again.summary()
    assert set(statuses) <= {"downloaded", "pending"}, again.summary()  # recorded, not sent
    first_line = again.summary().splitlines()[0]
    words = {"downloaded": "3 downloaded", "pending": f"{len(statuses) - 3} pending"}
    listed = ", ".join(words[s] for s in sorted(set(statuses)))
    assert first_line.endswith(f": {len(statuses)} jobs, {listed}"), first_line
    assert emulator.stats()["submits"]["total"] == 3  # nothing new was sent
