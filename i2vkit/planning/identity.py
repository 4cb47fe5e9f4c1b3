"""What makes a batch the same batch, and a job the same job.

A batch is what the command names: the images folder (or shot list), the prompts (a file
by its path, typed prompts by their text), the models with their options, the pairing,
the output folder and the backend. Running the same command again continues it (only
missing jobs are submitted); editing the prompts file (a line added) continues it too,
since the file is the same; a different prompts file is a different batch. ``--batch
NAME`` names a batch instead: the same name continues it, whatever its prompts.

Ledgers written before prompts were part of a batch keep working: a folder batch the
ledger holds under its earlier id, with no prompts recorded, is continued by the first
run that matches it otherwise (and from then on belongs to that run's prompts).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InputError
from ..money import plural, usd
from ..refs import image_name
from ..rows import JobRow

if TYPE_CHECKING:
    from ..store import Store


@dataclass(frozen=True)
class BatchRef:
    """The batch a plan joins: its id, its name, and whether the ledger already has it."""

    id: str
    new: bool
    name: str | None = None
    identity: str | None = None  # what the batch is (JSON), recorded with it

    @property
    def label(self) -> str:
        return f"{self.name} [{self.id}]" if self.name else self.id

    def describe(self, jobs: int, videos: int, spent: float | None) -> str:
        """``new batch 3f2a...`` or ``continues batch 3f2a... (48 earlier jobs: 48 videos,
        US$ 19.20)``: the plan's first line, so nobody pays for a batch they did not mean."""
        if self.new:
            return f"new batch {self.label}"
        earlier = f"{plural(jobs, 'earlier job')}: {plural(videos, 'video')}, {usd(spent)}"
        return f"continues batch {self.label} ({earlier})"


def short_hash(parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]


def folder_identity(
    backend: str,
    images_dir: Path,
    prompts: Path | list[str],
    models: list[str],
    options: list[dict[str, Any]],
    pairing: str,
    output_dir: Path,
) -> str:
    """A folder batch's identity as JSON (what its id is the hash of)."""
    source: Any = (
        {"file": str(prompts)} if isinstance(prompts, Path) else {"text": "\n".join(prompts)}
    )
    parts = {
        "backend": backend,
        "images_dir": str(images_dir),
        "prompts": source,
        "models": models,
        "options": options,
        "pairing": pairing,
        "output_dir": str(output_dir),
    }
    return json.dumps(parts, sort_keys=True, default=str)


def shots_identity(backend: str, shots: Path, output_dir: Path) -> str:
    """A shot list is its own prompts: a row added or edited later joins the same batch."""
    return json.dumps([backend, "shots", str(shots), str(output_dir)])


def shots_batch_id(identity: str) -> str:
    """The id shot-list batches have always had (so their ledgers resume)."""
    return hashlib.sha256(identity.encode()).hexdigest()[:12]


def named_batch_id(backend: str, name: str) -> str:
    return short_hash(["named", backend, name])


def legacy_folder_id(
    backend: str,
    images_dir: Path,
    models: list[str],
    options: list[dict[str, Any]],
    pairing: str,
    output_dir: Path,
) -> str:
    """The id an earlier version gave a folder batch (no prompts in it)."""
    if len(models) > 1:
        return short_hash([backend, models, options, pairing, str(images_dir), str(output_dir)])
    return short_hash([backend, models[0], options[0], pairing, str(images_dir), str(output_dir)])


def resolve_batch(
    store: Store | None,
    backend: str,
    identity: str,
    new_id: str,
    *,
    name: str | None = None,
    legacy_id: str | None = None,
    prompts_name: str | None = None,
) -> BatchRef:
    """The batch a plan joins, read from the ledger (None: no ledger yet, so a new one).

    By name when one is given (a name another backend holds is refused: its jobs ran
    there); else by identity; else the batch an earlier version recorded under
    ``legacy_id`` without prompts, when its prompts file had the same file name.
    """
    if name is not None:
        found = store.batch_named(name) if store is not None else None
        if found is None:
            return BatchRef(named_batch_id(backend, name), True, name, identity)
        if found["backend"] != backend:
            raise InputError(
                f"Batch {name!r} ran on {found['backend']}, but this run would use {backend}; "
                "pick another --batch name, or set FAL_KEY / I2VKIT_FAL_URL as they were."
            )
        return BatchRef(found["id"], False, name, found.get("identity") or identity)
    if store is None:
        return BatchRef(new_id, True, None, identity)
    found = store.get_batch_exact(new_id)
    if found is not None:
        return BatchRef(new_id, False, found.get("name"), identity)
    old = store.get_batch_exact(legacy_id) if legacy_id else None
    if old is not None and old.get("identity") is None and legacy_id is not None:
        recorded = str(old.get("prompts_source") or "")
        if prompts_name is None or image_name(recorded) == prompts_name:
            return BatchRef(legacy_id, False, old.get("name"), identity)
    return BatchRef(new_id, True, None, identity)


def job_key(
    image_ref: str,
    image_hash: str | None,
    prompt: str,
    occurrence: int,
    *,
    endpoint_id: str | None = None,
    take: int = 1,
    variant: str = "",
) -> str:
    """A job's identity within its batch: image (and its bytes), prompt, occurrence, and
    its model, take and shot-list variant. The first take on a one-model folder batch
    (``endpoint_id`` None) keeps the key it had before takes and models per job, so a
    batch started with an older version resumes instead of paying again."""
    raw = f"{image_ref}\0{image_hash}\0{prompt}\0{occurrence}"
    if endpoint_id is not None or take != 1 or variant:
        raw += f"\0{endpoint_id}\0{take}\0{variant}"
    return hashlib.sha256(raw.encode()).hexdigest()[:20]


def shot_variant(options: dict[str, Any], end_image_ref: str | None) -> str:
    """What tells two shot-list rows of one image, prompt and model apart: their own
    options and end frame (so an edited row is a new job, an unchanged one resumes)."""
    return json.dumps([options, end_image_ref], sort_keys=True, default=str)


def variant_of_row(row: JobRow) -> str:
    return shot_variant(json.loads(row.get("options") or "{}"), row.get("end_image_path"))


def vary_variant(values: dict[str, Any]) -> str:
    """What tells a folder job varied with ``--vary`` apart from its siblings (part of its
    key): the values of its varied options; "" when nothing varies, so a batch run
    without --vary keeps the keys it always had."""
    return json.dumps({"vary": dict(values)}, sort_keys=True, default=str) if values else ""


def row_axes(row: JobRow) -> dict[str, dict[str, str]]:
    """A ledger row's axes: ``{"options": {varied option: value}, "prompt": {variable:
    value}}`` (empty for a row of a batch that varied nothing)."""
    try:
        axes = json.loads(row.get("axes") or "{}")
    except ValueError:
        axes = {}
    return {"options": dict(axes.get("options") or {}), "prompt": dict(axes.get("prompt") or {})}


def folder_variant_of_row(row: JobRow) -> str:
    return vary_variant(row_axes(row)["options"])
