"""The image-to-video models i2vkit knows by short name, and how to talk to each.

Why a registry instead of passing endpoint ids and raw JSON around:

* every fal model names its inputs a little differently, and a typo in an option
  only shows up as a 422 *per job*, after the upload; validating options here
  fails once, before anything is uploaded or paid for;
* a batch needs a cost estimate before it starts, so each model carries its
  published price with the date it was read (:data:`PRICES_READ_ON`);
* the video URL sits at a model-specific place in the result.

Prices and schemas come from ``shared/reference/fal-protocol.md`` section 4
(fal ``llms.txt`` pages, fal-rs and nodetool codegen), read on 2026-11-25. They
drift: an estimate is a guide, not a quote. Any fal endpoint id (``fal-ai/...``)
also works through :func:`get_model`, with the default ``image_url``/``prompt``
mapping, options passed through unchecked, and no price.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import FalError, ModelError

PRICES_READ_ON = "2026-11-25"
REFERENCE = "shared/reference/fal-protocol.md section 4"
DEFAULT_MAX_PROMPT_CHARS = 2500

# Letters, digits, '-', '_', '.' in '/'-separated segments; no segment may start
# with '.', so '.' and '..' segments (path traversal) can never match.
_ENDPOINT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(?:/[A-Za-z0-9][A-Za-z0-9_.-]*)+$")
_MAX_ENDPOINT_LEN = 200


# ---------------------------------------------------------------- option schemas


@dataclass(frozen=True)
class Option:
    """What one model option accepts. Values from a CLI arrive as strings and are coerced."""

    type: type  # str, int, float or bool
    choices: tuple[Any, ...] | None = None
    min: float | None = None
    max: float | None = None
    help: str = ""

    def describe(self) -> str:
        """Human-readable accepted values, for error messages and ``--help`` tables."""
        if self.choices is not None:
            return ", ".join(json.dumps(c) for c in self.choices)
        kind = {str: "text", int: "a whole number", float: "a number", bool: "true or false"}[
            self.type
        ]
        if self.min is not None and self.max is not None:
            return f"{kind} from {_num(self.min)} to {_num(self.max)}"
        if self.min is not None:
            return f"{kind} >= {_num(self.min)}"
        if self.max is not None:
            return f"{kind} <= {_num(self.max)}"
        return kind


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off"}


def _coerce(model: str, name: str, opt: Option, value: Any) -> Any:
    """Return ``value`` converted to what ``opt`` accepts, or raise ModelError saying what does."""

    def bad() -> ModelError:
        return ModelError(
            f"Option {name}={value!r} is not valid for model {model}: it accepts "
            f"{opt.describe()}. Change or remove the option."
        )

    if opt.type is bool:
        if isinstance(value, bool):
            out: Any = value
        elif isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            out = value.strip().lower() in _TRUE
        else:
            raise bad()
    elif opt.type is int:
        if isinstance(value, bool):
            raise bad()
        whole_float = isinstance(value, float) and value.is_integer()
        int_text = isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d+\s*", value)
        if isinstance(value, int) or whole_float or int_text:
            out = int(value)
        else:
            raise bad()
    elif opt.type is float:
        if isinstance(value, bool):
            raise bad()
        if isinstance(value, int | float):
            out = float(value)
        elif isinstance(value, str):
            try:
                out = float(value)
            except ValueError:
                raise bad() from None
        else:
            raise bad()
        if not math.isfinite(out):
            raise bad()
    else:  # str
        if isinstance(value, str):
            out = value
        elif (
            opt.choices is not None
            and isinstance(value, int | float)
            and not isinstance(value, bool)
        ):
            out = _num(value)  # duration=5 -> "5"
        else:
            raise bad()

    if opt.choices is not None:
        if out in opt.choices:
            return out
        if isinstance(out, str):
            # Be forgiving about case ("768p") and a missing/extra seconds suffix ("8" vs "8s").
            folded = out.strip().lower()
            for c in opt.choices:
                if isinstance(c, str) and folded in (c.lower(), c.lower().removesuffix("s")):
                    return c
                if isinstance(c, str) and folded.removesuffix("s") == c.lower():
                    return c
        raise bad()
    if (opt.min is not None and out < opt.min) or (opt.max is not None and out > opt.max):
        raise bad()
    return out


# ---------------------------------------------------------------------- pricing


@dataclass(frozen=True)
class Multiplier:
    """A price factor applied when an option has a value (``equals``) or exceeds ``above``."""

    option: str
    factor: float
    equals: Any = None
    above: float | None = None

    def applies(self, args: Mapping[str, Any]) -> bool:
        if self.option not in args:
            return False
        value = args[self.option]
        if self.above is not None:
            return isinstance(value, int | float) and value > self.above
        return value == self.equals


@dataclass(frozen=True)
class Pricing:
    """A model's published price, kept with where and when it was read.

    ``unit="video"``: ``usd`` per video. ``unit="second"``: ``usd`` per second of
    video; the seconds come from ``frames_option`` / fps (when the price is per
    frame count), else from the ``duration`` option ("5", "8s"), else
    ``default_seconds``. ``rate_option``/``rates`` replace ``usd`` by an option's
    value (resolution, audio on/off); ``usd`` itself is the rate for the model's
    server-side default. ``multipliers`` then apply.
    """

    unit: Literal["video", "second"]
    usd: float
    source: str
    read_on: str = PRICES_READ_ON
    default_seconds: float | None = None
    rate_option: str | None = None
    rates: Mapping[str, float] = field(default_factory=dict)
    multipliers: tuple[Multiplier, ...] = ()
    duration_option: str = "duration"
    frames_option: str | None = None
    fps_option: str | None = None
    default_fps: float | None = None
    fixed_fps: float | None = None  # price computed on this fps whatever the output fps
    default_frames: int | None = None
    notes: str = ""

    def seconds(self, args: Mapping[str, Any]) -> float | None:
        """Video length the price is computed on, or None when it cannot be known."""
        if self.frames_option is not None:
            frames = args.get(self.frames_option, self.default_frames)
            fps = self.fixed_fps or args.get(self.fps_option or "", self.default_fps)
            if frames and fps:
                return float(frames) / float(fps)
        if self.duration_option in args:
            m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*s?\s*", str(args[self.duration_option]))
            if m:
                return float(m.group(1))
        return self.default_seconds

    def estimate(self, args: Mapping[str, Any]) -> float | None:
        """USD for one video made with ``args``; None when the length is unknown."""
        rate = self.usd
        if self.rate_option is not None and self.rate_option in args:
            key = args[self.rate_option]
            key = str(key).lower() if isinstance(key, bool) else str(key)
            rate = self.rates.get(key, self.usd)
        if self.unit == "second":
            secs = self.seconds(args)
            if secs is None:
                return None
            rate *= secs
        for m in self.multipliers:
            if m.applies(args):
                rate *= m.factor
        return round(rate, 4)

    def describe(self) -> str:
        """One line such as "$0.056 per second (read 2026-11-25)"."""
        unit = "per video" if self.unit == "video" else "per second"
        rates = ""
        if self.rates:
            rates = " (" + ", ".join(f"{k}: ${v}" for k, v in self.rates.items()) + ")"
        return f"${self.usd} {unit}{rates}, read {self.read_on} from {self.source}"


# ------------------------------------------------------------------- model spec


@dataclass(frozen=True)
class ModelSpec:
    """How to call one fal image-to-video endpoint and what it costs."""

    name: str  # short name ("kling"), or the endpoint id for generic models
    endpoint_id: str
    title: str
    image_field: str = "image_url"
    prompt_field: str = "prompt"
    defaults: Mapping[str, Any] = field(default_factory=dict)  # sent unless overridden
    # option name -> Option; None means "any option, passed through unchecked" (generic models)
    allowed_options: Mapping[str, Option] | None = field(default_factory=dict)
    pricing: Pricing | None = None
    video_path: tuple[str | int, ...] = ("video", "url")
    max_prompt_chars: int = DEFAULT_MAX_PROMPT_CHARS
    aliases: tuple[str, ...] = ()
    # (option values that may not be combined, why) e.g. pixverse 1080p is 5 s only
    forbidden: tuple[tuple[Mapping[str, Any], str], ...] = ()
    notes: str = ""

    def __hash__(self) -> int:  # dict fields make the generated hash fail
        return hash((self.name, self.endpoint_id))

    @property
    def generic(self) -> bool:
        """True for an endpoint id that is not in the registry (options unchecked, no price)."""
        return self.allowed_options is None

    def validate_options(self, options: Mapping[str, Any] | None) -> dict[str, Any]:
        """Defaults merged with ``options``, each checked and coerced. ``None`` drops a default."""
        if options is None:
            options = {}
        if not isinstance(options, Mapping):
            raise ModelError(
                f"Options for model {self.name} must be a mapping of name to value "
                f"(e.g. {{'duration': '5'}}), not {type(options).__name__}."
            )
        merged: dict[str, Any] = dict(self.defaults)
        for key, value in options.items():
            if not isinstance(key, str) or not key:
                raise ModelError(
                    f"Option names for model {self.name} must be non-empty text; got {key!r}."
                )
            if key in (self.image_field, self.prompt_field):
                raise ModelError(
                    f"Option {key!r} is filled in by i2vkit from the "
                    f"{'image' if key == self.image_field else 'prompts file'}; remove it from "
                    f"the options for model {self.name}."
                )
            if value is None:
                merged.pop(key, None)
                continue
            if self.allowed_options is None:
                try:
                    json.dumps(value)
                except (TypeError, ValueError):
                    raise ModelError(
                        f"Option {key}={value!r} for model {self.name} cannot be sent as JSON; "
                        "use text, numbers, true/false, lists or mappings."
                    ) from None
                merged[key] = value
                continue
            opt = self.allowed_options.get(key)
            if opt is None:
                raise ModelError(self._unknown_option_message(key))
            merged[key] = _coerce(self.name, key, opt, value)
        for combo, why in self.forbidden:
            if all(merged.get(k) == v for k, v in combo.items()):
                shown = ", ".join(f"{k}={v!r}" for k, v in combo.items())
                raise ModelError(f"Model {self.name} cannot combine {shown}: {why}.")
        return merged

    def _unknown_option_message(self, key: str) -> str:
        known = sorted(self.allowed_options or {})
        close = difflib.get_close_matches(key, known, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        listing = ", ".join(known) if known else "(none)"
        return (
            f"Model {self.name} ({self.endpoint_id}) has no option {key!r}.{hint} "
            f"Accepted options: {listing}. To send options i2vkit does not know, use the "
            f"full endpoint id {self.endpoint_id!r} as the model name."
        )

    def build_arguments(
        self, image_url: str, prompt: str, options: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """The exact JSON input for one fal request: image, prompt, defaults and options.

        Raises :class:`ModelError` for unknown options, bad values, an empty
        prompt or one over :attr:`max_prompt_chars`.
        """
        if not isinstance(image_url, str) or not image_url.strip():
            raise ModelError(f"Model {self.name} needs an image URL; got {image_url!r}.")
        if not isinstance(prompt, str) or not prompt.strip():
            raise ModelError(f"Model {self.name} needs a non-empty prompt.")
        if len(prompt) > self.max_prompt_chars:
            raise ModelError(
                f"Prompt of {len(prompt)} characters is longer than the {self.max_prompt_chars} "
                f"model {self.name} accepts; shorten it."
            )
        merged = self.validate_options(options)
        return {self.prompt_field: prompt, self.image_field: image_url, **merged}

    def estimate_cost(self, options: Mapping[str, Any] | None = None) -> float | None:
        """Estimated USD for one video with ``options``; None when no price is known."""
        merged = self.validate_options(options)
        if self.pricing is None:
            return None
        return self.pricing.estimate(merged)

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


# --------------------------------------------------------------------- registry

_S, _I, _F, _B = str, int, float, bool
_SEED = Option(_I, min=0, help="fixed seed for repeatable results")
_NEG = Option(_S, help="what the video should not show")


def _src(detail: str) -> str:
    return f"{REFERENCE} ({detail})"


_REGISTRY: list[ModelSpec] = [
    ModelSpec(
        name="wan",
        endpoint_id="fal-ai/wan-i2v",
        title="Wan 2.1 image-to-video",
        defaults={"resolution": "720p"},
        allowed_options={
            "negative_prompt": _NEG,
            "num_frames": Option(_I, min=81, max=100),
            "frames_per_second": Option(_I, min=5, max=24),
            "resolution": Option(_S, ("480p", "720p")),
            "num_inference_steps": Option(_I, min=1, max=100),
            "guide_scale": Option(_F, min=0),
            "shift": Option(_F, min=0),
            "seed": _SEED,
            "enable_safety_checker": Option(_B),
            "enable_prompt_expansion": Option(_B),
            "acceleration": Option(_S, ("none", "regular")),
            "aspect_ratio": Option(_S, ("auto", "16:9", "9:16", "1:1")),
        },
        pricing=Pricing(
            unit="video",
            usd=0.40,
            rate_option="resolution",
            rates={"480p": 0.20, "720p": 0.40},
            multipliers=(Multiplier("num_frames", 1.25, above=81),),
            source=_src("fal llms.txt"),
            notes="more than 81 frames costs 1.25x",
        ),
        notes="720p is sent by default so the estimate matches what is billed.",
    ),
    ModelSpec(
        name="wan-2.2",
        endpoint_id="fal-ai/wan/v2.2-a14b/image-to-video",
        title="Wan 2.2 A14B image-to-video",
        aliases=("wan2.2", "wan22"),
        allowed_options={
            "num_frames": Option(_I, min=17, max=161),
            "frames_per_second": Option(_I, min=4, max=60),
            "resolution": Option(_S, ("480p", "580p", "720p")),
            "aspect_ratio": Option(_S, ("auto", "16:9", "9:16", "1:1")),
            "negative_prompt": _NEG,
            "seed": _SEED,
            "num_inference_steps": Option(_I, min=1, max=100),
            "guidance_scale": Option(_F, min=0),
            "guidance_scale_2": Option(_F, min=0),
            "shift": Option(_F, min=0),
            "acceleration": Option(_S, ("none", "regular")),
            "end_image_url": Option(_S),
            "num_interpolated_frames": Option(_I, min=0),
            "interpolator_model": Option(_S, ("film", "rife", "none")),
            "adjust_fps_for_interpolation": Option(_B),
            "video_quality": Option(_S),
            "video_write_mode": Option(_S),
            "enable_safety_checker": Option(_B),
            "enable_prompt_expansion": Option(_B),
        },
        pricing=Pricing(
            unit="second",
            usd=0.08,
            rate_option="resolution",
            rates={"720p": 0.08, "580p": 0.06, "480p": 0.04},
            frames_option="num_frames",
            default_frames=81,
            fixed_fps=16,
            source=_src("fal llms.txt"),
            notes="per second of video at 16 fps: seconds = num_frames / 16 (81 frames ~ 5.06 s)",
        ),
    ),
    ModelSpec(
        name="kling",
        endpoint_id="fal-ai/kling-video/v2.1/standard/image-to-video",
        title="Kling 2.1 Standard image-to-video",
        aliases=("kling-2.1",),
        defaults={"duration": "5"},
        allowed_options={
            "duration": Option(_S, ("5", "10")),
            "negative_prompt": _NEG,
            "cfg_scale": Option(_F, min=0, max=1),
        },
        pricing=Pricing(
            unit="second",
            usd=0.056,
            default_seconds=5,
            source=_src("fal llms.txt: $0.28 per 5 s + $0.056 per extra second"),
        ),
        max_prompt_chars=2500,
    ),
    ModelSpec(
        name="kling-1.6",
        endpoint_id="fal-ai/kling-video/v1.6/standard/image-to-video",
        title="Kling 1.6 Standard image-to-video",
        aliases=("kling1.6",),
        defaults={"duration": "5"},
        allowed_options={
            "duration": Option(_S, ("5", "10")),
            "negative_prompt": _NEG,
            "cfg_scale": Option(_F, min=0, max=1),
        },
        pricing=Pricing(
            unit="second",
            usd=0.045,
            default_seconds=5,
            source=_src("third-party reseller list and older fal llms.txt"),
        ),
        max_prompt_chars=2500,
        notes="aspect_ratio appears only in the 2025 fal-rs schema, so it is not offered.",
    ),
    ModelSpec(
        name="minimax",
        endpoint_id="fal-ai/minimax/hailuo-02/standard/image-to-video",
        title="MiniMax Hailuo-02 Standard image-to-video",
        aliases=("hailuo", "hailuo-02"),
        defaults={"duration": "6", "resolution": "768P"},
        allowed_options={
            "duration": Option(_S, ("6", "10")),
            "resolution": Option(_S, ("512P", "768P")),
            "prompt_optimizer": Option(_B),
            "end_image_url": Option(_S),
        },
        pricing=Pricing(
            unit="second",
            usd=0.045,
            rate_option="resolution",
            rates={"768P": 0.045, "512P": 0.017},
            default_seconds=6,
            source=_src("fal llms.txt; 512P rate approximate"),
        ),
        max_prompt_chars=2000,
    ),
    ModelSpec(
        name="ltx",
        endpoint_id="fal-ai/ltxv-13b-098-distilled/image-to-video",
        title="LTX-Video 13B 0.9.8 distilled image-to-video",
        allowed_options={
            "num_frames": Option(_I, min=9, max=1441),
            "frame_rate": Option(_I, min=1, max=60),
            "resolution": Option(_S, ("480p", "720p")),
            "aspect_ratio": Option(_S, ("auto", "16:9", "9:16", "1:1")),
            "enable_detail_pass": Option(_B),
            "negative_prompt": _NEG,
            "seed": _SEED,
        },
        pricing=Pricing(
            unit="second",
            usd=0.02,
            frames_option="num_frames",
            fps_option="frame_rate",
            default_frames=121,
            default_fps=24,
            multipliers=(Multiplier("enable_detail_pass", 2.0, equals=True),),
            source=_src("fal llms.txt: $0.02 per second at 24 fps"),
            notes="seconds = num_frames / frame_rate (121/24 ~ 5 s); detail pass costs 2x",
        ),
    ),
    ModelSpec(
        name="veo",
        endpoint_id="fal-ai/veo3/fast/image-to-video",
        title="Google Veo 3 Fast image-to-video",
        aliases=("veo3-fast",),
        defaults={"duration": "8s", "generate_audio": True},
        allowed_options={
            "duration": Option(_S, ("4s", "6s", "8s")),
            "resolution": Option(_S, ("720p", "1080p")),
            "aspect_ratio": Option(_S, ("auto", "16:9", "9:16")),
            "generate_audio": Option(_B),
            "auto_fix": Option(_B),
        },
        pricing=Pricing(
            unit="second",
            usd=0.15,
            rate_option="generate_audio",
            rates={"true": 0.15, "false": 0.10},
            default_seconds=8,
            source=_src("fal llms.txt: veo3 fast $0.10/s silent, $0.15/s with audio"),
        ),
        notes=(
            "'veo' is the Fast variant: a batch multiplies the price, and full Veo 3 costs "
            "2-2.7x more ($3.20 vs $1.20 for 8 s with audio). Use 'veo3' for full quality."
        ),
    ),
    ModelSpec(
        name="veo3",
        endpoint_id="fal-ai/veo3/image-to-video",
        title="Google Veo 3 image-to-video",
        defaults={"duration": "8s", "generate_audio": True},
        allowed_options={
            "duration": Option(_S, ("4s", "6s", "8s")),
            "resolution": Option(_S, ("720p", "1080p")),
            "aspect_ratio": Option(_S, ("auto", "16:9", "9:16")),
            "generate_audio": Option(_B),
            "auto_fix": Option(_B),
        },
        pricing=Pricing(
            unit="second",
            usd=0.40,
            rate_option="generate_audio",
            rates={"true": 0.40, "false": 0.20},
            default_seconds=8,
            source=_src("fal llms.txt: $0.20/s silent, $0.40/s with audio"),
        ),
    ),
    ModelSpec(
        name="pixverse",
        endpoint_id="fal-ai/pixverse/v4.5/image-to-video",
        title="PixVerse v4.5 image-to-video",
        defaults={"resolution": "720p", "duration": "5"},
        allowed_options={
            "resolution": Option(_S, ("360p", "540p", "720p", "1080p")),
            "duration": Option(_S, ("5", "8")),
            "aspect_ratio": Option(_S, ("16:9", "4:3", "1:1", "3:4", "9:16")),
            "negative_prompt": _NEG,
            "style": Option(_S, ("anime", "3d_animation", "clay", "comic", "cyberpunk")),
            "seed": _SEED,
            "camera_movement": Option(_S),
        },
        forbidden=(({"resolution": "1080p", "duration": "8"}, "1080p videos are 5 seconds only"),),
        pricing=Pricing(
            unit="video",
            usd=0.20,
            rate_option="resolution",
            rates={"360p": 0.15, "540p": 0.15, "720p": 0.20, "1080p": 0.40},
            multipliers=(Multiplier("duration", 2.0, equals="8"),),
            source=_src("fal llms.txt: per 5 s video; 8 s costs 2x"),
        ),
        max_prompt_chars=2048,
    ),
    ModelSpec(
        name="luma",
        endpoint_id="fal-ai/luma-dream-machine/ray-2/image-to-video",
        title="Luma Ray 2 image-to-video",
        aliases=("ray-2", "ray2"),
        defaults={"resolution": "540p", "duration": "5s"},
        allowed_options={
            "aspect_ratio": Option(_S, ("16:9", "9:16", "4:3", "3:4", "21:9", "9:21")),
            "loop": Option(_B),
            "resolution": Option(_S, ("540p", "720p", "1080p")),
            "duration": Option(_S, ("5s", "9s")),
            "end_image_url": Option(_S),
        },
        pricing=Pricing(
            unit="video",
            usd=0.50,
            multipliers=(
                Multiplier("resolution", 2.0, equals="720p"),
                Multiplier("resolution", 4.0, equals="1080p"),
                Multiplier("duration", 2.0, equals="9s"),
            ),
            source=_src(
                "third-party price list: ~$0.50 per 5 s at 540p; 720p 2x, 1080p 4x, 9 s 2x"
            ),
            notes="third-party figure, not fal's own page: treat as approximate",
        ),
    ),
]

_BY_NAME: dict[str, ModelSpec] = {}
_BY_ENDPOINT: dict[str, ModelSpec] = {}
for _spec in _REGISTRY:
    for _key in (_spec.name, *_spec.aliases):
        assert _key.lower() not in _BY_NAME, f"duplicate model name {_key}"
        _BY_NAME[_key.lower()] = _spec
    _BY_ENDPOINT[_spec.endpoint_id] = _spec


def list_models() -> list[ModelSpec]:
    """The registered models, in a stable order, for ``--help``, docs and notebook menus."""
    return list(_REGISTRY)


def known_names() -> list[str]:
    """Every short name and alias :func:`get_model` accepts."""
    return sorted(_BY_NAME)


def is_valid_endpoint_id(endpoint_id: str) -> bool:
    """True when ``endpoint_id`` is safe to put in a URL path and a file name stem."""
    return (
        len(endpoint_id) <= _MAX_ENDPOINT_LEN
        and ".." not in endpoint_id
        and bool(_ENDPOINT_RE.fullmatch(endpoint_id))
    )


def get_model(name: str | ModelSpec) -> ModelSpec:
    """Look up a model by short name or alias (any case), or by fal endpoint id.

    A registered endpoint id returns its full spec; any other well-formed id
    (``owner/model/...``) returns a generic spec with the ``image_url``/``prompt``
    mapping, unchecked options and no price. Raises :class:`ModelError` for an
    unknown short name (listing the known ones) or an unsafe endpoint id such as
    ``../../x``, which would otherwise end up in request URLs and file names.
    """
    if isinstance(name, ModelSpec):
        return name
    if not isinstance(name, str) or not name.strip():
        raise ModelError(
            f"No model given. Use one of: {', '.join(known_names())}, or a fal endpoint id."
        )
    raw = name.strip()
    spec = _BY_NAME.get(raw.lower())
    if spec is not None:
        return spec
    if "/" in raw or "\\" in raw:
        if raw.lower().startswith(("http://", "https://")):
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
        if raw in _BY_ENDPOINT:
            return _BY_ENDPOINT[raw]
        return ModelSpec(
            name=raw,
            endpoint_id=raw,
            title=raw,
            allowed_options=None,
            pricing=None,
            notes="Not in i2vkit's registry: options are passed through unchecked and cost is unknown.",
        )
    close = difflib.get_close_matches(raw.lower(), known_names(), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ModelError(
        f"Unknown model {raw!r}.{hint} Known models: {', '.join(known_names())}. "
        "You can also pass a full fal endpoint id such as 'fal-ai/wan-i2v'."
    )


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
