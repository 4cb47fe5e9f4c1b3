"""Again, from a clip: the job a video's recipe describes, planned as a new batch.

Why: a user who likes a clip weeks later wants another like it, and the clip (copied
anywhere) carries its recipe (:mod:`i2vkit.provenance`): the endpoint, the exact
arguments sent, the source image's sha256 and URL. The new batch sends the same
arguments but the seed (a new one per take, unless ``-o seed=N`` is given), and goes
through the usual plan, cost and confirmation like any other run.

The source image is found by its bytes: the recorded file when it is still there and
unchanged (the upload cache then knows its URL), else the upload cache's URL for that
sha256, else the URL fal fetched it from.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import InputError, ModelError
from ..images import DEFAULT_MAX_PIXELS, ImageFile, Skipped, check_image
from ..models import ModelSpec, get_model
from ..refs import is_remote
from ..store import utcnow
from ..workspace import Workspace
from .batch import ledger_cost
from .folder import check_takes, model_status_notes, output_dir_of, spend_cap
from .identity import BatchRef, resolve_batch, short_hash
from .plan import Plan, PlannedJob
from .request import BatchRequest, confirm_threshold, parse_options


def plan_again(
    recipe: Mapping[str, Any], ws: Workspace, request: BatchRequest | None = None
) -> Plan:
    """The recipe's job as a new batch (see the module's doc). From `request`: its
    takes, options (``-o``: they change the recipe's; ``seed`` sets the first take's),
    output folder, batch name and spend cap; its model and inputs are the recipe's."""
    request = request or BatchRequest()
    takes = check_takes(request.takes)
    model = _model(recipe)
    given = parse_options(request.options)
    sent = recipe.get("arguments")
    if not isinstance(sent, dict):
        raise InputError("The video's recipe has no arguments sent; it cannot be made again.")
    own = {
        k: v
        for k, v in sent.items()
        if k not in (model.prompt_field, model.image_field, model.end_image_field, "seed")
    }
    seed_given = given.pop("seed", None)
    try:
        own = model.validate_options({**own, **given})
    except ModelError as exc:
        raise InputError(f"-o: {exc}") from None
    image_ref, image = _source_image(recipe, ws)
    end = sent.get(model.end_image_field) if model.end_image_field else None
    prompt = str(sent.get(model.prompt_field) or recipe.get("prompt") or "")
    request = dataclasses.replace(
        request, model=model.endpoint_id, options=dict(given), takes=takes
    )
    seeds = _seeds(model, takes, seed_given)
    jobs = [
        PlannedJob(
            image_ref=image_ref,
            image=image,
            prompt=prompt,
            model=model,
            options=own,
            take=take,
            seed=seed,
            end_image_ref=end if isinstance(end, str) and is_remote(end) else None,
            index=0,
            cost=model.estimate_cost({**own, **({"seed": seed} if seed is not None else {})}),
        )
        for take, seed in enumerate(seeds, 1)
    ]
    plan = Plan(
        request=request,
        model=model,
        options=own,
        images=[image] if image is not None else [],
        skipped=[],
        prompts=[prompt],
        pairs=[],
        output_dir=output_dir_of(request, ws),
        ledger=ws.settings.db_path,
        notes=model_status_notes([model]),
        jobs=jobs,
    )
    plan.max_cost = spend_cap(request, ws)
    plan.confirm_above = confirm_threshold(request.confirm_above)
    plan.batch = _new_batch(recipe, ws, request.batch)
    plan.cost = ledger_cost(plan, ws)
    return plan


def _model(recipe: Mapping[str, Any]) -> ModelSpec:
    """The recipe's model: by the name it ran as when still that endpoint, else its id."""
    endpoint = str(recipe.get("endpoint_id") or "")
    if not endpoint:
        raise InputError("The video's recipe names no endpoint; it cannot be made again.")
    try:
        named = get_model(str(recipe.get("model") or ""))
        if named.endpoint_id == endpoint:
            return named
    except InputError:
        pass
    return get_model(endpoint)


def _seeds(model: ModelSpec, takes: int, given: Any) -> list[int | None]:
    """A seed per take: `given`, `given`+1, ... or new random ones; None where the model
    takes no seed."""
    allowed = model.allowed_options or {}
    if "seed" not in allowed and given is None:
        return [None] * takes
    if given is not None:
        try:
            first = int(str(given))
        except ValueError:
            raise InputError(f"-o seed={given!r} is not a whole number.") from None
        return [first + t for t in range(takes)]
    prop = allowed["seed"] if isinstance(allowed.get("seed"), dict) else {}
    low = int(prop.get("minimum", 0) or 0)
    high = int(prop.get("maximum", 2**31 - 1))
    return [low + secrets.randbelow(high - low + 1) for _ in range(takes)]


def _source_image(recipe: Mapping[str, Any], ws: Workspace) -> tuple[str, ImageFile | None]:
    """(the image reference to plan with, the checked local image or None for a URL)."""
    image = recipe.get("image") or {}
    digest, path = image.get("sha256"), image.get("path")
    if path and digest and Path(path).is_file() and _sha256(Path(path)) == digest:
        checked = check_image(Path(path), DEFAULT_MAX_PIXELS)
        if not isinstance(checked, Skipped):
            return str(Path(path).absolute()), checked
    if digest:
        cached = ws.store.cached_by_hash(digest, ws.backend.label, utcnow())
        if cached is not None and cached["fal_url"]:
            return cached["fal_url"], None
    url = image.get("url")
    if isinstance(url, str) and is_remote(url):
        return url, None
    raise InputError(
        f"The source image {image.get('file')!r} is gone (no file with its sha256, no "
        "upload of it cached, no URL recorded); it cannot be made again."
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _new_batch(recipe: Mapping[str, Any], ws: Workspace, name: str | None) -> BatchRef:
    """A batch of its own for every `again` (a named one continues by its name)."""
    identity = json.dumps(
        {"again": recipe.get("request_id"), "at": utcnow(), "nonce": secrets.token_hex(4)},
        sort_keys=True,
    )
    ref = resolve_batch(ws.store, ws.backend.label, identity, short_hash(identity), name=name)
    return dataclasses.replace(ref, identity=ref.identity or identity)
