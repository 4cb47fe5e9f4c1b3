"""A retry planned from the ledger: a batch's failed, cancelled and unsent jobs, run again.

The images are read again (they are uploaded again through the cache when the retry
runs), so an image deleted since the batch ran is reported here, before anything is
spent. Each job keeps its own model, options, take and seed. A retry plan runs, shows
its cost and asks like any plan.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..images import ImageFile, Skipped
from ..jobs import UNSUCCESSFUL, JobStatus
from ..models import ModelSpec, get_model
from ..refs import is_remote
from ..rows import BatchRow, JobRow
from ..workspace import Workspace
from .batch import ledger_cost
from .folder import check_concurrency, check_output_dir, reread, spend_cap
from .identity import BatchRef
from .options import model_of_row, row_cost, row_options
from .plan import Plan, PlannedJob
from .request import DEFAULT_CONCURRENCY, BatchRequest, confirm_threshold

#: What `i2vkit retry` runs again: failures, cancellations, and jobs never submitted (a
#: spend cap stopped submitting before them).
RETRIED = (*UNSUCCESSFUL, JobStatus.PENDING)


def find_batch(ws: Workspace, ref: str) -> BatchRow:
    """The batch ``ref`` names (its name, id or id prefix), or an error saying where to look."""
    batch = ws.store.get_batch(ref)
    if batch is None:
        raise InputError(f"No batch {ref!r} in {ws.settings.db_path}; `i2vkit status` lists them.")
    return batch


def plan_retry(
    ref: str,
    ws: Workspace,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    max_cost: Any = None,
    confirm_above: float | None = None,
) -> Plan:
    """Plan running a batch's failed and cancelled jobs again, from the ledger alone."""
    check_concurrency(concurrency)
    batch = find_batch(ws, ref)
    rows = ws.store.jobs(batch["id"], statuses=RETRIED)
    here = ws.backend.label
    if batch["backend"] != here:
        raise InputError(
            f"Batch {batch['id']} ran on {batch['backend']}, but this run would use "
            f"{here}; set FAL_KEY / I2VKIT_FAL_URL as they were for that batch."
        )
    models: dict[str, ModelSpec] = {}
    for r in rows:
        if r["endpoint_id"] not in models:
            models[r["endpoint_id"]] = model_of_row(r)
    if not models:  # nothing to retry: the batch's own model(s), for the plan's text
        first = batch["endpoint_id"].split(",")[0]
        models[first] = get_model(first)
    request = BatchRequest(
        images_dir=batch["images_dir"] or ".",
        model=[m.name for m in models.values()],
        pairing=batch["pairing"],
        output_dir=batch["output_dir"],
        concurrency=concurrency,
        max_cost=max_cost,
    )
    images: dict[str, ImageFile] = {}
    skipped: list[Skipped] = []
    for path in dict.fromkeys(r["image_path"] for r in rows):
        if is_remote(path):
            continue
        image, problem = reread(Path(path))
        if image is not None:
            images[path] = image
        else:
            skipped.append(Skipped(Path(path), problem))
    jobs, ends = _jobs(rows, models, images)
    output_dir = Path(batch["output_dir"])
    check_output_dir(output_dir)
    ms = list(models.values())
    plan = Plan(
        request=request,
        model=ms[0],
        options=json.loads(batch["options"] or "{}") if len(ms) == 1 else {},
        images=list(images.values()),
        skipped=skipped,
        prompts=list(dict.fromkeys(r["prompt"] for r in rows)),
        pairs=[],
        output_dir=output_dir,
        ledger=ws.settings.db_path,
        batch=BatchRef(batch["id"], False, batch.get("name"), batch.get("identity")),
        max_cost=spend_cap(request, ws),
        confirm_above=confirm_threshold(confirm_above),
        retry_of=batch["id"],
        job_ids=[r["id"] for r in rows],
        jobs=jobs,
        models=ms,
        model_options=[{} for _ in ms],
        end_images=list(ends.values()),
    )
    plan.cost = ledger_cost(plan, ws)
    return plan


def _jobs(
    rows: list[JobRow], models: dict[str, ModelSpec], images: dict[str, ImageFile]
) -> tuple[list[PlannedJob], dict[str, ImageFile]]:
    """The planned job of each ledger row, and the local end frames they need."""
    ends: dict[str, ImageFile] = {}
    jobs = []
    for r in rows:
        m = models[r["endpoint_id"]]
        options, end = row_options(r, m)
        if end and not is_remote(end) and end not in ends:
            image, _problem = reread(Path(end))
            if image is not None:
                ends[end] = image
        jobs.append(
            PlannedJob(
                image_ref=r["image_path"],
                image=images.get(r["image_path"]),
                prompt=r["prompt"],
                model=m,
                options=options,
                take=r["take"],
                seed=r["seed"],
                end_image_ref=end,
                end_image=ends.get(end) if end else None,
                shot_name=r["shot_name"],
                index=r["pair_index"] or 0,
                cost=row_cost(r, m),
            )
        )
    return jobs, ends
