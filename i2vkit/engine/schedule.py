"""When to ask fal about a job next, so polling never gets an account rate-limited.

Polling is the fallback: a job is followed by fal's status stream when it can be
(follow.py). When it cannot, the schedule below decides when to look.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from typing import Any

from ..store import Store

SEED_FROM_LEDGER = 200  # the last this many finished jobs of a model make its expected time


class PollSchedule:
    """A job is expected done one typical run time after it starts, so that is when it
    is polled, then every eighth of that.

    The typical run time is the median of this batch's finished jobs (fal's own
    `metrics.inference_time`) once three have finished; before that it is the `expected`
    run time the schedule was seeded with (the catalogue's estimate for the model, or the
    median of its finished jobs in the ledger), so even the first jobs are not polled
    blind. Only with neither do polls start at 0.5 s and grow by half each time. A job
    seen waiting in fal's queue backs off (1 s, growing to 30 s) and is polled sooner the
    nearer it gets to the front.
    """

    def __init__(self, expected: float | None = None) -> None:
        self.run_times: list[float] = []
        self.expected = expected if expected and expected > 0 else None

    def seed(self, expected: float | None) -> None:
        """The model's expected run time, used until this batch has its own typical time."""
        self.expected = expected if expected and expected > 0 else None

    def observe(self, seconds: float) -> None:
        self.run_times.append(seconds)
        if len(self.run_times) > 200:
            del self.run_times[:100]

    @property
    def typical(self) -> float | None:
        if len(self.run_times) >= 3:
            return statistics.median(self.run_times)
        return self.expected

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


def expected_run_seconds(
    entry: Mapping[str, Any] | None, store: Store, endpoint_id: str
) -> float | None:
    """How long a job of this model is expected to run: the catalogue entry's
    `duration_estimate` (seconds) when it has one, else the median run (started to
    completed) of this endpoint's finished jobs in the ledger, else None."""
    estimate = (entry or {}).get("duration_estimate")
    if isinstance(estimate, int | float) and not isinstance(estimate, bool) and estimate > 0:
        return float(estimate)
    runs = store.run_seconds(endpoint_id, SEED_FROM_LEDGER)
    return statistics.median(runs) if runs else None


class Schedules:
    """One :class:`PollSchedule` per endpoint of a run (a batch may compare models, whose
    run times differ), each seeded with that model's expected run time on first use."""

    def __init__(self) -> None:
        self.by_endpoint: dict[str, PollSchedule] = {}

    def get(self, endpoint_id: str, entry: Mapping[str, Any] | None, store: Store) -> PollSchedule:
        schedule = self.by_endpoint.get(endpoint_id)
        if schedule is None:
            expected = expected_run_seconds(entry, store, endpoint_id)
            schedule = self.by_endpoint[endpoint_id] = PollSchedule(expected)
        return schedule


REFUSALS_FOR_THE_BATCH = 3  # refused streams after which the whole batch polls


class StreamPolicy:
    """Whether to follow jobs by fal's status stream: yes until it has been refused
    (404/405) :data:`REFUSALS_FOR_THE_BATCH` times in a run; from then on every job of
    the batch polls (a host without streams costs each job one refused request, not
    one per job forever). A stream that drops or stalls only sends its own job to polling.
    """

    def __init__(self) -> None:
        self.refusals = 0
        self.opened = 0

    @property
    def usable(self) -> bool:
        return self.refusals < REFUSALS_FOR_THE_BATCH

    def refused(self) -> None:
        self.refusals += 1
