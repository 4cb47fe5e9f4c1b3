"""More clips like one you liked, from a notebook cell: `i2vkit again` as a function.

The clip's recipe (its mp4 tags, else its sidecar; see :mod:`i2vkit.provenance`) is planned
as a new batch (:func:`i2vkit.planning.again.plan_again`), confirmed like every notebook
run (:func:`~i2vkit.notebook.form.confirmed`), then run. A grid's clip, a file in the
output folder or one copied anywhere else all work: only the file is read.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from ..config import Settings, load_settings
from ..engine import Progress, run_batch
from ..engine.progress import BatchResult
from ..planning.again import plan_again
from ..planning.request import BatchRequest
from ..provenance import recipe_from_file
from ..workspace import Workspace
from .form import confirmed


def again(
    video: str | os.PathLike[str],
    *,
    takes: int = 1,
    options: dict[str, Any] | None = None,
    yes: bool = False,
    settings: Settings | None = None,
    progress: Callable[[Progress], None] | None = None,
) -> BatchResult:
    """Make `takes` more clips like `video` (new seeds unless ``options={"seed": N}``)."""
    settings = settings or load_settings()
    recipe = recipe_from_file(video)
    with Workspace.open(settings, tell=True) as ws:
        plan = plan_again(recipe, ws, BatchRequest(takes=takes, options=dict(options or {})))
        print(plan.describe())
        plan = confirmed(plan, ws, yes=yes)
    return run_batch(plan, settings, progress=progress)
