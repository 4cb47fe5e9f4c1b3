"""The batch timeline: each job's phases (waiting here, fal's queue, running on fal,
downloading) from the ledger's timestamps, drawn as an inline-SVG Gantt chart or as text,
with the median time per phase and a one-line guess at the bottleneck.

Pure functions over ledger rows, like :mod:`i2vkit.gallery` (whose escaping it uses).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .gallery import esc
from .job_status import UNSUCCESSFUL
from .refs import image_name
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
    label: str
    status: str
    segments: list[tuple[str, float, float]]  # (phase, start s, end s) from the batch start
    error: str | None = None


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
        name = image_name(str(r.get("image_path") or "?"))
        out.append(
            JobTimes(
                r.get("id"), f"{r.get('id')} {name}", r.get("status") or "", segs, r.get("error")
            )
        )
    return out, t0


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


def timeline_summary(rows: Iterable[Mapping[str, Any]], concurrency: int | None = None) -> str:
    """Median time per phase and a one-line guess at the bottleneck."""
    times, _ = job_phases(rows)
    if not times:
        return "no timing data"
    per: dict[str, list[float]] = {}
    for t in times:
        for p, a, b in t.segments:
            per.setdefault(p, []).append(b - a)
    med = {p: statistics.median(v) for p, v in per.items()}
    peak = peak_in_flight(times)
    names = {
        "local": "waiting here",
        "queue": "fal queue",
        "run": "running",
        "queue+run": "queued or running",
        "download": "downloading",
    }
    parts = [f"{names[p]}: median {med[p]:.1f}s" for p, _, _ in PHASES if p in med]
    line = "; ".join(parts) + f"; at most {peak} jobs at fal at once (times from status polls)"
    local, queue = med.get("local", 0.0), med.get("queue", 0.0)
    run = med.get("run", med.get("queue+run", 0.0))
    download = med.get("download", 0.0)
    biggest = max(
        [
            ("local", local),
            ("queue", queue),
            ("run", run),
            ("download", download),
        ],
        key=lambda x: x[1],
    )[0]
    if biggest == "local":
        hint = "jobs mostly waited here before submission"
        if concurrency and peak >= concurrency:
            hint += f": the batch's concurrency ({concurrency}) was the limit, raise it"
        else:
            hint += " (uploads or the request rate)"
    elif biggest == "queue":
        hint = (
            "jobs mostly waited in fal's queue: your account's concurrency on fal was the "
            "bottleneck (more local concurrency will not help)"
        )
    elif biggest == "run":
        hint = "jobs mostly ran: the model's own run time dominates"
    else:
        hint = "downloads dominated: the network to fal's CDN was the bottleneck"
    return f"{line}. {hint}."


def timeline_svg(
    rows: Iterable[Mapping[str, Any]],
    *,
    width: int = 720,
    label_width: int = 170,
    limit: int = 300,
    concurrency: int | None = None,
) -> str:
    """A Gantt chart (inline SVG, no matplotlib) of each job's phases, plus a legend."""
    rows = list(rows)
    times, t0 = job_phases(rows)
    if not times:
        return "<div>no jobs with timing data</div>"
    shown = times[:limit]
    end = max((b for t in shown for _, _, b in t.segments), default=0.0) or 1.0
    row_h = 14 if len(shown) <= 60 else 8
    top = 22
    chart_w = width - label_width - 10
    height = top + row_h * len(shown) + 8

    def x(sec: float) -> float:
        return label_width + chart_w * sec / end

    svg = [
        f'<svg class="i2v-timeline" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" '
        'style="font:10px system-ui,sans-serif;background:#fff">',
        *_time_axis(x, end, top, height),
    ]
    for i, t in enumerate(shown):
        svg.extend(_job_row(t, x, y=top + i * row_h, row_h=row_h, label_width=label_width))
    svg.append("</svg>")
    more = f"<div>... {len(times) - limit} more jobs not drawn.</div>" if len(times) > limit else ""
    started = f" (t=0 is {t0.isoformat(timespec='seconds')})" if t0 else ""
    return (
        '<div class="i2v-timeline-box" style="font:12px system-ui,sans-serif">'
        + "".join(svg)
        + more
        + f"<div style='margin:4px 0'>{_legend()}</div>"
        + f"<div>{esc(timeline_summary(rows, concurrency))}{esc(started)}</div></div>"
    )


def _time_axis(x: Callable[[float], float], end: float, top: int, height: int) -> list[str]:
    """The vertical grid lines and their second labels, at a round step, 0 to `end`."""
    out = []
    step = _nice_step(end)
    tick = 0.0
    while tick <= end + 1e-9:
        xx = x(tick)
        out.append(
            f'<line x1="{xx:.1f}" y1="{top - 4}" x2="{xx:.1f}" y2="{height - 6}" '
            'stroke="#eee" stroke-width="1"/>'
            f'<text x="{xx:.1f}" y="{top - 8}" text-anchor="middle" fill="#555">'
            f"{tick:g}s</text>"
        )
        tick += step
    return out


def _job_row(
    t: JobTimes, x: Callable[[float], float], *, y: int, row_h: int, label_width: int
) -> list[str]:
    """One job's row: its label, a bar per phase (with a tooltip), a cross if it failed."""
    color = "#c62828" if t.status in UNSUCCESSFUL else "#333"
    out = [
        f'<text x="{label_width - 6}" y="{y + row_h - 3}" text-anchor="end" '
        f'fill="{color}">{esc(t.label[:28])}</text>'
    ]
    for phase, a, b in t.segments:
        w = max(1.0, x(b) - x(a))
        tip = f"job {t.job_id}: {phase} {b - a:.2f}s (from {a:.2f}s to {b:.2f}s)"
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
    times, _ = job_phases(rows)
    lines = []
    for t in times:
        phases = ", ".join(f"{p} {b - a:.1f}s" for p, a, b in t.segments)
        lines.append(f"{t.label:<30} {t.status:<10} {phases}")
    lines.append(timeline_summary(rows, concurrency))
    return "\n".join(lines)
