"""Past batches from the ledger (the gallery, the timeline, where each file lives), and
:func:`done`, the end of a notebook run that gives the exported script the CLI's exit code."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import compare as cmp
from .. import exits, tables
from .. import gallery as g
from .. import grid_layout as layout
from ..config import Settings, load_settings
from ..jobs import UNSUCCESSFUL, JobStatus
from ..money import plural
from ..timeline import timeline_svg, timeline_text
from .display import Live, Rich, in_kernel, notebook_dir, widgets_available

if TYPE_CHECKING:
    from ..engine import BatchResult
    from ..rows import BatchRow, JobRow


def gallery(source: Any, base: str | os.PathLike | None = None, **kwargs: Any) -> Rich:
    """The inline gallery of a BatchResult or ledger rows (text in a script)."""
    base = base if base is not None else notebook_dir()
    return Rich(g.gallery_html(source, base, **kwargs), g.gallery_text(source))


def timeline(rows: Sequence[Mapping[str, Any]], concurrency: int | None = None) -> Rich:
    return Rich(timeline_svg(rows, concurrency=concurrency), timeline_text(rows, concurrency))


def results_view(result: BatchResult, base: str | os.PathLike | None = None) -> Any:
    """The gallery to show after a run: the comparison grid when the batch ran several
    models or takes (what the user wants to compare), else the plain gallery."""
    from ..store import Store

    with Store(result.plan.ledger) as store:
        mine = {j.id for j in result.jobs}
        rows = [r for r in store.jobs(result.batch_id) if r["id"] in mine]
    if len({r["endpoint_id"] for r in rows}) > 1 or len({r["take"] for r in rows}) > 1:
        return CompareView(
            lambda: rows, result.plan.ledger, result.batch_id, base, title=result.batch_id
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

    def compare(self) -> CompareView:
        """The comparison grid of the selected batch (redrawn when another is selected)."""
        view = CompareView(self.jobs, self.settings.db_path, self.batch_id, self.base)
        self._listeners.append(lambda: view.refresh(self.batch_id))
        self._compare = view
        return view

    def summary(self) -> Any:
        """Per model (:func:`i2vkit.summary.per_model`), then per varied value."""

        def render() -> Rich:
            if not self.batch_id:
                return self._empty()
            from ..summary import per_model, per_value_rows

            rows = per_model(self.store, self.batch_id) + per_value_rows(self.store, self.batch_id)
            table = tables.models_table(rows)
            return Rich(table.html(), table.text())

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


# ------------------------------------------------------------------ comparison grid


class CompareView:
    """A batch's clips side by side (see :mod:`i2vkit.compare`): rows and columns picked
    from image, prompt, model and take with two dropdowns; per cell a looping muted
    player, its model, seed, cost and times (or fal's reason), and a "keeper" checkbox
    that writes the ledger at once (so a pick survives a kernel restart).

    In a notebook the grid is an ipywidgets GridBox (the checkboxes need the kernel) and
    the players' JavaScript (load when visible, "play row") comes in one HTML output shown
    before it; in a script the view is the grid's text.
    """

    def __init__(
        self,
        rows: Callable[[], Sequence[JobRow]],
        ledger: str | os.PathLike,
        batch_id: str | None,
        base: str | os.PathLike | None = None,
        *,
        title: str | None = None,
        axes: tuple[Sequence[str], Sequence[str]] | None = None,
    ):
        self.source = rows
        self.ledger = Path(ledger)
        self.batch_id = batch_id
        self.base = Path(base) if base is not None else notebook_dir()
        self.title = title
        self.cells = cmp.cells_from_rows(self.source())
        self.rows, self.cols = axes or cmp.default_axes(self.cells)
        self.error: str | None = None
        self.widget: Any = None  # an ipywidgets box once built (ipywidgets is untyped)
        self.keep_boxes: dict[int, Any] = {}
        self.card_ws: dict[int, Any] = {}  # each clip's HTML widget, redrawn on a pick
        if widgets_available():
            self._build_widgets()

    # -- data -----------------------------------------------------------------

    def grid(self) -> cmp.Grid:
        return cmp.arrange(self.cells, self.rows, self.cols)

    def set_axes(self, rows: Sequence[str], cols: Sequence[str]) -> None:
        """Lay the grid out again (what the dropdowns call); an impossible choice (an axis
        on both sides) keeps the grid as it was and says why."""
        try:
            cmp.check_axes(rows, cols, cmp.axes_of(self.cells))
        except ValueError as exc:
            self.error = str(exc)
        else:
            self.error = None
            self.rows, self.cols = tuple(rows), tuple(cols)
        self._redraw()

    def refresh(self, batch_id: str | None = None) -> None:
        """Read the jobs again (another batch, new keepers, a finished retry)."""
        if batch_id is not None:
            self.batch_id = batch_id
        self.cells = cmp.cells_from_rows(self.source())
        self.rows, self.cols = cmp.default_axes(self.cells) if batch_id else (self.rows, self.cols)
        if self.widget is not None:
            offered = list(cmp.choices(self.cells))
            self.rows_w.options, self.cols_w.options = offered, offered
            self.rows_w.value = _choice(self.rows, self.cells)
            self.cols_w.value = _choice(self.cols, self.cells)
        self._redraw()

    def set_keeper(self, job_id: int, keep: bool) -> None:
        """Record a pick in the ledger (the one place keepers live)."""
        from ..keepers import mark
        from ..store import Store

        with Store(self.ledger) as store:
            mark(store, self.batch_id or "", [job_id], keep)
        for cell in self.cells:
            if cell.job_id == job_id:
                cell.keeper = keep

    def urls(self, served: bool = False) -> cmp.VideoUrl:
        """Each cell's video and poster URLs relative to the notebook (small files outside
        the folder Jupyter serves are embedded, as in the gallery). ``served``: for widget
        HTML, which JupyterLab does not resolve: paths under the Jupyter root that the
        grid's script turns into the server's ``files/`` URLs."""
        linker = g.VideoLinker(self.base)

        def under_root(path: str | os.PathLike) -> str:
            if served:
                return cmp.JUPYTER_FILES + g.relative_url(path, linker.root)
            return g.relative_url(path, self.base)

        def urls(cell: cmp.Cell) -> tuple[str | None, str | None, str | None]:
            if not cell.video:
                return None, None, None
            src = linker.source(cell.video)
            url = src.url
            if url and not src.embedded:
                url = under_root(cell.video)
            thumb = cmp.first_frame(cell.video)
            poster = None
            if thumb is not None:
                if g.is_within(thumb.resolve(), linker.root):
                    poster = under_root(thumb)
                else:
                    poster = g.thumbnail_data_uri(thumb, side=cmp.THUMB_SIDE, max_chars=40_000)
            return url, poster, src.note

        return urls

    # -- views ----------------------------------------------------------------

    def heading(self) -> str:
        counts: dict[str, int] = {}
        for c in self.cells:
            counts[c.status] = counts.get(c.status, 0) + 1
        status = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no jobs"
        head = f"batch {self.title or self.batch_id}: " if (self.title or self.batch_id) else ""
        return f"{head}{plural(len(self.cells), 'job')} ({status})"

    def render(self) -> Rich:
        grid = self.grid()
        html = (
            f"<div style='font:13px system-ui,sans-serif;margin:4px 0'>{g.esc(self.heading())}"
            "</div>" + cmp.grid_html(grid, self.urls())
        )
        return Rich(html, self.heading() + "\n" + cmp.grid_text(grid))

    def text(self) -> str:
        return self.heading() + "\n" + cmp.grid_text(self.grid())

    def _repr_html_(self) -> str:
        return self.render().html

    def display_live(self) -> None:
        from IPython.display import HTML, display

        if self.widget is None:
            display(self.render())
            return
        # A plain HTML output runs its script (JupyterLab trusts what this session ran);
        # the widget's HTML would not.
        display(HTML(f"<style>{cmp.CSS}</style><script>{cmp.SCRIPT}</script>"))
        display(self.widget)

    def _build_widgets(self) -> None:
        import ipywidgets as w

        style = {"description_width": "60px"}
        options = list(cmp.choices(self.cells))  # every axis the batch varies along
        self.rows_w = w.Dropdown(
            options=options, value=_choice(self.rows, self.cells), description="Rows", style=style
        )
        self.cols_w = w.Dropdown(
            options=options,
            value=_choice(self.cols, self.cells),
            description="Columns",
            style=style,
        )
        self.head_w = w.HTML()
        self.note_w = w.HTML()
        self.grid_w = w.GridBox()
        self.grid_w.add_class("i2v-compare")
        self.grid_w.add_class("i2v-gridbox")

        def changed(_change: Mapping[str, Any]) -> None:
            offered = cmp.choices(self.cells)
            self.set_axes(offered[self.rows_w.value], offered[self.cols_w.value])

        self.rows_w.observe(changed, names="value")
        self.cols_w.observe(changed, names="value")
        self.widget = w.VBox(
            [self.head_w, w.HBox([self.rows_w, self.cols_w]), self.note_w, self.grid_w]
        )
        for name in cmp.NO_MATH.split():
            self.widget.add_class(name)
        self._redraw()

    def _redraw(self) -> None:
        if self.widget is None:
            return
        import ipywidgets as w

        self.head_w.value = f"<b>{g.esc(self.heading())}</b>"
        self.note_w.value = (
            f"<span style='color:#c62828'>{g.esc(self.error)}</span>" if self.error else ""
        )
        grid = self.grid()
        urls = self.urls(served=True)
        corner = w.HTML("")
        children: list[Any] = [_sticky(corner, layout.STICKY_TOP, layout.STICKY_LEFT)]
        children += [
            _sticky(
                w.HTML(layout.column_header(cmp.key_label(c))),
                layout.STICKY_TOP,
            )
            for c in grid.col_keys
        ]
        self.keep_boxes, self.card_ws = {}, {}
        for i, r in enumerate(grid.row_keys):
            row_id, header = cmp.row_header(i, r)
            label = w.HTML(f"<div class='i2v-rowhead {cmp.NO_MATH}'>{header}</div>")
            children.append(_sticky(label, layout.STICKY_LEFT))
            for c in grid.col_keys:
                cards = [self._card(cell, row_id, urls) for cell in grid.slot(r, c)]
                children.append(
                    w.HBox(cards, layout=w.Layout(flex_flow="row wrap", grid_gap="6px"))
                )
        self.grid_w.layout = w.Layout(
            grid_template_columns=layout.columns_template(len(grid.col_keys)), grid_gap="6px"
        )
        self.grid_w.children = children

    def _card(self, cell: cmp.Cell, row_id: str, urls: cmp.VideoUrl) -> Any:
        """One clip and its *keeper* checkbox; ticking it writes the ledger and redraws the
        card at once (the keeper's frame and star, as the report shows them)."""
        import ipywidgets as w

        video, poster, note = urls(cell)

        def draw() -> str:
            return cmp.cell_html(cell, video, poster, row_id=row_id, note=note)

        html = w.HTML(draw())
        box = w.Checkbox(
            value=cell.keeper, description="keeper", indent=False, layout=w.Layout(width="auto")
        )

        def changed(change: Mapping[str, Any]) -> None:
            self.set_keeper(cell.job_id, bool(change["new"]))
            html.value = draw()

        box.observe(changed, names="value")
        self.keep_boxes[cell.job_id] = box
        self.card_ws[cell.job_id] = html
        card = w.VBox([html, box])
        card.add_class("i2v-cardbox")
        return card


def _sticky(widget: Any, *classes: str) -> Any:
    for name in classes:
        widget.add_class(name)
    return widget


def _choice(axes: Sequence[str], cells: Sequence[cmp.Cell]) -> str:
    """The dropdown label of a choice of axes among those the cells offer."""
    offered = cmp.choices(cells)
    for label, value in offered.items():
        if tuple(value) == tuple(axes):
            return label
    raise ValueError(f"no picker choice for {' x '.join(axes)}; choose from {', '.join(offered)}")
