"""The batch form of 01_generate: widgets in a notebook, the CLI's flags in the exported script.

In a kernel the form is ipywidgets (with a small folder browser). In the exported
script (``jupyter nbconvert --to script``) there are no widgets: the form parses the
script's command line with `i2vkit bulk`'s own schema (:func:`i2vkit.cli.build_script_parser`),
fills what is not given from ``I2VKIT_*`` environment variables and then from the
notebook's defaults, and :meth:`BatchForm.confirmed_plan` asks before spending exactly
as `i2vkit bulk` does, with the same exit codes. So a notebook run and
``python 01_generate.py ...`` are the same batch with the same behaviour.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import cli
from .. import gallery as g
from ..catalogue import active as active_catalogue
from ..catalogue.pricing import estimate
from ..config import Settings, load_dotenv_values, load_settings, parse_bool
from ..errors import I2vkitError, InputError
from ..models import ModelSpec, get_model
from ..pairing import normalize_pairing
from ..plan import model_aliases, model_names, resolve_models, split_options, usd
from .display import Live, Rich, in_kernel, notebook_dir, widgets_available
from .options import OptionWidgets

if TYPE_CHECKING:
    from ..plan import BatchSpec, Plan

DEFAULT_IMAGES = "../data/images"  # relative to the notebook's folder
DEFAULT_PROMPTS = "../data/prompts.txt"
DEFAULT_OUTPUT = "../downloads"
DEFAULT_MODEL = "wan"
PAIRINGS = [("all combinations", "all"), ("one-to-one", "one_to_one")]

#: Environment variables the form reads (in a kernel and in a script); flags win.
ENV = {
    "images_dir": "I2VKIT_IMAGES_DIR",
    "prompts_file": "I2VKIT_PROMPTS_FILE",
    "prompts": "I2VKIT_PROMPTS",
    "model": "I2VKIT_MODEL",
    "options": "I2VKIT_OPTIONS",
    "pairing": "I2VKIT_PAIRING",
    "output_dir": "I2VKIT_OUTPUT_DIR",
    "concurrency": "I2VKIT_CONCURRENCY",
    "recursive": "I2VKIT_RECURSIVE",
    "yes": "I2VKIT_YES",
    "max_cost": "I2VKIT_MAX_COST",
    "takes": "I2VKIT_TAKES",
    "shots": "I2VKIT_SHOTS",
}


class SpendNotConfirmed(InputError):
    """Nothing submitted: the batch would spend above the threshold and nobody said yes, or
    it would spend above the spend cap (I2VKIT_MAX_COST)."""


def _auto_download_dir() -> str | None:
    """AUTO_DOWNLOAD_DIR from the environment, else from the .env file (config's reader)."""
    if "AUTO_DOWNLOAD_DIR" in os.environ:  # set, even to "" (= unset on purpose)
        return os.environ["AUTO_DOWNLOAD_DIR"] or None
    try:
        values, _ = load_dotenv_values(None)
    except I2vkitError:
        return None
    return values.get("AUTO_DOWNLOAD_DIR") or None


def resolve_values(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The form's values: defaults, overridden by the environment, overridden by ``argv``
    (parsed with the CLI's schema, so the flags are `i2vkit bulk`'s).

    Paths that come from the defaults are relative to the notebook's folder; paths
    given on the command line or in the environment are used as given.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {
        "images_dir": DEFAULT_IMAGES,
        "prompts_file": DEFAULT_PROMPTS,
        "prompts": None,
        "model": DEFAULT_MODEL,
        "options": "",
        "pairing": "all",
        "output_dir": _auto_download_dir() or DEFAULT_OUTPUT,
        "concurrency": None,
        "recursive": False,
        "yes": False,
        "max_cost": None,  # US$ text, as --max-cost; None: no cap
        "dry_run": False,
        "no_progress": False,
        "takes": None,  # takes of every job; None: 1
        "shots": None,  # a shot list file instead of the folder and prompts
        "write_shots": None,
        "from_default": {"images_dir", "prompts_file"},
    }
    if values["output_dir"] == DEFAULT_OUTPUT:
        values["from_default"].add("output_dir")
    for field, name in ENV.items():
        raw = env.get(name)
        if raw in (None, ""):
            continue
        if field in ("concurrency", "takes"):
            try:
                values[field] = int(raw)
            except ValueError:
                raise InputError(f"{name}={raw!r} is not a whole number.") from None
        elif field in ("recursive", "yes"):
            values[field] = parse_bool(name, raw)
        elif field == "pairing":
            values[field] = normalize_pairing(raw)
        else:
            values[field] = raw
        values["from_default"].discard(field)
    if argv is not None:
        args = cli.build_script_parser().parse_args(list(argv))
        prompts_file = args.prompts_path or args.prompts_file
        given = {
            "images_dir": args.images_dir,
            "prompts_file": prompts_file,
            "prompts": args.prompts,
            "model": args.model,
            "output_dir": args.output_dir,
            "shots": args.shots,
            "takes": args.takes,
            "write_shots": args.write_shots,
        }
        for field, value in given.items():
            if value is not None:
                values[field] = value
                values["from_default"].discard(field)
        if args.option:
            values["options"] = cli.format_options(cli.parse_options(args.option))
        if args.one_to_one:
            values["pairing"] = "one_to_one"
        if args.concurrency is not None:
            values["concurrency"] = args.concurrency
        if args.max_cost is not None:
            values["max_cost"] = args.max_cost
        for flag in ("recursive", "yes", "dry_run", "no_progress"):
            if getattr(args, flag):
                values[flag] = True
    if values["prompts"] is not None and "prompts_file" in values["from_default"]:
        values["prompts_file"] = None  # inline prompts given: do not also read the sample file
    return values


def confirmed(plan: Plan, settings: Settings, *, yes: bool = False) -> Plan:
    """``plan``, once spending it is confirmed; every notebook path that submits calls this.

    The rule is `i2vkit bulk`'s (:func:`i2vkit.cli.confirm_spend`): above US$ 5 on a
    billed backend, ask unless ``--yes`` / ``I2VKIT_YES=1``. In the script a refusal
    ends the script with the CLI's exit code. In a kernel the question is asked with
    ``input()``; a "no", or a kernel that cannot ask (nbmake's), raises
    :class:`SpendNotConfirmed`, which stops *Run All* before anything is uploaded. A
    plan over the spend cap raises it too, with the CLI's own message (the cap, the
    cost, what to do): "not confirmed" would send the user looking for a question
    that was never asked.
    """
    from ..backend import backend_for

    backend = backend_for(settings)
    yes = yes or parse_bool(ENV["yes"], os.environ.get(ENV["yes"]) or "false")
    if not in_kernel():
        code = cli.confirm_spend(plan, backend, yes=yes)
        if code is not None:
            sys.stdout.flush()
            sys.exit(code)
        return plan

    def ask(question: str) -> str:
        try:
            return input(question)
        except Exception:  # the kernel cannot ask (no front end attached: nbmake)
            return ""

    said: list[str] = []
    code = cli.confirm_spend(plan, backend, yes=yes, interactive=True, ask=ask, say=said.append)
    if code == cli.EXIT_INPUT and said:  # refused before asking: the spend cap, in its words
        raise SpendNotConfirmed("\n".join(said))
    if code is not None:
        raise SpendNotConfirmed(
            f"Spending {usd(plan.estimated_cost or 0.0)} was not confirmed; nothing was "
            f"submitted. Answer y when asked, or set {ENV['yes']}=1 before starting Jupyter."
        )
    return plan


def read_text(path: str | os.PathLike | None) -> str:
    if not path:
        return ""
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except OSError:
        return ""


def model_label(model: ModelSpec) -> str:
    """Dropdown text: name, title and price."""
    if model.pricing is None:
        price = "price unknown"
    else:
        est = estimate(model.price_rule, model.defaults)  # the defaults, never a required field
        unit = {"video": "video", "token": "1M tokens"}.get(model.pricing.unit, "s")
        price = f"US$ {model.pricing.usd:g}/{unit}"
        if est is not None and model.pricing.unit != "video":
            price += f", ~{usd(est)}/video"
    return f"{model.name}: {model.title} ({price})"


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
    """A small folder picker built from ipywidgets: a list of sub-folders and an Up button.

    Picking a sub-folder enters it and writes its path into ``target`` (a Text widget).
    """

    def __init__(self, target: Any, base: Path):
        import ipywidgets as w

        self.target = target
        self.base = base
        self.up = w.Button(description="Up", icon="arrow-up", layout=w.Layout(width="70px"))
        self.here = w.HTML()
        self.select = w.Select(options=[], rows=6, layout=w.Layout(width="360px"))
        self.up.on_click(lambda _b: self.go(self.current().parent))
        self.select.observe(self._picked, names="value")
        target.observe(lambda _c: self.refresh(), names="value")
        self.widget = w.VBox([w.HBox([self.up, self.here]), self.select])
        self.refresh()

    def current(self) -> Path:
        raw = str(self.target.value or ".")
        path = Path(raw).expanduser()
        path = path if path.is_absolute() else self.base / path
        path = Path(os.path.normpath(path))
        while not path.is_dir() and path != path.parent:
            path = path.parent
        return path

    def display_path(self, path: Path) -> str:
        try:
            rel = os.path.relpath(path, self.base)
        except ValueError:
            return str(path)
        return str(path) if rel.startswith("../../..") else rel

    def go(self, path: Path) -> None:
        self.target.value = self.display_path(path)
        self.refresh()

    def _picked(self, change: Mapping[str, Any]) -> None:
        if change["new"]:
            self.go(Path(change["new"]))

    def refresh(self) -> None:
        from ..images import IMAGE_EXTENSIONS

        here = self.current()
        try:
            entries = sorted(
                (e for e in os.scandir(here) if not e.name.startswith(".")),
                key=lambda e: e.name.lower(),
            )
        except OSError:
            entries = []
        dirs = [e for e in entries if e.is_dir()]
        images = sum(
            1
            for e in entries
            if e.is_file() and os.path.splitext(e.name)[1].lower() in IMAGE_EXTENSIONS
        )
        self.here.value = (
            f"<code>{g.esc(here)}</code> &middot; {images} image file(s), {len(dirs)} folder(s)"
        )
        with self.select.hold_trait_notifications():
            self.select.unobserve(self._picked, names="value")
            self.select.options = [(f"{d.name}/", str(Path(d.path))) for d in dirs[:500]]
            self.select.value = None
            self.select.observe(self._picked, names="value")


class BatchForm:
    """Everything a batch needs, as widgets in a notebook or as flags/env in a script.

    ``form.spec()`` returns the :class:`~i2vkit.plan.BatchSpec` either way, and
    ``form.confirmed_plan(settings)`` its plan once spending it is confirmed.
    """

    def __init__(
        self,
        argv: Sequence[str] | None = None,
        environ: Mapping[str, str] | None = None,
        base: str | os.PathLike | None = None,
    ):
        self.base = Path(base).resolve() if base is not None else notebook_dir()
        interactive = widgets_available()
        if argv is None and not interactive:
            argv = sys.argv[1:]  # a script: its command line, with `i2vkit bulk`'s endings
            cli.install_script_hooks(resume=[Path(sys.executable).name, *sys.argv])
        self.values = resolve_values(None if interactive else argv, environ)
        self.widget = None
        self.interactive = interactive
        if interactive:
            self._build_widgets()

    # -- values -------------------------------------------------------------------

    def _path(self, value: str | None, field: str) -> str | None:
        """Defaults are relative to the notebook folder; given paths are used as given."""
        if not value:
            return None
        if field in self.values["from_default"] or in_kernel():
            path = Path(value).expanduser()
            return str(path if path.is_absolute() else Path(os.path.normpath(self.base / path)))
        return value

    def _args(self) -> argparse.Namespace:
        """The form's values as the CLI's parsed flags, for :func:`i2vkit.cli.spec_from_args`."""
        if self.interactive:
            v = self.w
            source = v["prompts_source"].value
            prompts_file = self._path(v["prompts_file"].value.strip(), "prompts_file")
            shots = self._path(v["shots"].value.strip(), "shots") if source == "shots" else None
            return argparse.Namespace(
                images_dir=self._path(v["images_dir"].value.strip(), "images_dir"),
                prompts_file=prompts_file if source == "file" else None,
                prompts=v["prompts"].value if source == "text" else None,
                shots=shots,
                takes=int(v["takes"].value),
                model=",".join([v["model"].value, *v["compare"].value]),
                option=v["options"].value,
                one_to_one=v["pairing"].value == "one_to_one",
                output_dir=self._path(v["output_dir"].value.strip(), "output_dir"),
                concurrency=int(v["concurrency"].value),
                recursive=bool(v["recursive"].value),
                max_cost=v["max_cost"].value.strip() or "none",
            )
        vals = self.values
        return argparse.Namespace(
            shots=self._path(vals["shots"], "shots"),
            takes=vals["takes"],
            images_dir=self._path(vals["images_dir"], "images_dir"),
            prompts_file=self._path(vals["prompts_file"], "prompts_file"),
            prompts=vals["prompts"],
            model=vals["model"],
            option=vals["options"],
            one_to_one=vals["pairing"] == "one_to_one",
            output_dir=self._path(vals["output_dir"], "output_dir"),
            concurrency=vals["concurrency"],
            recursive=bool(vals["recursive"]),
            max_cost=vals["max_cost"],
        )

    def spec(self) -> BatchSpec:
        """The batch to run, from the widgets (notebook) or from argv/env/defaults (script).

        In the notebook the options are the option widgets' changed values, then the
        free-text options (which win for a name in both). With models to compare, each
        model's widget values are targeted at it (``kling:duration``, as ``-o`` targets one
        model), so :func:`~i2vkit.plan.split_options` plans them as it plans the CLI's."""
        spec = cli.spec_from_args(self._args())
        if self.interactive:
            spec.options = {**self.widget_options(), **spec.options}
        return spec

    config = spec  # the name the notebooks used before BatchConfig became BatchSpec

    def confirmed_plan(self, settings: Settings) -> Plan:
        """The plan of the form's batch, once spending it is confirmed (see :func:`confirmed`).

        In the script a ``--dry-run`` ends here, after the preview printed the plan.
        """
        from ..plan import plan_batch

        plan = plan_batch(self.spec(), settings)
        if self.values["write_shots"] and not in_kernel():  # as `i2vkit bulk --write-shots`
            from ..shots import write_shots

            print(f"shot list written: {write_shots(plan, self.values['write_shots'])}")
            sys.exit(cli.EXIT_OK)
        if self.values["dry_run"] and not in_kernel():
            print("dry run: nothing uploaded or submitted.", flush=True)
            sys.exit(cli.EXIT_OK)
        return confirmed(plan, settings, yes=bool(self.values["yes"]))

    @property
    def show_progress(self) -> bool:
        return not self.values["no_progress"]

    # -- widgets ------------------------------------------------------------------

    def _build_widgets(self) -> None:
        import ipywidgets as w

        from ..plan import DEFAULT_CONCURRENCY

        v = self.values
        wide = w.Layout(width="560px")
        style = {"description_width": "120px"}

        def text(value: str, description: str, placeholder: str = "") -> Any:
            """A one-line field that reports its value when editing is done, not per key."""
            return w.Text(
                value=value,
                description=description,
                placeholder=placeholder,
                layout=wide,
                style=style,
                continuous_update=False,
            )

        first, *others = model_names(v["model"]) if v["model"].strip() else [DEFAULT_MODEL]
        family, versions, model_value = self._picker_start(first)
        compare, compare_values = compare_start(others)
        self._other = versions if family == OTHER_FAMILY else []
        prompts_text = v["prompts"] or read_text(self._path(v["prompts_file"], "prompts_file"))
        self.w: dict[str, Any] = {
            "images_dir": text(v["images_dir"], "Images folder"),
            "recursive": w.Checkbox(value=bool(v["recursive"]), description="include sub-folders"),
            "prompts_source": w.ToggleButtons(
                options=[("prompts file", "file"), ("typed below", "text"), ("shot list", "shots")],
                value="shots" if v["shots"] else "text" if v["prompts"] else "file",
                description="Prompts from",
                style=style,
            ),
            "prompts_file": text(v["prompts_file"] or "", "Prompts file"),
            "shots": text(
                v["shots"] or "", "Shot list", "CSV or JSONL: image, prompt, model, options..."
            ),
            "compare": w.SelectMultiple(
                options=compare,
                value=compare_values,
                rows=6,
                description="Compare with",
                layout=wide,
                style=style,
            ),
            "takes": w.BoundedIntText(
                value=int(v["takes"] or 1),
                min=1,
                max=100,
                description="Takes",
                style=style,
                layout=w.Layout(width="220px"),
            ),
            "prompts": w.Textarea(
                value=prompts_text,
                description="Prompts",
                placeholder="one prompt per line; # starts a comment",
                layout=w.Layout(width="560px", height="110px"),
                style=style,
                continuous_update=False,
            ),
            "family": w.Dropdown(
                options=self._families(family),
                value=family,
                description="Model family",
                layout=wide,
                style=style,
            ),
            "model": w.Dropdown(
                options=versions,
                value=model_value,
                description="Version",
                layout=wide,
                style=style,
            ),
            "options": text(
                "", "More options", "name=value ... (any option not shown); model:name=value"
            ),
            "pairing": w.ToggleButtons(
                options=PAIRINGS,
                value=normalize_pairing(v["pairing"]),
                description="Pairing",
                style=style,
            ),
            "output_dir": text(v["output_dir"], "Output folder"),
            "concurrency": w.BoundedIntText(
                value=int(v["concurrency"] or DEFAULT_CONCURRENCY),
                min=1,
                max=1000,
                description="Concurrency",
                style=style,
                layout=w.Layout(width="220px"),
            ),
            "max_cost": text(v["max_cost"] or "", "Max cost (US$)", "no cap; e.g. 10"),
        }
        ww = self.w
        self._listeners: list[Callable[[], None]] = []
        self.option_box = w.VBox([])
        self.compare_box = w.VBox([])
        self.cost = w.HTML()
        self.model_options: OptionWidgets | None = None
        self.compare_options: list[tuple[str, ModelSpec, OptionWidgets | None]] = []
        self._rebuild_options(cli.parse_options(v["options"]))
        ww["family"].observe(self._family_picked, names="value")
        ww["model"].observe(lambda _c: self._rebuild_options(), names="value")
        ww["compare"].observe(lambda _c: self._rebuild_compare(), names="value")
        ww["options"].observe(lambda _c: self._show_cost(), names="value")
        self.browser = FolderBrowser(ww["images_dir"], self.base)
        browse = w.ToggleButton(description="Browse...", icon="folder-open")
        browser_box = w.Box([self.browser.widget], layout=w.Layout(display="none"))

        def toggle(change: Mapping[str, Any]) -> None:
            browser_box.layout.display = "" if change["new"] else "none"

        browse.observe(toggle, names="value")

        def file_changed(_change: Any) -> None:
            if ww["prompts_source"].value == "file":
                text = read_text(self._path(ww["prompts_file"].value.strip(), "prompts_file"))
                self._loading = True
                ww["prompts"].value = text
                self._loading = False

        def text_edited(_change: Any) -> None:
            if not getattr(self, "_loading", False):
                ww["prompts_source"].value = "text"

        self._loading = False
        ww["prompts_file"].observe(file_changed, names="value")
        ww["prompts"].observe(text_edited, names="value")
        ww["prompts_source"].observe(file_changed, names="value")
        root = g.find_root(self.base)
        here = os.path.relpath(self.base, root) if g.is_within(self.base, root) else self.base
        help_html = w.HTML(
            "<span style='color:#666;font-size:12px'>Relative paths are read from the "
            f"notebook's folder (<code>{g.esc(here)}</code> in the folder Jupyter serves).</span>"
        )
        self.widget = w.VBox(
            [
                w.HBox([ww["images_dir"], browse, ww["recursive"]]),
                browser_box,
                ww["prompts_source"],
                ww["prompts_file"],
                ww["shots"],
                ww["prompts"],
                ww["family"],
                ww["model"],
                self.option_box,
                ww["compare"],
                self.compare_box,
                ww["options"],
                ww["takes"],
                self.cost,
                ww["pairing"],
                ww["output_dir"],
                ww["concurrency"],
                ww["max_cost"],
                help_html,
            ]
        )

    # -- the model picker and its option widgets ------------------------------------

    @staticmethod
    def _picker_start(name: str) -> tuple[str, list[tuple[str, str]], str]:
        """(family, its version choices, the chosen value) for the model ``name``: the
        choice meaning the same endpoint (``kling-3.0-standard`` is the ``kling`` pick)."""
        family = family_of(name)
        if family == OTHER_FAMILY or not version_choices(family):
            try:
                return OTHER_FAMILY, [(model_label(get_model(name)), name)], name
            except I2vkitError:  # a bad name from the environment: the form starts on wan
                return BatchForm._picker_start(DEFAULT_MODEL)
        versions = version_choices(family)
        values = [value for _, value in versions]
        if name in values:
            return family, versions, name
        endpoint = get_model(name).endpoint_id
        same = [value for value in values if get_model(value).endpoint_id == endpoint]
        if same:
            return family, versions, same[0]
        return family, [*versions, (model_label(get_model(name)), name)], name

    def _families(self, family: str) -> list[tuple[str, str]]:
        choices = family_choices()
        if family not in [f for _, f in choices]:
            choices.append((f"{family} (endpoint id)", family))
        return choices

    def _family_picked(self, change: Mapping[str, Any]) -> None:
        """A family was picked: list its versions with the recommended one chosen."""
        versions = self._other if change["new"] == OTHER_FAMILY else version_choices(change["new"])
        model = self.w["model"]
        model.options = versions  # a new list selects its first entry: the recommended one
        model.value = versions[0][1]

    def _option_widgets(self, model: ModelSpec, preset: Mapping[str, Any]) -> OptionWidgets | None:
        """A model's option widgets (None for an endpoint without a schema), wired to the form."""
        if model.generic:
            return None
        widgets = OptionWidgets(model, preset)
        widgets.observe(self._changed)
        return widgets

    def _compare_models(self, primary: ModelSpec | None) -> list[tuple[str, ModelSpec]]:
        """The models picked to compare with, each endpoint once and never the first model's
        again (as :func:`~i2vkit.plan.resolve_models` will count them)."""
        seen = {primary.endpoint_id} if primary is not None else set()
        out = []
        for name in self.w["compare"].value:
            model = find_model(name)
            if model is not None and model.endpoint_id not in seen:
                seen.add(model.endpoint_id)
                out.append((name, model))
        return out

    def _rebuild_options(self, preset: Mapping[str, Any] | None = None) -> None:
        """New option widgets for the chosen model (from its schema). ``preset`` (the options
        from the environment or the command line) is shared out among the batch's models as
        the CLI shares ``-o`` out (:func:`~i2vkit.plan.split_options`); what does not fit a
        widget goes into the free-text options, targeted at its model when there are several."""
        primary = find_model(self.w["model"].value)
        if not preset:
            self.model_options = None if primary is None else self._option_widgets(primary, {})
            self._rebuild_compare()  # a model to compare with may now be the first one
            return
        others = self._compare_models(primary)
        models = [primary, *(m for _, m in others)] if primary is not None else []
        try:
            shares = split_options(models, dict(preset)) if models else None
        except I2vkitError:
            shares = None
        if shares is None:  # typed as given; the preview says what is wrong
            shares = [{} for _ in models]
            leftover = dict(preset)
        else:
            leftover = {}
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
        if leftover:
            self.w["options"].value = cli.format_options(leftover)
        self._layout_options()

    def _rebuild_compare(self) -> None:
        """Option widgets for each model to compare with; a model still picked keeps its
        widgets (and the values set in them)."""
        kept = {name: widgets for name, _, widgets in self.compare_options}
        self.compare_options = [
            (name, model, kept[name] if name in kept else self._option_widgets(model, {}))
            for name, model in self._compare_models(find_model(self.w["model"].value))
        ]
        self._layout_options()

    def _layout_options(self) -> None:
        import ipywidgets as w

        self.option_box.children = (
            () if self.model_options is None else (self.model_options.widget,)
        )
        rows: list[Any] = []
        for name, model, widgets in self.compare_options:
            head = (
                f"<b>{g.esc(name)}</b> <span style='color:#777'>{g.esc(model.endpoint_id)}</span>"
            )
            if widgets is None:
                head += " (no option list: type its options below as name:key=value)"
            rows.append(w.HTML(f"<div style='margin-top:6px'>{head}</div>"))
            if widgets is not None:
                rows.append(widgets.widget)
        self.compare_box.children = tuple(rows)
        self._changed()

    def widget_options(self) -> dict[str, Any]:
        """The option widgets' values that differ from the schema defaults (notebook only).

        One model: its values as they are. Several: each model's values targeted at it
        (``veo:duration``), exactly as ``-o veo:duration=8`` would be, so a value set for
        one model never reaches another that has an option of the same name."""
        primary = find_model(self.w["model"].value)
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

    def _show_cost(self) -> None:
        """The price label under the options: one video of each model at its options."""
        try:
            spec = self.spec()
            models = resolve_models(spec.model)
            shares = split_options(models, spec.options)
            prices = [(m, m.estimate_cost(o)) for m, o in zip(models, shares, strict=True)]
        except I2vkitError as exc:
            self.cost.value = (
                f"<span style='color:#c62828'>{g.esc(str(exc).splitlines()[0])}</span>"
            )
            return

        def shown(per_video: float | None) -> str:
            return g.esc(usd(per_video, 3))

        if len(prices) == 1:
            each = f"<b>{shown(prices[0][1])}</b>"
        else:
            each = ", ".join(f"{g.esc(m.name)} <b>{shown(p)}</b>" for m, p in prices)
        self.cost.value = f"<span>price per video with these options: {each}</span>"

    def _changed(self) -> None:
        self._show_cost()
        for callback in list(getattr(self, "_listeners", [])):
            callback()

    def observe(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` whenever any value in the form changes (notebook only),
        the option widgets of a model picked later included."""
        if self.widget is None:
            return
        for name, widget in self.w.items():
            if name not in ("model", "compare"):  # these rebuild widgets, which call back
                widget.observe(lambda _c: callback(), names="value")
        self._listeners.append(callback)

    def preview(self, settings: Settings | None = None) -> Preview:
        """What would run: images, prompts, job count, estimated cost and skipped files."""
        return Preview(self, settings or load_settings())

    def text(self) -> str:
        c = self.spec()
        options = cli.format_options(c.options)
        return (
            f"images: {c.images_dir}\nprompts: {c.prompts_file or 'inline'}\n"
            f"model: {c.model}{'  ' + options if options else ''}\npairing: {c.pairing}\n"
            f"output: {c.output_dir or 'AUTO_DOWNLOAD_DIR'}\nconcurrency: {c.concurrency}"
        )


def plan_html(plan: Plan, settings: Settings, base: Path | None = None) -> str:
    thumbs = []
    for im in plan.images[:60]:
        uri = g.thumbnail_data_uri(im.path)
        img = (
            f"<img src='{g.esc(uri)}' style='width:96px;height:72px;object-fit:cover;"
            "border-radius:3px'>"
            if uri
            else ""
        )
        thumbs.append(
            f"<div style='width:100px;font-size:11px;text-align:center'>{img}<br>"
            f"{g.esc(im.name)}<br><span style='color:#777'>{im.width}x{im.height} "
            f"{g.esc(im.format)}</span></div>"
        )
    more = f"<div>... and {len(plan.images) - 60} more</div>" if len(plan.images) > 60 else ""
    prompts = "".join(f"<li>{g.esc(p)}</li>" for p in plan.prompts[:100])
    if len(plan.prompts) > 100:
        prompts += f"<li>... and {len(plan.prompts) - 100} more</li>"
    if plan.estimated_cost is None:
        cost = "unknown (no published price for some endpoint)"
    else:
        cost = usd(plan.estimated_cost)
        if plan.cost_per_video is not None:  # None: the jobs' prices differ (several models)
            cost += f" ({usd(plan.cost_per_video, 3)} per video)"
        if settings.demo:
            cost += " on fal; demo mode: nothing is billed"
    skipped = "".join(
        f"<li><b>{g.esc(s.path.name)}</b>: {g.esc(s.reason)}</li>" for s in plan.skipped
    )
    takes = max((j.take for j in plan.jobs), default=1)
    if len(plan.models) == 1:
        on = f"<b>{g.esc(plan.model.name)}</b> ({g.esc(plan.model.endpoint_id)})"
        per_model = ""
    else:  # a comparison: what each model adds to the batch
        on = f"{len(plan.models)} models"
        rows = "".join(
            f"<li><b>{g.esc(m.name)}</b> ({g.esc(m.endpoint_id)}): {n} jobs, "
            f"{g.esc(usd(amount))}</li>"
            for m, n, amount in plan.per_model()
        )
        per_model = f"<ul style='margin:2px 0'>{rows}</ul>"
    warn = ""
    if base is not None and not g.is_within(plan.output_dir.resolve(), g.find_root(base)):
        warn = (
            "<div style='color:#8a6d00'>The output folder is outside the folder Jupyter serves "
            f"({g.esc(g.find_root(base))}): the gallery can only embed small videos from "
            "there.</div>"
        )
    return (
        "<div style='font:13px system-ui,sans-serif'>"
        f"<div><b>{len(plan.jobs)} jobs</b>: {len(plan.images)} images x "
        f"{len(plan.prompts)} prompts ({g.esc(plan.spec.pairing)})"
        f"{f' x {takes} takes' if takes > 1 else ''} on {on}</div>{per_model}"
        f"<div>estimated cost: <b>{g.esc(cost)}</b></div>"
        f"<div>videos go to: <code>{g.esc(plan.output_dir)}</code></div>{warn}"
        f"<div style='display:flex;flex-wrap:wrap;gap:6px;margin:6px 0'>{''.join(thumbs)}</div>"
        f"{more}<div>Prompts:</div><ol style='margin:2px 0'>{prompts}</ol>"
        + (
            f"<div style='color:#c62828'>Skipped files:</div><ul style='margin:2px 0'>{skipped}</ul>"
            if skipped
            else "<div style='color:#666'>No files skipped.</div>"
        )
        + "</div>"
    )


class Preview:
    """The plan of the form's batch; in a notebook it redraws when the form changes."""

    def __init__(self, form: BatchForm, settings: Settings):
        self.form = form
        self.settings = settings
        self.plan: Plan | None = None
        self.error: str | None = None
        self.refresh()

    def refresh(self) -> None:
        """Plan the form's batch. In a notebook a bad value is shown in the preview (the form
        stays usable); in the script it ends the script, once, as `i2vkit bulk` would."""
        from ..plan import plan_batch

        if not in_kernel():
            self.plan, self.error = plan_batch(self.form.spec(), self.settings), None
            return
        try:
            self.plan = plan_batch(self.form.spec(), self.settings)
            self.error = None
        except I2vkitError as exc:
            self.plan, self.error = None, str(exc)

    def render(self) -> Rich:
        self.refresh()
        return Rich(self.html(), self.text())

    def display_live(self) -> None:
        Live(self.render, lambda fn: self.form.observe(fn)).display_live()

    def html(self) -> str:
        if self.plan is None:
            return f"<div style='color:#c62828'>Cannot run yet: {g.esc(self.error)}</div>"
        return plan_html(self.plan, self.settings, self.form.base)

    def _repr_html_(self) -> str:
        return self.html()

    def text(self) -> str:
        if self.plan is None:
            return f"Cannot run yet: {self.error}"
        text = self.plan.describe()
        prompts = "\n".join(f"  {i}. {p}" for i, p in enumerate(self.plan.prompts, 1))
        images = ", ".join(im.name for im in self.plan.images[:20])
        return f"{text}\nimages: {images}\nprompts:\n{prompts}"
