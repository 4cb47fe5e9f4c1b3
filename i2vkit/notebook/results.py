"""Past batches from the ledger (the gallery, the timeline, where each file lives, the
comparison grid of :mod:`.compare_view`), and :func:`done`, the end of a notebook run that
gives the exported script the CLI's exit code."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import exits, tables
from .. import gallery as g
from ..config import Settings, load_settings
from ..jobs import UNSUCCESSFUL, JobStatus
from ..money import plural
from ..timeline import timeline_svg, timeline_text
from .compare_view import CompareView
from .display import Live, Rich, in_kernel, notebook_dir, widgets_available

if TYPE_CHECKING:
    from ..engine import BatchResult
    from ..rows import BatchRow, JobRow
    from ..workspace import Workspace


def gallery(source: Any, base: str | os.PathLike | None = None, **kwargs: Any) -> Rich:
    """The inline gallery of a BatchResult or ledger rows (text in a script)."""
    base = base if base is not None else notebook_dir()
    return Rich(g.gallery_html(source, base, **kwargs), g.gallery_text(source))


def timeline(rows: Sequence[Mapping[str, Any]], concurrency: int | None = None) -> Rich:
    return Rich(timeline_svg(rows, concurrency=concurrency), timeline_text(rows, concurrency))


def results_view(
    result: BatchResult,
    base: str | os.PathLike | None = None,
    *,
    workspace: Workspace | None = None,
) -> Any:
    """The gallery to show after a run: the comparison grid when the batch ran several
    models or takes (what the user wants to compare), else the plain gallery. A clip's
    *again* plans in ``workspace`` (else one opened from the settings on its first click)."""
    from ..store import Store

    with Store(result.plan.ledger) as store:
        mine = {j.id for j in result.jobs}
        rows = [r for r in store.jobs(result.batch_id) if r["id"] in mine]
    if len({r["endpoint_id"] for r in rows}) > 1 or len({r["take"] for r in rows}) > 1:
        return CompareView(
            lambda: rows,
            result.plan.ledger,
            result.batch_id,
            base,
            title=result.batch_id,
            workspace=workspace,
        )
    return gallery(result, base)


def run_summary(result: BatchResult) -> Rich:
    """The end of a run as small tables (the run and its cost, its models) and the lines
    that need saying in full; in a script, the CLI's summary."""
    run, models, lines = tables.run_tables(result)
    html = run.html() + (models.html() if models else "")
    if lines:
        items = "".join(f"<li>{g.esc(line)}</li>" for line in lines)
        html += f"<ul style='font:12px system-ui,sans-serif;margin:4px 0'>{items}</ul>"
    return Rich(html, result.summary())


def done(result: BatchResult) -> None:
    """End of a notebook run: in the exported script, exit with the code `i2vkit bulk`
    gives the same result (1 when jobs failed, 3 stopped, 130 interrupted)."""
    code = exits.exit_code(result)
    if in_kernel() or not code:
        return
    if code == exits.EXIT_INTERRUPTED:
        exits.print_resume([sys.executable, *sys.argv])
    sys.exit(code)


# -------------------------------------------------------------- results browser


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
        self._reloading = False
        self.widget: Any = None  # an ipywidgets box once built (ipywidgets is untyped)
        if widgets_available():
            self._build_widgets()

    def _batch_label(self, b: Mapping[str, Any]) -> str:
        return (
            f"{b['id']}  {tables.local_time(b['created_at'])}  {b['model']}  {b['backend']}  "
            f"{plural(b['job_count'] or 0, 'job')}, {b['done'] or 0} done, "
            f"{b['failed'] or 0} failed"
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
            if self._reloading:
                return
            self.batch_id = change["new"]
            self._notify()

        def status_changed(change: Mapping[str, Any]) -> None:
            self.status = change["new"]
            self._notify()

        self.model_w.observe(model_changed, names="value")
        self.batch_w.observe(batch_changed, names="value")
        self.status_w.observe(status_changed, names="value")
        self.widget = w.VBox([self.table_w, w.HBox([self.model_w, self.status_w]), self.batch_w])

    def reload(self) -> None:
        """Read the ledger's batches again: the list then offers a batch made since (a
        clip's *again*), the selection staying where it was."""
        self.batches = self.store.list_batches()
        if self.widget is None:
            return
        shown = [b for b in self.batches if self.model in (None, b["model"])]
        self._reloading = True  # new options reset the value: put it back, quietly
        try:
            self.batch_w.options = [(self._batch_label(b), b["id"]) for b in shown]
            if any(b["id"] == self.batch_id for b in shown):
                self.batch_w.value = self.batch_id
        finally:
            self._reloading = False
        self.table_w.value = self.batches_html()
        if self.batch_w.value != self.batch_id:
            self.batch_id = self.batch_w.value
            self._notify()

    def _notify(self) -> None:
        for fn in self._listeners:
            fn()

    def _live(self, render: Callable[[], Rich]) -> Live:
        """A view that redraws when the filters change."""
        return Live(render, self._listeners.append)

    # -- data ---------------------------------------------------------------------

    def batch(self) -> BatchRow | None:
        return self.store.get_batch(self.batch_id) if self.batch_id else None

    def jobs(self) -> list[JobRow]:
        if not self.batch_id:
            return []
        statuses = [self.status] if self.status else None
        rows = self.store.jobs(self.batch_id, statuses=statuses)
        return [r for r in rows if self.model in (None, r["model"])]

    def failed_jobs(self) -> list[JobRow]:
        if not self.batch_id:
            return []
        return self.store.jobs(self.batch_id, statuses=list(UNSUCCESSFUL))

    # -- views --------------------------------------------------------------------

    def batches_html(self) -> str:
        if not self.batches:
            return "<div>No batches in the ledger yet: run 01_generate first.</div>"
        return tables.batches_table(self.store, self.batches).html()

    def text(self) -> str:
        if not self.batches:
            return f"No batches in {self.settings.db_path} yet: run 01_generate first."
        table = tables.batches_table(self.store, self.batches)
        return table.text() + f"\nselected batch: {self.batch_id}"

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
            batch = self.batch()
            folder = batch["output_dir"] if batch else None
            table = tables.files_table(self.jobs(), folder)
            head = f"batch {self.batch_id}: videos in {folder}"
            return Rich(
                f"<div style='font:13px system-ui'>{g.esc(head)}</div>" + table.html(),
                head + "\n" + table.text(),
            )

        return self._live(render)

    def compare(self, workspace: Workspace | None = None) -> CompareView:
        """The comparison grid of the selected batch (redrawn when another is selected);
        each clip's *again* plans in ``workspace`` (the notebook's)."""
        view = CompareView(
            self.jobs,
            self.settings.db_path,
            self.batch_id,
            self.base,
            settings=self.settings,
            workspace=workspace,
            made=lambda _batch: self.reload(),
        )
        self._listeners.append(lambda: view.refresh(self.batch_id))
        self._compare = view
        return view

    def summary(self) -> Any:
        """Per model (:func:`i2vkit.summary.per_model`), then per varied value; and once
        `i2vkit cost` has read fal's bill, what fal billed beside the estimates (the
        report's table, :func:`i2vkit.tables.billed_table`)."""

        def render() -> Rich:
            if not self.batch_id:
                return self._empty()
            from ..summary import per_model, per_value_rows

            rows = per_model(self.store, self.batch_id) + per_value_rows(self.store, self.batch_id)
            shown = [tables.models_table(rows)]
            billed = tables.billed_table(self.store, self.batch_id)
            shown += [billed] if billed is not None else []
            return Rich("".join(t.html() for t in shown), "\n\n".join(t.text() for t in shown))

        return self._live(render)

    def report_folder(self) -> Path:
        """Where "Export report" writes by default for the batch picked now:
        ``reports/BATCH`` inside its output folder (as `i2vkit report`)."""
        from ..filenames import safe_component
        from ..report import default_folder

        batch = self.batch()
        if batch is None:
            return self.base / "reports" / safe_component(self.batch_id or "batch")
        return default_folder(batch)

    def export_report(
        self, folder: str | os.PathLike | None = None, *, replace: bool = False
    ) -> Path:
        """Write the selected batch's report (:func:`i2vkit.report.write_report`), with the
        grid laid out as the comparison view shows it; returns its index.html. A folder
        holding another batch's report is refused unless ``replace``."""
        from ..report import write_report

        if not self.batch_id:
            raise ValueError("No batch selected: run 01_generate first.")
        view = getattr(self, "_compare", None)
        axes = {"rows": view.rows, "cols": view.cols} if view is not None else {}
        return write_report(
            self.store,
            self.batch_id,
            folder or self.report_folder(),
            key=self.settings.fal_key,
            replace=replace,
            **axes,
        )

    def report_button(self) -> Any:
        """An "Export report" button and its folder (a widget), or how to write one (text)."""
        hint = (
            f"i2vkit report {self.batch_id} --out {self.report_folder()}  "
            "(or call browser.export_report())"
        )
        if not widgets_available():
            return Rich(f"<div>{g.esc(hint)}</div>", hint)
        import ipywidgets as w

        folder = w.Text(
            value=str(self.report_folder()),
            description="Folder",
            layout=w.Layout(width="620px"),
            style={"description_width": "60px"},
        )
        replace = w.ToggleButton(
            value=False,
            description="Replace",
            tooltip="first remove what an earlier report (of any batch) wrote in this folder",
            icon="recycle",
        )
        button = w.Button(description="Export report", icon="file-export")
        status = w.HTML()
        shown = {"default": folder.value}

        def batch_picked() -> None:  # the folder follows the batch unless one was typed
            if folder.value.strip() in ("", shown["default"]):
                folder.value = str(self.report_folder())
            shown["default"] = str(self.report_folder())

        self._listeners.append(batch_picked)

        def clicked(_b: Any) -> None:
            status.value = "writing..."
            typed = folder.value.strip()
            if typed in ("", shown["default"]):  # the default of the batch picked now
                typed = str(self.report_folder())
                folder.value = shown["default"] = typed
            try:
                index = self.export_report(typed, replace=replace.value)
            except Exception as exc:  # shown to the user, not raised into the void
                status.value = f"<span style='color:#c62828'>{g.esc(exc)}</span>"
                return
            status.value = (
                f"Report written: <code>{g.esc(index)}</code> (open it from disk; zip the "
                "folder to share it)."
            )

        button.on_click(clicked)
        self.report_w = (folder, button, status, replace)
        return _Widget(w.VBox([w.HBox([folder, button, replace]), status]), hint)

    def close(self) -> None:
        self.store.close()


class _Widget:
    """A widget in a notebook, its text elsewhere (what :func:`show` expects)."""

    def __init__(self, widget: Any, text: str):
        self.widget = widget
        self._text = text

    def text(self) -> str:
        return self._text
