"""What to run, decided before any money moves: a batch spec becomes a :class:`Plan`.

A plan holds the images to upload, the image x prompt pairs, the model with its
checked options, the output folder and the cost estimate; planning touches no
network. A retry is planned the same way, from the ledger instead of a folder
(:func:`plan_retry`), so it runs, shows its cost and asks like any batch.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .backend import backend_for
from .catalogue.stored import refresh_if_stale
from .catalogue.stored import use_stored as use_stored_catalogue
from .config import Settings, load_settings
from .errors import InputError, StoreError
from .images import DEFAULT_MAX_PIXELS, ImageFile, Skipped, Trusted, check_image, scan_images
from .jobs import UNSUCCESSFUL, JobStatus
from .models import ModelSpec, get_model, is_remote
from .pairing import Pair, normalize_pairing, pair
from .prompts import check_prompt_lengths, parse_prompts, read_prompts
from .store import Store

DEFAULT_CONCURRENCY = 16
DEFAULT_MAX_RPS = 300.0
#: What `i2vkit retry` runs again: failures, cancellations, and jobs never submitted (a
#: spend cap stopped submitting before them).
RETRIED = (*UNSUCCESSFUL, JobStatus.PENDING)
#: ``BatchSpec.max_cost`` for "no cap, whatever I2VKIT_MAX_COST says" (``--max-cost none``).
NO_CAP = math.inf
#: Ledger statuses a re-run of the same command submits (again).
SUBMITTED_BY_A_RERUN = (JobStatus.PENDING, JobStatus.CANCELLED)


@dataclass
class BatchSpec:
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
    max_cost: float | None = None  # US$ this run may add at most; default I2VKIT_MAX_COST


@dataclass
class Plan:
    """Everything known before any money is spent: the jobs, skipped files and the cost.

    A fresh plan has `pairs`; a retry plan (`retry_of` set) has the ledger's job ids
    to run again in `job_ids` and the images they need in `images`.
    """

    spec: BatchSpec
    model: ModelSpec
    options: dict[str, Any]
    images: list[ImageFile]
    skipped: list[Skipped]
    prompts: list[str]
    pairs: list[Pair]
    output_dir: Path
    cost_per_video: float | None
    ledger: Path
    retry_of: str | None = None
    job_ids: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # catalogue and model-status lines
    end_image: ImageFile | None = None  # a local end frame, uploaded once for every job
    end_image_url: str | None = None  # set by the engine once it is uploaded

    @property
    def job_count(self) -> int:
        return len(self.job_ids) if self.retry_of else len(self.pairs)

    @property
    def estimated_cost(self) -> float | None:
        if self.cost_per_video is None:
            return None
        return round(self.cost_per_video * self.job_count, 4)

    def cost_breakdown(self, store: Store, backend_label: str) -> CostBreakdown:
        """What this run adds, what earlier runs of this batch spent (see :func:`cost_breakdown`)."""
        return cost_breakdown(self, store, backend_label)

    def describe(self) -> str:
        cost = (
            f"${self.estimated_cost:,.2f} (${self.cost_per_video:,.3f} per video)"
            if self.cost_per_video is not None
            else "unknown (no published price for this endpoint)"
        )
        if self.retry_of:
            head = (
                f"retry of batch {self.retry_of}: {self.job_count} failed or cancelled jobs "
                "(or left pending)"
            )
        else:
            head = (
                f"{len(self.images)} images x {len(self.prompts)} prompts ({self.spec.pairing}) "
                f"= {len(self.pairs)} jobs"
            )
        lines = [
            f"{head} on {self.model.name} ({self.model.endpoint_id})",
            f"estimated cost on fal, all jobs of the batch: {cost}",
            f"videos go to: {self.output_dir}",
            f"ledger: {self.ledger}",
        ]
        for s in self.skipped:
            lines.append(f"skipped {s.path.name}: {s.reason}")
        if self.end_image is not None:
            lines.append(f"end image (every job): {self.end_image.path}")
        lines += self.notes
        return "\n".join(lines)


def load_prompts(spec: BatchSpec) -> list[str]:
    if spec.prompts is not None:
        text = spec.prompts if isinstance(spec.prompts, str) else "\n".join(spec.prompts)
        return parse_prompts(text)
    if spec.prompts_file is None:
        raise InputError("No prompts given: pass a prompts file (one prompt per line) or prompts.")
    return read_prompts(spec.prompts_file)


def check_concurrency(value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InputError(
            f"concurrency must be a whole number of at least 1, got {value!r}; "
            f"the default is {DEFAULT_CONCURRENCY}."
        )


def plan_batch(spec: BatchSpec, settings: Settings | None = None) -> Plan:
    """Scan, read, pair and price a batch without touching the network."""
    settings = settings or load_settings()
    check_concurrency(spec.concurrency)
    use_stored_catalogue(settings)
    model = get_model(spec.model)
    model.status_note()  # a shut-down endpoint is refused here, before anything else
    options = model.validate_options(spec.options)
    prompts = load_prompts(spec)
    check_prompt_lengths(prompts, model.max_prompt_chars, model.name)
    with _uploaded_unchanged(settings.db_path) as trusted:
        scan = scan_images(spec.images_dir, recursive=spec.recursive, trusted=trusted)
    if spec.max_cost is None:
        spec.max_cost = settings.max_cost
    if spec.max_cost == NO_CAP:
        spec.max_cost = None
    spec.pairing = normalize_pairing(spec.pairing)
    pairs = pair(scan.images, prompts, spec.pairing)
    output_dir = Path(spec.output_dir or settings.download_dir).expanduser().absolute()
    check_output_dir(output_dir)
    changed, note = refresh_if_stale(settings)  # only once the input is known to be good
    if changed:
        model = get_model(spec.model)
        options = model.validate_options(spec.options)
    notes = [n for n in [note, model.status_note()] if n]
    notes = [n if n.startswith("note:") else f"warning: {n}" for n in notes]
    end_image = _end_image(model, options)
    return Plan(
        spec=spec,
        model=model,
        options=options,
        images=scan.images,
        skipped=scan.skipped,
        prompts=prompts,
        pairs=pairs,
        output_dir=output_dir,
        cost_per_video=model.estimate_cost(options),
        ledger=settings.db_path,
        notes=notes,
        end_image=end_image,
    )


def plan_retry(
    batch_id: str, settings: Settings | None = None, *, concurrency: int = DEFAULT_CONCURRENCY
) -> Plan:
    """Plan running a batch's failed and cancelled jobs again, from the ledger alone.

    The images are read again (they are uploaded again through the cache when the
    retry runs), so an image deleted since the batch ran is reported here, before
    anything is spent.
    """
    settings = settings or load_settings()
    check_concurrency(concurrency)
    with Store(settings.db_path) as store:
        batch = store.get_batch(batch_id)
        if batch is None:
            raise InputError(
                f"No batch {batch_id!r} in {settings.db_path}; `i2vkit status` lists them."
            )
        jobs = store.jobs(batch["id"], statuses=RETRIED)
    here = backend_for(settings).label
    if batch["backend"] != here:
        raise InputError(
            f"Batch {batch['id']} ran on {batch['backend']}, but this run would use "
            f"{here}; set FAL_KEY / I2VKIT_FAL_URL as they were for that batch."
        )
    model = get_model(batch["endpoint_id"] if "/" in batch["model"] else batch["model"])
    options = json.loads(batch["options"] or "{}")
    spec = BatchSpec(
        images_dir=batch["images_dir"] or ".",
        model=model.name,
        options=options,
        pairing=batch["pairing"],
        output_dir=batch["output_dir"],
        concurrency=concurrency,
        max_cost=settings.max_cost,
    )
    images: dict[str, ImageFile] = {}
    skipped: list[Skipped] = []
    for path in dict.fromkeys(j["image_path"] for j in jobs):
        image, problem = _reread(Path(path))
        if image is not None:
            images[path] = image
        else:
            skipped.append(Skipped(Path(path), problem))
    output_dir = Path(batch["output_dir"])
    check_output_dir(output_dir)
    return Plan(
        spec=spec,
        model=model,
        options=options,
        images=list(images.values()),
        skipped=skipped,
        prompts=list(dict.fromkeys(j["prompt"] for j in jobs)),
        pairs=[],
        output_dir=output_dir,
        cost_per_video=model.estimate_cost(options),
        ledger=settings.db_path,
        retry_of=batch["id"],
        job_ids=[j["id"] for j in jobs],
        end_image=_end_image(model, options),
    )


@contextlib.contextmanager
def _uploaded_unchanged(db_path: Path) -> Iterator[Trusted | None]:
    """Trust, without decoding it again, an image the upload cache holds unchanged.

    It was decoded in full when it was first planned (nothing is uploaded before that),
    and the same path, size and mtime mean the same bytes for this purpose: re-planning
    a folder of 1,000 cached photos then costs a header read each, not a full decode.
    No ledger yet (or one that cannot be read): nothing is trusted.
    """
    if not db_path.is_file():
        yield None
        return
    try:
        store = Store(db_path)
    except StoreError:
        yield None
        return
    with store:

        def trusted(path: Path, st: os.stat_result) -> bool:
            row = store.cached_by_path(str(path))
            return bool(
                row
                and row["fal_url"]
                and row["size"] == st.st_size
                and row["mtime_ns"] == st.st_mtime_ns
            )

        yield trusted


def _end_image(model: ModelSpec, options: dict[str, Any]) -> ImageFile | None:
    """The end frame given as a local file (checked like the batch's images), or None."""
    field_name = model.end_image_field
    value = options.get(field_name) if field_name else None
    if not isinstance(value, str) or is_remote(value):
        return None
    path = Path(value).expanduser()
    if not path.exists():
        raise InputError(f"End image {value} does not exist. Pass --end-image an image file.")
    checked = check_image(path, DEFAULT_MAX_PIXELS)
    if isinstance(checked, Skipped):
        raise InputError(f"End image {value}: {checked.reason}. Pass --end-image an image file.")
    return checked


def _reread(path: Path) -> tuple[ImageFile | None, str]:
    """One image of a batch checked again as the folder scan checks it."""
    if not path.is_file():
        return None, "the image is gone; put it back to retry its jobs"
    checked = check_image(path, DEFAULT_MAX_PIXELS)
    if isinstance(checked, Skipped):
        return None, checked.reason
    return checked, ""


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


def batch_id_for(plan: Plan, backend_label: str) -> str:
    """Same inputs, same batch: re-running a command resumes it instead of paying again."""
    if plan.retry_of:
        return plan.retry_of
    key = json.dumps(
        [
            backend_label,
            plan.model.endpoint_id,
            plan.options,
            plan.spec.pairing,
            str(Path(plan.spec.images_dir).absolute()),
            str(plan.output_dir),
        ],
        sort_keys=True,
    )
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def job_key(pair_: Pair, image_hash: str | None, occurrence: int) -> str:
    raw = f"{pair_.image.path}\0{image_hash}\0{pair_.prompt}\0{occurrence}"
    return hashlib.sha256(raw.encode()).hexdigest()[:20]


# ------------------------------------------------------------------------- money


def usd(amount: float) -> str:
    return f"US$ {amount:,.2f}"


@dataclass(frozen=True)
class CostBreakdown:
    """A run's cost in three parts: what THIS run adds (jobs it will submit: never
    submitted, or to be submitted again), what earlier runs of the same batch already
    spent (jobs with a request at fal), and the total. All estimates; None when the
    endpoint's price is unknown.

    Asking, the spend cap and the summary all use `this_run`: re-running a finished
    batch adds nothing, so it must neither be refused for money nor claim a cost again.
    """

    per_video: float | None
    new_jobs: int
    earlier_jobs: int

    def _times(self, jobs: int) -> float | None:
        if jobs == 0:
            return 0.0  # nothing submitted costs nothing, whatever the price
        return None if self.per_video is None else round(self.per_video * jobs, 4)

    @property
    def this_run(self) -> float | None:
        return self._times(self.new_jobs)

    @property
    def earlier(self) -> float | None:
        return self._times(self.earlier_jobs)

    @property
    def total(self) -> float | None:
        return self._times(self.new_jobs + self.earlier_jobs)

    def describe(self, *, done: bool = False) -> str:
        """``this run: US$ 2.40 (6 jobs); earlier runs: US$ 3.60 (9 jobs); total US$ 6.00``."""
        verb = "submitted" if done else "to submit"

        def part(amount: float | None, jobs: int) -> str:
            money = "price unknown" if amount is None else usd(amount)
            return f"{money} ({jobs} job{'s' if jobs != 1 else ''})"

        total = "unknown" if self.total is None else usd(self.total)
        return (
            f"this run: {part(self.this_run, self.new_jobs)} {verb}; "
            f"earlier runs: {part(self.earlier, self.earlier_jobs)}; batch total: {total}"
        )


def cost_breakdown(plan: Plan, store: Store, backend_label: str) -> CostBreakdown:
    """Split a plan's cost into this run and earlier runs, from the ledger.

    A fresh plan's pairs are matched to the batch's jobs by image path, prompt and
    occurrence (what the job key is made of, without hashing every image): a pair with
    no job yet, or whose job a re-run submits again (pending, cancelled), is new. A
    retry plan's jobs are all new. Earlier runs spent on every job of the batch that
    has a request at fal (cancelled ones excepted: fal bills no request that never left
    its queue).
    """
    rows = store.jobs(batch_id_for(plan, backend_label))
    earlier = sum(1 for r in rows if r["request_id"] and r["status"] != JobStatus.CANCELLED)
    if plan.retry_of:
        return CostBreakdown(plan.cost_per_video, len(plan.job_ids), earlier)
    by_pair: dict[tuple[str, str], list[dict]] = {}
    for r in sorted(rows, key=lambda r: r["id"]):
        by_pair.setdefault((r["image_path"], r["prompt"]), []).append(r)
    seen: dict[tuple[str, str], int] = {}
    new = 0
    for p in plan.pairs:
        k = (str(p.image.path), p.prompt)
        occurrence = seen[k] = seen.get(k, -1) + 1
        same = by_pair.get(k, [])
        if occurrence >= len(same) or same[occurrence]["status"] in SUBMITTED_BY_A_RERUN:
            new += 1
    return CostBreakdown(plan.cost_per_video, new, earlier)


def ledger_cost(plan: Plan, backend_label: str) -> CostBreakdown:
    """:func:`cost_breakdown` from the plan's own ledger; no ledger yet: every job is new."""
    if not Path(plan.ledger).is_file():
        return CostBreakdown(plan.cost_per_video, plan.job_count, 0)
    with Store(plan.ledger) as store:
        return cost_breakdown(plan, store, backend_label)


class SpendCapError(InputError):
    """The plan may add more than the spend cap (or its price is unknown): nothing is sent."""


def check_spend_cap(plan: Plan, breakdown: CostBreakdown) -> None:
    """Refuse, before anything is uploaded, a run that may add more than ``--max-cost``.

    An unknown price cannot be proven to fit, so with a cap it is refused too; a run
    that adds no job (a finished batch run again) always fits.
    """
    cap = plan.spec.max_cost
    if cap is None or breakdown.new_jobs == 0:
        return
    jobs = f"{breakdown.new_jobs} job{'s' if breakdown.new_jobs != 1 else ''}"
    if breakdown.this_run is None:
        raise SpendCapError(
            f"The spend cap is {usd(cap)} (--max-cost / I2VKIT_MAX_COST), but the price of "
            f"{plan.model.endpoint_id} is unknown, so i2vkit cannot tell whether {jobs} fit. "
            "Nothing was uploaded or submitted: check the price on fal.ai, then run again "
            "with --max-cost none (or unset I2VKIT_MAX_COST) to go ahead without a cap."
        )
    if breakdown.this_run > cap + 1e-9:
        raise SpendCapError(
            f"This run may add an estimated {usd(breakdown.this_run)} ({jobs} at "
            f"{usd(breakdown.per_video or 0.0)}), above the spend cap of {usd(cap)} "
            "(--max-cost / I2VKIT_MAX_COST). Nothing was uploaded or submitted: raise the "
            "cap, or run fewer images or prompts."
        )
