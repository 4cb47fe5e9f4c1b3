"""The batch form of 01_generate and the retry button of 02_results, used in JupyterLab in
headless Chromium, reading what a person sees (issue 23).

* typing two prompts, without leaving the box, changes the preview's job count and cost
  within 2 s;
* family, version, an option, *Compare with* and takes, once changed, are still there after
  *Run All* and after *Restart Kernel and Run All*; *Reset* brings the defaults back;
* no field label has the tooltip "null" or none; no model label in the lists is cut;
* on a batch whose jobs partly failed (the emulator's ``fail_rate`` knob), the retry button
  shows the cost, asks the CLI's question, and resubmits the failed jobs only (the
  emulator's counters).

Each test starts its own JupyterLab over a temp copy of ``notebooks/`` and ``data/``
(tests/labserver.py, shared with tests/test_browser.py), with its own ledger.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from pathlib import Path

import pytest
import test_browser
from labserver import REPO, prepare_root, serve
from test_browser import (
    JS_ERRORS,
    LAB_LOAD_MS,
    SETTLE_MS,
    VIEWPORT,
    dump_state,
    open_url,
    run_all,
    save_screenshot,
    wait_or_fail,
)

from i2vkit.models import get_model
from i2vkit.money import plural

browser = test_browser.browser  # the fixtures: one Chromium, one artifacts folder
artifacts = test_browser.artifacts

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]

GENERATE = "notebooks/01_generate.ipynb"
RESULTS = "notebooks/02_results.ipynb"
TYPING_DEADLINE_S = 2.0  # the acceptance: the plan follows typing within 2 s


@contextlib.contextmanager
def jupyterlab(base: Path, artifacts: Path, name: str, **extra_env: str):
    """JupyterLab on 127.0.0.1 over a temp copy of the notebooks, its own ledger and
    settings, and the JupyterLab defaults the package installs; ``extra_env`` for the
    kernels (an emulator's URL and key). A second server on the same ``base`` serves the
    same files (a server restart)."""
    if not (base / "i2vkit").exists():
        prepare_root(base, fresh=(GENERATE, RESULTS))
    log = artifacts / f"jupyterlab-{name}.log"
    with serve(base, log, extra_env=extra_env, app_defaults=True) as lab:
        yield lab


JS_KERNEL_IDLE = """() => {
  const p = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
  const s = p && p.querySelector('.jp-Notebook-ExecutionIndicator');
  const n = p && p.querySelector('.jp-Toolbar-kernelName');
  return !!(p && p.querySelector('.jp-CodeCell') && s && s.getAttribute('data-status') === 'idle'
            && n && !/No Kernel/i.test(n.textContent));
}"""


def open_notebook(page, lab: dict, workspace: str, notebook: str, artifacts: Path) -> None:
    page.set_default_timeout(LAB_LOAD_MS)
    page.goto(open_url(lab, workspace, notebook))
    wait_or_fail(
        page, JS_KERNEL_IDLE, LAB_LOAD_MS, lambda: f"{notebook} did not open", artifacts, "f-open"
    )


def no_errors(page) -> None:
    shown = page.evaluate(JS_ERRORS)
    assert not shown, "\n---\n".join(shown)


# ------------------------------------------------------------------ reading the form


def field(page, kind: str, label: str):
    """The widget of class ``widget-<kind>`` whose label reads ``label``."""
    exact = re.compile(rf"^\s*{re.escape(label)}\s*$")
    return page.locator(f".widget-{kind}", has=page.locator(".widget-label", has_text=exact)).first


def chosen(page, label: str) -> str:
    select = field(page, "dropdown", label).locator("select")
    text = select.evaluate("s => s.selectedOptions[0] ? s.selectedOptions[0].textContent : ''")
    return " ".join(text.split())  # the lists show non-breaking spaces


def form_values(page, option: str | None = None) -> dict:
    return {
        "family": chosen(page, "Model family"),
        "version": chosen(page, "Version"),
        "option": chosen(page, option) if option else None,
        "compare": page.locator(
            ".jupyter-widget-tagsinput div.jupyter-widget-tag"
        ).all_inner_texts(),
        "takes": field(page, "inline-hbox", "Takes").locator("input").input_value(),
        "source": page.locator(".widget-toggle-button.mod-active").first.inner_text().strip(),
    }


# Labels cut at the edge: each option's text measured in the list's own font, against the
# width the list shows text in (a dropdown loses its arrow's width too).
JS_CUT_LABELS = """() => {
  const ctx = document.createElement('canvas').getContext('2d');
  const out = [];
  const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
  panel.querySelectorAll('.widget-dropdown select, .i2v-compare-list select').forEach(s => {
    const st = getComputedStyle(s);
    ctx.font = `${st.fontWeight} ${st.fontSize} ${st.fontFamily}`;
    const pad = parseFloat(st.paddingLeft) + parseFloat(st.paddingRight);
    const room = s.clientWidth - pad - (s.multiple || s.size > 1 ? 0 : 20);
    Array.from(s.options).forEach(o => {
      const text = o.textContent;
      if (/US\\$|price unknown/.test(text) && ctx.measureText(text).width > room)
        out.push(`${text} (${Math.round(ctx.measureText(text).width)} px in ${Math.round(room)})`);
    });
  });
  return out;
}"""

# A field's tooltip, as hovering its label shows it: the title of what is under the pointer
# (the label's text) or of the label itself. The form is the output with the Reset button.
JS_BAD_TOOLTIPS = """() => {
  const form = Array.from(document.querySelectorAll(
      '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output'))
    .find(o => Array.from(o.querySelectorAll('.widget-button')).some(
      b => b.textContent.trim() === 'Reset'));
  if (!form) return ['(no form with a Reset button)'];
  return Array.from(form.querySelectorAll('.widget-label'))
    .filter(l => l.offsetParent !== null && l.textContent.replace(/[\\s\\u200b]/g, ''))
    .map(l => [l, (l.querySelector('[title]') || l).getAttribute('title')])
    .filter(([l, t]) => !t || !t.trim() || t === 'null' || t === 'undefined')
    .map(([l, t]) => `${l.textContent.trim()}: ${JSON.stringify(t)}`);
}"""


def preview_text(page) -> str:
    out = page.locator(".jp-OutputArea-output", has_text="estimated cost").first
    return " ".join(out.inner_text().split())


def test_form_keeps_up_keeps_its_values_and_resets(browser, artifacts, tmp_path):
    context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
    with jupyterlab(tmp_path, artifacts, "form") as lab:
        try:
            open_notebook(page, lab, "form", GENERATE, artifacts)
            run_all(page, artifacts, "f-run")
            no_errors(page)

            bad = page.evaluate(JS_BAD_TOOLTIPS)
            assert not bad, f"labels without a real tooltip: {bad}"
            cut = page.evaluate(JS_CUT_LABELS)
            assert not cut, f"model labels cut at the list's edge: {cut}"

            # typing two prompts, no blur: the preview follows within 2 s
            before = preview_text(page)
            jobs = re.search(r"(\d+) jobs", before)
            assert jobs and jobs.group(1) != "6", before
            box = field(page, "textarea", "Prompts").locator("textarea")
            box.click()
            page.keyboard.press("Control+a")
            page.keyboard.type("a red fox runs\na blue bird sings")
            deadline = time.monotonic() + TYPING_DEADLINE_S
            shown = preview_text(page)
            while "6 jobs" not in shown and time.monotonic() < deadline:
                page.wait_for_timeout(50)
                shown = preview_text(page)
            six = f"US$ {6 * (get_model('wan').estimate_cost() or 0):.2f}"  # the catalogue's
            assert "6 jobs" in shown and six in shown, (
                f"the preview did not follow the typing within {TYPING_DEADLINE_S} s: {shown}"
            )
            assert box.evaluate("e => e === document.activeElement"), "the box lost focus"
            assert form_values(page)["source"] == "typed below"

            # change family, version, an option, Compare with and takes
            # Each step waits for the kernel's answer (the price line names the models), so a
            # pick never lands on a list the kernel is still replacing.
            select_starting(field(page, "dropdown", "Model family").locator("select"), "kling ")
            search = field(page, "text", "Compare with").locator("input")
            search.fill("ltx")
            listed = page.locator(".i2v-compare-list select option")
            page.wait_for_function(
                """() => { const o = document.querySelectorAll('.i2v-compare-list option');
                           return o.length > 0 && Array.from(o).every(x => /ltx/i.test(x.textContent)); }"""
            )
            listed.first.click()
            page.locator(".jupyter-widget-tagsinput div.jupyter-widget-tag").first.wait_for()
            price_line = page.locator(".widget-html", has_text="price per video").first
            price_line.filter(has_text=re.compile(r"kling US\$.*ltx")).wait_for()
            version = field(page, "dropdown", "Version").locator("select")
            version.select_option(index=1)
            name = chosen(page, "Version").split(" · ")[1].split(":")[0]
            price_line.filter(has_text=re.compile(rf"{re.escape(name)} US\$.*ltx")).wait_for()
            option, picked = pick_an_option(page)
            assert chosen(page, option) == picked
            takes = field(page, "inline-hbox", "Takes").locator("input")
            takes.fill("2")
            takes.press("Enter")
            wanted = form_values(page, option)
            assert wanted["family"].startswith("kling") and wanted["takes"] == "2", wanted
            assert wanted["compare"], wanted
            save_screenshot(
                page.locator(".jp-Cell-outputArea", has=box).first, "form-changed.png", artifacts
            )

            run_all(page, artifacts, "f-rerun")
            no_errors(page)
            assert form_values(page, option) == wanted, "Run All changed the form"

            page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Kernel$")).click()
            page.locator(
                ".lm-Menu-itemLabel", has_text=re.compile(r"^Restart Kernel and Run All Cells")
            ).click()
            page.locator(".jp-Dialog button", has_text=re.compile("Restart")).click()
            page.wait_for_function(
                "() => Array.from(document.querySelectorAll('.jp-InputPrompt'))"
                ".some(e => e.textContent.includes('*'))",
                timeout=SETTLE_MS,
            )
            run_finished(page, artifacts)
            no_errors(page)
            assert form_values(page, option) == wanted, "a new kernel lost the form"

            # Reset: the defaults (the recommended version of the default family, 1 take)
            page.locator(".widget-button", has_text=re.compile(r"^\s*Reset\s*$")).click()

            def is_reset(values: dict) -> bool:  # the default model has options of its own
                return (
                    "[recommended]" in values["version"]
                    and not values["family"].startswith("kling")
                    and values["takes"] == "1"
                    and values["source"] == "prompts file"
                    and not values["compare"]
                )

            deadline = time.monotonic() + SETTLE_MS / 1000  # the kernel's updates arrive
            reset = form_values(page)
            while not is_reset(reset) and time.monotonic() < deadline:
                page.wait_for_timeout(200)
                reset = form_values(page)
            assert is_reset(reset), f"Reset did not restore the defaults: {reset}"
            save_screenshot(
                page.locator(".jp-Cell-outputArea", has=box).first, "form-reset.png", artifacts
            )
            assert not [c for c in console if "model not found" in c], console
        except Exception:
            dump_state(page, artifacts, "failure-form-values")
            raise
        finally:
            context.close()


def select_starting(select, prefix: str) -> None:
    index = select.evaluate(
        "(s, p) => Array.from(s.options).findIndex(o => o.textContent.replace(/\\u00a0/g, ' ')"
        ".startsWith(p))",
        prefix,
    )
    assert index >= 0, f"no entry starting with {prefix!r}"
    select.select_option(index=index)


def pick_an_option(page) -> tuple[str, str]:
    """Change one of the model's option dropdowns to a value it does not hold: its label and
    the value now shown."""
    known = {"Model family", "Version", "Pairing"}
    for box in page.locator(".widget-dropdown").all():
        label = box.locator(".widget-label").inner_text().strip()
        select = box.locator("select")
        if label in known or not label or select.locator("option").count() < 2:
            continue
        index = select.evaluate("s => s.selectedIndex")
        select.select_option(index=0 if index else 1)
        return label, chosen(page, label)
    raise AssertionError("the model shows no option dropdown to change")


def run_finished(page, artifacts: Path) -> None:
    from test_browser import JS_PROMPTS, JS_RUN_FINISHED, RUN_ALL_MS

    wait_or_fail(
        page,
        JS_RUN_FINISHED,
        RUN_ALL_MS,
        lambda: f"the cells did not finish: {page.evaluate(JS_PROMPTS)}",
        artifacts,
        "f-restart",
    )


# ------------------------------------------------------------------ varying, as typed


def wait_for_text(page, wanted: str, artifacts: Path, name: str) -> str:
    """The preview's text once it holds ``wanted`` (polled, with the settle deadline)."""
    deadline = time.monotonic() + SETTLE_MS / 1000
    shown = preview_text(page)
    while wanted not in shown and time.monotonic() < deadline:
        page.wait_for_timeout(50)
        shown = preview_text(page)
    if wanted not in shown:
        dump_state(page, artifacts, name)
    assert wanted in shown, f"the plan does not show {wanted!r}: {shown}"
    return shown


def test_the_plan_counts_the_expansion_as_typed_and_ticked(browser, artifacts, tmp_path):
    """Issue 27's form: a prompt with two variables typed into the box (the box keeps the
    focus) and two durations ticked under the model's *vary* switch: the live plan line
    reads the expansion, and the price of each duration, as a person sees it."""
    images = len([p for p in (REPO / "data" / "images").iterdir() if p.is_file()])
    context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
    page = context.new_page()
    with jupyterlab(tmp_path, artifacts, "vary") as lab:
        try:
            open_notebook(page, lab, "vary", GENERATE, artifacts)
            run_all(page, artifacts, "f-vary-run")
            no_errors(page)
            box = field(page, "textarea", "Prompts").locator("textarea")
            box.click()
            page.keyboard.press("Control+a")
            page.keyboard.type("a {slow|fast} push-in at {dawn|dusk}")
            typed = f"{images} images x 4 prompts (all, 2 variables) = {4 * images} jobs"
            wait_for_text(page, typed, artifacts, "failure-vary-typed")
            assert box.evaluate("e => e === document.activeElement"), "the box lost focus"

            duration = field(page, "dropdown", "duration")
            row = page.locator(".widget-hbox", has=duration).first
            row.locator(".widget-toggle-button", has_text="vary").click()
            values = page.locator(".i2v-vary-duration .widget-checkbox")
            for value in ("5", "10"):
                label = re.compile(rf"(?<![0-9]){value}( \(default\))?\s*$")  # not 15
                values.filter(has_text=label).locator("input").check()
            both = f"x 2 durations = {8 * images} jobs"
            shown = wait_for_text(page, both, artifacts, "failure-vary-ticked")
            assert f"duration=10: {plural(4 * images, 'job')}" in shown, shown
            assert duration.locator("select").is_disabled(), "one duration and several"
            bad = page.evaluate(JS_BAD_TOOLTIPS)
            assert not bad, f"labels without a real tooltip: {bad}"
            save_screenshot(
                page.locator(".jp-Cell-outputArea", has=box).first, "form-vary.png", artifacts
            )
        except Exception:
            dump_state(page, artifacts, "failure-vary")
            raise
        finally:
            context.close()


# ------------------------------------------------------------------ the retry button


def ledger_jobs(ledger: Path) -> dict[int, tuple[str, str | None]]:
    import sqlite3

    with sqlite3.connect(ledger) as db:
        rows = db.execute("SELECT id, status, request_id FROM jobs").fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def test_retry_button_shows_the_cost_asks_and_resubmits_the_failed(browser, artifacts, tmp_path):
    """02_results on a batch where the emulator failed about half the jobs (``fail_rate``):
    the retry cell shows how many and the cost, the button asks (the retry adds more than
    US$ 5 on a backend treated as billed), and after *Yes* the emulator sees exactly the
    failed jobs again."""
    from helpers import TEST_KEY

    from i2vkit.config import Settings
    from i2vkit.emulator import Emulator
    from i2vkit.engine import run_batch
    from i2vkit.planning import BatchRequest
    from i2vkit.planning.request import DEFAULT_CONFIRM_ABOVE as ASK_ABOVE_USD

    context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
    page = context.new_page()
    with Emulator(port=0, key=TEST_KEY, job_seconds=0, fail_rate=0.5, seed=7) as emu:
        ledger = tmp_path / "ledger.db"
        settings = Settings(fal_key=TEST_KEY, fal_url=emu.url, db_path=ledger)
        images = REPO / "data" / "images"
        request = BatchRequest(images, prompts=["a", "b", "c"], takes=4, output_dir=tmp_path / "v")
        run_batch(request, settings)
        before = ledger_jobs(ledger)
        failed = {i for i, (status, _) in before.items() if status == "failed"}
        assert failed and len(failed) < len(before)
        emu.configure(fail_rate=0.0)
        submits = emu.stats()["submits"]["total"]
        try:
            with jupyterlab(
                tmp_path, artifacts, "retry", FAL_KEY=TEST_KEY, I2VKIT_FAL_URL=emu.url
            ) as lab:
                open_notebook(page, lab, "retry", RESULTS, artifacts)
                run_all(page, artifacts, "f-retry-run")
                no_errors(page)
                out = page.locator(".i2v-retry").first
                text = " ".join(out.inner_text().split())
                assert f"{len(failed)} failed jobs in batch" in text, text
                cost = re.search(r"Retry \d+ failed jobs \(US\$ ([\d,.]+)\)", text)
                assert cost, f"the button does not show the cost: {text}"
                assert float(cost.group(1).replace(",", "")) > ASK_ABOVE_USD
                out.locator(".widget-button", has_text="Retry").click()
                question = out.locator(".widget-html", has_text="Spend about")
                question.wait_for()
                assert f"US$ {cost.group(1)}" in question.inner_text()
                assert emu.stats()["submits"]["total"] == submits  # asked, nothing sent
                save_screenshot(out, "retry-asks.png", artifacts)
                out.locator(".widget-button", has_text="Yes, spend it").click()
                wait_or_fail(
                    page,
                    """() => Array.from(document.querySelectorAll('.widget-button')).some(
                         b => b.textContent.includes('Nothing to retry'))""",
                    SETTLE_MS * 4,
                    lambda: f"the retry did not finish: {out.inner_text()[:800]}",
                    artifacts,
                    "failure-retry",
                )
                save_screenshot(out, "retry-done.png", artifacts)
        except Exception:
            dump_state(page, artifacts, "failure-retry")
            raise
        finally:
            context.close()
        assert emu.stats()["submits"]["total"] == submits + len(failed)
        after = ledger_jobs(ledger)
        assert all(status == "downloaded" for status, _ in after.values()), after
        assert all(after[j] == before[j] for j in set(before) - failed)


# ------------------------------------------------------------------ reopened after a restart

JS_REOPENED = """() => {
  const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
  if (!panel) return false;
  const text = panel.innerText;
  if (/Error displaying widget|Loading widget/.test(text)) return /Error displaying/.test(text);
  return Array.from(panel.querySelectorAll('.widget-button'))
    .some(b => b.textContent.trim() === 'Reset');
}"""


def views_without_state(notebook: Path) -> list[str] | str:
    """The widget views of the saved notebook whose model state is not saved with it."""
    try:
        nb = json.loads(notebook.read_text(encoding="utf-8"))
    except ValueError:  # being written
        return "(unreadable)"
    views = [
        out["data"]["application/vnd.jupyter.widget-view+json"]["model_id"]
        for cell in nb["cells"]
        for out in cell.get("outputs", [])
        if "application/vnd.jupyter.widget-view+json" in out.get("data", {})
    ]
    state = nb["metadata"].get("widgets", {}).get("application/vnd.jupyter.widget-state+json")
    saved = (state or {}).get("state", {})
    return [v for v in views if v not in saved] if views else "(no widget views yet)"


def test_reopened_notebook_shows_its_widgets_after_a_server_restart(browser, artifacts, tmp_path):
    """Run All, the notebook saved, the server stopped and started again: the notebook opens
    with its widgets (saved with it, the package's JupyterLab default) and no
    "widget model not found" in the console or the page."""
    notebook = tmp_path / "i2vkit" / GENERATE
    first = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
    page = first.new_page()
    try:
        with jupyterlab(tmp_path, artifacts, "before-restart") as lab:
            open_notebook(page, lab, "before", GENERATE, artifacts)
            run_all(page, artifacts, "f-save-run")
            page.keyboard.press("Control+s")
            deadline = time.monotonic() + SETTLE_MS / 1000
            missing = views_without_state(notebook)
            while missing and time.monotonic() < deadline:  # an autosave may come first
                page.wait_for_timeout(200)
                missing = views_without_state(notebook)
            assert not missing, f"widgets saved without their state: {missing}"
            saved = notebook.read_text(encoding="utf-8")
            (artifacts / "saved-notebook.txt").write_text(f"{len(saved)} bytes\n", "utf-8")
    except Exception:
        dump_state(page, artifacts, "failure-save")
        raise
    finally:
        first.close()

    second = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
    page = second.new_page()
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
    try:
        with jupyterlab(tmp_path, artifacts, "after-restart") as lab:
            open_notebook(page, lab, "after", GENERATE, artifacts)
            wait_or_fail(
                page,
                JS_REOPENED,
                SETTLE_MS,
                lambda: "the reopened notebook showed neither its form nor an error",
                artifacts,
                "failure-reopen",
            )
            text = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)").inner_text()
            assert "Error displaying widget" not in text
            page.screenshot(path=str(artifacts / "reopened.png"))
        assert not [c for c in console if "model not found" in c], console
    finally:
        second.close()
