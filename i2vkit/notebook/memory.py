"""What the notebook form holds, kept in the ledger so *Run All* and a new kernel keep it.

Why the ledger and not a file beside the notebook: the ledger (``I2VKIT_DB``) is already
where a user's batches live and what every test isolates, so a form filled in by hand is
never read back by a test run (or by another user's copy of the same folder), and there
is no second file to ignore in git or copy with the notebook. The values are keyed by the
notebook's folder, so two notebook folders keep their own forms. A ledger that cannot be
opened just means the form starts from its defaults; the batch itself then says why.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..config import load_settings
from ..errors import I2vkitError
from ..store import Store

#: Quiet time after the last key press before the plan is redrawn (typing stays fluid; the
#: preview still follows within a fraction of a second).
DEBOUNCE_S = 0.3


class FormMemory:
    """The form values saved for one notebook folder in the ledger ``environ`` names."""

    def __init__(self, base: Path, environ: Mapping[str, str]):
        self.place = str(base)
        self.problem: str | None = None
        try:
            self.path: Path | None = load_settings(dict(environ)).db_path
        except I2vkitError as exc:
            self.path, self.problem = None, str(exc)

    def _store(self) -> Store | None:
        if self.path is None:
            return None
        try:
            return Store(self.path)
        except I2vkitError as exc:
            self.path, self.problem = None, str(exc)
            return None

    def load(self) -> dict[str, Any]:
        store = self._store()
        if store is None:
            return {}
        with store:
            return store.form_values(self.place) or {}

    def save(self, values: dict[str, Any]) -> None:
        store = self._store()
        if store is not None:
            with store:
                store.save_form_values(self.place, values)

    def forget(self) -> None:
        store = self._store()
        if store is not None:
            with store:
                store.forget_form_values(self.place)


class Debounce:
    """Call ``action()`` once the calls to :meth:`poke` have paused for ``delay`` seconds.

    Used for typing: every key press reaches the kernel (``continuous_update``), and the
    plan is drawn again once per pause instead of once per key. :meth:`flush` runs a
    pending call at once (code that sets a value and reads the plan right after).
    """

    def __init__(self, action: Callable[[], None], delay: float = DEBOUNCE_S):
        self.action = action
        self.delay = delay
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()

    def poke(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(self.delay, self._fire)
            self._timer.daemon = True
            self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            self._timer = None
        self.action()

    def flush(self) -> None:
        with self._lock:
            pending, self._timer = self._timer, None
        if pending is not None:
            pending.cancel()
            self.action()
