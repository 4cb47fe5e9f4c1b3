"""The plan of a batch: the jobs to run, the batch they belong to, what they cost.

Everything here is known before any money moves. A :class:`Plan` is a list of
:class:`PlannedJob` (each one image, one prompt, one model with its own options, a
take), the :class:`BatchRef` they join (new, or continuing one the ledger holds) and the
:class:`~.cost.CostBreakdown` of this run against earlier runs of that batch.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..images import ImageFile, Skipped
from ..models import ModelSpec
from ..money import plural, sum_costs, usd
from ..pairing import Pair
from ..rows import JobRow
from .cost import CostBreakdown, check_spend_cap
from .identity import BatchRef, job_key
from .options import model_of_row, row_cost, take_seed
from .pricenotes import price_notes
from .request import DEFAULT_CONFIRM_ABOVE, BatchRequest


@dataclass
class PlannedJob:
    """One video to make: an image, a prompt, a model with its own options, a take.

    ``options`` are the job's checked model options without the end frame (that is
    ``end_image_ref``) and without a seed this plan derived for a take (that is
    ``seed``): the ledger keeps them apart so a take can be reproduced and so the same
    job is recognised whatever ``--takes`` says.
    """

    image_ref: str  # the local file's absolute path, or an http(s) URL used as is
    prompt: str
    model: ModelSpec
    options: dict[str, Any]
    image: ImageFile | None = None  # None: a URL
    take: int = 1
    seed: int | None = None  # sent as the model's `seed` option; None: not sent
    end_image_ref: str | None = None  # a local path (uploaded) or a URL
    end_image: ImageFile | None = None
    shot_name: str | None = None
    index: int = 0  # the pair's (or the shot-list row's) position
    occurrence: int = 0  # same identity seen before in this plan (duplicate prompts)
    variant: str = ""  # what tells shot-list rows of one image, prompt and model apart
    legacy: bool = False  # a one-model folder batch: its job keys are as before takes
    cost: float | None = None  # estimated US$; None: the price is unknown
    varied: dict[str, str] = field(default_factory=dict)  # --vary option -> this job's value
    words: dict[str, str] = field(default_factory=dict)  # prompt variable -> its value here

    @property
    def axes(self) -> str | None:
        """What the job was varied along, as the ledger keeps it (None: nothing varied)."""
        if not self.varied and not self.words:
            return None
        return json.dumps({"options": self.varied, "prompt": self.words})  # in prompt order

    @property
    def identity(self) -> tuple[str, str, str, int, str]:
        return (self.image_ref, self.prompt, self.model.endpoint_id, self.take, self.variant)

    def key(self, image_hash: str | None) -> str:
        return job_key(
            self.image_ref,
            image_hash,
            self.prompt,
            self.occurrence,
            endpoint_id=None if self.legacy else self.model.endpoint_id,
            take=self.take,
            variant=self.variant,
        )


@dataclass
class Plan:
    """Everything known before any money is spent: the jobs, skipped files and the cost.

    ``jobs`` are the planned jobs; a retry plan (`retry_of` set) also has the ledger's
    job ids to run again in `job_ids`. ``model``/``options`` are the first (usually the
    only) model and its options; ``models``/``model_options`` all of them.
    """

    request: BatchRequest
    model: ModelSpec
    options: dict[str, Any]
    images: list[ImageFile]
    skipped: list[Skipped]
    prompts: list[str]
    pairs: list[Pair]
    output_dir: Path
    ledger: Path
    batch: BatchRef = field(default_factory=lambda: BatchRef("", new=True))
    cost: CostBreakdown | None = None  # this run against earlier runs, from the ledger
    max_cost: float | None = None  # the spend cap of this run (US$); None: no cap
    confirm_above: float = DEFAULT_CONFIRM_ABOVE  # on a billed backend, ask above this (US$)
    retry_of: str | None = None
    job_ids: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # catalogue and model-status lines
    jobs: list[PlannedJob] = field(default_factory=list)
    models: list[ModelSpec] = field(default_factory=list)
    model_options: list[dict[str, Any]] = field(default_factory=list)
    end_images: list[ImageFile] = field(default_factory=list)  # local end frames to upload
    end_image_urls: dict[str, str] = field(default_factory=dict)  # set once they are uploaded
    shots: Path | None = None  # the shot list this plan was read from
    images_dir: Path | None = None  # the folder, absolute
    prompts_file: Path | None = None  # the prompts file, absolute (None: typed prompts)
    prompt_lines: int = 0  # the prompt lines the prompts were made from (variables expanded)
    prompt_seed: int | None = None  # the seed of the prompts' random picks; None: none

    def __post_init__(self) -> None:
        if not self.models:
            self.models, self.model_options = [self.model], [self.options]

    @property
    def batch_id(self) -> str:
        return self.batch.id

    @property
    def end_image(self) -> ImageFile | None:
        """The end frame, when the batch has exactly one (``--end-image``)."""
        return self.end_images[0] if len(self.end_images) == 1 else None

    @property
    def end_image_url(self) -> str | None:
        return self.end_image_urls.get(str(self.end_image.path)) if self.end_image else None

    @property
    def job_count(self) -> int:
        return len(self.job_ids) if self.retry_of else len(self.jobs)

    @property
    def cost_per_video(self) -> float | None:
        """The price of one video when every job has the same known price, else None."""
        costs = {j.cost for j in self.jobs}
        return costs.pop() if len(costs) == 1 else None

    @property
    def estimated_cost(self) -> float | None:
        return sum_costs(j.cost for j in self.jobs)

    def per_model(self) -> list[tuple[ModelSpec, int, float | None]]:
        """(model, jobs, estimated US$) for each model of the plan, in the plan's order."""
        out = []
        for m in self.models:
            mine = [j for j in self.jobs if j.model.endpoint_id == m.endpoint_id]
            out.append((m, len(mine), sum_costs(j.cost for j in mine)))
        return out

    def model_for(self, job: JobRow) -> ModelSpec:
        """The model a ledger row runs on (its ``endpoint_id``), as this plan knows it."""
        for m in self.models:
            if m.endpoint_id == job["endpoint_id"]:
                return m
        m = model_of_row(job)
        self.models.append(m)
        self.model_options.append({})
        return m

    def cost_of(self, job: JobRow) -> float | None:
        """The estimated price of one ledger row (its model and options)."""
        return row_cost(job, self.model_for(job))

    def unknown_endpoints(self) -> str:
        """The endpoint(s) whose price is unknown, for messages."""
        ids = dict.fromkeys(j.model.endpoint_id for j in self.jobs if j.cost is None)
        return ", ".join(ids) or self.model.endpoint_id

    def check_spend_cap(self, cost: CostBreakdown) -> None:
        """Raise :class:`~i2vkit.errors.SpendCapError` when this run may exceed its cap."""
        check_spend_cap(self.max_cost, cost, self.unknown_endpoints())

    def headline(self) -> str:
        """What the jobs are: ``3 images x 2 prompts (all) x 2 takes = 12 jobs on wan``."""
        takes = max((j.take for j in self.jobs), default=1)
        with_takes = f" x {takes} takes" if takes > 1 else ""
        if self.retry_of:
            head = (
                f"retry of batch {self.batch.label}: "
                f"{plural(self.job_count, 'failed or cancelled job')} (or left pending)"
            )
        elif self.shots is not None:
            head = f"shot list {self.shots}: {plural(len(self.jobs), 'job')}"
        else:
            many = f" x {len(self.models)} models" if len(self.models) > 1 else ""
            head = (
                f"{plural(len(self.images), 'image')} x {plural(len(self.prompts), 'prompt')} "
                f"({self.request.pairing}{self._variables()}){many}{self._varied()}"
                f"{with_takes} = {plural(len(self.jobs), 'job')}"
            )
        if len(self.models) == 1:
            head += f" on {self.model.name} ({self.model.endpoint_id})"
        return head

    def _variables(self) -> str:
        names = {k for j in self.jobs for k in j.words}
        return f", {plural(len(names), 'variable')}" if names else ""

    def _varied(self) -> str:
        """`` x 2 durations x 2 resolutions``: how many jobs each varied option multiplies."""
        out = ""
        for key in dict.fromkeys(k for j in self.jobs for k in j.varied):
            n = len({j.varied[key] for j in self.jobs if key in j.varied})
            out += f" x {n} {key} values" if key.endswith("s") else f" x {plural(n, key)}"
        return out

    def per_value(self) -> list[str]:
        """``  duration=10: 8 jobs, US$ 10.08 (US$ 1.26 per video)``: each varied value's price."""
        lines = []
        for key in dict.fromkeys(k for j in self.jobs for k in j.varied):
            for value in dict.fromkeys(j.varied[key] for j in self.jobs if key in j.varied):
                mine = [j for j in self.jobs if j.varied.get(key) == value]
                each = {j.cost for j in mine}
                per = f" ({usd(each.pop(), 3)} per video)" if len(each) == 1 else ""
                amount = usd(sum_costs(j.cost for j in mine))
                lines.append(f"  {key}={value}: {plural(len(mine), 'job')}, {amount}{per}")
        return lines

    def describe(self) -> str:
        """The plan as the CLI prints it, batch first, absolute paths, money in US$."""
        c = self.cost or CostBreakdown(None, 0, 0)  # not priced against a ledger: nothing earlier
        lines = [self.batch.describe(c.earlier_jobs, c.earlier_videos, c.earlier), self.headline()]
        if len(self.models) > 1:
            for m, n, amount in self.per_model():
                lines.append(f"  {m.name} ({m.endpoint_id}): {plural(n, 'job')}, {usd(amount)}")
        total = self.estimated_cost
        per_video = self.cost_per_video
        cost = usd(total) if total is not None else "unknown (no published price for some endpoint)"
        if total is not None and per_video is not None:
            cost += f" ({usd(per_video, 3)} per video)"
        scope = "this retry" if self.retry_of else "the jobs planned"
        lines.append(f"estimated cost on fal of {scope}: {cost}")
        lines += self.per_value()
        if self.prompt_seed is not None:
            lines.append(f"random picks {{~...}} in the prompts: seed {self.prompt_seed}")
        if self.images_dir is not None and self.shots is None:
            lines.append(f"images from: {self.images_dir}")
        if self.prompts_file is not None and self.shots is None:
            lines.append(f"prompts from: {self.prompts_file}")
        lines += [f"videos go to: {self.output_dir}", f"ledger: {self.ledger}"]
        lines += [f"skipped {s.path.name}: {s.reason}" for s in self.skipped]
        if self.end_image is not None and self.shots is None:
            lines.append(f"end image (every job): {self.end_image.path}")
        return "\n".join(lines + self.notes + price_notes((j.model, j.options) for j in self.jobs))


def expand_takes(jobs: list[PlannedJob], takes: int | None = None) -> list[PlannedJob]:
    """Each planned job as ``takes`` takes (a job's own ``take`` count when None)."""
    out = []
    for j in jobs:
        n = takes if takes is not None else j.take
        for t in range(1, n + 1):
            seed = take_seed(
                j.model, [*j.identity[:3], j.variant, j.occurrence], t, n, j.options.get("seed")
            )
            out.append(dataclasses.replace(j, take=t, seed=seed))
    return out
