"""A folder of images and a set of prompts, planned as image x prompt jobs on each model.

Also what every kind of plan shares: the output folder check, the end frame check, the
spend-cap default and trust in the upload cache (an image cached unchanged is not
decoded again). Nothing here opens a file of the workspace or touches the network.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..images import DEFAULT_MAX_PIXELS, ImageFile, Skipped, Trusted, check_image, scan_images
from ..models import END_IMAGE_OPTION, ModelSpec
from ..pairing import pair
from ..prompts import check_prompt_lengths, parse_prompts, read_prompts
from ..refs import checked_url, is_remote, looks_like_url
from ..store import Store
from ..variables import Expanded, expand_lines, uses_random
from ..workspace import Workspace
from .identity import vary_variant
from .options import check_model_options, resolve_models, split_end_image, split_options
from .plan import Plan, PlannedJob, expand_takes
from .request import DEFAULT_CONCURRENCY, NO_CAP, BatchRequest
from .vary import axes_value, varied_options


def load_prompts(request: BatchRequest) -> list[str]:
    if request.prompts is not None:
        text = request.prompts if isinstance(request.prompts, str) else "\n".join(request.prompts)
        return parse_prompts(text)
    path = request.path(request.prompts_file)
    if path is None:
        raise InputError("No prompts given: pass a prompts file (one prompt per line) or prompts.")
    return read_prompts(path)


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


def spend_cap(request: BatchRequest, ws: Workspace) -> float | None:
    """The request's cap, else the settings' (I2VKIT_MAX_COST); ``--max-cost none``: none."""
    cap = request.max_cost if request.max_cost is not None else ws.settings.max_cost
    return None if cap == NO_CAP else cap


def output_dir_of(request: BatchRequest, ws: Workspace) -> Path:
    """Where the videos go, absolute: the request's folder, else AUTO_DOWNLOAD_DIR (both
    relative to the request's base), checked before anything is paid for."""
    path = request.path(request.output_dir) or request.path(str(ws.settings.download_dir))
    assert path is not None
    check_output_dir(path)
    return path


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


def trusted_by(store: Store) -> Trusted:
    """Trust, without decoding it again, an image the upload cache holds unchanged.

    It was decoded in full when it was first planned (nothing is uploaded before that),
    and the same path, size and mtime mean the same bytes for this purpose: re-planning
    a folder of 1,000 cached photos then costs a header read each, not a full decode.
    """

    def trusted(path: Path, st: os.stat_result) -> bool:
        row = store.cached_by_path(str(path))
        return bool(
            row
            and row["fal_url"]
            and row["size"] == st.st_size
            and row["mtime_ns"] == st.st_mtime_ns
        )

    return trusted


def check_end_image(value: str) -> ImageFile | None:
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
        raise InputError(f"End image {value} does not exist. Pass --end-image an image file.")
    checked = check_image(path, DEFAULT_MAX_PIXELS)
    if isinstance(checked, Skipped):
        raise InputError(f"End image {value}: {checked.reason}. Pass --end-image an image file.")
    return checked


def reread(path: Path) -> tuple[ImageFile | None, str]:
    """One image of a batch checked again as the folder scan checks it."""
    if not path.is_file():
        return None, "the image is gone; put it back to retry its jobs"
    checked = check_image(path, DEFAULT_MAX_PIXELS)
    if isinstance(checked, Skipped):
        return None, checked.reason
    return checked, ""


def with_end_image(request: BatchRequest) -> dict[str, Any]:
    """The request's options with ``--end-image`` as the option every model understands
    (a local file made absolute against the request's base)."""
    options = dict(request.options)
    end = request.end_image
    if end:
        local = not looks_like_url(end) and not is_remote(end)
        options[END_IMAGE_OPTION] = str(request.path(end)) if local else end
    return options


def model_status_notes(models: list[ModelSpec]) -> list[str]:
    notes = [n for n in (m.status_note() for m in models) if n]
    return [n if n.startswith("note:") else f"warning: {n}" for n in notes]


def expand_prompts(request: BatchRequest) -> tuple[list[Expanded], int, int | None]:
    """The request's prompts with their variables expanded, how many lines they came from,
    and the seed of their random picks (None: no line picks at random)."""
    lines = load_prompts(request)
    path = request.path(request.prompts_file) if request.prompts is None else None
    folder = path.parent if path is not None else request.path(".")
    expanded, seed = expand_lines(lines, folder, request.prompt_seed)
    return expanded, len(lines), seed if uses_random(lines) else None


def plan_folder(request: BatchRequest, ws: Workspace, defer_checks: bool = False) -> Plan:
    """Scan, read, pair and price a folder batch (image x prompt on each model, once per
    combination of its varied options); with ``defer_checks`` the images' data is left to
    the run (see ``plan_batch``)."""
    models = resolve_models(request.model)
    options = check_model_options(models, split_options(models, with_end_image(request)))
    combos = varied_options(models, options, request.vary)
    expanded, lines, seed = expand_prompts(request)
    prompts = [e.text for e in expanded]
    words: dict[str, dict[str, str]] = {}
    for e in expanded:
        words.setdefault(e.text, {k: axes_value(v) for k, v in e.values.items()})
    for m in models:
        check_prompt_lengths(prompts, m.max_prompt_chars, m.name, m.prompt_unit)
    images_dir = request.path(request.images_dir)
    if images_dir is None:
        raise InputError("No images given: pass --images-dir FOLDER (or --shots FILE).")
    scan = scan_images(
        images_dir, recursive=request.recursive, trusted=trusted_by(ws.store), defer=defer_checks
    )
    pairs = pair(scan.images, prompts, request.pairing)
    output_dir = output_dir_of(request, ws)
    jobs = []
    ends: dict[str, ImageFile] = {}
    for m, mine in zip(models, combos, strict=True):
        for opts, varied in mine:
            own, end_ref = split_end_image(m, opts)
            end = check_end_image(end_ref) if end_ref is not None else None
            if end is not None:
                ends[str(end.path)] = end
            some = _pair_jobs(pairs, m, own, end_ref, end, legacy=len(models) == 1)
            sent = {k: axes_value(v) for k, v in varied.items()}
            for j in some:
                j.varied, j.words, j.variant = sent, words[j.prompt], vary_variant(sent)
            jobs += some
    return Plan(
        request=request,
        model=models[0],
        options=options[0],
        images=scan.images,
        skipped=scan.skipped,
        prompts=prompts,
        pairs=pairs,
        output_dir=output_dir,
        ledger=ws.settings.db_path,
        notes=model_status_notes(models),
        jobs=expand_takes(jobs, request.takes),
        models=models,
        model_options=options,
        end_images=list(ends.values()),
        images_dir=images_dir,
        prompts_file=None if request.prompts is not None else request.path(request.prompts_file),
        prompt_lines=lines,
        prompt_seed=seed,
    )


def _pair_jobs(
    pairs: list[Any],
    model: ModelSpec,
    options: dict[str, Any],
    end_ref: str | None,
    end: ImageFile | None,
    *,
    legacy: bool,
) -> list[PlannedJob]:
    """One job per pair on one model (``occurrence`` tells duplicate prompts apart)."""
    cost = model.estimate_cost(options)
    seen: dict[tuple[str, str], int] = {}
    out = []
    for p in pairs:
        k = (str(p.image.path), p.prompt)
        seen[k] = seen.get(k, -1) + 1
        out.append(
            PlannedJob(
                image_ref=str(p.image.path),
                image=p.image,
                prompt=p.prompt,
                model=model,
                options=options,
                end_image_ref=end_ref,
                end_image=end,
                index=p.index,
                occurrence=seen[k],
                legacy=legacy,
                cost=cost,
            )
        )
    return out
