"""The form's models: a family, its version, models to compare, each with option widgets.

The models picked are the request's ``model`` field (``kling,veo``); each model's
option widgets are targeted at it (``veo:duration``) exactly as ``-o veo:duration=8``
would be, so :func:`~i2vkit.planning.options.split_options` shares them out as it
shares the CLI's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .. import gallery as g
from ..errors import I2vkitError
from ..models import ModelSpec, get_model
from ..planning.options import model_aliases, split_options
from ..planning.request import DEFAULT_MODEL
from .labels import described
from .options import OptionWidgets
from .pickers import (
    OTHER_FAMILY,
    compare_start,
    family_choices,
    family_of,
    find_model,
    model_label,
    option_target,
    version_choices,
)

WIDE = {"width": "560px"}
STYLE = {"description_width": "120px"}
CHAR_PX = 6.8  # a generous width per character of the 13 px UI font (measured: about 6)


def list_width(labels: list[str], extra: int) -> str:
    """A list wide enough for its longest label (plus ``extra`` px: the field's label, the
    dropdown's arrow), never narrower than the form's other fields."""
    longest = max((len(label) for label in labels), default=0)
    return f"{max(560, round(longest * CHAR_PX) + extra)}px"


def list_layout(labels: list[str], extra: int) -> dict[str, str]:
    """The layout of a model list: as wide as :func:`list_width`, never past the output."""
    return {"width": list_width(labels, extra), "max_width": "100%"}


MODEL_HELP = (
    "the model the batch runs on: pick a family, then one of its versions (the recommended "
    "one first); each label starts with its published price"
)
COMPARE_HELP = (
    "run every image x prompt on these models too: type to search (name, family, price), "
    "click a model to add it, x on a tag to remove it"
)


def picker_start(name: str) -> tuple[str, list[tuple[str, str]], str]:
    """(family, its version choices, the chosen value) for the model ``name``: the
    choice meaning the same endpoint (``kling-3.0-standard`` is the ``kling`` pick)."""
    family = family_of(name)
    if family == OTHER_FAMILY or not version_choices(family):
        try:
            return OTHER_FAMILY, [(model_label(get_model(name)), name)], name
        except I2vkitError:  # a bad name from the environment: the form starts on wan
            return picker_start(DEFAULT_MODEL)
    versions = version_choices(family)
    values = [value for _, value in versions]
    if name in values:
        return family, versions, name
    endpoint = get_model(name).endpoint_id
    same = [value for value in values if get_model(value).endpoint_id == endpoint]
    if same:
        return family, versions, same[0]
    return family, [*versions, (model_label(get_model(name)), name)], name


class ModelPicker:
    """Family and version dropdowns, the *Compare with* list, and each model's options."""

    def __init__(
        self,
        models: str,
        on_change: Callable[[], None],
        on_typing: Callable[[], None] | None = None,
    ):
        import ipywidgets as w

        self.on_change = on_change
        self.on_typing = on_typing or on_change  # a key press in an option's text field
        first, *others = [n.strip() for n in models.split(",") if n.strip()] or [DEFAULT_MODEL]
        family, versions, value = picker_start(first)
        compare, picked = compare_start(others)
        self._choices = compare
        self._other = versions if family == OTHER_FAMILY else []
        self.widgets: dict[str, Any] = {
            "family": w.Dropdown(
                options=self._families(family),
                value=family,
                **described("Model family", MODEL_HELP),
                layout=w.Layout(**WIDE),
                style=STYLE,
            ),
            "model": w.Dropdown(
                options=versions,
                value=value,
                **described("Version", MODEL_HELP),
                layout=w.Layout(**list_layout([lb for lb, _ in versions], 170)),
                style=STYLE,
            ),
            "compare": w.TagsInput(
                value=list(picked),
                allowed_tags=[v for _, v in compare],
                allow_duplicates=False,
                tooltip=COMPARE_HELP,
                layout=w.Layout(width="auto"),
            ),
        }
        self.search = w.Text(
            **described("Compare with", COMPARE_HELP),
            placeholder="search by name, family or price; click a model to add it",
            continuous_update=True,
            layout=w.Layout(**WIDE),
            style=STYLE,
        )
        width = list_width([label for label, _ in compare], 30)
        self.choices = w.Select(options=[], value=None, rows=7, layout=w.Layout(width=width))
        self.choices.layout.max_width = "100%"
        self.choices.add_class("i2v-compare-list")
        self.merged = w.HTML()
        self.search.observe(lambda _c: self._list_choices(), names="value")
        self.choices.observe(self._added, names="value")
        self.option_box = w.VBox([])
        self.compare_box = w.VBox([])
        self.model_options: OptionWidgets | None = None
        self.compare_options: list[tuple[str, ModelSpec, OptionWidgets | None]] = []
        self.preset({})
        self.widgets["family"].observe(self._family_picked, names="value")
        self.widgets["model"].observe(lambda _c: self.preset({}), names="value")
        self.widgets["compare"].observe(lambda _c: self._rebuild_compare(), names="value")

    def rows(self) -> list[Any]:
        import ipywidgets as w

        ww = self.widgets
        indent = {"margin": "0 0 0 124px"}  # under the fields, past the labels
        return [
            ww["family"],
            ww["model"],
            self.option_box,
            self.search,
            w.Box([self.choices], layout=w.Layout(**indent)),
            w.HBox([ww["compare"], self.merged], layout=w.Layout(**indent)),
            self.compare_box,
        ]

    def _list_choices(self) -> None:
        """The models that can be added: matching the search, not picked yet, and not the
        first model (compared with itself it would run once anyway)."""
        words = self.search.value.lower().split()
        primary = find_model(self.widgets["model"].value)
        picked = set(self.widgets["compare"].value)
        shown = []
        for label, name in self._choices:
            if name in picked or not all(word in label.lower() for word in words):
                continue
            model = find_model(name)
            if primary and model and model.endpoint_id == primary.endpoint_id:
                continue
            shown.append((label, name))
        self.choices.unobserve(self._added, names="value")
        try:
            self.choices.options = shown
            self.choices.value = None
        finally:
            self.choices.observe(self._added, names="value")

    def _added(self, change: Mapping[str, Any]) -> None:
        """A click on a listed model adds it to the models compared (no Ctrl-click)."""
        if change["new"]:
            tags = self.widgets["compare"]
            tags.value = [*tags.value, change["new"]]

    def names(self) -> list[str]:
        """The models picked: the version, then the models to compare with."""
        return [self.widgets["model"].value, *self.widgets["compare"].value]

    def pick(self, names: Sequence[str]) -> None:
        """Pick these models (the first as family and version, the rest to compare)."""
        family, versions, value = picker_start(names[0])
        ww = self.widgets
        if family == OTHER_FAMILY:
            self._other = versions
        if family not in [f for _, f in ww["family"].options]:
            ww["family"].options = self._families(family)
        ww["family"].value = family
        ww["model"].options = versions
        ww["model"].layout.width = list_width([label for label, _ in versions], 170)
        ww["model"].value = value
        compare, picked = compare_start(list(names[1:]))
        self._choices = compare
        self.choices.layout.width = list_width([label for label, _ in compare], 30)
        ww["compare"].allowed_tags = [v for _, v in compare]
        ww["compare"].value = list(picked)

    def _families(self, family: str) -> list[tuple[str, str]]:
        choices = family_choices()
        if family not in [f for _, f in choices]:
            choices.append((f"{family} (endpoint id)", family))
        return choices

    def _family_picked(self, change: Mapping[str, Any]) -> None:
        """A family was picked: list its versions with the recommended one chosen."""
        versions = self._other if change["new"] == OTHER_FAMILY else version_choices(change["new"])
        model = self.widgets["model"]
        model.options = versions  # a new list selects its first entry: the recommended one
        model.layout.width = list_width([label for label, _ in versions], 170)
        model.value = versions[0][1]

    def _option_widgets(self, model: ModelSpec, preset: Mapping[str, Any]) -> OptionWidgets | None:
        """A model's option widgets (None for an endpoint without a schema), wired up."""
        if model.generic:
            return None
        widgets = OptionWidgets(model, preset)
        widgets.observe(self.on_change, self.on_typing)
        return widgets

    def _compare_models(self, primary: ModelSpec | None) -> list[tuple[str, ModelSpec]]:
        """The models picked to compare with, each endpoint once and never the first model's
        again (as :func:`~i2vkit.planning.options.resolve_models` will count them)."""
        seen = {primary.endpoint_id} if primary is not None else set()
        out = []
        for name in self.widgets["compare"].value:
            model = find_model(name)
            if model is not None and model.endpoint_id not in seen:
                seen.add(model.endpoint_id)
                out.append((name, model))
        return out

    def preset(self, preset: Mapping[str, Any]) -> dict[str, Any]:
        """New option widgets for the picked models, holding ``preset`` (options from the
        environment or the command line) shared out as the CLI shares ``-o`` out. Returns
        what fits no widget, targeted at its model when there are several."""
        primary = find_model(self.widgets["model"].value)
        if not preset:
            self.model_options = None if primary is None else self._option_widgets(primary, {})
            self._rebuild_compare()  # a model to compare with may now be the first one
            return {}
        others = self._compare_models(primary)
        models = [primary, *(m for _, m in others)] if primary is not None else []
        try:
            shares = split_options(models, dict(preset)) if models else None
        except I2vkitError:
            shares = None
        leftover: dict[str, Any] = {} if shares is not None else dict(preset)
        shares = shares if shares is not None else [{} for _ in models]
        panels = []
        for model, share in zip(models, shares, strict=True):
            widgets = self._option_widgets(model, share)
            rest = share if widgets is None else widgets.leftover
            if len(models) > 1:
                rest = {f"{option_target(model, models)}:{k}": v for k, v in rest.items()}
            leftover.update(rest)
            panels.append(widgets)
        self.model_options = panels[0] if panels else None
        self.compare_options = [(n, m, ow) for (n, m), ow in zip(others, panels[1:], strict=True)]
        self._layout_options()
        return leftover

    def _rebuild_compare(self) -> None:
        """Option widgets for each model to compare with; a model still picked keeps its
        widgets (and the values set in them)."""
        kept = {name: widgets for name, _, widgets in self.compare_options}
        self.compare_options = [
            (name, model, kept[name] if name in kept else self._option_widgets(model, {}))
            for name, model in self._compare_models(find_model(self.widgets["model"].value))
        ]
        self._layout_options()

    def _say_merged(self, primary: ModelSpec | None) -> None:
        """Say which picked models run once only (the first model, or the same endpoint
        picked twice): a pick that is silently ignored looks like a bug."""
        kept = {name for name, _, _ in self.compare_options}
        merged = [n for n in self.widgets["compare"].value if n not in kept]
        first = primary.name if primary is not None else "the first model"
        self.merged.value = (
            f"<span style='color:#8a6d00;font-size:12px'>{g.esc(', '.join(merged))}: "
            f"the same endpoint as {g.esc(first)} or another pick, so it runs once</span>"
            if merged
            else ""
        )

    def _layout_options(self) -> None:
        import ipywidgets as w

        self._say_merged(find_model(self.widgets["model"].value))
        self._list_choices()
        self.option_box.children = (
            () if self.model_options is None else (self.model_options.widget,)
        )
        rows: list[Any] = []
        for name, model, widgets in self.compare_options:
            head = (
                f"<b>{g.esc(name)}</b> <span style='color:#777'>{g.esc(model.endpoint_id)} "
                f"&middot; {g.esc(model_label(model).split(' · ')[0])}</span>"
            )
            if widgets is None:
                head += " (no option list: type its options below as name:key=value)"
            rows.append(w.HTML(f"<div style='margin-top:6px'>{head}</div>"))
            if widgets is not None:
                rows.append(widgets.widget)
        self.compare_box.children = tuple(rows)
        self.on_change()

    def _panels(self) -> list[tuple[ModelSpec, OptionWidgets | None]]:
        """Each picked model (the first, then those to compare with) and its option widgets."""
        primary = find_model(self.widgets["model"].value)
        if primary is None:
            return []
        return [(primary, self.model_options), *((m, ow) for _, m, ow in self.compare_options)]

    def vary_values(self) -> dict[str, list[str]]:
        """The options varied with their *vary* switches, as ``--vary`` gives them: by name
        with one model, targeted at each model (``veo:duration``) with several."""
        panels = self._panels()
        models = [m for m, _ in panels]
        out: dict[str, list[str]] = {}
        for model, widgets in panels:
            mine = widgets.vary_values() if widgets is not None else {}
            target = f"{option_target(model, models)}:" if len(panels) > 1 else ""
            out.update({f"{target}{k}": v for k, v in mine.items()})
        return out

    def preset_vary(self, vary: Mapping[str, list[str]]) -> dict[str, list[str]]:
        """Put ``vary`` (``I2VKIT_VARY``, the saved form, code) into the *vary* switches of
        the models it goes to, as :func:`~i2vkit.planning.vary.split_vary` shares ``--vary``
        out; returns what no switch can show (a key of no model, a value not in a list)."""
        panels = self._panels()
        leftover: dict[str, list[str]] = {}
        plain = [k for k in vary if ":" not in k]
        for key in [*plain, *(k for k in vary if ":" in k)]:  # targeted keys win, as planned
            who, sep, name = key.partition(":")
            name, values = (name if sep else who).strip(), list(vary[key])
            takers = [
                ow
                for m, ow in panels
                if (who.strip().lower() in model_aliases(m) if sep else True)
                and (m.allowed_options is None or name in m.allowed_options)
            ]
            held = [ow for ow in takers if ow is not None and ow.can_hold(name, values)]
            if not takers or len(held) < len(takers):
                leftover[key] = values
                continue
            for ow in held:
                ow.preset_vary(name, values)
        return leftover

    def values(self) -> dict[str, Any]:
        """The option widgets' values that differ from the schema defaults.

        One model: its values as they are. Several: each model's values targeted at it
        (``veo:duration``), exactly as ``-o veo:duration=8`` would be, so a value set for
        one model never reaches another that has an option of the same name."""
        primary = find_model(self.widgets["model"].value)
        if not self.compare_options or primary is None:
            return self.model_options.values() if self.model_options is not None else {}
        models = [primary, *(m for _, m, _ in self.compare_options)]
        panels = [self.model_options, *(ow for _, _, ow in self.compare_options)]
        out: dict[str, Any] = {}
        for model, widgets in zip(models, panels, strict=True):
            if widgets is not None:
                target = option_target(model, models)
                out.update({f"{target}:{k}": v for k, v in widgets.values().items()})
        return out
