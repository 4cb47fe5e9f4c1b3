"""The spend cap while a batch runs: every submit POST is counted against ``--max-cost``.

The plan was checked against the cap before anything was uploaded, but a run can
submit more than its plan: a job resubmitted after its image was uploaded again, a
request the endpoint forgot, `i2vkit retry`. So the cap is kept here too, at the one
place money is committed (:mod:`.submit`): the job that would take this run over the
cap is not submitted, nor is any after it; they stay pending (not failed) for a run
with a higher cap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..money import usd
from ..rows import JobRow


@dataclass
class SpendCap:
    """Every submit POST of a run, counted at its job's own price (models and per-row
    options differ), against the cap."""

    cap: float | None  # US$ this run may add; None: no cap
    per_video: float | None = None  # a job's price when `price` is not set; None: unknown
    posted: int = 0  # submit POSTs sent this run (each may be billed)
    spent: float = 0.0  # their estimated US$ (those with a known price)
    unknown: int = 0  # POSTs whose price is unknown
    reached: str | None = None  # why submitting stopped, once it did
    price: Callable[[JobRow], float | None] | None = None  # a ledger row's price

    def _cost(self, job: JobRow | None) -> float | None:
        if self.price is not None and job is not None:
            return self.price(job)
        return self.per_video

    @property
    def amount(self) -> float | None:
        """What this run's POSTs cost, estimated; None when some price is unknown."""
        return None if self.unknown else round(self.spent, 4)

    def allows_another(self, job: JobRow | None = None) -> bool:
        """May this job (one more) be submitted? Says why not, once, in `reached`."""
        if self.cap is None:
            return True
        if self.reached is None:
            cost = self._cost(job)
            if cost is None:
                self.reached = (
                    f"the price is unknown, so no job can be proven to fit the spend cap of "
                    f"{usd(self.cap)}"
                )
            elif self.spent + cost > self.cap + 1e-9:
                self.reached = (
                    f"the next job would take this run to {usd(self.spent + cost)}"
                    f", over the spend cap of {usd(self.cap)} ({self.posted} submitted, "
                    f"{usd(self.spent)})"
                )
        return self.reached is None

    def count(self, job: JobRow | None = None) -> None:
        self.posted += 1
        cost = self._cost(job)
        if cost is None:
            self.unknown += 1
        else:
            self.spent += cost

    def uncount(self, job: JobRow | None = None) -> None:
        """fal refused the POST outright (no job was created): it costs nothing."""
        self.posted -= 1
        cost = self._cost(job)
        if cost is None:
            self.unknown -= 1
        else:
            self.spent -= cost
