"""The emulator's knobs: one table that yields the defaults, the validation and the CLI flags.

A knob is a fault or a shape the emulator can be told to have (a locked account, 429s,
failing jobs, slow jobs, dropped downloads...). Knobs arrive from three places: keyword
arguments of ``Emulator(...)``/``configure(...)``, the JSON body of ``POST /_emulator/config``
and the ``i2vkit emulator`` command line. Each knob is described once in :data:`KNOBS`, so
a new knob cannot get a default without a validator, or a validator without a flag.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from i2vkit.config import parse_bool
from i2vkit.errors import ConfigError

__all__ = [
    "DEFAULT_KNOBS",
    "FAIL_KINDS",
    "KNOBS",
    "Knob",
    "add_knob_arguments",
    "coerce_knob",
    "coerce_knobs",
    "knobs_from_args",
    "knobs_view",
]

FAIL_KINDS = ("mixed", "validation", "runner", "timeout", "internal")

Parser = Callable[[str, Any], Any]


@dataclass(frozen=True)
class Knob:
    """One knob: its name, default, parser (coerces and validates, raising ValueError that
    names the knob) and help text. ``flag`` is True for on/off knobs (``--locked``)."""

    name: str
    default: Any
    parse: Parser
    help: str
    flag: bool = False
    metavar: str | None = None
    choices: tuple[str, ...] | None = None


# --------------------------------------------------------------------------- parsers


def _none_word(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, str) and value.lower() == "none")


def _boolean(name: str, value: Any) -> bool:
    if not isinstance(value, str):
        return bool(value)
    try:
        return parse_bool(name, value)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None


def _number(
    kind: type, *, low: float | None = None, high: float | None = None, above: float | None = None
) -> Parser:
    """A parser for an int or float knob within [low, high] (or strictly above ``above``)."""

    def parse(name: str, value: Any) -> Any:
        try:
            v = kind(value)
        except (TypeError, ValueError):
            raise ValueError(
                f"{name} must be {'an integer' if kind is int else 'a number'}, not {value!r}"
            ) from None
        if low is not None and v < low or high is not None and v > high:
            bounds = f"within [{low}, {high}]" if high is not None else f">= {low}"
            raise ValueError(f"{name} must be {bounds}")
        if above is not None and v <= above:
            raise ValueError(f"{name} must be > {above}")
        return v

    return parse


def _optional(parse: Parser, *, zero_is_none: bool = False) -> Parser:
    """``parse`` that also takes None / "" / "none" (and 0 if ``zero_is_none``) as unset."""

    def parse_optional(name: str, value: Any) -> Any:
        if _none_word(value) or (zero_is_none and value == 0):
            return None
        v = parse(name, value)
        return None if zero_is_none and v == 0 else v

    return parse_optional


def _job_seconds(name: str, value: Any) -> float | tuple[float, float]:
    if isinstance(value, str):
        parts = [p for p in re.split(r"[,:]", value) if p.strip()]
        value = float(parts[0]) if len(parts) == 1 else tuple(float(p) for p in parts)
    if isinstance(value, list | tuple):
        if len(value) != 2:
            raise ValueError(f"{name} range must be (min, max)")
        lo, hi = float(value[0]), float(value[1])
        if lo < 0 or hi < lo:
            raise ValueError(f"{name} range must satisfy 0 <= min <= max")
        return (lo, hi)
    return _number(float, low=0)(name, value)


def _choice(choices: tuple[str, ...]) -> Parser:
    def parse(name: str, value: Any) -> str:
        if value not in choices:
            raise ValueError(f"{name} must be one of {choices}")
        return value

    return parse


def _count(name: str, value: Any) -> int:
    return _number(int, low=0)(name, value or 0)


def _drop_downloads(name: str, value: Any) -> int | float:
    """A float is a fraction of downloads to cut off, an int a count of the next ones."""
    if value is None or value is False:
        return 0
    if isinstance(value, str):
        value = float(value) if ("." in value or "e" in value.lower()) else int(value)
    if isinstance(value, float):
        return _number(float, low=0.0, high=1.0)(f"{name} as a fraction", value)
    return _number(int, low=0)(f"{name} count", value)


def _size(name: str, value: Any) -> int | None:
    """``500MB``/``1GiB``/``123`` -> bytes; 0, "off", "none" -> None."""
    if value is None or value == "" or value is False:
        return None
    if isinstance(value, int | float):
        n = int(value)
        return n if n > 0 else None
    s = str(value).strip().lower().replace(" ", "")
    if s in ("none", "0", "off"):
        return None
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([kmgt]?)(i?b?)", s)
    if not m:
        raise ValueError(f"bad {name} {value!r}: use bytes or e.g. 500MB, 1GiB")
    num, unit, suffix = float(m.group(1)), m.group(2), m.group(3)
    base = 1024 if suffix.startswith("i") else 1000
    mult = {"": 1, "k": base, "m": base**2, "g": base**3, "t": base**4}[unit]
    return int(num * mult) or None


def _json_list(name: str, value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str):
        value = json.loads(value)
    if not isinstance(value, list):
        raise ValueError(f"{name} must be a list of JSON values")
    return list(value)


def _per_endpoint(kind: type, what: str) -> Callable[[str, Any], dict[str, Any]]:
    """``{"endpoint_id": value >= 0, ...}`` (a JSON object on the command line): the
    billed-prices and records-lag knobs."""
    numbers = (int, float) if kind is float else (int,)

    def parse(name: str, value: Any) -> dict[str, Any]:
        if value is None or value == "":
            return {}
        if isinstance(value, str):
            value = json.loads(value)
        if not isinstance(value, dict) or not all(
            isinstance(v, numbers) and not isinstance(v, bool) and v >= 0 for v in value.values()
        ):
            raise ValueError(f"{name} must be a JSON object of endpoint id -> {what} >= 0")
        return {str(k): kind(v) for k, v in value.items()}

    return parse


_prices = _per_endpoint(float, "unit price")
_lags = _per_endpoint(int, "count")


# --------------------------------------------------------------------------- the table

_SECONDS = _optional(_number(float, low=0))

KNOBS: tuple[Knob, ...] = (
    Knob("locked", False, _boolean, "answer 403 'User is locked' on submits and storage calls",
         flag=True),
    Knob("job_seconds", 1.0, _job_seconds, "job run time: SECONDS, or MIN,MAX drawn per job",
         metavar="S|MIN,MAX"),
    Knob("concurrency", None, _optional(_number(int, low=1), zero_is_none=True),
         "jobs IN_PROGRESS at once, the rest wait IN_QUEUE in order (default unlimited)"),
    Knob("start_limit", None, _optional(_number(int, low=0)),
         "start at most N jobs in all, the rest wait IN_QUEUE until it is raised or removed "
         "(a stalled queue; default no limit)"),
    Knob("fail_rate", 0.0, _number(float, low=0.0, high=1.0),
         "fraction of jobs that complete with an error (deterministic given --seed)"),
    Knob("fail_kind", "mixed", _choice(FAIL_KINDS), "the error failing jobs get",
         choices=FAIL_KINDS),
    Knob("rate_limit", None, _optional(_number(float, low=0), zero_is_none=True),
         "requests per second over all endpoints before 429 (token bucket; default off)"),
    Knob("rate_burst", None, _optional(_number(float, low=1.0)),
         "token bucket size (default max(1, rate_limit))"),
    Knob("fail_next", 0, _count,
         "answer the next N requests with --fail-status and an nginx body (an ingress error)"),
    Knob("fail_status", 503, _number(int, low=400, high=599), "status of the --fail-next answers"),
    Knob("drop_downloads", 0, _drop_downloads,
         "cut downloads off mid-body: a fraction (0.2) or a count of the next N (3)"),
    Knob("file_ttl", None, _SECONDS, "seconds before stored files answer 404 (default never)"),
    Knob("result_ttl", None, _SECONDS,
         "seconds results stay fetchable (default fal's: 1 h, 6 min for results of 10 KB+)"),
    Knob("video_size", None, _size,
         "pad served videos to exactly this size, e.g. 500MB (default: the real clip)"),
    Knob("seed", 0, _number(int),
         "seed for job durations, failures, dropped downloads and result seeds"),
    Knob("cancel_running", False, _boolean,
         "cancel aborts running jobs too (fal only signals the runner)", flag=True),
    Knob("history_restricted", False, _boolean,
         "answer 403 on the request history (an account with restricted request view)",
         flag=True),
    Knob("submit_delay", 0.0, _number(float, low=0),
         "seconds a submit is held after it is queued, before its answer (a wider window "
         "for a crash between a submit reaching fal and its answer)"),
    Knob("stream_refuse", False, _boolean,
         "answer 404 on the status stream (GET .../status/stream), as a host without it would",
         flag=True),
    Knob("stream_drop", 0, _count,
         "cut the next N status streams off before they deliver COMPLETED (a dropped stream)"),
    Knob("stream_keepalive", 15.0, _number(float, above=0),
         "seconds between the status stream's keep-alive comments (fal: 15)"),
    Knob("token_ttl", 3600, _number(float, above=0), "CDN token lifetime in seconds"),
    Knob("result_override", [], _json_list,
         "JSON list of values that replace the results of the next successful jobs, one each "
         "in the order jobs finish (malformed results, odd URLs; default none)", metavar="JSON"),
    Knob("admin", False, _boolean,
         "the key is an admin key: billing events, usage and the balance answer (else 403)",
         flag=True),
    Knob("billed_prices", {}, _prices,
         "JSON object endpoint_id -> unit price fal bills it at, instead of the catalogue's "
         "(a bill that disagrees with the price list; default none)", metavar="JSON"),
    Knob("records_lag", {}, _lags,
         "JSON object endpoint_id -> N: the N requests of that endpoint charged last have no "
         "billing record yet (fal's records lag), though usage counts them", metavar="JSON"),
    Knob("balance", 100.0, _number(float, low=0),
         "the account's credit balance in US$ before what the emulator charges"),
    Knob("clip_seconds", 1.5, _number(float, above=0), "clip length in seconds"),
    Knob("clip_fps", 12, _number(int, low=2), "clip frame rate"),
    Knob("clip_max_side", 256, _number(int, low=2), "clip long side in pixels"),
)  # fmt: skip

_BY_NAME = {k.name: k for k in KNOBS}
DEFAULT_KNOBS: dict[str, Any] = {k.name: k.default for k in KNOBS}


# --------------------------------------------------------------------------- uses of the table


def coerce_knob(name: str, value: Any) -> Any:
    """The validated value of knob ``name``; ValueError naming the knob when it is unknown
    or ``value`` does not fit."""
    knob = _BY_NAME.get(name)
    if knob is None:
        raise ValueError(f"unknown emulator knob {name!r}; known: {', '.join(_BY_NAME)}")
    try:
        return knob.parse(name, value)
    except (TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"bad value {value!r} for emulator knob {name!r}: {exc}") from None


def coerce_knobs(knobs: dict[str, Any]) -> dict[str, Any]:
    """Validate a whole set of knobs before any of them is applied."""
    return {name: coerce_knob(name, value) for name, value in knobs.items()}


def knobs_view(knobs: dict[str, Any]) -> dict[str, Any]:
    """The knobs as plain JSON (tuples as lists; a copy the caller may keep)."""
    out = dict(knobs)
    out["result_override"] = list(out["result_override"])
    out["billed_prices"] = dict(out["billed_prices"])
    out["records_lag"] = dict(out["records_lag"])
    if isinstance(out["job_seconds"], tuple):
        out["job_seconds"] = list(out["job_seconds"])
    return out


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_knob_arguments(parser: argparse.ArgumentParser) -> None:
    """One ``--flag`` per knob in a "knobs" group; values are parsed by the knob itself, so a
    bad value is an argparse error naming the flag."""
    group = parser.add_argument_group("knobs")
    for knob in KNOBS:
        if knob.flag:
            group.add_argument(_flag(knob.name), action="store_true", default=None, help=knob.help)
            continue

        def parse(text: str, knob: Knob = knob) -> Any:
            try:
                return coerce_knob(knob.name, text)
            except ValueError as exc:
                raise argparse.ArgumentTypeError(str(exc)) from None

        parse.__name__ = knob.name  # argparse names the type in its "invalid ..." message
        help_text = knob.help
        if "default" not in help_text:
            help_text += f" (default {knob.default})"
        group.add_argument(
            _flag(knob.name),
            type=parse,
            default=None,
            metavar=knob.metavar or (None if knob.choices else knob.name.upper()),
            choices=knob.choices,
            help=help_text,
        )


def knobs_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The knobs given on the command line (flags left out keep their defaults)."""
    return {k.name: getattr(args, k.name) for k in KNOBS if getattr(args, k.name) is not None}
