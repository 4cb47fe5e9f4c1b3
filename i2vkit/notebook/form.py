"""The notebooks' widget layer: a batch form, a preview, progress bars, the gallery,
and a results browser, all of which fall back to plain text outside Jupyter.

The notebooks stay thin: every cell is one or two calls into this module or the
batch API, so a notebook exported to a script (``jupyter nbconvert --to script``)
runs with plain ``python``: ``in_kernel()`` is false there, no widget or IPython
module is imported, :class:`BatchForm` reads its values from the command line and
the environment instead of widgets, and :func:`show` prints text.

Why the run cell calls ``run_batch_sync`` and not ``await run_batch``: top-level
``await`` works in a kernel but is a SyntaxError in the exported script. The
blocking twin runs the async engine on a worker thread when a loop is already
running (the kernel's), and with ``asyncio.run`` in a script, so one cell works in
both. The progress callback then runs on the worker thread; setting ipywidgets
values from there is fine (the kernel sends comm messages through its
thread-safe IOPub socket), so the bars move while the cell runs.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from . import gallery as g
from .batch import DEFAULT_CONCURRENCY, BatchConfig, BatchResult, Plan, Progress, plan_batch
from .config import Settings, load_dotenv_values, load_settings, parse_bool
from .errors import I2vkitError
from .models import ModelSpec, get_model, list_models
from .pairing import normalize_pairing

DEFAULT_IMAGES = "../data/images"  # relative to the notebook's folder
DEFAULT_PROMPTS = "../data/prompts.txt"
DEFAULT_OUTPUT = "../downloads"
DEFAULT_MODEL = "wan"
PAIRINGS = [("all combinations", "all"), ("one-to-one", "one_to_one")]

#: Environment variables the form reads (in a kernel and in a script).
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
}

EXIT_OK, EXIT_FAILED, EXIT_STOPPED, EXIT_INTERRUPTED = 0, 1, 3, 130


# ----------------------------------------------------------------- environment


def in_kernel() -> bool:
    """True inside a Jupyter kernel. Never imports IPython (a script must not need it)."""
    if os.environ.get("I2VKIT_PLAIN"):  # force the text fallback (tests, CI logs)
        return False
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:
        return False
    return shell is not None and getattr(shell, "kernel", None) is not None


def widgets_available() -> bool:
    if not in_kernel():
        return False
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


def project_root() -> Path:
    """The project folder (holding notebooks/ and data/): from the current folder up,
    else where this package lives (an editable install), else the current folder."""
    cwd = Path.cwd().resolve()
    for folder in (cwd, *cwd.parents):
        if (folder / "notebooks").is_dir() and (folder / "data").is_dir():
            return folder
    here = Path(__file__).resolve().parents[1]
    if (here / "notebooks").is_dir():
        return here
    return cwd


def notebook_dir() -> Path:
    """The folder relative paths in the form are read against.

    In a kernel: its working folder, which Jupyter (and nbmake) set to the
    notebook's folder. In a script: ``I2VKIT_NOTEBOOK_DIR``, else the project's
    ``notebooks`` folder, so the defaults (``../data/images``) still find the sample data.
    """
    env = os.environ.get("I2VKIT_NOTEBOOK_DIR")
    if env:
        return Path(env).expanduser().resolve()
    if in_kernel():
        return Path.cwd().resolve()
    root = project_root()
    return root / "notebooks" if (root / "notebooks").is_dir() else root


def install_script_excepthook() -> None:
    """In a script, an i2vkit error (bad folder, bad option...) ends with one line and
    exit code 2 instead of a traceback, like the CLI."""
    if getattr(sys.excepthook, "_i2vkit", False):
        return
    previous = sys.excepthook

    def hook(kind, value, tb):  # type: ignore[no-untyped-def]
        if isinstance(value, I2vkitError):
            from .config import redact

            try:
                key = load_settings().fal_key
            except Exception:
                key = None
            print(f"error: {redact(str(value), key)}", file=sys.stderr)
            sys.exit(2)
        previous(kind, value, tb)

    hook._i2vkit = True  # type: ignore[attr-defined]
    sys.excepthook = hook


def env_flag(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    return default if value in (None, "") else parse_bool(name, value)


def show(obj: Any) -> None:
    """Display ``obj`` in a notebook (widget or HTML), or print its text form in a script."""
    if obj is None:
        return
    if in_kernel():
        from IPython.display import display

        live = getattr(obj, "display_live", None)
        if live is not None:
            live()
            return
        widget = getattr(obj, "widget", None)
        display(widget if widget is not None else obj)
        return
    text = obj.text() if hasattr(obj, "text") else str(obj)
    print(text, flush=True)


class Live:
    """A view that is drawn as an HTML output (kept in the saved notebook, unlike a widget)
    and redrawn in place, through a display id, whenever ``subscribe``'s event fires."""

    def __init__(self, render: Callable[[], Rich], subscribe: Callable[[Callable[[], None]], None]):
        self.render = render
        self.subscribe = subscribe
        self.first = render()

    def display_live(self) -> None:
        from IPython.display import display

        handle = display(self.first, display_id=True)

        def redraw() -> None:
            handle.update(self.render())

        self.subscribe(redraw)

    def _repr_html_(self) -> str:
        return self.first.html

    def text(self) -> str:
        return self.first.text()


class Rich:
    """HTML for a notebook plus its text twin for a script."""

    def __init__(self, html: str, text: str):
        self.html = html
        self._text = text

    def _repr_html_(self) -> str:
        return self.html

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict[str, str]:
        return {"text/html": self.html, "text/plain": self._text[:2000]}

    def text(self) -> str:
        return self._text

    def __str__(self) -> str:
        return self._text


# --------------------------------------------------------------------- settings


def safe_url(url: str | None) -> str | None:
    """A URL without any user:password part."""
    if not url:
        return url
    parts = urlsplit(url)
    if "@" in parts.netloc:
        parts = parts._replace(netloc=parts.netloc.rsplit("@", 1)[1])
    return urlunsplit(parts)


def backend_description(settings: Settings) -> str:
    """Which backend a run will use, without ever showing the key."""
    if settings.demo:
        from .backend import DEMO_BANNER

        return f"backend: emulator (demo mode)\n{DEMO_BANNER}"
    key = "FAL_KEY is set" if settings.fal_key else "no FAL_KEY"
    if settings.fal_url:
        return f"backend: fal-compatible service at {safe_url(settings.fal_url)} ({key})"
    return f"backend: fal.ai ({key}; jobs are billed to your fal account)"


def settings_summary(settings: Settings) -> Rich:
    lines = [
        backend_description(settings),
        f"ledger: {settings.db_path}",
        f"default download folder (AUTO_DOWNLOAD_DIR): {settings.download_dir}",
    ]
    if settings.env_file:
        lines.append(f"settings file: {settings.env_file}")
    text = "\n".join(lines)
    color = "#8a6d00" if settings.demo else "#1b5e20"
    first, *rest = lines
    html = (
        f"<div style='font:13px system-ui,sans-serif'><b style='color:{color}'>{g.esc(first)}</b>"
        + "".join(f"<br>{g.esc(x)}" for x in rest)
        + "</div>"
    )
    return Rich(html, text)


# ------------------------------------------------------------------------- form


def model_label(model: ModelSpec) -> str:
    """Dropdown text: name, title and price."""
    if model.pricing is None:
        price = "price unknown"
    else:
        est = model.estimate_cost({})
        unit = "video" if model.pricing.unit == "video" else "s"
        price = f"${model.pricing.usd:g}/{unit}"
        if est is not None and model.pricing.unit != "video":
            price += f", ~${est:.2f}/video"
    return f"{model.name}: {model.title} ({price})"


def parse_options(text: str | Sequence[str] | None) -> dict[str, str]:
    """``"duration=5 resolution=480p"`` (or a list of KEY=VALUE) -> a dict."""
    if not text:
        return {}
    items = shlex.split(text) if isinstance(text, str) else list(text)
    options = {}
    for item in items:
        for piece in item.split(","):
            if not piece.strip():
                continue
            key, sep, value = piece.partition("=")
            if not sep or not key.strip():
                raise I2vkitError(f"Model option {piece!r} is not KEY=VALUE (e.g. duration=5).")
            options[key.strip()] = value.strip()
    return options


def build_arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Run the 01_generate notebook's batch headlessly. Every flag can also be "
        "given as an environment variable (shown in brackets); flags win.",
    )
    p.add_argument("--images-dir", help=f"folder of images [{ENV['images_dir']}]")
    p.add_argument("--prompts-file", help=f"one prompt per line [{ENV['prompts_file']}]")
    p.add_argument(
        "--prompts", help=f"prompts as text, one per line (instead of a file) [{ENV['prompts']}]"
    )
    p.add_argument("--model", help=f"model name or fal endpoint id [{ENV['model']}]")
    p.add_argument(
        "--option", "-o", action="append", metavar="KEY=VALUE", help="model option (repeatable)"
    )
    p.add_argument("--pairing", choices=["all", "one_to_one"], help=f"[{ENV['pairing']}]")
    p.add_argument("--one-to-one", action="store_true", help="same as --pairing one_to_one")
    p.add_argument(
        "--output-dir", help=f"where videos go [{ENV['output_dir']}, else AUTO_DOWNLOAD_DIR]"
    )
    p.add_argument("--concurrency", type=int, help=f"[{ENV['concurrency']}]")
    p.add_argument("--recursive", action="store_true", default=None, help="scan sub-folders")
    return p


def _given(name: str) -> str | None:
    """An environment variable, else the same name in the .env file."""
    if name in os.environ:  # set, even to "" (= unset on purpose): the .env file is not read
        return os.environ[name] or None
    try:
        values, _ = load_dotenv_values(None)
    except I2vkitError:
        return None
    return values.get(name) or None


def resolve_values(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The form's values: defaults, overridden by the environment, overridden by ``argv``.

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
        "output_dir": _given("AUTO_DOWNLOAD_DIR") or DEFAULT_OUTPUT,
        "concurrency": DEFAULT_CONCURRENCY,
        "recursive": False,
        "from_default": {"images_dir", "prompts_file"},
    }
    if values["output_dir"] == DEFAULT_OUTPUT:
        values["from_default"].add("output_dir")
    for field, name in ENV.items():
        raw = env.get(name)
        if raw in (None, ""):
            continue
        if field == "concurrency":
            try:
                values[field] = int(raw)
            except ValueError:
                raise I2vkitError(f"{name}={raw!r} is not a whole number.") from None
        elif field == "recursive":
            values[field] = parse_bool(name, raw)
        else:
            values[field] = raw
        values["from_default"].discard(field)
    if argv is not None:
        args = build_arg_parser().parse_args(list(argv))
        for field in ("images_dir", "prompts_file", "prompts", "model", "output_dir"):
            if getattr(args, field) is not None:
                values[field] = getattr(args, field)
                values["from_default"].discard(field)
        if args.option:
            values["options"] = " ".join(shlex.quote(o) for o in args.option)
        if args.pairing:
            values["pairing"] = args.pairing
        if args.one_to_one:
            values["pairing"] = "one_to_one"
        if args.concurrency is not None:
            values["concurrency"] = args.concurrency
        if args.recursive:
            values["recursive"] = True
    if values["prompts"] is not None and "prompts_file" in values["from_default"]:
        values["prompts_file"] = None  # inline prompts given: do not also read the sample file
    return values


def read_text(path: str | os.PathLike) -> str:
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except OSError:
        return ""


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
        from .images import IMAGE_EXTENSIONS

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

    ``form.config()`` returns the :class:`BatchConfig` either way.
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
            argv = sys.argv[1:]  # a script: its command line
            install_script_excepthook()
        self.values = resolve_values(None if interactive else argv, environ)
        self.widget = None
        if interactive:
            self._build_widgets()

    # -- values -------------------------------------------------------------------

    def _path(self, value: str | None, field: str) -> str | None:
        """Defaults are relative to the notebook folder; given paths are used as given."""
        if value is None:
            return None
        if field in self.values["from_default"] or in_kernel():
            path = Path(value).expanduser()
            return str(path if path.is_absolute() else Path(os.path.normpath(self.base / path)))
        return value

    def config(self) -> BatchConfig:
        """The batch to run, from the widgets (notebook) or from argv/env/defaults (script)."""
        if self.widget is not None:
            v = self.w
            source = v["prompts_source"].value
            prompts_file = self._path(v["prompts_file"].value.strip(), "prompts_file")
            return BatchConfig(
                images_dir=self._path(v["images_dir"].value.strip(), "images_dir"),
                prompts_file=prompts_file if source == "file" else None,
                prompts=v["prompts"].value if source == "text" else None,
                model=v["model"].value,
                options=parse_options(v["options"].value),
                pairing=v["pairing"].value,
                output_dir=self._path(v["output_dir"].value.strip(), "output_dir"),
                concurrency=int(v["concurrency"].value),
                recursive=bool(v["recursive"].value),
            )
        vals = self.values
        return BatchConfig(
            images_dir=self._path(vals["images_dir"], "images_dir"),
            prompts_file=self._path(vals["prompts_file"], "prompts_file"),
            prompts=vals["prompts"],
            model=vals["model"],
            options=parse_options(vals["options"]),
            pairing=normalize_pairing(vals["pairing"]),
            output_dir=self._path(vals["output_dir"], "output_dir"),
            concurrency=int(vals["concurrency"]),
            recursive=bool(vals["recursive"]),
        )

    # -- widgets ------------------------------------------------------------------

    def _build_widgets(self) -> None:
        import ipywidgets as w

        v = self.values
        wide = w.Layout(width="560px")
        style = {"description_width": "120px"}
        models = list_models()
        model_options = [(model_label(m), m.name) for m in models]
        if v["model"] not in [m.name for m in models]:
            try:
                spec = get_model(v["model"])
                model_options.append((model_label(spec), v["model"]))
            except I2vkitError:
                pass
        model_value = v["model"] if v["model"] in [o[1] for o in model_options] else "wan"
        prompts_text = v["prompts"] or read_text(self._path(v["prompts_file"], "prompts_file"))
        self.w: dict[str, Any] = {
            "images_dir": w.Text(
                value=v["images_dir"],
                description="Images folder",
                layout=wide,
                style=style,
                continuous_update=False,
            ),
            "recursive": w.Checkbox(value=bool(v["recursive"]), description="include sub-folders"),
            "prompts_source": w.ToggleButtons(
                options=[("prompts file", "file"), ("typed below", "text")],
                value="text" if v["prompts"] else "file",
                description="Prompts from",
                style=style,
            ),
            "prompts_file": w.Text(
                value=v["prompts_file"] or "",
                description="Prompts file",
                layout=wide,
                style=style,
                continuous_update=False,
            ),
            "prompts": w.Textarea(
                value=prompts_text,
                description="Prompts",
                placeholder="one prompt per line; # starts a comment",
                layout=w.Layout(width="560px", height="110px"),
                style=style,
                continuous_update=False,
            ),
            "model": w.Dropdown(
                options=model_options,
                value=model_value,
                description="Model",
                layout=wide,
                style=style,
            ),
            "options": w.Text(
                value=v["options"],
                description="Model options",
                placeholder="e.g. resolution=480p num_frames=81",
                layout=wide,
                style=style,
                continuous_update=False,
            ),
            "pairing": w.ToggleButtons(
                options=PAIRINGS,
                value=normalize_pairing(v["pairing"]),
                description="Pairing",
                style=style,
            ),
            "output_dir": w.Text(
                value=v["output_dir"],
                description="Output folder",
                layout=wide,
                style=style,
                continuous_update=False,
            ),
            "concurrency": w.BoundedIntText(
                value=int(v["concurrency"]),
                min=1,
                max=1000,
                description="Concurrency",
                style=style,
                layout=w.Layout(width="220px"),
            ),
        }
        ww = self.w
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
        help_html = w.HTML(
            "<span style='color:#666;font-size:12px'>Relative paths are read from the "
            f"notebook's folder (<code>{g.esc(self.base)}</code>).</span>"
        )
        self.widget = w.VBox(
            [
                w.HBox([ww["images_dir"], browse, ww["recursive"]]),
                browser_box,
                ww["prompts_source"],
                ww["prompts_file"],
                ww["prompts"],
                ww["model"],
                ww["options"],
                ww["pairing"],
                ww["output_dir"],
                ww["concurrency"],
                help_html,
            ]
        )

    def observe(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` whenever any value in the form changes (notebook only)."""
        if self.widget is None:
            return
        for widget in self.w.values():
            widget.observe(lambda _c: callback(), names="value")

    def preview(self, settings: Settings | None = None) -> Preview:
        """What would run: images, prompts, job count, estimated cost and skipped files."""
        return Preview(self, settings or load_settings())

    def text(self) -> str:
        c = self.config()
        return (
            f"images: {c.images_dir}\nprompts: {c.prompts_file or 'inline'}\nmodel: {c.model} "
            f"{c.options or ''}\npairing: {c.pairing}\noutput: {c.output_dir}\n"
            f"concurrency: {c.concurrency}"
        )


# ---------------------------------------------------------------------- preview


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
        cost = "unknown (no published price for this endpoint)"
    else:
        cost = f"${plan.estimated_cost:,.2f} (${plan.cost_per_video:,.3f} per video)"
        if settings.demo:
            cost += " on fal; demo mode: nothing is billed"
    skipped = "".join(
        f"<li><b>{g.esc(s.path.name)}</b>: {g.esc(s.reason)}</li>" for s in plan.skipped
    )
    warn = ""
    if base is not None and not g.is_within(plan.output_dir.resolve(), g.find_root(base)):
        warn = (
            "<div style='color:#8a6d00'>The output folder is outside the folder Jupyter serves "
            f"({g.esc(g.find_root(base))}): the gallery can only embed small videos from "
            "there.</div>"
        )
    return (
        "<div style='font:13px system-ui,sans-serif'>"
        f"<div><b>{len(plan.pairs)} jobs</b>: {len(plan.images)} images x "
        f"{len(plan.prompts)} prompts ({g.esc(plan.config.pairing)}) on "
        f"<b>{g.esc(plan.model.name)}</b> ({g.esc(plan.model.endpoint_id)})</div>"
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
        try:
            self.plan = plan_batch(self.form.config(), self.settings)
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


# --------------------------------------------------------------------- progress


class ProgressBars:
    """Bars for uploads, submitted, running, downloaded and failed, fed by ``update``.

    Pass ``bars.update`` as the ``progress=`` callback of ``run_batch``/``run_batch_sync``.
    It may be called from the event loop or from the batch's worker thread; widget
    values are set directly. Outside Jupyter it prints a line at most every
    ``interval`` seconds (and always the last one).
    """

    ROWS = [
        ("uploads", "uploaded", "uploads_total", "info"),
        ("submitted", "submitted", "total", ""),
        ("running", "running", "total", "warning"),
        ("downloaded", "downloaded", "total", "success"),
        ("failed", "failed", "total", "danger"),
    ]

    def __init__(self, interval: float = 1.0, stream: Any = None):
        self.interval = interval
        self.stream = stream
        self.last: Progress | None = None
        self._printed_at: float | None = None
        self._printed = ""
        self._lock = threading.Lock()
        self.widget = None
        self.bars: dict[str, Any] = {}
        self.updates = 0
        if widgets_available():
            import ipywidgets as w

            rows = []
            for label, _value, _total, style in self.ROWS:
                bar = w.IntProgress(
                    value=0,
                    min=0,
                    max=1,
                    description=label,
                    bar_style=style,
                    style={"description_width": "90px"},
                    layout=w.Layout(width="480px"),
                )
                count = w.Label("0 / 0")
                self.bars[label] = (bar, count)
                rows.append(w.HBox([bar, count]))
            self.message = w.Label("")
            self.widget = w.VBox([*rows, self.message])

    def update(self, p: Progress) -> None:
        with self._lock:
            self.updates += 1
            self.last = Progress(**vars(p))
            if self.widget is not None:
                for label, value, total, _style in self.ROWS:
                    bar, count = self.bars[label]
                    top = max(1, getattr(p, total))
                    bar.max = top
                    bar.value = min(getattr(p, value), top)
                    count.value = f"{getattr(p, value)} / {getattr(p, total)}"
                self.message.value = p.message
                return
            line = self.line(p)
            now = time.monotonic()
            final = p.message == "finished"
            due = self._printed_at is None or now - self._printed_at >= self.interval
            if line != self._printed and (final or due):
                print(line, file=self.stream or sys.stdout, flush=True)
                self._printed, self._printed_at = line, now

    @staticmethod
    def line(p: Progress) -> str:
        return (
            f"uploaded {p.uploaded}/{p.uploads_total}  submitted {p.submitted}/{p.total}  "
            f"running {p.running}  downloaded {p.downloaded}/{p.total}  failed {p.failed}"
            + (f"  ({p.message})" if p.message else "")
        )

    def __call__(self, p: Progress) -> None:
        self.update(p)

    def text(self) -> str:
        return "" if self.last is None else self.line(self.last)


# ---------------------------------------------------------------------- gallery


def gallery(source: Any, base: str | os.PathLike | None = None, **kwargs: Any) -> Rich:
    """The inline gallery of a BatchResult or ledger rows (text in a script)."""
    base = base if base is not None else notebook_dir()
    return Rich(g.gallery_html(source, base, **kwargs), g.gallery_text(source))


def timeline(rows: Sequence[Mapping[str, Any]], concurrency: int | None = None) -> Rich:
    return Rich(g.timeline_svg(rows, concurrency=concurrency), g.timeline_text(rows, concurrency))


def exit_code(result: BatchResult) -> int:
    if result.fatal:
        return EXIT_STOPPED
    if result.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_OK if result.ok else EXIT_FAILED


def done(result: BatchResult) -> None:
    """End of a notebook run: in a script, exit with the CLI's code (1 when jobs failed)."""
    code = exit_code(result)
    if not in_kernel() and code:
        sys.exit(code)


# -------------------------------------------------------------- results browser

FILE_COLUMNS = ["id", "status", "image", "prompt", "local_file", "error"]


class ResultsBrowser:
    """Past batches from the ledger, filtered by model, batch and status.

    In a notebook the filters are widgets and the views (gallery, timeline, files)
    redraw when they change; in a script the batch comes from ``I2VKIT_BATCH``
    (a prefix is enough; default: the newest) and the views print text.
    """

    def __init__(self, settings: Settings | None = None, base: str | os.PathLike | None = None):
        from .store import Store

        self.settings = settings or load_settings()
        self.base = Path(base) if base is not None else notebook_dir()
        self.store = Store(self.settings.db_path)
        self.batches = self.store.list_batches()
        wanted = os.environ.get("I2VKIT_BATCH") or None
        chosen = None
        if wanted:
            batch = self.store.get_batch(wanted)
            chosen = batch["id"] if batch else None
        elif self.batches:
            chosen = self.batches[0]["id"]
        self.batch_id: str | None = chosen
        self.model: str | None = None
        self.status: str | None = None
        self._listeners: list[Callable[[], None]] = []
        self.widget = None
        if widgets_available():
            self._build_widgets()

    def _batch_label(self, b: Mapping[str, Any]) -> str:
        return (
            f"{b['id']}  {str(b['created_at'])[:19]}  {b['model']}  {b['backend']}  "
            f"{b['job_count']} jobs, {b['done'] or 0} done, {b['failed'] or 0} failed"
        )

    def _build_widgets(self) -> None:
        import ipywidgets as w

        style = {"description_width": "70px"}
        models = sorted({b["model"] for b in self.batches})
        self.model_w = w.Dropdown(
            options=[("any", None)] + [(m, m) for m in models], description="Model", style=style
        )
        self.batch_w = w.Dropdown(
            options=[(self._batch_label(b), b["id"]) for b in self.batches],
            value=self.batch_id,
            description="Batch",
            style=style,
            layout=w.Layout(width="720px"),
        )
        self.status_w = w.Dropdown(
            options=[("any", None)]
            + [
                (s, s)
                for s in (
                    "downloaded",
                    "failed",
                    "cancelled",
                    "pending",
                    "queued",
                    "running",
                    "completed",
                )
            ],
            description="Status",
            style=style,
        )
        self.table_w = w.HTML(self.batches_html())

        def model_changed(change: Mapping[str, Any]) -> None:
            self.model = change["new"]
            shown = [b for b in self.batches if self.model in (None, b["model"])]
            self.batch_w.options = [(self._batch_label(b), b["id"]) for b in shown]
            self.batch_w.value = shown[0]["id"] if shown else None

        def batch_changed(change: Mapping[str, Any]) -> None:
            self.batch_id = change["new"]
            self._notify()

        def status_changed(change: Mapping[str, Any]) -> None:
            self.status = change["new"]
            self._notify()

        self.model_w.observe(model_changed, names="value")
        self.batch_w.observe(batch_changed, names="value")
        self.status_w.observe(status_changed, names="value")
        self.widget = w.VBox([self.table_w, w.HBox([self.model_w, self.status_w]), self.batch_w])

    def _notify(self) -> None:
        for fn in self._listeners:
            fn()

    def _live(self, render: Callable[[], Rich]) -> Live:
        """A view that redraws when the filters change."""
        return Live(render, self._listeners.append)

    # -- data ---------------------------------------------------------------------

    def batch(self) -> dict[str, Any] | None:
        return self.store.get_batch(self.batch_id) if self.batch_id else None

    def jobs(self) -> list[dict[str, Any]]:
        if not self.batch_id:
            return []
        statuses = [self.status] if self.status else None
        rows = self.store.jobs(self.batch_id, statuses=statuses)
        return [r for r in rows if self.model in (None, r["model"])]

    def failed_jobs(self) -> list[dict[str, Any]]:
        if not self.batch_id:
            return []
        return self.store.jobs(self.batch_id, statuses=["failed", "cancelled"])

    # -- views --------------------------------------------------------------------

    def batches_html(self) -> str:
        if not self.batches:
            return "<div>No batches in the ledger yet: run 01_generate first.</div>"
        cols = ["id", "created_at", "model", "backend", "job_count", "done", "failed", "output_dir"]
        return g.table_html(self.batches, cols)

    def text(self) -> str:
        if not self.batches:
            return f"No batches in {self.settings.db_path} yet: run 01_generate first."
        cols = ["id", "created_at", "model", "backend", "job_count", "done", "failed", "output_dir"]
        return g.table_text(self.batches, cols) + f"\nselected batch: {self.batch_id}"

    def _empty(self) -> Rich:
        msg = "No batch selected (the ledger has none yet): run 01_generate first."
        return Rich(f"<div>{g.esc(msg)}</div>", msg)

    def gallery(self, **kwargs: Any) -> Any:
        def render() -> Rich:
            if not self.batch_id:
                return self._empty()
            return gallery(self.jobs(), self.base, title=f"batch {self.batch_id}", **kwargs)

        return self._live(render)

    def timeline(self) -> Any:
        def render() -> Rich:
            if not self.batch_id:
                return self._empty()
            return timeline(self.jobs())

        return self._live(render)

    def files(self) -> Any:
        def render() -> Rich:
            if not self.batch_id:
                return self._empty()
            rows = [
                {
                    **r,
                    "image": Path(r["image_path"]).name,
                    "prompt": r["prompt"][:60],
                    "local_file": r["local_file"] or "",
                    "error": r["error"] or "",
                }
                for r in self.jobs()
            ]
            batch = self.batch() or {}
            head = f"batch {self.batch_id}: videos in {batch.get('output_dir')}"
            return Rich(
                f"<div style='font:13px system-ui'>{g.esc(head)}</div>"
                + g.table_html(rows, FILE_COLUMNS),
                head + "\n" + g.table_text(rows, FILE_COLUMNS),
            )

        return self._live(render)

    def close(self) -> None:
        self.store.close()
