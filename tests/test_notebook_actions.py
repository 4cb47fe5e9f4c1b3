"""The retry button of 02_results (notebook/actions.py), driven as a person would click it,
against a live emulator on 127.0.0.1 whose `fail_rate` knob failed some jobs: it shows the
retry's cost, asks the CLI's question above US$ 5, and resubmits only the failed jobs."""

from __future__ import annotations

import sqlite3

import pytest
from helpers import TEST_KEY

from i2vkit import notebook as nbk
from i2vkit.config import Settings
from i2vkit.emulator import Emulator
from i2vkit.engine import run_batch
from i2vkit.planning import BatchRequest
from i2vkit.planning.request import DEFAULT_CONFIRM_ABOVE as ASK_ABOVE_USD
from i2vkit.workspace import Workspace

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


@pytest.fixture
def widgets_on(monkeypatch):
    from i2vkit.notebook import actions, display, form, preview, progress, results

    for module in (nbk, actions, display, form, preview, progress, results):
        for name in ("in_kernel", "widgets_available"):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, lambda: True)
    for name in ("I2VKIT_YES", "I2VKIT_RETRY_FAILED", "I2VKIT_BATCH", "I2VKIT_MAX_COST"):
        monkeypatch.delenv(name, raising=False)


def statuses(ledger) -> dict[int, tuple[str, str | None]]:
    with sqlite3.connect(ledger) as db:
        rows = db.execute("SELECT id, status, request_id FROM jobs").fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def test_retry_button_shows_the_cost_asks_and_resubmits_only_the_failed(widgets_on, tmp_path):
    with Emulator(port=0, key=TEST_KEY, job_seconds=0, fail_rate=0.5, seed=7) as emu:
        settings = Settings(
            fal_key=TEST_KEY,
            fal_url=emu.url,
            db_path=tmp_path / "ledger.db",
            download_dir=tmp_path / "videos",
        )
        request = BatchRequest(ROOT / "data" / "images", prompts=["a", "b", "c"], takes=4)
        first = run_batch(request, settings)
        before = statuses(settings.db_path)
        failed = {i for i, (status, _) in before.items() if status == "failed"}
        assert failed and len(failed) < len(before), first.summary()
        emu.configure(fail_rate=0.0)
        submits = emu.stats()["submits"]["total"]

        with Workspace.open(settings) as ws:
            browser = nbk.ResultsBrowser(settings)
            retry = nbk.RetryButton(browser, ws)
            assert retry.count == len(failed)
            cost = retry.plan.cost.this_run
            assert cost is not None and cost > ASK_ABOVE_USD, "the retry must be one that asks"
            assert f"{len(failed)} failed jobs in batch {browser.batch_id}" in retry.info.value
            assert f"US$ {cost:,.2f}" in retry.info.value  # the cost, before any click
            assert retry.button.description.endswith(f"(US$ {cost:,.2f})")

            retry.button.click()  # asks, as `i2vkit retry` asks: nothing sent yet
            assert retry.asking.layout.display == ""
            assert f"Spend about US$ {cost:,.2f}" in retry.question.value
            retry.no.click()
            assert "Nothing submitted" in retry.outcome.value
            assert emu.stats()["submits"]["total"] == submits

            retry.button.click()
            retry.yes.click()
            assert retry.wait(120), "the retry did not finish"
            assert retry.result is not None and retry.result.ok, retry.result.summary()

        after = statuses(settings.db_path)
        assert emu.stats()["submits"]["total"] == submits + len(failed)  # those, only
        assert all(status == "downloaded" for status, _ in after.values())
        for job in set(before) - failed:  # the jobs that had worked were not sent again
            assert after[job] == before[job]
        assert retry.count == 0 and retry.button.disabled
        assert "Nothing to retry" in retry.button.description
