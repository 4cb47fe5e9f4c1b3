"""What to run, decided before any money moves: a batch spec becomes a :class:`Plan`.

A plan holds the images to upload, the image x prompt pairs, the model with its
checked options, the output folder and the cost estimate; planning touches no
network. A retry is planned the same way, from the ledger instead of a folder
(:func:`plan_retry`), so it runs, shows its cost and asks like any batch.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .backend import backend_for
from .config import Settings, load_settings
from .errors import InputError
from .images import DEFAULT_MAX_PIXELS, ImageFile, Skipped, check_image, scan_images
from .jobs import UNSUCCESSFUL
from .models import ModelSpec, get_model
from .pairing import Pair, normalize_pairing, pair
from .prompts import check_prompt_lengths, parse_prompts, read_prompts
from .store import Store

DEFAULT_CONCURRENCY = 16
DEFAULT_MAX_RPS = 300.0


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

    @property
    def job_count(self) -> int:
        return len(self.job_ids) if self.retry_of else len(self.pairs)

    @property
    def estimated_cost(self) -> float | None:
        if self.cost_per_video is None:
            return None
        return round(self.cost_per_video * self.job_count, 4)

    def describe(self) -> str:
        cost = (
            f"${self.estimated_cost:,.2f} (${self.cost_per_video:,.3f} per video)"
            if self.cost_per_video is not None
            else "unknown (no published price for this endpoint)"
        )
        if self.retry_of:
            head = f"retry of batch {self.retry_of}: {self.job_count} failed or cancelled jobs"
        else:
            head = (
                f"{len(self.images)} images x {len(self.prompts)} prompts ({self.spec.pairing}) "
                f"= {len(self.pairs)} jobs"
            )
        lines = [
            f"{head} on {self.model.name} ({self.model.endpoint_id})",
            f"estimated cost on fal: {cost}",
            f"videos go to: {self.output_dir}",
            f"ledger: {self.ledger}",
        ]
        for s in self.skipped:
            lines.append(f"skipped {s.path.name}: {s.reason}")
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
    model = get_model(spec.model)
    options = model.validate_options(spec.options)
    prompts = load_prompts(spec)
    check_prompt_lengths(prompts, model.max_prompt_chars, model.name)
    scan = scan_images(spec.images_dir, recursive=spec.recursive)
    spec.pairing = normalize_pairing(spec.pairing)
    pairs = pair(scan.images, prompts, spec.pairing)
    output_dir = Path(spec.output_dir or settings.download_dir).expanduser().absolute()
    check_output_dir(output_dir)
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
        jobs = store.jobs(batch["id"], statuses=UNSUCCESSFUL)
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
    )


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
