"""Where jobs go, decided once and passed down: fal.ai, a fal-compatible URL, or the emulator.

Only the built-in emulator that i2vkit starts itself (demo mode: neither FAL_KEY nor
I2VKIT_FAL_URL set) is free. Anything reached through I2VKIT_FAL_URL may be a proxy
of fal, so it is treated as billed: costs are shown and confirmed, and a request it
no longer knows is reported, never resubmitted behind the user's back.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from .config import Settings

FAL = "fal"
EMULATOR = "emulator"
URL = "url"

DEMO_BANNER = (
    "DEMO MODE: no FAL_KEY is set, so i2vkit runs against its built-in fal emulator on "
    "127.0.0.1. Videos are synthesized locally (a slow zoom over each image), nothing is sent "
    "to fal.ai and nothing is billed. Set FAL_KEY to generate real videos."
)


@dataclass(frozen=True)
class Backend:
    """A live backend: what kind, where (None means fal's own hosts), and whether it bills."""

    kind: str  # FAL, EMULATOR (the built-in one, demo mode) or URL (I2VKIT_FAL_URL)
    base_url: str | None = None

    @property
    def billed(self) -> bool:
        return self.kind != EMULATOR

    @property
    def label(self) -> str:
        """What the ledger records as a batch's backend (and what `retry` must match)."""
        if self.kind == URL:
            return self.base_url or URL
        return self.kind

    @property
    def url_scope(self) -> str:
        """Which service an uploaded URL belongs to; cache hits never cross scopes."""
        return self.base_url or FAL

    def describe(self) -> str:
        if self.kind == FAL:
            return "fal.ai (billed)"
        if self.kind == URL:
            return f"{self.base_url} (I2VKIT_FAL_URL; treated as billed)"
        return f"the built-in emulator at {self.base_url} (not billed)"


def backend_for(settings: Settings) -> Backend:
    """The backend these settings choose, without starting anything (for plans and labels)."""
    if settings.demo:
        return Backend(EMULATOR)
    if settings.fal_url:
        return Backend(URL, settings.fal_url)
    return Backend(FAL)


@contextlib.contextmanager
def resolve_backend(settings: Settings, **emulator_knobs) -> Iterator[Backend]:
    """Yield the live backend, starting the built-in emulator for demo mode."""
    chosen = backend_for(settings)
    if chosen.kind != EMULATOR:
        yield chosen
        return
    from .emulator import Emulator

    knobs = {"job_seconds": (0.5, 1.5), **emulator_knobs}
    with Emulator(port=0, **knobs) as emu:
        yield Backend(EMULATOR, emu.url)
