"""The batch engine: plan, upload, submit, poll, download, resume.

The ledger is the source of truth. Every job is written before it is submitted;
a job is marked `submitting` (a compare-and-set, so two processes never both pay
for it) right before the POST and gets its fal request_id right after, so the
only window in which a crash can cost a duplicate job is one request long. The
video URL is recorded before the download starts, because fal keeps a finished
request's result for an hour (six minutes when it is 10 KB or more) while the
video on its CDN lasts days. Running the same batch again re-attaches to
in-flight requests, downloads what finished and submits only what never was.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import socket
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import Settings, load_settings
from .download import ExpiredURLError, check_url, download, index_videos, video_filename
from .errors import (
    DownloadError,
    FalAuthError,
    FalError,
    FalLockedError,
    FalTransientError,
    FalValidationError,
    InputError,
)
from .fal import FalConnection, RequestBudget
from .images import ImageFile, Skipped, scan_images
from .models import ModelSpec, get_model
from .pairing import Pair, normalize_pairing, pair
from .prompts import check_prompt_lengths, parse_prompts, read_prompts
from .store import (
    CANCELLED,
    COMPLETED,
    DOWNLOADED,
    FAILED,
    FINISHED,
    PENDING,
    QUEUED,
    RUNNING,
    SUBMITTING,
    Store,
    utcnow,
)
from .upload import Uploader

DEFAULT_CONCURRENCY = 16
DEFAULT_MAX_RPS = 300.0
DOWNLOAD_CONCURRENCY = 4


@dataclass
class BatchConfig:
    """What to run. Every field has a default that works, so notebooks run top to bottom."""

    images_dir: str | os.PathLike
    prompts_file: str | os.PathLike | None = None
    prompts: list[str] | str | None = None  # inline prompts (a list, or text with one per line)
    model: str = "wan"
    options: dict[str, Any] = field(default_factory=dict)
    pairing: str = "all"
    output_dir: str | os.PathLike | None = None  # default: AUTO_DOWNLOAD_DIR
    concurrency: int = DEFAULT_CONCURRENCY
    recursive: bool = False
    max_rps: float = DEFAULT_MAX_RPS
    upload_concurrency: int = 4


@dataclass
class Plan:
    """Everything known before any money is spent: the jobs, skipped files and the cost."""

    config: BatchConfig
    model: ModelSpec
    options: dict[str, Any]
    images: list[ImageFile]
    skipped: list[Skipped]
    prompts: list[str]
    pairs: list[Pair]
    output_dir: Path
    cost_per_video: float | None

    @property
    def estimated_cost(self) -> float | None:
        if self.cost_per_video is None:
            return None
        return round(self.cost_per_video * len(self.pairs), 4)

    def describe(self) -> str:
        cost = (
            f"${self.estimated_cost:,.2f} (${self.cost_per_video:,.3f} per video)"
            if self.cost_per_video is not None
            else "unknown (no published price for this endpoint)"
        )
        lines = [
            f"{len(self.images)} images x {len(self.prompts)} prompts ({self.config.pairing}) "
            f"= {len(self.pairs)} jobs on {self.model.name} ({self.model.endpoint_id})",
            f"estimated cost on fal: {cost}",
            f"videos go to: {self.output_dir}",
        ]
        for s in self.skipped:
            lines.append(f"skipped {s.path.name}: {s.reason}")
        return "\n".join(lines)


def load_prompts(config: BatchConfig) -> list[str]:
    if config.prompts is not None:
        text = config.prompts if isinstance(config.prompts, str) else "\n".join(config.prompts)
        return parse_prompts(text)
    if config.prompts_file is None:
        raise InputError("No prompts given: pass a prompts file (one prompt per line) or prompts.")
    return read_prompts(config.prompts_file)


def plan_batch(config: BatchConfig, settings: Settings | None = None) -> Plan:
    """Scan, read, pair and price a batch without touching the network."""
    settings = settings or load_settings()
    if not isinstance(config.concurrency, int) or config.concurrency < 1:
        raise InputError(
            f"concurrency must be a whole number of at least 1, got {config.concurrency!r}; "
            f"the default is {DEFAULT_CONCURRENCY}."
        )
    model = get_model(config.model)
    options = model.validate_options(config.options)
    prompts = load_prompts(config)
    check_prompt_lengths(prompts, model.max_prompt_chars, model.name)
    scan = scan_images(config.images_dir, recursive=config.recursive)
    config.pairing = normalize_pairing(config.pairing)
    pairs = pair(scan.images, prompts, config.pairing)
    output_dir = Path(config.output_dir or settings.download_dir).expanduser().absolute()
    check_output_dir(output_dir)
    return Plan(
        config=config,
        model=model,
        options=options,
        images=scan.images,
        skipped=scan.skipped,
        prompts=prompts,
        pairs=pairs,
        output_dir=output_dir,
        cost_per_video=model.estimate_cost(options),
    )


def check_output_dir(path: Path) -> None:
    """Refuse, before anything is paid for, an output folder that cannot exist or be written:
    otherwise every video of the batch is generated, billed and then lost at download time."""
    existing = path
    while not existing.exists():
        if existing.is_symlink() or existing.parent == existing:
            break
        existing = existing.parent
    what = "is" if existing == path else f"cannot be created: {existing}"
    if not existing.is_dir():
        raise InputError(
            f"Output folder {path} {what} is not a folder. Pass --output-dir (or set "
            "AUTO_DOWNLOAD_DIR to) a folder you can write to."
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(
            f"Output folder {path} {what} is not writable (permission denied). Pass "
            "--output-dir (or set AUTO_DOWNLOAD_DIR to) a folder you can write to."
        )


def batch_id_for(plan: Plan, backend: str) -> str:
    """Same inputs, same batch: re-running a command resumes it instead of paying again."""
    key = json.dumps(
        [
            backend,
            plan.model.endpoint_id,
            plan.options,
            plan.config.pairing,
            str(Path(plan.config.images_dir).absolute()),
            str(plan.output_dir),
        ],
        sort_keys=True,
    )
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def job_key(pair_: Pair, image_hash: str | None, occurrence: int) -> str:
    raw = f"{pair_.image.path}\0{image_hash}\0{pair_.prompt}\0{occurrence}"
    return hashlib.sha256(raw.encode()).hexdigest()[:20]


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


@dataclass
class JobResult:
    id: int
    image: str
    prompt: str
    status: str
    video: str | None
    error: str | None
    request_id: str | None


@dataclass
class BatchResult:
    """The summary of a run: per-job outcomes, counts and where the files are."""

    batch_id: str
    plan: Plan
    jobs: list[JobResult]
    backend: str
    interrupted: bool = False
    fatal: str | None = None
    upload_failures: dict[str, str] = field(default_factory=dict)
    uploads: int = 0
    requests: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.interrupted and not self.fatal and all(j.video for j in self.jobs)

    @property
    def failed(self) -> list[JobResult]:
        return [j for j in self.jobs if j.status in (FAILED, CANCELLED)]

    @property
    def videos(self) -> list[Path]:
        return [Path(j.video) for j in self.jobs if j.video]

    def summary(self) -> str:
        counts: dict[str, int] = {}
        for j in self.jobs:
            counts[j.status] = counts.get(j.status, 0) + 1
        cost = self.plan.estimated_cost
        lines = [
            f"batch {self.batch_id} on {self.backend}: {len(self.jobs)} jobs, "
            + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())),
            f"videos in {self.plan.output_dir}",
        ]
        if cost is not None:
            billed = "not billed: emulator" if self.backend != "fal" else "estimate"
            lines.append(f"cost: ${cost:,.2f} ({billed})")
        for s in self.plan.skipped:
            lines.append(f"skipped image {s.path.name}: {s.reason}")
        for path, reason in self.upload_failures.items():
            lines.append(f"not uploaded {Path(path).name}: {reason}")
        for j in self.failed:
            lines.append(f"FAILED job {j.id} ({Path(j.image).name} / {j.prompt[:40]!r}): {j.error}")
        unfinished = [j for j in self.jobs if j.status not in FINISHED and j.error]
        for j in unfinished:
            lines.append(
                f"NOT DONE job {j.id} ({Path(j.image).name} / {j.prompt[:40]!r}): {j.error}"
            )
        if unfinished:
            lines.append(
                f"{len(unfinished)} job(s) are kept in the ledger; run the same command again "
                "to finish them (nothing is paid twice)."
            )
        if self.fatal:
            lines.append(f"STOPPED: {self.fatal}")
        return "\n".join(lines)


def process_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_alive(owner: str | None) -> bool:
    """Is the process that owns a job still running? (Only knowable on this host.)"""
    if not owner:
        return False
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class PollSchedule:
    """When to ask fal about a job next, so polling never gets an account rate-limited.

    A job is expected done one typical run time (the median of this batch's finished
    jobs) after it starts, so that is when it is polled, then every eighth of that.
    A job seen waiting in fal's queue backs off (1 s, growing to 30 s) and is polled
    sooner the nearer it gets to the front. Before three jobs have finished there is
    no typical time yet, and polls start at 0.5 s and grow by half each time.
    """

    def __init__(self) -> None:
        self.run_times: list[float] = []

    def observe(self, seconds: float) -> None:
        self.run_times.append(seconds)
        if len(self.run_times) > 200:
            del self.run_times[:100]

    @property
    def typical(self) -> float | None:
        return statistics.median(self.run_times) if len(self.run_times) >= 3 else None

    def next_delay(
        self,
        state: str,
        since_submit: float,
        since_start: float | None,
        polls: int,
        queue_position: int | None,
    ) -> float:
        typical = self.typical
        if state == "IN_QUEUE" and polls > 0 and queue_position:
            base = min(30.0, 1.0 * 1.5 ** min(polls, 10))
            if typical:
                base = min(base, max(1.0, typical * queue_position / 4))
            return base
        elapsed = since_start if since_start is not None else since_submit
        if typical:
            remaining = typical - elapsed
            if remaining > 0.05:
                return min(remaining + 0.05, 60.0)
            return min(max(typical / 8, 0.1), 15.0)
        return min(15.0, 0.5 * 1.5 ** min(polls, 10))


class BatchRunner:
    """Runs one planned batch against one backend. Use :func:`run_batch`."""

    def __init__(
        self,
        plan: Plan,
        settings: Settings,
        store: Store,
        fal: FalConnection,
        progress: Callable[[Progress], None] | None = None,
        stop: threading.Event | None = None,
    ):
        self.plan = plan
        self.settings = settings
        self.store = store
        self.fal = fal
        self.on_progress = progress
        self.stop = stop or threading.Event()
        self.progress = Progress(total=len(plan.pairs), uploads_total=len(plan.images))
        self.owner = process_owner()
        self.slots = asyncio.Semaphore(plan.config.concurrency)
        self.download_slots = asyncio.Semaphore(DOWNLOAD_CONCURRENCY)
        # one submit POST in flight at a time: a crash can then cost at most one paid duplicate
        self.submit_lock = asyncio.Lock()
        self.submitting: set[asyncio.Task[bool]] = set()
        self.schedule = PollSchedule()
        self.fatal: FalError | None = None
        self.batch_id = batch_id_for(plan, settings.backend)
        self.image_urls: dict[str, str] = {}  # this run's valid URL for each image path
        self.on_disk: dict[int, tuple[Path | None, Path | None]] | None = None
        self.reuploads: dict[str, asyncio.Future[str | None]] = {}  # image path -> fresh URL
        self.image_retried: set[int] = set()  # jobs resubmitted once for an expired image URL
        self.model = plan.model

    def emit(self, message: str = "") -> None:
        if message:
            self.progress.message = message
        if self.on_progress:
            with contextlib.suppress(Exception):
                self.on_progress(self.progress)

    # -- planning into the ledger ---------------------------------------------------------

    async def upload_and_record(self) -> tuple[list[dict[str, Any]], dict[str, str], int]:
        uploader = Uploader(
            self.store,
            self.fal,
            cache_enabled=self.settings.upload_cache_enabled,
            concurrency=self.plan.config.upload_concurrency,
        )

        def uploaded(_path: str) -> None:
            self.progress.uploaded += 1
            self.emit()

        report = await uploader.upload_all([im.path for im in self.plan.images], uploaded)
        self.image_urls.update(report.urls)
        self.store.save_batch(
            {
                "id": self.batch_id,
                "model": self.model.name,
                "endpoint_id": self.model.endpoint_id,
                "options": self.plan.options,
                "pairing": self.plan.config.pairing,
                "images_dir": str(Path(self.plan.config.images_dir).absolute()),
                "prompts_source": str(self.plan.config.prompts_file or "inline"),
                "output_dir": str(self.plan.output_dir),
                "backend": self.settings.backend,
                "job_count": len(self.plan.pairs),
            }
        )
        rows, seen = [], {}
        for p in self.plan.pairs:
            path = str(p.image.path)
            digest = report.hashes.get(path)
            occurrence = seen[(path, p.prompt)] = seen.get((path, p.prompt), -1) + 1
            rows.append(
                {
                    "batch_id": self.batch_id,
                    "job_key": job_key(p, digest, occurrence),
                    "pair_index": p.index,
                    "image_path": path,
                    "image_hash": digest,
                    "image_url": report.urls.get(path),
                    "prompt": p.prompt,
                    "model": self.model.name,
                    "endpoint_id": self.model.endpoint_id,
                    "backend": self.settings.backend,
                }
            )
        self.store.add_jobs(rows)
        keys = [r["job_key"] for r in rows]
        jobs = self.store.jobs(self.batch_id, keys=keys)
        for job in jobs:
            url = report.urls.get(job["image_path"])
            if job["status"] == PENDING:
                if url is None:
                    reason = report.failed.get(job["image_path"], "the image was not uploaded")
                    self.store.update_job(
                        job["id"], status=FAILED, error=reason, error_type="upload_failed"
                    )
                elif url != job["image_url"]:
                    self.store.update_job(job["id"], image_url=url)
        return self.store.jobs(self.batch_id, keys=keys), report.failed, report.uploaded

    # -- one job, start to finish ------------------------------------------------------

    async def run_job(self, job: dict[str, Any]) -> None:
        job_id = job["id"]
        try:
            status = job["status"]
            if status == DOWNLOADED and job["local_file"] and Path(job["local_file"]).exists():
                return
            if status in (FAILED, CANCELLED):
                return
            if (
                self.settings.emulated
                and job["request_id"]
                and not (job["status_url"] or "").startswith(self.fal.base + "/")
            ):
                # a demo emulator from an earlier run is gone, and its jobs with it (unpaid)
                self.store.update_job(job_id, status=PENDING, request_id=None, owner=None)
                status = PENDING
            if status == SUBMITTING and job["request_id"] is None:
                if owner_alive(job["owner"]) and job["owner"] != self.owner:
                    return  # another live process is submitting it right now
                # its process died inside the one-request submit window: back to pending,
                # compare-and-set on the dead owner so only one resuming process does it
                if not self.compare_and_set(job, status=PENDING, owner=None):
                    return
                status = PENDING
            elif status in (QUEUED, RUNNING, SUBMITTING, COMPLETED) and job["owner"] != self.owner:
                if owner_alive(job["owner"]):
                    return  # another live process follows (or downloads) this request
                if not self.compare_and_set(job, owner=self.owner):
                    return  # another resuming process took it over first
            if status == PENDING:
                if self.stop.is_set() or self.fatal:
                    return
                async with self.slots:
                    if self.stop.is_set() or self.fatal:
                        return
                    if not await self.submit(job):
                        return
                    await self.follow(job_id)
            elif status in (QUEUED, RUNNING, SUBMITTING):
                async with self.slots:
                    await self.follow(job_id)
            job = self.store.job(job_id)
            if job["status"] in (COMPLETED, DOWNLOADED):
                async with self.download_slots:
                    await self.fetch_video(job)
        except (FalAuthError, FalLockedError) as exc:
            self.fatal = self.fatal or exc
            self.stop.set()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # one job's surprise never stops the batch
            self.fail(job_id, f"unexpected error: {self.fal.clean(str(exc))}", "internal_error")

    def compare_and_set(self, job: dict[str, Any], **fields: Any) -> bool:
        """Update a job only if its status and owner are still what `job` says (another
        process on the same ledger may have changed them since we read it)."""
        return self.store.update_job_if(job["id"], job["status"], job["owner"], **fields)

    def fail(self, job_id: int, message: str, error_type: str | None) -> None:
        self.store.update_job(
            job_id, status=FAILED, error=message, error_type=error_type, completed_at=utcnow()
        )
        self.progress.failed += 1
        self.emit()

    async def submit(self, job: dict[str, Any]) -> bool:
        """Claim, POST and record one job. Serialized: only one job of this process is ever
        inside the window where fal may have it but the ledger has no request_id yet."""
        async with self.submit_lock:
            # Ctrl-C must not cut a POST off from its answer: that is how duplicates are paid
            task = asyncio.create_task(self.submit_one(job))
            self.submitting.add(task)
            task.add_done_callback(self.submitting.discard)
            return await asyncio.shield(task)

    async def submit_one(self, job: dict[str, Any]) -> bool:
        job_id = job["id"]
        # only from pending: a job read as pending that another process claimed meanwhile
        # is 'submitting' now, and must not be claimed (and paid for) a second time
        if not self.store.claim(job_id, self.owner, [PENDING]):
            return False
        image_url = self.image_urls.get(job["image_path"], job["image_url"])
        try:
            arguments = self.model.build_arguments(image_url, job["prompt"], self.plan.options)
        except InputError as exc:
            self.fail(job_id, str(exc), "invalid_input")
            return False
        self.store.update_job(job_id, arguments=json.dumps(arguments), image_url=image_url)
        try:
            answer = await self.fal.submit(self.model.endpoint_id, arguments)
        except (FalAuthError, FalLockedError):
            self.store.update_job(job_id, status=PENDING, owner=None)
            raise
        except FalValidationError as exc:
            self.fail(job_id, str(exc), exc.error_type or "validation_error")
            return False
        except FalError as exc:
            # Not accepted, or unknown whether accepted: leave it to the next run or `retry`.
            self.store.update_job(
                job_id,
                status=PENDING if isinstance(exc, FalTransientError) else FAILED,
                error=str(exc),
                error_type=exc.error_type,
            )
            if not isinstance(exc, FalTransientError):
                self.progress.failed += 1
            self.emit()
            return False
        urls = self.fal.request_urls(self.model.endpoint_id, answer["request_id"])
        self.store.update_job(
            job_id,
            request_id=answer["request_id"],
            status_url=answer.get("status_url") or urls["status_url"],
            response_url=answer.get("response_url") or urls["response_url"],
            cancel_url=answer.get("cancel_url") or urls["cancel_url"],
            status=QUEUED,
            queue_position=answer.get("queue_position"),
            submitted_at=utcnow(),
            error=None,
            error_type=None,
        )
        self.progress.submitted += 1
        self.emit()
        return True

    async def follow(self, job_id: int) -> None:
        """Poll one request until it completes, then fetch its result at once."""
        job = self.store.job(job_id)
        submitted = time.monotonic()
        started: float | None = None
        polls = 0
        position = job["queue_position"]
        state = "IN_QUEUE" if job["status"] in (QUEUED, SUBMITTING) else "IN_PROGRESS"
        was_running = job["status"] == RUNNING
        waited = False  # seen waiting in fal's queue: its run then starts when we see it start
        while True:
            delay = self.schedule.next_delay(
                state,
                time.monotonic() - submitted,
                None if started is None or not waited else time.monotonic() - started,
                polls,
                position,
            )
            await asyncio.sleep(delay)
            polls += 1
            self.store.count(job_id, "status_requests")
            try:
                status = await self.fal.status(job["status_url"])
            except FalTransientError:
                continue
            except FalError as exc:
                if exc.status_code == 404:
                    await self.lost(job)
                    return
                raise
            state = status["status"]
            if state == "IN_QUEUE":
                waited = True
                position = status.get("queue_position")
                self.store.update_job(job_id, queue_position=position)
            elif state == "IN_PROGRESS" and started is None:
                started = time.monotonic()
                if not was_running:
                    was_running = True
                    self.store.update_job(
                        job_id, status=RUNNING, started_at=utcnow(), queue_position=0
                    )
                    self.progress.running += 1
                    self.emit()
            elif state == "COMPLETED":
                if was_running:
                    self.progress.running -= 1
                metrics = status.get("metrics")
                ran = metrics.get("inference_time") if isinstance(metrics, dict) else None
                if not isinstance(ran, int | float) or ran <= 0:
                    ran = time.monotonic() - (started if started and waited else submitted)
                self.schedule.observe(ran)
                await self.collect(job, status)
                return

    async def lost(self, job: dict[str, Any]) -> None:
        """fal no longer knows a request we sent (expired, or an emulator that restarted)."""
        if self.settings.backend != "fal":
            self.store.update_job(job["id"], status=PENDING, request_id=None, owner=None)
            # submit again in the slot this job already holds (run_job would wait for a
            # second slot, and with every slot held by a lost job the batch hung forever)
            if await self.submit(self.store.job(job["id"])):
                await self.follow(job["id"])
            return
        self.fail(
            job["id"],
            f"fal no longer knows request {job['request_id']} (it expired); "
            "`i2vkit retry` submits it again (billed again).",
            "request_lost",
        )

    async def collect(self, job: dict[str, Any], status: dict[str, Any]) -> None:
        """Fetch a completed job's result right away and record the video URL before download.

        fal has no FAILED state: a failed run is COMPLETED with `error` set, and the
        real message (a 422 detail list or a 5xx detail) comes from the result.
        """
        job_id = job["id"]
        failed = bool(status.get("error"))
        self.store.count(job_id, "result_requests")
        try:
            result = await self.fal.result(job["response_url"], failed=failed)
        except FalTransientError:
            if not failed:
                raise
            result, detail, error_type = None, None, status.get("error_type")
        except FalError as exc:
            result, detail, error_type = None, str(exc), exc.error_type or status.get("error_type")
            if exc.status_code == 404 and not failed:
                detail = (
                    "fal no longer has this request's result (results are kept 1 hour, "
                    "6 minutes when large); `i2vkit retry` submits it again."
                )
        if failed or result is None:
            message = f"fal reported an error: {status.get('error') or 'job failed'}"
            if detail and (status.get("error") or "") not in detail:
                message += f" ({detail})"
            elif detail and not status.get("error"):
                message = detail
            if error_type:
                message += f" [{error_type}]"
            if (
                error_type == "file_download_error"
                and f"{self.model.image_field}:" in (detail or "")
                and job_id not in self.image_retried
            ):
                self.image_retried.add(job_id)
                if await self.resubmit_with_fresh_image(job, message):
                    return
            self.fail(job_id, message, error_type)
            return
        try:
            url = self.model.video_url(result)
            check_url(url)
        except FalError as exc:
            self.fail(job_id, str(exc), exc.error_type)
            return
        except DownloadError as exc:
            self.fail(job_id, f"fal's result has an unusable video URL: {exc}", "bad_result")
            return
        video = result.get("video") if isinstance(result.get("video"), dict) else {}
        size = video.get("file_size") if isinstance(video.get("file_size"), int) else None
        self.store.update_job(
            job_id, status=COMPLETED, video_url=url, video_size=size, completed_at=utcnow()
        )
        self.progress.done += 1
        self.emit()

    async def resubmit_with_fresh_image(self, job: dict[str, Any], message: str) -> bool:
        """fal could not fetch the image URL we gave it (a cached upload that expired early):
        forget that URL, upload the image again (once per image) and submit the job once more.
        False when the image cannot be uploaded again (the caller fails the job)."""
        path = job["image_path"]
        pending = self.reuploads.get(path)
        if pending is None:
            pending = self.reuploads[path] = asyncio.ensure_future(
                self.reupload(path, job["image_url"])
            )
        url = await asyncio.shield(pending)
        if url is None:
            return False
        self.store.update_job(
            job["id"],
            status=PENDING,
            request_id=None,
            owner=None,
            image_url=url,
            error=f"resubmitted with the image uploaded again after: {message}",
        )
        if await self.submit(self.store.job(job["id"])):
            await self.follow(job["id"])
        return True

    async def reupload(self, path: str, stale_url: str | None) -> str | None:
        if stale_url:  # every cache row with that URL is expired from now on
            self.store.expire_url(stale_url)
        uploader = Uploader(self.store, self.fal, cache_enabled=self.settings.upload_cache_enabled)
        report = await uploader.upload_all([path])
        url = report.urls.get(path)
        if url is not None:
            self.image_urls[path] = url
        return url

    async def fetch_video(self, job: dict[str, Any]) -> None:
        job_id = job["id"]
        out = self.plan.output_dir
        out.mkdir(parents=True, exist_ok=True)
        if self.on_disk is None:  # list the folder once per run, not once per job
            self.on_disk = index_videos(out, self.model.name)
        found, unfinished = self.on_disk.pop(job_id, (None, None))
        if found is not None and not found.exists():
            found = None
        if found is None:
            dest = unfinished or out / video_filename(job_id, self.model.name)
            url = job["video_url"]
            for attempt in range(2):
                self.store.count(job_id, "download_attempts")
                try:
                    # the CDN client: a video URL may point anywhere, and only fal's own
                    # API gets the key (fal.http sends it with every request)
                    await download(self.fal.cdn_http, url, dest, budget=self.fal.budget)
                    break
                except ExpiredURLError as exc:
                    if attempt:
                        self.fail(
                            job_id,
                            f"the video URL expired ({exc}) and fal's result, fetched again by "
                            f"request id, names the same expired file; `i2vkit retry "
                            f"{self.batch_id}` submits the job again (billed again).",
                            "video_expired",
                        )
                        return
                    url = await self.refresh_video_url(job)
                    if url is None:
                        return
                except DownloadError as exc:
                    self.store.update_job(job_id, error=f"download failed: {exc}")
                    self.progress.message = f"job {job_id}: {exc}"
                    self.emit()
                    return
            found = dest
        self.store.update_job(
            job_id, status=DOWNLOADED, local_file=str(found), downloaded_at=utcnow(), error=None
        )
        self.progress.downloaded += 1
        self.emit()

    async def refresh_video_url(self, job: dict[str, Any]) -> str | None:
        """The video URL expired: ask fal for the result again by request id."""
        try:
            result = await self.fal.result(job["response_url"])
            url = self.model.video_url(result)
            check_url(url)
        except (FalError, DownloadError) as exc:
            self.fail(
                job["id"],
                f"the video URL expired and fal no longer has the result ({exc}); "
                f"`i2vkit retry {self.batch_id}` submits the job again (billed again).",
                "video_expired",
            )
            return None
        self.store.update_job(job["id"], video_url=url)
        return url

    async def run(self, jobs: list[dict[str, Any]] | None = None) -> BatchResult:
        upload_failures: dict[str, str] = {}
        uploads = 0
        await self.fal.check_key()
        if jobs is None:
            jobs, upload_failures, uploads = await self.upload_and_record()
        self.progress.failed = sum(j["status"] == FAILED for j in jobs)
        self.progress.downloaded = sum(
            j["status"] == DOWNLOADED and bool(j["local_file"]) and Path(j["local_file"]).exists()
            for j in jobs
        )
        self.emit("submitting")
        interrupted = False
        try:
            async with asyncio.TaskGroup() as group:
                for job in jobs:
                    group.create_task(self.run_job(job))
        except asyncio.CancelledError:
            interrupted = True
            if self.submitting:  # let the POST already on the wire bring back its request_id
                await asyncio.wait(self.submitting, timeout=self.fal.timeout)
        keys = [j["job_key"] for j in jobs]
        final = self.store.jobs(self.batch_id, keys=keys)
        self.emit("finished")
        return BatchResult(
            batch_id=self.batch_id,
            plan=self.plan,
            jobs=[
                JobResult(
                    id=j["id"],
                    image=j["image_path"],
                    prompt=j["prompt"],
                    status=j["status"],
                    video=j["local_file"] if j["status"] == DOWNLOADED else None,
                    error=j["error"],
                    request_id=j["request_id"],
                )
                for j in final
            ],
            backend=self.settings.backend,
            interrupted=interrupted or (self.stop.is_set() and not self.fatal),
            fatal=str(self.fatal) if self.fatal else None,
            upload_failures=upload_failures,
            uploads=uploads,
            requests=dict(self.fal.requests),
        )


async def run_batch(
    config: BatchConfig | Plan,
    settings: Settings | None = None,
    *,
    progress: Callable[[Progress], None] | None = None,
    stop: threading.Event | None = None,
) -> BatchResult:
    """Run (or resume) a batch and return its summary. The notebook's and the CLI's engine."""
    from .backend import resolve_backend

    settings = settings or load_settings()
    plan = config if isinstance(config, Plan) else plan_batch(config, settings)
    with resolve_backend(settings) as live, Store(live.db_path) as store:
        budget = RequestBudget(rate=plan.config.max_rps)
        async with FalConnection(live, budget=budget) as fal:
            runner = BatchRunner(plan, live, store, fal, progress=progress, stop=stop)
            return await runner.run()


async def retry_batch_async(
    batch_id: str,
    settings: Settings | None = None,
    *,
    progress: Callable[[Progress], None] | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> BatchResult:
    """Submit the failed jobs of a batch again (re-uploading images that failed to upload)."""
    from .backend import resolve_backend

    settings = settings or load_settings()
    with Store(settings.db_path) as store:
        batch = store.get_batch(batch_id)
        if batch is None:
            raise InputError(
                f"No batch {batch_id!r} in {settings.db_path}; `i2vkit status` lists them."
            )
    config = BatchConfig(
        images_dir=batch["images_dir"] or ".",
        prompts=["(retry)"],
        model=batch["endpoint_id"],
        options=json.loads(batch["options"] or "{}"),
        pairing=batch["pairing"],
        output_dir=batch["output_dir"],
        concurrency=concurrency,
    )
    model = (
        get_model(batch["model"]) if "/" not in batch["model"] else get_model(batch["endpoint_id"])
    )
    with resolve_backend(settings) as live, Store(live.db_path) as store:
        if batch["backend"] != live.backend:
            raise InputError(
                f"Batch {batch['id']} ran on {batch['backend']}, but this run would use "
                f"{live.backend}; set FAL_KEY / I2VKIT_FAL_URL as they were for that batch."
            )
        failed = store.jobs(batch["id"], statuses=[FAILED, CANCELLED])
        plan = Plan(
            config=config,
            model=model,
            options=config.options,
            images=[],
            skipped=[],
            prompts=[],
            pairs=[],
            output_dir=Path(batch["output_dir"]),
            cost_per_video=model.estimate_cost(config.options),
        )
        async with FalConnection(live, budget=RequestBudget(rate=config.max_rps)) as fal:
            uploader = Uploader(store, fal, cache_enabled=live.upload_cache_enabled)
            report = await uploader.upload_all({j["image_path"] for j in failed})
            for job in failed:
                url = report.urls.get(job["image_path"])
                if url is None:
                    continue
                store.update_job(
                    job["id"],
                    status=PENDING,
                    image_url=url,
                    request_id=None,
                    error=None,
                    error_type=None,
                    owner=None,
                    video_url=None,
                )
            runner = BatchRunner(plan, live, store, fal, progress=progress)
            runner.batch_id = batch["id"]
            runner.progress.total = len(failed)
            jobs = store.jobs(batch["id"], keys=[j["job_key"] for j in failed])
            result = await runner.run(jobs)
            result.upload_failures = report.failed
            return result


def retry_batch(batch_id: str, settings: Settings | None = None, **kwargs: Any) -> BatchResult:
    """Blocking twin of :func:`retry_batch_async`."""
    return run_blocking(retry_batch_async(batch_id, settings, **kwargs))


def run_blocking(coro: Any) -> Any:
    """Run a coroutine to the end from plain code, also under a running notebook loop.

    A kernel's loop is already running, so asyncio.run() would refuse; instead of
    patching the loop (nest_asyncio, archived), the coroutine gets its own loop on a
    worker thread while the caller waits. Interrupting the caller (Ctrl-C, the
    kernel's stop button) cancels the batch there too, so it stops submitting and
    leaves its in-flight jobs in the ledger for the next run.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}
    ready, done = threading.Event(), threading.Event()

    async def main() -> Any:
        box["loop"], box["task"] = asyncio.get_running_loop(), asyncio.current_task()
        ready.set()
        return await coro

    def worker() -> None:
        try:
            box["result"] = asyncio.run(main())
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc
        finally:
            ready.set()
            done.set()

    # Wait on an Event, not Thread.join(): an interrupted join() marks a live thread as
    # stopped on Python 3.11 (the bpo-45274 clean-up releases the thread's own lock).
    threading.Thread(target=worker, name="i2vkit-batch", daemon=True).start()
    try:
        done.wait()
    except KeyboardInterrupt:
        ready.wait()
        if "task" in box:
            box["loop"].call_soon_threadsafe(box["task"].cancel)
        while not done.is_set():  # let the batch wind down even if Ctrl-C is pressed again
            with contextlib.suppress(KeyboardInterrupt):
                done.wait()
        raise
    if "error" in box:
        raise box["error"]
    return box["result"]


def run_batch_sync(
    config: BatchConfig | Plan, settings: Settings | None = None, **kwargs: Any
) -> BatchResult:
    """The blocking twin of :func:`run_batch`, for scripts (and notebooks that prefer it)."""
    return run_blocking(run_batch(config, settings, **kwargs))
