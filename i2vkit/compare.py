"""The comparison grid: a batch's clips side by side, rows and columns picked from any
axis the batch varies along: image, prompt, each prompt variable, model, each varied
option (``--vary``) and take (:func:`axes_of`, :func:`choices`).

One renderer serves the notebook and the report: :func:`cells_from_rows` turns ledger
rows into :class:`Cell` (with each job's cost and time in fal's queue and running),
:func:`arrange` lays them out for a choice of axes, :func:`cell_html` draws one player
and :func:`grid_html` the whole grid; :data:`SCRIPT` is the small inline JavaScript both
use (players load only when scrolled into view, "play row", and in the report the
row/column pickers). Where a video's URL points is the caller's business (a
``video_url`` function): relative to the notebook in Jupyter, relative to the report
folder in a report.

Why players start with ``preload="none"`` and a poster: a grid of two hundred clips
that all fetched their metadata at once would stall the page and the Jupyter server;
the first frame (a small JPEG, :func:`first_frame`) shows what each clip is, and a clip
is fetched when it scrolls into view or is played. Without JavaScript (an untrusted
notebook) every player still plays on click.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import grid_layout as layout
from .errors import InputError
from .filenames import safe_component
from .gallery import STATUS_COLORS, esc
from .jobs import UNSUCCESSFUL, JobStatus
from .money import usd
from .planning.identity import row_axes
from .planning.options import model_of_row
from .planning.options import row_cost as cost
from .refs import image_name
from .rows import JobRow
from .timestamps import seconds_between

AXES = ("image", "prompt", "model", "take")
#: The row/column choices every batch offers (notebook dropdowns, report selects); a batch
#: that varies more offers each of its axes too (:func:`choices`).
CHOICES: dict[str, tuple[str, ...]] = {
    "image × prompt": ("image", "prompt"),
    "image": ("image",),
    "prompt": ("prompt",),
    "model": ("model",),
    "take": ("take",),
    "model × take": ("model", "take"),
    "image × prompt × take": ("image", "prompt", "take"),
    "nothing": (),
}
NO_MATH = "tex2jax_ignore mathjax_ignore"  # JupyterLab's MathJax leaves these alone
THUMB_DIR = "i2vkit-thumbs"  # next to the videos; no dot: Jupyter serves no hidden folder
THUMB_SIDE = 320


# --------------------------------------------------------------------------- cells


@dataclass
class Cell:
    """One job as the grid shows it."""

    job_id: int
    image: str
    prompt: str
    model: str
    take: int = 1
    seed: int | None = None
    status: str = ""
    video: str | None = None  # the local mp4 (downloaded jobs only)
    error: str | None = None
    cost: float | None = None
    queue_s: float | None = None
    run_s: float | None = None
    keeper: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    words: dict[str, str] = field(default_factory=dict)  # prompt variable -> its value
    varied: dict[str, str] = field(default_factory=dict)  # --vary option -> its value

    def value(self, axis: str) -> str:
        """The label of this cell on ``axis`` (what a row or column header shows); a varied
        axis this job does not have (a model without the option) shows "-"."""
        if axis == "image":
            return image_name(self.image)
        if axis == "prompt":
            return self.prompt
        if axis == "model":
            return self.model
        if axis == "take":
            return f"take {self.take}"
        if axis in self.words:
            return self.words[axis] or "(empty)"
        if axis in self.varied:
            return f"{axis} {self.varied[axis]}"
        return "-"

    def values(self) -> dict[str, str]:
        """The cell's label on each of its axes (the page script lays cells out by these)."""
        return {a: self.value(a) for a in (*AXES, *self.words, *self.varied)}


def axes_of(cells: Iterable[Cell]) -> tuple[str, ...]:
    """Every axis the cells vary along, in the grid's order: image, prompt, each prompt
    variable, model, each varied option, take."""
    cells = list(cells)
    words = dict.fromkeys(k for c in cells for k in c.words)
    varied = dict.fromkeys(k for c in cells for k in c.varied)
    return ("image", "prompt", *words, "model", *varied, "take")


def choices(cells: Iterable[Cell]) -> dict[str, tuple[str, ...]]:
    """The pickers' choices for these cells: :data:`CHOICES`, then each prompt variable
    and each varied option alone, and each with image."""
    out = dict(CHOICES)
    extra = [a for a in axes_of(cells) if a not in AXES]
    for axis in extra:
        out.setdefault(axis, (axis,))
    for axis in extra:
        out.setdefault(f"image × {axis}", ("image", axis))
    if len(extra) > 1:
        out.setdefault(" × ".join(extra), tuple(extra))
    return out


def row_cost(row: JobRow) -> float | None:
    """A ledger row's estimated price (its own model and options), None when unknown."""
    try:
        return cost(row, model_of_row(row))
    except (InputError, KeyError):
        return None


def cells_from_rows(rows: Iterable[JobRow]) -> list[Cell]:
    """Cells for ledger rows (``Store.jobs(batch)``), in the order the jobs were planned."""
    cells = []
    for r in rows:
        done = r.get("status") == JobStatus.DOWNLOADED
        axes = row_axes(r)
        cells.append(
            Cell(
                job_id=int(r["id"]),
                image=str(r.get("image_path") or "?"),
                prompt=r.get("prompt") or "",
                model=r.get("model") or "",
                take=int(r.get("take") or 1),
                seed=r.get("seed"),
                status=r.get("status") or "",
                video=r.get("local_file") if done else None,
                error=r.get("error"),
                cost=row_cost(r),
                queue_s=seconds_between(r.get("submitted_at"), r.get("started_at")),
                run_s=seconds_between(r.get("started_at"), r.get("completed_at")),
                keeper=bool(r.get("keeper")),
                options=json.loads(r.get("options") or "{}"),
                words=axes["prompt"],
                varied=axes["options"],
            )
        )
    return cells


#: At most this many columns by default: wider grids put an axis on the rows instead.
MAX_COLUMNS = 4


def default_axes(cells: Sequence[Cell]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Which axes go where when the user has not said: the columns are what is compared
    (models, varied options, then takes; for one model and one take, the prompts or else
    the images), as many as fit side by side (:data:`MAX_COLUMNS`); the rows are the rest."""

    def count(axes: Sequence[str]) -> int:
        return len({tuple(c.value(a) for a in axes) for c in cells})

    varied = tuple(dict.fromkeys(k for c in cells for k in c.varied))
    compared = [a for a in ("model", *varied, "take") if count((a,)) > 1]
    for n in range(len(compared), 0, -1):
        if n == 1 or count(compared[:n]) <= MAX_COLUMNS:
            return ("image", "prompt", *compared[n:]), tuple(compared[:n])
    for cols, rows in ((("prompt",), ("image",)), (("image",), ("prompt",))):
        if 1 < count(cols) <= MAX_COLUMNS:
            return rows, cols
    return ("image", "prompt"), ("model",)


def check_axes(rows: Sequence[str], cols: Sequence[str], known: Sequence[str] = AXES) -> None:
    """Refuse an axis the cells do not have (``known``: :func:`axes_of` them) or one on
    both sides."""
    for axis in (*rows, *cols):
        if axis not in known:
            raise ValueError(f"unknown axis {axis!r}; choose from {', '.join(known)}")
    both = set(rows) & set(cols)
    if both:
        raise ValueError(
            f"{', '.join(sorted(both))} is on both the rows and the columns: pick it for one"
        )


# ------------------------------------------------------------------------- layout


@dataclass
class Grid:
    """Cells laid out: row keys, column keys, and the cells of each (row, column) slot.
    Axes on neither side (a take when rows and columns do not name it) share a slot."""

    rows: tuple[str, ...]
    cols: tuple[str, ...]
    row_keys: list[tuple[str, ...]]
    col_keys: list[tuple[str, ...]]
    slots: dict[tuple[tuple[str, ...], tuple[str, ...]], list[Cell]]

    def slot(self, r: tuple[str, ...], c: tuple[str, ...]) -> list[Cell]:
        return self.slots.get((r, c), [])


def arrange(cells: Sequence[Cell], rows: Sequence[str], cols: Sequence[str]) -> Grid:
    """Lay ``cells`` out with ``rows`` and ``cols`` (tuples of axes); keys in the order they
    first appear among the cells (the plan's order)."""
    check_axes(rows, cols, axes_of(cells))
    row_keys: dict[tuple[str, ...], None] = {}
    col_keys: dict[tuple[str, ...], None] = {}
    slots: dict[tuple[tuple[str, ...], tuple[str, ...]], list[Cell]] = {}
    for cell in cells:
        r = tuple(cell.value(a) for a in rows)
        c = tuple(cell.value(a) for a in cols)
        row_keys.setdefault(r, None)
        col_keys.setdefault(c, None)
        slots.setdefault((r, c), []).append(cell)
    return Grid(tuple(rows), tuple(cols), list(row_keys), list(col_keys), slots)


def key_label(key: Sequence[str]) -> str:
    return " · ".join(key) if key else "all"


def row_header(index: int, key: Sequence[str]) -> tuple[str, str]:
    """A grid row's id and its label with its *play row* button (the same in the report's
    table and the notebook's widget grid, which the page script drives)."""
    row_id = f"r{index}"
    return row_id, layout.row_label(key, row_id)


# ------------------------------------------------------------------------ thumbnails


def first_frame(
    video: str | os.PathLike, cache_dir: str | os.PathLike | None = None
) -> Path | None:
    """The video's first frame as a small JPEG, made once and kept: in ``cache_dir``, else
    in ``i2vkit-thumbs`` next to the video, else in the user's cache folder (a read-only
    video folder). Remade when the video is newer. None when the video cannot be decoded."""
    src = Path(video)
    try:
        st = src.stat()
    except OSError:
        return None
    tag = hashlib.sha256(str(src.resolve()).encode("utf-8", "surrogatepass")).hexdigest()[:10]
    name = f"{safe_component(src.stem, max_len=80)}-{tag}.jpg"
    folders = [Path(cache_dir)] if cache_dir else [src.parent / THUMB_DIR, _user_cache()]
    for folder in folders:
        out = folder / name
        if out.is_file() and out.stat().st_mtime_ns >= st.st_mtime_ns:
            return out
        try:
            folder.mkdir(parents=True, exist_ok=True)
            return out if _write_first_frame(src, out) else None
        except OSError:
            continue
    return None


def _user_cache() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("i2vkit")) / "thumbs"


def _write_first_frame(src: Path, out: Path) -> bool:
    import av

    try:
        with av.open(str(src)) as container:
            frame = next(container.decode(video=0))
            img = frame.to_image()
    except (av.FFmpegError, StopIteration, IndexError, OSError, ValueError):
        return False
    img.thumbnail((THUMB_SIDE, THUMB_SIDE))
    tmp = out.with_name(out.name + ".part")
    img.convert("RGB").save(tmp, format="JPEG", quality=80)
    os.replace(tmp, out)
    return True


# ---------------------------------------------------------------------------- HTML

CSS = layout.CSS  # the notebook's and the report's (see i2vkit.grid_layout)

#: Inline, no library: lazy players (IntersectionObserver; a MutationObserver catches grids
#: drawn later, e.g. by widgets), "play row", and the report's row/column pickers.
SCRIPT = r"""
(function () {
  if (window.__i2vCompare) { window.__i2vCompare.scan(document); return; }
  var io = ('IntersectionObserver' in window) ? new IntersectionObserver(function (es) {
    es.forEach(function (e) { if (e.isIntersecting) { wake(e.target); io.unobserve(e.target); } });
  }, {rootMargin: '200px'}) : null;
  function wake(v) {
    if (v.getAttribute('preload') === 'none') { v.setAttribute('preload', 'metadata'); v.load(); }
  }
  function base() {
    var c = document.getElementById('jupyter-config-data');
    try { return (c && JSON.parse(c.textContent).baseUrl) || '/'; } catch (e) { return '/'; }
  }
  function scan(root) {
    root.querySelectorAll('video.i2v-lazy:not([data-i2v-seen])').forEach(function (v) {
      v.setAttribute('data-i2v-seen', '1');
      ['poster', 'src'].forEach(function (a) {
        var p = v.getAttribute('data-i2v-' + a);
        if (p !== null) v.setAttribute(a, base().replace(/\/?$/, '/') + 'files/' + p);
      });
      if (io) io.observe(v); else wake(v);
    });
  }
  document.addEventListener('click', function (ev) {
    var b = ev.target.closest && ev.target.closest('.i2v-play-row');
    if (!b) return;
    var grid = b.closest('.i2v-compare') || document;
    var vs = grid.querySelectorAll('video[data-row="' + b.getAttribute('data-row') + '"]');
    vs.forEach(function (v) { wake(v); v.muted = true; v.currentTime = 0; });
    vs.forEach(function (v) { var p = v.play(); if (p && p.catch) p.catch(function () {}); });
  });
  new MutationObserver(function () { scan(document); })
    .observe(document.body || document.documentElement, {childList: true, subtree: true});
  window.__i2vCompare = {scan: scan, wake: wake};
  scan(document);
})();
"""

#: The report's pickers: re-lay the cells out in the browser with the notebook's rules
#: (keys in first-seen order, unpicked axes share a slot) as :func:`arrange` does, and the
#: table's width as :func:`i2vkit.grid_layout.table_min_width` gives it.
ARRANGE_SCRIPT = r"""
(function () {
  var box = document.getElementById('i2v-compare');
  if (!box) return;
  var choices = JSON.parse(box.getAttribute('data-choices'));
  var rowSel = document.getElementById('i2v-rows'), colSel = document.getElementById('i2v-cols');
  var cells = Array.prototype.slice.call(box.querySelectorAll('.i2v-cell'));
  var CARD = CARD_MIN_PX;
  function label(c, axes) {
    var v = JSON.parse(c.getAttribute('data-axes'));
    return axes.map(function (a) { return a in v ? v[a] : '-'; });
  }
  function th(cls, inner, text) {
    var e = document.createElement('th'), d = document.createElement('div');
    e.className = cls; d.className = inner; if (text !== null) d.textContent = text;
    e.appendChild(d); return e;
  }
  function rowLabel(parts, rowId) {
    var wrap = document.createElement('div');
    wrap.title = parts.length ? parts.join(' \u00b7 ') : 'all';
    (parts.length ? parts : ['all']).forEach(function (p) {
      var k = document.createElement('div'); k.className = 'i2v-key'; k.textContent = p;
      wrap.appendChild(k);
    });
    var b = document.createElement('button');
    b.type = 'button'; b.className = 'i2v-play-row'; b.setAttribute('data-row', rowId);
    b.textContent = '\u25b6 play row'; wrap.appendChild(b);
    return wrap;
  }
  function draw() {
    var rows = choices[rowSel.value], cols = choices[colSel.value];
    var clash = rows.filter(function (a) { return cols.indexOf(a) >= 0; });
    var note = document.getElementById('i2v-axes-note');
    if (clash.length) { note.textContent = clash.join(', ') +
      ' is on both the rows and the columns: pick it for one'; return; }
    note.textContent = '';
    var rk = [], ck = [], slots = {};
    cells.forEach(function (c) {
      var r = JSON.stringify(label(c, rows)), k = JSON.stringify(label(c, cols));
      if (rk.indexOf(r) < 0) rk.push(r);
      if (ck.indexOf(k) < 0) ck.push(k);
      (slots[r + '|' + k] = slots[r + '|' + k] || []).push(c);
    });
    var show = function (k) { var v = JSON.parse(k); return v.length ? v.join(' \u00b7 ') : 'all'; };
    var table = document.createElement('table'); table.className = 'i2v-grid';
    var head = document.createElement('tr');
    head.appendChild(th('i2v-corner i2v-sticky-top i2v-sticky-left', 'i2v-blank', ''));
    table.style.minWidth = (176 + ck.length * (CARD + 6) + 6) + 'px';
    ck.forEach(function (k) {
      var h = th('i2v-col i2v-sticky-top', 'i2v-colhead', show(k));
      h.firstChild.title = show(k); head.appendChild(h);
    });
    table.appendChild(head);
    rk.forEach(function (r, i) {
      var tr = document.createElement('tr');
      var h = th('i2v-row i2v-sticky-left', 'i2v-rowhead', null);
      h.firstChild.appendChild(rowLabel(JSON.parse(r), 'r' + i));
      tr.appendChild(h);
      ck.forEach(function (k) {
        var td = document.createElement('td'), s = document.createElement('div');
        s.className = 'i2v-slot';
        (slots[r + '|' + k] || []).forEach(function (c) {
          c.querySelectorAll('video').forEach(function (v) { v.setAttribute('data-row', 'r' + i); });
          s.appendChild(c);
        });
        td.appendChild(s); tr.appendChild(td);
      });
      table.appendChild(tr);
    });
    var old = box.querySelector('table.i2v-grid');
    old.parentNode.replaceChild(table, old);
  }
  rowSel.addEventListener('change', draw); colSel.addEventListener('change', draw);
})();
""".replace("CARD_MIN_PX", str(layout.CARD_MIN_PX))


def meta_line(cell: Cell) -> str:
    """What a cell says under its player: model, varied options, take and seed, cost, queue and run times."""
    return " · ".join(meta_parts(cell))


def meta_parts(cell: Cell) -> list[str]:
    """The pieces of :func:`meta_line`, each kept on one line in a card (``US$ 0.40`` never
    breaks after ``US$``)."""
    parts = [f"job {cell.job_id}", cell.model, *(f"{k} {v}" for k, v in cell.varied.items())]
    parts.append(f"take {cell.take}")
    parts.append(f"seed {cell.seed}" if cell.seed is not None else "no seed")
    parts.append(usd(cell.cost))
    if cell.queue_s is not None:
        parts.append(f"queue {cell.queue_s:.1f}s")
    if cell.run_s is not None:
        parts.append(f"running {cell.run_s:.1f}s")
    return parts


def cell_html(
    cell: Cell,
    video_url: str | None,
    poster_url: str | None = None,
    *,
    row_id: str = "",
    note: str | None = None,
) -> str:
    """One cell: a looping muted player (``preload="none"``, the first frame as poster), or
    fal's reason for a failed job, and the meta line. ``note``: why a video has no URL."""
    color = STATUS_COLORS.get(cell.status, "#555")
    data = " ".join(f'data-{a}="{esc(cell.value(a))}"' for a in AXES)
    data += f' data-axes="{esc(json.dumps(cell.values(), ensure_ascii=False))}"'
    keeper = " i2v-keeper" if cell.keeper else ""
    out = [
        f'<div class="i2v-cell{keeper} {NO_MATH}" data-job-id="{cell.job_id}" '
        f'data-status="{esc(cell.status)}" {data}>'
    ]
    if cell.video and video_url:
        src = _attr("src", video_url)
        poster = _attr("poster", poster_url) if poster_url else ""
        out.append(
            f'<video class="i2v-lazy"{src}{poster} preload="none" muted loop '
            f'playsinline controls data-row="{esc(row_id)}" '
            f'title="{esc(Path(cell.video).name)}"></video>'
        )
    elif cell.video:
        out.append(f'<div class="i2v-box i2v-wait">{esc(note or "video not reachable")}</div>')
    elif cell.status in UNSUCCESSFUL:
        out.append(f'<div class="i2v-box i2v-fail">{esc(cell.error or cell.status)}</div>')
    else:
        out.append(f'<div class="i2v-box i2v-wait">{esc(cell.status)}: no video yet</div>')
    meta = " · ".join(f"<span style='white-space:nowrap'>{esc(p)}</span>" for p in meta_parts(cell))
    star = ' · <b style="color:#f9a825">★ keeper</b>' if cell.keeper else ""
    out.append(
        f'<div class="i2v-meta"><span class="i2v-status" style="color:{color};font-weight:600">'
        f"{esc(cell.status)}</span> · {meta}{star}</div>"
    )
    out.append(
        f'<div class="i2v-prompt" title="{esc(cell.prompt)}">{esc(image_name(cell.image))}: '
        f"{esc(cell.prompt[:90])}</div></div>"
    )
    return "".join(out)


#: A URL given as ``JUPYTER_FILES + path under the Jupyter root``: widget HTML is not
#: resolved by JupyterLab the way an HTML output is, so :data:`SCRIPT` builds the URL from
#: the server's own base URL (``/files/...`` on a plain server, ``/user/NAME/files/...`` on
#: a hub).
JUPYTER_FILES = "jupyter-files:"


def _attr(name: str, url: str) -> str:
    if url.startswith(JUPYTER_FILES):
        return f' data-i2v-{name}="{esc(url[len(JUPYTER_FILES) :])}"'
    return f' {name}="{esc(url)}"'


VideoUrl = Callable[[Cell], tuple[str | None, str | None, str | None]]


def grid_html(
    grid: Grid, urls: VideoUrl, *, script: bool = True, grid_id: str | None = None
) -> str:
    """The grid as a table: a header per column, a header and a "play row" button per row.
    ``urls(cell)`` gives (video URL, poster URL, note)."""
    out = [f"<style>{CSS}</style>"]
    ident = f' id="{esc(grid_id)}"' if grid_id else ""
    every = [c for slot in grid.slots.values() for c in slot]
    offered = esc(json.dumps({k: list(v) for k, v in choices(every).items()}))
    out.append(f'<div class="i2v-compare {NO_MATH}"{ident} data-choices="{offered}">')
    top, left = layout.STICKY_TOP, layout.STICKY_LEFT
    wide = layout.table_min_width(len(grid.col_keys))
    out.append(f'<div class="{layout.SCROLL}"><table class="i2v-grid" style="min-width:{wide}px">')
    out.append(f'<tr><th class="i2v-corner {top} {left}"></th>')
    out.extend(
        f'<th class="i2v-col {top}">{layout.column_header(key_label(c))}</th>'
        for c in grid.col_keys
    )
    out.append("</tr>")
    for i, r in enumerate(grid.row_keys):
        row_id, header = row_header(i, r)
        out.append(f'<tr><th class="i2v-row {left}"><div class="i2v-rowhead">{header}</div></th>')
        for c in grid.col_keys:
            cells = []
            for cell in grid.slot(r, c):
                video, poster, note = urls(cell)
                cells.append(cell_html(cell, video, poster, row_id=row_id, note=note))
            out.append(f'<td><div class="i2v-slot">{"".join(cells)}</div></td>')
        out.append("</tr>")
    out.append("</table></div></div>")
    if script:
        out.append(f"<script>{SCRIPT}</script>")
    return "".join(out)


def grid_text(grid: Grid) -> str:
    """The grid for a script or a log: one line per cell, grouped by row."""
    lines = [f"rows: {' x '.join(grid.rows) or 'all'}; columns: {' x '.join(grid.cols) or 'all'}"]
    for r in grid.row_keys:
        lines.append(f"[{key_label(r)}]")
        for c in grid.col_keys:
            for cell in grid.slot(r, c):
                where = cell.video or (f"error: {cell.error}" if cell.error else cell.status)
                lines.append(f"  {key_label(c):<24} {meta_line(cell)}  {where}")
    return "\n".join(lines)
