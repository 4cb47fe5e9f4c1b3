"""When to ask fal about a job next, so polling never gets an account rate-limited."""

from __future__ import annotations

import statistics


class PollSchedule:
    """A job is expected done one typical run time after it starts, so that is when it
    is polled, then every eighth of that.

    The typical run time is fal's own `metrics.inference_time` (the median of this
    batch's finished jobs). A job seen waiting in fal's queue backs off (1 s, growing
    to 30 s) and is polled sooner the nearer it gets to the front. Before three jobs
    have finished there is no typical time yet, and polls start at 0.5 s and grow by
    half each time.
    """

    def __init__(self) -> None:
        self.run_times: list[float] = []

    def observe(self, seconds: float) -> None:
        self.run_times.append(seconds)
        if len(self.run_times) > 200:
            del self.run_times[:100]

    @property
    def typical(self) -> float | None:
        return statistics.median(self.run_times) if len(self.run_times) >= 3 else None

    def next_delay(
        self,
        state: str,
        since_submit: float,
        since_start: float | None,
        polls: int,
        queue_position: int | None,
    ) -> float:
        typical = self.typical
        if state == "IN_QUEUE" and polls > 0 and queue_position:
            base = min(30.0, 1.0 * 1.5 ** min(polls, 10))
            if typical:
                base = min(base, max(1.0, typical * queue_position / 4))
            return base
        elapsed = since_start if since_start is not None else since_submit
        if typical:
            remaining = typical - elapsed
            if remaining > 0.05:
                return min(remaining + 0.05, 60.0)
            return min(max(typical / 8, 0.1), 15.0)
        return min(15.0, 0.5 * 1.5 ** min(polls, 10))
