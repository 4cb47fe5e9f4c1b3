"""What a run costs: this run against earlier runs of its batch, and the spend cap.

All amounts are estimates from published prices, None when a price is unknown ("unknown"
is never "free"). Asking, the spend cap and the summary all use what THIS run adds:
re-running a finished batch adds nothing, so it is neither refused for money nor charged
again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from ..billing import billable_requests, tally
from ..errors import SpendCapError
from ..jobs import JobStatus
from ..money import plural, sum_costs, usd
from ..rows import JobRow
from .identity import folder_variant_of_row, variant_of_row


class Job(Protocol):
    """A planned job as the cost needs it: what identifies it, and its price."""

    @property
    def identity(self) -> tuple[str, str, str, int, str]: ...

    cost: float | None


#: Ledger statuses a re-run of the same command submits (again).
SUBMITTED_BY_A_RERUN = (JobStatus.PENDING, JobStatus.CANCELLED)


@dataclass(frozen=True)
class CostBreakdown:
    """A run's cost in three parts: what THIS run adds (jobs it will submit: never
    submitted, or to be submitted again), what earlier runs of the same batch already
    spent (jobs with a request at fal), and the total.

    Jobs may have different prices (several models, per-row options), so the parts are
    sums of each job's price; ``per_video`` is the price when they all share one.
    """

    per_video: float | None
    new_jobs: int
    earlier_jobs: int
    new_usd: float | None | bool = False  # False: per_video x new_jobs
    earlier_usd: float | None | bool = False
    earlier_requests: int = 0  # more than earlier_jobs when failed requests were retried
    earlier_videos: int = 0  # earlier jobs whose video was downloaded
    earlier_left_out: str = ""  # what earlier runs sent that fal does not bill (billing.py)
    this_left_out: str = ""  # likewise for this run, once it ran

    def _times(self, jobs: int, given: float | None | bool) -> float | None:
        if jobs == 0:
            return 0.0  # nothing submitted costs nothing, whatever the price
        if given is not False:
            return None if given is None else round(float(given), 4)
        return None if self.per_video is None else round(self.per_video * jobs, 4)

    @property
    def this_run(self) -> float | None:
        return self._times(self.new_jobs, self.new_usd)

    @property
    def earlier(self) -> float | None:
        return self._times(self.earlier_jobs, self.earlier_usd)

    @property
    def total(self) -> float | None:
        if self.this_run is None or self.earlier is None:
            return None
        return round(self.this_run + self.earlier, 4)

    def describe(self, *, done: bool = False) -> str:
        """``this run: US$ 2.40 (6 jobs); earlier runs: US$ 3.60 (9 jobs); total US$ 6.00``."""
        verb = "submitted" if done else "to submit"

        def part(amount: float | None, jobs: int, requests: int = 0) -> str:
            also = f", {plural(requests, 'request')}" if requests > jobs else ""
            return f"{usd(amount)} ({plural(jobs, 'job')}{also})"

        total = "unknown" if self.total is None else usd(self.total)
        if done:  # after a run: requests fal may bill, and what was left out
            this = f"{usd(self.this_run)} ({plural(self.new_jobs, 'request')} fal may bill"
            this += f"; {self.this_left_out})" if self.this_left_out else ")"
        else:
            this = f"{part(self.this_run, self.new_jobs)} {verb}"
        earlier = part(self.earlier, self.earlier_jobs, self.earlier_requests)
        if self.earlier_left_out:
            earlier = f"{earlier[:-1]}; {self.earlier_left_out})"
        return f"this run: {this}; earlier runs: {earlier}; batch total: {total}"


def requests_of(row: JobRow) -> int:
    """How many requests a ledger row has or had at fal that fal may bill (billing.py)."""
    return billable_requests(row)


def new_jobs(jobs: Sequence[Job], rows: Sequence[JobRow], shots: bool) -> list[Job]:
    """The planned jobs a run submits: no row yet, or a row a re-run submits again.

    Jobs are matched to rows by image, prompt, model, take, (for shot lists) the row's
    own options, (for --vary) the values of its varied options, and occurrence: what the job key is made of, without hashing images.
    """
    by_identity: dict[tuple, list[JobRow]] = {}
    for r in sorted(rows, key=lambda r: r["id"]):
        variant = variant_of_row(r) if shots else folder_variant_of_row(r)
        ident = (r["image_path"], r["prompt"], r["endpoint_id"], r["take"], variant)
        by_identity.setdefault(ident, []).append(r)
    seen: dict[tuple, int] = {}
    new: list[Job] = []
    for j in jobs:
        occurrence = seen[j.identity] = seen.get(j.identity, -1) + 1
        same = by_identity.get(j.identity, [])
        if occurrence >= len(same) or same[occurrence]["status"] in SUBMITTED_BY_A_RERUN:
            new.append(j)
    return new


def breakdown(
    jobs: Sequence[Job],
    rows: Sequence[JobRow],
    price: Callable[[JobRow], float | None],
    *,
    retry: bool = False,
    shots: bool = False,
) -> CostBreakdown:
    """Split planned jobs' cost into this run and earlier runs, from the batch's ledger rows.

    Earlier runs spent on every request the batch's jobs have or had at fal, each at its
    job's price (``price``). A retry's jobs are all new."""
    spent = [(r, n) for r in rows if (n := requests_of(r))]
    left_out = tally(rows).left_out()
    earlier_usd = sum_costs(None if (p := price(r)) is None else p * n for r, n in spent)
    new = list(jobs) if retry else new_jobs(jobs, rows, shots)
    prices = {j.cost for j in jobs}
    return CostBreakdown(
        prices.pop() if len(prices) == 1 else None,
        len(new),
        len(spent),
        sum_costs(j.cost for j in new),
        earlier_usd,
        sum(n for _, n in spent),
        sum(r["status"] == JobStatus.DOWNLOADED for r in rows),
        earlier_left_out=left_out,
    )


def check_spend_cap(cap: float | None, cost: CostBreakdown, unknown: str) -> None:
    """Refuse, before anything is uploaded, a run that may add more than ``--max-cost``.

    An unknown price cannot be proven to fit, so with a cap it is refused too; a run
    that adds no job (a finished batch run again) always fits. ``unknown`` names the
    endpoints whose price is unknown, for the message.
    """
    if cap is None or cost.new_jobs == 0:
        return
    jobs = plural(cost.new_jobs, "job")
    if cost.this_run is None:
        raise SpendCapError(
            f"The spend cap is {usd(cap)} (--max-cost / I2VKIT_MAX_COST), but the price of "
            f"{unknown} is unknown, so i2vkit cannot tell whether {jobs} fit. "
            "Nothing was uploaded or submitted: check the price on fal.ai, then run again "
            "with --max-cost none (or unset I2VKIT_MAX_COST) to go ahead without a cap."
        )
    if cost.this_run > cap + 1e-9:
        raise SpendCapError(
            f"This run may add an estimated {usd(cost.this_run)} ({jobs}"
            + (f" at {usd(cost.per_video)}" if cost.per_video is not None else "")
            + f"), above the spend cap of {usd(cap)} "
            "(--max-cost / I2VKIT_MAX_COST). Nothing was uploaded or submitted: raise the "
            "cap, or run fewer images or prompts."
        )
