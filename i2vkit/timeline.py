"""The batch timeline: each job's phases (waiting here, fal's queue, running on fal,
downloading) from the ledger's timestamps, drawn as an inline-SVG Gantt chart or as text,
with the median time per phase and a one-line guess at the bottleneck.

Pure functions over ledger rows, like :mod:`i2vkit.gallery` (whose escaping it uses).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from .gallery import esc
from .job_status import UNSUCCESSFUL
from .refs import image_name
from .runs import Stretch, clip, duration_words, stretches
from .timestamps import parse_timestamp

#: (phase, colour, legend text)
PHASES = [
    ("local", "#bdbdbd", "waiting here (upload, concurrency slot)"),
    ("queue", "#f0a030", "in fal's queue"),
    ("run", "#3a7bd5", "running on fal"),
    ("queue+run", "#8e7cc3", "queued or running (not told apart)"),
    ("download", "#43a047", "downloading"),
]
PHASE_COLOR = {p: c for p, c, _ in PHASES}


@dataclass
class JobTimes:
    job_id: Any
    label: str  # job, image, model and take: what a row of the chart names
    status: str
    segments: list[tuple[str, float, float]]  # (phase, start s, end s) from the batch start
    error: str | None = None
    owner: str | None = None  # the run that submitted it (see i2vkit.runs)
    prompt: str = ""


def job_phases(rows: Iterable[Mapping[str, Any]]) -> tuple[list[JobTimes], datetime | None]:
    """Per job, the seconds spent in each phase, measured from the first job's creation.

    created -> submitted: waiting here; submitted -> started: fal's queue;
    started -> completed: running; completed -> downloaded: downloading. When a job
    was never seen running (it finished between two polls) queue and run are one span.
    """
    rows = list(rows)
    stamps = [parse_timestamp(r.get("created_at")) for r in rows]
    known = [s for s in stamps if s]
    if not known:
        return [], None
    t0 = min(known)

    def sec(t: datetime | None) -> float | None:
        return None if t is None else (t - t0).total_seconds()

    out = []
    for r in rows:
        c = sec(parse_timestamp(r.get("created_at")))
        s = sec(parse_timestamp(r.get("submitted_at")))
        st = sec(parse_timestamp(r.get("started_at")))
        done = sec(parse_timestamp(r.get("completed_at")))
        dl = sec(parse_timestamp(r.get("downloaded_at")))
        segs: list[tuple[str, float, float]] = []
        if c is not None and s is not None:
            segs.append(("local", c, s))
        if s is not None and st is not None:
            segs.append(("queue", s, st))
            if done is not None:
                segs.append(("run", st, done))
        elif s is not None and done is not None:
            segs.append(("queue+run", s, done))
        if done is not None and dl is not None:
            segs.append(("download", done, dl))
        segs = [(p, a, max(a, b)) for p, a, b in segs]
        out.append(
            JobTimes(
                r.get("id"),
                row_label(r),
                r.get("status") or "",
                segs,
                r.get("error"),
                r.get("owner"),
                str(r.get("prompt") or ""),
            )
        )
    return out, t0


def row_label(row: Mapping[str, Any]) -> str:
    """``12 dawn.jpg · wan · take 2``: which job, of which image, on which model, which take."""
    name = image_name(str(row.get("image_path") or "?"))
    parts = [
        f"{row.get('id')} {name}",
        str(row.get("model") or "?"),
        f"take {row.get('take') or 1}",
    ]
    return " · ".join(parts)


@dataclass
class Chart:
    """The jobs' times with the pauses between runs cut out: each job's segments measured
    from its run's start (see :mod:`i2vkit.runs`), and the stretches of the axis."""

    times: list[JobTimes]
    stretches: list[Stretch]
    t0: datetime | None

    @property
    def active(self) -> float:
        return sum(s.seconds for s in self.stretches)


def chart(rows: Iterable[Mapping[str, Any]]) -> Chart:
    """The rows' phases, run by run (a job's wait here starts no earlier than its run)."""
    times, t0 = job_phases(rows)
    parts = stretches([t.owner for t in times], [t.segments for t in times])
    order = {}
    for n, s in enumerate(parts):
        for i in s.jobs:
            times[i].segments = clip(times[i].segments, s.start)
            order[i] = n
    ranked = sorted(range(len(times)), key=lambda i: (order.get(i, len(parts)), i))
    for s in parts:  # the jobs' indexes in the run-by-run order
        s.jobs = {ranked.index(i) for i in s.jobs}
    return Chart([times[i] for i in ranked], parts, t0)


def _nice_step(span: float, ticks: int = 6) -> float:
    raw = max(span, 1e-3) / ticks
    magnitude = 10 ** int(f"{raw:e}".split("e")[1])
    for m in (1, 2, 5, 10):
        if raw <= m * magnitude:
            return m * magnitude
    return 10 * magnitude


def peak_in_flight(times: Sequence[JobTimes]) -> int:
    """Most jobs submitted to fal and not yet finished at the same moment."""
    events = []
    for t in times:
        fal = [(a, b) for p, a, b in t.segments if p in ("queue", "run", "queue+run")]
        if fal:
            events.append((min(a for a, _ in fal), 1))
            events.append((max(b for _, b in fal), -1))
    peak = current = 0
    for _, delta in sorted(events, key=lambda e: (e[0], e[1])):
        current += delta
        peak = max(peak, current)
    return peak


PHASE_NAMES = {
    "local": "waiting here",
    "queue": "fal queue",
    "run": "running",
    "queue+run": "queued or running",
    "download": "downloading",
}


def timeline_summary(rows: Iterable[Mapping[str, Any]], concurrency: int | None = None) -> str:
    """The runs, the median time per phase and a guess at the bottleneck (a line each), from
    what the ledger says happened (a pause between runs is no phase of any job)."""
    c = chart(rows)
    if not c.times:
        return "no timing data"
    per: dict[str, list[float]] = {}
    for t in c.times:
        for p, a, b in t.segments:
            per.setdefault(p, []).append(b - a)
    med = {p: statistics.median(v) for p, v in per.items()}
    peak = peak_in_flight(c.times)
    parts = [f"{PHASE_NAMES[p]}: median {med[p]:.1f}s" for p, _, _ in PHASES if p in med]
    at_once = f"at most {peak} job{'' if peak == 1 else 's'} at fal at once"
    line = "; ".join(parts) + f"; {at_once} (times from status polls)"
    return "\n".join(
        x for x in (runs_line(c), line + ".", _hint(med, peak, concurrency) + ".") if x
    )


def runs_line(c: Chart) -> str:
    """``2 runs: run 1 at 10:02:03 (9 jobs, 41 s); run 2 9 min 4 s later (9 jobs, 40 s); the
    pause between them is left out of the chart.`` Empty for a batch of one run."""
    if len(c.stretches) < 2:
        return ""
    said = []
    for n, s in enumerate(c.stretches, 1):
        what = f"{len(s.jobs)} job{'' if len(s.jobs) == 1 else 's'}, {duration_words(s.seconds)}"
        if n == 1:
            when = f"at {_clock(c.t0, s.start)}" if c.t0 else ""
        else:
            when = f"{duration_words(s.start - c.stretches[n - 2].end)} later"
        said.append(f"run {n} {when} ({what})")
    return (
        f"{len(c.stretches)} runs: " + "; ".join(said) + "; the pauses between runs are left out."
    )


def _clock(t0: datetime | None, seconds: float) -> str:
    """The local time (to the second) ``seconds`` after ``t0``."""
    if t0 is None:
        return f"{seconds:g}s"
    return (t0 + timedelta(seconds=seconds)).astimezone().strftime("%H:%M:%S")


def _hint(med: Mapping[str, float], peak: int, concurrency: int | None) -> str:
    """Which phase took the time, and what that means for the user."""
    local, queue = med.get("local", 0.0), med.get("queue", 0.0)
    run = med.get("run", med.get("queue+run", 0.0))
    download = med.get("download", 0.0)
    phases = [("local", local), ("queue", queue), ("run", run), ("download", download)]
    biggest = max(phases, key=lambda x: x[1])[0]
    if biggest == "local":
        hint = "jobs mostly waited here before submission"
        if concurrency and peak >= concurrency:
            return hint + f": the batch's concurrency ({concurrency}) was the limit, raise it"
        return hint + " (uploads or the request rate)"
    if biggest == "queue":
        return (
            "jobs mostly waited in fal's queue: your account's concurrency on fal was the "
            "bottleneck (more local concurrency will not help)"
        )
    if biggest == "run":
        return "jobs mostly ran: the model's own run time dominates"
    return "downloads dominated: the network to fal's CDN was the bottleneck"


class Axis:
    """Seconds to x: the stretches side by side at one scale, a :data:`GAP_PX` break between
    two (where the pause is marked)."""

    GAP_PX = 64

    def __init__(self, parts: Sequence[Stretch], left: float, width: float):
        self.parts = list(parts) or [Stretch(0.0, 1.0)]
        room = max(40.0, width - self.GAP_PX * (len(self.parts) - 1))
        self.scale = room / max(sum(s.seconds for s in self.parts), 1e-3)
        self.lefts = []
        x = left
        for s in self.parts:
            self.lefts.append(x)
            x += s.seconds * self.scale + self.GAP_PX

    def __call__(self, sec: float) -> float:
        for s, x0 in zip(reversed(self.parts), reversed(self.lefts), strict=True):
            if sec >= s.start:
                return x0 + (min(sec, s.end) - s.start) * self.scale
        return self.lefts[0]


def timeline_svg(
    rows: Iterable[Mapping[str, Any]],
    *,
    width: int = 760,
    label_width: int = 230,
    limit: int = 300,
    concurrency: int | None = None,
) -> str:
    """A Gantt chart (inline SVG, no matplotlib) of each job's phases, run by run, with the
    pauses between runs cut out and marked; then a legend and the caption."""
    rows = list(rows)
    c = chart(rows)
    if not c.times:
        return "<div>no jobs with timing data</div>"
    shown = c.times[:limit]
    row_h = 14 if len(shown) <= 60 else 8
    top = 34 if len(c.stretches) > 1 else 22
    height = top + row_h * len(shown) + 8
    x = Axis(c.stretches, label_width, width - label_width - 10)
    svg = [
        f'<svg class="i2v-timeline" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" '
        'style="font:10px system-ui,sans-serif;background:#fff;max-width:100%;height:auto">',
        *_time_axis(x, c, top, height),
    ]
    for i, t in enumerate(shown):
        svg.extend(_job_row(t, x, y=top + i * row_h, row_h=row_h, label_width=label_width))
    svg.append("</svg>")
    more = (
        f"<div>... {len(c.times) - limit} more jobs not drawn.</div>"
        if len(c.times) > limit
        else ""
    )
    started = f"t=0 is {_clock(c.t0, 0.0)} local time" if c.t0 else ""
    caption = timeline_summary(rows, concurrency)
    return (
        '<div class="i2v-timeline-box" style="font:12px system-ui,sans-serif">'
        + "".join(svg)
        + more
        + f"<div style='margin:4px 0'>{_legend()}</div>"
        + "".join(f"<div>{esc(line)}</div>" for line in caption.splitlines())
        + f"<div style='color:#666'>{esc(started)}</div></div>"
    )


def _time_axis(x: Axis, c: Chart, top: int, height: int) -> list[str]:
    """Per stretch: grid lines and second labels at a round step (from the stretch's start,
    whose local time heads it when there are several); between two, the pause, marked."""
    out = []
    several = len(c.stretches) > 1
    for n, (s, x0) in enumerate(zip(x.parts, x.lefts, strict=True), 1):
        step = _nice_step(max(s.seconds, 1e-3), ticks=max(1, int(s.seconds * x.scale // 90)))
        tick = 0.0
        while tick <= s.seconds + 1e-9:
            xx = x(s.start + tick)
            out.append(
                f'<line x1="{xx:.1f}" y1="{top - 4}" x2="{xx:.1f}" y2="{height - 6}" '
                'stroke="#eee" stroke-width="1"/>'
                f'<text x="{xx:.1f}" y="{top - 8}" text-anchor="middle" fill="#555">'
                f"{tick:g}s</text>"
            )
            tick += step
        if several:
            out.append(
                f'<text x="{x0:.1f}" y="10" fill="#333" font-weight="600">run {n} · '
                f"{_clock(c.t0, s.start)}</text>"
            )
        if n > 1:
            out.append(_pause_mark(x0 - x.GAP_PX, s.start - c.stretches[n - 2].end, top, height))
    return out


def _pause_mark(left: float, seconds: float, top: int, height: int) -> str:
    """The cut between two runs: a hatched band and how long nothing ran."""
    words = f"{duration_words(seconds)} between runs: not drawn"
    mid = left + Axis.GAP_PX / 2
    return (
        f'<g class="i2v-pause"><rect x="{left + 8:.1f}" y="{top - 4}" width="{Axis.GAP_PX - 16}" '
        f'height="{height - top - 2}" fill="#f4f4f4" stroke="#bbb" stroke-dasharray="3 2"/>'
        f'<text x="{mid:.1f}" y="{top + 8}" text-anchor="middle" fill="#777">⋯</text>'
        f'<text x="{mid:.1f}" y="10" text-anchor="middle" fill="#777">'
        f"+{esc(duration_words(seconds))}</text><title>{esc(words)}</title></g>"
    )


def _job_row(t: JobTimes, x: Axis, *, y: int, row_h: int, label_width: int) -> list[str]:
    """One job's row: its label, a bar per phase (with a tooltip), a cross if it failed."""
    color = "#c62828" if t.status in UNSUCCESSFUL else "#333"
    label = t.label if len(t.label) <= 40 else t.label[:39] + "…"
    out = [
        f'<text x="{label_width - 6}" y="{y + row_h - 3}" text-anchor="end" '
        f'fill="{color}">{esc(label)}<title>{esc(t.label)}: {esc(t.prompt)}</title></text>'
    ]
    for phase, a, b in t.segments:
        w = max(1.0, x(b) - x(a))
        tip = f"job {t.job_id}: {PHASE_NAMES[phase]} {b - a:.2f}s"
        out.append(
            f'<rect x="{x(a):.1f}" y="{y + 1}" width="{w:.1f}" height="{row_h - 2}" '
            f'fill="{PHASE_COLOR[phase]}" data-phase="{phase}"><title>{esc(tip)}</title></rect>'
        )
    if t.status in UNSUCCESSFUL:
        last = max((b for _, _, b in t.segments), default=0.0)
        out.append(
            f'<text x="{x(last) + 3:.1f}" y="{y + row_h - 3}" fill="#c62828">&#x2715;'
            f"<title>{esc(t.error or t.status)}</title></text>"
        )
    return out


def _legend() -> str:
    """A colour swatch and its meaning per phase."""
    return " ".join(
        f'<span style="white-space:nowrap"><span style="display:inline-block;width:10px;'
        f'height:10px;background:{c};margin:0 3px 0 8px"></span>{esc(text)}</span>'
        for _, c, text in PHASES
    )


def timeline_text(rows: Iterable[Mapping[str, Any]], concurrency: int | None = None) -> str:
    c = chart(rows)
    lines = []
    for t in c.times:
        phases = ", ".join(f"{p} {b - a:.1f}s" for p, a, b in t.segments)
        lines.append(f"{t.label:<36} {t.status:<10} {phases}")
    lines.append(timeline_summary(rows, concurrency))
    return "\n".join(lines)
