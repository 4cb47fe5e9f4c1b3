"""Choosing where jobs go: fal.ai itself, a fal-compatible URL, or the built-in emulator.

Demo mode (neither FAL_KEY nor I2VKIT_FAL_URL set) starts the emulator in this
process so the whole tool works with no key and no internet.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator

from .config import Settings

DEMO_BANNER = (
    "DEMO MODE: no FAL_KEY is set, so i2vkit runs against its built-in fal emulator on "
    "127.0.0.1. Videos are synthesized locally (a slow zoom over each image), nothing is sent "
    "to fal.ai and nothing is billed. Set FAL_KEY to generate real videos."
)


@contextlib.contextmanager
def resolve_backend(settings: Settings, **emulator_knobs) -> Iterator[Settings]:
    """Yield settings that point at a live backend, starting the emulator in demo mode."""
    if not settings.demo:
        yield settings
        return
    from .emulator import Emulator

    knobs = {"job_seconds": (0.5, 1.5), **emulator_knobs}
    with Emulator(port=0, **knobs) as emu:
        yield dataclasses.replace(settings, fal_url=emu.url, emulated=True)
