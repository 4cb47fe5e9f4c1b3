"""Notebook 02's comparison grid along any axis, and a clip's *again*, in JupyterLab in
Chromium (issues 27 and 26), read from the text a person sees.

The acceptance batch of issue 27 (2 images x ``a {slow|fast} push-in at {dawn|dusk}`` x
``duration`` 5 and 10 on kling = 16 clips) runs on the built-in emulator; notebook 02 runs
all its cells; the grid's Rows and Columns dropdowns offer ``duration`` and each prompt
variable; picking ``{slow|fast}`` as rows and ``duration`` as columns puts each of the 16
clips in its row and column (its own label says which), each with a video and an *again*
button. Clicking *again* on one shows its plan and cost above the grid; its button runs
it (the built-in emulator asks nothing) as a new batch with the same prompt and options
(kling v3 takes no seed; the seed and the emulator's submits are tests/test_notebook_again.py's).

JupyterLab, Chromium and the fixtures are those of ``test_browser.py``.
"""

from __future__ import annotations

import json
import re
import sqlite3

import pytest
from helpers import make_images
from test_browser import (  # noqa: F401 - the shared fixtures
    JS_ERRORS,
    LAB_LOAD_MS,
    SETTLE_MS,
    VIEWPORT,
    artifacts,
    browser,
    dump_state,
    lab,
    open_url,
    run_all,
    save_screenshot,
    wait_or_fail,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(420)]

RESULTS = "notebooks/02_results.ipynb"
PROMPT = "a {slow|fast} push-in at {dawn|dusk}"
GRID = ".jp-NotebookPanel:not(.lm-mod-hidden) .widget-gridbox.i2v-compare"

JS_IDLE = """() => {
  const p = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
  const s = p && p.querySelector('.jp-Notebook-ExecutionIndicator');
  const n = p && p.querySelector('.jp-Toolbar-kernelName');
  return !!(s && s.getAttribute('data-status') === 'idle' && n
            && !/No Kernel/i.test(n.textContent));
}"""

# The grid as laid out: its children are the corner, a header per column, then per row
# its label and a slot per column (what CSS grid places in rows and columns). Per slot,
# each card's rendered text, whether it has a video, and its buttons' text.
JS_GRID = """(selector) => {
  const box = document.querySelector(selector);
  if (!box) return null;
  const kids = Array.from(box.children);
  const cols = [];
  let i = 1;
  while (i < kids.length && kids[i].querySelector('.i2v-colhead')) {
    cols.push(kids[i].innerText.trim()); i++;
  }
  const rows = [];
  for (; i + cols.length < kids.length + 1 && i < kids.length; i += cols.length + 1) {
    const label = kids[i].innerText.replace('▶ play row', '').trim().split('\\n')
      .map(s => s.trim()).filter(Boolean).join(' · ');
    const slots = [];
    for (let j = 1; j <= cols.length; j++) {
      const slot = kids[i + j];
      slots.push(Array.from(slot ? slot.querySelectorAll('.i2v-cardbox') : []).map(c => ({
        job: Number(c.querySelector('.i2v-cell').getAttribute('data-job-id')),
        text: c.querySelector('.i2v-cell').innerText,
        video: !!c.querySelector('.i2v-cell video'),
        buttons: Array.from(c.querySelectorAll('button')).map(b => b.innerText.trim()),
      })));
    }
    rows.push({label, slots});
  }
  return {cols, rows};
}"""


def test_notebook_grid_along_duration_and_prompt_variables(browser, lab, artifacts):  # noqa: F811
    from i2vkit.config import Settings
    from i2vkit.engine import run_batch
    from i2vkit.planning import BatchRequest

    root = lab["root"]
    ledger = root.parent / "ledger.db"
    make_images(root / "pics", 2)
    settings = Settings(db_path=ledger, download_dir=root / "downloads")
    request = BatchRequest(
        root / "pics", prompts=[PROMPT], model="kling", vary={"duration": ["5", "10"]}
    )
    batch = run_batch(request, settings)  # the newest batch: the one 02 selects
    assert len(batch.jobs) == 16 and batch.ok, batch.summary()

    context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.set_default_timeout(LAB_LOAD_MS)
        page.goto(open_url(lab, "vary", RESULTS))
        wait_or_fail(page, JS_IDLE, LAB_LOAD_MS, lambda: "02 did not open", artifacts, "vary-open")
        run_all(page, artifacts, "failure-vary-run")
        shown = page.evaluate(JS_ERRORS)
        assert not shown, "\n---\n".join(shown)

        out = page.locator(".jp-Cell-outputArea", has=page.locator(".i2v-compare")).first
        rows_select = out.locator(".widget-dropdown", has_text="Rows").locator("select")
        cols_select = out.locator(".widget-dropdown", has_text="Columns").locator("select")
        offered = [o.strip() for o in rows_select.locator("option").all_inner_texts()]
        for axis in ("duration", "{slow|fast}", "{dawn|dusk}", "image", "prompt", "model"):
            assert axis in offered, offered
        assert [o.strip() for o in cols_select.locator("option").all_inner_texts()] == offered

        def laid_out(rows: list[str], cols: list[str]) -> dict:
            wait_or_fail(
                page,
                f"""() => {{ const g = ({JS_GRID})({json.dumps(GRID)});
                     return !!g && g.cols.join('|') === {json.dumps("|".join(cols))}
                       && g.rows.map(r => r.label).join('|') === {json.dumps("|".join(rows))}; }}""",
                SETTLE_MS,
                lambda: f"the grid is not {rows} x {cols}: {page.evaluate(JS_GRID, GRID)}",
                artifacts,
                "failure-vary-grid",
            )
            return page.evaluate(JS_GRID, GRID)

        rows_select.select_option("{slow|fast}")
        cols_select.select_option("duration")
        grid = laid_out(["slow", "fast"], ["duration 5", "duration 10"])
        seen = set()
        for row in grid["rows"]:
            for col, cards in zip(grid["cols"], row["slots"], strict=True):
                assert len(cards) == 4, (row["label"], col, cards)  # 2 images x dawn/dusk
                for card in cards:
                    text = " ".join(card["text"].split())
                    assert f"a {row['label']} push-in at" in text, (row["label"], col, text)
                    assert col in text and "downloaded" in text, (col, text)
                    assert card["video"] and "again" in card["buttons"], card
                    seen.add(card["job"])
        assert seen == {j.id for j in batch.jobs}  # the 16 clips, each once

        rows_select.select_option("{dawn|dusk}")
        grid = laid_out(["dawn", "dusk"], ["duration 5", "duration 10"])
        for row in grid["rows"]:
            for cards in row["slots"]:
                assert len(cards) == 4
                assert all(f"at {row['label']}" in " ".join(c["text"].split()) for c in cards)
        save_screenshot(out, "grid-vary.png", artifacts)

        # a clip's again: its plan and cost above the grid, then a new batch
        liked = grid["rows"][0]["slots"][1][0]["job"]
        card = page.locator(f"{GRID} .i2v-cardbox", has=page.locator(f"[data-job-id='{liked}']"))
        card.locator("button", has_text=re.compile(r"^\s*again\s*$")).click()
        panel = out.locator(".i2v-again")
        panel.locator("text=Again from job").wait_for(timeout=SETTLE_MS)
        said = " ".join(panel.inner_text().split())
        assert f"Again from job {liked}" in said and "new batch" in said, said
        assert re.search(r"US\$ \d+\.\d\d", said), said
        make = panel.locator("button", has_text=f"Make 1 more clip like job {liked}")
        make.click()
        panel.locator("text=1 job, 1 downloaded").wait_for(timeout=SETTLE_MS * 2)
        assert "Spend about" not in panel.inner_text()  # the built-in emulator never asks
        # the new clip plays under the summary: its relative link resolved by the page
        panel.locator("video").first.wait_for(timeout=SETTLE_MS)
        page.wait_for_function(
            """() => { const v = document.querySelector('.i2v-again video');
                       return v && v.error === null && v.readyState >= 1 && v.duration > 0; }""",
            timeout=SETTLE_MS,
        )
        save_screenshot(panel, "again-panel.png", artifacts)
        assert not errors, errors
    except Exception:
        dump_state(page, artifacts, "failure-vary")
        raise
    finally:
        context.close()

    with sqlite3.connect(ledger) as db:
        old = db.execute(
            "SELECT prompt, options, seed, batch_id FROM jobs WHERE id = ?", [liked]
        ).fetchone()
        new = db.execute(
            "SELECT prompt, options, seed FROM jobs WHERE batch_id NOT IN (?) AND id > ?",
            [old[3], max(j.id for j in batch.jobs)],
        ).fetchall()
    assert len(new) == 1 and new[0][:2] == old[:2], (old, new)  # kling v3 takes no seed
