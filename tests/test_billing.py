"""What fal may bill (issue 22): one rule for every money line (i2vkit/billing.py)."""

from __future__ import annotations

import sqlite3

from helpers import make_images, plan_in

from i2vkit.billing import billable_requests, tally
from i2vkit.engine import run_batch
from i2vkit.planning import BatchRequest


def row(status, request_id="r", error_type=None, earlier=0, arguments=None):
    return {
        "status": status,
        "request_id": request_id,
        "error_type": error_type,
        "earlier_requests": earlier,
        "arguments": arguments,
    }


def test_the_billable_rule():
    assert billable_requests(row("queued")) == 1  # fal bills it once it runs
    assert billable_requests(row("downloaded", earlier=2)) == 3  # and the retried ones
    assert billable_requests(row("cancelled", error_type="cancelled")) == 0  # never ran
    assert billable_requests(row("cancelled", error_type="cancelled_running")) == 1
    assert billable_requests(row("failed", error_type="server_error")) == 0  # fal's 5xx
    assert billable_requests(row("failed", error_type="content_policy_violation")) == 1  # 4xx
    assert billable_requests(row("pending", request_id=None)) == 0
    unanswered = row("submitting", request_id=None, arguments="{}")
    assert billable_requests(unanswered) == 1  # fal may have it
    assert billable_requests(unanswered, unanswered=False) == 0
    t = tally(
        [
            row("downloaded"),
            row("cancelled", error_type="cancelled"),
            row("failed", error_type="server_error"),
            unanswered,
        ],
        lambda r: 0.4,
    )
    assert (t.billable, t.usd) == (2, 0.8)
    assert t.describe() == (
        "US$ 0.80 (2 requests; 1 cancelled while queued and 1 failed on fal's side (5xx) not "
        "billed; 1 of them sent without an answer: fal may have it)"
    )


def test_jobs_fal_failed_with_a_5xx_are_not_counted_as_spent(tmp_path, emulator, settings):
    """Every job fails with fal's 503 (a runner that disconnected): the summary counts
    nothing fal may bill, and says the 4 failures were left out."""
    emulator.configure(fail_rate=1.0, fail_kind="runner")
    make_images(tmp_path / "pics", 2)
    plan = plan_in(BatchRequest(tmp_path / "pics", prompts="one\ntwo"), settings)
    result = run_batch(plan, settings)
    summary = result.summary()
    assert (
        "this run: US$ 0.00 (0 requests fal may bill; 4 failed on fal's side (5xx) not billed)"
        in (summary)
    ), summary
    assert "batch total: US$ 0.00" in summary, summary
    with sqlite3.connect(settings.db_path) as db:
        kinds = [r[0] for r in db.execute("SELECT error_type FROM jobs WHERE status = 'failed'")]
    assert kinds == ["server_error"] * 4
