"""Options checked against an endpoint's input schema, every problem of a batch at once.

Why check here and not let fal answer 422: fal validates per job, after the image was
uploaded and the job submitted; a batch of 200 jobs would fail 200 times. The schema
(fal's own OpenAPI input, kept in the catalogue) is checked once, before anything moves.

Values from a command line arrive as text ("10", "true") and are coerced to the type
the schema names; JSON values from Python are taken as they are when they fit.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Mapping
from typing import Any

from ..config import yes_no

_KIND = {
    "string": "text",
    "file": "a file's URL",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "array": "a JSON list",
    "object": "a JSON object",
}


def _num(x: Any) -> str:
    return str(int(x)) if isinstance(x, float) and x.is_integer() else str(x)


def _file_kind(name: str) -> str:
    """What a file field holds, by its name: an audio track's URL is not an image."""
    low = name.lower()
    for word, what in (("audio", "an audio file's URL"), ("video", "a video's URL")):
        if word in low:
            return what
    if "image" in low or "mask" in low or "frame" in low:
        return "an image's URL"
    return "a file's URL"


def describe(prop: Mapping[str, Any], name: str = "") -> str:
    """Accepted values of one field (``name``: which, so a file field says what file), as
    shown in errors and ``i2vkit models NAME``."""
    if prop.get("enum") is not None:
        return "one of " + ", ".join(json.dumps(v) for v in prop["enum"])
    kind = _KIND.get(prop.get("type", "string"), prop.get("type", "text"))
    if prop.get("type") == "file":
        kind = _file_kind(name)
    lo, hi = prop.get("minimum"), prop.get("maximum")
    if lo is not None and hi is not None:
        return f"{kind} from {_num(lo)} to {_num(hi)}"
    if lo is not None:
        return f"{kind} >= {_num(lo)}"
    if hi is not None:
        return f"{kind} <= {_num(hi)}"
    if prop.get("maxLength") is not None:
        return f"{kind}, at most {prop['maxLength']} characters"
    return kind


class _Bad(Exception):
    pass


def _coerce_scalar(kind: str, value: Any) -> Any:
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        answer = yes_no(value) if isinstance(value, str) else None
        if answer is not None:
            return answer
        raise _Bad
    if kind == "integer":
        if isinstance(value, bool):
            raise _Bad
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d+\s*", value):
            return int(value)
        raise _Bad
    if kind == "number":
        if isinstance(value, bool):
            raise _Bad
        try:
            out = float(value) if isinstance(value, str | int | float) else None
        except ValueError:
            raise _Bad from None
        if out is None or not math.isfinite(out):
            raise _Bad
        return int(out) if isinstance(value, int) else out
    if kind in ("array", "object"):
        want = list if kind == "array" else dict
        if isinstance(value, want):
            return value
        if isinstance(value, str):
            try:
                parsed = json.loads(value)
            except ValueError:
                raise _Bad from None
            if isinstance(parsed, want):
                return parsed
        raise _Bad
    # string / file
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _num(value)  # duration=5 -> "5" where the schema wants text
    raise _Bad


def _match_enum(value: Any, enum: list[Any]) -> Any:
    """The enum member ``value`` means, forgiving case and a seconds suffix ("8" for "8s")."""
    if value in enum and isinstance(value, bool) == any(isinstance(e, bool) for e in enum):
        return value
    text = str(value).strip().lower()
    for member in enum:
        m = str(member).lower()
        if text in (m, m.removesuffix("s")) or text.removesuffix("s") == m:
            return member
    raise _Bad


def coerce(name: str, prop: Mapping[str, Any], value: Any) -> tuple[Any, str | None]:
    """(value converted to what the field accepts, None) or (None, what is wrong)."""
    kind = prop.get("type", "string")
    try:
        if prop.get("enum") is not None:
            enum = list(prop["enum"])
            if kind in ("integer", "number") and isinstance(value, str):
                value = _coerce_scalar(kind, value)
            out = _match_enum(value, enum)
        else:
            out = _coerce_scalar(kind, value)
    except _Bad:
        return None, f"{name}={value!r}: expected {describe(prop, name)}"
    lo, hi = prop.get("minimum"), prop.get("maximum")
    number = isinstance(out, int | float) and not isinstance(out, bool)
    if number and ((lo is not None and out < lo) or (hi is not None and out > hi)):
        return None, f"{name}={value!r}: out of range, expected {describe(prop, name)}"
    limit = prop.get("maxLength")
    if isinstance(out, str) and limit is not None and len(out) > limit:
        return None, f"{name}: {len(out)} characters, at most {prop['maxLength']} allowed"
    return out, None


def unknown_option(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=3)
    hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
    return f"no option {name!r}{hint}"


def check(
    schema: Mapping[str, Any],
    options: Mapping[str, Any],
    *,
    filled: set[str],
) -> tuple[dict[str, Any], list[str]]:
    """Options checked against ``schema`` (``properties``/``required``).

    ``filled`` are the fields i2vkit fills itself (prompt, image, end image): they are not
    required from the options. Returns the coerced options and a list of problems (all
    of them, so one run shows everything to fix).
    """
    props: Mapping[str, Any] = schema.get("properties", {})
    out: dict[str, Any] = {}
    problems: list[str] = []
    for name, value in options.items():
        prop = props.get(name)
        if prop is None:
            problems.append(unknown_option(name, sorted(set(props) - filled)))
            continue
        coerced, problem = coerce(name, prop, value)
        if problem:
            problems.append(problem)
        else:
            out[name] = coerced
    for name in schema.get("required", []):
        if name not in filled and name not in out and "default" not in props.get(name, {}):
            problems.append(f"{name} is required: {describe(props.get(name, {}), name)}")
    return out, problems


_V1_TYPES = {  # pydantic v1 names, as fal's 422 bodies carry them
    "string": ("str", "str type expected"),
    "file": ("str", "str type expected"),
    "boolean": ("bool", "value could not be parsed to a boolean"),
    "integer": ("integer", "value is not a valid integer"),
    "number": ("float", "value is not a valid float"),
    "array": ("list", "value is not a valid list"),
    "object": ("dict", "value is not a valid dict"),
}


def payload_problems(schema: Mapping[str, Any], payload: Mapping[str, Any]) -> list[tuple]:
    """fal's 422 view of a submit body: (field, message, type) per problem, JSON types strict.

    Unlike :func:`check`, nothing is coerced: fal's validator gets JSON, so a string
    "5" where an integer is wanted is an error here, as it is on fal.
    """
    props: Mapping[str, Any] = schema.get("properties", {})
    problems: list[tuple] = []
    # fal's models declare the prompt first, so its error comes first too
    for name in sorted(schema.get("required", []), key=lambda n: (n != "prompt", n)):
        if payload.get(name) is None:
            problems.append((name, "field required", "value_error.missing"))
    for name, value in payload.items():
        prop = props.get(name)
        if prop is None or value is None:
            continue  # fal's input models ignore fields they do not declare
        kind = prop.get("type", "string")
        ok = {
            "string": isinstance(value, str),
            "file": isinstance(value, str),
            "boolean": isinstance(value, bool),
            "integer": isinstance(value, int) and not isinstance(value, bool),
            "number": isinstance(value, int | float) and not isinstance(value, bool),
            "array": isinstance(value, list),
            "object": isinstance(value, dict),
        }.get(kind, True)
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok:
            short, msg = _V1_TYPES.get(kind, (kind, f"{kind} expected"))
            problems.append((name, msg, f"type_error.{short}"))
        elif prop.get("enum") is not None and value not in prop["enum"]:
            allowed = ", ".join(repr(v) for v in prop["enum"])
            msg = f"value is not a valid enumeration member; permitted: {allowed}"
            problems.append((name, msg, "type_error.enum"))
        elif number and prop.get("minimum") is not None and value < prop["minimum"]:
            msg = f"ensure this value is greater than or equal to {prop['minimum']}"
            problems.append((name, msg, "value_error.number.not_ge"))
        elif number and prop.get("maximum") is not None and value > prop["maximum"]:
            msg = f"ensure this value is less than or equal to {prop['maximum']}"
            problems.append((name, msg, "value_error.number.not_le"))
    return problems
