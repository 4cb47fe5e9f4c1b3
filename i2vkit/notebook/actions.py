"""Actions on a past batch as buttons: retry its failed jobs.

*Retry* shows what the retry would run and cost before anything happens (the plan of
:func:`~i2vkit.planning.retry.plan_retry`, the ledger's own), asks the question `i2vkit
retry` asks (:func:`~i2vkit.spending.confirm_spend`, the one rule: above US$ 5 on a
billed backend, never on the built-in emulator, never past the spend cap), and runs only
the failed, cancelled and unsent jobs. A button cannot answer ``input()``, so the
question is asked with two buttons: the rule is run once to learn whether it asks and
what, and once more with the answer the user clicked.

Outside a widget front end (the exported script, nbmake), ``I2VKIT_RETRY_FAILED=1``
retries at once when the cell runs, with the form's confirmation (``input()``).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from .. import gallery as g
from ..errors import I2vkitError
from ..money import plural, usd
from ..spending import confirm_spend, cost_lines
from .display import Rich, env_flag, widgets_available
from .form import confirmed
from .progress import ProgressBars
from .results import gallery

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
        self.result: BatchResult | None = None
        self.thread: threading.Thread | None = None
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
        self.result = run_batch(plan, self.ws.settings, progress=bars.update)
        print(self.result.summary())
        show(gallery(self.result))
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
        self.question = w.HTML()
        self.yes = w.Button(description="Yes, spend it", button_style="danger")
        self.no = w.Button(description="No")
        self.yes.on_click(lambda _b: self.answer(True))
        self.no.on_click(lambda _b: self.answer(False))
        self.asking = w.HBox([self.question, self.yes, self.no], layout={"display": "none"})
        self.bars = ProgressBars()
        bars = getattr(self.bars, "widget", None)
        self.bars_box = w.Box([bars] if bars is not None else [], layout={"display": "none"})
        self.outcome = w.HTML()
        self.widget = w.VBox([self.info, self.button, self.asking, self.bars_box, self.outcome])
        self.widget.add_class("i2v-retry")
        self.refresh()

    def refresh(self) -> None:
        """Plan the retry of the selected batch again and show it."""
        self._plan()
        if self.widget is None:
            return
        self.info.value = self.html()
        self.asking.layout.display = "none"
        running = self.thread is not None and self.thread.is_alive()
        self.button.disabled = running or not self.count
        self.button.description = (
            f"Retry {plural(self.count, 'failed job')} ({self.cost()})"
            if self.count
            else "Nothing to retry"
        )

    def click(self) -> None:
        """The spending rule, run to see whether it asks: go on, ask, or say why not."""
        if self.plan is None or not self.count:
            return
        asked: list[str] = []
        said: list[str] = []

        def ask(question: str) -> str:
            asked.append(question)
            return ""  # not answered yet: the buttons will

        yes = env_flag("I2VKIT_YES")
        code = confirm_spend(
            self.plan, self.ws.backend, yes=yes, interactive=True, ask=ask, say=said.append
        )
        if asked:
            question = asked[0].strip().removesuffix("[y/N]").strip()  # the buttons answer
            self.question.value = f"<b>{g.esc(question)}</b>"
            self.asking.layout.display = ""
            self.button.disabled = True
        elif code is None:
            self._start()
        else:  # over the spend cap: its own words
            self.outcome.value = f"<span style='color:#c62828'>{g.esc(' '.join(said))}</span>"

    def answer(self, yes: bool) -> None:
        """The user's answer to the question: run, or say that nothing was submitted."""
        self.asking.layout.display = "none"
        if not yes or self.plan is None:
            self.outcome.value = "Nothing submitted."
            self.button.disabled = not self.count
            return
        said: list[str] = []
        code = confirm_spend(
            self.plan, self.ws.backend, interactive=True, ask=lambda _q: "y", say=said.append
        )
        if code is None:
            self._start()
        else:
            self.outcome.value = g.esc(" ".join(said))

    def _start(self) -> None:
        self.button.disabled = True
        self.bars_box.layout.display = ""
        self.outcome.value = f"Retrying {plural(self.count, 'job')}..."
        self.thread = threading.Thread(target=self._run, name="i2vkit-retry", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        from ..engine import run_batch

        assert self.plan is not None
        try:
            self.result = run_batch(self.plan, self.ws.settings, progress=self.bars.update)
        except I2vkitError as exc:
            self.outcome.value = f"<span style='color:#c62828'>{g.esc(str(exc))}</span>"
            return
        finally:
            self.thread = None
        shown: Rich = gallery(self.result)
        summary = g.esc(self.result.summary())
        self.outcome.value = f"<div style='white-space:pre-wrap'>{summary}</div>{shown.html}"
        self.refresh()

    def wait(self, timeout: float) -> bool:
        """Wait for a retry started by a click; True when none is running (tests, code)."""
        thread = self.thread
        if thread is not None:
            thread.join(timeout)
        return self.thread is None
