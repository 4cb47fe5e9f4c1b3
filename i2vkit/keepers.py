"""Keepers: the takes a user picks from a batch, recorded in the ledger and exported.

Generative video is a game of takes; the picks are the result of the work, so they
live in the ledger (``jobs.keeper``), not in a notebook's memory: they survive a kernel
restart, and the CLI (`i2vkit keep`), the notebook's clicks and the report all see the
same ones. :func:`export` copies (hard-links where it can) the keepers' videos to a
folder under readable names: shot or image, prompt, model, take.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InputError
from .filenames import safe_component
from .jobs import JobStatus
from .provenance import sidecar_path
from .refs import image_stem
from .rows import BatchRow, JobRow
from .store import Store

PROMPT_SLUG_CHARS = 40


def _batch(store: Store, batch_id: str) -> BatchRow:
    batch = store.get_batch(batch_id)
    if batch is None:
        raise InputError(f"No batch {batch_id!r} in {store.path}; `i2vkit status` lists them.")
    return batch


def mark(store: Store, batch_id: str, job_ids: Iterable[int | str], keep: bool = True) -> list[int]:
    """Mark jobs of a batch as keepers (``keep=False``: no longer). Returns their ids.

    Every id must be a job of that batch (as `i2vkit status BATCH` lists them); an
    unknown one is an error and nothing is changed.
    """
    batch = _batch(store, batch_id)
    ids: list[int] = []
    bad: list[str] = []
    for raw in job_ids:
        try:
            ids.append(int(str(raw).strip()))
        except ValueError:
            bad.append(repr(raw))
    mine = {j["id"] for j in store.jobs(batch["id"])}
    bad += [str(i) for i in ids if i not in mine]
    if bad:
        raise InputError(
            f"Batch {batch['id']} has no job {', '.join(bad)}; `i2vkit status {batch['id']}` "
            "lists its jobs with their ids."
        )
    if not ids:
        raise InputError("Name at least one job id to keep (`i2vkit status BATCH` lists them).")
    for i in dict.fromkeys(ids):
        store.update_job(i, keeper=1 if keep else 0)
    return list(dict.fromkeys(ids))


def keepers(store: Store, batch_id: str) -> list[JobRow]:
    """The batch's keeper jobs (ledger rows), in the batch's order."""
    batch = _batch(store, batch_id)
    return [j for j in store.jobs(batch["id"]) if j["keeper"]]


def export_name(job: JobRow) -> str:
    """``beach_a-slow-pan-over-the-waves_kling_take2.mp4``: readable, valid on Windows."""
    stem = image_stem(job["image_path"])
    parts = [job.get("shot_name") or "", stem or "image", prompt_slug(job["prompt"])]
    parts += [job["model"], f"take{job.get('take') or 1}"]
    return "_".join(safe_component(p, max_len=60) for p in parts if p) + ".mp4"


def prompt_slug(prompt: str) -> str:
    """The first words of a prompt, lower case, joined by '-' (letters of any script)."""
    words = re.findall(r"\w+", prompt.lower())
    slug = ""
    for w in words:
        candidate = f"{slug}-{w}" if slug else w
        if len(candidate) > PROMPT_SLUG_CHARS:
            break
        slug = candidate
    return slug or (words[0][:PROMPT_SLUG_CHARS] if words else "prompt")


@dataclass
class ExportReport:
    folder: Path
    written: list[Path] = field(default_factory=list)  # new files
    already: list[Path] = field(default_factory=list)  # this video was there already
    missing: list[str] = field(default_factory=list)  # keepers without a video, and why

    def summary(self) -> str:
        lines = [
            f"{len(self.written)} keeper(s) exported to {self.folder}"
            + (f", {len(self.already)} already there" if self.already else "")
        ]
        lines += [f"  {p.name}" for p in self.written]
        lines += [f"not exported: {m}" for m in self.missing]
        return "\n".join(lines)


def export(store: Store, batch_id: str, folder: str | os.PathLike) -> ExportReport:
    """Copy (hard-link when the folder is on the same disk) the keepers' videos to
    ``folder``. A name another file already has gets a suffix (``-2``): nothing is ever
    overwritten; the same video exported twice is found and not copied again."""
    rows = keepers(store, batch_id)
    out = Path(folder).expanduser().absolute()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"Cannot create the folder {out}: {exc.strerror or exc}.") from None
    report = ExportReport(out)
    if not rows:
        report.missing.append("the batch has no keepers yet (`i2vkit keep BATCH JOB...`)")
        return report
    for job in rows:
        src = Path(job["local_file"] or "")
        if job["status"] != JobStatus.DOWNLOADED or not src.is_file():
            report.missing.append(
                f"job {job['id']} has no video on disk ({job['status']}); run the batch's "
                "command again to finish it"
            )
            continue
        base = export_name(job)
        dest, n = out / base, 1
        while dest.exists() or dest.is_symlink():
            if _same_video(dest, src):
                report.already.append(dest)
                break
            n += 1
            dest = out / f"{base[: -len('.mp4')]}-{n}.mp4"
        else:
            _place(src, dest)
            report.written.append(dest)
        _keep_sidecar(src, dest)
    return report


def _keep_sidecar(src: Path, dest: Path) -> None:
    """The video's recipe (``NAME.json``) goes with it, under the exported name; a file
    already there is left alone."""
    side, target = sidecar_path(src), sidecar_path(dest)
    if side.is_file() and not target.exists():
        _place(side, target)


def _same_video(a: Path, b: Path) -> bool:
    try:
        if os.path.samefile(a, b):
            return True
        if a.stat().st_size != b.stat().st_size:
            return False
        return a.read_bytes() == b.read_bytes()
    except OSError:
        return False


def _place(src: Path, dest: Path) -> None:
    """Hard-link, else copy, to a name no file has (exclusive: never overwrites)."""
    try:
        os.link(src, dest)
        return
    except FileExistsError:
        raise InputError(f"{dest} appeared while exporting; run the export again.") from None
    except OSError:
        pass  # another disk, or a file system without hard links: copy
    try:
        with open(src, "rb") as fin, open(dest, "xb") as fout:
            shutil.copyfileobj(fin, fout, 1024 * 1024)
        shutil.copystat(src, dest)
    except FileExistsError:
        raise InputError(f"{dest} appeared while exporting; run the export again.") from None
    except OSError as exc:
        dest.unlink(missing_ok=True)
        raise InputError(f"Cannot write {dest}: {exc.strerror or exc}.") from None
