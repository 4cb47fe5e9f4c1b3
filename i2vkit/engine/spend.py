"""The spend cap while a batch runs: every submit POST is counted against ``--max-cost``.

The plan was checked against the cap before anything was uploaded, but a run can
submit more than its plan: a job resubmitted after its image was uploaded again, a
request the endpoint forgot, `i2vkit retry`. So the cap is kept here too, at the one
place money is committed (:mod:`.submit`): the job that would take this run over the
cap is not submitted, nor is any after it; they stay pending (not failed) for a run
with a higher cap.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..plan import usd


@dataclass
class SpendCap:
    cap: float | None  # US$ this run may add; None: no cap
    per_video: float | None  # None: the price is unknown
    posted: int = 0  # submit POSTs sent this run (each may be billed)
    reached: str | None = None  # why submitting stopped, once it did

    def allows_another(self) -> bool:
        """May one more job be submitted? Says why not, once, in `reached`."""
        if self.cap is None:
            return True
        if self.reached is None:
            if self.per_video is None:
                self.reached = (
                    f"the price is unknown, so no job can be proven to fit the spend cap of "
                    f"{usd(self.cap)}"
                )
            elif (self.posted + 1) * self.per_video > self.cap + 1e-9:
                self.reached = (
                    f"the next job would take this run to {usd((self.posted + 1) * self.per_video)}"
                    f", over the spend cap of {usd(self.cap)} ({self.posted} submitted, "
                    f"{usd(self.posted * self.per_video)})"
                )
        return self.reached is None

    def count(self) -> None:
        self.posted += 1

    def uncount(self) -> None:
        """fal refused the POST outright (no job was created): it costs nothing."""
        self.posted -= 1
