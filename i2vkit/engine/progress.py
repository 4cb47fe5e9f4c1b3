"""What a run reports while it goes (Progress) and when it ends (BatchResult)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..jobs import FINISHED, UNSUCCESSFUL, JobStatus
from ..planning.cost import CostBreakdown
from ..planning.plan import Plan
from ..refs import image_name
from ..summary import ModelSummary


@dataclass
class Progress:
    """Counters a progress display draws; the `progress` callback gets it after each change."""

    total: int = 0
    uploads_total: int = 0
    uploaded: int = 0
    submitted: int = 0
    running: int = 0
    done: int = 0
    downloaded: int = 0
    failed: int = 0
    message: str = ""
    queue_positions: dict[int, int] = field(default_factory=dict)  # job id -> fal's position

    @property
    def queued(self) -> str:
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

    def cost(self) -> CostBreakdown:
        """What this run actually submitted, what earlier runs had, and the total."""
        earlier = self.earlier or CostBreakdown(self.plan.cost_per_video, 0, 0, 0.0, 0.0)
        return CostBreakdown(
            self.plan.cost_per_video,
            self.submitted_now,
            earlier.earlier_jobs,
            self.submitted_usd,
            earlier.earlier,
            earlier.earlier_requests,
        )

    @property
    def ok(self) -> bool:
        return not self.interrupted and not self.fatal and all(j.video for j in self.jobs)

    @property
    def failed(self) -> list[JobResult]:
        return [j for j in self.jobs if j.status in UNSUCCESSFUL]

    @property
    def videos(self) -> list[Path]:
        return [Path(j.video) for j in self.jobs if j.video]

    def summary(self) -> str:
        counts: dict[str, int] = {}
        for j in self.jobs:
            counts[j.status] = counts.get(j.status, 0) + 1
        lines = [
            f"batch {self.batch_id} on {self.backend}: {len(self.jobs)} jobs, "
            + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())),
            f"videos in {self.plan.output_dir}",
        ]
        billed = "estimates" if self.billed else "not billed: emulator"
        lines.append(f"cost ({billed}): {self.cost().describe(done=True)}")
        if len(self.models) == 1:
            lines.append(f"model {self.models[0].line()}")
        elif self.models:
            lines.append("per model (every job of the batch in the ledger):")
            lines += [f"  {m.line()}" for m in self.models]
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

        for j in self.failed:
            lines.append(job_line("CANCELLED" if j.status == JobStatus.CANCELLED else "FAILED", j))
        if any(j.status == JobStatus.FAILED for j in self.jobs):
            lines.append(
                f"`i2vkit retry {self.batch_id}` submits the failed jobs again "
                "(shows their cost first; on fal they are billed again)."
            )
        lines.extend(self.notes)
        unfinished = [j for j in self.jobs if j.status not in FINISHED and j.error]
        for j in unfinished:
            lines.append(job_line("NOT DONE", j))
        if unfinished:
            lines.append(
                f"{len(unfinished)} job(s) are kept in the ledger; run the same command again "
                "to finish them (nothing is paid twice)."
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
