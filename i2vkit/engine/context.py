"""The state one run of a batch shares between its parts (submit, follow, fetch)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from ..backend import Backend
from ..errors import FalError
from ..fal import FalConnection
from ..jobs import Jobs
from ..planning.plan import Plan
from ..rows import JobRow
from .progress import Progress
from .schedule import Schedules, StreamPolicy
from .spend import SpendCap


@dataclass
class RunContext:
    plan: Plan
    backend: Backend
    jobs: Jobs
    fal: FalConnection
    batch_id: str
    on_progress: Callable[[Progress], None] | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    progress: Progress = field(default_factory=Progress)
    schedules: Schedules = field(default_factory=Schedules)  # polls, per endpoint
    streams: StreamPolicy = field(default_factory=StreamPolicy)  # fal's status streams
    fatal: FalError | None = None
    spend: SpendCap = field(default_factory=lambda: SpendCap(None, None))
    job_ids: list[int] | None = None  # this run's jobs, once recorded: what progress counts
    sidecars: bool = True  # NAME.json beside each video (I2VKIT_SIDECARS)

    @property
    def model(self):  # noqa: ANN201 - a ModelSpec
        return self.plan.model

    @property
    def stopping(self) -> bool:
        return self.stop.is_set() or self.fatal is not None

    def emit(self, message: str = "", *, state: str | None = None) -> None:
        """Tell the progress callback, with the job counters read from the ledger."""
        if message:
            self.progress.message = message
        if state is not None:
            self.progress.state = state
        if self.job_ids is not None and self.on_progress is not None:
            statuses = self.jobs.store.statuses(self.batch_id)
            self.progress.count(
                [statuses[i] for i in self.job_ids if i in statuses], self.plan.job_count
            )
        if self.on_progress:
            with contextlib.suppress(Exception):
                self.on_progress(self.progress)

    def fail(
        self, job_id: int, message: str, error_type: str | None, *, seen: JobRow | None = None
    ) -> None:
        """Record a job failed. With `seen` (the row as this run last read it) only if the
        ledger still says the same: another process may have cancelled it meanwhile."""
        if seen is not None:
            if not self.jobs.fail_if(seen, message, error_type):
                return
        else:
            self.jobs.failed(job_id, message, error_type)
        self.emit()

    def retry_hint(self) -> str:
        return f"`i2vkit retry {self.batch_id}` submits it again (billed again)"
