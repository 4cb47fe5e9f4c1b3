"""The workspace: settings -> backend, ledger and catalogue, opened once at the edge.

Every front end (the CLI, the exported script, the notebook) opens one before planning,
so planning is a function of the request and what the workspace holds: it opens no
file of its own and connects to nothing. Opening is where the side effects are: the
ledger is opened (created and migrated if needed), the catalogue copy kept in it is
made the active one, and, when that copy is over a week old and a key is set, it is
read again from fal, which is said in one line (:attr:`Workspace.note`).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType

from .backend import Backend, backend_for
from .catalogue import Catalogue, active
from .catalogue.stored import refresh_if_stale, use_stored
from .config import Settings, load_settings
from .store import Store


@dataclass
class Workspace:
    """What planning reads: the settings, the backend they choose (not started), the
    ledger, and the catalogue in use. ``note`` says what opening did to the catalogue."""

    settings: Settings
    backend: Backend
    store: Store
    catalogue: Catalogue
    note: str | None = None

    @classmethod
    def open(cls, settings: Settings | None = None, *, refresh: bool = True) -> Workspace:
        """Open the ledger and the catalogue; with ``refresh``, read a stale catalogue again
        (the one step here that may use the network; it never raises for that)."""
        settings = settings or load_settings()
        store = Store(settings.db_path)
        try:
            use_stored(settings, store)
            note = refresh_if_stale(settings, store) if refresh else None
        except BaseException:
            store.close()
            raise
        return cls(settings, backend_for(settings), store, active(), note)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
