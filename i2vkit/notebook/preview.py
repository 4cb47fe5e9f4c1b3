"""What the form's batch would run: thumbnails, prompts, jobs, the batch it joins, cost.

In a notebook the preview redraws when the form changes; in the exported script it is
the plan `i2vkit bulk` prints.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from .. import gallery as g
from ..errors import I2vkitError
from ..money import plural, usd
from ..planning import BatchRequest, Plan, plan_batch
from ..spending import cost_lines
from ..workspace import Workspace
from .display import Live, Rich, in_kernel


class Form(Protocol):
    """What a preview needs of the form: its request, its folder, and change callbacks."""

    base: Path

    def request(self) -> BatchRequest: ...

    def observe(self, callback: Callable[[], None]) -> None: ...


def plan_html(plan: Plan, ws: Workspace, base: Path | None = None) -> str:
    thumbs = []
    for im in plan.images[:60]:
        uri = g.thumbnail_data_uri(im.path, cache=g.thumbnail_cache(ws.settings.db_path))
        img = (
            f"<img src='{g.esc(uri)}' style='width:96px;height:72px;object-fit:cover;"
            "border-radius:3px'>"
            if uri
            else ""
        )
        thumbs.append(
            f"<div style='width:100px;font-size:11px;text-align:center'>{img}<br>"
            f"{g.esc(im.name)}<br><span style='color:#777'>{im.width}x{im.height} "
            f"{g.esc(im.format)}</span></div>"
        )
    more = f"<div>... and {len(plan.images) - 60} more</div>" if len(plan.images) > 60 else ""
    prompts = "".join(f"<li>{g.esc(p)}</li>" for p in plan.prompts[:100])
    if len(plan.prompts) > 100:
        prompts += f"<li>... and {len(plan.prompts) - 100} more</li>"
    if plan.estimated_cost is None:
        cost = "unknown (no published price for some endpoint)"
    else:
        cost = usd(plan.estimated_cost)
        if plan.cost_per_video is not None:  # None: the jobs' prices differ (several models)
            cost += f" ({usd(plan.cost_per_video, 3)} per video)"
        if ws.settings.demo:
            cost += " on fal; demo mode: nothing is billed"
    skipped = "".join(
        f"<li><b>{g.esc(s.path.name)}</b>: {g.esc(s.reason)}</li>" for s in plan.skipped
    )
    per_model, on = "", ""
    if len(plan.models) > 1:  # a comparison: what each model adds to the batch
        on = f" on {len(plan.models)} models"
        rows = "".join(
            f"<li><b>{g.esc(m.name)}</b> ({g.esc(m.endpoint_id)}): {plural(n, 'job')}, "
            f"{g.esc(usd(amount))}</li>"
            for m, n, amount in plan.per_model()
        )
        per_model = f"<ul style='margin:2px 0'>{rows}</ul>"
    values = "".join(f"<li>{g.esc(line.strip())}</li>" for line in plan.per_value())
    per_value = f"<ul style='margin:2px 0'>{values}</ul>" if values else ""  # each varied value
    warn = ""
    if base is not None and not g.is_within(plan.output_dir.resolve(), g.find_root(base)):
        warn = (
            "<div style='color:#8a6d00'>The output folder is outside the folder Jupyter serves "
            f"({g.esc(g.find_root(base))}): the gallery can only embed small videos from "
            "there.</div>"
        )
    return (
        "<div style='font:13px system-ui,sans-serif'>"
        f"<div>{g.esc(plan.describe().splitlines()[0])}</div>"
        f"<div><b>{plural(len(plan.jobs), 'job')}</b>: {g.esc(plan.headline())}{on}</div>{per_model}"
        f"{per_value}"
        f"<div>estimated cost: <b>{g.esc(cost)}</b></div>"
        f"<div>videos go to: <code>{g.esc(plan.output_dir)}</code></div>{warn}"
        f"<div style='display:flex;flex-wrap:wrap;gap:6px;margin:6px 0'>{''.join(thumbs)}</div>"
        f"{more}<div>Prompts:</div><ol style='margin:2px 0'>{prompts}</ol>"
        + (
            f"<div style='color:#c62828'>Skipped files:</div><ul style='margin:2px 0'>{skipped}</ul>"
            if skipped
            else "<div style='color:#666'>No files skipped.</div>"
        )
        + "</div>"
    )


class Preview:
    """The plan of the form's batch; in a notebook it redraws when the form changes."""

    def __init__(self, form: Form, ws: Workspace):
        self.form = form
        self.ws = ws
        self.plan: Plan | None = None
        self.error: str | None = None
        self.refresh()

    def refresh(self) -> None:
        """Plan the form's batch. In a notebook a bad value is shown in the preview (the form
        stays usable); in the script it ends the script, once, as `i2vkit bulk` would."""
        if not in_kernel():
            self.plan, self.error = plan_batch(self.form.request(), self.ws), None
            return
        try:
            self.plan = plan_batch(self.form.request(), self.ws)
            self.error = None
        except I2vkitError as exc:
            self.plan, self.error = None, str(exc)

    def render(self) -> Rich:
        self.refresh()
        return Rich(self.html(), self.text())

    def display_live(self) -> None:
        Live(self.render, lambda fn: self.form.observe(fn)).display_live()

    def html(self) -> str:
        if self.plan is None:
            return f"<div style='color:#c62828'>Cannot run yet: {g.esc(self.error)}</div>"
        return plan_html(self.plan, self.ws, self.form.base)

    def _repr_html_(self) -> str:
        return self.html()

    def text(self) -> str:
        if self.plan is None:
            return f"Cannot run yet: {self.error}"
        text = "\n".join([self.plan.describe(), *cost_lines(self.plan, self.ws.backend)])
        prompts = "\n".join(f"  {i}. {p}" for i, p in enumerate(self.plan.prompts, 1))
        images = ", ".join(im.name for im in self.plan.images[:20])
        return f"{text}\nimages: {images}\nprompts:\n{prompts}"
