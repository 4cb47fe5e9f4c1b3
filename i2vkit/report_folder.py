"""Which batch a report folder holds, and exactly which files its report wrote.

Why: ``i2vkit report B --out DIR`` into a folder holding another batch's report used to
leave that batch's videos beside the new ones, under a page titled with the second
batch. Every report now writes a manifest (:data:`MANIFEST`: its batch and the files it
wrote, relative to the folder). A folder holding another batch's report is refused,
naming both batches; ``replace`` first removes what the earlier report wrote there (the
files its manifest lists, then its sub-folders if that left them empty) and nothing
else. Writing the same batch's report again replaces its own files the same way, so a
video that left the batch leaves the report too.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterable
from pathlib import Path

from .errors import ReportFolderInUse

MANIFEST = ".i2vkit-report.json"
#: What a report wrote before reports had a manifest (its page's title names the batch).
OLD_TITLE = re.compile(r"<title>i2vkit report: batch ([^<]+)</title>")
SUBFOLDERS = ("videos", "thumbs", "images")


def read_manifest(folder: Path) -> dict | None:
    """The manifest of the report in ``folder``, or None (no report, or not readable)."""
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("files"), list):
        return None
    return data


def _old_report_batch(folder: Path) -> str | None:
    """The batch of a report written before manifests, from its page's title."""
    try:
        head = (folder / "index.html").read_text(encoding="utf-8", errors="replace")[:4000]
    except OSError:
        return None
    found = OLD_TITLE.search(head)
    return found.group(1) if found else None


def prepare(folder: Path, batch_id: str, *, replace: bool = False) -> None:
    """Make ``folder`` ready for ``batch_id``'s report, or refuse, saying why.

    Refused: another batch's report (unless ``replace``), and a report without a
    manifest of another batch (what it wrote cannot be told from the user's files).
    """
    manifest = read_manifest(folder)
    if manifest is None:
        old = _old_report_batch(folder)
        if old is not None and old != batch_id:
            raise ReportFolderInUse(
                f"{folder} holds the report of batch {old}, written by an earlier version of "
                f"i2vkit that did not record its files; the report of batch {batch_id} would "
                "mix with it. Remove that folder, or give --out a new folder."
            )
        return
    other = str(manifest.get("batch", "?"))
    if other != batch_id and not replace:
        raise ReportFolderInUse(
            f"{folder} holds the report of batch {other}; the report of batch {batch_id} "
            f"would mix its videos with that one's. Give --out another folder, or add "
            f"--replace to remove what batch {other}'s report wrote there (only that) first."
        )
    remove_written(folder, manifest)


def remove_written(folder: Path, manifest: dict) -> None:
    """Delete the files a manifest lists (inside ``folder`` only), then empty sub-folders."""
    root = folder.resolve()
    for name in manifest["files"]:
        path = (root / str(name)).resolve()
        if path.parent != root and root not in path.parents:
            continue  # a manifest naming files outside the folder is not obeyed
        if path.is_file():
            path.unlink()
    for sub in SUBFOLDERS:
        with contextlib.suppress(OSError):  # rmdir removes it only when empty
            (root / sub).rmdir()
    (root / MANIFEST).unlink(missing_ok=True)


def write_manifest(folder: Path, batch_id: str, files: Iterable[Path]) -> None:
    """Record the batch and the files this report wrote (relative to ``folder``)."""
    names = sorted({p.relative_to(folder).as_posix() for p in files})
    text = json.dumps({"batch": batch_id, "files": names}, indent=1)
    (folder / MANIFEST).write_text(text + "\n", encoding="utf-8")
