"""*Again* on a clip of the notebook's comparison grid (issue 26): what `i2vkit again
VIDEO.mp4` does, driven as a person clicks it, against emulators on 127.0.0.1.

The clip's button only shows the plan and its cost; the panel's button submits a new
batch with the same arguments except the seed (the emulator's recorded submits show it).
On a billed backend above the threshold it asks the CLI's question first, and a "No"
spends nothing; the spend cap refuses in its own words. Both notebooks' grids have it."""

from __future__ import annotations

import dataclasses
import sqlite3

import pytest
from helpers import TEST_KEY, make_images

from i2vkit import notebook as nbk
from i2vkit.config import Settings
from i2vkit.emulator import EmulatorProcess
from i2vkit.engine import run_batch
from i2vkit.models import get_model
from i2vkit.planning import BatchRequest
from i2vkit.planning.request import DEFAULT_CONFIRM_ABOVE as ASK_ABOVE_USD
from i2vkit.workspace import Workspace

MODEL = "wan-2.1"


@pytest.fixture
def widgets_on(monkeypatch):
    from i2vkit.notebook import actions, compare_view, display, form, progress, results

    for module in (nbk, actions, compare_view, display, form, progress, results):
        for name in ("in_kernel", "widgets_available"):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, lambda: True)
    for name in ("I2VKIT_YES", "I2VKIT_BATCH", "I2VKIT_MAX_COST", "I2VKIT_CONFIRM_ABOVE"):
        monkeypatch.delenv(name, raising=False)


def first_batch(settings: Settings, tmp_path) -> list[int]:
    """One image, one prompt, two takes: a grid of two clips. Their job ids."""
    make_images(tmp_path / "pics", 1)
    request = BatchRequest(tmp_path / "pics", prompts=["a slow pan"], model=MODEL, takes=2)
    result = run_batch(request, settings)
    assert result.ok, result.summary()
    return [j.id for j in result.jobs]


def batches(ledger) -> list[str]:
    with sqlite3.connect(ledger) as db:
        return [r[0] for r in db.execute("SELECT id FROM batches ORDER BY created_at")]


def test_again_on_a_clip_submits_the_same_arguments_but_the_seed(
    widgets_on, tmp_path, emulator, settings
):
    jobs = first_batch(settings, tmp_path)
    sent = {j["arguments"]["seed"]: j["arguments"] for j in emulator.jobs()}
    submits = emulator.stats()["submits"]["total"]

    with Workspace.open(settings) as ws:
        browser = nbk.ResultsBrowser(settings)
        view = browser.compare(ws)
        assert sorted(view.again_buttons) == sorted(jobs)  # one per clip
        cell = next(c for c in view.cells if c.job_id == jobs[1])

        view.again_buttons[jobs[1]].click()  # the plan and its cost; nothing sent
        panel = view.again_panel
        assert panel.widget.layout.display == ""
        price = get_model(MODEL).estimate_cost({})
        assert f"Again from job {jobs[1]}" in panel.info.value
        assert "new batch" in panel.info.value and f"US$ {price:,.2f}" in panel.info.value
        assert panel.button.description == f"Make 1 more clip like job {jobs[1]} (US$ {price:,.2f})"
        assert emulator.stats()["submits"]["total"] == submits

        panel.button.click()  # US$ 0.40 asks nothing, as `i2vkit again` does not
        assert not panel.spend.asking
        assert panel.wait(120), "the again did not finish"
        assert panel.result is not None and panel.result.ok, panel.result.summary()

    assert emulator.stats()["submits"]["total"] == submits + 1
    again = emulator.jobs()[-1]["arguments"]
    liked = sent[cell.seed]
    assert again["seed"] != liked["seed"]
    assert {k: v for k, v in again.items() if k != "seed"} == {
        k: v for k, v in liked.items() if k != "seed"
    }
    assert len(batches(settings.db_path)) == 2  # a batch of its own; the first untouched
    assert panel.result.batch_id != browser.batch_id
    assert "1 job, 1 downloaded" in panel.outcome.value
    new = panel.result.batch_id
    assert f"pick, in the Batch list above, batch {new}" in panel.outcome.value
    assert f"new batch {new}" in panel.info.value  # the plan that ran
    # the Batch list offers the new batch at once; the one shown stays selected
    offered = [value for _, value in browser.batch_w.options]
    assert new in offered and browser.batch_id in offered
    assert browser.batch_w.value == browser.batch_id != new


def test_again_on_a_billed_backend_asks_first_and_a_no_spends_nothing(
    widgets_on, tmp_path, monkeypatch
):
    with EmulatorProcess(key=TEST_KEY, job_seconds=[0, 0]) as emu:
        settings = Settings(
            fal_key=TEST_KEY,
            fal_url=emu.url,
            db_path=tmp_path / "ledger.db",
            download_dir=tmp_path / "videos",
        )
        jobs = first_batch(settings, tmp_path)
        before = emu.stats()
        price = get_model(MODEL).estimate_cost({})
        takes = int(ASK_ABOVE_USD // price) + 1  # the first number of takes that asks

        with Workspace.open(settings) as ws:
            view = nbk.ResultsBrowser(settings).compare(ws)
            view.again_buttons[jobs[0]].click()
            panel = view.again_panel
            panel.takes_w.value = takes  # planned again: the button says what it costs
            cost = takes * price
            assert panel.button.description.endswith(f"(US$ {cost:,.2f})")
            assert f"US$ {cost:,.2f}" in panel.info.value

            panel.button.click()  # asks, as `i2vkit again` asks
            assert panel.spend.asking and panel.spend.widget.layout.display == ""
            assert f"Spend about US$ {cost:,.2f}" in panel.spend.question.value
            panel.spend.no.click()
            assert "Nothing submitted" in panel.outcome.value
            assert panel.thread is None and panel.result is None
            after = emu.stats()
            assert after["submits"]["total"] == before["submits"]["total"]
            assert after["uploads"] == before["uploads"]
            assert len(batches(settings.db_path)) == 1

            # the threshold is the user's (I2VKIT_CONFIRM_ABOVE=0: ask every time)
            monkeypatch.setenv("I2VKIT_CONFIRM_ABOVE", "0")
            panel.takes_w.value = 1
            panel.button.click()
            assert panel.spend.asking, "one take at a threshold of 0 must ask"
            panel.spend.no.click()
            monkeypatch.delenv("I2VKIT_CONFIRM_ABOVE")
            assert emu.stats()["submits"]["total"] == before["submits"]["total"]

        # the spend cap holds, in its own words, whatever the answer would be
        capped = dataclasses.replace(settings, max_cost=1.0)
        with Workspace.open(capped) as ws:
            view = nbk.ResultsBrowser(capped).compare(ws)
            view.again_buttons[jobs[0]].click()
            view.again_panel.takes_w.value = takes
            view.again_panel.button.click()
            assert not view.again_panel.spend.asking
            assert "US$ 1.00" in view.again_panel.outcome.value
            assert emu.stats()["submits"]["total"] == before["submits"]["total"]

        with Workspace.open(settings) as ws:  # a yes runs them
            view = nbk.ResultsBrowser(settings).compare(ws)
            view.again_buttons[jobs[0]].click()
            panel = view.again_panel
            panel.takes_w.value = takes
            panel.button.click()
            panel.spend.yes.click()
            assert panel.wait(120), "the again did not finish"
            assert panel.result is not None and panel.result.ok, panel.result.summary()
        assert emu.stats()["submits"]["total"] == before["submits"]["total"] + takes
