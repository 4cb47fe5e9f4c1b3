"""Progress bars for a running batch: ipywidgets in a notebook, the CLI's reporter in a script."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from .. import reporters
from .display import widgets_available
from .stop_button import StopButton

if TYPE_CHECKING:
    from ..engine import Progress


def status_text(p: Progress) -> str:
    """The line under the bars: what the run does now; once stopped, where every job is."""
    if p.state == "stopped":
        return (
            f"stopped: {p.pending} pending, {p.queued} queued at fal, {p.running} running at "
            f"fal, {p.cancelled} cancelled, {p.downloaded} downloaded, {p.failed} failed; run "
            "the cell again to resume"
        )
    if p.state == "stopping":
        return p.message
    return "finished" if p.state == "finished" else p.message


class ProgressBars:
    """Bars for uploads, submitted, running, downloaded, failed and cancelled, fed by
    ``update``; the line under them says "stopped" and where every job is after a stop,
    and a Stop button beside them stops the run as the kernel's stop button does.

    Every label has a tooltip, if only an empty one: ipywidgets 8's views write a widget's
    ``tooltip`` into its label's title as it is, so the default None shows "null" on hover.

    Pass ``bars.update`` as the ``progress=`` callback of ``run_batch``/``retry_batch``.
    It is called from the batch's worker thread; setting widget values from there is fine
    (the kernel sends comm messages through its thread-safe IOPub socket). Outside Jupyter
    it is exactly the `i2vkit bulk` reporter (:func:`i2vkit.reporters.progress_reporter`): tqdm
    bars on a terminal, a line every few seconds on stderr otherwise, nothing with
    ``enabled=False`` (the script's ``--no-progress``).
    """

    ROWS = [
        ("uploads", "uploaded", "uploads_total", "info"),
        ("submitted", "submitted", "total", ""),
        ("running", "running", "total", "warning"),
        ("downloaded", "downloaded", "total", "success"),
        ("failed", "failed", "total", "danger"),
        ("cancelled", "cancelled", "total", "warning"),
    ]
    TIPS = {
        "uploads": "images uploaded to fal's storage, of those the batch needs",
        "submitted": "jobs fal has received, of the batch's jobs",
        "running": "jobs running at fal now",
        "downloaded": "videos on disk",
        "failed": "jobs that failed (`i2vkit retry` sends them again)",
        "cancelled": "jobs cancelled",
    }

    def __init__(self, enabled: bool = True, stream: Any = None):
        self.last: Progress | None = None
        self._lock = threading.Lock()
        self.widget = None
        self.bars: dict[str, Any] = {}
        self.reporter: reporters.Reporter | None = None
        if not widgets_available():
            self.reporter = reporters.progress_reporter(enabled, stream)
            return
        import ipywidgets as w

        rows = []
        for label, _value, _total, style in self.ROWS:
            bar = w.IntProgress(
                value=0,
                min=0,
                max=1,
                description=label,
                tooltip=self.TIPS[label],
                bar_style=style,
                style={"description_width": "90px"},
                layout=w.Layout(width="480px"),
            )
            count = w.Label("0 / 0", tooltip="")
            self.bars[label] = (bar, count)
            rows.append(w.HBox([bar, count]))
        self.message = w.Label("", tooltip="")
        self.stop = StopButton()
        self.widget = w.VBox([w.HBox([w.VBox(rows), self.stop.button]), self.message])

    def update(self, p: Progress) -> None:
        with self._lock:
            self.last = p
            if self.reporter is not None:
                self.reporter(p)
                return
            for label, value, total, _style in self.ROWS:
                bar, count = self.bars[label]
                top = max(1, getattr(p, total))
                bar.max = top
                bar.value = min(getattr(p, value), top)
                count.value = f"{getattr(p, value)} / {getattr(p, total)}"
            self.message.value = "; ".join(t for t in (p.waiting, status_text(p)) if t)
            self.stop.follow(p.state)

    __call__ = update

    def close(self) -> None:
        """Print the last state (script); the batch is over."""
        if self.reporter is not None:
            self.reporter.close()

    def text(self) -> str:
        return ""  # nothing to show before the run; the reporter prints as it goes
