"""The runs of a batch, read back from its jobs' times: which jobs each run handled and when.

A batch can take several runs: takes added later, an interrupted run resumed, failed jobs
retried. Between two runs nothing happens, so a chart of the batch on one time axis is
mostly empty (a 9-minute pause makes every bar a sliver) and a job planned in the first run
but submitted in the second seems to have "waited here" the whole time. So the timeline
draws each run on its own stretch of the axis and measures a job's wait from its run's
start.

A run is known by the ``owner`` the ledger writes when a process claims a job (one per
run); jobs without one (an older ledger, a job never submitted) join the run whose time
they fall in. Runs whose times overlap (two processes on one batch) or follow closely
(less than :data:`MIN_GAP_S` apart) are one stretch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

#: Pauses shorter than this are drawn as they are; longer ones are cut out of the axis.
MIN_GAP_S = 10.0

Segment = tuple[str, float, float]  # (phase, start s, end s), seconds from the batch's start


@dataclass
class Stretch:
    """One run (or runs that overlap) on the time axis: seconds from the batch's start."""

    start: float
    end: float
    jobs: set[int] = field(default_factory=set)  # indexes into the jobs given

    @property
    def seconds(self) -> float:
        return self.end - self.start


def stretches(owners: Sequence[str | None], segments: Sequence[Sequence[Segment]]) -> list[Stretch]:
    """The batch's runs on the time axis, in time order, from each job's run ``owner`` and its
    phase ``segments`` (the ``local`` one, waiting here, starting when the job was planned).

    A job's wait here counts towards its run only from the end of the previous stretch: a
    job planned in one run and submitted in a later one did not wait through the pause."""
    groups: dict[str | None, list[int]] = {}
    for i, owner in enumerate(owners):
        if segments[i]:
            groups.setdefault(owner, []).append(i)
    spans = []
    for owner, jobs in groups.items():
        if owner is None:
            spans += [_span([i], segments) for i in jobs]
        else:
            spans.append(_span(jobs, segments))
    spans.sort(key=lambda s: s.start)
    out: list[Stretch] = []
    for span in spans:
        if out and span.start - out[-1].end < MIN_GAP_S:
            out[-1].end = max(out[-1].end, span.end)
            out[-1].jobs |= span.jobs
        else:
            out.append(span)
    for n, stretch in enumerate(out):
        floor = out[n - 1].end if n else float("-inf")
        planned_here = [
            a
            for i in stretch.jobs
            for p, a, _ in segments[i]
            if p == "local" and floor <= a < stretch.start
        ]
        stretch.start = min([stretch.start, *planned_here])
    return out


def _span(jobs: list[int], segments: Sequence[Sequence[Segment]]) -> Stretch:
    """The stretch of ``jobs``: from their first submission (or planning, for a job never
    submitted) to their last moment."""
    busy = [(a, b) for i in jobs for p, a, b in segments[i] if p != "local"]
    if not busy:
        busy = [(a, b) for i in jobs for _, a, b in segments[i]]
    return Stretch(min(a for a, _ in busy), max(b for _, b in busy), set(jobs))


def clip(segments: Sequence[Segment], start: float) -> list[Segment]:
    """``segments`` from ``start`` on (a wait begun before the job's run is cut there)."""
    return [(p, max(a, start), b) for p, a, b in segments if b >= start]


def duration_words(seconds: float) -> str:
    """``2.5 s``, ``45 s``, ``9 min 12 s``, ``2 h 5 min``: a pause as a person says it."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s" if s % 60 else f"{s // 60} min"
    return f"{s // 3600} h {s % 3600 // 60} min"
