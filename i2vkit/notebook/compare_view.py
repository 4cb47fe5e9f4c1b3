"""The comparison grid in a notebook: :class:`CompareView`, a batch's clips side by side
(laid out by :mod:`i2vkit.compare` and :mod:`i2vkit.grid_layout`, the report's renderer),
with a *keeper* box and an *again* button under each clip.

*Again* is `i2vkit again VIDEO.mp4` for that clip (:class:`~i2vkit.notebook.again.AgainPanel`):
its plan and cost first, then the CLI's question where it asks, then a new batch.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import compare as cmp
from .. import gallery as g
from .. import grid_layout as layout
from ..money import plural
from .display import Rich, notebook_dir, widgets_available

if TYPE_CHECKING:
    from ..config import Settings
    from ..rows import JobRow
    from ..workspace import Workspace


class CompareView:
    """A batch's clips side by side (see :mod:`i2vkit.compare`): rows and columns picked
    from image, prompt, model and take with two dropdowns; per cell a looping muted
    player, its model, seed, cost and times (or fal's reason), a "keeper" checkbox that
    writes the ledger at once (so a pick survives a kernel restart), and under each video
    an "again" button: `i2vkit again` for that clip, planned, priced and confirmed in the
    panel above the grid (:class:`~i2vkit.notebook.again.AgainPanel`; ``workspace`` is
    the notebook's, else one is opened from ``settings`` on the first click).

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
        settings: Settings | None = None,
        workspace: Workspace | None = None,
        made: Callable[[str], None] | None = None,
    ):
        self.source = rows
        self.made = made  # told each batch a clip's *again* made (the batch list reloads)
        self.ledger = Path(ledger)
        self.batch_id = batch_id
        self.base = Path(base) if base is not None else notebook_dir()
        self.title = title
        self.settings, self.workspace = settings, workspace
        self.cells = cmp.cells_from_rows(self.source())
        self.rows, self.cols = axes or cmp.default_axes(self.cells)
        self.error: str | None = None
        self.widget: Any = None  # an ipywidgets box once built (ipywidgets is untyped)
        self.keep_boxes: dict[int, Any] = {}
        self.card_ws: dict[int, Any] = {}  # each clip's HTML widget, redrawn on a pick
        self.again_buttons: dict[int, Any] = {}  # each video's *again*
        self.again_panel: Any = None
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

    def again(self, job_id: int) -> None:
        """A clip's *again*: its plan and cost in the panel (nothing is submitted yet)."""
        cell = next(c for c in self.cells if c.job_id == job_id)
        if self.again_panel is not None and cell.video:
            self.again_panel.choose(cell.video, job_id)

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
        from .again import AgainPanel

        self.again_panel = AgainPanel(self.settings, self.workspace, made=self.made)
        self.widget = w.VBox(
            [
                self.head_w,
                w.HBox([self.rows_w, self.cols_w]),
                self.note_w,
                self.again_panel.widget,
                self.grid_w,
            ]
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
        self.keep_boxes, self.card_ws, self.again_buttons = {}, {}, {}
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
        """One clip, its *keeper* checkbox (ticking it writes the ledger and redraws the
        card at once: the keeper's frame and star, as the report shows them) and, for a
        video, its *again* button."""
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
        actions = [box]
        if cell.video:
            again = w.Button(
                description="again",
                icon="redo",
                tooltip="more like this clip: the same model, arguments and image, a new "
                "seed; its plan and cost show above the grid before anything is submitted",
                layout=w.Layout(width="auto"),
            )
            again.add_class("i2v-again-button")
            again.on_click(lambda _b: self.again(cell.job_id))
            self.again_buttons[cell.job_id] = again
            actions.append(again)
        card = w.VBox([html, w.HBox(actions, layout=w.Layout(align_items="center"))])
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
