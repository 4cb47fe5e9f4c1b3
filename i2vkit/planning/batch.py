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
from .request import BatchRequest
from .shots import plan_shots


def plan_batch(request: BatchRequest, ws: Workspace) -> Plan:
    """Scan, read, pair and price a batch, and find the batch it joins in the ledger."""
    check_concurrency(request.concurrency)
    pairing = "all" if request.shots is not None else normalize_pairing(request.pairing)
    request = dataclasses.replace(request, takes=check_takes(request.takes), pairing=pairing)
    plan = _plan_once(request, ws)
    pinned = earlier_endpoints(plan, ws)
    if pinned:  # a family name moved on since this batch ran: keep its endpoint
        kept = _plan_once(request, ws, pinned)
        if not kept.batch.new:  # it does continue that batch (not only one like it)
            plan = kept
            plan.notes += pinned_note(pinned)
    plan.cost = ledger_cost(plan, ws)
    return plan


def _plan_once(
    request: BatchRequest, ws: Workspace, pins: dict[str, ModelSpec] | None = None
) -> Plan:
    if request.shots is not None:
        plan = plan_shots(request, ws, pins)
    else:
        if pins:  # the names this batch ran elsewhere, as the specs of those endpoints
            names = [
                pins.get(n.strip().lower(), n) if isinstance(n, str) else n
                for n in model_names(request.model)
            ]
            request = dataclasses.replace(request, model=names)  # type: ignore[arg-type]
        plan = plan_folder(request, ws)
    plan.max_cost = spend_cap(request, ws)
    plan.batch = _batch_of(plan, ws)
    return plan


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
