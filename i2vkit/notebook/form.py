"""The batch form of 01_generate: widgets in a notebook, `i2vkit bulk`'s flags in the script.

Both are generated from the request table (:data:`i2vkit.planning.request.FIELDS`): a
widget per field in a kernel, the same flags and ``I2VKIT_*`` variables as `i2vkit
bulk` in the exported script (``jupyter nbconvert --to script``), and one default per
field. Relative paths are read from the notebook's folder in the notebook and from the
current folder in the script, as the CLI reads them; only the sample data the notebook
starts with (:data:`EXAMPLES`) is always found next to the notebook. So a notebook run,
``python 01_generate.py ...`` and ``i2vkit bulk ...`` are the same batch.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import gallery as g
from ..config import parse_bool
from ..errors import I2vkitError, SpendNotConfirmed
from ..exits import EXIT_INPUT, EXIT_OK, install_script_hooks
from ..flags import batch_parser, given_by_args
from ..money import usd
from ..planning import FIELDS, BatchRequest, Given, Plan, plan_batch, write_shots
from ..planning.options import resolve_models, split_options
from ..planning.request import (
    BY_NAME,
    DEFAULT_CONCURRENCY,
    DEFAULT_MODEL,
    build_request,
    format_options,
    from_environment,
    parse_options,
    request_from,
)
from ..planning.vary import format_vary, parse_vary
from ..spending import confirm_spend
from ..workspace import Workspace
from .display import in_kernel, notebook_dir, widgets_available
from .labels import described
from .memory import Debounce, FormMemory
from .model_picker import ModelPicker
from .pickers import FolderBrowser
from .preview import Preview

#: The sample data the notebook starts with, relative to the notebook's folder.
EXAMPLES = {"images_dir": "../data/images", "prompts_file": "../data/prompts.txt"}
PAIRINGS = [("all combinations", "all"), ("one-to-one", "one_to_one")]
SOURCES = [("prompts file", "file"), ("typed below", "text"), ("shot list", "shots")]
SOURCE_FIELD = {"file": "prompts_file", "text": "prompts", "shots": "shots"}
SOURCE_HELP = (
    "where the batch's prompts come from: the prompts file, the box below, or a shot list "
    "(one job per row)"
)
#: Widgets drawn by the model picker: their values are saved as the model and options.
PICKER_WIDGETS = ("family", "model", "compare", "compare_search")
SCRIPT_HELP = (
    "Run the 01_generate notebook's batch without Jupyter. It takes the flags of "
    "`i2vkit bulk`; each can also be an environment variable (in brackets), and what is "
    "given neither way falls back to the defaults (the sample data next to the notebook)."
)


def confirmed(plan: Plan, ws: Workspace, *, yes: bool = False) -> Plan:
    """``plan``, once spending it is confirmed; every notebook path that submits calls this.

    The rule is `i2vkit bulk`'s (:func:`i2vkit.spending.confirm_spend`): above the plan's
    threshold (the form's *Ask above*, ``I2VKIT_CONFIRM_ABOVE``, US$ 5 by default) on a
    billed backend, ask unless ``--yes`` / ``I2VKIT_YES=1``. In the script a refusal
    ends the script with the CLI's exit code. In a kernel the question is asked with
    ``input()``; a "no", or a kernel that cannot ask (nbmake's), raises
    :class:`SpendNotConfirmed`, which stops *Run All* before anything is uploaded. A
    plan over the spend cap raises it too, with the CLI's own message (the cap, the
    cost, what to do): "not confirmed" would send the user looking for a question
    that was never asked.
    """
    from ..bill import read_balance

    def balance() -> float | None:
        return read_balance(ws.settings)

    if not in_kernel():
        code = confirm_spend(plan, ws.backend, yes=yes, balance=balance)
        if code is not None:
            sys.stdout.flush()
            sys.exit(code)
        return plan

    asked: list[str] = []

    def ask(question: str) -> str:
        asked.append(question)
        try:
            return input(question)
        except Exception:  # the kernel cannot ask (no front end attached: nbmake)
            return ""

    said: list[str] = []
    code = confirm_spend(
        plan, ws.backend, yes=yes, interactive=True, ask=ask, say=said.append, balance=balance
    )
    if (
        code == EXIT_INPUT and said and not asked
    ):  # refused before asking: the spend cap, in its words
        raise SpendNotConfirmed("\n".join(said))
    if code is not None:
        raise SpendNotConfirmed(
            f"Spending {usd(plan.estimated_cost or 0.0)} was not confirmed; nothing was "
            f"submitted. Answer y when asked, or set {BY_NAME['yes'].env}=1 before starting "
            "Jupyter."
        )
    return plan


def read_text(path: str | os.PathLike[str] | None) -> str:
    if not path:
        return ""
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except OSError:
        return ""


class BatchForm:
    """Everything a batch needs, as widgets in a notebook or as flags/env in a script.

    ``form.request()`` returns the :class:`~i2vkit.planning.BatchRequest` either way, and
    ``form.confirmed_plan(workspace)`` its plan once spending it is confirmed.
    """

    def __init__(
        self,
        argv: Sequence[str] | None = None,
        environ: Mapping[str, str] | None = None,
        base: str | os.PathLike[str] | None = None,
    ):
        self.base = Path(base).resolve() if base is not None else notebook_dir()
        self.environ = os.environ if environ is None else environ
        self.interactive = widgets_available()
        self.widget: Any = None
        self.given: dict[str, Given] = {}
        if self.interactive:
            self._build_widgets()
            return
        if argv is None:  # a script: its command line, with `i2vkit bulk`'s endings
            argv = sys.argv[1:]
            install_script_hooks(resume=[Path(sys.executable).name, *sys.argv])
        parser = batch_parser(Path(sys.argv[0]).name if sys.argv[0] else None, SCRIPT_HELP)
        self.given = given_by_args(parser.parse_args(list(argv)))

    # -- the request -----------------------------------------------------------------

    def request(self) -> BatchRequest:
        """The batch to run, from the widgets (notebook) or from argv/env/defaults (script)."""
        return self._request_and_run()[0]

    spec = request  # the name the notebooks used before the request table

    def run_values(self) -> dict[str, Any]:
        """The run fields (yes, dry_run, write_shots, no_progress) as given."""
        return self._request_and_run()[1]

    def _request_and_run(self) -> tuple[BatchRequest, dict[str, Any]]:
        if not self.interactive:
            return request_from(self._with_examples(self.given), self.environ, Path.cwd())
        given = {f.name: g for f in FIELDS if (g := self._widget_given(f.name)) is not None}
        env = from_environment(self.environ)
        given.update({f.name: env[f.name] for f in FIELDS if f.run and f.name in env})
        return build_request(given, self.base)

    def _with_examples(self, given: Mapping[str, Given]) -> dict[str, Given]:
        """``given`` plus the notebook's sample data where neither flags nor the
        environment name images, prompts or a shot list."""
        out = dict(given)
        named = set(out) | set(from_environment(self.environ))
        if "shots" in named:
            return out
        for name, example in EXAMPLES.items():
            if name == "prompts_file" and "prompts" in named:
                continue
            if name not in named:
                example_path = os.path.normpath(self.base / example)
                out[name] = Given(example_path, "the notebook's example")
        return out

    def _initial(self, name: str) -> Any:
        """A widget's first value: the environment's, else the value the user last set
        (kept in the ledger), else the example, else the default."""
        env = from_environment(self.environ)
        if name in env:
            return env[name].value
        if name in self.saved:
            return self.saved[name]
        if (
            name in EXAMPLES
            and "shots" not in env
            and not (name == "prompts_file" and "prompts" in env)
        ):
            return EXAMPLES[name]
        default = BY_NAME[name].default
        return "" if default is None else default

    def confirmed_plan(self, ws: Workspace) -> Plan:
        """The plan of the form's batch, once spending it is confirmed (see :func:`confirmed`).

        In the script a ``--dry-run`` or ``--write-shots`` ends here, after the preview
        printed the plan, as in `i2vkit bulk`.
        """
        request, run = self._request_and_run()
        plan = plan_batch(request, ws)
        if run["write_shots"] and not in_kernel():
            print(f"shot list written: {write_shots(plan, run['write_shots'])}")
            sys.exit(EXIT_OK)
        if run["dry_run"] and not in_kernel():
            print("dry run: nothing uploaded or submitted.", flush=True)
            sys.exit(EXIT_OK)
        return confirmed(plan, ws, yes=bool(run["yes"]))

    @property
    def show_progress(self) -> bool:
        return not self.run_values()["no_progress"]

    def preview(self, ws: Workspace) -> Preview:
        """What would run: images, prompts, job count, estimated cost and skipped files."""
        return Preview(self, ws)

    def text(self) -> str:
        r = self.request()
        options = format_options(r.options)
        return (
            f"images: {r.path(r.images_dir)}\nprompts: {r.path(r.prompts_file) or 'inline'}\n"
            f"model: {r.model}{'  ' + options if options else ''}\npairing: {r.pairing}\n"
            f"output: {r.path(r.output_dir) or 'AUTO_DOWNLOAD_DIR'}\n"
            f"concurrency: {r.concurrency}"
        )

    # -- widgets ------------------------------------------------------------------

    def _build_widgets(self) -> None:
        import ipywidgets as w

        self.memory = FormMemory(self.base, self.environ)
        self.saved: dict[str, Any] = self.memory.load()
        self._ready = False  # values being set up: nothing to save or redraw yet
        self.w: dict[str, Any] = {}
        for f in FIELDS:
            if f.label is not None and f.widget_kind not in ("model", "options", "vary"):
                self.w[f.name] = self._field_widget(f, self._initial(f.name))
        self.w["prompts_source"] = w.ToggleButtons(
            options=SOURCES,
            value=self._initial_source(),
            **described("Prompts from", SOURCE_HELP),
            style=STYLE,
        )
        if self.w["prompts_source"].value != "text" or not self.w["prompts"].value:
            self.w["prompts"].value = read_text(self._path(self.w["prompts_file"].value))
        self.w["output_dir"].placeholder = "AUTO_DOWNLOAD_DIR, else downloads next to the notebook"
        self.w["options"] = self._text(BY_NAME["options"], "")
        self.w["options"].placeholder = "name=value ... (any option not shown); model:name=value"
        self.w["vary"] = self._text(BY_NAME["vary"], "")
        self.w["vary"].placeholder = "name=v1,v2 ... (what no vary switch shows); model:name=v1,v2"
        self._listeners: list[Callable[[], None]] = []
        self.cost = w.HTML()
        self._typing = Debounce(self._notify)
        self.picker = ModelPicker(str(self._initial("model")), self._changed, self._typed)
        self.w.update(self.picker.widgets)
        self._preset_options()
        self._wire_prompts()
        self.browser = FolderBrowser(self.w["images_dir"], self.base)
        for name, widget in self.w.items():
            if name not in PICKER_WIDGETS:  # the picker reports through _changed
                typed = isinstance(widget, w.Text | w.Textarea)
                handler = self._typing.poke if typed else self._notify
                widget.observe(lambda _c, h=handler: h(), names="value")
        self.reset_button = w.Button(
            description="Reset",
            icon="undo",
            tooltip="every field back to its default (the sample data and the recommended model)",
        )
        self.reset_button.on_click(lambda _b: self.reset())
        self.widget = self._layout()
        self._ready = True
        self._show_cost()

    def _initial_source(self) -> str:
        """Where the prompts come from at first: the environment's shot list or typed
        prompts, else the source the user last picked, else the prompts file."""
        env = from_environment(self.environ)
        for source in ("shots", "text"):
            if SOURCE_FIELD[source] in env:
                return source
        if self.saved.get("prompts_source") in SOURCE_FIELD:
            return str(self.saved["prompts_source"])
        return next((s for s in ("shots", "text") if self._initial(SOURCE_FIELD[s])), "file")

    def _preset_options(self) -> None:
        """The starting options (and varied options) into the option widgets (and their
        *vary* switches); what fits none into *More options* (*More to vary*)."""
        env = from_environment(self.environ)
        start: dict[str, Any] = {}
        for name in ("options", "vary"):
            from_env = name in env or name not in self.saved
            start[name] = self._initial(name) if from_env else self.saved[name]
        leftover = self.picker.preset(parse_options(start["options"]))
        self.w["options"].value = format_options(leftover) if leftover else ""
        try:
            vary = parse_vary(start["vary"])
        except I2vkitError:  # shown as typed: the plan says what is wrong with it
            self.w["vary"].value = str(start["vary"])
            return
        self.w["vary"].value = format_vary(self.picker.preset_vary(vary))

    def _field_widget(self, f: Any, value: Any) -> Any:
        """The widget of one field of the table, holding ``value``."""
        import ipywidgets as w

        kind = f.widget_kind
        value = self._coerce(f, value)
        if kind == "int":
            return w.BoundedIntText(
                value=value,
                min=1,
                max=100 if f.name == "takes" else 1000,
                **described(f.label, f.help),
                style=STYLE,
                layout=w.Layout(width="220px"),
            )
        if kind == "checkbox":
            return w.Checkbox(value=value, **described(f.label, f.help))
        if kind == "toggle":
            return w.ToggleButtons(
                options=PAIRINGS, value=value, style=STYLE, **described(f.label, f.help)
            )
        if kind == "dropdown":  # a value outside the list stays, for the plan to name it
            return w.Dropdown(
                options=[*f.choices, *([value] if value not in f.choices else [])],
                value=value,
                **described(f.label, f.help),
                style=STYLE,
                layout=w.Layout(width="220px"),
            )
        if kind == "textarea":
            return w.Textarea(
                value=str(value or ""),
                **described(f.label, f.help),
                placeholder="one prompt per line; # starts a comment; {slow|fast} makes one "
                "prompt per word, {~a|b} picks one",
                layout=w.Layout(width="560px", height="110px"),
                style=STYLE,
                continuous_update=True,  # every key press; the plan is redrawn per pause
            )
        return self._text(f, value)

    @staticmethod
    def _coerce(f: Any, value: Any) -> Any:
        """``value`` (text from the environment, or a saved value) as the widget of ``f``
        holds it."""
        kind = f.widget_kind
        if kind == "int":
            return int(value or f.default)
        if kind == "checkbox":
            return value if isinstance(value, bool) else parse_bool(f.env, str(value))
        if kind == "dropdown":
            return str(value or f.default)
        if kind == "toggle":
            from ..pairing import normalize_pairing

            return normalize_pairing(str(value))
        return str(value or "")

    @staticmethod
    def _text(f: Any, value: Any) -> Any:
        """A one-line field; every key press reaches the kernel, the plan follows per pause."""
        import ipywidgets as w

        return w.Text(
            value=str(value or ""),
            **described(f.label, f.help),
            layout=w.Layout(width="560px"),
            style=STYLE,
            continuous_update=True,
        )

    def _path(self, value: str) -> Path | None:
        value = value.strip()
        if not value:
            return None
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.base / path

    def _widget_given(self, name: str) -> Given | None:
        """One field's value as the widgets hold it (None: the field is not given)."""
        f = BY_NAME[name]
        if f.label is None and name not in ("options", "vary"):
            return None
        source = SOURCE_FIELD[self.w["prompts_source"].value]
        if name in ("prompts_file", "prompts", "shots") and source != name:
            return Given(None, f.label or name)
        if name == "model":
            return Given(",".join(self.picker.names()), f.label or name)
        if name == "options":
            typed = parse_options(self.w["options"].value)
            return Given({**self.picker.values(), **typed}, "More options")
        if name == "vary":
            typed_vary = parse_vary(self.w["vary"].value)
            return Given({**self.picker.vary_values(), **typed_vary}, f.label or name)
        value = self.w[name].value
        if isinstance(value, str):
            value = value if name == "prompts" else value.strip()
            value = value or None
        return Given(value, f.label or name)

    def _wire_prompts(self) -> None:
        """Typing prompts switches the source to the typed text; picking a file loads it."""
        ww = self.w

        def file_changed(_change: Any) -> None:
            if ww["prompts_source"].value == "file":
                self._loading = True
                ww["prompts"].value = read_text(self._path(ww["prompts_file"].value))
                self._loading = False

        def text_edited(_change: Any) -> None:
            if not getattr(self, "_loading", False):
                ww["prompts_source"].value = "text"

        self._loading = False
        ww["prompts_file"].observe(file_changed, names="value")
        ww["prompts"].observe(text_edited, names="value")
        ww["prompts_source"].observe(file_changed, names="value")

    def _layout(self) -> Any:
        import ipywidgets as w

        ww = self.w
        browse = w.ToggleButton(description="Browse...", icon="folder-open")
        browser_box = w.Box([self.browser.widget], layout=w.Layout(display="none"))

        def toggle(change: Mapping[str, Any]) -> None:
            browser_box.layout.display = "" if change["new"] else "none"

        browse.observe(toggle, names="value")
        root = g.find_root(self.base)
        here = os.path.relpath(self.base, root) if g.is_within(self.base, root) else self.base
        help_html = w.HTML(
            "<span style='color:#666;font-size:12px'>Relative paths are read from the "
            f"notebook's folder (<code>{g.esc(here)}</code> in the folder Jupyter serves).</span>"
        )
        rows = [w.HBox([ww["images_dir"], browse, ww["recursive"]]), browser_box]
        rows += [ww[n] for n in ("prompts_source", "prompts_file", "shots", "prompts")]
        rows += [*self.picker.rows(), ww["options"], ww["vary"], ww["end_image"], ww["takes"]]
        rows.append(self.cost)
        placed = {"images_dir", "recursive", "prompts_file", "shots", "prompts", "options", "vary"}
        placed |= {"model", "end_image", "takes"}
        rest = [ww[f.name] for f in FIELDS if f.name in ww and f.name not in placed]
        rows = [*rows, *rest, w.HBox([self.reset_button, help_html])]
        return w.VBox(rows)  # every other field in the table's order

    def _show_cost(self) -> None:
        """The price label under the options: one video of each model at its options."""
        try:
            request = self.request()
            models = resolve_models(request.model)
            shares = split_options(models, request.options)
            prices = [(m, m.estimate_cost(o)) for m, o in zip(models, shares, strict=True)]
        except I2vkitError as exc:
            self.cost.value = (
                f"<span style='color:#c62828'>{g.esc(str(exc).splitlines()[0])}</span>"
            )
            return
        if len(prices) == 1:
            each = f"<b>{g.esc(usd(prices[0][1], 3))}</b>"
        else:
            each = ", ".join(f"{g.esc(m.name)} <b>{g.esc(usd(p, 3))}</b>" for m, p in prices)
        varied = " (before the varied values; the plan prices each)" if request.vary else ""
        self.cost.value = f"<span>price per video with these options: {each}{varied}</span>"

    @property
    def model_options(self) -> Any:
        """The first model's option widgets (None: an endpoint without a schema)."""
        return self.picker.model_options

    @property
    def compare_options(self) -> list[Any]:
        return self.picker.compare_options

    @property
    def compare_box(self) -> Any:
        return self.picker.compare_box

    def widget_options(self) -> dict[str, Any]:
        """The option widgets' values that differ from the schema defaults (notebook only)."""
        return self.picker.values()

    def _changed(self) -> None:
        """The model picker changed (a model, or one of its option widgets)."""
        if getattr(self, "_ready", False):
            self._notify()

    def _typed(self) -> None:
        """A key press in a model option's text field: the plan follows after a pause."""
        if getattr(self, "_ready", False):
            self._typing.poke()

    def _notify(self) -> None:
        """A value changed: the price line, the listeners (the preview), and the ledger's
        copy of the form, so *Run All* and a new kernel start from what is shown."""
        if not self._ready:
            return
        self._show_cost()
        for callback in list(self._listeners):
            callback()
        with contextlib.suppress(I2vkitError):  # a ledger that cannot be written: no memory
            self.memory.save(self.values())

    def observe(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` whenever any value in the form changes (notebook only): at
        once for a pick or a click, after a pause in typing for a text field."""
        if self.widget is not None:
            self._listeners.append(callback)

    def flush(self) -> None:
        """Redraw now what a pause in typing would redraw (code that sets a value and reads
        the plan right after)."""
        if self.widget is not None:
            self._typing.flush()

    def values(self) -> dict[str, Any]:
        """What the form holds, as it is kept in the ledger (notebook only)."""
        out: dict[str, Any] = {
            name: widget.value
            for name, widget in self.w.items()
            if name in BY_NAME and name not in ("model", "options", "vary", "prompts")
        }
        out["prompts_source"] = self.w["prompts_source"].value
        if out["prompts_source"] == "text":  # else the prompts are the file's, read again
            out["prompts"] = self.w["prompts"].value
        out["model"] = ",".join(self.picker.names())
        try:
            typed = parse_options(self.w["options"].value)
        except I2vkitError:
            typed = {}
        out["options"] = {**self.picker.values(), **typed}
        try:
            typed_vary = parse_vary(self.w["vary"].value)
        except I2vkitError:
            typed_vary = {}
        out["vary"] = {**self.picker.vary_values(), **typed_vary}
        return out

    def reset(self) -> None:
        """Every field back to where a first run starts (the environment's values, else the
        sample data and the defaults); the kept values are forgotten."""
        self.memory.forget()
        self.saved = {}
        self._ready = False
        try:
            for name, widget in self.w.items():
                if name in BY_NAME and name not in ("model", "options", "vary", "prompts"):
                    widget.value = self._coerce(BY_NAME[name], self._initial(name))
            names = str(self._initial("model")).split(",")
            self.picker.pick([n.strip() for n in names if n.strip()] or [DEFAULT_MODEL])
            self._preset_options()
            self.w["prompts_source"].value = self._initial_source()
            text = self._initial("prompts") if self.w["prompts_source"].value == "text" else ""
            self._loading = True
            self.w["prompts"].value = text or read_text(self._path(self.w["prompts_file"].value))
            self._loading = False
        finally:
            self._ready = True
        self._show_cost()
        for callback in list(self._listeners):
            callback()

    def set_value(self, name: str, text: str) -> None:
        """Put ``text`` into the widget(s) of field ``name``, as a person would (tests,
        and code filling the form): the model picks its family, version and models to
        compare; options go into the option widgets where they fit."""
        if name == "model":
            self.picker.pick([n.strip() for n in text.split(",") if n.strip()] or [DEFAULT_MODEL])
        elif name == "options":
            leftover = self.picker.preset(parse_options(text))
            self.w["options"].value = format_options(leftover)
        elif name == "vary":
            self.w["vary"].value = format_vary(self.picker.preset_vary(parse_vary(text)))
        elif name in ("prompts_file", "prompts", "shots"):
            self.w[name].value = text
            self.w["prompts_source"].value = {v: k for k, v in SOURCE_FIELD.items()}[name]
        else:
            self.w[name].value = self._coerce(BY_NAME[name], text)
        self.flush()


STYLE = {"description_width": "120px"}
__all__ = ["DEFAULT_CONCURRENCY", "BatchForm", "SpendNotConfirmed", "confirmed", "read_text"]
