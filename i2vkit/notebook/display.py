"""Where the notebook layer is running, and how a view is shown there.

In a Jupyter kernel a view is a widget or an HTML output; in the exported script
(``in_kernel()`` false) it is printed as text. Nothing here imports IPython unless
a kernel is already running, so the script needs neither IPython nor ipywidgets.

Money in HTML goes through :func:`i2vkit.money.usd`: JupyterLab typesets text between two
dollar signs as LaTeX, which swallowed "$3.60 ($0.400 per video)" into "3.60(0.400
per video)". ``US$ 3.60`` has no dollar pair to typeset, and the ``tex2jax_ignore``
/ ``mathjax_ignore`` classes on our HTML roots keep any text a user typed (a prompt
with two dollar signs) from being typeset either.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .. import gallery as g
from ..config import Settings, parse_bool

#: Class for every HTML root we emit: MathJax 2 and 3 (JupyterLab) skip such elements.
NO_MATH = "tex2jax_ignore mathjax_ignore"


def in_kernel() -> bool:
    """True inside a Jupyter kernel. Never imports IPython (a script must not need it)."""
    if env_flag("I2VKIT_PLAIN"):  # force the text fallback (tests, CI logs); 0 is no
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


def env_flag(name: str, default: bool = False) -> bool:
    """A yes/no environment variable, read by THE boolean parser (config.parse_bool)."""
    value = os.environ.get(name)
    return default if value in (None, "") else parse_bool(name, value)


def project_root() -> Path:
    """The project folder (holding notebooks/ and data/): from the current folder up,
    else where this package lives (an editable install), else the current folder."""
    cwd = Path.cwd().resolve()
    for folder in (cwd, *cwd.parents):
        if (folder / "notebooks").is_dir() and (folder / "data").is_dir():
            return folder
    here = Path(__file__).resolve().parents[2]
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
    if text:
        print(text, flush=True)


class Rich:
    """HTML for a notebook plus its text twin for a script."""

    def __init__(self, html: str, text: str):
        self.html = f"<div class='{NO_MATH}'>{html}</div>"
        self._text = text

    def _repr_html_(self) -> str:
        return self.html

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict[str, str]:
        return {"text/html": self.html, "text/plain": self._text[:2000]}

    def text(self) -> str:
        return self._text

    def __str__(self) -> str:
        return self._text


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
        from ..backend import DEMO_BANNER

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


def show_clips(output: Any, result: Any) -> None:
    """A run's clips (a BatchResult) in an ``ipywidgets.Output``: what it displays goes
    through JupyterLab's renderer, which turns the videos' relative links into the server's.
    A widget's own HTML does not, so the videos of a gallery written there would not load."""
    from ..gallery import gallery_html, gallery_text

    html, text = gallery_html(result, notebook_dir()), gallery_text(result)
    data = {"text/html": html, "text/plain": text}
    output.outputs = ({"output_type": "display_data", "data": data, "metadata": {}},)
