"""The generate notebook, used the way a person uses it: JupyterLab in headless Chromium.

nbmake proves the cells run; this proves what a user *sees* when they run them.
The test copies ``notebooks/`` and ``data/`` into a temporary Jupyter root (so the
repository stays clean and the downloaded videos sit under the root, where the
browser can fetch them by the gallery's relative URLs), starts JupyterLab on
127.0.0.1 with a random port and token, opens ``notebooks/01_generate.ipynb`` in
Debian's ``chromium`` driven by Playwright, runs Run > Run All Cells, and checks:

* no cell shows an error (traceback, stderr error, or a widget that failed to render);
* the form's widgets render: a family dropdown lists every model family, a version dropdown
  the family's versions with prices, and the model's options are schema-generated widgets;
* the progress bars reach their end (uploads, submitted, downloaded full; running and
  failed empty);
* the gallery shows ``<video>`` elements, linked by relative URL, that actually load
  (readyState >= 1 and a duration), and none that fails.

It saves ``form.png``, ``gallery.png``, ``notebook.png``, the JupyterLab log and the browser
console to ``test-artifacts/browser/`` (or ``$I2VKIT_TEST_ARTIFACTS/browser``), plus the page
and its DOM on a failure; it rewrites ``docs/screenshots/{form,gallery}.png`` only when
``I2VKIT_UPDATE_SCREENSHOTS=1``. The notebook runs in demo mode (the caller's FAL_*, I2VKIT_*
and AUTO_DOWNLOAD_DIR variables are dropped: no key, the built-in emulator), so nothing
leaves the machine.

Chromium comes from apt (browser downloads are not possible here); run
``.ci/browser-deps.sh`` once. Without it this test FAILS rather than skips, because a
skipped browser test would hide a missing feature. ``I2VKIT_CHROMIUM`` overrides the
browser path; ``I2VKIT_BROWSER_NOTEBOOK`` tests another copy of the notebook (used to
show that a broken gallery cell makes this test fail).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest
from labserver import REPO, prepare_root, serve

from i2vkit.models import get_model
from i2vkit.money import usd

NOTEBOOK = "notebooks/01_generate.ipynb"
SETUP_SCRIPT = ".ci/browser-deps.sh"
SCREENSHOTS = REPO / "docs" / "screenshots"


def running_families() -> list[str]:
    """Families with a version that is not shut down, read from the shipped snapshot."""
    snap = json.loads((REPO / "i2vkit" / "catalogue" / "snapshot.json").read_text("utf-8"))
    return sorted({e["family"] for e in snap["endpoints"] if e["status"] != "shut_down"})


LAB_LOAD_MS = 60_000  # the Lab UI and the kernel coming up
RUN_ALL_MS = 150_000  # every cell executed (imports, the demo batch, downloads)
SETTLE_MS = 30_000  # widgets and videos catching up after the last cell
VIEWPORT = {"width": 1280, "height": 900}


pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]


# ---------------------------------------------------------------- the browser


def find_chromium() -> str | None:
    explicit = os.environ.get("I2VKIT_CHROMIUM")
    if explicit:
        if not Path(explicit).is_file():
            pytest.fail(f"I2VKIT_CHROMIUM={explicit} is not a file.", pytrace=False)
        return explicit
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium from apt, driven by Playwright; closed even when the test fails."""
    executable = find_chromium()
    if executable is None:
        pytest.fail(
            "Chromium is not installed, so the end-to-end notebook test cannot run. "
            f"Install it with `bash {SETUP_SCRIPT}` (apt-get install chromium; run as root or "
            "with sudo), or point I2VKIT_CHROMIUM at a Chromium binary.",
            pytrace=False,
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(
            "The Playwright Python package is missing: `pip install -e '.[dev]'` "
            f"(then `bash {SETUP_SCRIPT}` for the browser).",
            pytrace=False,
        )
    with sync_playwright() as pw:
        try:
            chromium = pw.chromium.launch(
                executable_path=executable,
                headless=True,
                args=["--disable-dev-shm-usage", "--no-first-run", "--mute-audio"],
            )
        except Exception as exc:  # a broken install: say how to fix it
            pytest.fail(
                f"Chromium at {executable} did not start ({exc}). Re-run `bash {SETUP_SCRIPT}`.",
                pytrace=False,
            )
        try:
            yield chromium
        finally:
            chromium.close()


# ---------------------------------------------------------------- JupyterLab


@pytest.fixture(scope="module")
def artifacts() -> Path:
    folder = Path(os.environ.get("I2VKIT_TEST_ARTIFACTS") or REPO / "test-artifacts") / "browser"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def lab(tmp_path_factory, artifacts):
    """JupyterLab on 127.0.0.1 (random port, random token) over a temp copy of the notebooks."""
    source = Path(os.environ.get("I2VKIT_BROWSER_NOTEBOOK") or REPO / NOTEBOOK)
    if not source.is_file():
        pytest.fail(f"{source} does not exist: nothing to test in the browser.", pytrace=False)
    base = tmp_path_factory.mktemp("lab")
    prepare_root(base, fresh=(NOTEBOOK,), replace={NOTEBOOK: source})
    with serve(base, artifacts / "jupyterlab.log") as served:
        yield served


# ---------------------------------------------------------------- page helpers


def js(template: str, **parts: str) -> str:
    """Compose page functions: each ``$NAME`` in ``template`` becomes ``(parts[NAME])``."""
    for name, code in parts.items():
        template = template.replace(f"${name}", f"({code})")
    return template


# Code-cell prompts: "[3]:" once run, "[*]:" while queued/running, "[ ]:" never run.
JS_PROMPTS = """() => Array.from(document.querySelectorAll(
    '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputPrompt'))
    .map(e => e.textContent.trim())"""

JS_ERRORS = """() => {
  const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
  if (!panel) return [];
  const found = [];
  panel.querySelectorAll('.jp-Cell').forEach((cell, index) => {
    cell.querySelectorAll('[data-mime-type="application/vnd.jupyter.stderr"]').forEach(out => {
      const text = out.innerText || '';
      if (/Traceback|^\\s*\\w*(Error|Exception)\\b|\\bError: /m.test(text))
        found.push(`cell ${index + 1}: ${text.trim().slice(0, 1500)}`);
    });
    cell.querySelectorAll('.jp-OutputArea-output').forEach(out => {
      const text = out.innerText || '';
      if (/Error displaying widget|Error rendering output|Javascript Error/.test(text))
        found.push(`cell ${index + 1}: ${text.trim().slice(0, 500)}`);
    });
  });
  return found;
}"""

JS_RUN_FINISHED = js(
    """() => {
  const prompts = $PROMPTS();
  if (prompts.length === 0 || prompts.some(p => p.includes('*'))) return false;
  if (prompts.every(p => /\\[\\d+\\]/.test(p))) return true;
  return $ERRORS().length > 0;  // Run All stops at an error: the later cells stay "[ ]:"
}""",
    PROMPTS=JS_PROMPTS,
    ERRORS=JS_ERRORS,
)

JS_PROGRESS = """() => Array.from(document.querySelectorAll(
    '.jp-NotebookPanel:not(.lm-mod-hidden) .widget-hprogress, '
    + '.jp-NotebookPanel:not(.lm-mod-hidden) .widget-vprogress')).map(w => {
  const bar = w.querySelector('.progress-bar');
  const label = w.querySelector('.widget-label');
  return {
    label: label ? label.innerText.trim() : '',
    width: bar ? bar.style.width : null,
    height: bar ? bar.style.height : null,
    visible: w.offsetParent !== null,
  };
})"""

# The notebook's bars (uploads, submitted, running, downloaded, failed, cancelled): the
# pipeline's bars end full; "running" ends empty, "failed" and "cancelled" stay empty in a
# clean demo run.
EMPTY_AT_END = ("running", "failed", "cancelled")

JS_PROGRESS_FULL = js(
    """() => {
  const bars = $PROGRESS();
  const empty = $EMPTY;
  const end = b => empty.includes(b.label.toLowerCase()) ? '0%' : '100%';
  return bars.some(b => !empty.includes(b.label.toLowerCase()))
    && bars.every(b => b.width === end(b) || b.height === end(b));
}""",
    PROGRESS=JS_PROGRESS,
    EMPTY=json.dumps(EMPTY_AT_END),
)


# Every title in the output holding the bars (their labels, counts, message, Stop button),
# and each bar's label title: ipywidgets 8 writes a None tooltip as the title "null"
JS_PROGRESS_TITLES = """() => {
  const bars = Array.from(document.querySelectorAll(
    '.jp-NotebookPanel:not(.lm-mod-hidden) .widget-hprogress'));
  const outputs = new Set(bars.map(w => w.closest('.jp-OutputArea-output')).filter(o => o));
  const titles = [];
  for (const o of outputs) {
    for (const e of o.querySelectorAll('[title]')) titles.push(e.getAttribute('title'));
  }
  return {titles, labels: bars.map(w => {
    const label = w.querySelector('.widget-label');
    return label ? label.getAttribute('title') : null;
  })};
}"""


JS_VIDEOS = """() => Array.from(document.querySelectorAll(
    '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea video')).map(v => ({
  src: v.currentSrc || v.getAttribute('src')
       || (v.querySelector('source') && v.querySelector('source').getAttribute('src')),
  readyState: v.readyState,
  duration: v.duration,
  width: v.videoWidth,
  error: v.error ? v.error.code : null,
  visible: v.offsetParent !== null,
}))"""

# Settled: there are videos, and each has either loaded its metadata or failed.
JS_VIDEOS_SETTLED = js(
    """() => {
  const videos = $VIDEOS();
  const loaded = v => v.readyState >= 1 && isFinite(v.duration) && v.duration > 0;
  return videos.length > 0 && videos.every(v => loaded(v) || v.error !== null);
}""",
    VIDEOS=JS_VIDEOS,
)


JS_FRAMES_SHOWN = """() => {
  const videos = Array.from(document.querySelectorAll(
      '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea video'));
  if (!videos.every(v => v.readyState >= 2 || v.error)) { window.__i2vFramesAt = 0; return false; }
  window.__i2vFramesAt = window.__i2vFramesAt || performance.now();
  return performance.now() - window.__i2vFramesAt > 1500;
}"""


def dump_state(page, artifacts: Path, name: str) -> None:
    """A screenshot and the notebook's DOM, for whoever reads a failure."""
    with contextlib.suppress(Exception):
        page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)
    with contextlib.suppress(Exception):
        (artifacts / f"{name}.html").write_text(page.content(), encoding="utf-8")


def save_screenshot(locator, name: str, artifacts: Path) -> None:
    """The whole element: the viewport grows to fit it (JupyterLab scrolls inside itself)."""
    page = locator.page
    height = locator.evaluate("e => e.getBoundingClientRect().height")
    tall = {
        "width": VIEWPORT["width"],
        "height": min(4000, max(VIEWPORT["height"], int(height) + 300)),
    }
    page.set_viewport_size(tall)
    try:
        locator.scroll_into_view_if_needed()
        locator.screenshot(path=str(artifacts / name), animations="disabled")
    finally:
        page.set_viewport_size(VIEWPORT)
    if os.environ.get("I2VKIT_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(artifacts / name, SCREENSHOTS / name)


def wait_or_fail(page, script: str, timeout_ms: int, message, artifacts: Path, name: str):
    """Wait for ``script`` to return true; on timeout, save the page and fail with ``message()``."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(script, timeout=timeout_ms, polling=250)
        return
    except PlaywrightTimeout:
        pass
    dump_state(page, artifacts, name)
    pytest.fail(
        f"{message()} [after {timeout_ms / 1000:g}s; screenshot: {artifacts / (name + '.png')}]"
        f"\n{what_lab_said(page, artifacts)}",
        pytrace=False,
    )


JS_LAB_STATE = """() => {
  const p = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
  const s = p && p.querySelector('.jp-Notebook-ExecutionIndicator');
  const tabs = Array.from(document.querySelectorAll('.lm-DockPanel-tabBar .lm-TabBar-tab'))
    .map(t => (t.classList.contains('lm-mod-current') ? '*' : '') + t.innerText.trim());
  const dialogs = Array.from(document.querySelectorAll('.jp-Dialog')).map(d => d.innerText.trim());
  return {kernel: s ? s.getAttribute('data-status') : '(no indicator)', tabs, dialogs};
}"""


def what_lab_said(page, artifacts: Path) -> str:
    """The kernel's state, the open tabs, any dialog, and the server log's warnings: what a
    failure on a CI box (no screenshot to look at) needs to be understood."""
    try:
        state = page.evaluate(JS_LAB_STATE)
    except Exception as exc:  # the page itself may be gone
        state = f"(page not readable: {exc})"
    log = artifacts / "jupyterlab.log"
    lines = log.read_text("utf-8", errors="replace").splitlines() if log.is_file() else []
    notable = [
        line
        for line in lines
        if re.match(r"\[[WEC] ", line)
        and "not trusted" not in line
        or re.search(r"restart|died|Traceback|Error", line)
    ]
    return f"Lab state: {state}\nServer log, warnings and errors:\n" + "\n".join(notable[-25:])


MEDIA_ERRORS = {1: "aborted", 2: "network error", 3: "decode error", 4: "not found or not playable"}


def describe_videos(videos: list[dict]) -> str:
    if not videos:
        return "no <video> element in any output"
    lines = []
    for v in videos:
        src = (v["src"] or "(no src)").split("?")[0]
        src = src[:60] + "..." if src.startswith("data:") else src
        state = (
            f"error {v['error']} ({MEDIA_ERRORS.get(v['error'], '?')})"
            if v["error"] is not None
            else f"readyState {v['readyState']}, duration {v['duration']}"
        )
        lines.append(f"  {src}: {state}")
    return "\n".join(lines)


def run_all(page, artifacts: Path, failure: str) -> None:
    """Run > Run All Cells, as a user would, then wait for every cell to have run."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
    wait_or_fail(
        page,
        JS_RUN_FINISHED,
        RUN_ALL_MS,
        lambda: f"Run All Cells did not finish; prompts: {page.evaluate(JS_PROMPTS)}",
        artifacts,
        failure,
    )


def open_url(lab: dict, workspace: str, notebook: str) -> str:
    """The notebook alone in a fresh workspace of its own: Lab does not restore an earlier
    test's tabs, so the Run menu acts on this notebook and no other kernel competes."""
    return f"{lab['url']}/lab/workspaces/{workspace}/tree/{notebook}?reset&token={lab['token']}"


# ---------------------------------------------------------------- the test


def test_generate_notebook_in_jupyterlab(browser, lab, artifacts):
    context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
    page = context.new_page()
    console_errors: list[str] = []
    page.on("pageerror", lambda exc: console_errors.append(str(exc)))
    page.on("console", lambda msg: console_errors.append(msg.text) if msg.type == "error" else None)
    try:
        run_notebook_and_check(page, lab, artifacts, console_errors)
    finally:
        (artifacts / "browser-console.log").write_text("\n".join(console_errors), encoding="utf-8")
        context.close()


def run_notebook_and_check(page, lab, artifacts: Path, console_errors: list[str]) -> None:
    page.set_default_timeout(LAB_LOAD_MS)
    page.goto(open_url(lab, "generate", NOTEBOOK))

    # The notebook is open and its kernel is idle.
    wait_or_fail(
        page,
        """() => {
          const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
          if (!panel || !panel.querySelector('.jp-CodeCell')) return false;
          // The indicator says "idle" before any kernel exists ("No Kernel"): wait for the
          // kernel's name and then its first idle (initializing > connecting > idle).
          const state = panel.querySelector('.jp-Notebook-ExecutionIndicator');
          const name = panel.querySelector('.jp-Toolbar-kernelName');
          const kernel = name ? name.textContent.trim() : '';
          return !!(state && state.getAttribute('data-status') === 'idle'
                    && kernel && !/No Kernel/i.test(kernel));
        }""",
        LAB_LOAD_MS,
        lambda: (
            "JupyterLab did not open the notebook with an idle kernel "
            f"(server log: {lab['log']}; browser errors: {console_errors[-5:]})"
        ),
        artifacts,
        "failure-open",
    )
    dialog = page.locator(".jp-Dialog")
    if dialog.count():
        dump_state(page, artifacts, "failure-dialog")
        pytest.fail(
            f"JupyterLab shows a dialog on open: {dialog.first.inner_text()!r}", pytrace=False
        )

    run_all(page, artifacts, "failure-run")

    # No cell shows an error.
    errors = page.evaluate(JS_ERRORS)
    prompts = page.evaluate(JS_PROMPTS)
    if errors or not all(re.search(r"\[\d+\]", p) for p in prompts):
        dump_state(page, artifacts, "failure-errors")
        detail = "\n---\n".join(errors) or "(no error output, but some cells did not run)"
        pytest.fail(
            f"The notebook shows errors after Run All Cells (prompts {prompts}):\n{detail}",
            pytrace=False,
        )

    # The form: widgets render; the model picker is family, then version: one dropdown lists
    # every family that still runs a version (read from the shipped snapshot), another the
    # chosen family's versions with their prices, the recommended one first; the default
    # model's options are widgets generated from its schema.
    form = page.locator(".jp-Cell-outputArea", has=page.locator(".widget-dropdown select")).first
    if not form.count():
        dump_state(page, artifacts, "failure-form")
        pytest.fail("The form did not render: no dropdown widget in any output.", pytrace=False)
    selects = page.evaluate(
        """() => Array.from(document.querySelectorAll(
              '.jp-NotebookPanel:not(.lm-mod-hidden) .widget-dropdown select'))
            .map(s => Array.from(s.options).map(o => o.textContent.trim()))"""
    )
    families = running_families()
    family_menus = [
        opts
        for opts in selects
        if all(any(re.match(rf"{re.escape(f)}\b", o) for o in opts) for f in families)
    ]
    assert family_menus, f"No dropdown lists every model family {families}; shown: {selects}"
    version_menus = [opts for opts in selects if opts and "[recommended]" in opts[0]]
    assert version_menus and re.search(r"\s·\swan:\s", version_menus[0][0]), (
        f"No version dropdown starting with the recommended wan; the dropdowns show: {selects}"
    )
    priced = [re.match(r"US\$\s\d|price\sunknown", o) for o in version_menus[0]]  # first
    assert all(priced) and re.match(r"US\$\s\d", version_menus[0][0]), (
        f"The version dropdown does not show each version's price: {version_menus[0]}"
    )
    labels = form.locator(".widget-label").all_inner_texts()
    assert "duration" in labels and "resolution" in labels, (
        f"wan's options are not shown as widgets; labels: {labels}"
    )
    save_screenshot(form, "form.png", artifacts)

    # Money as a person reads it: JupyterLab typesets $...$ in HTML outputs as LaTeX, which
    # once turned "$3.60 ($0.400 per video)" into "3.60(0.400 per video)". Read the rendered
    # text of the preview (3 images x 3 prompts on wan, at the catalogue's price of a clip).
    preview = page.locator(".jp-OutputArea-output", has_text="estimated cost").first
    if not preview.count():
        dump_state(page, artifacts, "failure-preview")
        pytest.fail("The preview (estimated cost) did not render.", pytrace=False)
    shown = " ".join(preview.inner_text().split())
    wan = get_model("wan").estimate_cost()
    assert f"estimated cost: {usd(9 * wan)} ({usd(wan, 3)} per video)" in shown, shown
    typeset = page.evaluate(
        """() => document.querySelectorAll(
              '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea mjx-container, '
              + '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea .MathJax').length"""
    )
    assert typeset == 0, f"{typeset} pieces of an output were typeset as math"
    assert "pytest-of" not in form.inner_text(), "the form shows a pytest temporary path"

    # The progress bars reach their end.
    wait_or_fail(
        page,
        JS_PROGRESS_FULL,
        SETTLE_MS,
        lambda: f"The progress bars did not all reach their end: {page.evaluate(JS_PROGRESS)}",
        artifacts,
        "failure-progress",
    )
    titles = page.evaluate(JS_PROGRESS_TITLES)
    assert titles["labels"] and all(t and t != "null" for t in titles["labels"]), titles
    assert "null" not in titles["titles"], titles

    # The gallery: videos that the browser actually loads.
    wait_or_fail(
        page,
        JS_VIDEOS_SETTLED,
        SETTLE_MS,
        lambda: (
            "The gallery shows no video that loads:\n" + describe_videos(page.evaluate(JS_VIDEOS))
        ),
        artifacts,
        "failure-gallery",
    )
    videos = page.evaluate(JS_VIDEOS)
    loaded = [v for v in videos if v["error"] is None and v["readyState"] >= 1]
    broken = [v for v in videos if v["error"] is not None]
    if not loaded or broken:
        dump_state(page, artifacts, "failure-gallery")
        pytest.fail(
            f"{len(broken)} of {len(videos)} gallery videos do not load in the browser:\n"
            + describe_videos(videos),
            pytrace=False,
        )
    embedded = [v["src"][:40] for v in videos if (v["src"] or "").startswith("data:")]
    assert not embedded, (
        f"The gallery embedded {len(embedded)} videos as data URIs instead of linking the "
        "downloaded files by relative URL (are the downloads outside the Jupyter root?)"
    )
    assert any(v["visible"] for v in videos), f"No gallery video is visible: {videos}"
    # Cosmetic, for the screenshot only (every check on the videos is done above): Chromium's
    # player fades its loading spinner out about a second after the first frame, with no event
    # to wait for, so wait until every player has shown its first frame for 1.5 s.
    page.wait_for_function(JS_FRAMES_SHOWN, timeout=SETTLE_MS, polling=100)
    gallery = page.locator(".jp-Cell-outputArea", has=page.locator("video")).last
    save_screenshot(gallery, "gallery.png", artifacts)
    page.screenshot(path=str(artifacts / "notebook.png"), full_page=True)

    # Errors that appear late (e.g. a widget updated after its cell finished).
    errors = page.evaluate(JS_ERRORS)
    assert not errors, "The notebook shows errors:\n" + "\n---\n".join(errors)


# ---------------------------------------------------------------- the comparison grid

RESULTS_NOTEBOOK = "notebooks/02_results.ipynb"

JS_GRID_VIDEOS = """() => Array.from(document.querySelectorAll(
    '.jp-NotebookPanel:not(.lm-mod-hidden) .i2v-compare video')).map(v => ({
  src: v.getAttribute('src'), readyState: v.readyState, duration: v.duration,
  error: v.error ? v.error.code : null, visible: v.offsetParent !== null}))"""


def test_comparison_grid_in_jupyterlab(browser, lab, artifacts):
    """Notebook 02 on a 3-image x 1-prompt x 2-model x 2-take batch: every grid video plays
    once scrolled into view, the dropdowns lay rows and columns out as chosen (read from the
    text a person sees), and a keeper click lands in the ledger."""
    import sqlite3

    from i2vkit.config import Settings
    from i2vkit.engine import run_batch
    from i2vkit.planning import BatchRequest

    root = lab["root"]
    ledger = root.parent / "ledger.db"
    settings = Settings(db_path=ledger, download_dir=root / "downloads")
    spec = BatchRequest(root / "data" / "images", prompts=["slow pan"], model="wan,kling", takes=2)
    batch = run_batch(spec, settings)  # the newest batch: the one 02 selects
    assert len(batch.jobs) == 12 and batch.ok, batch.summary()

    context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.set_default_timeout(LAB_LOAD_MS)
        page.goto(open_url(lab, "compare", RESULTS_NOTEBOOK))
        wait_or_fail(
            page,
            """() => {
              const p = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
              const s = p && p.querySelector('.jp-Notebook-ExecutionIndicator');
              const n = p && p.querySelector('.jp-Toolbar-kernelName');
              return !!(s && s.getAttribute('data-status') === 'idle' && n
                        && !/No Kernel/i.test(n.textContent));
            }""",
            LAB_LOAD_MS,
            lambda: "JupyterLab did not open 02_results with an idle kernel",
            artifacts,
            "failure-compare-open",
        )
        run_all(page, artifacts, "failure-compare-run")
        shown = page.evaluate(JS_ERRORS)
        assert not shown, "\n---\n".join(shown)

        grid = page.locator(".i2v-compare").first
        videos = grid.locator("video")
        assert videos.count() == 12
        for i in range(videos.count()):  # only what is visible loads: bring each into view
            videos.nth(i).scroll_into_view_if_needed()
        wait_or_fail(
            page,
            js(
                """() => { const vs = $V(); return vs.length === 12 && vs.every(v =>
                     v.error === null && v.readyState >= 1 && v.duration > 0); }""",
                V=JS_GRID_VIDEOS,
            ),
            SETTLE_MS,
            lambda: f"grid videos did not all load: {page.evaluate(JS_GRID_VIDEOS)}",
            artifacts,
            "failure-compare-videos",
        )

        def headers(selector: str) -> list[str]:
            return [" ".join(t.split()) for t in grid.locator(selector).all_inner_texts()]

        # default: rows image x prompt, columns model x take
        assert headers(".i2v-colhead") == [
            "wan · take 1", "wan · take 2", "kling · take 1", "kling · take 2"
        ]  # fmt: skip
        assert len(headers(".i2v-rowhead")) == 3
        compare_out = page.locator(".jp-Cell-outputArea", has=page.locator(".i2v-compare"))
        rows_select = compare_out.locator(".widget-dropdown", has_text="Rows").locator("select")
        cols_select = compare_out.locator(".widget-dropdown", has_text="Columns").locator("select")
        rows_select.select_option("model")
        cols_select.select_option("take")
        page.wait_for_function(
            """() => Array.from(document.querySelectorAll('.i2v-compare .i2v-colhead'))
                 .map(e => e.innerText.trim()).join('|') === 'take 1|take 2'""",
            timeout=SETTLE_MS,
        )
        assert [h.replace("▶ play row", "").strip() for h in headers(".i2v-rowhead")] == [
            "wan",
            "kling",
        ]
        rows_select.select_option("image × prompt × take")
        cols_select.select_option("model")
        page.wait_for_function(
            """() => Array.from(document.querySelectorAll('.i2v-compare .i2v-colhead'))
                 .map(e => e.innerText.trim()).join('|') === 'wan|kling'""",
            timeout=SETTLE_MS,
        )
        assert len(headers(".i2v-rowhead")) == 6
        save_screenshot(compare_out.first, "compare.png", artifacts)

        # a keeper click is written to the ledger at once
        first_cell = grid.locator(".i2v-cell").first
        job_id = int(first_cell.get_attribute("data-job-id"))
        box = grid.locator(".widget-checkbox input").first
        box.check()
        deadline = time.monotonic() + SETTLE_MS / 1000
        kept = 0
        while time.monotonic() < deadline:
            with sqlite3.connect(ledger) as db:
                kept = db.execute("SELECT keeper FROM jobs WHERE id = ?", [job_id]).fetchone()[0]
            if kept:
                break
            page.wait_for_timeout(200)
        assert kept == 1, f"the keeper click on job {job_id} did not reach the ledger"
        assert not errors, errors
    except Exception:
        dump_state(page, artifacts, "failure-compare")
        raise
    finally:
        context.close()
