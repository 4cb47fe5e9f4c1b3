"""Varied options: ``--vary duration=5,10`` runs every job once per value (per combination
when several keys vary), the way ``--takes`` runs it once per take.

``--vary KEY=V1,V2`` goes to every model of the batch that has ``KEY``; ``--vary
MODEL:KEY=...`` to one model. Every value is checked against each model's schema before
anything is uploaded, every problem listed at once (as ``-o`` does); a key no chosen
model has is an error. A varied job's values are its *variant* (part of its key), so the
same command later with one more value plans only the new value's jobs.
"""

from __future__ import annotations

import itertools
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import InputError, ModelError
from ..models import ModelSpec
from .options import model_aliases

#: One model's varied keys and their values, in the order given.
Axes = dict[str, list[str]]


def parse_vary(given: Any) -> dict[str, list[str]]:
    """``["duration=5,10", "kling:resolution=480p,720p"]`` (the repeated ``--vary``, or one
    string split like a shell: ``I2VKIT_VARY`` and the notebook's field) ->
    ``{"duration": ["5", "10"], ...}``."""
    if not given:
        return {}
    if isinstance(given, Mapping):
        return {str(k): _values(str(k), v) for k, v in given.items()}
    items = shlex.split(given) if isinstance(given, str) else list(given)
    out: dict[str, list[str]] = {}
    for item in items:
        key, sep, values = str(item).partition("=")
        if not sep or not key.strip():
            raise InputError(f"--vary {item!r} is not KEY=V1,V2,..., e.g. --vary duration=5,10.")
        out[key.strip()] = _values(key.strip(), values)
    return out


def _values(key: str, values: Any) -> list[str]:
    items = values.split(",") if isinstance(values, str) else list(values)
    found = list(dict.fromkeys(str(v).strip() for v in items if str(v).strip() != ""))
    if not found:
        raise InputError(f"--vary {key}= has no values; give them comma-separated: {key}=5,10.")
    return found


def format_vary(vary: Mapping[str, Sequence[Any]]) -> str:
    return " ".join(shlex.quote(f"{k}={','.join(map(str, v))}") for k, v in vary.items())


def varied_options(
    models: Sequence[ModelSpec], options: Sequence[dict[str, Any]], vary: Mapping[str, list[str]]
) -> list[list[tuple[dict[str, Any], dict[str, Any]]]]:
    """Per model, every combination of its varied values as (checked options, the values
    as sent); every problem (a key no model has, a value outside a schema) in one
    :class:`ModelError`, before anything is uploaded."""
    problems: list[str] = []
    axes = split_vary(models, vary, problems)
    problems += overlaps(models, options, axes)
    out = combinations(models, options, axes, problems)
    if problems:
        raise ModelError("These varied options cannot be used:\n" + _bullets(problems))
    return out


def split_vary(
    models: Sequence[ModelSpec], vary: Mapping[str, list[str]], problems: list[str]
) -> list[Axes]:
    """Each model's varied keys: a plain key to every model that has it, ``model:key`` to
    that one (winning over a plain key). A key no model has, or a ``model:`` that is not
    one of the batch's models, is a problem (added to ``problems``)."""
    per_model: list[Axes] = [{} for _ in models]
    names = ", ".join(m.name for m in models)
    for key, values in vary.items():
        if ":" in key:
            continue
        takers = [i for i, m in enumerate(models) if _has(m, key)]
        if not takers:
            problems.append(
                f"--vary {key}: none of this batch's models ({names}) has an option {key!r}; "
                "`i2vkit models NAME` lists each model's options"
            )
        for i in takers:
            per_model[i][key] = list(values)
    for key, values in vary.items():
        if ":" not in key:
            continue
        who, _, name = key.partition(":")
        hits = [i for i, m in enumerate(models) if who.strip().lower() in model_aliases(m)]
        if not hits:
            problems.append(f"--vary {key}: {who!r} is not one of this batch's models ({names})")
        for i in hits:
            if not _has(models[i], name.strip()):
                problems.append(f"--vary {key}: {models[i].name} has no option {name.strip()!r}")
                continue
            per_model[i][name.strip()] = list(values)
    return per_model


def overlaps(
    models: Sequence[ModelSpec], options: Sequence[dict[str, Any]], axes: Sequence[Axes]
) -> list[str]:
    """An option both set once (``-o``) and varied (``--vary``) on the same model: the
    varied values would replace the one value without a word, so it is a problem to fix."""
    out = []
    for m, opts, mine in zip(models, options, axes, strict=True):
        for key in (k for k in mine if k in opts):
            out.append(
                f"--vary {key}={','.join(mine[key])} and -o {key}={axes_value(opts[key])} both "
                f"set {key} (model {m.name}): drop -o {key} to run every --vary value, or drop "
                f"--vary {key} to run {key}={axes_value(opts[key])} only"
            )
    return out


def _has(model: ModelSpec, key: str) -> bool:
    allowed = model.allowed_options
    return allowed is None or key in allowed


def _bullets(problems: list[str]) -> str:
    return "\n".join(f"  - {p}" for p in problems)


def combinations(
    models: Sequence[ModelSpec],
    options: Sequence[dict[str, Any]],
    axes: Sequence[Axes],
    problems: list[str],
) -> list[list[tuple[dict[str, Any], dict[str, Any]]]]:
    """Per model, every combination of its varied values: each value checked against the
    model's schema on top of its ``-o`` options (a value it refuses goes to ``problems``)."""
    out: list[list[tuple[dict[str, Any], dict[str, Any]]]] = []
    for m, opts, mine in zip(models, options, axes, strict=True):
        bad = []
        for key, values in mine.items():
            for value in values:
                try:
                    m.validate_options({**opts, key: value})
                except ModelError as exc:
                    lines = [
                        ln.strip()[2:]
                        for ln in str(exc).splitlines()
                        if ln.strip().startswith("- ")
                    ]
                    bad.append(f"--vary {key}={value}: " + ("; ".join(lines) or str(exc)))
        if bad:
            problems += [f"{b} (model {m.name}, `i2vkit models {m.name}`)" for b in bad]
            out.append([])
            continue
        combos = []
        keys = list(mine)
        for combo in itertools.product(*(mine[k] for k in keys)):
            checked = m.validate_options({**opts, **dict(zip(keys, combo, strict=True))})
            sent = {k: checked.get(k, v) for k, v in zip(keys, combo, strict=True)}
            combos.append((checked, sent))
        out.append(combos or [(opts, {})])
    return out


def axes_value(value: Any) -> str:
    """A value as the grid and the ledger show it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
