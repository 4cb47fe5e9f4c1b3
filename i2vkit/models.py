"""The image-to-video models i2vkit knows, and how to talk to each: a view of the catalogue.

Why check models here instead of passing endpoint ids and raw JSON to fal:

* every fal model names its inputs a little differently (``image_url``,
  ``start_image_url``, ``first_frame_url``), and a wrong option only shows up as a 422
  *per job*, after the upload; checking options against the endpoint's own schema fails
  once, before anything is uploaded or paid for;
* a batch needs a cost estimate before it starts, from fal's price rule for the
  endpoint (unknown stays unknown: the caller asks before spending);
* an endpoint fal retired must be refused before the first upload, with what replaced it.

The schemas, prices and status come from :mod:`i2vkit.catalogue` (a snapshot shipped in
the package, or a copy read from fal's Platform API and kept in the ledger). Any other
fal endpoint id also works, with the ``image_url``/``prompt`` mapping, options passed
through unchecked, and no price.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .catalogue import active, core, families
from .catalogue import pricing as price_rules
from .catalogue import schema as schemas
from .errors import FalError, ModelError

# URL or file is decided in refs.py; plan.py and shots.py still import these from here
from .refs import is_remote, looks_like_url

DEFAULT_MAX_PROMPT_CHARS = 2500
END_IMAGE_OPTION = "end_image_url"  # what -o accepts for any model's end-frame field

# Letters, digits, '-', '_', '.' in '/'-separated segments; no segment may start
# with '.', so '.' and '..' segments (path traversal) can never match.
_ENDPOINT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(?:/[A-Za-z0-9][A-Za-z0-9_.-]*)+$")
_MAX_ENDPOINT_LEN = 200


@dataclass(frozen=True)
class Pricing:
    """An endpoint's price rule, with the rate that applies at the schema defaults."""

    rule: Mapping[str, Any]
    usd: float  # the rate at the defaults: per video, per second or per 1M tokens
    unit: str  # "video", "second" or "token"
    verified: str  # "verified", "unverified" or "unknown"

    def describe(self) -> str:
        return price_rules.describe(self.rule)


@dataclass(frozen=True, eq=False)
class ModelSpec:
    """How to call one fal image-to-video endpoint, what it accepts and what it costs."""

    name: str  # short name ("kling-2.5-turbo"), or the endpoint id for generic models
    endpoint_id: str
    title: str
    image_field: str = "image_url"
    end_image_field: str | None = None
    prompt_field: str = "prompt"
    input_schema: Mapping[str, Any] | None = None  # None: options passed through unchecked
    price_rule: Mapping[str, Any] | None = None
    video_path: tuple[str | int, ...] = ("video", "url")
    max_prompt_chars: int = DEFAULT_MAX_PROMPT_CHARS  # the limit, in prompt_unit
    prompt_unit: str = "characters"  # or "bytes": UTF-8 bytes, as PixVerse counts
    family: str = ""
    version: str = ""
    status: str = core.ACTIVE
    replacement: str | None = None
    audio_field: str | None = None
    read_on: str = ""
    entry: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def generic(self) -> bool:
        """True for an endpoint id the catalogue does not know (options unchecked, no price)."""
        return self.input_schema is None

    @property
    def defaults(self) -> dict[str, Any]:
        """fal's defaults for the fields i2vkit does not fill (what a price is computed on)."""
        return core.defaults(self.entry) if self.entry else {}

    @property
    def allowed_options(self) -> dict[str, Any] | None:
        """Option name -> schema property, without the fields i2vkit fills itself."""
        if self.input_schema is None:
            return None
        filled = {self.prompt_field, self.image_field}
        return {k: v for k, v in self.input_schema["properties"].items() if k not in filled}

    @property
    def pricing(self) -> Pricing | None:
        rule = self.price_rule
        if not rule or not rule.get("rates"):
            return None
        usd = price_rules.base_rate(rule, self.defaults)
        if usd is None:
            usd = rule["rates"][0]["usd"]
        return Pricing(rule, usd, rule.get("unit", "video"), rule.get("verified", "unknown"))

    def prompt_length(self, prompt: str) -> int:
        """A prompt's length in the unit the endpoint's limit is counted in.

        Why not always characters: PixVerse counts UTF-8 bytes, so a prompt of 1,500
        accented or CJK characters can be over its 2,048 limit and would fail on fal."""
        return len(prompt.encode("utf-8")) if self.prompt_unit == "bytes" else len(prompt)

    # -- status ------------------------------------------------------------------------

    def status_note(self) -> str | None:
        """A warning for a deprecated or unconfirmed endpoint; raises for a shut-down one."""
        replacement = ""
        if self.replacement:
            replacement = f" Use {active().name_of(self.replacement)} ({self.replacement})"
            replacement += " instead."
        if self.status == core.SHUT_DOWN:
            raise ModelError(
                f"Model {self.name} ({self.endpoint_id}) is shut down: fal no longer runs it, "
                f"so nothing was uploaded or submitted.{replacement}"
            )
        if self.status == core.DEPRECATED:
            return (
                f"{self.name} ({self.endpoint_id}) is deprecated or gone from fal's current "
                f"endpoint list.{replacement}"
            )
        if self.status == core.UNKNOWN:
            return (
                f"{self.name} ({self.endpoint_id}) is not confirmed in fal's current endpoint "
                "list; `i2vkit models --refresh` checks it with your key."
            )
        return None

    def not_found_error(self) -> ModelError:
        """The refusal for an endpoint fal answers 404 "Application not found" for (found by
        the run's preflight, before anything is uploaded), naming what to use instead."""
        cat = active()
        instead = self.replacement
        if instead is None and self.family in cat.families:
            pick = cat.families[self.family]
            instead = pick if pick != self.endpoint_id else None
        if instead:
            advice = f"Use {cat.name_of(instead)} ({instead}) instead."
        else:
            advice = "`i2vkit models` lists the models fal runs; pick one with --model."
        return ModelError(
            f"fal answers 404 'Application not found' for {self.endpoint_id} (model "
            f"{self.name}): fal no longer runs it, or never did. Nothing was uploaded or "
            f"submitted. {advice}"
        )

    # -- options -----------------------------------------------------------------------

    def validate_options(self, options: Mapping[str, Any] | None) -> dict[str, Any]:
        """``options`` checked against the endpoint's schema and coerced (``None`` drops one).

        Every problem is reported in one :class:`ModelError`, so a user fixes them all
        in one go. ``end_image_url`` names the end-frame field of any model that has one.
        """
        if options is None:
            options = {}
        if not isinstance(options, Mapping):
            raise ModelError(
                f"Options for model {self.name} must be a mapping of name to value "
                f"(e.g. {{'duration': '5'}}), not {type(options).__name__}."
            )
        given: dict[str, Any] = {}
        problems: list[str] = []
        for key, value in options.items():
            if not isinstance(key, str) or not key:
                problems.append(f"option names must be non-empty text; got {key!r}")
                continue
            declared = self.input_schema and key in self.input_schema["properties"]
            if key == END_IMAGE_OPTION and self.end_image_field and not declared:
                key = self.end_image_field
            if key in (self.image_field, self.prompt_field):
                source = "image" if key == self.image_field else "prompts file"
                problems.append(f"{key} is filled in by i2vkit from the {source}; remove it")
                continue
            if value is None:
                continue
            given[key] = value
        if self.input_schema is None:
            for key, value in given.items():
                try:
                    json.dumps(value)
                except (TypeError, ValueError):
                    problems.append(
                        f"{key}={value!r} cannot be sent as JSON; use text, numbers, "
                        "true/false, lists or mappings"
                    )
            checked = given
        else:
            checked, found = schemas.check(
                self.input_schema, given, filled={self.prompt_field, self.image_field}
            )
            problems += self._needs_problems(found)
        if problems:
            raise ModelError(self._problems_message(problems))
        return checked

    @property
    def needs(self) -> dict[str, str]:
        """Required inputs a folder batch cannot give (field -> an audio track, LoRA weights)."""
        return families.needs(self.entry) if self.entry else {}

    def _needs_problems(self, problems: list[str]) -> list[str]:
        """The schema's "X is required" for an input a folder batch cannot give, said so."""
        out = []
        for p in problems:
            field_name = p.split(" ", 1)[0]
            what = self.needs.get(field_name)
            if what and p.startswith(f"{field_name} is required"):
                p = (
                    f"{field_name} is required: {self.endpoint_id} needs {what}, which a folder "
                    f"of images and prompts cannot give; pass it with -o {field_name}=URL (the "
                    "same for every job), or pick another model"
                )
            out.append(p)
        return out

    def _problems_message(self, problems: list[str]) -> str:
        lines = "\n".join(f"  - {p}" for p in problems)
        hint = f"`i2vkit models {self.name}` lists every option with its allowed values."
        if any(self.end_image_field and self.end_image_field in p for p in problems):
            hint += " The end frame is given with --end-image PATH."
        return f"Model {self.name} ({self.endpoint_id}) cannot take these options:\n{lines}\n{hint}"

    def build_arguments(
        self,
        image_url: str,
        prompt: str,
        options: Mapping[str, Any] | None = None,
        end_image_url: str | None = None,
    ) -> dict[str, Any]:
        """The exact JSON input for one fal request: prompt, image, end image and options.

        ``end_image_url`` (the uploaded end frame) replaces a local path given as the
        end-image option; a local path is never sent.
        """
        if not isinstance(prompt, str) or not prompt.strip():
            raise ModelError(f"Model {self.name} needs a non-empty prompt.")
        if self.prompt_length(prompt) > self.max_prompt_chars:
            unit = "UTF-8 bytes" if self.prompt_unit == "bytes" else "characters"
            raise ModelError(
                f"Prompt of {self.prompt_length(prompt)} {unit} is longer than the "
                f"{self.max_prompt_chars} {unit} model {self.name} accepts; shorten it."
            )
        merged = self.validate_options(options)
        end = self.end_image_field
        if end_image_url is not None:
            if end is None:
                raise ModelError(f"Model {self.name} ({self.endpoint_id}) takes no end image.")
            merged[end] = end_image_url
        elif end and isinstance(merged.get(end), str) and not is_remote(merged[end]):
            raise ModelError(
                f"The end image {merged[end]} was not uploaded; run the batch again to upload it."
            )
        return {self.prompt_field: prompt, self.image_field: image_url, **merged}

    def estimate_cost(self, options: Mapping[str, Any] | None = None) -> float | None:
        """Estimated USD for one video with ``options``; None when no price is known.

        The end frame travels apart from the options (it is uploaded first) and no price
        depends on it, so a required one is not asked for here."""
        given = dict(options or {})
        end = self.end_image_field
        if end and end not in given and END_IMAGE_OPTION not in given:
            given[end] = "end-frame"
        merged = self.validate_options(given)
        merged.pop(end or "", None)
        return price_rules.estimate(self.price_rule, {**self.defaults, **merged})

    def video_url(self, result: Any) -> str:
        """The video URL in a fal result; raises :class:`FalError` saying what was there instead.

        Looks at :attr:`video_path` first, then the common shapes ``{"video": {"url"}}``,
        ``{"video": "<url>"}`` and ``{"videos": [{"url"}]}`` so an endpoint that
        moved its output does not lose a paid video.
        """
        if not isinstance(result, Mapping):
            raise FalError(
                f"Result from {self.endpoint_id} is {type(result).__name__}, not a JSON object; "
                "cannot find the video URL. Check the request in the fal dashboard.",
                error_type="bad_result",
            )
        candidates = [self.video_path, ("video", "url"), ("video",), ("videos", 0, "url")]
        for path in dict.fromkeys(candidates):
            value: Any = result
            for step in path:
                in_list = isinstance(step, int) and isinstance(value, list) and len(value) > step
                in_map = isinstance(step, str) and isinstance(value, Mapping) and step in value
                if in_list or in_map:
                    value = value[step]
                else:
                    value = None
                    break
            if isinstance(value, str) and value.strip():
                return value
        where = ".".join(str(s) for s in self.video_path)
        keys = ", ".join(sorted(map(str, result))) or "nothing"
        raise FalError(
            f"Result from {self.endpoint_id} has no video URL at {where!r} (it holds: {keys}). "
            "The model's output format may have changed; the request id in the jobs table "
            "lets you fetch it again once fixed.",
            error_type="missing_video",
        )


def spec_for(entry: Mapping[str, Any], name: str | None = None) -> ModelSpec:
    """The :class:`ModelSpec` of one catalogue entry."""
    props = entry["input"]["properties"]
    prompt_max = props.get("prompt", {}).get("maxLength")
    limit = entry.get("prompt_limit") or {}  # a limit fal counts in bytes wins over maxLength
    if limit.get("max"):
        prompt_max = limit["max"]
    return ModelSpec(
        name=name or entry["name"],
        endpoint_id=entry["endpoint_id"],
        title=entry["display_name"],
        image_field=entry["image_field"],
        end_image_field=entry.get("end_image_field"),
        input_schema=entry["input"],
        price_rule=entry.get("price"),
        video_path=tuple(entry.get("video_path") or ("video", "url")),
        max_prompt_chars=int(prompt_max) if prompt_max else DEFAULT_MAX_PROMPT_CHARS,
        prompt_unit="bytes" if limit.get("unit") == "bytes" else "characters",
        family=entry["family"],
        version=entry["version"],
        status=entry.get("status", core.ACTIVE),
        replacement=entry.get("replacement"),
        audio_field=entry.get("audio_field"),
        read_on=entry.get("read_on", ""),
        entry=entry,
    )


def list_models() -> list[ModelSpec]:
    """Every catalogued endpoint, in catalogue order, for `i2vkit models` and menus."""
    return [spec_for(e) for e in active().entries]


def known_names() -> list[str]:
    """Every short and versioned name :func:`get_model` accepts."""
    return sorted(active().names)


def is_valid_endpoint_id(endpoint_id: str) -> bool:
    """True when ``endpoint_id`` is safe to put in a URL path and a file name stem."""
    return (
        len(endpoint_id) <= _MAX_ENDPOINT_LEN
        and ".." not in endpoint_id
        and bool(_ENDPOINT_RE.fullmatch(endpoint_id))
    )


def get_model(name: str | ModelSpec) -> ModelSpec:
    """Look up a model by family name (``veo``), versioned name (``veo-3.1-fast``, any
    case) or fal endpoint id.

    A family name means the version :data:`i2vkit.catalogue.families.RULE` picks (the
    newest active, non-preview, general one fal lists). A catalogued endpoint id
    returns its full spec; any other well-formed id (``owner/model/...``) returns a
    generic spec with the ``image_url``/``prompt`` mapping, unchecked options and no
    price. Raises :class:`ModelError` for an unknown name (with close matches) or an
    unsafe endpoint id such as ``../../x``, which would otherwise end up in request URLs
    and file names.
    """
    if isinstance(name, ModelSpec):
        return name
    cat = active()
    if not isinstance(name, str) or not name.strip():
        raise ModelError(
            "No model given. Use a family name such as 'wan' or 'kling' (`i2vkit models` "
            "lists every model), or a fal endpoint id."
        )
    raw = name.strip()
    if "/" not in raw and "\\" not in raw:
        entry = cat.lookup(raw)
        if entry is None:
            raise cat.unknown_name(raw)
        return spec_for(entry, raw.lower() if raw.lower() in cat.names else None)
    if looks_like_url(raw):
        m = re.search(r"/models/([^?#]+?)(?:/(?:api|playground|llms\.txt))?/?$", raw)
        hint = f" Use the endpoint id {m.group(1)!r}." if m else ""
        raise ModelError(
            f"Model {raw!r} is a web address, not a model name.{hint} Endpoint ids look "
            "like 'fal-ai/wan-i2v'."
        )
    if not is_valid_endpoint_id(raw):
        raise ModelError(
            f"Model {raw!r} is not a valid fal endpoint id: use letters, digits, '-', '_' "
            "and '.' in '/'-separated parts, such as 'fal-ai/wan-i2v' (no leading '/', "
            "no '..', no spaces or backslashes)."
        )
    entry = cat.by_id.get(raw)
    if entry is not None:
        return spec_for(entry)
    return ModelSpec(name=raw, endpoint_id=raw, title=raw)


def safe_model_slug(name: str) -> str:
    """A file-name-safe form of a model name or endpoint id (``fal-ai/wan-i2v`` -> ``fal-ai-wan-i2v``).

    Only ``[A-Za-z0-9._-]``, no separators, no ``..`` and no leading dot, so it
    can go into download file names without escaping the download folder.
    """
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", str(name))
    slug = re.sub(r"\.{2,}", ".", slug)
    slug = re.sub(r"-{2,}", "-", slug)
    slug = slug.strip(".-_")[:80].strip(".-_")
    return slug or "model"
