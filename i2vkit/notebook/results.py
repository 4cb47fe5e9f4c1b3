"""Past batches from the ledger (the gallery, the timeline, where each file lives), and
:func:`done`, the end of a notebook run that gives the exported script the CLI's exit code."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import cli
from .. import gallery as g
from ..config import Settings, load_settings
from ..jobs import UNSUCCESSFUL, JobStatus
from .display import Live, Rich, in_kernel, notebook_dir, widgets_available

if TYPE_CHECKING:
    from ..engine import BatchResult


def gallery(source: Any, base: str | os.PathLike | None = None, **kwargs: Any) -> Rich:
    """The inline gallery of a BatchResult or ledger rows (text in a script)."""
    base = base if base is not None else notebook_dir()
    return Rich(g.gallery_html(source, base, **kwargs), g.gallery_text(source))


def timeline(rows: Sequence[Mapping[str, Any]], concurrency: int | None = None) -> Rich:
    return Rich(g.timeline_svg(rows, concurrency=concurrency), g.timeline_text(rows, concurrency))


def done(result: BatchResult) -> None:
    """End of a notebook run: in the exported script, exit with the code `i2vkit bulk`
    gives the same result (1 when jobs failed, 3 stopped, 130 interrupted)."""
    code = cli.exit_code(result)
    if in_kernel() or not code:
        return
    if code == cli.EXIT_INTERRUPTED:
        cli.print_resume([sys.executable, *sys.argv])
    sys.exit(code)


# -------------------------------------------------------------- results browser

FILE_COLUMNS = ["id", "status", "image", "prompt", "local_file", "error"]


class ResultsBrowser:
    """Past batches from the ledger, filtered by model, batch and status.

    In a notebook the filters are widgets and the views (gallery, timeline, files)
    redraw when they change; in a script the batch comes from ``I2VKIT_BATCH``
    (a prefix is enough; default: the newest) and the views print text.
    """

    def __init__(self, settings: Settings | None = None, base: str | os.PathLike | None = None):
        from ..store import Store

        self.settings = settings or load_settings()
        self.base = Path(base) if base is not None else notebook_dir()
        self.store = Store(self.settings.db_path)
        self.batches = self.store.list_batches()
        wanted = os.environ.get("I2VKIT_BATCH") or None
        chosen = None
        if wanted:
            batch = self.store.get_batch(wanted)
            chosen = batch["id"] if batch else None
        elif self.batches:
            chosen = self.batches[0]["id"]
        self.batch_id: str | None = chosen
        self.model: str | None = None
        self.status: str | None = None
        self._listeners: list[Callable[[], None]] = []
        self.widget = None
        if widgets_available():
            self._build_widgets()

    def _batch_label(self, b: Mapping[str, Any]) -> str:
        return (
            f"{b['id']}  {str(b['created_at'])[:19]}  {b['model']}  {b['backend']}  "
            f"{b['job_count']} jobs, {b['done'] or 0} done, {b['failed'] or 0} failed"
        )

    def _build_widgets(self) -> None:
        import ipywidgets as w

        style = {"description_width": "70px"}
        models = sorted({b["model"] for b in self.batches})
        self.model_w = w.Dropdown(
            options=[("any", None)] + [(m, m) for m in models], description="Model", style=style
        )
        self.batch_w = w.Dropdown(
            options=[(self._batch_label(b), b["id"]) for b in self.batches],
            value=self.batch_id,
            description="Batch",
            style=style,
            layout=w.Layout(width="720px"),
        )
        self.status_w = w.Dropdown(
            options=[("any", None)] + [(str(s), str(s)) for s in JobStatus],
            description="Status",
            style=style,
        )
        self.table_w = w.HTML(self.batches_html())

        def model_changed(change: Mapping[str, Any]) -> None:
            self.model = change["new"]
            shown = [b for b in self.batches if self.model in (None, b["model"])]
            self.batch_w.options = [(self._batch_label(b), b["id"]) for b in shown]
            self.batch_w.value = shown[0]["id"] if shown else None

        def batch_changed(change: Mapping[str, Any]) -> None:
            self.batch_id = change["new"]
            self._notify()

        def status_changed(change: Mapping[str, Any]) -> None:
            self.status = change["new"]
            self._notify()

        self.model_w.observe(model_changed, names="value")
        self.batch_w.observe(batch_changed, names="value")
        self.status_w.observe(status_changed, names="value")
        self.widget = w.VBox([self.table_w, w.HBox([self.model_w, self.status_w]), self.batch_w])

    def _notify(self) -> None:
        for fn in self._listeners:
            fn()

    def _live(self, render: Callable[[], Rich]) -> Live:
        """A view that redraws when the filters change."""
        return Live(render, self._listeners.append)

    # -- data ---------------------------------------------------------------------

    def batch(self) -> dict[str, Any] | None:
        return self.store.get_batch(self.batch_id) if self.batch_id else None

    def jobs(self) -> list[dict[str, Any]]:
        if not self.batch_id:
            return []
        statuses = [self.status] if self.status else None
        rows = self.store.jobs(self.batch_id, statuses=statuses)
        return [r for r in rows if self.model in (None, r["model"])]

    def failed_jobs(self) -> list[dict[str, Any]]:
        if not self.batch_id:
            return []
        return self.store.jobs(self.batch_id, statuses=list(UNSUCCESSFUL))

    # -- views --------------------------------------------------------------------

    def batches_html(self) -> str:
        if not self.batches:
            return "<div>No batches in the ledger yet: run 01_generate first.</div>"
        cols = ["id", "created_at", "model", "backend", "job_count", "done", "failed", "output_dir"]
        return g.table_html(self.batches, cols)

    def text(self) -> str:
        if not self.batches:
            return f"No batches in {self.settings.db_path} yet: run 01_generate first."
        cols = ["id", "created_at", "model", "backend", "job_count", "done", "failed", "output_dir"]
        return g.table_text(self.batches, cols) + f"\nselected batch: {self.batch_id}"

    def _empty(self) -> Rich:
        msg = "No batch selected (the ledger has none yet): run 01_generate first."
        return Rich(f"<div>{g.esc(msg)}</div>", msg)

    def gallery(self, **kwargs: Any) -> Any:
        def render() -> Rich:
            if not self.batch_id:
                return self._empty()
            return gallery(self.jobs(), self.base, title=f"batch {self.batch_id}", **kwargs)

        return self._live(render)

    def timeline(self) -> Any:
        def render() -> Rich:
            if not self.batch_id:
                return self._empty()
            return timeline(self.jobs())

        return self._live(render)

    def files(self) -> Any:
        def render() -> Rich:
            if not self.batch_id:
                return self._empty()
            rows = [
                {
                    **r,
                    "image": Path(r["image_path"]).name,
                    "prompt": r["prompt"][:60],
                    "local_file": r["local_file"] or "",
                    "error": r["error"] or "",
                }
                for r in self.jobs()
            ]
            batch = self.batch() or {}
            head = f"batch {self.batch_id}: videos in {batch.get('output_dir')}"
            return Rich(
                f"<div style='font:13px system-ui'>{g.esc(head)}</div>"
                + g.table_html(rows, FILE_COLUMNS),
                head + "\n" + g.table_text(rows, FILE_COLUMNS),
            )

        return self._live(render)

    def close(self) -> None:
        self.store.close()
