"""The notebooks' widget layer: a batch form and its preview, progress bars, the gallery
and a results browser, each falling back to plain text outside Jupyter.

The notebooks stay thin: every cell is one or two calls into this package or the
engine, so a notebook exported to a script (``jupyter nbconvert --to script``) runs
with plain ``python``: ``in_kernel()`` is false there, no widget or IPython module
is imported, :class:`BatchForm` reads `i2vkit bulk`'s flags (and ``I2VKIT_*``
variables) instead of widgets, and :func:`show` prints text. There is no second
command line here: the form's widgets, flags and variables are generated from the
request table (:mod:`i2vkit.planning.request`), and the confirmation before spending
and the exit codes are the CLI's own (:mod:`i2vkit.spending`, :mod:`i2vkit.exits`).

Why the run cell calls the blocking ``run_batch`` and not ``await run_batch_async``:
top-level ``await`` works in a kernel but is a SyntaxError in the exported script.
The blocking entry point runs the batch on a worker thread when a loop is already
running (the kernel's), so one cell works in both.

    display.py   in_kernel, show, Rich/Live views, settings_summary (money: money.usd)
    form.py      BatchForm (widgets from the request table), confirmed_plan
    model_picker.py, pickers.py   the model family/version/compare lists, FolderBrowser
    preview.py   Preview: what the form's batch would run
    progress.py  ProgressBars (widgets, or the CLI's reporter in a script)
    results.py   ResultsBrowser, gallery, timeline, run_summary (a run as small tables),
                 done (the script's exit code), results_view, the report button
    compare_view.py   CompareView: the comparison grid (laid out by i2vkit.grid_layout),
                 a keeper box and an *again* button per clip
    again.py     again() (`i2vkit again` as a function) and AgainPanel (a clip's again:
                 its plan, its cost, the question, the new batch)
    spend_question.py   SpendQuestion: the CLI's spend question as two buttons
    actions.py   RetryButton: a batch's failed jobs, their cost, the question, the retry
    memory.py    the form's values kept in the ledger; the debounce of typing
"""

from ..config import Settings
from ..money import usd as money  # US$ 3.60, never a $ pair JupyterLab typesets as math
from ..workspace import Workspace
from .actions import RetryButton
from .compare_view import CompareView
from .display import (
    Live,
    Rich,
    backend_description,
    env_flag,
    in_kernel,
    notebook_dir,
    project_root,
    safe_url,
    settings_summary,
    show,
    widgets_available,
)
from .form import BatchForm, SpendNotConfirmed, confirmed
from .pickers import FolderBrowser, model_label
from .preview import Preview, plan_html
from .progress import ProgressBars
from .results import (
    ResultsBrowser,
    done,
    gallery,
    results_view,
    run_summary,
    timeline,
)

__all__ = [
    "BatchForm",
    "CompareView",
    "FolderBrowser",
    "Live",
    "Preview",
    "ProgressBars",
    "ResultsBrowser",
    "RetryButton",
    "Rich",
    "SpendNotConfirmed",
    "confirmed",
    "backend_description",
    "done",
    "env_flag",
    "gallery",
    "in_kernel",
    "model_label",
    "money",
    "notebook_dir",
    "plan_html",
    "project_root",
    "results_view",
    "run_summary",
    "safe_url",
    "settings_summary",
    "show",
    "timeline",
    "widgets_available",
    "workspace",
]


def workspace(settings: Settings | None = None) -> Workspace:
    """The notebook's workspace (settings -> backend, ledger, model catalogue), opened once;
    a week-old catalogue is read again from fal first, and that is said in one line."""
    return Workspace.open(settings, tell=True)
