"""What fal may bill for a job of the ledger: the one rule every money line uses.

fal bills a request for the time it runs, never for its wait in the queue. So of the
requests a job has or had at fal:

* cancelled while it waited in fal's queue: it never ran, fal does not bill it;
* cancelled while running: fal may bill the time it ran;
* failed with fal's 5xx (its runner broke, it timed out): not billed; any other
  failure (a 4xx: a content checker, an input fal refused after queueing): may be;
* queued, running, completed or downloaded: billed (or will be once it runs);
* `submitting` with its arguments but no request_id: fal's answer never came; counted
  (fal may have it) and named.

Requests a retry replaced are kept as a count (``earlier_requests``, billable ones only).
The progress lines, the summary, the plan's earlier-runs line, ``i2vkit status``, the
report and the notebook's cost line all count through :func:`tally`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .job_status import JobStatus
from .money import plural, sum_costs, usd

#: error_type of a job cancelled while queued (never ran, never billed)
CANCELLED_QUEUED = "cancelled"
#: error_type of a job cancelled while it ran (fal may bill the time it ran)
CANCELLED_RUNNING = "cancelled_running"
#: error_type of a job fal failed with a 5xx answer (fal does not bill it)
SERVER_ERROR = "server_error"
#: error_type of a job fal could not start before its start deadline (never ran, not billed)
START_TIMEOUT = "request_timeout"
#: failures fal does not bill
UNBILLED_FAILURES = (SERVER_ERROR, START_TIMEOUT)


def _unanswered(row: Mapping[str, Any]) -> bool:
    """Sent (its exact arguments were claimed for the POST) but fal's answer never came."""
    return (
        row.get("status") == JobStatus.SUBMITTING
        and not row.get("request_id")
        and bool(row.get("arguments"))
    )


def _current_billable(row: Mapping[str, Any], unanswered: bool = True) -> bool:
    """Does the job's current request count as one fal may bill? A POST whose answer never
    came does (`unanswered`): fal may have it, and an estimate never counts low."""
    status, kind = row.get("status"), row.get("error_type")
    if not row.get("request_id"):
        return unanswered and _unanswered(row)
    if status == JobStatus.CANCELLED:
        return kind == CANCELLED_RUNNING
    if status == JobStatus.FAILED:
        return kind not in UNBILLED_FAILURES
    return status != JobStatus.PENDING


def billable_requests(row: Mapping[str, Any], *, unanswered: bool = True) -> int:
    """How many requests of this ledger row fal may bill (its current one and the earlier
    ones a retry or a resubmit replaced). ``unanswered=False`` leaves out a POST whose
    answer never came (a job released after fal's history showed it never arrived)."""
    return int(row.get("earlier_requests") or 0) + _current_billable(row, unanswered)


@dataclass(frozen=True)
class Tally:
    """A set of ledger rows in money's vocabulary: what fal may bill, and what was left out."""

    jobs: int = 0
    billable: int = 0  # requests fal may bill
    usd: float | None = 0.0  # their estimated price; None: some price unknown
    cancelled_queued: int = 0  # not billed
    cancelled_running: int = 0  # counted in billable
    failed_server: int = 0  # fal's 5xx: not billed
    unknown: int = 0  # submitting without an answer: fal may have it (counted in billable)

    def left_out(self) -> str:
        """``12 cancelled while queued and 1 failed on fal's side (5xx) not billed``."""
        parts = []
        if self.cancelled_queued:
            parts.append(f"{self.cancelled_queued} cancelled while queued")
        if self.failed_server:
            parts.append(f"{self.failed_server} failed on fal's side (5xx)")
        out = f"{' and '.join(parts)} not billed" if parts else ""
        if self.unknown:
            sent = f"{self.unknown} of them sent without an answer: fal may have it"
            out = f"{out}; {sent}" if out else sent
        return out

    def describe(self) -> str:
        """``US$ 3.20 (8 requests; 12 cancelled while queued not billed)``."""
        also = self.left_out()
        running = (
            f", {self.cancelled_running} of them cancelled while running"
            if self.cancelled_running
            else ""
        )
        return f"{usd(self.usd)} ({plural(self.billable, 'request')}{running}" + (
            f"; {also})" if also else ")"
        )

    def minus(self, other: Tally) -> Tally:
        """What was added since `other` (the same rows read earlier)."""
        money = None if self.usd is None or other.usd is None else round(self.usd - other.usd, 4)
        return Tally(
            self.jobs,
            max(0, self.billable - other.billable),
            money if money is None else max(0.0, money),
            max(0, self.cancelled_queued - other.cancelled_queued),
            max(0, self.cancelled_running - other.cancelled_running),
            max(0, self.failed_server - other.failed_server),
            self.unknown,
        )


def tally(
    rows: Iterable[Mapping[str, Any]], price: Callable[[Any], float | None] | None = None
) -> Tally:
    """The rows' billable requests and their price (`price` of a row; None: unknown)."""
    jobs = billable = queued = running = server = unknown = 0
    costs: list[float | None] = []
    for r in rows:
        jobs += 1
        n = billable_requests(r)
        billable += n
        if n:
            p = price(r) if price is not None else None
            costs.append(None if p is None else p * n)
        status, kind = r.get("status"), r.get("error_type")
        if status == JobStatus.CANCELLED and r.get("request_id"):
            queued += kind != CANCELLED_RUNNING
            running += kind == CANCELLED_RUNNING
        server += (
            status == JobStatus.FAILED and kind in UNBILLED_FAILURES and bool(r.get("request_id"))
        )
        unknown += _unanswered(r)
    money = sum_costs(costs) if costs else 0.0
    return Tally(jobs, billable, money, queued, running, server, unknown)
