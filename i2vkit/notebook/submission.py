"""What a notebook button that submits (Retry, a clip's Again) shows below itself and does
once clicked: the CLI's spend question (:class:`SpendQuestion`), then the run in a thread
with its progress bars, its summary and its new clips, playing.

The clips go into an ``Output`` widget (:func:`~i2vkit.notebook.display.show_clips`), not
the outcome's HTML: JupyterLab resolves the videos' relative links only there.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from .. import gallery as g
from ..errors import I2vkitError
from .display import show_clips
from .progress import ProgressBars
from .spend_question import SpendQuestion

if TYPE_CHECKING:
    from ..engine import BatchResult
    from ..planning import Plan
    from ..workspace import Workspace


class Submission:
    """The question, the bars, the outcome and the clips of one submitting button."""

    def __init__(self, name: str):
        import ipywidgets as w

        self.name = name  # the run's thread: i2vkit-retry, i2vkit-again
        self.spend = SpendQuestion()
        self.bars = ProgressBars()
        bars = getattr(self.bars, "widget", None)
        self.bars_box = w.Box([bars] if bars is not None else [], layout={"display": "none"})
        self.outcome = w.HTML()
        self.clips = w.Output()
        self.widgets = [self.spend.widget, self.bars_box, self.outcome, self.clips]
        self.result: BatchResult | None = None
        self.thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def submit(
        self,
        plan: Plan,
        ws: Workspace,
        *,
        starting: str,
        stopped: Callable[[], None],
        done: Callable[[BatchResult], str],
    ) -> None:
        """Apply the spending rule to ``plan``, then run it: ``starting`` is said while it
        runs, ``stopped()`` is called when nothing was submitted (a No, the cap, the
        balance), ``done(result)`` after the run, returning HTML to add to its summary."""

        def refused(why: str) -> None:
            self.outcome.value = why
            stopped()

        def go() -> None:
            self.bars_box.layout.display = ""
            self.outcome.value = starting
            self.thread = threading.Thread(
                target=self._run, args=(plan, ws, done), name=self.name, daemon=True
            )
            self.thread.start()

        self.spend.check(plan, ws, go, refused)

    def _run(self, plan: Plan, ws: Workspace, done: Callable[[BatchResult], str]) -> None:
        from ..engine import run_batch

        try:
            self.result = run_batch(plan, ws.settings, progress=self.bars.update)
        except I2vkitError as exc:
            self.outcome.value = f"<span style='color:#c62828'>{g.esc(str(exc))}</span>"
            return
        finally:
            self.thread = None
        summary = g.esc(self.result.summary())
        more = done(self.result)
        self.outcome.value = f"<div style='white-space:pre-wrap'>{summary}</div>{more}"
        show_clips(self.clips, self.result)

    def wait(self, timeout: float) -> bool:
        """Wait for a run started by a click; True when none is running (tests, code)."""
        thread = self.thread
        if thread is not None:
            thread.join(timeout)
        return self.thread is None
