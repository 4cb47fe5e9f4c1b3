"""plan_batch: a request becomes a plan, with the batch it joins and what it costs.

A function of the request and what the workspace holds: it opens no file of the
workspace (the ledger and catalogue are open already) and connects to nothing. A stale
catalogue is refreshed when the workspace is opened, never here.
"""

from __future__ import annotations

import dataclasses

from ..models import ModelSpec
from ..pairing import normalize_pairing
from ..store import Store
from ..workspace import Workspace
from .cost import CostBreakdown, breakdown
from .folder import check_concurrency, check_takes, plan_folder, spend_cap
from .identity import (
    BatchRef,
    folder_identity,
    legacy_folder_id,
    resolve_batch,
    short_hash,
    shots_batch_id,
    shots_identity,
)
from .options import model_names
from .pinning import earlier_endpoints, pinned_note
from .plan import Plan
from .request import BatchRequest, confirm_threshold
from .shots import plan_shots


def plan_batch(request: BatchRequest, ws: Workspace, *, defer_checks: bool = False) -> Plan:
    """Scan, read, pair and price a batch, and find the batch it joins in the ledger.

    ``defer_checks`` (a plan about to run, not one only shown): a folder's photos whose
    files end as whole files do are planned from their headers, and the run checks their
    data just before uploading each (:mod:`i2vkit.engine.pipeline`), so the first job is
    submitted within seconds whatever the folder's size. A plan that is only shown
    (``--dry-run``, the notebook's preview) reads every photo's data."""
    check_concurrency(request.concurrency)
    pairing = "all" if request.shots is not None else normalize_pairing(request.pairing)
    request = dataclasses.replace(request, takes=check_takes(request.takes), pairing=pairing)
    plan = _plan_once(request, ws, defer_checks)
    pinned = earlier_endpoints(plan, ws)
    if pinned:  # a family name moved on since this batch ran: keep its endpoint
        kept = _plan_once(request, ws, defer_checks, pinned)
        if not kept.batch.new:  # it does continue that batch (not only one like it)
            plan = kept
            plan.notes += pinned_note(pinned)
    plan.confirm_above = confirm_threshold(request.confirm_above)
    plan.cost = ledger_cost(plan, ws)
    return plan


def _plan_once(
    request: BatchRequest,
    ws: Workspace,
    defer_checks: bool,
    pins: dict[str, ModelSpec] | None = None,
) -> Plan:
    """One planning pass, with the batch it joins; a batch that picked its prompts' words
    at random is planned again with the seed it recorded."""
    if pins and request.shots is None:  # the names this batch ran elsewhere, as their specs
        names = [
            pins.get(n.strip().lower(), n) if isinstance(n, str) else n
            for n in model_names(request.model)
        ]
        request = dataclasses.replace(request, model=names)  # type: ignore[arg-type]

    def planner(r: BatchRequest) -> Plan:
        return plan_shots(r, ws, pins) if r.shots is not None else plan_folder(r, ws, defer_checks)

    plan = planner(request)
    plan.batch = _batch_of(plan, ws)
    recorded = _recorded_seed(plan, ws)
    if request.prompt_seed is None and recorded not in (None, plan.prompt_seed):
        batch = plan.batch  # the batch picked its words before: pick them again
        plan = planner(dataclasses.replace(request, prompt_seed=recorded))
        plan.batch = batch
    plan.max_cost = spend_cap(request, ws)
    return plan


def _recorded_seed(plan: Plan, ws: Workspace) -> int | None:
    """The seed the ledger recorded for the random prompt picks of the plan's batch."""
    if plan.prompt_seed is None or plan.batch.new:
        return None
    found = ws.store.get_batch_exact(plan.batch.id)
    return found.get("prompt_seed") if found is not None else None


def _batch_of(plan: Plan, ws: Workspace) -> BatchRef:
    """The batch the plan joins: by name, by what it is, or as an earlier version recorded it."""
    backend = ws.backend.label
    name = plan.request.batch or None
    if plan.shots is not None:
        identity = shots_identity(backend, plan.shots, plan.output_dir)
        return resolve_batch(ws.store, backend, identity, shots_batch_id(identity), name=name)
    assert plan.images_dir is not None
    ids = [m.endpoint_id for m in plan.models]
    prompts = plan.prompts_file if plan.prompts_file is not None else plan.prompts
    identity = folder_identity(
        backend,
        plan.images_dir,
        prompts,
        ids,
        plan.model_options,
        plan.request.pairing,
        plan.output_dir,
    )
    legacy = legacy_folder_id(
        backend, plan.images_dir, ids, plan.model_options, plan.request.pairing, plan.output_dir
    )
    return resolve_batch(
        ws.store,
        backend,
        identity,
        short_hash(identity),
        name=name,
        legacy_id=legacy,
        prompts_name=plan.prompts_file.name if plan.prompts_file is not None else "inline",
    )


def ledger_cost(plan: Plan, ws: Workspace) -> CostBreakdown:
    """This run against earlier runs of the plan's batch, from the workspace's ledger."""
    return ledger_cost_in(plan, ws.store)


def ledger_cost_in(plan: Plan, store: Store) -> CostBreakdown:
    """:func:`ledger_cost` from a ledger (the engine's own connection, at run time)."""
    rows = store.jobs(plan.batch.id) if plan.batch.id else []
    return breakdown(
        plan.jobs, rows, plan.cost_of, retry=plan.retry_of is not None, shots=plan.shots is not None
    )
