"""Notebook 02's per-model summary shows what fal billed beside the estimates once
`i2vkit cost` has read the bill (issue 26): the report's table, read in Chromium.

A batch of two models runs against the emulator (billed mode, an admin key) with one
model billed 20% above the catalogue; before the bill is read the summary shows the
estimates only; after, each model's estimated and billed amounts and the difference, and
the report shows the same rows."""

from __future__ import annotations

import re
import sys

import pytest
from clitools import cli_env, run_cli
from helpers import TEST_KEY, make_images
from test_browser import browser  # noqa: F401 - the shared fixture

from i2vkit import notebook as nbk
from i2vkit.config import Settings
from i2vkit.engine import run_batch
from i2vkit.models import get_model
from i2vkit.planning import BatchRequest
from i2vkit.report import write_report
from i2vkit.store import Store


def shown(browser, html: str) -> str:  # noqa: F811
    """The text a person reads when ``html`` is drawn, one space between words."""
    page = browser.new_page()
    try:
        page.set_content(f"<body>{html}</body>")
        return page.locator("body").inner_text()
    finally:
        page.close()


def lines(text: str) -> list[str]:
    return [" ".join(line.split()) for line in text.splitlines() if line.strip()]


@pytest.mark.browser
def test_summary_shows_billed_beside_estimated_once_the_bill_is_read(
    browser,  # noqa: F811
    tmp_path,
    emulator,
    monkeypatch,
):
    wan, kling = get_model("wan-2.1"), get_model("kling")
    listed = wan.estimate_cost({})
    billed_unit = round(listed * 1.2, 4)
    emulator.configure(admin=True, billed_prices={wan.endpoint_id: billed_unit})
    settings = Settings(
        fal_key=TEST_KEY,
        fal_url=emulator.url,
        db_path=tmp_path / "ledger.db",
        download_dir=tmp_path / "videos",
    )
    make_images(tmp_path / "pics", 2)
    request = BatchRequest(tmp_path / "pics", prompts=["a slow pan"], model="wan-2.1,kling")
    result = run_batch(request, settings)
    assert result.ok, result.summary()
    monkeypatch.delenv("I2VKIT_BATCH", raising=False)

    browser_view = nbk.ResultsBrowser(settings)
    before = lines(shown(browser, browser_view.summary()._repr_html_()))
    assert not any("Billed by fal" in line for line in before), before
    browser_view.close()

    env = cli_env(tmp_path, emulator.url)
    cost = run_cli([sys.executable, "-m", "i2vkit", "cost"], env, tmp_path)
    assert cost.returncode == 0, cost.stdout + cost.stderr

    browser_view = nbk.ResultsBrowser(settings)
    summary = browser_view.summary()
    after = lines(shown(browser, summary._repr_html_()))
    browser_view.close()
    assert any(line.startswith("Billed by fal") for line in after), after
    wan_estimated, wan_billed = 2 * listed, 2 * billed_unit
    kling_cost = 2 * kling.estimate_cost({})
    expected = {
        "wan-2.1": f"2 US$ {wan_estimated:.2f} US$ {wan_billed:.2f} +US$ {wan_billed - wan_estimated:.2f}",
        "kling": f"2 US$ {kling_cost:.2f} US$ {kling_cost:.2f} +US$ 0.00",
        "total": f"4 US$ {wan_estimated + kling_cost:.2f} US$ {wan_billed + kling_cost:.2f} "
        f"+US$ {wan_billed - wan_estimated:.2f}",
    }
    billed_part = after[next(i for i, x in enumerate(after) if x.startswith("Billed by fal")) :]
    for name, row in expected.items():
        assert any(re.fullmatch(rf"{re.escape(name)} {re.escape(row)}", x) for x in billed_part), (
            name,
            billed_part,
        )
    assert "Billed by fal" in summary.text() and f"US$ {wan_billed:.2f}" in summary.text()

    with Store(settings.db_path) as store:  # the report draws the same rows
        index = write_report(store, result.batch_id, tmp_path / "report")
    page = browser.new_page()
    try:
        page.goto(index.resolve().as_uri())
        report = lines(page.locator("body").inner_text())
    finally:
        page.close()
    start = next(i for i, x in enumerate(report) if x.startswith("Billed by fal"))
    assert report[start : start + len(billed_part)] == billed_part
