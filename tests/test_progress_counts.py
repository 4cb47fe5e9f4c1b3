"""Progress tells the truth (issue 22): counters from the ledger, and no rate for uploads the
cache answered in an instant."""

from __future__ import annotations

import io

from i2vkit.engine import Progress
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
