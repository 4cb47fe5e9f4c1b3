"""What the notebooks show, read in Chromium as a person reads it (issue 23, the display).

* Notebook 02's comparison grid of a 2-model x 2-take batch (9 rows of 4 clips) fits the
  output area: its scroll box is no wider than the output and no taller than the window, the
  first screen shows whole clips side by side, and after scrolling the box to its last row
  and last column a column header and a row label are still what one sees at their place.
* Notebook 01: ticking *keeper* under a clip highlights that clip at once.
* The timeline of a batch extended by a second run nine minutes later: the gap is collapsed
  and marked, the rows name model and take, and the caption does not blame the gap on
  "waiting here".

JupyterLab, Chromium and the fixtures are those of ``test_browser.py``.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest
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
GENERATE = "notebooks/01_generate.ipynb"
PROMPTS = ["slow pan", "zoom in", "the wind picks up"]

JS_IDLE = """() => {
  const p = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
  const s = p && p.querySelector('.jp-Notebook-ExecutionIndicator');
  const n = p && p.querySelector('.jp-Toolbar-kernelName');
  return !!(s && s.getAttribute('data-status') === 'idle' && n
            && !/No Kernel/i.test(n.textContent));
}"""

# The grid's box, its output area and the window, as rectangles.
JS_GEOMETRY = """() => {
  const box = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .widget-gridbox.i2v-compare');
  const out = box.closest('.jp-OutputArea-output');
  const r = e => { const b = e.getBoundingClientRect();
                   return {left: b.left, right: b.right, top: b.top, bottom: b.bottom}; };
  const view = box.closest('.jp-OutputArea-output > *');
  return {box: r(box), out: r(out), view: r(view), window: innerHeight,
          scrollW: box.scrollWidth, clientW: box.clientWidth,
          scrollH: box.scrollHeight, clientH: box.clientHeight};
}"""

# Cards whose player lies wholly inside the box's visible rectangle, per row of the screen.
JS_WHOLE_CLIPS = """() => {
  const box = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .widget-gridbox.i2v-compare');
  const b = box.getBoundingClientRect();
  const whole = Array.from(box.querySelectorAll('.i2v-cell video')).map(v =>
      v.getBoundingClientRect()).filter(v => v.width > 50 && v.left >= b.left - 0.5
      && v.right <= b.right + 0.5 && v.top >= b.top - 0.5 && v.bottom <= b.bottom + 0.5);
  const rows = {};
  whole.forEach(v => { const k = Math.round(v.top); rows[k] = (rows[k] || 0) + 1; });
  return Math.max(0, ...Object.values(rows));
}"""

# Scroll the box to its end, then read what a person sees where the last column's header
# and the last row's label are: the topmost element at their centre.
JS_SCROLL_AND_READ = """async (selector) => {
  const box = document.querySelector(selector);
  box.scrollIntoView({block: 'center'});
  box.scrollTop = box.scrollHeight; box.scrollLeft = box.scrollWidth;
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  const b = box.getBoundingClientRect();
  function seen(selector) {
    const all = Array.from(box.querySelectorAll(selector));
    const last = all[all.length - 1];
    const e = last.getBoundingClientRect();
    const x = (e.left + e.right) / 2, y = (e.top + e.bottom) / 2;
    const inside = x > b.left && x < b.right && y > b.top && y < b.bottom;
    const hit = document.elementFromPoint(x, y);
    const shown = hit && hit.closest(selector);
    return {inside, text: shown ? shown.innerText.trim() : null,
            hit: hit ? hit.className : null};
  }
  return {scrollTop: box.scrollTop, scrollLeft: box.scrollLeft,
          col: seen('.i2v-colhead'), row: seen('.i2v-rowhead')};
}"""


NOTEBOOK_GRID = ".jp-NotebookPanel:not(.lm-mod-hidden) .widget-gridbox.i2v-compare"


def open_and_run(page, lab, artifacts: Path, workspace: str, notebook: str) -> None:  # noqa: F811
    page.set_default_timeout(LAB_LOAD_MS)
    page.goto(open_url(lab, workspace, notebook))
    wait_or_fail(
        page, JS_IDLE, LAB_LOAD_MS, lambda: f"{notebook} did not open", artifacts, "fail-open"
    )
    run_all(page, artifacts, f"failure-{workspace}-run")
    shown = page.evaluate(JS_ERRORS)
    assert not shown, "\n---\n".join(shown)


def test_grid_fits_the_output_area_and_keeps_its_headers(browser, lab, artifacts):  # noqa: F811
    from i2vkit.config import Settings
    from i2vkit.engine import run_batch
    from i2vkit.planning import BatchRequest

    root = lab["root"]
    settings = Settings(db_path=root.parent / "ledger.db", download_dir=root / "downloads")
    spec = BatchRequest(
        root / "data" / "images", prompts=PROMPTS, model="wan,kling", takes=2, batch="fits"
    )
    batch = run_batch(spec, settings)  # the newest batch: the one 02 selects
    assert len(batch.jobs) == 36 and batch.ok, batch.summary()

    context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
    page = context.new_page()
    try:
        open_and_run(page, lab, artifacts, "fits", RESULTS)
        page.locator(".widget-gridbox.i2v-compare .i2v-rowhead").first.wait_for()
        assert page.locator(".widget-gridbox.i2v-compare .i2v-rowhead").count() == 9
        geo = page.evaluate(JS_GEOMETRY)
        for part in ("box", "view"):
            assert geo[part]["left"] >= geo["out"]["left"] - 0.5, geo
            assert geo[part]["right"] <= geo["out"]["right"] + 0.5, geo
        assert geo["box"]["bottom"] - geo["box"]["top"] <= geo["window"], geo
        assert geo["scrollH"] > geo["clientH"], f"9 rows fit without scrolling? {geo}"
        page.locator(".widget-gridbox.i2v-compare").first.scroll_into_view_if_needed()
        assert page.evaluate(JS_WHOLE_CLIPS) >= 2, (
            "the first screen shows no whole clips side by side"
        )
        save_screenshot(
            page.locator(".widget-gridbox.i2v-compare").first, "grid-fits.png", artifacts
        )

        seen = page.evaluate(JS_SCROLL_AND_READ, NOTEBOOK_GRID)
        assert seen["scrollTop"] > 0, seen
        assert seen["col"]["inside"] and seen["col"]["text"] == "kling · take 2", seen
        row = " ".join((seen["row"]["text"] or "").split())
        assert seen["row"]["inside"] and row.startswith("03_dusk.webp the wind picks up"), seen
        page.screenshot(path=str(artifacts / "grid-scrolled.png"))
        # for a person to look at: the batch table, the per-model summary, the timeline and
        # the files table as notebook 02 draws them
        for name, has in (
            ("batches", "th:text-is('Created')"),
            ("per-model", "th:text-is('Per clip')"),
            ("timeline", "svg.i2v-timeline"),
            ("files", "th:text-is('Prompt')"),
        ):
            out = page.locator(".jp-OutputArea-output", has=page.locator(has)).first
            save_screenshot(out, f"results-{name}.png", artifacts)

        # the report shares the layout: its table scrolls in the same box, headers stuck
        from i2vkit.report import write_report
        from i2vkit.store import Store

        with Store(settings.db_path) as store:
            index = write_report(store, batch.batch_id, lab["root"].parent / "report")
        page.goto(index.as_uri())
        box = page.locator("#i2v-compare .i2v-scroll")
        geo = box.evaluate(
            "b => ({w: b.getBoundingClientRect().width, h: b.getBoundingClientRect().height,"
            " sw: b.scrollWidth, sh: b.scrollHeight, vw: innerWidth, vh: innerHeight})"
        )
        assert geo["w"] <= geo["vw"] and geo["h"] <= geo["vh"] and geo["sh"] > geo["h"], geo
        seen = page.evaluate(JS_SCROLL_AND_READ, "#i2v-compare .i2v-scroll")
        assert seen["col"]["inside"] and seen["col"]["text"] == "kling · take 2", seen
        row = " ".join((seen["row"]["text"] or "").split())
        assert seen["row"]["inside"] and row.startswith("03_dusk.webp the wind picks up"), seen
        page.screenshot(path=str(artifacts / "report-grid-scrolled.png"))
    except Exception:
        dump_state(page, artifacts, "failure-grid-fits")
        raise
    finally:
        context.close()


# ---------------------------------------------------------------- keepers in notebook 01

JS_PROMPT_TEXTS = """() => Array.from(document.querySelectorAll(
    '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputPrompt'))
    .map(e => e.textContent.trim()).join('|')"""


def test_keeper_ticked_in_notebook_01_highlights_the_clip(browser, lab, artifacts):  # noqa: F811
    """Run All, then 2 takes and the run again (as a user compares takes): the gallery is the
    comparison grid, and ticking *keeper* under a clip frames it and stars it at once."""
    context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
    page = context.new_page()
    try:
        open_and_run(page, lab, artifacts, "keepers", GENERATE)
        takes = page.locator(
            ".widget-inline-hbox", has=page.locator(".widget-label", has_text=re.compile("^Takes$"))
        ).locator("input")
        takes.fill("2")
        takes.press("Tab")
        before = page.evaluate(JS_PROMPT_TEXTS)
        run_cell = page.locator(".jp-CodeCell", has_text="run_batch(plan").first
        run_cell.locator(".jp-InputPrompt").click()
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        page.locator(
            ".lm-Menu-itemLabel", has_text=re.compile(r"^Run Selected Cell and All Below$")
        ).click()
        page.wait_for_function(
            f"""() => {{ const p = ({JS_PROMPT_TEXTS})();
                   return p !== {before!r} && !p.includes('*'); }}""",
            timeout=SETTLE_MS * 4,
        )
        shown = page.evaluate(JS_ERRORS)
        assert not shown, "\n---\n".join(shown)
        grid = page.locator(".widget-gridbox.i2v-compare").last
        grid.locator(".i2v-cell").first.wait_for()
        cell = grid.locator(".i2v-cell").first
        assert "keeper" not in (cell.get_attribute("class") or "")
        assert "★ keeper" not in cell.inner_text()
        grid.locator(".widget-checkbox input").first.check()  # the first clip's box
        page.wait_for_function(
            """() => { const c = document.querySelector(
                 '.jp-NotebookPanel:not(.lm-mod-hidden) .widget-gridbox.i2v-compare .i2v-cell');
                 return !!c && c.classList.contains('i2v-keeper')
                   && c.innerText.includes('★ keeper'); }""",
            timeout=SETTLE_MS,
        )
        save_screenshot(cell, "keeper-01.png", artifacts)
        summary = page.locator(
            ".jp-OutputArea-output", has=page.locator("th:text-is('Batch total')")
        )
        save_screenshot(summary.last, "run-summary-01.png", artifacts)  # for a person to look at
    except Exception:
        dump_state(page, artifacts, "failure-keeper-01")
        raise
    finally:
        context.close()


# ---------------------------------------------------------------- the timeline of two runs

STAMPS = ("created_at", "submitted_at", "started_at", "completed_at", "downloaded_at")


def test_timeline_of_a_batch_extended_later_collapses_the_pause(browser, tmp_path, artifacts):  # noqa: F811
    """Takes added nine minutes after the first run: the chart draws the two runs side by
    side with the pause cut out and marked, each row names its model and take, and the
    caption does not call the pause waiting here."""
    from i2vkit.config import Settings
    from i2vkit.engine import run_batch
    from i2vkit.planning import BatchRequest
    from i2vkit.store import Store
    from i2vkit.timeline import timeline_svg

    settings = Settings(db_path=tmp_path / "ledger.db", download_dir=tmp_path / "videos")
    images = Path(__file__).resolve().parents[1] / "data" / "images"
    first = run_batch(BatchRequest(images, prompts=["slow pan"], takes=1, batch="later"), settings)
    assert first.ok
    with sqlite3.connect(settings.db_path) as db:  # the first run, nine minutes earlier
        for column in STAMPS:
            db.execute(
                f"UPDATE jobs SET {column} = strftime('%Y-%m-%dT%H:%M:%f+00:00', {column}, "
                "'-540 seconds') WHERE take = 1"
            )
    second = run_batch(BatchRequest(images, prompts=["slow pan"], takes=2, batch="later"), settings)
    assert second.ok and len(second.jobs) == 6
    with Store(settings.db_path) as store:
        rows = store.jobs(second.batch_id)

    page = browser.new_page(viewport={"width": 1000, "height": 700})
    try:
        page.set_content(f"<body>{timeline_svg(rows)}</body>")
        text = " ".join(page.locator("body").inner_text().split())
        labels = page.evaluate(  # what each label shows (not its tooltip)
            """() => Array.from(document.querySelectorAll('svg text')).map(t =>
                 Array.from(t.childNodes).filter(n => n.nodeType === 3).map(n => n.data).join(''))"""
        )
        assert sum("wan · take 1" in t for t in labels) == 3, labels
        assert sum("wan · take 2" in t for t in labels) == 3, labels
        assert any(re.fullmatch(r"\+9 min( \d+ s)?", t) for t in labels), labels
        assert "2 runs" in text and "waited here" not in text, text
        bars = page.evaluate(
            """() => Array.from(document.querySelectorAll('svg rect[data-phase]')).map(r => {
                 const b = r.getBoundingClientRect(); return [b.left, b.right]; })"""
        )
        chart = page.locator("svg").bounding_box()
        widest = max(right - left for left, right in bars)
        assert widest > chart["width"] / 6, f"bars are slivers: {bars}"
        page.screenshot(path=str(artifacts / "timeline-two-runs.png"), full_page=True)
    finally:
        page.close()
