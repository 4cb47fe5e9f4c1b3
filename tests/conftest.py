"""Shared fixtures: a live emulator on 127.0.0.1, settings pointing at it, real image files."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from helpers import TEST_KEY

from i2vkit import catalogue
from i2vkit.config import Settings


@pytest.fixture(autouse=True)
def shipped_catalogue():
    """Each test starts on the shipped snapshot: a workspace makes its ledger's catalogue
    (a stored copy, prices fal billed) the process's active one, and a test that opened
    one must not price the next test's models (a worker runs many tests)."""
    catalogue.use(None)
    yield
    catalogue.use(None)


@pytest.fixture
def emulator():
    from i2vkit.emulator import Emulator

    with Emulator(port=0, key=TEST_KEY, job_seconds=0) as emu:
        yield emu


@pytest.fixture
def settings(tmp_path, emulator) -> Settings:
    return Settings(
        fal_key=TEST_KEY,
        download_dir=tmp_path / "downloads",
        upload_cache_enabled=True,
        db_path=tmp_path / "ledger.db",
        fal_url=emulator.url,
    )


@pytest.fixture
def no_cache(settings) -> Settings:
    return dataclasses.replace(settings, upload_cache_enabled=False)


@pytest.fixture
def prompts_file(tmp_path) -> Path:
    path = tmp_path / "prompts.txt"
    path.write_text("\n".join(f"prompt number {i}" for i in range(1, 7)) + "\n", encoding="utf-8")
    return path
