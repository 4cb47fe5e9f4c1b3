"""The batch request, written once: one table of its fields, and the request they fill.

Every front end is generated from :data:`FIELDS`: `i2vkit bulk`'s flags and the exported
notebook script's (:mod:`i2vkit.flags`), the ``I2VKIT_*`` environment variables, and the
notebook form's widgets and defaults (:mod:`i2vkit.notebook.form`). A field added to the
table exists everywhere, with one default, one type and one help text.

Values arrive as text from three places (a flag, an environment variable, a widget) and
are turned into a :class:`BatchRequest` by :func:`build_request`, the one place that
converts and checks them, naming where a bad value came from. Relative paths are kept
as given, with the folder they are relative to (``base``: the current folder for the CLI
and the script, the notebook's folder in the notebook); the planner makes them absolute
and the plan prints what it will use.
"""

from __future__ import annotations

import math
import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import parse_bool, parse_max_cost
from ..errors import ConfigError, InputError
from ..images import windows_path_hint
from ..pairing import normalize_pairing
from .vary import parse_vary

DEFAULT_CONCURRENCY = 16
DEFAULT_MAX_RPS = 300.0
DEFAULT_MODEL = "wan"
#: Above this many US$ a run on a billed backend asks first (``--confirm-above``).
DEFAULT_CONFIRM_ABOVE = 5.0
#: ``BatchRequest.max_cost`` for "no cap, whatever I2VKIT_MAX_COST says" (``--max-cost none``).
NO_CAP = math.inf


KINDS = ("options", "vary")  # fields drawn by the model's option widgets and a text field


@dataclass(frozen=True)
class Field:
    """One field of the batch request, as every front end shows it.

    ``kind`` decides how text becomes a value: path, text, model, options, pairing,
    int, bool, money (a cap, or none), usd (an amount of at least 0), choice (one of ``choices``), seconds. ``run`` fields steer one run (ask or not, show progress) and are
    not part of what is planned. ``label`` is the notebook widget's; None: no widget
    of its own (drawn by a richer widget, or a command-line-only switch).
    """

    name: str
    flag: str | None  # "--images-dir"
    env: str
    kind: str
    default: Any
    help: str
    label: str | None = None
    short: str | None = None
    metavar: str | None = None
    positional: bool = False  # also the command line's first argument
    run: bool = False
    widget: str = ""  # the notebook widget, when not the kind's own (textarea)
    choices: tuple[str, ...] = ()  # kind "choice": the values it takes

    @property
    def widget_kind(self) -> str:
        """text, textarea, int, checkbox, toggle, dropdown (a choice), model, options or
        vary (the option widgets' *vary* switches, and a text field for what they cannot
        show)."""
        kinds = {"int": "int", "bool": "checkbox", "pairing": "toggle", "model": "model"}
        kinds["choice"] = "dropdown"
        return self.widget or kinds.get(self.kind, self.kind if self.kind in KINDS else "text")


FIELDS: tuple[Field, ...] = (
    Field(
        "prompts_file",
        "--prompts-file",
        "I2VKIT_PROMPTS_FILE",
        "path",
        None,
        "text file, one prompt per line (# comments ok); also the first argument",
        label="Prompts file",
        metavar="FILE",
        positional=True,
    ),
    Field(
        "prompts",
        "--prompts",
        "I2VKIT_PROMPTS",
        "text",
        None,
        "prompts as text, one per line, instead of a prompts file",
        label="Prompts",
        metavar="TEXT",
        widget="textarea",
    ),
    Field(
        "images_dir",
        "--images-dir",
        "I2VKIT_IMAGES_DIR",
        "path",
        None,
        "folder of jpg/jpeg/png/webp images (needed unless --shots)",
        label="Images folder",
        metavar="FOLDER",
    ),
    Field(
        "shots",
        "--shots",
        "I2VKIT_SHOTS",
        "path",
        None,
        "a shot list (CSV or JSONL): one job per row with columns image, prompt and "
        "optionally model, end_image, takes, name and model options",
        label="Shot list",
        metavar="FILE",
    ),
    Field(
        "model",
        "--model",
        "I2VKIT_MODEL",
        "model",
        DEFAULT_MODEL,
        "short name (see `i2vkit models`) or fal endpoint id; several, comma-separated "
        "(--model kling,veo), run every job on each",
        label="Version",
        metavar="NAME",
    ),
    Field(
        "options",
        "--option",
        "I2VKIT_OPTIONS",
        "options",
        None,
        "model option, e.g. -o duration=10 (repeatable; in the variable: duration=10 seed=3); "
        "with several models it goes to those that have it, -o kling:duration=10 to one",
        label="More options",
        short="-o",
        metavar="KEY=VALUE",
    ),
    Field(
        "vary",
        "--vary",
        "I2VKIT_VARY",
        "vary",
        None,
        "run every job once per value of a model option, e.g. --vary duration=5,10 "
        "(repeatable: every combination; in the variable: duration=5,10 resolution=480p,720p); "
        "--vary kling:duration=5,10 for one model; one more value later adds only its jobs",
        label="More to vary",
        metavar="KEY=V1,V2",
    ),
    Field(
        "end_image",
        "--end-image",
        "I2VKIT_END_IMAGE",
        "path",
        None,
        "last frame for every video, a file or an http(s) URL (models with an end-image "
        "field; see `i2vkit models`)",
        label="End image",
        metavar="PATH",
    ),
    Field(
        "pairing",
        "--pairing",
        "I2VKIT_PAIRING",
        "pairing",
        "all",
        "all (every image with every prompt) or one_to_one (image i with prompt i); "
        "--one-to-one says the second",
        label="Pairing",
        metavar="MODE",
    ),
    Field(
        "takes",
        "--takes",
        "I2VKIT_TAKES",
        "int",
        1,
        "N takes of every job, with distinct seeds where the model takes a seed; a larger "
        "N later adds only the missing takes",
        label="Takes",
        metavar="N",
    ),
    Field(
        "prompt_seed",
        "--prompt-seed",
        "I2VKIT_PROMPT_SEED",
        "int",
        None,
        "seed of the random picks {~a|b} in prompts (default: the one the batch recorded, "
        "else one from the prompts' text, so the same command plans the same prompts)",
        label="Prompt seed",
        metavar="N",
        widget="text",  # empty: none given
    ),
    Field(
        "output_dir",
        "--output-dir",
        "I2VKIT_OUTPUT_DIR",
        "path",
        None,
        "where videos go (default: AUTO_DOWNLOAD_DIR, else ./downloads)",
        label="Output folder",
        metavar="FOLDER",
    ),
    Field(
        "batch",
        "--batch",
        "I2VKIT_BATCH",
        "text",
        None,
        "a name for the batch: the same name later continues it, whatever its prompts; "
        "status, report, keep, export, retry and cancel take it",
        label="Batch name",
        metavar="NAME",
    ),
    Field(
        "concurrency",
        "--concurrency",
        "I2VKIT_CONCURRENCY",
        "int",
        DEFAULT_CONCURRENCY,
        "jobs kept submitted and unfinished at once",
        label="Concurrency",
        metavar="N",
    ),
    Field(
        "recursive",
        "--recursive",
        "I2VKIT_RECURSIVE",
        "bool",
        False,
        "also scan sub-folders",
        label="include sub-folders",
    ),
    Field(
        "max_cost",
        "--max-cost",
        "I2VKIT_MAX_COST",
        "money",
        None,
        "spend cap: refuse a run whose estimate this run adds is above USD, and stop "
        "submitting before crossing it (none: no cap)",
        label="Max cost (US$)",
        metavar="USD",
    ),
    Field(
        "confirm_above",
        "--confirm-above",
        "I2VKIT_CONFIRM_ABOVE",
        "usd",
        DEFAULT_CONFIRM_ABOVE,
        "on a billed backend, ask before a run that may add more than USD (0: ask every time)",
        label="Ask above (US$)",
        metavar="USD",
    ),
    Field(
        "priority",
        "--priority",
        "I2VKIT_PRIORITY",
        "choice",
        "normal",
        "fal's queue priority (X-Fal-Queue-Priority): low waits behind normal requests, "
        "for unattended batches",
        label="Queue priority",
        metavar="low|normal",
        choices=("normal", "low"),
    ),
    Field(
        "start_timeout",
        "--start-timeout",
        "I2VKIT_START_TIMEOUT",
        "seconds",
        None,
        "fail a job fal cannot start within SECONDS (X-Fal-Request-Timeout: the wait in "
        "fal's queue, not the run); none: wait as long as it takes",
        label="Start timeout (s)",
        metavar="SECONDS",
    ),
    Field(
        "fallbacks",
        "--fallbacks",
        "I2VKIT_FALLBACKS",
        "choice",
        "compare",
        "may fal run a request on an equivalent endpoint after repeated failures (model "
        "fallbacks)? compare: not in a batch comparing models, so every clip is the model "
        "it is labelled with; off: never (x-fal-disable-fallbacks); on: fal's default",
        label="Model fallbacks",
        metavar="compare|off|on",
        choices=("compare", "off", "on"),
    ),
    Field(
        "yes",
        "--yes",
        "I2VKIT_YES",
        "bool",
        False,
        "do not ask before spending over --confirm-above on a billed backend",
        short="-y",
        run=True,
    ),
    Field(
        "dry_run",
        "--dry-run",
        "I2VKIT_DRY_RUN",
        "bool",
        False,
        "print the plan and cost; submit nothing",
        run=True,
    ),
    Field(
        "write_shots",
        "--write-shots",
        "I2VKIT_WRITE_SHOTS",
        "path",
        None,
        "write the plan as a shot list (CSV) to edit and run with --shots; submits nothing",
        metavar="FILE",
        run=True,
    ),
    Field(
        "no_progress",
        "--no-progress",
        "I2VKIT_NO_PROGRESS",
        "bool",
        False,
        "no progress bars (or, when stderr is not a terminal, no progress lines)",
        run=True,
    ),
)

BY_NAME: dict[str, Field] = {f.name: f for f in FIELDS}


@dataclass
class BatchRequest:
    """What to run. Every field has a default that works, so notebooks run top to bottom.

    ``model`` is one model, or several (``"kling,veo"`` or a list): every job then runs
    on each. ``options`` apply to the models that have them; ``"kling:duration"`` targets
    one model. ``shots`` (a CSV or JSONL shot list) replaces the folder and prompts.
    Relative paths are read from ``base`` (None: the current folder).
    """

    images_dir: str | os.PathLike[str] | None = None
    prompts_file: str | os.PathLike[str] | None = None
    prompts: list[str] | str | None = None  # inline prompts (a list, or one per line)
    model: str | list[str] = DEFAULT_MODEL
    options: dict[str, Any] = field(default_factory=dict)
    vary: dict[str, list[str]] = field(default_factory=dict)  # option -> values, one job each
    end_image: str | None = None
    pairing: str = "all"
    output_dir: str | os.PathLike[str] | None = None  # default: AUTO_DOWNLOAD_DIR
    concurrency: int = DEFAULT_CONCURRENCY
    recursive: bool = False
    max_cost: float | None = None  # US$ this run may add at most; default I2VKIT_MAX_COST
    confirm_above: float | None = None  # ask above this (US$); default I2VKIT_CONFIRM_ABOVE, 5
    takes: int = 1  # runs of every job (distinct seeds where the model takes one)
    prompt_seed: int | None = None  # seed of {~a|b} picks; None: recorded, else derived
    shots: str | os.PathLike[str] | None = None  # a shot list: one job per row
    batch: str | None = None  # a name that continues the batch whatever its prompts
    base: str | os.PathLike[str] | None = None  # what relative paths are relative to
    priority: str = "normal"  # fal's queue priority: "normal" or "low"
    start_timeout: float | None = None  # seconds fal may take to start a job; None: no limit
    fallbacks: str = "compare"  # model fallbacks: "compare" (off when comparing), "off", "on"
    max_rps: float = DEFAULT_MAX_RPS
    upload_concurrency: int = 4

    def path(self, value: str | os.PathLike[str] | None) -> Path | None:
        """A path of this request, absolute (``~`` expanded; relative to ``base``)."""
        if value is None or str(value) == "":
            return None
        if windows_path_hint(str(value)):  # kept as typed, so "not found" can say why
            return Path(value)
        path = Path(value).expanduser()
        base = Path(self.base) if self.base is not None else Path.cwd()
        return Path(os.path.normpath(path if path.is_absolute() else base / path))


@dataclass(frozen=True)
class Given:
    """A value as a person gave it, and where (for messages): ``--takes`` or ``I2VKIT_TAKES``."""

    value: Any
    where: str


def parse_options(pairs: Any) -> dict[str, str]:
    """``["duration=10", "seed=3"]`` (the repeated ``-o``) -> ``{"duration": "10", ...}``.

    A single string is split like a shell would (``I2VKIT_OPTIONS`` and the notebook's
    free-text field hold ``duration=10 seed=3``). Values stay strings; the model's
    option table converts and checks them when the batch is planned.
    """
    if not pairs:
        return {}
    if isinstance(pairs, Mapping):
        return {str(k): v for k, v in pairs.items()}
    items = shlex.split(pairs) if isinstance(pairs, str) else list(pairs)
    options: dict[str, str] = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise InputError(f"--option {item!r} is not KEY=VALUE, e.g. --option duration=10.")
        options[key.strip()] = value.strip()
    return options


def format_options(options: Mapping[str, Any]) -> str:
    """Options as the user types them (``duration=10 seed=3``), not as a Python dict."""
    return " ".join(shlex.quote(f"{k}={v}") for k, v in options.items())


def convert(f: Field, given: Given) -> Any:
    """One field's value from what was given, or an error naming where it came from."""
    value, where = given.value, given.where
    if value is None:
        return None
    text = value if isinstance(value, str) else None
    if f.kind == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        else:
            try:
                number = int(str(value).strip())
            except ValueError:
                raise InputError(f"{where}={value!r} is not a whole number.") from None
        if number < 1:
            raise InputError(f"{where} must be a whole number of at least 1, got {value!r}.")
        return number
    if f.kind == "bool":
        return value if isinstance(value, bool) else parse_bool(where, str(value))
    if f.kind == "money":
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        try:
            cap = parse_max_cost(where, str(value))
        except ConfigError as exc:
            raise InputError(str(exc)) from None
        return NO_CAP if cap is None else cap
    if f.kind == "usd":
        return parse_amount(where, value)
    if f.kind == "choice":
        word = str(value).strip().lower()
        if word not in f.choices:
            raise InputError(f"{where}={value!r}: use one of {', '.join(f.choices)}.")
        return word
    if f.kind == "seconds":
        return _seconds(where, value)
    if f.kind == "pairing":
        return normalize_pairing(str(value))
    if f.kind == "options":
        return parse_options(value)
    if f.kind == "vary":
        return parse_vary(value)
    if text is not None and text.strip() == "" and f.kind in ("path", "model"):
        return None
    return value


def parse_amount(where: str, value: Any) -> float:
    """An amount in US$ of at least 0 (``5``, ``12.50``, ``$20``), or an error naming ``where``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        amount = float(value)
    else:
        try:
            amount = float(str(value).strip().lstrip("$").replace(",", ""))
        except ValueError:
            amount = -1.0
    if not 0 <= amount < math.inf:  # also refuses nan
        raise InputError(
            f"{where}={value!r} is not an amount in US$. Use a number such as 5 or 12.50 "
            "(0: ask every time)."
        )
    return amount


def confirm_threshold(value: float | None, environ: Mapping[str, str] | None = None) -> float:
    """Above how many US$ a run asks: ``value``, else ``I2VKIT_CONFIRM_ABOVE``, else 5 (a
    retry planned from the ledger, or a request built in code, reads the variable here)."""
    if value is not None:
        return value
    f = BY_NAME["confirm_above"]
    raw = (os.environ if environ is None else environ).get(f.env, "")
    return parse_amount(f.env, raw) if raw.strip() else float(f.default)


def _seconds(where: str, value: Any) -> float | None:
    """A start deadline in seconds (more than 1, as fal asks); none/off/0: no deadline."""
    if isinstance(value, str) and value.strip().lower() in ("none", "off", "no", "0", ""):
        return None
    try:
        seconds = float(str(value).strip().lower().removesuffix("s"))
    except ValueError:
        seconds = math.nan
    if seconds == 0:
        return None
    if not seconds > 1 or seconds == math.inf:
        raise InputError(
            f"{where}={value!r} is not a number of seconds above 1 (fal's minimum); use e.g. "
            "600, or none for no deadline."
        )
    return seconds


def from_environment(environ: Mapping[str, str]) -> dict[str, Given]:
    """The fields set by ``I2VKIT_*`` variables (an empty one counts as unset)."""
    out = {}
    for f in FIELDS:
        raw = environ.get(f.env)
        if raw not in (None, ""):
            out[f.name] = Given(raw, f.env)
    return out


def build_request(
    given: Mapping[str, Given], base: str | os.PathLike[str] | None = None
) -> tuple[BatchRequest, dict[str, Any]]:
    """The request (and the run fields: yes, dry_run, ...) from what was given; the rest
    takes the table's defaults. Every front end ends here."""
    values: dict[str, Any] = {}
    for f in FIELDS:
        value = convert(f, given[f.name]) if f.name in given else None
        values[f.name] = f.default if value is None else value
    run = {f.name: values.pop(f.name) for f in FIELDS if f.run}
    values["options"] = dict(values["options"] or {})
    values["vary"] = dict(values["vary"] or {})
    return BatchRequest(**values, base=base), run


def request_from(
    given: Mapping[str, Given],
    environ: Mapping[str, str] | None = None,
    base: str | os.PathLike[str] | None = None,
) -> tuple[BatchRequest, dict[str, Any]]:
    """Flags (or widgets) over ``I2VKIT_*`` variables over the table's defaults."""
    merged = {**from_environment(os.environ if environ is None else environ), **given}
    if "shots" in given:  # a shot list given here replaces a folder and prompts from env
        for name in ("images_dir", "prompts_file", "prompts"):
            if name not in given:
                merged.pop(name, None)
    elif "prompts" in given and "prompts_file" not in given:
        merged.pop("prompts_file", None)
    elif "prompts_file" in given and "prompts" not in given:
        merged.pop("prompts", None)
    return build_request(merged, base)
