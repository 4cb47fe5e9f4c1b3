"""The small tables the notebooks show: a run's summary, the batches, the files, the models,
what fal billed.

Why tables and not lines: a summary line such as ``cost (estimates): this run: US$ 16.27
(9 jobs) submitted; earlier runs: ...`` wraps wherever the output area ends, and
JupyterLab's text outputs break anywhere, even inside ``US$``. A table puts each fact in its
own cell, under a header a person reads ("Created", not ``created_at``), with times in
the user's own time zone to the second, money that never wraps, and text cut only
between words. Each table has a text twin for the exported script and logs.

Pure functions over ledger rows and results (no widgets), like :mod:`i2vkit.gallery`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .gallery import esc
from .money import plural, sum_costs, usd, usd_difference
from .refs import image_name
from .timestamps import parse_timestamp

if TYPE_CHECKING:
    from .engine import BatchResult
    from .rows import BatchListRow, JobRow
    from .store import Store
    from .summary import ModelSummary

TABLE_CSS = (
    "border-collapse:collapse;font:12px/1.4 system-ui,sans-serif;margin:4px 0;background:#fff"
)
TH = "text-align:left;padding:3px 10px 3px 0;border-bottom:1px solid #ccc;white-space:nowrap"
TD = "text-align:left;padding:2px 10px 2px 0;vertical-align:top;border-bottom:1px solid #eee"


@dataclass
class Table:
    """Headers and rows of text. ``wrap``: the columns whose text may wrap (prompts, folders);
    every other cell keeps on one line (a number, a time, an amount of money)."""

    headers: list[str]
    rows: list[list[str]]
    wrap: set[str] = field(default_factory=set)
    caption: str = ""
    head: bool = True  # False: a list of facts, each row's first cell naming it

    def html(self) -> str:
        head = "".join(f"<th style='{TH}'>{esc(h)}</th>" for h in self.headers)
        body = []
        for row in self.rows:
            cells = []
            for h, value in zip(self.headers, row, strict=True):
                nowrap = "" if h in self.wrap else ";white-space:nowrap"
                limit = ";max-width:420px;overflow-wrap:break-word" if h in self.wrap else ""
                shown = esc(value)
                if h in self.wrap:  # an amount stays whole where the text may wrap
                    shown = shown.replace("US$ ", "US$&nbsp;")
                if not self.head and h == self.headers[0]:
                    cells.append(f"<th style='{TD};font-weight:600{nowrap}'>{shown}</th>")
                else:
                    cells.append(f"<td style='{TD}{nowrap}{limit}'>{shown}</td>")
            body.append("<tr>" + "".join(cells) + "</tr>")
        caption = (
            f"<caption style='text-align:left;padding:2px 0;font-weight:600'>"
            f"{esc(self.caption)}</caption>"
            if self.caption
            else ""
        )
        return (
            f"<table class='i2v-table' style='{TABLE_CSS}'>{caption}"
            + (f"<thead><tr>{head}</tr></thead>" if self.head else "")
            + f"<tbody>{''.join(body)}</tbody></table>"
        )

    def text(self) -> str:
        widths = [
            max([len(h) if self.head else 0, *(len(r[i]) for r in self.rows)])
            for i, h in enumerate(self.headers)
        ]
        lines = [self.caption] if self.caption else []
        if self.head:
            lines.append("  ".join(h.ljust(w) for h, w in zip(self.headers, widths, strict=True)))
        lines += [
            "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()
            for r in self.rows
        ]
        return "\n".join(lines)


def local_time(value: Any) -> str:
    """A ledger timestamp (UTC) in the user's time zone, to the second: ``2025-06-01 12:00:00``."""
    when = parse_timestamp(value)
    return "" if when is None else when.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def shorten(text: str, limit: int) -> str:
    """``text`` of at most ``limit`` characters, cut between words (with "…"), never inside
    one (a single word longer than the limit is cut at the limit)."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut).rstrip(" ,;:") + "…"


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


# ----------------------------------------------------------------------------- tables


def batches_table(store: Store, batches: Sequence[BatchListRow]) -> Table:
    """The ledger's batches, newest first: when (local time), models, jobs by outcome,
    keepers and the estimated cost of the requests sent."""
    from .compare import row_cost

    rows = []
    for b in batches:
        jobs = store.jobs(b["id"])
        models = ", ".join(dict.fromkeys(j["model"] for j in jobs)) or b["model"]
        sent = sum_costs(row_cost(j) for j in jobs if j["request_id"])
        rows.append(
            [
                b["id"],
                local_time(b["created_at"]),
                models,
                b["backend"],
                str(len(jobs)),
                str(b["done"] or 0),
                str(b["failed"] or 0),
                str(sum(1 for j in jobs if j["keeper"])),
                usd(sent),
                str(b["output_dir"]),
            ]
        )
    headers = ["Batch", "Created", "Models", "Backend", "Jobs", "Videos", "Failed"]
    headers += ["Keepers", "Cost (est.)", "Videos in"]
    return Table(headers, rows, wrap={"Models", "Videos in"})


def files_table(jobs: Iterable[JobRow], folder: str | os.PathLike[str] | None = None) -> Table:
    """Where each job's video is (relative to ``folder``, the batch's output folder, when it
    is in there), or why it has none; prompts cut between words."""

    def where(path: str | None) -> str:
        if not path or folder is None:
            return path or ""
        try:
            return str(Path(path).relative_to(folder))
        except ValueError:
            return path

    rows = [
        [
            str(j["id"]),
            j["status"],
            image_name(j["image_path"]),
            j["model"],
            str(j.get("take") or 1),
            shorten(j["prompt"] or "", 60),
            where(j["local_file"]),
            j["error"] or "",
        ]
        for j in jobs
    ]
    headers = ["Job", "Status", "Image", "Model", "Take", "Prompt", "Video", "Error"]
    return Table(headers, rows, wrap={"Prompt", "Video", "Error"})


def models_table(summaries: Iterable[ModelSummary], *, endpoint: bool = False) -> Table:
    """Per model: jobs, videos, failures, mean times, cost per clip and per second of video."""
    rows = []
    for m in summaries:
        row = [m.model] + ([m.endpoint_id] if endpoint else [])
        row += [str(m.jobs), str(m.done), str(m.failed)]
        row += [seconds(m.mean_queue_s), seconds(m.mean_run_s), usd(m.cost_per_clip)]
        row.append("-" if m.cost_per_second is None else usd(m.cost_per_second))
        rows.append(row)
    headers = ["Model"] + (["Endpoint"] if endpoint else [])
    headers += ["Jobs", "Videos", "Failed", "Mean in queue", "Mean running"]
    headers += ["Per clip", "Per second of video"]
    return Table(headers, rows)


def billed_table(store: Store, batch_id: str) -> Table | None:
    """Per model, what fal billed beside i2vkit's estimate and the difference, once `i2vkit
    cost` has read fal's bill into the ledger (None before: nothing known yet, nothing to
    show). The one table the report and notebook 02 both draw."""
    from .bill import recorded_bill

    models = recorded_bill(store, batch_id)
    if all(m.billed is None for m in models):
        return None
    rows = [_billed_row(m.name, m.requests, m.estimated, m.billed) for m in models]
    if len(models) > 1:
        rows.append(
            _billed_row(
                "total",
                sum(m.requests for m in models),
                sum_costs(m.estimated for m in models),
                sum_costs(m.billed for m in models),
            )
        )
    headers = ["Model", "Requests", "Estimated", "Billed by fal", "Difference"]
    caption = "Billed by fal (read by i2vkit cost), beside the estimates"
    return Table(headers, rows, caption=caption)


def _billed_row(
    name: str, requests: int, estimated: float | None, billed: float | None
) -> list[str]:
    return [
        name,
        str(requests),
        usd(estimated),
        "no record" if billed is None else usd(billed),
        usd_difference(billed, estimated) or "-",
    ]


def run_tables(result: BatchResult) -> tuple[Table, Table | None, list[str]]:
    """A finished run as two small tables (the run, and its models when there are several)
    and the lines that need saying in full (failures, notes, what to do next)."""
    counts = result.status_counts
    cost = result.cost()
    billed = "estimate" if result.billed else "not billed: emulator"
    facts = [
        ["Batch", f"{result.batch_id} on {result.backend}"],
        ["Jobs", f"{len(result.jobs)} ({_counted(counts)})"],
        ["Videos in", str(result.plan.output_dir)],
        [f"This run ({billed})", f"{usd(cost.this_run)} ({plural(cost.new_jobs, 'job')})"],
        ["Earlier runs", f"{usd(cost.earlier)} ({plural(cost.earlier_jobs, 'job')})"],
        ["Batch total", "unknown" if cost.total is None else usd(cost.total)],
    ]
    run = Table(["", "value"], facts, wrap={"value"}, head=False)
    models = models_table(result.models) if result.models else None
    return run, models, _said_in_full(result.summary())


def _counted(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{n} {s}" for s, n in counts.items()) or "none"


def _said_in_full(summary: str) -> list[str]:
    """The summary's lines after its head (batch, folder, cost) and its per-model lines:
    failures, skipped files, notes and what to do next."""
    lines = summary.splitlines()[3:]
    return [
        line
        for line in lines
        if not line.startswith(("model ", "per model", "  ")) and line.strip()
    ]
