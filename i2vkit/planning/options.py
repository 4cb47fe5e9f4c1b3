"""Each model of a batch and its own options: names, option sharing, seeds for takes.

``--model a,b`` runs every job on each model; ``-o key=value`` goes to every model that
has the option and ``-o a:key=value`` to one (:func:`split_options`); ``--takes N`` runs
every job N times with reproducible seeds (:func:`take_seed`). A ledger row's model,
options and price are read back here too, for retries and costs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from ..errors import InputError, ModelError
from ..models import END_IMAGE_OPTION, ModelSpec, get_model
from ..rows import JobRow


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


def split_end_image(model: ModelSpec, options: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """A model's checked options without its end frame, and the end frame (path or URL)."""
    own = dict(options)
    field_name = model.end_image_field
    value = own.pop(field_name, None) if field_name else None
    return own, str(value) if value is not None else None


def model_of_row(row: JobRow) -> ModelSpec:
    """A ledger row's model: by the name it was planned with when that is still the same
    endpoint (so file names keep ``kling``), else by its endpoint id."""
    try:
        m = get_model(row["model"])
        if m.endpoint_id == row["endpoint_id"]:
            return m
    except InputError:
        pass
    return get_model(row["endpoint_id"])


def row_options(row: JobRow, model: ModelSpec) -> tuple[dict[str, Any], str | None]:
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


def row_cost(row: JobRow, model: ModelSpec) -> float | None:
    try:
        options, _ = row_options(row, model)
        return model.estimate_cost(options)
    except InputError:
        return None
