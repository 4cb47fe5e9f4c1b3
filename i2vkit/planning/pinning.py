"""A batch that ran under a family name keeps the endpoint it ran with.

Why: ``wan`` follows fal (:mod:`i2vkit.catalogue.families`), so the name that meant Wan
2.1 when a batch started means Wan 2.7 today. Running the same command again must
continue that batch on Wan 2.1, not start a second batch on 2.7 and pay for every video
again; the ledger records the endpoint of every job, and the batch's identity records
its endpoints. The plan says so, with how to move to the new version.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

from ..catalogue import active
from ..models import ModelSpec, spec_for
from .identity import folder_identity, legacy_folder_id, short_hash

if TYPE_CHECKING:
    from ..workspace import Workspace
    from .plan import Plan

_MAX_TRIES = 200  # identities tried per plan (family sizes multiply with several models)


def earlier_endpoints(plan: Plan, ws: Workspace) -> dict[str, ModelSpec]:
    """Family name -> the spec of the endpoint an existing batch of this plan ran it on,
    where that is not what the name means today; {} when nothing moved."""
    cat = active()
    named = [i for i, m in enumerate(plan.models) if m.name in cat.families]
    if not named or plan.batch is None:
        return {}
    if not plan.batch.new:  # found by name (or already on today's endpoints)
        rows = ws.store.jobs(plan.batch.id)
        return _moved(plan, rows, named)
    if plan.shots is not None or plan.images_dir is None:
        return {}
    for ids in _alternatives(plan, named):
        for batch_id in _ids_of(plan, ws, ids):
            if ws.store.get_batch_exact(batch_id) is not None:
                moved = _moved(plan, ws.store.jobs(batch_id), named)
                if moved:
                    return moved
    return {}


def _moved(plan: Plan, rows: list, named: list[int]) -> dict[str, ModelSpec]:
    cat = active()
    out: dict[str, ModelSpec] = {}
    for i in named:
        m = plan.models[i]
        mine = [r for r in rows if str(r["model"]).lower() == m.name]
        ran = {r["endpoint_id"] for r in mine}
        if ran and m.endpoint_id not in ran and len(ran) == 1:
            eid = ran.pop()
            entry = cat.by_id.get(eid)
            if entry is not None:
                out[m.name] = spec_for(entry, m.name)
    return out


def _alternatives(plan: Plan, named: list[int]) -> list[list[str]]:
    """The plan's endpoint lists with family-named models on another of their family's
    endpoints (each other endpoint the family has, in the catalogue)."""
    cat = active()
    choices = []
    for i, m in enumerate(plan.models):
        if i in named:
            family = [e["endpoint_id"] for e in cat.entries if e["family"] == m.family]
            choices.append([m.endpoint_id] + [e for e in family if e != m.endpoint_id])
        else:
            choices.append([m.endpoint_id])
    today = [m.endpoint_id for m in plan.models]
    out = []
    for ids in itertools.islice(itertools.product(*choices), _MAX_TRIES):
        if list(ids) != today:
            out.append(list(ids))
    return out


def _ids_of(plan: Plan, ws: Workspace, ids: list[str]) -> list[str]:
    assert plan.images_dir is not None
    backend = ws.backend.label
    prompts = plan.prompts_file if plan.prompts_file is not None else plan.prompts
    options, pairing = plan.model_options, plan.request.pairing
    identity = folder_identity(
        backend, plan.images_dir, prompts, ids, options, pairing, plan.output_dir
    )
    legacy = legacy_folder_id(backend, plan.images_dir, ids, options, pairing, plan.output_dir)
    return [short_hash(identity), legacy]


def pinned_note(pinned: dict[str, ModelSpec]) -> list[str]:
    """What the plan says about a family name kept on an earlier endpoint."""
    cat = active()
    notes = []
    for name, spec in pinned.items():
        today = cat.families.get(name, "")
        notes.append(
            f"note: this batch ran {name} on {cat.name_of(spec.endpoint_id)} "
            f"({spec.endpoint_id}) and continues there; {name} now means "
            f"{cat.name_of(today)} ({today}) for new batches: --model {cat.name_of(today)} "
            "runs these jobs on it as a new batch."
        )
    return notes
