"""The notebooks: they run top to bottom (as nbmake runs them), produce videos and a
gallery, export to a script that makes the same files, never leak the key, and are
committed without outputs.

`python -m pytest` executes the notebooks here through nbclient (the engine nbmake
uses), with the ledger and downloads in a temporary folder; `pytest --nbmake
notebooks/` runs the same notebooks with the user's settings.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from helpers import TEST_KEY, plan_in
from nbclient import NotebookClient

from i2vkit import notebook as nbk
from i2vkit import reporters
from i2vkit.config import Settings
from i2vkit.flags import batch_parser, request_from_args
from i2vkit.models import get_model
from i2vkit.money import usd as money_usd
from i2vkit.planning import FIELDS
from i2vkit.planning.request import parse_options
from i2vkit.workspace import Workspace

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
NOTEBOOK_FILES = sorted(NOTEBOOKS.glob("*.ipynb"))
EXPORT_COMMAND = ["nbconvert", "--to", "script", "notebooks/01_generate.ipynb", "--output-dir"]
VIDEO_NAME = re.compile(r"^(\d+)_([A-Za-z0-9.-]+)_(\d{8}T\d{6}Z)(-\d+)?\.mp4$")
SENTINEL_KEY = "sentinelid:SENTINEL-SECRET-9f8e7d"
SENTINEL_SECRET = SENTINEL_KEY.split(":", 1)[1]

# Everything that could point a run at a real account or another folder: set to "" (which
# i2vkit reads as unset, and which also hides any value in a developer's .env file).
ISOLATED = [
    "FAL_KEY",
    "FAL_KEY_ID",
    "FAL_KEY_SECRET",
    "I2VKIT_FAL_URL",
    "I2VKIT_NOTEBOOK_DIR",
    "I2VKIT_JUPYTER_ROOT",
    "I2VKIT_BATCH",
    "I2VKIT_RETRY_FAILED",
    "I2VKIT_PLAIN",
    *(f.env for f in FIELDS),
]


def workspace_in(tmp: Path) -> Workspace:
    """A workspace on a ledger of this test's own (never the user's)."""
    return Workspace.open(Settings(db_path=tmp / "ledger.db", download_dir=tmp / "videos"))


def isolated_env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {name: "" for name in ISOLATED}
    env.update(
        I2VKIT_DB=str(tmp / "ledger.db"),
        AUTO_DOWNLOAD_DIR=str(tmp / "downloads"),
        UPLOAD_CACHE_ENABLED="true",
    )
    env.update(extra)
    return env


def execute(path: Path, env: dict[str, str], save_as: Path | None = None):
    """Run a notebook like nbmake does: a fresh kernel whose cwd is the notebook's folder.

    The kernel inherits this process's environment, so `env` is applied around it.
    """
    nb = nbformat.read(path, as_version=4)
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        client = NotebookClient(
            nb,
            timeout=240,
            kernel_name="python3",
            resources={"metadata": {"path": str(path.parent)}},
        )
        try:
            client.execute()
        finally:
            if save_as is not None:
                save_as.parent.mkdir(parents=True, exist_ok=True)
                nbformat.write(nb, save_as)
    return nb


def run_on_emulator(tmp_path: Path, plan_of):
    """Run the plan ``plan_of(settings)`` on a fresh emulator, videos under ``tmp_path``;
    returns the batch's result and the jobs the emulator was sent."""
    from i2vkit.config import Settings
    from i2vkit.emulator import Emulator
    from i2vkit.engine import run_batch

    with Emulator(port=0, key=TEST_KEY, job_seconds=0) as emu:
        settings = Settings(
            fal_key=TEST_KEY,
            fal_url=emu.url,
            db_path=tmp_path / "ledger.db",
            download_dir=tmp_path / "videos",
        )
        return run_batch(plan_of(settings), settings), emu.jobs()


def html_outputs(nb) -> list[str]:
    return [
        "".join(out["data"]["text/html"])
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if "text/html" in out.get("data", {})
    ]


def all_text(nb) -> str:
    return nbformat.writes(nb)


def video_keys(folder: Path) -> set[str]:
    """`{job_id}_{model}` of every finished video in `folder` (names must match the pattern;
    each video's recipe sidecar beside it)."""
    keys = set()
    for path in folder.iterdir():
        if path.name.startswith(".") or path.is_dir():  # i2vkit-thumbs: first frames
            continue
        if path.suffix == ".json":  # the video's recipe (sidecar), beside it
            assert path.with_suffix(".mp4").is_file(), f"a sidecar without its video: {path}"
            continue
        m = VIDEO_NAME.match(path.name)
        assert m, f"unexpected file name {path.name}"
        keys.add(f"{m.group(1)}_{m.group(2)}")
    return keys


def video_srcs(html: str) -> list[str]:
    return re.findall(r'<video src="([^"]*)"', html)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """01_generate then 02_results, executed once on the sample data in demo mode."""
    tmp = tmp_path_factory.mktemp("notebook-run")
    env = isolated_env(tmp)
    gen = execute(NOTEBOOKS / "01_generate.ipynb", env, tmp / "01_generate.out.ipynb")
    res = execute(NOTEBOOKS / "02_results.ipynb", env, tmp / "02_results.out.ipynb")
    return {"tmp": tmp, "env": env, "generate": gen, "results": res}


# ------------------------------------------------------------------ execution


def test_generate_notebook_produces_videos_and_gallery(generated):
    downloads = generated["tmp"] / "downloads"
    keys = video_keys(downloads)
    assert keys == {f"{i}_wan" for i in range(1, 10)}  # 3 images x 3 prompts
    nb = generated["generate"]
    text = all_text(nb)
    assert "backend: emulator (demo mode)" in text
    assert "9 jobs" in text and "9 downloaded" in text
    galleries = [h for h in html_outputs(nb) if 'class="i2v-gallery"' in h]
    assert len(galleries) == 1
    gallery = galleries[0]
    assert gallery.count("<video") == 9
    assert gallery.count('preload="metadata"') == 9
    # each card carries a thumbnail, the prompt, the model and the job id
    assert gallery.count("data:image/jpeg;base64,") == 9
    assert "Slow cinematic push-in" in gallery and "job 9" in gallery
    # the downloads are outside the folder Jupyter serves, so the small clips are embedded
    assert all(src.startswith("data:video/mp4;base64,") for src in video_srcs(gallery))
    # no error output anywhere
    assert not [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]


def test_results_notebook_shows_gallery_timeline_and_files(generated):
    nb = generated["results"]
    htmls = html_outputs(nb)
    gallery = next(h for h in htmls if 'class="i2v-gallery"' in h)
    assert gallery.count("<video") == 9
    timeline = next(h for h in htmls if 'class="i2v-timeline"' in h)
    assert timeline.count("<rect") >= 9
    assert "in fal&#x27;s queue" in timeline
    files = next(h for h in htmls if "<table" in h and ">Video<" in h)  # readable headers
    downloads = generated["tmp"] / "downloads"
    assert f"videos in {downloads}" in files  # once, then each video by its name in there
    names = re.findall(r">([^<>/]+\.mp4)<", files)
    assert len(names) == 9 and all((downloads / n).is_file() for n in names), names
    assert "No failed jobs in batch" in all_text(nb)


def widget_states(nb) -> list[dict]:
    """The widgets the executed notebook drew (nbclient saves their state)."""
    saved = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
    return [m for m in saved.get("state", {}).values()]


def test_results_notebook_shows_the_comparison_grid_summary_and_report_button(generated):
    nb = generated["results"]
    states = widget_states(nb)
    cells = [m["state"]["value"] for m in states if 'class="i2v-cell' in str(m["state"])]
    assert len(cells) == 9 and all('preload="none"' in c and "<video" in c for c in cells)
    wan = money_usd(
        get_model("wan").estimate_cost()
    )  # the notebooks' model, priced by the catalogue
    assert all(wan in c for c in cells)  # each clip's cost, as a person reads it
    heads = [m["state"]["value"] for m in states if "i2v-play-row" in str(m["state"])]
    # one model, one take: images down, prompts across (3 x 3 clips side by side), a
    # "play row" per image
    assert len(heads) == 3
    keepers = [m for m in states if m["model_name"] == "CheckboxModel"]
    assert len(keepers) == 9 and not any(m["state"]["value"] for m in keepers)
    assert any(m["state"].get("description") == "Export report" for m in states)
    summary = next(h for h in html_outputs(nb) if "Per clip" in h)
    assert "wan" in summary and wan in summary
    # the players' script is an output of its own (JupyterLab runs it; a widget would not)
    assert any("IntersectionObserver" in h for h in html_outputs(nb))


def test_gallery_references_videos_relative_to_the_notebook(tmp_path):
    """With the default output folder (downloads, next to the notebook) the videos are
    linked, not embedded."""
    project = tmp_path / "project"
    (project / "notebooks").mkdir(parents=True)
    shutil.copy(NOTEBOOKS / "01_generate.ipynb", project / "notebooks")
    shutil.copytree(ROOT / "data" / "images", project / "data" / "images")
    shutil.copy(ROOT / "data" / "prompts.txt", project / "data")
    (project / "pyproject.toml").write_text("[project]\nname = 'demo'\n")
    env = isolated_env(tmp_path, AUTO_DOWNLOAD_DIR="")
    nb = execute(project / "notebooks" / "01_generate.ipynb", env)
    gallery = next(h for h in html_outputs(nb) if 'class="i2v-gallery"' in h)
    srcs = video_srcs(gallery)
    assert len(srcs) == 9
    for src in srcs:
        assert src.startswith("downloads/") and not src.startswith("data:")
        assert (project / "notebooks" / src).resolve().is_file()
    assert "data:video" not in all_text(nb)
    assert len(gallery) < 40_000  # small thumbnails only; the clips stay on disk


# ---------------------------------------------------------------------- export


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    """The documented one-line export, into a temporary build folder."""
    build = tmp_path_factory.mktemp("build")
    subprocess.run(
        [sys.executable, "-m", "jupyter", *EXPORT_COMMAND, str(build)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    script = build / "01_generate.py"
    assert script.is_file()
    return script


def run_script(script: Path, env: dict[str, str], *args: str, block_ipython: bool = False):
    full_env = {**os.environ, **env}
    if block_ipython:
        # Prove the script needs neither IPython nor ipywidgets outside Jupyter.
        code = (
            "import runpy, sys; sys.modules['IPython'] = None; sys.modules['ipywidgets'] = None; "
            f"sys.argv = [{str(script)!r}, *sys.argv[1:]]; "
            f"runpy.run_path({str(script)!r}, run_name='__main__')"
        )
        cmd = [sys.executable, "-c", code, *args]
    else:
        cmd = [sys.executable, str(script), *args]
    return subprocess.run(cmd, cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=240)


def test_exported_script_is_plain_python(exported):
    source = exported.read_text()
    code = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith("#"))
    assert "get_ipython" not in code and "await " not in code
    compile(source, str(exported), "exec")  # a top-level await would be a SyntaxError here


def test_exported_script_makes_the_same_files_as_the_notebook(generated, exported, tmp_path):
    env = isolated_env(tmp_path)
    proc = run_script(exported, env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "backend: emulator (demo mode)" in proc.stdout
    assert "downloaded 9/9" in proc.stderr  # the last progress line, as from `i2vkit bulk`
    assert video_keys(tmp_path / "downloads") == video_keys(generated["tmp"] / "downloads")


def test_exported_script_takes_flags_without_ipython(exported, tmp_path):
    env = isolated_env(tmp_path)
    proc = run_script(
        exported,
        env,
        "--images-dir",
        "data/images",
        "--prompts-file",
        "data/prompts.txt",
        "--model",
        "wan",
        "--one-to-one",
        "--concurrency",
        "2",
        block_ipython=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 images x 3 prompts (one_to_one) = 3 jobs" in proc.stdout
    assert video_keys(tmp_path / "downloads") == {"1_wan", "2_wan", "3_wan"}


def test_exported_script_takes_environment_values(exported, tmp_path):
    out = tmp_path / "clips"
    env = isolated_env(
        tmp_path,
        I2VKIT_IMAGES_DIR=str(ROOT / "data" / "images"),
        I2VKIT_PROMPTS="one prompt for every image",
        I2VKIT_MODEL="kling",
        I2VKIT_OUTPUT_DIR=str(out),
    )
    proc = run_script(exported, env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert video_keys(out) == {"1_kling", "2_kling", "3_kling"}


def test_exported_script_reports_bad_input_in_one_line(exported, tmp_path):
    proc = run_script(exported, isolated_env(tmp_path), "--images-dir", str(tmp_path / "nope"))
    assert proc.returncode == 2
    assert "error: Images folder not found" in proc.stderr
    assert (proc.stdout + proc.stderr).count("Images folder not found") == 1  # once, not twice
    assert "Traceback" not in proc.stderr


def test_exported_script_help_comes_before_any_banner(exported, tmp_path):
    proc = run_script(exported, isolated_env(tmp_path), "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: ")
    assert "backend:" not in proc.stdout and "DEMO MODE" not in proc.stdout
    for flag in ("--yes", "--no-progress", "--dry-run", "--one-to-one", "XDG_DATA_HOME"):
        assert flag in proc.stdout, flag


def test_exported_script_shows_options_as_typed_and_dry_runs(exported, tmp_path):
    proc = run_script(exported, isolated_env(tmp_path), "-o", "seed=3", "--dry-run")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "model: wan  seed=3" in proc.stdout and "{'seed'" not in proc.stdout
    assert "dry run: nothing uploaded or submitted." in proc.stdout
    assert not (tmp_path / "downloads").exists() and not (tmp_path / "ledger.db").exists()


# ------------------------------------------------------------------------ key


def test_sentinel_key_appears_in_no_output_log_or_ledger(tmp_path, capfd, caplog):
    """01 against an emulator that accepts only the sentinel key (a third of the jobs fail
    with errors), then 02 retries the failed ones: the key is in none of it."""
    import logging

    from i2vkit.emulator import Emulator

    caplog.set_level(logging.DEBUG)
    with Emulator(port=0, key=SENTINEL_KEY, job_seconds=0, fail_rate=0.34) as emu:
        env = isolated_env(
            tmp_path, FAL_KEY=SENTINEL_KEY, I2VKIT_FAL_URL=emu.url, I2VKIT_RETRY_FAILED="1"
        )
        env["I2VKIT_MODEL"] = "wan-2.1"  # 9 clips under the US$ 5 a billed run asks about
        gen = execute(NOTEBOOKS / "01_generate.ipynb", env, tmp_path / "01.out.ipynb")
        db = sqlite3.connect(tmp_path / "ledger.db")
        failed = db.execute("SELECT COUNT(*) FROM jobs WHERE status = 'failed'").fetchone()[0]
        db.close()
        emu.configure(fail_rate=0.0)
        res = execute(NOTEBOOKS / "02_results.ipynb", env, tmp_path / "02.out.ipynb")
        stats = emu.stats()

    assert failed > 0, "the emulator should have failed some jobs"
    gallery = next(h for h in html_outputs(gen) if 'class="i2v-gallery"' in h)
    assert 'class="i2v-error"' in gallery  # failed jobs show their error
    text_gen = all_text(gen)
    assert f"backend: fal-compatible service at {emu.url} (FAL_KEY is set)" in text_gen
    assert re.search(rf"\b{failed} failed jobs? in batch \w+ can be retried", all_text(res))
    # every job went through the emulator once, and each failed one once more on retry
    assert stats["submits"]["total"] == 9 + failed, stats["submits"]
    db = sqlite3.connect(tmp_path / "ledger.db")
    statuses = [r[0] for r in db.execute("SELECT status FROM jobs")]
    dump = "\n".join(db.iterdump())
    db.close()
    assert statuses.count("downloaded") == 9, statuses

    captured = capfd.readouterr()
    raw_db = b"".join(p.read_bytes() for p in tmp_path.glob("ledger.db*"))
    haystacks = {
        "01 notebook": text_gen,
        "02 notebook": all_text(res),
        "ledger dump": dump,
        "kernel/test stdout": captured.out,
        "kernel/test stderr": captured.err,
        "logs": caplog.text,
    }
    for secret in (SENTINEL_KEY, SENTINEL_SECRET):
        for where, text in haystacks.items():
            assert secret not in text, f"the key leaked into {where}"
        assert secret.encode() not in raw_db, "the key leaked into the ledger file"


# ---------------------------------------------------------------- committed form


@pytest.mark.parametrize("path", NOTEBOOK_FILES, ids=[p.name for p in NOTEBOOK_FILES])
def test_notebooks_are_committed_without_outputs(path):
    raw = json.loads(path.read_text(encoding="utf-8"))
    assert raw["metadata"]["kernelspec"]["name"] == "python3"
    assert raw["metadata"]["language_info"]["file_extension"] == ".py"  # nbconvert --to script
    assert "widgets" not in raw["metadata"]
    for cell in raw["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [], cell["source"]
            assert cell["execution_count"] is None
            assert "await " not in "".join(cell["source"])  # the export must be plain Python
        assert "execution" not in cell.get("metadata", {})


def test_both_notebooks_exist():
    assert {p.name for p in NOTEBOOK_FILES} >= {"01_generate.ipynb", "02_results.ipynb"}


# ------------------------------------------------------------- form resolution


def test_form_values_defaults_env_then_flags(monkeypatch, tmp_path):
    for name in ISOLATED:
        monkeypatch.setenv(name, "")
    monkeypatch.setenv("AUTO_DOWNLOAD_DIR", "")
    monkeypatch.chdir(tmp_path)
    request = nbk.BatchForm([], {}, base=NOTEBOOKS).request()
    assert request.path(request.images_dir) == ROOT / "data" / "images"  # the sample data
    assert request.path(request.prompts_file) == ROOT / "data" / "prompts.txt"
    assert request.output_dir is None  # AUTO_DOWNLOAD_DIR, as for `i2vkit bulk`
    env = {"I2VKIT_MODEL": "kling", "I2VKIT_PAIRING": "one_to_one", "I2VKIT_CONCURRENCY": "3"}
    r = nbk.BatchForm([], env, base=NOTEBOOKS).request()
    assert (r.model, r.pairing, r.concurrency) == ("kling", "one_to_one", 3)
    flags = ["--model", "ltx", "-o", "seed=3", "--concurrency", "5", "--output-dir", "out"]
    r = nbk.BatchForm(flags, env, base=NOTEBOOKS).request()
    assert (r.model, r.concurrency, r.options) == ("ltx", 5, {"seed": "3"})
    assert r.path(r.output_dir) == tmp_path / "out"  # a given path: from the current folder


def test_form_config_outside_jupyter_resolves_defaults_from_the_notebook_folder(
    monkeypatch, tmp_path
):
    for name in ISOLATED:
        monkeypatch.setenv(name, "")
    monkeypatch.setenv("AUTO_DOWNLOAD_DIR", str(tmp_path / "out"))
    monkeypatch.chdir(tmp_path)
    assert not nbk.in_kernel()
    form = nbk.BatchForm(argv=["--prompts", "a\nb\nc"], base=NOTEBOOKS)
    config = form.spec()
    assert Path(config.images_dir) == ROOT / "data" / "images"
    assert config.prompts_file is None and config.prompts == "a\nb\nc"
    from i2vkit.config import Settings

    settings = Settings(db_path=tmp_path / "l.db", download_dir=tmp_path / "out")
    plan = plan_in(config, settings)
    wan = get_model("wan").estimate_cost()  # the form's default model, from the catalogue
    assert len(plan.pairs) == 9 and plan.estimated_cost == pytest.approx(9 * wan)
    assert plan.output_dir == tmp_path / "out"


def test_settings_summary_never_shows_the_key():
    from i2vkit.config import Settings

    s = Settings(fal_key=SENTINEL_KEY, fal_url="http://user:pw@127.0.0.1:9")
    text = nbk.settings_summary(s).text()
    assert SENTINEL_SECRET not in text and "pw@" not in text
    assert "FAL_KEY is set" in text
    assert "demo mode" in nbk.settings_summary(Settings()).text()


def test_model_labels_show_prices():
    from i2vkit.models import get_model

    wan, kling = get_model("wan-2.1"), get_model("kling")
    assert nbk.model_label(wan).startswith(f"US$ {wan.pricing.usd:g}/video · wan-2.1: Wan ")
    assert re.match(r"US\$ [\d.]+/s \(~US\$ [\d.]+/video\) · kling: ", nbk.model_label(kling))


def test_progress_outside_jupyter_is_the_cli_reporter():
    """The exported script reports progress exactly as `i2vkit bulk` does: a line at once,
    then at most one per interval, and the last state when the bars are closed."""
    import io

    from i2vkit.engine import Progress

    stream = io.StringIO()  # not a terminal: lines, not tqdm bars
    bars = nbk.ProgressBars(stream=stream)
    assert isinstance(bars.reporter, reporters.ProgressLines)
    bars.reporter.interval = 3600  # only the first update and the close may print
    bars.update(Progress(total=9, uploads_total=3, uploaded=1))
    bars.update(Progress(total=9, uploads_total=3, uploaded=2))
    bars.update(Progress(total=9, uploads_total=3, uploaded=3, downloaded=9))
    bars.close()
    out = stream.getvalue().splitlines()
    assert out == [
        "uploaded 1/3  pending 0  queued 0  running 0  completed 0  downloaded 0/9  failed 0  cancelled 0",
        "uploaded 3/3  pending 0  queued 0  running 0  completed 0  downloaded 9/9  failed 0  cancelled 0",
    ]
    assert isinstance(nbk.ProgressBars(enabled=False, stream=stream).reporter, reporters.NoProgress)


# ------------------------------------------------------- widgets (no kernel needed)


@pytest.fixture
def widget_mode(monkeypatch, tmp_path):
    """Pretend to be in a kernel: ipywidgets objects work without one (no front end). The
    ledger (where the form keeps its values) is the test's own."""
    for name in ISOLATED:
        monkeypatch.setenv(name, "")
    monkeypatch.setenv("AUTO_DOWNLOAD_DIR", "")
    monkeypatch.setenv("I2VKIT_DB", str(tmp_path / "form-ledger.db"))
    from i2vkit.notebook import display, form, preview, progress, results

    for module in (nbk, display, form, preview, progress, results):
        for name in ("in_kernel", "widgets_available"):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, lambda: True)


def test_form_widgets_defaults_and_config(widget_mode):
    form = nbk.BatchForm(base=NOTEBOOKS)
    w = form.w
    assert w["images_dir"].value == "../data/images"
    assert w["prompts_file"].value == "../data/prompts.txt"
    assert w["output_dir"].value == ""  # AUTO_DOWNLOAD_DIR, as for `i2vkit bulk`
    assert "Slow cinematic push-in" in w["prompts"].value  # prefilled from the file
    assert (w["family"].value, w["model"].value) == ("wan", "wan")
    labels = [label for label, _ in w["model"].options]
    assert all("US$ " in label or "price unknown" in label for label in labels)
    config = form.spec()
    assert config.path(config.images_dir) == ROOT / "data" / "images"
    assert config.path(config.prompts_file) == ROOT / "data" / "prompts.txt"
    assert config.output_dir is None and Path(config.base) == NOTEBOOKS
    assert config.prompts is None and config.pairing == "all"

    w["pairing"].value = "one_to_one"
    w["family"].value = "kling"
    assert w["model"].value == "kling"  # the family's recommended version, preselected
    w["concurrency"].value = 3
    w["options"].value = "duration=10"
    config = form.spec()
    assert (config.pairing, config.model, config.concurrency) == ("one_to_one", "kling", 3)
    assert config.options == {"duration": "10"}


def test_form_typing_prompts_switches_to_the_typed_text(widget_mode, tmp_path):
    form = nbk.BatchForm(base=NOTEBOOKS)
    w = form.w
    w["prompts"].value = "only one prompt"
    assert w["prompts_source"].value == "text"
    config = form.spec()
    assert config.prompts == "only one prompt" and config.prompts_file is None
    other = tmp_path / "p.txt"
    other.write_text("from another file\n")
    w["prompts_source"].value = "file"
    w["prompts_file"].value = str(other)
    assert w["prompts"].value == "from another file\n"
    assert w["prompts_source"].value == "file"  # loading the file is not "typing"
    assert form.spec().prompts_file == str(other)


def test_form_env_values_prefill_the_widgets(widget_mode, monkeypatch):
    monkeypatch.setenv("I2VKIT_MODEL", "ltx")
    monkeypatch.setenv("I2VKIT_PAIRING", "one_to_one")
    form = nbk.BatchForm(base=NOTEBOOKS)
    assert form.w["model"].value == "ltx" and form.w["pairing"].value == "one_to_one"
    assert form.w["family"].value == "ltx"


def test_form_env_options_fill_the_option_widgets(widget_mode, monkeypatch, tmp_path):
    """I2VKIT_OPTIONS values a widget can hold go into it; the rest stay in the text field."""
    monkeypatch.setenv("I2VKIT_MODEL", "pixverse-6")
    monkeypatch.setenv("I2VKIT_OPTIONS", "resolution=1080p duration=9 style=noir")
    form = nbk.BatchForm(base=NOTEBOOKS)
    fields = form.model_options.fields
    assert (fields["resolution"].widget.value, fields["duration"].widget.value) == ("1080p", 9)
    assert form.w["options"].value == "style=noir"  # not one of the style enum's values
    assert form.spec().options == {"resolution": "1080p", "duration": 9, "style": "noir"}
    preview = form.preview(workspace_in(tmp_path))
    assert "Cannot run yet" in preview.text() and "style" in preview.text()


def test_folder_browser_enters_and_leaves_folders(widget_mode, tmp_path):
    import ipywidgets as w

    (tmp_path / "nb").mkdir()
    (tmp_path / "pics" / "holiday").mkdir(parents=True)
    (tmp_path / "pics" / "a.png").write_bytes(b"x")
    text = w.Text(value="../pics")
    browser = nbk.FolderBrowser(text, tmp_path / "nb")
    # it opens on the images folder, listing what is there, with a way up
    assert [label.strip() for label, _ in browser.select.options] == ["../", "holiday/", "a.png"]
    assert "1 image file, 1 folder" in browser.here.value
    browser.select.value = browser.select.options[1][1]  # a click on holiday/ enters it
    assert browser.current() == tmp_path / "pics" / "holiday" and text.value == "../pics"
    assert [label for label, _ in browser.select.options] == ["../"]
    assert browser.select.value is None
    browser.use.click()  # "Use this folder" is what changes the images folder
    assert text.value == "../pics/holiday"
    browser.up.click()
    assert browser.current() == tmp_path / "pics" and text.value == "../pics/holiday"
    browser.select.value = browser.select.options[2][1]  # an image: nothing happens
    assert browser.current() == tmp_path / "pics"
    text.value = "../does/not/exist"  # typed: the list shows the nearest existing folder
    assert browser.current() == tmp_path


def test_preview_redraws_when_the_form_changes(widget_mode, tmp_path):
    form = nbk.BatchForm(base=NOTEBOOKS)
    preview = form.preview(workspace_in(tmp_path))
    first = preview.render()
    assert "9 jobs" in first.html and "nothing is billed" in first.html
    # money keeps its currency, inside an element JupyterLab's MathJax leaves alone
    wan = get_model("wan").estimate_cost()  # the form's default model, from the catalogue
    assert f"{money_usd(9 * wan)} ({money_usd(wan, 3)} per video)" in first.html
    assert first.html.startswith("<div class='tex2jax_ignore mathjax_ignore'>")
    assert first.html.count("<img") == 3 and "No files skipped" in first.html
    fired = []
    form.observe(lambda: fired.append(preview.render()))
    form.w["pairing"].value = "one_to_one"
    assert fired and "3 jobs" in fired[-1].html
    # typing reaches the plan without leaving the field, after a pause (debounced)
    form.w["images_dir"].value = "../nope"
    deadline = time.monotonic() + 10
    while "Cannot run yet" not in fired[-1].html and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "Cannot run yet: Images folder not found" in fired[-1].html


def test_progress_widgets_follow_the_callback_from_another_thread(widget_mode):
    import threading

    from i2vkit.engine import Progress

    bars = nbk.ProgressBars()
    p = Progress(total=9, uploads_total=3, uploaded=3, submitted=9, downloaded=4, failed=1)
    t = threading.Thread(target=bars.update, args=(p,))
    t.start()
    t.join()
    uploads, _ = bars.bars["uploads"]
    downloaded, count = bars.bars["downloaded"]
    assert (uploads.value, uploads.max) == (3, 3)
    assert (downloaded.value, downloaded.max) == (4, 9) and count.value == "4 / 9"
    bars.update(Progress(total=9, submitted=9, queue_positions={5: 2, 6: 3}))
    assert bars.message.value == "2 waiting in fal's queue (next at position 2)"


def test_results_browser_filters_and_redraws(widget_mode, tmp_path, monkeypatch):
    from i2vkit.config import load_settings
    from i2vkit.engine import run_batch
    from i2vkit.planning import BatchRequest

    monkeypatch.setenv("I2VKIT_DB", str(tmp_path / "ledger.db"))
    monkeypatch.setenv("AUTO_DOWNLOAD_DIR", str(tmp_path / "downloads"))
    settings = load_settings()
    for pairing in ("one_to_one", "all"):
        run_batch(
            BatchRequest(ROOT / "data" / "images", ROOT / "data" / "prompts.txt", pairing=pairing),
            settings,
        )
    browser = nbk.ResultsBrowser(settings, base=NOTEBOOKS)
    assert len(browser.batches) == 2
    assert browser.batch_id == browser.batches[0]["id"]  # the newest
    redraws = []
    gallery = browser.gallery()
    gallery.subscribe(lambda: redraws.append(gallery.render()))
    assert gallery.first.html.count("<video") == len(browser.jobs())
    browser.status_w.value = "failed"
    assert redraws and "<video" not in redraws[-1].html and "0 jobs" in redraws[-1].html
    browser.status_w.value = None
    browser.batch_w.value = browser.batches[1]["id"]
    assert redraws[-1].html.count("<video") == len(browser.jobs())
    assert "<svg" in browser.timeline().first.html
    assert str(tmp_path / "downloads") in browser.files().text()
    browser.close()


# ------------------------------------------------------- the model picker and option widgets


def _snapshot() -> dict:
    """The shipped catalogue, read as data (not through the form's code)."""
    return json.loads((ROOT / "i2vkit" / "catalogue" / "snapshot.json").read_text("utf-8"))


def _entry(snap: dict, name: str) -> dict:
    return next(e for e in snap["endpoints"] if e["endpoint_id"] == snap["names"][name])


def _rate(entry: dict, chosen: dict) -> float:
    """The per-second rate of the price rule's row whose conditions the values meet."""
    for row in entry["price"]["rates"]:
        if all(chosen[k] in allowed for k, allowed in row["when"].items()):
            return row["usd"]
    raise AssertionError(f"no rate for {chosen}")


def test_picker_and_schema_widgets_drive_the_cost_and_the_run(widget_mode, tmp_path):
    """Family then version; the option widgets match the schema; changing an enum and a
    number changes the price label and the preview; the plan runs on the emulator with
    exactly those values (the emulator checks each submit against the schema)."""
    import ipywidgets as widgets

    snap = _snapshot()
    form = nbk.BatchForm(base=NOTEBOOKS)
    w = form.w
    assert "pixverse" in [f for _, f in w["family"].options]
    w["family"].value = "pixverse"
    versions = [value for _, value in w["model"].options]
    recommended = snap["families"]["pixverse"]
    assert versions[0] == "pixverse" and w["model"].value == "pixverse"  # first, preselected
    assert snap["names"][versions[0]] == recommended
    family_ids = {
        e["endpoint_id"]
        for e in snap["endpoints"]
        if e["family"] == "pixverse" and e["status"] != "shut_down"
    }
    assert {snap["names"][v] for v in versions} == family_ids
    assert "[recommended]" in w["model"].options[0][0]

    w["model"].value = "pixverse"  # PixVerse 6: the family's pick (issue 24)
    entry = _entry(snap, "pixverse-6")
    props = entry["input"]["properties"]
    fields = form.model_options.fields
    for name, prop in props.items():
        if name in ("prompt", entry["image_field"]) or prop["type"] in ("file", "array"):
            assert name not in fields
            continue
        widget = fields[name].widget
        if prop.get("enum"):
            assert isinstance(widget, widgets.Dropdown), name
            assert [o[1] for o in widget.options if o[1] is not None] == prop["enum"], name
            assert widget.value == prop.get("default"), name
        elif prop["type"] == "integer" and "minimum" in prop and "maximum" in prop:
            assert isinstance(widget, widgets.BoundedIntText), name
            assert (widget.min, widget.max) == (prop["minimum"], prop["maximum"])
            assert widget.value == prop.get("default", prop["minimum"]), name
        elif prop["type"] == "boolean":
            assert isinstance(widget, widgets.Checkbox), name
            assert widget.value is bool(prop.get("default", False)), name
        else:
            assert isinstance(widget, widgets.Text), name
            assert widget.value == (prop.get("default") or ""), name
    assert form.spec().options == {}  # nothing changed: fal's defaults apply

    def shown() -> str:
        return re.sub(r"<[^>]+>", "", form.cost.value)

    audio = bool(props["generate_audio_switch"].get("default", False))
    start = {"resolution": props["resolution"]["default"], "generate_audio_switch": audio}
    per_video = _rate(entry, start) * props["duration"]["default"]
    assert f"US$ {per_video:.3f}" in shown()
    preview = form.preview(workspace_in(tmp_path))
    fired = []
    form.observe(lambda: fired.append(preview.render()))

    fields["resolution"].widget.value = "1080p"  # an enum
    per_video = _rate(entry, {**start, "resolution": "1080p"}) * props["duration"]["default"]
    assert f"US$ {per_video:.3f}" in shown()
    fields["duration"].widget.value = 10  # a number
    per_video = _rate(entry, {**start, "resolution": "1080p"}) * 10
    assert f"US$ {per_video:.3f}" in shown()
    assert fired and f"(US$ {per_video:.3f} per video)" in fired[-1].html
    assert form.spec().options == {"resolution": "1080p", "duration": 10}

    # changing the model rebuilds the widgets for its schema
    w["family"].value = "kling"
    assert "resolution" not in form.model_options.fields
    assert set(form.model_options.fields) <= set(_entry(snap, "kling")["input"]["properties"])
    w["family"].value = "pixverse"
    w["model"].value = "pixverse"  # PixVerse 6
    fields = form.model_options.fields
    fields["resolution"].widget.value = "1080p"
    fields["duration"].widget.value = 10

    w["pairing"].value = "one_to_one"  # 3 jobs, under the amount that asks first
    w["output_dir"].value = str(tmp_path / "videos")
    result, sent = run_on_emulator(
        tmp_path, lambda settings: form.confirmed_plan(Workspace.open(settings))
    )
    assert [j.status for j in result.jobs] == ["downloaded"] * 3, result.summary()
    assert len(sent) == 3
    for job in sent:
        assert job["endpoint"] == entry["endpoint_id"]
        assert job["arguments"]["resolution"] == "1080p"
        assert job["arguments"]["duration"] == 10  # an integer, as the schema wants


# ------------------------------------------------------- several models, each with its own options


def _jobs_by_model(plan) -> dict[str, list[dict]]:
    """endpoint id -> each planned job's checked options, in plan order."""
    out: dict[str, list[dict]] = {}
    for job in plan.jobs:
        out.setdefault(job.model.endpoint_id, []).append(dict(job.options))
    return out


def test_compare_models_each_with_its_own_option_widgets(widget_mode, tmp_path):
    """Picking models to compare shows each one's schema widgets; a value set on one model's
    widget reaches that model's jobs only (all three models have a `resolution` option),
    exactly as the CLI's `-o model:key=value` does; the price label and the preview cover
    every model; the emulator accepts every submit against its endpoint's schema."""
    import ipywidgets as widgets

    from i2vkit.config import Settings

    snap = _snapshot()
    wan, ltx, pix = (_entry(snap, n) for n in ("wan", "ltx", "pixverse-6"))
    form = nbk.BatchForm(base=NOTEBOOKS)
    w = form.w
    assert isinstance(w["compare"], widgets.TagsInput) and w["compare"].value == []
    listed = {snap["names"].get(v, v) for _, v in form.picker.choices.options}
    running = {e["endpoint_id"] for e in snap["endpoints"] if e["status"] != "shut_down"}
    # every running version can be compared, except the first model itself
    assert listed == running - {snap["names"]["wan"]}
    assert form.compare_box.children == ()

    form.picker.search.value = "ltx"  # searched, then a click on the model adds it
    ltx_label = next(label for label, name in form.picker.choices.options if name == "ltx")
    form.picker.choices.value = "ltx"
    assert w["compare"].value == ["ltx"] and form.picker.choices.value is None
    assert ltx_label.startswith("US$ ")  # the price first
    w["compare"].value = ["ltx", "pixverse"]
    assert [name for name, _, _ in form.compare_options] == ["ltx", "pixverse"]
    ltx_fields = form.compare_options[0][2].fields
    pix_fields = form.compare_options[1][2].fields
    assert (
        ltx_fields["resolution"].widget.options[0][1]
        == ltx["input"]["properties"]["resolution"]["enum"][0]
    )
    assert [o[1] for o in ltx_fields["duration"].widget.options] == ltx["input"]["properties"][
        "duration"
    ]["enum"]
    assert "resolution" in pix_fields and "duration" in pix_fields
    shown_boxes = [c for c in form.compare_box.children if isinstance(c, widgets.VBox)]
    assert shown_boxes == [form.compare_options[0][2].widget, form.compare_options[1][2].widget]

    # one value on the second model's widgets, one on the first model's
    ltx_resolution = ltx["input"]["properties"]["resolution"]["enum"][1]  # not the default
    assert ltx_resolution != ltx["input"]["properties"]["resolution"]["default"]
    ltx_fields["resolution"].widget.value = ltx_resolution
    ltx_fields["duration"].widget.value = 8
    form.model_options.fields["resolution"].widget.value = "720p"  # not wan's default
    spec = form.spec()
    flags = ["-o", "wan:resolution=720p", "-o", f"ltx:resolution={ltx_resolution}"]
    flags += ["-o", "ltx:duration=8", "--model", "wan,ltx,pixverse"]
    cli_spec = request_from_args(batch_parser().parse_args(flags))[0]
    assert spec.model.split(",") == cli_spec.model.split(",")
    settings = Settings(db_path=tmp_path / "ledger.db", download_dir=tmp_path / "videos")
    plan = plan_in(spec, settings)
    cli_spec.images_dir, cli_spec.prompts_file = spec.images_dir, spec.prompts_file
    cli_spec.base = spec.base  # the notebook's folder: its relative sample paths
    mine = _jobs_by_model(plan)
    assert mine == _jobs_by_model(plan_in(cli_spec, settings))  # one way to plan both
    assert mine[wan["endpoint_id"]] == [{"resolution": "720p"}] * 9
    assert mine[ltx["endpoint_id"]] == [{"resolution": ltx_resolution, "duration": 8}] * 9
    assert mine[pix["endpoint_id"]] == [{}] * 9

    # the price label: one video of each model at its own options (rates from the snapshot)
    label = re.sub(r"<[^>]+>", "", form.cost.value)
    pix_props = pix["input"]["properties"]
    pix_start = {
        "resolution": pix_props["resolution"]["default"],
        "generate_audio_switch": bool(pix_props["generate_audio_switch"].get("default", False)),
    }
    expected = {
        "wan": _rate(wan, {"resolution": "720p"})
        * wan["input"]["properties"]["duration"]["default"],
        "ltx": _rate(ltx, {"resolution": ltx_resolution}) * 8,
        "pixverse": _rate(pix, pix_start) * pix_props["duration"]["default"],
    }
    for name, usd in expected.items():
        assert f"{name} US$ {usd:.3f}" in label, label
    preview = form.preview(Workspace.open(settings))
    html = preview.render().html
    assert "27 jobs" in html and "on 3 models" in html
    total = sum(expected.values()) * 9
    shown = [float(x.replace(",", "")) for x in re.findall(r"US\$ ([\d,]+\.\d\d)\b", html)]
    assert any(abs(x - total) < 0.0051 for x in shown), (total, shown)  # to the cent
    for name, usd in expected.items():
        cost = f"9 jobs, US$ {usd * 9:,.2f}"[:-1]  # to the dime: a half cent rounds either way
        assert f"<b>{name}</b> (" in html and cost in html

    # a model no longer compared takes its widgets along; one still picked keeps its values
    w["compare"].value = ["ltx"]
    assert [name for name, _, _ in form.compare_options] == ["ltx"]
    assert form.compare_options[0][2].fields["duration"].widget.value == 8
    assert form.spec().options == {
        "wan:resolution": "720p",
        "ltx:resolution": ltx_resolution,
        "ltx:duration": 8,
    }

    w["pairing"].value = "one_to_one"
    w["output_dir"].value = str(tmp_path / "videos")
    result, sent = run_on_emulator(tmp_path, lambda settings: plan_in(form.spec(), settings))
    assert [j.status for j in result.jobs] == ["downloaded"] * 6, result.summary()
    by_endpoint = {}
    for job in sent:
        by_endpoint.setdefault(job["endpoint"], []).append(job["arguments"])
    assert sorted(by_endpoint) == sorted([wan["endpoint_id"], ltx["endpoint_id"]])
    assert all(a["resolution"] == "720p" for a in by_endpoint[wan["endpoint_id"]])
    assert all("duration" not in a for a in by_endpoint[wan["endpoint_id"]])
    for args in by_endpoint[ltx["endpoint_id"]]:
        assert (args["resolution"], args["duration"]) == (ltx_resolution, 8)
    assert len(by_endpoint[ltx["endpoint_id"]]) == 3


def test_compare_models_and_options_from_the_environment(widget_mode, monkeypatch, tmp_path):
    """I2VKIT_MODEL=wan,ltx picks ltx to compare with; I2VKIT_OPTIONS are shared out as the
    CLI shares -o out: a plain key to every model that has it, `ltx:` to ltx only; a value
    a model's widget cannot hold stays typed, targeted at that model."""
    monkeypatch.setenv("I2VKIT_MODEL", "wan,ltx")
    monkeypatch.setenv("I2VKIT_OPTIONS", "ltx:duration=8 resolution=720p")
    form = nbk.BatchForm(base=NOTEBOOKS)
    assert form.w["model"].value == "wan" and form.w["compare"].value == ["ltx"]
    assert form.model_options.fields["resolution"].widget.value == "720p"
    ltx_fields = form.compare_options[0][2].fields
    assert ltx_fields["duration"].widget.value == 8
    assert parse_options(form.w["options"].value) == {"ltx:resolution": "720p"}
    text = form.preview(workspace_in(tmp_path)).text()
    assert "Cannot run yet" in text and "720p" in text and "ltx" in text.lower()


def test_compare_with_the_first_model_again_runs_it_once(widget_mode, tmp_path):
    from i2vkit.config import Settings

    form = nbk.BatchForm(base=NOTEBOOKS)
    form.w["compare"].value = ["wan"]
    assert form.compare_options == [] and form.compare_box.children == ()
    assert "runs once" in form.picker.merged.value  # said, not silently ignored
    plan = plan_in(form.spec(), Settings(db_path=tmp_path / "l.db"))
    assert len(plan.jobs) == 9 and [m.name for m in plan.models] == ["wan"]
