"""The per-model summary of a batch, from the ledger: which model did it, how fast, how dear.

Comparing models is the point of a multi-model batch, so each model gets its own line:
jobs, videos, failures, the mean time a request waited in fal's queue (submitted ->
started) and ran (started -> completed), and what a clip and a second of video cost.
It reads only the ledger, so the end of a run, `i2vkit status` and notebook 02 show
the same numbers for any batch, however many runs it took.
"""

from __future__ import annotations

import dataclasses
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InputError
from .jobs import JobStatus
from .models import get_model
from .money import plural, usd
from .planning.identity import row_axes
from .planning.options import model_of_row, row_cost
from .rows import JobRow
from .store import Store
from .timestamps import seconds_between


@dataclass(frozen=True)
class ModelSummary:
    model: str
    endpoint_id: str
    jobs: int
    done: int  # videos downloaded
    failed: int
    mean_queue_s: float | None  # None: no job of this model has both times yet
    mean_run_s: float | None
    cost_per_clip: float | None  # estimated US$ of one job; None: price unknown
    cost_per_second: float | None  # estimated US$ per second of downloaded video
    video_seconds: float  # of the downloaded videos

    def line(self) -> str:
        def secs(value: float | None) -> str:
            return "-" if value is None else f"{value:.1f}s"

        clip = usd(self.cost_per_clip)
        per_s = "" if self.cost_per_second is None else f", {usd(self.cost_per_second)}/s of video"
        return (
            f"{self.model}: {plural(self.jobs, 'job')}, {plural(self.done, 'video')}, "
            f"{self.failed} failed; "
            f"mean {secs(self.mean_queue_s)} in queue, {secs(self.mean_run_s)} running; "
            f"{clip} per clip{per_s}"
        )


def per_model(store: Store, batch_id: str) -> list[ModelSummary]:
    """One :class:`ModelSummary` per model of the batch, in the order the jobs were planned.

    Cost per clip is the mean estimated price of the model's jobs (each with its own
    options); cost per second divides the estimated price of the downloaded videos by
    their length, read from the mp4 files themselves (the requested duration when a
    file cannot be read).
    """
    batch = store.get_batch(batch_id)
    if batch is None:
        raise InputError(f"No batch {batch_id!r} in {store.path}; `i2vkit status` lists them.")
    groups: dict[str, list[JobRow]] = {}
    for row in sorted(store.jobs(batch["id"]), key=lambda r: r["id"]):
        groups.setdefault(row["endpoint_id"], []).append(row)
    return [_summary(endpoint, rows) for endpoint, rows in groups.items()]


def per_value(store: Store, batch_id: str) -> list[tuple[str, str, ModelSummary]]:
    """The per-model summary broken down by each value of each varied option and prompt
    variable: (axis, value, that model's jobs with that value), in the planned order. Empty
    for a batch that varied nothing."""
    batch = store.get_batch(batch_id)
    if batch is None:
        raise InputError(f"No batch {batch_id!r} in {store.path}; `i2vkit status` lists them.")
    groups: dict[tuple[str, str, str], list[JobRow]] = {}
    for row in sorted(store.jobs(batch["id"]), key=lambda r: r["id"]):
        axes = row_axes(row)
        for axis, value in [*axes["options"].items(), *axes["prompt"].items()]:
            groups.setdefault((axis, str(value), row["endpoint_id"]), []).append(row)
    order = list(dict.fromkeys(k[0] for k in groups))
    by_axis = sorted(groups, key=lambda k: order.index(k[0]))  # stable: values as first seen
    return [(axis, value, _summary(e, groups[(axis, value, e)])) for axis, value, e in by_axis]


def per_value_rows(store: Store, batch_id: str) -> list[ModelSummary]:
    """:func:`per_value` as rows of a per-model table, each named ``model · axis=value``."""
    return [
        dataclasses.replace(m, model=f"{m.model} · {axis}={value}")
        for axis, value, m in per_value(store, batch_id)
    ]


def _summary(endpoint: str, rows: list[JobRow]) -> ModelSummary:
    """One model's jobs (all of them, or those with one varied value) summed up."""
    try:
        model = model_of_row(rows[0])
    except InputError:
        model = get_model(endpoint)
    costs = [row_cost(r, model) for r in rows]
    known = [c for c in costs if c is not None]
    per_clip = round(sum(known) / len(known), 4) if known and len(known) == len(costs) else None
    done = [(r, c) for r, c in zip(rows, costs, strict=True) if r["status"] == JobStatus.DOWNLOADED]
    seconds = [video_seconds(r) for r, _ in done]
    paid = [c for _, c in done]
    per_second = None
    if done and all(c is not None for c in paid) and all(s for s in seconds):
        per_second = round(sum(paid) / sum(seconds), 4)  # type: ignore[arg-type]
    return ModelSummary(
        model=rows[0]["model"],
        endpoint_id=endpoint,
        jobs=len(rows),
        done=len(done),
        failed=sum(r["status"] == JobStatus.FAILED for r in rows),
        mean_queue_s=_mean(seconds_between(r["submitted_at"], r["started_at"]) for r in rows),
        mean_run_s=_mean(seconds_between(r["started_at"], r["completed_at"]) for r in rows),
        cost_per_clip=per_clip,
        cost_per_second=per_second,
        video_seconds=round(sum(s or 0.0 for s in seconds), 3),
    )


def _mean(values: Any) -> float | None:
    got = [v for v in values if v is not None]
    return round(sum(got) / len(got), 3) if got else None


def video_seconds(row: JobRow) -> float | None:
    """A downloaded job's length: the mp4's own (its `mvhd` box), else the requested
    ``duration`` option (``"5"`` or ``"5s"``), else None."""
    path = row.get("local_file")
    if path:
        length = mp4_duration(Path(path))
        if length:
            return length
    import json

    duration = json.loads(row.get("options") or "{}").get("duration")
    try:
        return float(str(duration).rstrip("s")) if duration is not None else None
    except ValueError:
        return None


def mp4_duration(path: Path) -> float | None:
    """Seconds from an mp4's movie header (`moov/mvhd`), or None when it has none."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return _find_mvhd(data, 0, len(data))


def _find_mvhd(data: bytes, start: int, end: int) -> float | None:
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        header = 8
        if size == 1 and pos + 16 <= end:
            size, header = struct.unpack(">Q", data[pos + 8 : pos + 16])[0], 16
        elif size == 0:
            size = end - pos
        if size < header:
            return None
        if kind == b"moov":
            return _find_mvhd(data, pos + header, min(pos + size, end))
        if kind == b"mvhd":
            body = data[pos + header : pos + size]
            if len(body) < 20:
                return None
            if body[0] == 1 and len(body) >= 32:
                scale, duration = struct.unpack(">IQ", body[20:32])
            else:
                scale, duration = struct.unpack(">II", body[12:20])
            return round(duration / scale, 3) if scale else None
        pos += size
    return None
