"""The batch engine: run a planned batch (or resume it, or retry its failures) on a backend.

Naming, here and everywhere in i2vkit: a plain name blocks until the batch is over
(`run_batch`, `retry_batch`), and the `_async` twin is the coroutine
(`run_batch_async`, `retry_batch_async`; `cancel_batch` likewise), as in fal_client (`subscribe`,
`subscribe_async`). The blocking ones also work inside a running notebook loop.

The parts, in the order a job meets them: runner.py (upload and record, the task
group, stopping), submit.py (claim, POST, request_id), follow.py with schedule.py
(polling), fetch.py with outcome.py (result, then the mp4), image_urls.py (a fresh
upload when fal cannot fetch an image).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from ..backend import resolve_backend
from ..blocking import run_blocking
from ..config import Settings, load_settings
from ..fal import FalConnection
from ..http import RequestBudget
from ..jobs import Jobs, retire_owner
from ..planning import DEFAULT_CONCURRENCY, BatchRequest, Plan, plan_batch, plan_retry
from ..store import Store
from ..workspace import Workspace
from .cancel import cancel_batch, cancel_batch_async
from .context import RunContext
from .progress import BatchResult, JobResult, Progress
from .runner import Runner

__all__ = [
    "BatchResult",
    "cancel_batch",
    "cancel_batch_async",
    "JobResult",
    "Progress",
    "retry_batch",
    "retry_batch_async",
    "run_batch",
    "run_batch_async",
    "run_blocking",
]


async def run_batch_async(
    batch: BatchRequest | Plan,
    settings: Settings | None = None,
    *,
    progress: Callable[[Progress], None] | None = None,
    stop: threading.Event | None = None,
) -> BatchResult:
    """Run (or resume) a batch and return its summary. The notebook's and the CLI's engine.

    Given a request instead of a plan, it opens a workspace and plans it first (library
    callers; the front ends plan, show and confirm before they call this)."""
    settings = settings or load_settings()
    if isinstance(batch, Plan):
        plan = batch
    else:
        with Workspace.open(settings) as ws:
            plan = plan_batch(batch, ws, defer_checks=True)
    with resolve_backend(settings) as backend, Store(settings.db_path) as store:
        return await _run_plan(plan, settings, backend, store, progress, stop)


async def _run_plan(
    plan: Plan,
    settings: Settings,
    backend: Any,
    store: Store,
    progress: Callable[[Progress], None] | None,
    stop: threading.Event | None,
) -> BatchResult:
    budget = RequestBudget(rate=plan.request.max_rps)
    result: BatchResult | None = None
    try:
        async with FalConnection(backend, settings.fal_key, budget=budget) as fal:
            run = RunContext(
                plan=plan,
                backend=backend,
                jobs=Jobs(store),
                fal=fal,
                batch_id=plan.batch_id,
                on_progress=progress,
                stop=stop or threading.Event(),
                sidecars=settings.sidecars,
            )
            try:
                result = await Runner(run, cache_enabled=settings.upload_cache_enabled).run_all()
            finally:  # a kernel runs batch after batch: what this run left is adoptable
                retire_owner(run.jobs.owner)
    except asyncio.CancelledError:  # a late Ctrl-C while closing: the run has its summary
        if result is None:
            raise
    return result


def run_batch(
    batch: BatchRequest | Plan, settings: Settings | None = None, **kwargs
) -> BatchResult:
    """Blocking :func:`run_batch_async`, for scripts and notebook cells."""
    return run_blocking(run_batch_async(batch, settings, **kwargs))


async def retry_batch_async(
    batch_id: str,
    settings: Settings | None = None,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    **kwargs,
) -> BatchResult:
    """Submit the failed and cancelled jobs of a batch again: plan from the ledger, then run."""
    with Workspace.open(settings) as ws:
        plan = plan_retry(batch_id, ws, concurrency=concurrency)
    return await run_batch_async(plan, settings, **kwargs)


def retry_batch(batch_id: str, settings: Settings | None = None, **kwargs) -> BatchResult:
    """Blocking :func:`retry_batch_async`."""
    return run_blocking(retry_batch_async(batch_id, settings, **kwargs))
