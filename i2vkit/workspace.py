"""The workspace: settings -> backend, ledger and catalogue, opened once at the edge.

Every front end (the CLI, the exported script, the notebook) opens one before planning,
so planning is a function of the request and what the workspace holds: it opens no
file of its own and connects to nothing. Opening is where the side effects are: the
ledger is opened (migrated if needed; one that does not exist yet is not created to
plan), the catalogue copy kept in it is made the active one, and, when that copy is over
a week old and a key is set, it is read again from fal, which is said in one line
(:attr:`Workspace.note`).
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

from .backend import Backend, backend_for
from .catalogue import Catalogue, active
from .catalogue.stored import refresh_if_stale, use_stored
from .config import Settings, load_settings
from .store import Store


class Workspace:
    """What planning reads: the settings, the backend they choose (not started), the
    ledger, and the catalogue in use. ``note`` says what opening did to the catalogue.

    A ledger that does not exist yet is not created to plan (a dry run leaves no file):
    until the first run writes it, planning reads an empty ledger in memory, and the
    file once it exists (a notebook keeps one workspace from run to run).
    """

    def __init__(self, settings: Settings, *, refresh: bool = True):
        self.settings = settings
        self.backend: Backend = backend_for(settings)
        self._store: Store | None = None
        use_stored(settings, self.store)
        self.note = refresh_if_stale(settings, self.store) if refresh else None

    @classmethod
    def open(
        cls, settings: Settings | None = None, *, refresh: bool = True, tell: bool = False
    ) -> Workspace:
        """Open the ledger and the catalogue; with ``refresh``, read a stale catalogue again
        (the one step here that may use the network; it never raises for that). ``tell``:
        print that one line, as the CLI and the notebooks do."""
        ws = cls(settings or load_settings(), refresh=refresh)
        if tell and ws.note:
            print(ws.note)
        return ws

    @property
    def catalogue(self) -> Catalogue:
        """The catalogue names and prices are resolved against (made active on opening)."""
        return active()

    @property
    def store(self) -> Store:
        """The ledger: the file once it exists, else an empty one in memory."""
        on_disk = Path(self.settings.db_path).is_file()
        if self._store is None or (on_disk and self._store.path == MEMORY):
            if self._store is not None:
                self._store.close()
            self._store = Store(self.settings.db_path if on_disk else MEMORY)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> Workspace:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


MEMORY = Path(":memory:")
