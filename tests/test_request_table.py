"""One batch, defined once: every field of the request table, given through each front end,
makes the same batch.

The same request goes through `i2vkit bulk`'s flags, the exported notebook script's
flags, the notebook form's widgets and the ``I2VKIT_*`` environment variables alone, each
run for real against one emulator (billed mode: a key and I2VKIT_FAL_URL) with a ledger
of its own, all from the same project folder with relative paths. What each left behind
must be the same: the batch (id, name, output folder), every job (image, prompt, model,
take, seed, options, end image), the exact arguments fal received (uploaded images
compared by their bytes), the cost and the spend cap.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from clitools import cli_env, run_cli
from helpers import TEST_KEY, make_images

from i2vkit import notebook as nbk
from i2vkit.config import Settings
from i2vkit.emulator import Emulator
from i2vkit.engine import run_batch
from i2vkit.planning import FIELDS
from i2vkit.spending import cost_lines
from i2vkit.workspace import Workspace

ROOT = Path(__file__).resolve().parents[1]

#: Every field of the table, as text, in three requests (the prompts come from a file, as
#: typed text, or from a shot list). Values are chosen so each one shows in the result.
FOLDER = {
    "prompts_file": "prompts.txt",
    "images_dir": "pics",
    "model": "ltx,wan-2.1",
    "options": "ltx:duration=8 wan-2.1:resolution=480p",
    "vary": "ltx:fps=24,48",
    "prompt_seed": "5",
    "end_image": "ends/last.png",
    "pairing": "one_to_one",
    "takes": "2",
    "output_dir": "out",
    "batch": "table-test",
    "concurrency": "3",
    "recursive": "true",
    "max_cost": "40",
    "confirm_above": "30",
    "yes": "true",
    "no_progress": "true",
    "priority": "low",
    "start_timeout": "600",
    "fallbacks": "off",
}
TYPED = {**FOLDER, "prompts": "a heron lifts off\na slow dolly out\nrain {~falls|pours}"}
TYPED["batch"] = "typed"
del TYPED["prompts_file"]
SHOTS = {
    "shots": "shots.csv",
    "model": "wan",
    "options": "seed=7",
    "takes": "2",
    "output_dir": "out",
    "max_cost": "40",
    "confirm_above": "30",
    "yes": "true",
    "no_progress": "true",
}
REQUESTS = {"folder": FOLDER, "typed prompts": TYPED, "shot list": SHOTS}
FRONT_ENDS = ("cli", "script", "notebook", "environment")
NOT_RUN = {"dry_run", "write_shots"}  # they stop before anything runs: tested elsewhere


def test_the_cases_cover_every_field_of_the_table():
    given = set(FOLDER) | set(TYPED) | set(SHOTS)
    assert given | NOT_RUN == {f.name for f in FIELDS}


def flags(values: dict[str, str]) -> list[str]:
    """The values as `i2vkit bulk` flags, spelled as the table says (-o repeated)."""
    out: list[str] = []
    for f in FIELDS:
        if f.name not in values:
            continue
        if f.kind == "bool":
            out.append(f.flag or "")
        elif f.kind in ("options", "vary"):
            for pair in values[f.name].split():
                out += [f.short or f.flag or "", pair]
        else:
            out += [f.flag or "", values[f.name]]
    return out


def environment(values: dict[str, str]) -> dict[str, str]:
    return {f.env: values[f.name] for f in FIELDS if f.name in values}


@pytest.fixture(scope="module")
def script(tmp_path_factory) -> Path:
    build = tmp_path_factory.mktemp("build")
    subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "script"]
        + ["notebooks/01_generate.ipynb", "--output-dir", str(build)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return build / "01_generate.py"


def project(root: Path) -> Path:
    """A folder with images (one in a sub-folder: --recursive), prompts, an end frame and
    a shot list, all named by relative paths."""
    make_images(root / "pics", 2)
    make_images(root / "pics" / "more", 1)
    make_images(root / "ends", 1)
    (root / "ends" / next(p.name for p in (root / "ends").iterdir())).rename(
        root / "ends" / "last.png"
    )
    (root / "prompts.txt").write_text(
        "a heron lifts off\na slow dolly out\na storm {~rolls|sweeps|moves} in\n"
    )
    pics = sorted(p.name for p in (root / "pics").iterdir() if p.is_file())
    with (root / "shots.csv").open("w", newline="") as fh:
        rows = csv.writer(fh)
        rows.writerow(["image", "prompt", "model", "end_image", "duration"])
        rows.writerow([f"pics/{pics[0]}", "first shot", "ltx", "ends/last.png", "8"])
        rows.writerow([f"pics/{pics[1]}", "second shot", "", "", ""])
    return root


def run_front_end(which: str, values: dict, root: Path, emu: Emulator, script: Path, ledger: Path):
    """Run the request through one front end; returns what it printed (cost and cap lines)."""
    env = cli_env(root, emu.url, I2VKIT_DB=str(ledger))
    env.pop("AUTO_DOWNLOAD_DIR")
    if which == "notebook":
        return run_in_form(values, root, env, ledger, emu)
    head = [sys.executable, "-m", "i2vkit", "bulk"] if which == "cli" else [sys.executable, script]
    if which == "environment":
        args, env = head, {**env, **environment(values)}
    else:
        args = head + flags(values)
    done = run_cli([str(a) for a in args], env, root)
    assert done.returncode == 0, f"{which}: {done.stdout}\n{done.stderr}"
    return done.stdout


def run_in_form(values: dict, root: Path, env: dict, ledger: Path, emu: Emulator) -> str:
    """The notebook: widgets set as a person would, the plan confirmed, run_batch."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update({k: v for k, v in env.items() if k not in ("I2VKIT_FAL_URL", "FAL_KEY")})
    os.environ["I2VKIT_YES"] = values["yes"]
    os.environ["I2VKIT_NO_PROGRESS"] = values["no_progress"]
    try:
        form = nbk.BatchForm(base=root)
        for f in FIELDS:
            if f.name in values and not f.run:
                form.set_value(f.name, values[f.name])
        settings = Settings(fal_key=TEST_KEY, fal_url=emu.url, db_path=ledger)
        with Workspace.open(settings) as ws:
            plan = form.confirmed_plan(ws)
            result = run_batch(plan, settings)
        assert result.ok, result.summary()
        assert plan.cost is not None and plan.max_cost is not None
        return "\n".join(cost_lines(plan, ws.backend))
    finally:
        os.environ.clear()
        os.environ.update(saved)


def content_of(value, cache: dict[str, str]):
    """Arguments with every URL replaced by the sha256 of what it serves (upload URLs
    differ between ledgers; the bytes must not)."""
    if isinstance(value, dict):
        return {k: content_of(v, cache) for k, v in value.items()}
    if isinstance(value, list):
        return [content_of(v, cache) for v in value]
    if isinstance(value, str) and value.startswith("http"):
        if value not in cache:
            cache[value] = hashlib.sha256(httpx.get(value).content).hexdigest()
        return cache[value]
    return value


def left_behind(ledger: Path, sent: list[dict], output: str) -> dict:
    db = sqlite3.connect(ledger)
    db.row_factory = sqlite3.Row
    batches = [dict(r) for r in db.execute("SELECT id, name, output_dir, prompt_seed FROM batches")]
    jobs = sorted(
        tuple(r)
        for r in db.execute(
            "SELECT image_path, prompt, endpoint_id, take, seed, options, end_image_path, "
            "axes, status FROM jobs"
        )
    )
    db.close()
    cache: dict[str, str] = {}
    arguments = sorted(
        repr(sorted(content_of({"endpoint": j["endpoint"], **j["arguments"]}, cache).items()))
        for j in sent
    )
    starts = ("cost: ", "spend cap: ", "confirmation: ")
    money = [ln for ln in output.splitlines() if ln.startswith(starts)]
    options = sorted(  # fal's request options, as headers
        repr(sorted((k.lower(), v) for k, v in j["headers"].items())) for j in sent
    )
    return {
        "batches": batches,
        "jobs": jobs,
        "arguments": arguments,
        "money": money,
        "headers": options,
    }


@pytest.mark.parametrize("case", list(REQUESTS))
def test_every_front_end_makes_the_same_batch(case, tmp_path, script, monkeypatch):
    from i2vkit.notebook import display, form, preview

    for module in (nbk, display, form, preview):  # the form as in a kernel (widgets)
        for name in ("in_kernel", "widgets_available"):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, lambda: True)
    root = project(tmp_path / "project")
    values = REQUESTS[case]
    seen: dict[str, dict] = {}
    with Emulator(port=0, key=TEST_KEY, job_seconds=0) as emu:
        for which in FRONT_ENDS:
            before = len(emu.jobs())
            ledger = tmp_path / f"{which}.db"
            output = run_front_end(which, values, root, emu, script, ledger)
            seen[which] = left_behind(ledger, emu.jobs()[before:], output)
    first = seen["cli"]
    assert len(first["batches"]) == 1 and first["jobs"] and first["arguments"]
    assert all(job[-1] == "downloaded" for job in first["jobs"])
    assert len(first["money"]) == 3, first["money"]  # cost, spend cap, confirmation lines
    assert first["batches"][0]["output_dir"] == str(root / "out")  # relative to the folder
    for which in FRONT_ENDS[1:]:
        for part in ("batches", "jobs", "arguments", "money", "headers"):
            assert seen[which][part] == first[part], f"{which} differs from the CLI in {part}"
    if case != "shot list":  # the values reached fal: the end image, the options, the takes
        ltx = [a for a in first["arguments"] if "ltx" in a]
        assert ltx and all("'end_image_url'" in a and "('duration', 8)" in a for a in ltx)
        assert all("('resolution', '480p')" in a for a in first["arguments"] if "wan-i2v" in a)
        seeds = {job[4] for job in first["jobs"] if job[2] == "fal-ai/wan-i2v"}
        assert len(seeds) == 2 * 3 and None not in seeds  # 2 takes x 3 pairs, distinct seeds
        assert first["batches"][0]["name"] == values["batch"]
        assert {"('fps', 24)" in a for a in ltx} == {True, False}  # --vary ltx:fps=24,48
        assert {"('fps', 48)" in a for a in ltx} == {True, False}
        assert len(ltx) == 2 * 3 * 2 and first["batches"][0]["prompt_seed"] == 5
        assert all(
            "('x-fal-queue-priority', 'low')" in h and "('x-fal-request-timeout', '600.0')" in h
            and "('x-fal-disable-fallbacks', 'true')" in h
            for h in first["headers"]
        )  # fmt: skip
    assert re.search(r"spend cap: US\$ 40\.00", "\n".join(first["money"]))
    assert re.search(r"asks above US\$ 30\.00", "\n".join(first["money"]))


VARIED = {  # the batch: 2 images x a prompt of two variables x --vary duration=5,10
    "prompts": "a {slow|fast} push-in at {dawn|dusk}",
    "images_dir": "pics",
    "model": "kling",
    "vary": "duration=5,10",
    "yes": "true",
    "no_progress": "true",
}


def tick(form, option: str, values: list[str]) -> None:
    """Turn on an option's *vary* switch and tick ``values``, as a person clicks them."""
    vary = form.model_options.fields[option].vary
    vary.switch.value = True
    for check in vary.checks:
        label = check.description.split()[0]
        check.value = label in values


def test_varying_in_the_form_is_the_cli_vary(tmp_path, monkeypatch):
    """The form's *vary* switch on kling's duration, 5 and 10 ticked, and a prompt of two
    variables typed: the same request as `i2vkit bulk --vary duration=5,10`, a live plan of
    16 jobs that says so, and the same 16 jobs at fal. An option also set once in *More
    options* is the planner's contradiction, shown in the plan."""
    from i2vkit.flags import batch_parser, given_by_args
    from i2vkit.notebook import display, form, preview
    from i2vkit.planning.request import request_from

    for module in (nbk, display, form, preview):
        for name in ("in_kernel", "widgets_available"):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, lambda: True)
    root = tmp_path / "project"
    make_images(root / "pics", 2)
    seen: dict[str, dict] = {}
    with Emulator(port=0, key=TEST_KEY, job_seconds=0) as emu:
        ledger = tmp_path / "cli.db"
        seen["cli"] = left_behind(ledger, [], run_front_end("cli", VARIED, root, emu, root, ledger))
        seen["cli"]["arguments"] = sent_arguments(emu.jobs())
        cli_jobs = len(emu.jobs())
        env = cli_env(root, emu.url, I2VKIT_DB=str(tmp_path / "form.db"))
        env.pop("AUTO_DOWNLOAD_DIR")
        for key in [k for k in os.environ if k.startswith(("I2VKIT_", "FAL_", "AUTO_"))]:
            monkeypatch.delenv(key)
        for key in ("I2VKIT_DB", "I2VKIT_YES", "I2VKIT_NO_PROGRESS"):
            monkeypatch.setenv(key, env.get(key, "true"))
        the_form = nbk.BatchForm(base=root)
        the_form.w["images_dir"].value = "pics"
        the_form.set_value("model", "kling")
        the_form.w["prompts"].value = VARIED["prompts"]  # typed: the source follows
        tick(the_form, "duration", ["5", "10"])
        the_form.flush()
        cli_args = batch_parser(None, "").parse_args(flags(VARIED))
        cli_request = request_from(given_by_args(cli_args), {}, root)[0]
        assert the_form.request() == cli_request
        assert the_form.request().vary == {"duration": ["5", "10"]}

        settings = Settings(fal_key=TEST_KEY, fal_url=emu.url, db_path=tmp_path / "form.db")
        with Workspace.open(settings) as ws:
            shown = the_form.preview(ws).text()
            line = "2 images x 4 prompts (all, 2 variables) x 2 durations = 16 jobs"
            assert line in shown, shown
            plan = the_form.confirmed_plan(ws)
            result = run_batch(plan, settings)
            assert result.ok, result.summary()
            output = "\n".join(cost_lines(plan, ws.backend))
        seen["form"] = left_behind(tmp_path / "form.db", [], output)
        seen["form"]["arguments"] = sent_arguments(emu.jobs()[cli_jobs:])
        assert emu.stats()["uploads"] == 4  # 2 per ledger: the images, once each

        the_form.w["options"].value = "duration=5"  # one value, and the same option varied
        the_form.flush()
        with Workspace.open(settings) as ws:
            said = the_form.preview(ws).text()
        assert "--vary duration=5,10 and -o duration=5 both set duration" in said, said
    assert len(seen["cli"]["jobs"]) == 16 and len(seen["cli"]["arguments"]) == 16
    assert seen["form"] == seen["cli"]


def sent_arguments(jobs: list[dict]) -> list[tuple]:
    """(endpoint, prompt, duration) of every submit, sorted."""
    return sorted(
        (j["endpoint"], j["arguments"]["prompt"], j["arguments"].get("duration")) for j in jobs
    )
