"""Actions on a past batch as buttons: retry its failed jobs.

*Retry* shows what the retry would run and cost before anything happens (the plan of
:func:`~i2vkit.planning.retry.plan_retry`, the ledger's own), asks the question `i2vkit
retry` asks (:class:`~i2vkit.notebook.spend_question.SpendQuestion`: the CLI's rule,
above US$ 5 on a billed backend, never on the built-in emulator, never past the spend
cap, with two buttons), and runs only the failed, cancelled and unsent jobs.

Outside a widget front end (the exported script, nbmake), ``I2VKIT_RETRY_FAILED=1``
retries at once when the cell runs, with the form's confirmation (``input()``).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from .. import gallery as g
from ..errors import I2vkitError
from ..money import plural, usd
from ..spending import cost_lines
from .display import env_flag, widgets_available
from .form import confirmed
from .progress import ProgressBars
from .results import gallery
from .submission import Submission

if TYPE_CHECKING:
    from ..engine import BatchResult
    from ..planning import Plan
    from ..workspace import Workspace

RETRY_NOW = "I2VKIT_RETRY_FAILED"  # retry when the cell runs (scripts, CI)


class RetryButton:
    """Retry the selected batch's failed jobs: its plan and cost, a button, a question."""

    def __init__(self, browser: Any, ws: Workspace):
        self.browser = browser
        self.ws = ws
        self.plan: Plan | None = None
        self.problem: str | None = None
        self.run: Submission | None = None  # with widgets
        self._result: BatchResult | None = None  # without: retried at once
        self.widget: Any = None
        self._plan()
        if env_flag(RETRY_NOW):
            self._run_now()
        if widgets_available():
            self._build()
            browser._listeners.append(self.refresh)  # the batch picked above changed

    # -- the plan --------------------------------------------------------------------

    def _plan(self) -> None:
        from ..planning import plan_retry

        self.plan, self.problem = None, None
        batch = self.browser.batch_id
        if not batch:
            self.problem = "No batch selected."
            return
        try:
            self.plan = plan_retry(batch, self.ws)
        except I2vkitError as exc:
            self.problem = str(exc)

    @property
    def count(self) -> int:
        return len(self.plan.jobs) if self.plan is not None else 0

    def cost(self) -> str:
        """What the retry adds, as `i2vkit retry` says it."""
        if self.plan is None or self.plan.cost is None or self.plan.cost.this_run is None:
            return "price unknown"
        return usd(self.plan.cost.this_run)

    def text(self) -> str:
        batch = self.browser.batch_id
        if self.problem is not None:
            return f"Cannot retry: {self.problem}"
        if not self.count:
            return f"No failed jobs in batch {batch}: nothing to retry."
        assert self.plan is not None
        lines = [f"{plural(self.count, 'failed job')} in batch {batch} can be retried."]
        return "\n".join([*lines, *cost_lines(self.plan, self.ws.backend)])

    def html(self) -> str:
        return "<br>".join(g.esc(line) for line in self.text().splitlines())

    def _repr_html_(self) -> str:
        return self.html()

    # -- the script's way: retry at once ---------------------------------------------

    def _run_now(self) -> None:
        from ..engine import run_batch

        print(self.text())
        if not self.count or self.plan is None:
            return
        bars = ProgressBars()
        from .display import show

        show(bars)
        plan = confirmed(self.plan, self.ws)
        self._result = run_batch(plan, self.ws.settings, progress=bars.update)
        print(self._result.summary())
        show(gallery(self._result))
        self._plan()

    # -- the button's way ------------------------------------------------------------

    def _build(self) -> None:
        import ipywidgets as w

        self.info = w.HTML()
        self.button = w.Button(
            icon="redo",
            button_style="warning",
            layout={"width": "auto", "align_self": "flex-start"},
        )
        self.button.on_click(lambda _b: self.click())
        self.run = Submission("i2vkit-retry")
        self.spend, self.bars, self.outcome = self.run.spend, self.run.bars, self.run.outcome
        self.question, self.yes, self.no = self.spend.question, self.spend.yes, self.spend.no
        self.asking = self.spend.widget
        self.widget = w.VBox([self.info, self.button, *self.run.widgets])
        self.widget.add_class("i2v-retry")
        self.refresh()

    def refresh(self) -> None:
        """Plan the retry of the selected batch again and show it."""
        self._plan()
        if self.widget is None:
            return
        self.info.value = self.html()
        self.spend.cancel()
        self.button.disabled = self.run is None or self.run.running or not self.count
        self.button.description = (
            f"Retry {plural(self.count, 'failed job')} ({self.cost()})"
            if self.count
            else "Nothing to retry"
        )

    def click(self) -> None:
        """The spending rule: go on, ask (the buttons answer), or say why not."""
        if self.plan is None or not self.count or self.run is None:
            return
        self.button.disabled = True
        self.run.submit(
            self.plan,
            self.ws,
            starting=f"Retrying {plural(self.count, 'job')}...",
            stopped=self.refresh,
            done=self._done,
        )

    def _done(self, _result: BatchResult) -> str:
        self.refresh()  # what is left to retry
        return ""

    def answer(self, yes: bool) -> None:
        """The user's answer to the question (what the two buttons call)."""
        self.spend.answer(yes)

    @property
    def result(self) -> BatchResult | None:
        return self.run.result if self.run is not None else self._result

    @property
    def thread(self) -> threading.Thread | None:
        return self.run.thread if self.run is not None else None

    def wait(self, timeout: float) -> bool:
        """Wait for a retry started by a click; True when none is running (tests, code)."""
        return self.run is None or self.run.wait(timeout)
