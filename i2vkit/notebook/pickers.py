"""The notebook form's pickers: model family and version, models to compare, folders.

Every list shows what a choice costs (the published price and about what one video at
the defaults costs); the folder browser lists sub-folders and how many images each
level holds.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import gallery as g
from ..catalogue import active as active_catalogue
from ..catalogue.pricing import estimate
from ..errors import I2vkitError
from ..images import IMAGE_EXTENSIONS
from ..models import ModelSpec, get_model
from ..money import usd
from ..planning.options import model_aliases


def model_label(model: ModelSpec) -> str:
    """List text: the price first (a long title may be cut at the list's edge, never the
    price), then name and title."""
    if model.pricing is None:
        price = "price unknown"
    else:
        est = estimate(model.price_rule, model.defaults)  # the defaults, never a required field
        unit = {"video": "video", "token": "1M tokens"}.get(model.pricing.unit, "s")
        price = f"US$ {model.pricing.usd:g}/{unit}"
        if est is not None and model.pricing.unit != "video":
            price += f" (~{usd(est)}/video)"
    title = model.title.removesuffix(" image-to-video")  # what every model here is
    return f"{price} · {model.name}: {title}"


OTHER_FAMILY = "other"  # an endpoint id the catalogue does not know (given by env or flag)


def family_choices() -> list[tuple[str, str]]:
    """(label, family) for every catalogue family with a version that still runs, in
    catalogue order (the most used families first)."""
    cat = active_catalogue()
    out: dict[str, int] = {}
    for entry in cat.entries:
        if entry.get("status") != "shut_down":
            out[entry["family"]] = out.get(entry["family"], 0) + 1
    return [(f"{fam} ({n} version{'s' * (n != 1)})", fam) for fam, n in out.items()]


def version_choices(family: str) -> list[tuple[str, str]]:
    """(label, model name) of a family's running versions, the recommended one first
    (named by the family, as `--model kling` is), then the rest newest first."""
    cat = active_catalogue()
    picked = cat.families.get(family)
    out = []
    if picked:
        out.append((model_label(get_model(family)) + "  [recommended]", family))
    for entry in cat.family_versions(family):
        if entry["endpoint_id"] != picked and entry.get("status") != "shut_down":
            out.append((model_label(get_model(entry["name"])), entry["name"]))
    return out


def find_model(name: str) -> ModelSpec | None:
    """The model ``name`` means, or None when it means none (the preview then says why)."""
    try:
        return get_model(name)
    except I2vkitError:
        return None


def compare_choices() -> list[tuple[str, str]]:
    """(label, model name) of every running version of every family, for "Compare with"."""
    return [choice for _, family in family_choices() for choice in version_choices(family)]


def compare_start(names: Sequence[str]) -> tuple[list[tuple[str, str]], tuple[str, ...]]:
    """The "Compare with" choices and the picked ones for ``names`` (the models after the
    first in ``I2VKIT_MODEL`` or ``--model``): a name meaning a listed endpoint picks that
    entry; any other name is added to the list, so the preview can say what is wrong."""
    choices = compare_choices()
    picked = []
    for name in names:
        model = find_model(name)
        same = [v for _, v in choices if v == name]
        if not same and model is not None:
            same = [v for _, v in choices if get_model(v).endpoint_id == model.endpoint_id]
        if not same:
            label = model_label(model) if model is not None else f"{name} (not in the catalogue)"
            choices.append((label, name))
            same = [name]
        picked.append(same[0])
    return choices, tuple(dict.fromkeys(picked))


def option_target(model: ModelSpec, models: Sequence[ModelSpec]) -> str:
    """What ``-o TARGET:key=value`` names ``model`` by in a batch of ``models``: its name, or
    its endpoint id when another model of the batch also answers to the name (``kling`` is
    also the family of ``kling-2.1-standard``)."""
    hits = sum(model.name.lower() in model_aliases(m) for m in models)
    return model.name if hits == 1 else model.endpoint_id


def family_of(name: str) -> str:
    """The picker family of a model name or endpoint id (OTHER_FAMILY when unknown)."""
    try:
        spec = get_model(name)
    except I2vkitError:
        return OTHER_FAMILY
    return spec.family or OTHER_FAMILY


class FolderBrowser:
    """A small folder picker built from ipywidgets: the folder's sub-folders and images,
    Up, and *Use this folder*.

    It opens on the folder ``target`` (a Text widget) names, or the nearest folder above
    it that exists, so the first thing seen is the images that would run. A click on a
    sub-folder goes into it (``..`` goes up); *Use this folder* writes the folder shown
    into ``target``. Image files are listed to show what a folder holds; clicking one
    does nothing.
    """

    def __init__(self, target: Any, base: Path):
        import ipywidgets as w

        self.target = target
        self.base = base
        self.here_path = self._resolve(str(target.value or "."))
        self.up = w.Button(
            description="Up",
            icon="arrow-up",
            tooltip="the folder above",
            layout=w.Layout(width="70px"),
        )
        self.use = w.Button(
            description="Use this folder",
            icon="check",
            button_style="primary",
            tooltip="put the folder shown here into Images folder",
        )
        self.here = w.HTML()
        self.select = w.Select(options=[], rows=8, layout=w.Layout(width="460px"))
        self.up.on_click(lambda _b: self.go(self.here_path.parent))
        self.use.on_click(lambda _b: self.choose())
        self.select.observe(self._picked, names="value")
        target.observe(lambda c: self.go(self._resolve(str(c["new"]))), names="value")
        self.widget = w.VBox([w.HBox([self.up, self.use, self.here]), self.select])
        self.refresh()

    def _resolve(self, raw: str) -> Path:
        path = Path(raw or ".").expanduser()
        path = path if path.is_absolute() else self.base / path
        path = Path(os.path.normpath(path))
        while not path.is_dir() and path != path.parent:
            path = path.parent
        return path

    def current(self) -> Path:
        """The folder shown."""
        return self.here_path

    def display_path(self, path: Path) -> str:
        try:
            rel = os.path.relpath(path, self.base)
        except ValueError:
            return str(path)
        return str(path) if rel.startswith("../../..") else rel

    def go(self, path: Path) -> None:
        """Show ``path`` (the images folder is not changed until *Use this folder*)."""
        self.here_path = self._resolve(str(path))
        self.refresh()

    def choose(self) -> None:
        """Use the folder shown as the images folder."""
        self.target.value = self.display_path(self.here_path)

    def _picked(self, change: Mapping[str, Any]) -> None:
        new = change["new"]
        if new and Path(new).is_dir():
            self.go(Path(new))

    def refresh(self) -> None:
        here = self.here_path
        try:
            entries = sorted(
                (e for e in os.scandir(here) if not e.name.startswith(".")),
                key=lambda e: e.name.lower(),
            )
        except OSError:
            entries = []
        dirs = [e for e in entries if e.is_dir()]
        images = [
            e
            for e in entries
            if e.is_file() and os.path.splitext(e.name)[1].lower() in IMAGE_EXTENSIONS
        ]
        self.here.value = (
            f"<code>{g.esc(self.display_path(here))}</code> &middot; {len(images)} image "
            f"file{'s' * (len(images) != 1)}, {len(dirs)} folder{'s' * (len(dirs) != 1)}"
        )
        options = [("../", str(here.parent))] if here != here.parent else []
        options += [(f"{d.name}/", str(Path(d.path))) for d in dirs[:500]]
        options += [(f"    {e.name}", str(Path(e.path))) for e in images[:500]]
        self.select.unobserve(self._picked, names="value")
        try:
            self.select.options = options
            self.select.value = None
        finally:
            self.select.observe(self._picked, names="value")
