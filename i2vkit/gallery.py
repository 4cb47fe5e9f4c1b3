"""HTML for the notebooks: the video gallery and small tables (the batch timeline is
in :mod:`i2vkit.timeline`).

Pure functions (no widgets, no IPython), so they are easy to test and reuse.

Videos are *referenced* by a URL relative to the notebook's folder (``base``), not
embedded, so an executed notebook stays small and a gallery of a hundred clips is
a few dozen kilobytes of HTML. JupyterLab resolves such a relative URL through its
file server, which only serves files under the folder Jupyter was started in (the
"root"). A video outside that root cannot be served at all; for those the gallery
embeds small files (a data URI, within a per-file and a total budget) and shows
the path of the others. Everything that comes from a user (prompts, file names,
errors) is HTML-escaped.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import html
import io
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .filenames import file_url
from .jobs import UNSUCCESSFUL, JobStatus
from .money import plural
from .refs import image_name

#: A thumbnail data URI is at most this many characters (about 8 KB).
THUMB_MAX_CHARS = 8000
THUMB_SIDE = 160
#: Cards show a 48 px thumbnail; 96 px keeps it sharp on high-DPI screens and ~1.5 KB.
CARD_THUMB_SIDE = 96
#: Videos outside the Jupyter root are embedded only when this small...
EMBED_MAX_BYTES = 256 * 1024
#: ...and while the embedded total stays under this.
EMBED_BUDGET_BYTES = 4 * 1024 * 1024
#: Cards drawn at most; the rest are counted in a line under the grid.
GALLERY_LIMIT = 200

ROOT_MARKERS = ("pyproject.toml", ".git", "setup.py", "setup.cfg")

# Keyed by JobStatus, looked up with the ledger's plain strings (a StrEnum equals its value).
STATUS_COLORS: dict[str, str] = {
    JobStatus.DOWNLOADED: "#2e7d32",
    JobStatus.COMPLETED: "#1565c0",
    JobStatus.RUNNING: "#1565c0",
    JobStatus.QUEUED: "#ef6c00",
    JobStatus.SUBMITTING: "#ef6c00",
    JobStatus.PENDING: "#757575",
    JobStatus.FAILED: "#c62828",
    JobStatus.CANCELLED: "#c62828",
}


def esc(value: Any) -> str:
    """HTML-escape anything (quotes too, so it is safe inside attributes)."""
    return html.escape("" if value is None else str(value), quote=True)


# ------------------------------------------------------------------------ items


@dataclass
class GalleryItem:
    """One card: a job and what to show for it."""

    job_id: int | None
    image: str | None
    prompt: str
    model: str
    status: str
    video: str | None = None
    error: str | None = None
    request_id: str | None = None


def items_from_result(result: Any) -> list[GalleryItem]:
    """Cards for a :class:`~i2vkit.engine.BatchResult`."""
    model = getattr(getattr(result, "plan", None), "model", None)
    name = getattr(model, "name", "") or ""
    return [
        GalleryItem(
            job_id=j.id,
            image=j.image,
            prompt=j.prompt,
            model=name,
            status=j.status,
            video=j.video,
            error=j.error,
            request_id=j.request_id,
        )
        for j in result.jobs
    ]


def items_from_rows(rows: Iterable[Mapping[str, Any]]) -> list[GalleryItem]:
    """Cards for ledger rows (``Store.jobs(...)``)."""
    items = []
    for r in rows:
        items.append(
            GalleryItem(
                job_id=r.get("id"),
                image=r.get("image_path"),
                prompt=r.get("prompt") or "",
                model=r.get("model") or "",
                status=r.get("status") or "",
                video=r.get("local_file") if r.get("status") == JobStatus.DOWNLOADED else None,
                error=r.get("error"),
                request_id=r.get("request_id"),
            )
        )
    return items


def as_items(source: Any) -> list[GalleryItem]:
    """Accept a BatchResult, ledger rows or GalleryItems."""
    if hasattr(source, "jobs") and hasattr(source, "batch_id"):
        return items_from_result(source)
    source = list(source)
    if source and isinstance(source[0], GalleryItem):
        return source
    return items_from_rows(source)


# ------------------------------------------------------------------------ paths


def find_root(base: str | os.PathLike) -> Path:
    """Where Jupyter was most likely started: ``I2VKIT_JUPYTER_ROOT``, else the nearest
    folder above ``base`` holding a project marker (pyproject.toml, .git), else the
    parent of ``base`` (the usual layout: ``project/notebooks/x.ipynb``)."""
    env = os.environ.get("I2VKIT_JUPYTER_ROOT")
    if env:
        return Path(env).expanduser().resolve()
    base = Path(base).resolve()
    for folder in (base, *base.parents):
        if any((folder / m).exists() for m in ROOT_MARKERS):
            return folder
    return base.parent


def is_within(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
    except ValueError:
        return False
    return True


def relative_url(path: str | os.PathLike, base: str | os.PathLike) -> str:
    """A URL for ``path`` relative to the folder ``base`` (see :func:`filenames.file_url`)."""
    return file_url(Path(path).resolve(), Path(base).resolve())


@dataclass
class VideoSource:
    """How a card plays its video: ``url`` (relative or data URI) or only ``note``."""

    url: str | None
    embedded: bool = False
    note: str | None = None


class VideoLinker:
    """Decides per video: relative URL (under the root), small embed, or a note."""

    def __init__(
        self,
        base: str | os.PathLike,
        root: str | os.PathLike | None = None,
        embed_max_bytes: int = EMBED_MAX_BYTES,
        embed_budget_bytes: int = EMBED_BUDGET_BYTES,
    ):
        self.base = Path(base).resolve()
        self.root = Path(root).resolve() if root is not None else find_root(self.base)
        self.embed_max_bytes = embed_max_bytes
        self.budget = embed_budget_bytes
        self.embedded_bytes = 0

    def source(self, video: str | os.PathLike) -> VideoSource:
        path = Path(video).resolve()
        if not path.is_file():
            return VideoSource(None, note=f"file missing: {path}")
        if is_within(path, self.root):
            return VideoSource(relative_url(path, self.base))
        size = path.stat().st_size
        if size <= self.embed_max_bytes and self.embedded_bytes + size <= self.budget:
            self.embedded_bytes += size
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            return VideoSource(f"data:video/mp4;base64,{data}", embedded=True)
        return VideoSource(
            None,
            note=(
                f"{path} is outside the folder Jupyter serves ({self.root}), so the browser "
                "cannot load it; choose an output folder under it (the default: downloads next to the notebook) "
                "or set I2VKIT_JUPYTER_ROOT"
            ),
        )


# ------------------------------------------------------------------- thumbnails


@functools.lru_cache(maxsize=1024)
def _thumbnail(path: str, mtime_ns: int, size: int, side: int, max_chars: int) -> str | None:
    from PIL import Image

    try:
        with Image.open(path) as im:
            # a JPEG decodes at the smallest 1/2^k scale still >= the thumbnail: a 12 MP
            # photo costs 1/64 of its pixels in memory and time, not 36 MB
            im.draft("RGB", (side, side))
            im.load()
            img = im.convert("RGBA") if im.mode in ("RGBA", "LA", "P") else im.convert("RGB")
    except Exception:
        return None
    if img.mode == "RGBA":
        flat = Image.new("RGB", img.size, (255, 255, 255))
        flat.paste(img, mask=img.getchannel("A"))
        img = flat
    current = side
    while current >= 16:
        small = img.copy()
        small.thumbnail((current, current))
        for quality in (75, 55, 35):
            buf = io.BytesIO()
            small.save(buf, format="JPEG", quality=quality, optimize=True)
            uri = "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
            if len(uri) <= max_chars:
                return uri
        current = int(current * 0.7)
    return None


def thumbnail_data_uri(
    path: str | os.PathLike,
    side: int = THUMB_SIDE,
    max_chars: int = THUMB_MAX_CHARS,
    cache: Path | None = None,
) -> str | None:
    """A downscaled JPEG of an image as a data URI of at most ``max_chars``; None if unreadable.

    With ``cache`` (a folder; the notebook's preview passes :func:`thumbnail_cache` of its
    ledger) each thumbnail is made once and kept there as a small text file, keyed by the
    image's path, size and mtime: re-opening a notebook over a folder of photos reads a few
    KB per photo instead of decoding it again."""
    try:
        st = Path(path).stat()
    except OSError:
        return None
    real = str(Path(path).resolve())
    if cache is None:
        return _thumbnail(real, st.st_mtime_ns, st.st_size, side, max_chars)
    key = f"{real}\0{st.st_size}\0{st.st_mtime_ns}\0{side}\0{max_chars}"
    kept = cache / (hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest() + ".txt")
    try:
        return kept.read_text("ascii") or None
    except OSError:
        pass
    uri = _thumbnail(real, st.st_mtime_ns, st.st_size, side, max_chars)
    if uri is not None:
        try:
            cache.mkdir(parents=True, exist_ok=True)
            partial = kept.with_suffix(f".{os.getpid()}.part")
            partial.write_text(uri, "ascii")
            partial.replace(kept)  # whole or absent, whoever reads it
        except OSError:
            pass  # a cache we cannot write is only slower
    return uri


def thumbnail_cache(ledger: Path) -> Path:
    """Where thumbnails of a ledger's images are kept: a folder beside the ledger file."""
    return ledger.with_name(ledger.stem + "-thumbnails")


# ---------------------------------------------------------------------- gallery

_CARD = (
    "border:1px solid #ccc;border-radius:6px;padding:6px;background:#fff;color:#222;"
    "display:flex;flex-direction:column;gap:4px;min-width:0"
)
_GRID = (
    "display:grid;grid-template-columns:repeat(auto-fill,minmax(220px,1fr));gap:10px;"
    "font:12px/1.35 system-ui,sans-serif"
)
_BOX = (
    "width:100%;height:150px;background:#f3f3f3;border-radius:4px;display:flex;"
    "align-items:center;justify-content:center;text-align:center;padding:6px;"
    "box-sizing:border-box;overflow:auto;word-break:break-word"
)


def _card(item: GalleryItem, linker: VideoLinker) -> str:
    color = STATUS_COLORS.get(item.status, "#555")
    name = image_name(item.image) if item.image else "?"
    parts = [
        f'<div class="i2v-card" style="{_CARD}" data-job-id="{esc(item.job_id)}" '
        f'data-status="{esc(item.status)}">'
    ]
    if item.video:
        src = linker.source(item.video)
        if src.url:
            parts.append(
                f'<video src="{esc(src.url)}" controls muted loop playsinline preload="metadata" '
                f'style="width:100%;height:150px;object-fit:contain;border-radius:4px;background:#000" '
                f'title="{esc(Path(item.video).name)}"></video>'
            )
        else:
            parts.append(f'<div style="{_BOX};color:#8a6d00">{esc(src.note)}</div>')
    elif item.status in UNSUCCESSFUL:
        parts.append(
            f'<div class="i2v-error" style="{_BOX};color:#c62828;background:#fdecea">'
            f"{esc(item.error or item.status)}</div>"
        )
    else:
        parts.append(f'<div style="{_BOX};color:#555">{esc(item.status)}: no video yet</div>')
    thumb = thumbnail_data_uri(item.image, side=CARD_THUMB_SIDE) if item.image else None
    img = (
        f'<img src="{esc(thumb)}" alt="{esc(name)}" title="{esc(item.image)}" '
        'style="width:48px;height:48px;object-fit:cover;border-radius:3px;flex:none">'
        if thumb
        else ""
    )
    parts.append(
        '<div style="display:flex;gap:6px;align-items:center;min-width:0">'
        f"{img}<div style='min-width:0;overflow:hidden'>"
        f"<b>job {esc(item.job_id)}</b> &middot; {esc(item.model)} &middot; "
        f'<span class="i2v-status" style="color:{color};font-weight:600">{esc(item.status)}</span>'
        f"<br><span style='color:#555'>{esc(name)}</span></div></div>"
    )
    parts.append(f'<div class="i2v-prompt" style="color:#333">{esc(item.prompt)}</div>')
    if item.error and item.video:
        parts.append(f'<div style="color:#c62828">{esc(item.error)}</div>')
    parts.append("</div>")
    return "".join(parts)


def status_counts(items: Sequence[GalleryItem]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for it in items:
        counts[it.status] = counts.get(it.status, 0) + 1
    return counts


def gallery_html(
    source: Any,
    base: str | os.PathLike = ".",
    *,
    root: str | os.PathLike | None = None,
    limit: int = GALLERY_LIMIT,
    embed_max_bytes: int = EMBED_MAX_BYTES,
    embed_budget_bytes: int = EMBED_BUDGET_BYTES,
    title: str | None = None,
) -> str:
    """A grid of small looping videos (one card per job) for a notebook output.

    ``source``: a BatchResult, ledger rows or GalleryItems. ``base``: the notebook's
    folder, against which video URLs are made relative. ``root``: the folder
    Jupyter serves (guessed by :func:`find_root`).
    """
    items = as_items(source)
    linker = VideoLinker(base, root, embed_max_bytes, embed_budget_bytes)
    counts = status_counts(items)
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no jobs"
    head = f"{esc(title)}: " if title else ""
    out = [
        '<div class="i2v-gallery">',
        f'<div style="margin:4px 0;font:13px system-ui,sans-serif">{head}{plural(len(items), "job")} '
        f"({esc(summary)})</div>",
        f'<div style="{_GRID}">',
    ]
    out.extend(_card(it, linker) for it in items[:limit])
    out.append("</div>")
    if len(items) > limit:
        out.append(
            f"<div style='margin-top:4px'>... and {len(items) - limit} more jobs "
            f"(raise the limit, or filter by status).</div>"
        )
    if linker.embedded_bytes:
        out.append(
            f"<div style='margin-top:4px;color:#8a6d00'>{linker.embedded_bytes // 1024} KB of "
            f"video embedded because the files are outside {esc(linker.root)}.</div>"
        )
    out.append("</div>")
    return "".join(out)


def gallery_text(source: Any) -> str:
    """The gallery as plain text, for scripts and logs."""
    items = as_items(source)
    lines = []
    for it in items:
        where = it.video or (f"error: {it.error}" if it.error else "")
        name = image_name(it.image) if it.image else "?"
        lines.append(
            f"job {it.job_id:>5} {it.status:<10} {name:<24} {it.prompt[:40]!r:<44} {where}"
        )
    return "\n".join(lines) or "no jobs"


# ---------------------------------------------------------------------- tables


def table_html(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[str], headers: Sequence[str] | None = None
) -> str:
    """A plain HTML table of ``columns`` of ``rows`` (escaped)."""
    headers = headers or columns
    head = "".join(f"<th style='text-align:left;padding:2px 8px'>{esc(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td style='text-align:left;padding:2px 8px'>{esc(r.get(c, ''))}</td>" for c in columns
        )
        + "</tr>"
        for r in rows
    )
    return (
        "<table style='border-collapse:collapse;font:12px system-ui,sans-serif'>"
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )


def table_text(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    widths = {
        c: min(60, max([len(c)] + [len(str(r.get(c, "") or "")) for r in rows])) for c in columns
    }
    lines = ["  ".join(c.ljust(widths[c]) for c in columns)]
    for r in rows:
        lines.append("  ".join(str(r.get(c, "") or "")[:60].ljust(widths[c]) for c in columns))
    return "\n".join(lines)
