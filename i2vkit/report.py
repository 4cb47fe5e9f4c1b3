"""A batch as a folder anyone can open: ``index.html``, its videos, thumbnails and ``jobs.csv``.

Why a folder and not one HTML file: videos embedded as data URIs would make a page of
hundreds of megabytes that browsers refuse to load. Why hard links: a report of a big
batch costs no disk space and is written in a moment; a different drive (or a file
system without links) falls back to a copy. Every reference in the page is a relative
URL into the folder (:func:`filenames.file_url`), so the folder can be zipped, moved
or opened from a USB stick; nothing is fetched from the network (no fonts, no
libraries: the little JavaScript is inline) and every name is valid on Windows
(:func:`filenames.safe_component`).

The page shows the plan (images, prompts, models), the comparison grid with the
notebook's row/column pickers, the timeline, the per-model summary and the failed jobs
with fal's reasons.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import compare as cmp
from . import gallery as g
from .billing import tally
from .config import redact
from .csvcells import safe_cell
from .errors import InputError
from .filenames import file_url, safe_component
from .jobs import UNSUCCESSFUL, JobStatus
from .money import plural
from .provenance import sidecar_path
from .refs import image_stem, is_url
from .report_folder import SUBFOLDERS, prepare, write_manifest
from .rows import BatchRow, JobRow
from .store import Store
from .tables import billed_table, local_time, models_table
from .timeline import timeline_svg

CSV_COLUMNS = [
    "job_id", "image", "prompt", "model", "endpoint_id", "take", "seed", "options", "axes",
    "status", "error", "error_type", "cost_usd", "queue_s", "run_s", "created_at", "submitted_at",
    "started_at", "completed_at", "downloaded_at", "keeper", "request_id", "video",
]  # fmt: skip
IMAGE_SIDE = 160


def default_folder(batch: BatchRow) -> Path:
    """Where a batch's report goes unless told: ``reports/BATCH`` inside its output folder
    (beside its videos, never inside the repository or the current folder by accident)."""
    return Path(batch["output_dir"]) / "reports" / safe_component(batch["id"])


def write_report(
    store: Store,
    batch_id: str,
    out: str | os.PathLike | None = None,
    *,
    rows: Sequence[str] | None = None,
    cols: Sequence[str] | None = None,
    key: str | None = None,
    replace: bool = False,
) -> Path:
    """Write the report of ``batch_id`` (a prefix is enough) into ``out`` and return the
    path of its ``index.html``. ``rows``/``cols``: the grid's first layout (the notebook's
    current choice; default image x prompt by model/take). ``key``: removed from every text
    written (the ledger never holds it; this is the belt to that brace). A folder holding
    another batch's report is refused unless ``replace`` (:mod:`i2vkit.report_folder`)."""
    batch = store.get_batch(batch_id)
    if batch is None:
        raise InputError(f"No batch {batch_id!r} in {store.path}; `i2vkit status` lists them.")
    folder = Path(out) if out is not None else default_folder(batch)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder} is a file; give --out a folder (new or an earlier report).")
    folder = folder.resolve()
    prepare(folder, batch["id"], replace=replace)
    for sub in SUBFOLDERS:
        (folder / sub).mkdir(parents=True, exist_ok=True)
    jobs = store.jobs(batch["id"])
    cells = cmp.cells_from_rows(jobs)
    videos = {c.job_id: _place_video(c, folder / "videos") for c in cells if c.video}
    thumbs = {job: cmp.first_frame(path, folder / "thumbs") for job, path in videos.items() if path}

    def urls(cell: cmp.Cell) -> tuple[str | None, str | None, str | None]:
        video = videos.get(cell.job_id)
        if video is None:
            return None, None, "the video file is missing from the output folder"
        thumb = thumbs.get(cell.job_id)
        return (
            file_url(video, folder),
            file_url(thumb, folder) if thumb else None,
            None,
        )

    if rows is None or cols is None:
        d_rows, d_cols = cmp.default_axes(cells)
        rows = d_rows if rows is None else rows
        cols = d_cols if cols is None else cols
    grid = cmp.arrange(cells, rows, cols)
    images = {
        ref: _image_thumb(ref, folder / "images") for ref in dict.fromkeys(c.image for c in cells)
    }
    page = _page(store, batch, jobs, cells, grid, urls, (folder, images))
    _write_text(folder / "index.html", redact(page, key))
    _write_text(
        folder / "jobs.csv",
        redact(_csv(jobs, cells, videos, folder, batch["images_dir"]), key),
        bom=True,
    )
    written = [*videos.values(), *thumbs.values(), *images.values()]
    written += [s for v in videos.values() if v and (s := sidecar_path(v)).exists()]  # NAME.json
    written += [folder / "index.html", folder / "jobs.csv"]
    write_manifest(folder, batch["id"], [p for p in written if p is not None])
    return folder / "index.html"


def _write_text(path: Path, text: str, bom: bool = False) -> None:
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(text, encoding="utf-8-sig" if bom else "utf-8", newline="")
    os.replace(tmp, path)


def _place_video(cell: cmp.Cell, folder: Path) -> Path | None:
    """The job's video inside the report: a hard link, else a copy; None when it is gone."""
    src = Path(cell.video or "")
    if not src.is_file():
        return None
    stem = image_stem(cell.image) or "image"
    name = safe_component(f"{cell.job_id}_{stem}_{cell.model}_take{cell.take}") + ".mp4"
    dest = folder / name
    if dest.exists():
        try:
            if dest.samefile(src) or dest.stat().st_size == src.stat().st_size:
                _place_sidecar(src, dest)
                return dest
        except OSError:
            pass
        dest.unlink()
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy2(src, dest)
    _place_sidecar(src, dest)
    return dest


def _place_sidecar(src: Path, dest: Path) -> None:
    """The video's recipe (``NAME.json``) beside it in the report, when it has one."""
    side, target = sidecar_path(src), sidecar_path(dest)
    if side.is_file() and not target.exists():
        try:
            os.link(side, target)
        except OSError:
            shutil.copy2(side, target)


def _image_thumb(ref: str, folder: Path) -> Path | None:
    """A small JPEG of an input image in ``images/`` (a URL image has none: nothing outside
    the folder is referenced)."""
    if is_url(ref) or not Path(ref).is_file():
        return None
    from PIL import Image

    tag = hashlib.sha256(ref.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    dest = folder / f"{safe_component(Path(ref).stem, max_len=80)}-{tag}.jpg"
    if dest.is_file():
        return dest
    try:
        with Image.open(ref) as im:
            im.thumbnail((IMAGE_SIDE, IMAGE_SIDE))
            im.convert("RGB").save(dest, format="JPEG", quality=80)
    except (OSError, ValueError):
        return None
    return dest


def _csv(
    jobs: Sequence[JobRow],
    cells: Sequence[cmp.Cell],
    videos: Mapping[int, Path | None],
    folder: Path,
    images_dir: str | None,
) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, CSV_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for r, c in zip(jobs, cells, strict=True):
        video = videos.get(c.job_id)
        image = _image_name(r["image_path"], images_dir)
        row = {
            "job_id": c.job_id,
            "image": image,
            "prompt": r["prompt"],
            "model": r["model"],
            "endpoint_id": r["endpoint_id"],
            "take": c.take,
            "seed": "" if c.seed is None else c.seed,
            "options": json.dumps(c.options, sort_keys=True, ensure_ascii=False),
            "axes": json.dumps({**c.words, **c.varied}, ensure_ascii=False)
            if c.words or c.varied
            else "",
            "status": r["status"],
            "error": (r.get("error") or "").replace(r["image_path"], image),
            "error_type": r.get("error_type") or "",
            "cost_usd": "" if c.cost is None else f"{c.cost:.4f}",
            "queue_s": "" if c.queue_s is None else c.queue_s,
            "run_s": "" if c.run_s is None else c.run_s,
            **{
                k: r.get(k) or ""
                for k in (
                    "created_at",
                    "submitted_at",
                    "started_at",
                    "completed_at",
                    "downloaded_at",
                    "request_id",
                )
            },  # fmt: skip
            "keeper": int(c.keeper),
            "video": file_url(video, folder) if video else "",
        }
        writer.writerow({k: safe_cell(v) for k, v in row.items()})  # no formula runs
    return buf.getvalue()


def _image_name(ref: str, images_dir: str | None) -> str:
    """An input image as the report names it: its path inside the batch's images folder
    (``beach.png``, ``day2/beach.png``), else its file name; a URL as given. Never the
    absolute path it has on this machine."""
    if is_url(ref):
        return ref
    path = Path(ref)
    if images_dir and Path(images_dir) in path.parents:
        return path.relative_to(images_dir).as_posix()
    return path.name


# ---------------------------------------------------------------------------- page

PAGE_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#222;background:#fafafa}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px}
.i2v-sub{color:#555} .i2v-plan{display:flex;gap:24px;flex-wrap:wrap}
.i2v-images{display:flex;gap:8px;flex-wrap:wrap}
.i2v-images figure{margin:0;width:120px;font-size:11px;word-break:break-all}
.i2v-images img{width:120px;height:90px;object-fit:cover;border-radius:4px;background:#ddd}
table.i2v-table{border-collapse:collapse;font-size:13px;background:#fff}
table.i2v-table th,table.i2v-table td{border:1px solid #ddd;padding:3px 8px;text-align:left;
 vertical-align:top}
.i2v-pickers{margin:6px 0 10px} .i2v-pickers select{margin:0 12px 0 4px}
#i2v-axes-note{color:#c62828;margin-left:8px}
"""


def _table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    head = "".join(f"<th>{g.esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{g.esc(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f'<table class="i2v-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _select(ident: str, chosen: Sequence[str], offered: Mapping[str, Sequence[str]]) -> str:
    opts = []
    for label, axes in offered.items():
        sel = " selected" if tuple(axes) == tuple(chosen) else ""
        opts.append(f'<option value="{g.esc(label)}"{sel}>{g.esc(label)}</option>')
    if tuple(chosen) not in {tuple(a) for a in offered.values()}:
        raise InputError(
            f"The report's pickers offer {', '.join(offered)}; {' x '.join(chosen)} is not one."
        )
    return f'<select id="{ident}">{"".join(opts)}</select>'


def _page(
    store: Store,
    batch: BatchRow,
    jobs: Sequence[JobRow],
    cells: Sequence[cmp.Cell],
    grid: cmp.Grid,
    urls: cmp.VideoUrl,
    images: tuple[Path, Mapping[str, Path | None]],
) -> str:
    """index.html: the batch at a glance, its plan, the comparison grid, the timeline, the
    per-model table and the failed jobs, each section built by its own function.
    ``images``: the report's folder, and each input image's thumbnail in it."""
    parts = [
        _overview(batch, jobs, cells),
        _plan_section(cells, *images),
        _comparison_section(grid, urls),
        "<h2>Timeline</h2>",
        timeline_svg(jobs),
        _per_model_section(store, batch["id"]),
        _failed_section(cells),
        f"<script>{cmp.SCRIPT}</script><script>{cmp.ARRANGE_SCRIPT}</script>",
        "</body></html>",
    ]
    return "\n".join(parts)


def _overview(batch: BatchRow, jobs: Sequence[JobRow], cells: Sequence[cmp.Cell]) -> str:
    """The page's head and its first lines: the batch, its jobs by status, the cost."""
    counts: dict[str, int] = {}
    for r in jobs:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    money = tally(jobs, cmp.row_cost).describe()  # billing.py: what fal may bill
    written = datetime.now(UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    status_line = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no jobs"
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width,initial-scale=1'>",
        f"<title>i2vkit report: batch {g.esc(batch['id'])}</title>",
        f"<style>{PAGE_CSS}{cmp.CSS}</style></head><body class='{cmp.NO_MATH}'>",
        f"<h1>Batch {g.esc(batch['id'])}</h1>",
        f"<div class='i2v-sub'>{plural(len(jobs), 'job')} ({g.esc(status_line)}) on "
        f"{g.esc(batch['backend'])}; estimated cost (what fal may bill): {g.esc(money)}; created "
        f"{g.esc(local_time(batch['created_at']))}; report written {g.esc(written)}. "
        "Every job with its options, seed, error, cost and times: "
        "<a href='jobs.csv'>jobs.csv</a>.</div>",
    ]
    return "\n".join(parts)


def _plan_section(
    cells: Sequence[cmp.Cell], folder: Path, thumbs: Mapping[str, Path | None]
) -> str:
    """What the batch was made of: the images (thumbnails), the prompts and the models."""
    images = list(dict.fromkeys(c.image for c in cells))
    prompts = list(dict.fromkeys(c.prompt for c in cells))
    models = list(dict.fromkeys(c.model for c in cells))
    figures = []
    for ref in images:
        thumb = thumbs.get(ref)
        img = f'<img src="{g.esc(file_url(thumb, folder))}" alt="">' if thumb else ""
        caption = g.esc(cmp.Cell(0, ref, "", "").value("image"))
        figures.append(f"<figure>{img}<figcaption>{caption}</figcaption></figure>")
    parts = [
        "<h2>Plan</h2><div class='i2v-plan'>",
        f"<div><b>{plural(len(images), 'image')}</b><div class='i2v-images'>{''.join(figures)}</div></div>",
        f"<div><b>{plural(len(prompts), 'prompt')}</b><ol>"
        + "".join(f"<li>{g.esc(p)}</li>" for p in prompts)
        + "</ol></div>",
        f"<div><b>{plural(len(models), 'model')}</b><ul>"
        + "".join(f"<li>{g.esc(m)}</li>" for m in models)
        + "</ul></div></div>",
    ]
    return "\n".join(parts)


def _comparison_section(grid: cmp.Grid, urls: cmp.VideoUrl) -> str:
    """The comparison grid, with the pickers that choose its rows and columns (every axis
    the batch varies along: :func:`compare.choices`)."""
    offered = cmp.choices(c for slot in grid.slots.values() for c in slot)
    pickers = (
        "<h2>Comparison</h2><div class='i2v-pickers'>Rows "
        + _select("i2v-rows", grid.rows, offered)
        + "Columns "
        + _select("i2v-cols", grid.cols, offered)
        + "<span id='i2v-axes-note'></span></div>"
    )
    return pickers + "\n" + cmp.grid_html(grid, urls, script=False, grid_id="i2v-compare")


def _per_model_section(store: Store, batch_id: str) -> str:
    """Per model: jobs, videos, failures, mean times and costs (see :mod:`i2vkit.summary`);
    then the same per value of each varied option and prompt variable."""
    from .summary import per_model, per_value_rows

    out = "<h2>Per model</h2>\n" + models_table(per_model(store, batch_id), endpoint=True).html()
    values = per_value_rows(store, batch_id)
    if values:
        out += "\n<h2>Per value</h2>\n" + models_table(values).html()
    return out + _billed_section(store, batch_id)


def _billed_section(store: Store, batch_id: str) -> str:
    """What fal billed beside the estimates, once `i2vkit cost` has read it (the table
    notebook 02 shows too)."""
    table = billed_table(store, batch_id)
    return "" if table is None else "\n" + table.html()


def _failed_section(cells: Sequence[cmp.Cell]) -> str:
    """The jobs that failed or were cancelled, with fal's reason."""
    failed = [
        (c.job_id, c.value("image"), c.prompt, c.model, c.take, c.status, c.error or "")
        for c in cells
        if c.status in UNSUCCESSFUL
    ]
    columns = ["job", "image", "prompt", "model", "take", "status", "fal's reason"]
    table = _table(failed, columns) if failed else "<p>None.</p>"
    return f"<h2>Failed jobs ({len(failed)})</h2>\n" + table


def report_summary(index: Path, store: Store, batch_id: str) -> str:
    """What `i2vkit report` prints: where the page is and what it holds."""
    jobs = store.jobs((store.get_batch(batch_id) or {"id": batch_id})["id"])
    videos = sum(r["status"] == JobStatus.DOWNLOADED for r in jobs)
    return (
        f"report of batch {batch_id}: {plural(len(jobs), 'job')}, {plural(videos, 'video')}\n"
        f"open {index} (no server needed; the folder {index.parent} can be zipped or moved)"
    )
