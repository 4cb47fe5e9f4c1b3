"""What to run, decided before any money moves: a batch request becomes a plan.

The rooms, in the order a request meets them:

* :mod:`.request`: the batch request and the one table of its fields (flags,
  ``I2VKIT_*`` variables, notebook widgets and defaults are all generated from it);
* :mod:`.batch`: :func:`plan_batch`, a function of the request and the workspace
  (:mod:`i2vkit.workspace`) that opens nothing and connects to nothing;
* :mod:`.folder` (image x prompt on each model) and :mod:`.shots` (a shot list, one job
  per row); :mod:`.retry` (a batch's failed jobs, from the ledger);
* :mod:`.options` (each model's options, takes and seeds), :mod:`.identity` (which batch
  a plan joins, a job's key), :mod:`.cost` (this run against earlier runs, the spend
  cap), :mod:`.plan` (the :class:`Plan` and its jobs).
"""

from __future__ import annotations

from .batch import ledger_cost, plan_batch
from .cost import CostBreakdown
from .identity import BatchRef
from .plan import Plan, PlannedJob
from .request import (
    DEFAULT_CONCURRENCY,
    FIELDS,
    NO_CAP,
    BatchRequest,
    Field,
    Given,
    request_from,
)
from .retry import RETRIED, plan_retry
from .shots import write_shots

__all__ = [
    "DEFAULT_CONCURRENCY",
    "FIELDS",
    "NO_CAP",
    "RETRIED",
    "BatchRef",
    "BatchRequest",
    "CostBreakdown",
    "Field",
    "Given",
    "Plan",
    "PlannedJob",
    "ledger_cost",
    "plan_batch",
    "plan_retry",
    "request_from",
    "write_shots",
]
