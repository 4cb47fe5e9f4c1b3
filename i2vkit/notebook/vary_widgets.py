"""Varying one model option from the form: a *vary* switch beside the option's widget.

Switched on, it shows the values to run every job with: the allowed values as checkboxes
for an enum or a yes/no option, a comma list for a number. What is picked is the request's
``vary`` field, exactly as ``--vary NAME=V1,V2`` would give it (the values as text, in the
schema's order), so the form, the CLI and the exported script plan the same jobs. While
values are picked the option's own widget is greyed out and not sent: one value and
several for the same option would contradict each other (the planner refuses that).

Why beside each option and not only a free-text field: the allowed values are right
there, so a user picks ``5`` and ``10`` instead of remembering how the model spells them.
The value checkboxes are built when the switch is first turned on: most options are never
varied, and every widget costs the notebook a round trip.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..planning.vary import axes_value, parse_vary
from .labels import described

VARY_HELP = (
    "run every job once per value picked here, as --vary {name}=V1,V2 does (every "
    "combination when several options vary); the plan below counts the jobs"
)


def can_vary(kind: str, prop: Mapping[str, Any]) -> bool:
    """Whether an option's widget gets a *vary* switch: enums, yes/no and numbers (a free
    text such as a negative prompt has commas of its own; *More to vary* takes it)."""
    if kind in ("enum", "bool") or kind.startswith(("int", "float")):
        return True
    return kind == "text" and prop.get("type") in ("integer", "number")


def choices(kind: str, prop: Mapping[str, Any]) -> list[str] | None:
    """The values to tick (as ``--vary`` spells them), or None for a comma list."""
    if kind == "enum":
        return [axes_value(v) for v in prop["enum"] if v is not None]
    if kind == "bool":
        return ["true", "false"]
    return None


class VaryControl:
    """The *vary* switch of one option and the values it runs every job with."""

    def __init__(self, name: str, kind: str, prop: Mapping[str, Any], single: Any):
        import ipywidgets as w

        self.name = name
        self.single = single  # the option's own widget: greyed out while values are picked
        self.choices = choices(kind, prop)
        self.default = axes_value(prop["default"]) if prop.get("default") is not None else None
        self.switch = w.ToggleButton(
            value=False,
            description="vary",
            icon="list",
            tooltip=VARY_HELP.format(name=name),
            layout=w.Layout(width="72px"),
        )
        self.box = w.Box([], layout=w.Layout(display="none", flex_flow="row wrap"))
        self.box.layout.margin = "0 0 6px 154px"  # under the option's widget, past its label
        self.box.add_class(f"i2v-vary-{name}")
        self.checks: list[Any] = []
        self.text: Any = None
        self._calls: list[tuple[Callable[[], None], bool]] = []  # (callback, on typing only)
        self.switch.observe(lambda _c: self._switched(), names="value")

    def observe(self, callback: Callable[[], None], typing: Callable[[], None]) -> None:
        """``callback()`` on a switch or a tick, ``typing()`` on a key press in the list."""
        self._calls = [(callback, False), (typing, True)]

    def _build(self) -> None:
        import ipywidgets as w

        if self.box.children:
            return
        if self.choices is not None:
            self.checks = [
                w.Checkbox(  # its label beside the box: plain text, the help on hover
                    value=False,
                    indent=False,
                    description=f"{value} (default)" if value == self.default else value,
                    tooltip=f"run every job with {self.name}={value} (one job per value ticked)",
                    layout=w.Layout(width="auto", margin="0 14px 0 0"),
                )
                for value in self.choices
            ]
            for check in self.checks:
                check.observe(lambda _c: self._changed(typing=False), names="value")
            self.box.children = tuple(self.checks)
            return
        self.text = w.Text(
            placeholder=f"values, comma-separated: {self.default or 1},...",
            continuous_update=True,
            **described("values", VARY_HELP.format(name=self.name)),
            layout=w.Layout(width="400px"),
        )
        self.text.observe(lambda _c: self._changed(typing=True), names="value")
        self.box.children = (self.text,)

    def _switched(self) -> None:
        if self.switch.value:
            self._build()
        self.box.layout.display = "" if self.switch.value else "none"
        self.switch.button_style = "info" if self.switch.value else ""
        self._changed(typing=False)

    def _changed(self, *, typing: bool) -> None:
        varied = self.values() is not None
        self.single.disabled = varied
        for call, on_typing in self._calls:
            if on_typing == typing:
                call()

    def values(self) -> list[str] | None:
        """The values picked (None: the option is not varied, its own widget counts)."""
        if not self.switch.value:
            return None
        if self.choices is not None:
            picked = [v for v, c in zip(self.choices, self.checks, strict=True) if c.value]
        else:
            text = self.text.value if self.text is not None else ""
            picked = parse_vary({self.name: text})[self.name] if text.strip(", ") else []
        return picked or None

    def preset(self, values: Sequence[str]) -> bool:
        """Pick ``values`` (from ``I2VKIT_VARY``, the ledger's copy of the form, or code);
        False, with nothing changed, when they are not all among the values to tick."""
        values = [str(v) for v in values]
        if self.choices is not None and not set(values) <= set(self.choices):
            return False
        self._build()
        if self.choices is not None:
            for value, check in zip(self.choices, self.checks, strict=True):
                check.value = value in values
        else:
            self.text.value = ",".join(values)
        self.switch.value = bool(values)
        self._switched()
        return True
