"""What to run, decided before any money moves: a batch spec becomes a :class:`Plan`.

A plan is a list of planned jobs (:class:`PlannedJob`): each one image (a local file,
uploaded once for the whole batch, or an http(s) URL used as is), one prompt, one
model with its own checked options, its take and seed, and an optional end frame. The
common case is image x prompt pairs on one model; ``--model a,b`` runs every pair on
each model, ``--takes N`` every job N times, and a shot list (:mod:`.shots`) gives one
job per row. Planning touches no network. A retry is planned the same way, from the
ledger instead of a folder (:func:`plan_retry`), so it runs, shows its cost and asks
like any batch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .backend import backend_for
from .catalogue.stored import refresh_if_stale
from .catalogue.stored import use_stored as use_stored_catalogue
from .config import Settings, load_settings
from .errors import InputError, ModelError, StoreError
from .images import DEFAULT_MAX_PIXELS, ImageFile, Skipped, Trusted, check_image, scan_images
from .jobs import UNSUCCESSFUL, JobStatus
from .models import END_IMAGE_OPTION, ModelSpec, checked_url, get_model, is_remote, looks_like_url
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
    """What to run. Every field has a default that works, so notebooks run top to bottom.

    ``model`` is one model, or several (``"kling,veo"`` or a list): every job then runs
    on each. ``options`` apply to the models that have them; ``"kling:duration"`` targets
    one model. ``shots`` (a CSV or JSONL shot list) replaces the folder and prompts.
    """

    images_dir: str | os.PathLike | None = None
    prompts_file: str | os.PathLike | None = None
    prompts: list[str] | str | None = None  # inline prompts (a list, or text with one per line)
    model: str | list[str] = "wan"
    options: dict[str, Any] = field(default_factory=dict)
    pairing: str = "all"
    output_dir: str | os.PathLike | None = None  # default: AUTO_DOWNLOAD_DIR
    concurrency: int = DEFAULT_CONCURRENCY
    recursive: bool = False
    max_rps: float = DEFAULT_MAX_RPS
    upload_concurrency: int = 4
    max_cost: float | None = None  # US$ this run may add at most; default I2VKIT_MAX_COST
    takes: int = 1  # runs of every job (distinct seeds where the model takes one)
    shots: str | os.PathLike | None = None  # a shot list: one job per row


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

    spec: BatchSpec
    model: ModelSpec
    options: dict[str, Any]
    images: list[ImageFile]
    skipped: list[Skipped]
    prompts: list[str]
    pairs: list[Pair]
    output_dir: Path
    ledger: Path
    retry_of: str | None = None
    job_ids: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # catalogue and model-status lines
    jobs: list[PlannedJob] = field(default_factory=list)
    models: list[ModelSpec] = field(default_factory=list)
    model_options: list[dict[str, Any]] = field(default_factory=list)
    end_images: list[ImageFile] = field(default_factory=list)  # local end frames to upload
    end_image_urls: dict[str, str] = field(default_factory=dict)  # set once they are uploaded
    shots: Path | None = None  # the shot list this plan was read from

    def __post_init__(self) -> None:
        if not self.models:
            self.models, self.model_options = [self.model], [self.options]

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
        return _sum_costs(j.cost for j in self.jobs)

    def per_model(self) -> list[tuple[ModelSpec, int, float | None]]:
        """(model, jobs, estimated US$) for each model of the plan, in the plan's order."""
        out = []
        for m in self.models:
            mine = [j for j in self.jobs if j.model.endpoint_id == m.endpoint_id]
            out.append((m, len(mine), _sum_costs(j.cost for j in mine)))
        return out

    def model_for(self, job: dict[str, Any]) -> ModelSpec:
        """The model a ledger row runs on (its ``endpoint_id``), as this plan knows it."""
        for m in self.models:
            if m.endpoint_id == job["endpoint_id"]:
                return m
        m = model_of_row(job)
        self.models.append(m)
        self.model_options.append({})
        return m

    def cost_of(self, job: dict[str, Any]) -> float | None:
        """The estimated price of one ledger row (its model and options)."""
        return row_cost(job, self.model_for(job))

    def cost_breakdown(self, store: Store, backend_label: str) -> CostBreakdown:
        """What this run adds, what earlier runs of this batch spent (see :func:`cost_breakdown`)."""
        return cost_breakdown(self, store, backend_label)

    def describe(self) -> str:
        per_video = self.cost_per_video
        total = self.estimated_cost
        if total is None:
            cost = "unknown (no published price for some endpoint)"
        elif per_video is not None:
            cost = f"${total:,.2f} (${per_video:,.3f} per video)"
        else:
            cost = f"${total:,.2f}"
        takes = {j.take for j in self.jobs}
        with_takes = f" x {max(takes)} takes" if len(takes) > 1 else ""
        if self.retry_of:
            head = (
                f"retry of batch {self.retry_of}: {self.job_count} failed or cancelled jobs "
                "(or left pending)"
            )
        elif self.shots is not None:
            head = f"shot list {self.shots}: {len(self.jobs)} jobs"
        else:
            many = f" x {len(self.models)} models" if len(self.models) > 1 else ""
            head = (
                f"{len(self.images)} images x {len(self.prompts)} prompts ({self.spec.pairing})"
                f"{many}{with_takes} = {len(self.jobs)} jobs"
            )
        if len(self.models) == 1:
            head += f" on {self.model.name} ({self.model.endpoint_id})"
        lines = [head]
        if len(self.models) > 1:
            for m, n, amount in self.per_model():
                money = "price unknown" if amount is None else f"${amount:,.2f}"
                lines.append(f"  {m.name} ({m.endpoint_id}): {n} jobs, {money}")
        lines += [
            f"estimated cost on fal, all jobs of the batch: {cost}",
            f"videos go to: {self.output_dir}",
            f"ledger: {self.ledger}",
        ]
        for s in self.skipped:
            lines.append(f"skipped {s.path.name}: {s.reason}")
        if self.end_image is not None and self.shots is None:
            lines.append(f"end image (every job): {self.end_image.path}")
        lines += self.notes
        return "\n".join(lines)


def _sum_costs(costs: Iterable[float | None]) -> float | None:
    """The sum, or None when any price is unknown ("unknown" is never "free")."""
    total = 0.0
    for c in costs:
        if c is None:
            return None
        total += c
    return round(total, 4)


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


def check_takes(value: Any, where: str = "--takes") -> int:
    """A number of takes: a whole number of at least 1 (text from a CSV cell is fine)."""
    try:
        n = int(str(value).strip()) if not isinstance(value, bool) else 0
    except ValueError:
        n = 0
    if n < 1 or str(value).strip() not in (str(n), f"{n}.0"):
        raise InputError(f"{where} must be a whole number of at least 1, got {value!r}.")
    return n


def model_names(model: str | ModelSpec | Sequence[str | ModelSpec]) -> list[str | ModelSpec]:
    """``"kling, veo"`` or ``["kling", "veo"]`` -> the names, in order, each once."""
    if isinstance(model, ModelSpec):
        return [model]
    items = model.split(",") if isinstance(model, str) else list(model)
    names = [n.strip() if isinstance(n, str) else n for n in items]
    names = [n for n in names if n != ""]
    if not names:
        raise InputError("No model given: pass --model NAME (several: --model kling,veo).")
    return names


def resolve_models(model: str | ModelSpec | Sequence[str | ModelSpec]) -> list[ModelSpec]:
    """The batch's models, each endpoint once; a shut-down endpoint is refused here."""
    out: dict[str, ModelSpec] = {}
    for name in model_names(model):
        m = get_model(name)
        m.status_note()
        out.setdefault(m.endpoint_id, m)
    return list(out.values())


def model_aliases(m: ModelSpec) -> set[str]:
    return {a.lower() for a in (m.name, m.family, m.endpoint_id) if a}


def split_options(models: Sequence[ModelSpec], options: dict[str, Any]) -> list[dict[str, Any]]:
    """The options of each model: ``key`` goes to every model that has it, ``model:key`` to
    that model only (and wins over a plain ``key``). With one model every plain key is
    its own (the schema check then names a key it does not take); with several, a key no
    model takes is an error, as is a ``model:`` that is not one of the batch's models."""
    if len(models) == 1 and not any(":" in str(k) for k in options):
        return [dict(options)]
    plain = {k: v for k, v in options.items() if ":" not in str(k)}
    targeted: list[dict[str, Any]] = [{} for _ in models]
    problems: list[str] = []
    for key, value in options.items():
        if ":" not in str(key):
            continue
        who, _, name = str(key).partition(":")
        hits = [i for i, m in enumerate(models) if who.strip().lower() in model_aliases(m)]
        if not hits or not name.strip():
            names = ", ".join(m.name for m in models)
            problems.append(
                f"-o {key}={value}: {who!r} is not one of this batch's models ({names})"
                if not hits
                else f"-o {key}={value}: give an option name after '{who}:'"
            )
            continue
        for i in hits:
            targeted[i][name.strip()] = value
    per_model = [dict(plain) for _ in models]
    if len(models) > 1:
        for key in plain:
            takers = [i for i, m in enumerate(models) if _takes_option(m, key)]
            if not takers:
                names = ", ".join(m.name for m in models)
                problems.append(
                    f"-o {key}={plain[key]}: none of this batch's models ({names}) has an "
                    f"option {key!r}; `i2vkit models NAME` lists each model's options"
                )
            for i, opts in enumerate(per_model):
                if i not in takers:
                    opts.pop(key, None)
    if problems:
        raise ModelError(
            "These options cannot be used:\n" + "\n".join(f"  - {p}" for p in problems)
        )
    return [{**opts, **mine} for opts, mine in zip(per_model, targeted, strict=True)]


def _takes_option(model: ModelSpec, key: str) -> bool:
    allowed = model.allowed_options
    if allowed is None:
        return True  # a generic endpoint: options pass through unchecked
    return key in allowed or (key == END_IMAGE_OPTION and model.end_image_field is not None)


def check_model_options(
    models: Sequence[ModelSpec], options: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Every model's options checked against its schema; all problems in one error."""
    checked, problems = [], []
    for m, opts in zip(models, options, strict=True):
        try:
            checked.append(m.validate_options(opts))
        except ModelError as exc:
            problems.append(str(exc))
    if problems:
        raise ModelError("\n".join(problems))
    return checked


def take_seed(
    model: ModelSpec, identity: Sequence[Any], take: int, takes: int, given: Any = None
) -> int | None:
    """The seed a take is sent with, or None to send none.

    Only a model whose schema has a ``seed`` option gets one. One take: the user's seed
    if given (else none, as before takes existed). Several takes: the user's seed plus
    the take number minus one, or a seed derived from the job's identity and the take,
    so the same command plans the same seeds and every take can be reproduced.
    """
    allowed = model.allowed_options or {}
    if "seed" not in allowed:
        return None
    if takes <= 1 and take == 1:
        return int(given) if isinstance(given, int) and not isinstance(given, bool) else None
    prop = allowed["seed"] if isinstance(allowed["seed"], dict) else {}
    low = int(prop.get("minimum", 0) or 0)
    high = int(prop.get("maximum", 2**31 - 1))
    if isinstance(given, int) and not isinstance(given, bool):
        value = given + take - 1
    else:
        raw = json.dumps([*identity, take], default=str)
        value = int.from_bytes(hashlib.sha256(raw.encode()).digest()[:8], "big")
    return low + (value - low) % (high - low + 1)


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


def plan_batch(spec: BatchSpec, settings: Settings | None = None) -> Plan:
    """Scan, read, pair and price a batch without touching the network."""
    settings = settings or load_settings()
    check_concurrency(spec.concurrency)
    spec.takes = check_takes(spec.takes)
    use_stored_catalogue(settings)
    if spec.shots is not None:
        from .shots import plan_shots

        return plan_shots(spec, settings)
    models = resolve_models(spec.model)
    options = check_model_options(models, split_options(models, spec.options))
    prompts = load_prompts(spec)
    for m in models:
        check_prompt_lengths(prompts, m.max_prompt_chars, m.name, m.prompt_unit)
    if spec.images_dir is None:
        raise InputError("No images given: pass --images-dir FOLDER (or --shots FILE).")
    with _uploaded_unchanged(settings.db_path) as trusted:
        scan = scan_images(spec.images_dir, recursive=spec.recursive, trusted=trusted)
    apply_cost_cap_default(spec, settings)
    spec.pairing = normalize_pairing(spec.pairing)
    pairs = pair(scan.images, prompts, spec.pairing)
    output_dir = resolve_output_dir(spec, settings)
    changed, note = refresh_if_stale(settings)  # only once the input is known to be good
    if changed:
        models = resolve_models(spec.model)
        options = check_model_options(models, split_options(models, spec.options))
    notes = [n for n in [note, *(m.status_note() for m in models)] if n]
    notes = [n if n.startswith("note:") else f"warning: {n}" for n in notes]
    ends = {m.endpoint_id: _end_image(m, o) for m, o in zip(models, options, strict=True)}
    jobs = []
    for m, opts in zip(models, options, strict=True):
        own, end_ref = split_end_image(m, opts)
        cost = m.estimate_cost(own)
        seen: dict[tuple[str, str], int] = {}
        for p in pairs:
            k = (str(p.image.path), p.prompt)
            seen[k] = seen.get(k, -1) + 1
            jobs.append(
                PlannedJob(
                    image_ref=str(p.image.path),
                    image=p.image,
                    prompt=p.prompt,
                    model=m,
                    options=own,
                    end_image_ref=end_ref,
                    end_image=ends[m.endpoint_id],
                    index=p.index,
                    occurrence=seen[k],
                    legacy=len(models) == 1,
                    cost=cost,
                )
            )
    jobs = expand_takes(jobs, spec.takes)
    end_images = {str(e.path): e for e in ends.values() if e is not None}
    return Plan(
        spec=spec,
        model=models[0],
        options=options[0],
        images=scan.images,
        skipped=scan.skipped,
        prompts=prompts,
        pairs=pairs,
        output_dir=output_dir,
        ledger=settings.db_path,
        notes=notes,
        jobs=jobs,
        models=models,
        model_options=options,
        end_images=list(end_images.values()),
    )


def apply_cost_cap_default(spec: BatchSpec, settings: Settings) -> None:
    if spec.max_cost is None:
        spec.max_cost = settings.max_cost
    if spec.max_cost == NO_CAP:
        spec.max_cost = None


def resolve_output_dir(spec: BatchSpec, settings: Settings) -> Path:
    output_dir = Path(spec.output_dir or settings.download_dir).expanduser().absolute()
    check_output_dir(output_dir)
    return output_dir


def split_end_image(model: ModelSpec, options: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """A model's checked options without its end frame, and the end frame (path or URL)."""
    own = dict(options)
    field_name = model.end_image_field
    value = own.pop(field_name, None) if field_name else None
    return own, str(value) if value is not None else None


def model_of_row(row: dict[str, Any]) -> ModelSpec:
    """A ledger row's model: by the name it was planned with when that is still the same
    endpoint (so file names keep ``kling``), else by its endpoint id."""
    try:
        m = get_model(row["model"])
        if m.endpoint_id == row["endpoint_id"]:
            return m
    except InputError:
        pass
    return get_model(row["endpoint_id"])


def row_options(row: dict[str, Any], model: ModelSpec) -> tuple[dict[str, Any], str | None]:
    """A ledger row's options as sent (its seed included) and its end frame (path or URL).

    A row from before per-job options kept its batch's options, the end frame among them.
    """
    options = json.loads(row.get("options") or "{}")
    end = row.get("end_image_path")
    if end is None:
        options, end = split_end_image(model, options)
    elif model.end_image_field:
        options.pop(model.end_image_field, None)
    if row.get("seed") is not None:
        options["seed"] = row["seed"]
    return options, end


def row_cost(row: dict[str, Any], model: ModelSpec) -> float | None:
    try:
        options, _ = row_options(row, model)
        return model.estimate_cost(options)
    except InputError:
        return None


def plan_retry(
    batch_id: str, settings: Settings | None = None, *, concurrency: int = DEFAULT_CONCURRENCY
) -> Plan:
    """Plan running a batch's failed and cancelled jobs again, from the ledger alone.

    The images are read again (they are uploaded again through the cache when the
    retry runs), so an image deleted since the batch ran is reported here, before
    anything is spent. Each job keeps its own model, options, take and seed.
    """
    settings = settings or load_settings()
    check_concurrency(concurrency)
    with Store(settings.db_path) as store:
        batch = store.get_batch(batch_id)
        if batch is None:
            raise InputError(
                f"No batch {batch_id!r} in {settings.db_path}; `i2vkit status` lists them."
            )
        rows = store.jobs(batch["id"], statuses=RETRIED)
    here = backend_for(settings).label
    if batch["backend"] != here:
        raise InputError(
            f"Batch {batch['id']} ran on {batch['backend']}, but this run would use "
            f"{here}; set FAL_KEY / I2VKIT_FAL_URL as they were for that batch."
        )
    models: dict[str, ModelSpec] = {}
    for r in rows:
        if r["endpoint_id"] not in models:
            models[r["endpoint_id"]] = model_of_row(r)
    if not models:  # nothing to retry: the batch's own model(s), for the plan's text
        first = batch["endpoint_id"].split(",")[0]
        models[first] = get_model(first)
    spec = BatchSpec(
        images_dir=batch["images_dir"] or ".",
        model=[m.name for m in models.values()],
        options={},
        pairing=batch["pairing"],
        output_dir=batch["output_dir"],
        concurrency=concurrency,
        max_cost=settings.max_cost,
    )
    images: dict[str, ImageFile] = {}
    skipped: list[Skipped] = []
    ends: dict[str, ImageFile] = {}
    for path in dict.fromkeys(r["image_path"] for r in rows):
        if is_remote(path):
            continue
        image, problem = _reread(Path(path))
        if image is not None:
            images[path] = image
        else:
            skipped.append(Skipped(Path(path), problem))
    jobs = []
    for r in rows:
        m = models[r["endpoint_id"]]
        options, end = row_options(r, m)
        if end and not is_remote(end) and end not in ends:
            image, _problem = _reread(Path(end))
            if image is not None:
                ends[end] = image
        jobs.append(
            PlannedJob(
                image_ref=r["image_path"],
                image=images.get(r["image_path"]),
                prompt=r["prompt"],
                model=m,
                options=options,
                take=r["take"],
                seed=r["seed"],
                end_image_ref=end,
                end_image=ends.get(end) if end else None,
                shot_name=r["shot_name"],
                index=r["pair_index"] or 0,
                cost=row_cost(r, m),
            )
        )
    output_dir = Path(batch["output_dir"])
    check_output_dir(output_dir)
    ms = list(models.values())
    batch_options = json.loads(batch["options"] or "{}")
    return Plan(
        spec=spec,
        model=ms[0],
        options=batch_options if len(ms) == 1 else {},
        images=list(images.values()),
        skipped=skipped,
        prompts=list(dict.fromkeys(r["prompt"] for r in rows)),
        pairs=[],
        output_dir=output_dir,
        ledger=settings.db_path,
        retry_of=batch["id"],
        job_ids=[r["id"] for r in rows],
        jobs=jobs,
        models=ms,
        model_options=[{} for _ in ms],
        end_images=[e for e in ends.values() if e is not None],
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
    return check_end_image(value) if isinstance(value, str) else None


def check_end_image(value: str, where: str = "Pass --end-image an image file.") -> ImageFile | None:
    """A local end frame checked like the batch's images; None for a URL (sent as is,
    once it is one fal can fetch)."""
    if looks_like_url(value):
        why = checked_url(value)[1]
        if why:
            raise InputError(
                f"End image {value} {why}. Pass --end-image an image file or an http(s) URL "
                "fal can fetch."
            )
        return None
    if is_remote(value):  # a data: URI
        return None
    path = Path(value).expanduser()
    if not path.exists():
        raise InputError(f"End image {value} does not exist. {where}")
    checked = check_image(path, DEFAULT_MAX_PIXELS)
    if isinstance(checked, Skipped):
        raise InputError(f"End image {value}: {checked.reason}. {where}")
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
    """Same inputs, same batch: re-running a command resumes it instead of paying again.

    One model: the id of before (so a batch started with an older version resumes).
    Several: every model with its options. A shot list: the file itself (a row added
    or edited later adds its jobs to the same batch). ``--takes`` is not part of it,
    so a larger N adds the missing takes to the same batch.
    """
    if plan.retry_of:
        return plan.retry_of
    if plan.shots is not None:
        parts: list[Any] = [backend_label, "shots", str(plan.shots), str(plan.output_dir)]
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:12]
    if len(plan.models) > 1:
        parts = [
            backend_label,
            [m.endpoint_id for m in plan.models],
            plan.model_options,
            plan.spec.pairing,
            str(Path(plan.spec.images_dir or ".").absolute()),
            str(plan.output_dir),
        ]
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]
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


def job_key(
    image_ref: str,
    image_hash: str | None,
    prompt: str,
    occurrence: int,
    *,
    endpoint_id: str | None = None,
    take: int = 1,
    variant: str = "",
) -> str:
    """A job's identity within its batch: image (and its bytes), prompt, occurrence, and
    its model, take and shot-list variant. The first take on a one-model folder batch
    (``endpoint_id`` None) keeps the key it had before takes and models per job, so a
    batch started with an older version resumes instead of paying again."""
    raw = f"{image_ref}\0{image_hash}\0{prompt}\0{occurrence}"
    if endpoint_id is not None or take != 1 or variant:
        raw += f"\0{endpoint_id}\0{take}\0{variant}"
    return hashlib.sha256(raw.encode()).hexdigest()[:20]


# ------------------------------------------------------------------------- money


def usd(amount: float | None, digits: int = 2) -> str:
    """``US$ 3.60`` (never a bare ``$``: JupyterLab typesets text between two dollars as
    math), or "price unknown": an unknown price is never shown as free."""
    return "price unknown" if amount is None else f"US$ {amount:,.{digits}f}"


@dataclass(frozen=True)
class CostBreakdown:
    """A run's cost in three parts: what THIS run adds (jobs it will submit: never
    submitted, or to be submitted again), what earlier runs of the same batch already
    spent (jobs with a request at fal), and the total. All estimates; None when some
    job's price is unknown.

    Asking, the spend cap and the summary all use `this_run`: re-running a finished
    batch adds nothing, so it must neither be refused for money nor claim a cost again.
    Jobs may have different prices (several models, per-row options), so the parts are
    sums of each job's price; ``per_video`` is the price when they all share one.
    """

    per_video: float | None
    new_jobs: int
    earlier_jobs: int
    new_usd: float | None | bool = False  # False: per_video x new_jobs
    earlier_usd: float | None | bool = False
    earlier_requests: int = 0  # more than earlier_jobs when failed requests were retried

    def _times(self, jobs: int, given: float | None | bool) -> float | None:
        if jobs == 0:
            return 0.0  # nothing submitted costs nothing, whatever the price
        if given is not False:
            return None if given is None else round(float(given), 4)
        return None if self.per_video is None else round(self.per_video * jobs, 4)

    @property
    def this_run(self) -> float | None:
        return self._times(self.new_jobs, self.new_usd)

    @property
    def earlier(self) -> float | None:
        return self._times(self.earlier_jobs, self.earlier_usd)

    @property
    def total(self) -> float | None:
        if self.this_run is None or self.earlier is None:
            return None
        return round(self.this_run + self.earlier, 4)

    def describe(self, *, done: bool = False) -> str:
        """``this run: US$ 2.40 (6 jobs); earlier runs: US$ 3.60 (9 jobs); total US$ 6.00``."""
        verb = "submitted" if done else "to submit"

        def part(amount: float | None, jobs: int, requests: int = 0) -> str:
            money = usd(amount)
            also = f", {requests} requests" if requests > jobs else ""
            return f"{money} ({jobs} job{'s' if jobs != 1 else ''}{also})"

        total = "unknown" if self.total is None else usd(self.total)
        earlier = part(self.earlier, self.earlier_jobs, self.earlier_requests)
        return (
            f"this run: {part(self.this_run, self.new_jobs)} {verb}; "
            f"earlier runs: {earlier}; batch total: {total}"
        )


def _variant_of_row(row: dict[str, Any]) -> str:
    return shot_variant(json.loads(row.get("options") or "{}"), row.get("end_image_path"))


def shot_variant(options: dict[str, Any], end_image_ref: str | None) -> str:
    """What tells two shot-list rows of one image, prompt and model apart: their own
    options and end frame (so an edited row is a new job, an unchanged one resumes)."""
    return json.dumps([options, end_image_ref], sort_keys=True, default=str)


def cost_breakdown(plan: Plan, store: Store, backend_label: str) -> CostBreakdown:
    """Split a plan's cost into this run and earlier runs, from the ledger.

    A fresh plan's jobs are matched to the batch's rows by image, prompt, model, take,
    (for shot lists) the row's own options, and occurrence (what the job key is made
    of, without hashing every image): a job with no row yet, or whose row a re-run
    submits again (pending, cancelled), is new. A retry plan's jobs are all new.
    Earlier runs spent on every request the batch's jobs have or had at fal (cancelled
    ones excepted: fal bills no request that never left its queue; a failed request a
    retry replaced is kept as a count, as fal may have billed it), at its job's price.
    """
    rows = store.jobs(batch_id_for(plan, backend_label))

    def requests(r: dict[str, Any]) -> int:
        current = bool(r["request_id"]) and r["status"] != JobStatus.CANCELLED
        return (r.get("earlier_requests") or 0) + current

    spent = [(r, requests(r)) for r in rows if requests(r)]
    earlier_usd = _sum_costs(
        None if (price := plan.cost_of(r)) is None else price * n for r, n in spent
    )
    if plan.retry_of:
        new = list(plan.jobs)
    else:
        shots = plan.shots is not None
        by_identity: dict[tuple, list[dict]] = {}
        for r in sorted(rows, key=lambda r: r["id"]):
            ident = (
                r["image_path"],
                r["prompt"],
                r["endpoint_id"],
                r["take"],
                _variant_of_row(r) if shots else "",
            )
            by_identity.setdefault(ident, []).append(r)
        seen: dict[tuple, int] = {}
        new = []
        for j in plan.jobs:
            occurrence = seen[j.identity] = seen.get(j.identity, -1) + 1
            same = by_identity.get(j.identity, [])
            if occurrence >= len(same) or same[occurrence]["status"] in SUBMITTED_BY_A_RERUN:
                new.append(j)
    return CostBreakdown(
        plan.cost_per_video,
        len(new),
        len(spent),
        _sum_costs(j.cost for j in new),
        earlier_usd,
        sum(n for _, n in spent),
    )


def ledger_cost(plan: Plan, backend_label: str) -> CostBreakdown:
    """:func:`cost_breakdown` from the plan's own ledger; no ledger yet: every job is new."""
    if not Path(plan.ledger).is_file():
        return CostBreakdown(plan.cost_per_video, plan.job_count, 0, plan.estimated_cost, 0.0)
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
            f"{unknown_endpoints(plan)} is unknown, so i2vkit cannot tell whether {jobs} fit. "
            "Nothing was uploaded or submitted: check the price on fal.ai, then run again "
            "with --max-cost none (or unset I2VKIT_MAX_COST) to go ahead without a cap."
        )
    if breakdown.this_run > cap + 1e-9:
        raise SpendCapError(
            f"This run may add an estimated {usd(breakdown.this_run)} ({jobs}"
            + (f" at {usd(breakdown.per_video)}" if breakdown.per_video is not None else "")
            + f"), above the spend cap of {usd(cap)} "
            "(--max-cost / I2VKIT_MAX_COST). Nothing was uploaded or submitted: raise the "
            "cap, or run fewer images or prompts."
        )


def unknown_endpoints(plan: Plan) -> str:
    """The endpoint(s) of the plan whose price is unknown, for messages."""
    ids = list(dict.fromkeys(j.model.endpoint_id for j in plan.jobs if j.cost is None))
    return ", ".join(ids) or plan.model.endpoint_id
