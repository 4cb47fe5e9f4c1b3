"""More clips like one you liked, from a notebook: `i2vkit again` as a function, and as
the panel behind each grid clip's *again* button (:class:`AgainPanel`).

The clip's recipe (its mp4 tags, else its sidecar; see :mod:`i2vkit.provenance`) is planned
as a new batch (:func:`i2vkit.planning.again.plan_again`), confirmed like every notebook
run (:func:`~i2vkit.notebook.form.confirmed`), then run. A grid's clip, a file in the
output folder or one copied anywhere else all work: only the file is read.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import gallery as g
from ..config import Settings, load_settings
from ..engine import Progress, run_batch
from ..engine.progress import BatchResult
from ..errors import I2vkitError
from ..money import plural, usd
from ..planning import Plan
from ..planning.again import plan_again
from ..planning.request import BatchRequest
from ..provenance import recipe_from_file
from ..spending import cost_lines
from ..workspace import Workspace
from .form import confirmed
from .submission import Submission


def again(
    video: str | os.PathLike[str],
    *,
    takes: int = 1,
    options: dict[str, Any] | None = None,
    yes: bool = False,
    settings: Settings | None = None,
    progress: Callable[[Progress], None] | None = None,
) -> BatchResult:
    """Make `takes` more clips like `video` (new seeds unless ``options={"seed": N}``)."""
    settings = settings or load_settings()
    recipe = recipe_from_file(video)
    with Workspace.open(settings, tell=True) as ws:
        plan = plan_again(recipe, ws, BatchRequest(takes=takes, options=dict(options or {})))
        print(plan.describe())
        plan = confirmed(plan, ws, yes=yes)
    return run_batch(plan, settings, progress=progress)


class AgainPanel:
    """`i2vkit again` for a clip of the comparison grid (its *again* button): the plan and
    its cost first, a *Takes* box, then a button that applies the CLI's spending rule
    (:class:`~i2vkit.notebook.spend_question.SpendQuestion`: the question above the
    threshold on a billed backend, the spend cap, the balance) before running the new
    batch. One panel serves every clip of a grid; it shows the clip picked last.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        workspace: Workspace | None = None,
        made: Callable[[str], None] | None = None,
    ):
        import ipywidgets as w

        self.made = made  # told the new batch's id (notebook 02's batch list reloads)
        self.settings = settings or (workspace.settings if workspace else None)
        self._ws = workspace
        self.video: Path | None = None
        self.job_id: int | None = None
        self.plan: Plan | None = None
        self.info = w.HTML()
        self.takes_w = w.BoundedIntText(
            value=1, min=1, max=100, description="Takes", layout={"width": "150px"}
        )
        self.takes_w.observe(lambda _c: self._plan(), names="value")
        self.button = w.Button(icon="redo", button_style="warning", layout={"width": "auto"})
        self.button.on_click(lambda _b: self.submit())
        self.run = Submission("i2vkit-again")
        self.spend, self.bars, self.outcome = self.run.spend, self.run.bars, self.run.outcome
        self.widget = w.VBox(
            [self.info, w.HBox([self.takes_w, self.button]), *self.run.widgets],
            layout={"display": "none"},
        )
        self.widget.add_class("i2v-again")

    @property
    def ws(self) -> Workspace:
        """The workspace the plan is made in (the notebook's, else one opened here)."""
        if self._ws is None:
            self._ws = Workspace.open(self.settings or load_settings(), tell=False)
        return self._ws

    def choose(self, video: str | os.PathLike[str], job_id: int | None = None) -> None:
        """A clip's *again* was clicked: plan more like it and show the plan and cost."""
        if self.running:
            self.outcome.value = "An again is still running: wait for it to finish."
            return
        self.video, self.job_id = Path(video), job_id
        self.outcome.value = ""
        self.widget.layout.display = ""
        self._plan()

    @property
    def running(self) -> bool:
        return self.run.running

    @property
    def result(self) -> BatchResult | None:
        return self.run.result

    @property
    def thread(self) -> threading.Thread | None:
        return self.run.thread

    def _plan(self) -> None:
        self.spend.cancel()
        self.plan = None
        if self.video is None:
            return
        what = f"job {self.job_id}" if self.job_id is not None else self.video.name
        try:
            recipe = recipe_from_file(self.video)
            self.plan = plan_again(recipe, self.ws, BatchRequest(takes=int(self.takes_w.value)))
        except I2vkitError as exc:
            self.info.value = (
                f"<span style='color:#c62828'>Again from {g.esc(what)}: {g.esc(exc)}</span>"
            )
            self.button.description, self.button.disabled = "Cannot make it again", True
            return
        lines = [self.plan.describe(), *cost_lines(self.plan, self.ws.backend)]
        self.info.value = (
            f"<b>Again from {g.esc(what)}</b> ({g.esc(self.video.name)}): the same model, "
            "arguments and image, a new seed per take"
            f"<div style='white-space:pre-wrap;font:12px monospace'>{g.esc(chr(10).join(lines))}</div>"
        )
        takes = int(self.takes_w.value)
        self.button.description = f"Make {plural(takes, 'more clip')} like {what} ({self.cost()})"
        self.button.disabled = self.running  # one again at a time

    def cost(self) -> str:
        """What the again adds, as the plan says it."""
        if self.plan is None or self.plan.cost is None or self.plan.cost.this_run is None:
            return "price unknown"
        return usd(self.plan.cost.this_run)

    def submit(self) -> None:
        """The spending rule, then the run (what the button calls)."""
        if self.plan is None or self.running:
            return
        self.button.disabled = True
        self.run.submit(
            self.plan,
            self.ws,
            starting=f"Submitting {plural(len(self.plan.jobs), 'job')} as a new batch...",
            stopped=self._stopped,
            done=self._done,
        )

    def _stopped(self) -> None:
        self.button.disabled = self.plan is None

    def _done(self, result: BatchResult) -> str:
        # The plan shown is the one that ran (its batch is the summary's); more starts
        # from a clip's button again (or Takes), each time a batch of its own.
        self.plan = None
        self.button.description = "Done: a clip's again plans another batch"
        self.button.disabled = True
        batch = result.batch_id
        where = "run the Batches cell again and pick"
        if self.made is not None:
            self.made(batch)
            where = "pick, in the Batch list above,"
        hint = (
            f"To compare them: {where} batch {batch} (or I2VKIT_BATCH={batch}); "
            f"`i2vkit report {batch}` writes its page."
        )
        return f"<div>{g.esc(hint)}</div>"

    def wait(self, timeout: float) -> bool:
        """Wait for a run started by a click; True when none is running (tests, code)."""
        return self.run.wait(timeout)
