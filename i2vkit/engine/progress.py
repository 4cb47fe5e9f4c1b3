"""What a run reports while it goes (Progress) and when it ends (BatchResult)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..billing import Tally
from ..jobs import FINISHED, UNSUCCESSFUL, JobStatus
from ..money import plural
from ..planning.cost import CostBreakdown
from ..planning.plan import Plan
from ..refs import image_name
from ..summary import ModelSummary

#: jobs named one per line in a summary, per kind; `i2vkit status` lists the rest
LISTED = 20


@dataclass
class Progress:
    """Counters a progress display draws; the `progress` callback gets it after each change.

    The job counters are read from the ledger (:meth:`count`), never kept by hand: each
    job is in exactly one of pending, queued (submitting or waiting in fal's queue),
    running, completed (its video not downloaded yet), downloaded, failed and cancelled,
    so they are never negative and always sum to ``total``. ``state`` is ``running``,
    ``stopping`` (cancelling at fal after a stop), ``stopped`` or ``finished``.
    """

    total: int = 0
    uploads_total: int = 0
    uploaded: int = 0
    submitted: int = 0  # jobs that left pending (total - pending)
    running: int = 0
    downloaded: int = 0
    failed: int = 0
    pending: int = 0
    queued: int = 0
    completed: int = 0
    cancelled: int = 0
    message: str = ""
    state: str = "running"
    queue_positions: dict[int, int] = field(default_factory=dict)  # job id -> fal's position

    def count(self, statuses: list[str], planned: int = 0) -> None:
        """Set the job counters from the statuses of the run's jobs in the ledger; of the
        ``planned`` jobs, those not recorded yet (their photo is still in the pipeline)
        are pending."""
        n = {s: 0 for s in JobStatus}
        for s in statuses:
            n[JobStatus(s)] += 1
        self.total = max(len(statuses), planned)
        self.pending = n[JobStatus.PENDING] + self.total - len(statuses)
        self.queued = n[JobStatus.SUBMITTING] + n[JobStatus.QUEUED]
        self.running = n[JobStatus.RUNNING]
        self.completed = n[JobStatus.COMPLETED]
        self.downloaded = n[JobStatus.DOWNLOADED]
        self.failed = n[JobStatus.FAILED]
        self.cancelled = n[JobStatus.CANCELLED]
        self.submitted = self.total - self.pending

    @property
    def waiting(self) -> str:
        """``3 waiting in fal's queue (next at position 0)``, or "" when none waits."""
        if not self.queue_positions:
            return ""
        return (
            f"{len(self.queue_positions)} waiting in fal's queue "
            f"(next at position {min(self.queue_positions.values())})"
        )


@dataclass
class JobResult:
    id: int
    image: str
    prompt: str
    status: str
    video: str | None
    error: str | None
    request_id: str | None
    model: str = ""
    take: int = 1
    #: may fal have billed its request (billing.py)? None: it did if fal received it
    may_be_billed: bool | None = None


def retry_words(failed: list[JobResult]) -> str:
    """What a retry of these failed jobs costs again: only a job fal may have billed (it
    received it, and did not fail it on its side: billing.py) is billed a second time; one
    that never reached fal is simply sent first."""

    def billed_once(j: JobResult) -> bool:
        return j.request_id is not None if j.may_be_billed is None else j.may_be_billed

    once = sum(billed_once(j) for j in failed)
    if once == len(failed):
        billed = "on fal they are billed again"
    elif once:
        billed = f"the {once} fal may have billed are billed again on fal, the others never were"
    elif any(j.request_id is not None for j in failed):
        billed = "fal billed none of them: they failed on its side"
    else:
        billed = "none of them reached fal, so none was billed"
    return f"submits the failed jobs again (shows their cost first; {billed})."


@dataclass
class BatchResult:
    """The summary of a run: per-job outcomes, counts and where the files are."""

    batch_id: str
    plan: Plan
    jobs: list[JobResult]
    backend: str  # the ledger's label: "fal", "emulator" or the I2VKIT_FAL_URL
    billed: bool = True
    interrupted: bool = False
    fatal: str | None = None
    upload_failures: dict[str, str] = field(default_factory=dict)
    uploads: int = 0
    requests: dict[str, int] = field(default_factory=dict)
    submitted_now: int = 0  # jobs this run submitted (resubmits included)
    earlier: CostBreakdown | None = None  # the ledger before this run: what it had spent
    spend_cap_reached: str | None = None  # why submitting stopped at --max-cost
    notes: list[str] = field(default_factory=list)  # cancels on stop, requests adopted
    submitted_usd: float | None | bool = False  # what this run's POSTs cost (estimated)
    models: list[ModelSummary] = field(default_factory=list)  # the ledger's, per model
    #: the same per value of each varied option and prompt variable: (axis, value, summary)
    values: list[tuple[str, str, ModelSummary]] = field(default_factory=list)
    billed_before: Tally | None = None  # the run's jobs in money's terms, before it ran
    billed_now: Tally | None = None  # and at its end

    def cost(self) -> CostBreakdown:
        """What fal may bill for this run and for earlier runs (billing.py), and the total.

        The batch total is the ledger's now (`billed`): this run is what it added since
        it started (`billed_before`); earlier runs are the rest."""
        earlier = self.earlier or CostBreakdown(self.plan.cost_per_video, 0, 0, 0.0, 0.0)
        if self.billed_now is None or self.billed_before is None:
            return CostBreakdown(
                self.plan.cost_per_video,
                self.submitted_now,
                earlier.earlier_jobs,
                self.submitted_usd,
                earlier.earlier,
                earlier.earlier_requests,
            )
        now, this = self.billed_now, self.billed_now.minus(self.billed_before)
        before_usd = None if now.usd is None or this.usd is None else now.usd - this.usd
        before = now.billable - this.billable
        return CostBreakdown(
            self.plan.cost_per_video,
            this.billable,
            min(earlier.earlier_jobs, before) if earlier.earlier_jobs else before,
            this.usd,
            before_usd,
            before,
            earlier_left_out=self.billed_before.left_out(),
            this_left_out=this.left_out(),
        )

    def stop_line(self) -> str:
        """``stopped: 16 pending, 2 running, 12 cancelled (...)``: where a stop left the jobs."""
        counts = Progress()
        counts.count([j.status for j in self.jobs])
        parts = [
            f"{n} {word}"
            for n, word in (
                (counts.downloaded, "downloaded"),
                (counts.pending, "pending"),
                (counts.queued, "queued at fal"),
                (counts.running, "running at fal"),
                (counts.completed, "to download"),
                (counts.cancelled, "cancelled"),
                (counts.failed, "failed"),
            )
            if n
        ]
        return f"stopped: {', '.join(parts) or 'no jobs'}; {self.cost().describe(done=True)}"

    @property
    def ok(self) -> bool:
        return not self.interrupted and not self.fatal and all(j.video for j in self.jobs)

    @property
    def failed(self) -> list[JobResult]:
        return [j for j in self.jobs if j.status in UNSUCCESSFUL]

    @property
    def videos(self) -> list[Path]:
        return [Path(j.video) for j in self.jobs if j.video]

    @property
    def status_counts(self) -> dict[str, int]:
        """How many of the run's jobs are in each status, by status name (as listed)."""
        counts: dict[str, int] = {}
        for j in sorted(self.jobs, key=lambda j: j.status):
            counts[j.status] = counts.get(j.status, 0) + 1
        return counts

    def summary(self) -> str:
        counts = self.status_counts
        lines = [
            f"batch {self.batch_id} on {self.backend}: "
            + ", ".join([plural(len(self.jobs), "job")] + [f"{n} {s}" for s, n in counts.items()]),
            f"videos in {self.plan.output_dir}",
        ]
        billed = "estimates" if self.billed else "not billed: emulator"
        lines.append(f"cost ({billed}): {self.cost().describe(done=True)}")
        if len(self.models) == 1:
            lines.append(f"model {self.models[0].line()}")
        elif self.models:
            lines.append("per model (every job of the batch in the ledger):")
            lines += [f"  {m.line()}" for m in self.models]
        if self.values:
            lines.append("per value (every job of the batch in the ledger):")
            lines += [f"  {axis}={value}, {m.line()}" for axis, value, m in self.values]
        for s in self.plan.skipped:
            lines.append(f"skipped image {s.path.name}: {s.reason}")
        for path, reason in self.upload_failures.items():
            lines.append(f"not uploaded {image_name(path)}: {reason}")
        several_models = len({j.model for j in self.jobs}) > 1
        several_takes = len({j.take for j in self.jobs}) > 1

        def job_line(label: str, j: JobResult) -> str:
            what = [j.model] if several_models else []
            what += [f"take {j.take}"] if several_takes else []
            what.append(f"{image_name(j.image)} / {j.prompt[:40]!r}")
            return f"{label} job {j.id} ({', '.join(what)}): {j.error}"

        def listed(label: str, jobs: list[JobResult]) -> list[str]:
            shown = [job_line(label, j) for j in jobs[:LISTED]]
            if len(jobs) > LISTED:
                shown.append(
                    f"{label} ... and {len(jobs) - LISTED} more: `i2vkit status "
                    f"{self.batch_id}` lists every job with its reason"
                )
            return shown

        lines += listed("FAILED", [j for j in self.failed if j.status != JobStatus.CANCELLED])
        lines += listed("CANCELLED", [j for j in self.failed if j.status == JobStatus.CANCELLED])
        failed = [j for j in self.jobs if j.status == JobStatus.FAILED]
        if failed:
            lines.append(f"`i2vkit retry {self.batch_id}` {retry_words(failed)}")
        lines.extend(self.notes)
        unfinished = [j for j in self.jobs if j.status not in FINISHED and j.error]
        lines += listed("NOT DONE", unfinished)
        if unfinished:
            lines.append(
                f"{plural(len(unfinished), 'job')} {'is' if len(unfinished) == 1 else 'are'} "
                "kept in the ledger; run the same command again to finish them (nothing is "
                "paid twice)."
            )
        if self.spend_cap_reached:
            waiting = sum(j.status == JobStatus.PENDING for j in self.jobs)
            again = f"`i2vkit retry {self.batch_id}`" if self.plan.retry_of else "the same command"
            lines.append(
                f"SPEND CAP: submitting stopped: {self.spend_cap_reached}. {waiting} job(s) "
                f"left pending (not failed, not paid); raise --max-cost (or I2VKIT_MAX_COST) "
                f"and run {again} again to submit them."
            )
        if self.fatal:
            lines.append(f"STOPPED: {self.fatal}")
        return "\n".join(lines)
