"""A model's options as widgets generated from its input schema (notebook form only).

Why generated, not typed: every endpoint names and bounds its options differently
(``duration`` is "5"/"10" on one model and 1..15 on another), and the catalogue holds
fal's own schema for each. A widget per schema field shows the allowed values and the
default, and cannot hold a value fal would refuse, so the form's batch fails no 422.

The widget kind follows the field: a dropdown for an enum, a bounded number input for a
range (``minimum`` and ``maximum``), a plain number input for a number with a default, a
checkbox for a boolean, text for a string (and for a number with neither bounds nor
default, such as ``seed``: empty means "not sent"). Files, lists and objects have no
widget; they go in the form's free-text options.

Only values that differ from the field's starting value are sent (the schema default,
or "not sent" for a field without one), so the batch sends what the user changed and fal
applies its own defaults to the rest, as the CLI does.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..catalogue import schema as schemas
from ..models import ModelSpec
from .labels import described
from .vary_widgets import VaryControl, can_vary

NOT_SET = "(not set)"  # the enum entry for "let fal choose" when the schema has no default
SKIPPED_TYPES = {"file", "array", "object"}


def widget_kind(prop: Mapping[str, Any]) -> str | None:
    """The widget a schema field gets: enum, int_range, float_range, int, float, bool, text;
    None for a field the form leaves to the free-text options."""
    kind = prop.get("type", "string")
    if kind in SKIPPED_TYPES:
        return None
    if prop.get("enum") is not None:
        return "enum"
    bounded = prop.get("minimum") is not None and prop.get("maximum") is not None
    if kind in ("integer", "number"):
        short = "int" if kind == "integer" else "float"
        if bounded:
            return f"{short}_range"
        return short if prop.get("default") is not None else "text"
    if kind == "boolean":
        return "bool"
    return "text"


@dataclass
class OptionField:
    """One schema field's widget and the value that means "not changed" (not sent)."""

    name: str
    prop: Mapping[str, Any]
    kind: str
    widget: Any
    initial: Any
    vary: VaryControl | None = None  # its *vary* switch and values (None: cannot vary)

    def value(self) -> Any:
        """The value to send, or None when the field is left as it started (or varied)."""
        if self.vary is not None and self.vary.values() is not None:
            return None
        value = self.widget.value
        if self.kind == "text" and value == "":
            return None
        if value == self.initial and type(value) is type(self.initial):
            return None
        return value


def _hint(prop: Mapping[str, Any], name: str = "") -> str:
    default = prop.get("default")
    text = json.dumps(default)
    text = text if len(text) <= 40 else text[:37] + '..."'  # a long negative prompt
    shown = "not sent unless set" if default is None else f"default {text}"
    if prop.get("enum") is None:
        shown = f"{schemas.describe(prop, name)}; {shown}"
    return shown


def tooltip(name: str, prop: Mapping[str, Any]) -> str:
    """The label's tooltip: the schema's own description of the field, else what it holds."""
    text = str(prop.get("description") or "").strip()
    return text or f"{name}: {_hint(prop)}"


def _make(name: str, prop: Mapping[str, Any], kind: str, style: dict, preset: Any) -> OptionField:
    import ipywidgets as w

    default = prop.get("default")
    common = {
        **described(name, tooltip(name, prop)),
        "style": style,
        "layout": w.Layout(width="400px"),
    }
    if kind == "enum":
        enum = list(prop["enum"])
        options = [(f"{v} (default)" if v == default else str(v), v) for v in enum]
        initial = default if default in enum else None
        if initial is None:
            options.insert(0, (NOT_SET, None))
        widget = w.Dropdown(options=options, value=initial, **common)
    elif kind in ("int_range", "float_range", "int", "float"):
        integer = kind.startswith("int")
        lo, hi = prop.get("minimum"), prop.get("maximum")
        # no number to start from (an unbounded field with a non-numeric default): 0
        start = default if isinstance(default, int | float) else lo if lo is not None else 0
        start = int(start) if integer else float(start)
        if kind.endswith("range"):
            cls = w.BoundedIntText if integer else w.BoundedFloatText
            widget = cls(value=start, min=lo, max=hi, **common)
        else:
            cls = w.IntText if integer else w.FloatText
            widget = cls(value=start, **common)
        initial = start
    elif kind == "bool":
        initial = bool(default) if isinstance(default, bool) else False
        widget = w.Checkbox(value=initial, **common)  # indented: lined up with the rest
    else:
        initial = default if isinstance(default, str) else ""
        widget = w.Text(
            value=initial,
            placeholder=schemas.describe(prop, name),
            continuous_update=True,  # every key press; the form redraws the plan per pause
            **common,
        )
    field = OptionField(name, prop, kind, widget, initial)
    if preset is not None:
        field.widget.value = preset
    if can_vary(kind, prop):
        field.vary = VaryControl(name, kind, prop, widget)
    return field


class OptionWidgets:
    """The option widgets of one model; ``values()`` is what the batch sends.

    ``preset`` (options from the environment or the command line, as text) fills the
    widgets it fits; :attr:`leftover` keeps the rest for the free-text options field.
    """

    def __init__(self, model: ModelSpec, preset: Mapping[str, Any] | None = None):
        import ipywidgets as w

        self.model = model
        self.fields: dict[str, OptionField] = {}
        self.leftover: dict[str, Any] = dict(preset or {})
        style = {"description_width": "150px"}
        rows = []
        for name, prop in (model.allowed_options or {}).items():
            kind = widget_kind(prop)
            if kind is None or name == model.end_image_field:
                continue
            given = None
            if name in self.leftover:
                coerced, problem = schemas.coerce(name, prop, self.leftover[name])
                if problem is None and self._fits(kind, prop, coerced):
                    given = coerced
                    del self.leftover[name]
            if kind == "text" and given is not None:
                given = str(given)
            field = _make(name, prop, kind, style, given)
            self.fields[name] = field
            hint = w.HTML(f"<span style='color:#777;font-size:12px'>{_hint(prop, name)}</span>")
            if field.vary is None:
                rows.append(w.HBox([field.widget, hint]))
            else:
                rows += [w.HBox([field.widget, field.vary.switch, hint]), field.vary.box]
        self.widget = w.VBox(rows)

    @staticmethod
    def _fits(kind: str, prop: Mapping[str, Any], value: Any) -> bool:
        if kind == "enum":
            return value in prop["enum"]
        if kind == "bool":
            return isinstance(value, bool)
        if kind == "text":
            return True  # shown as typed (a number without bounds or default, e.g. a seed)
        return isinstance(value, int | float) and not isinstance(value, bool)

    def values(self) -> dict[str, Any]:
        """The options the user changed from their starting values, typed as the schema says."""
        out = {}
        for name, field in self.fields.items():
            value = field.value()
            if value is not None:
                out[name] = value
        return out

    def vary_values(self) -> dict[str, list[str]]:
        """The options varied with their *vary* switch: name -> values, as ``--vary``."""
        out = {}
        for name, field in self.fields.items():
            values = field.vary.values() if field.vary is not None else None
            if values is not None:
                out[name] = values
        return out

    def can_hold(self, name: str, values: list[str]) -> bool:
        """Whether the *vary* values of option ``name`` can show ``values``."""
        field = self.fields.get(name)
        if field is None or field.vary is None:
            return False
        return field.vary.choices is None or set(values) <= set(field.vary.choices)

    def preset_vary(self, name: str, values: list[str]) -> None:
        """Vary option ``name`` over ``values`` (see :meth:`can_hold`)."""
        vary = self.fields[name].vary
        if vary is not None:
            vary.preset(values)

    def observe(
        self, callback: Callable[[], None], typing: Callable[[], None] | None = None
    ) -> None:
        """``callback()`` on a change; ``typing()`` (else ``callback()``) on a key press in a
        text field."""
        for field in self.fields.values():
            call = typing if typing is not None and field.kind == "text" else callback
            field.widget.observe(lambda _c, call=call: call(), names="value")
            if field.vary is not None:
                field.vary.observe(callback, typing or callback)
