"""Varying options and prompt words (issue 27), through the CLI against the emulator.

The acceptance batch: 2 images x one prompt with two variables of 2 values each x
``--vary duration=5,10`` on a model with a duration option = 16 jobs, 2 uploads, the
emulator's submits carry exactly the expected prompt and duration combinations, the plan's
cost is the sum of each job's price; ``--vary duration=5,10,15`` later adds only the 8 new
jobs; a value outside the schema and a key no model has are refused before any upload.
"""

from __future__ import annotations

import csv
import itertools
import json
import sys
from collections import Counter
from pathlib import Path

import pytest
from clitools import cli_env, ledger, run_cli
from helpers import make_images
from test_browser import browser, find_chromium  # noqa: F401 - the shared fixture

from i2vkit import compare as cmp
from i2vkit.errors import InputError
from i2vkit.models import get_model
from i2vkit.money import usd
from i2vkit.notebook import CompareView
from i2vkit.report import write_report
from i2vkit.store import Store
from i2vkit.summary import per_value
from i2vkit.variables import WildcardFolder, expand_lines, parse

KLING = "fal-ai/kling-video/v3/standard/image-to-video"  # duration "3".."15"
WAN = "fal-ai/wan-i2v"  # no duration option
PROMPT = "a {slow|fast} push-in at {dawn|dusk}"


def bulk(tmp_path: Path, *extra: str, model: str = KLING) -> list[str]:
    return [
        sys.executable,
        "-m",
        "i2vkit",
        "bulk",
        str(tmp_path / "p.txt"),
        "--images-dir",
        str(tmp_path / "pics"),
        "--model",
        model,
        "--yes",
        "--no-progress",
        *extra,
    ]


def setup(tmp_path: Path, url: str, prompt: str = PROMPT) -> dict[str, str]:
    make_images(tmp_path / "pics", 2)
    (tmp_path / "p.txt").write_text(prompt + "\n", encoding="utf-8")
    return cli_env(tmp_path, url)


def submitted(emulator) -> Counter:
    """(prompt, duration) of every submit the emulator received."""
    return Counter(
        (j["arguments"]["prompt"], j["arguments"].get("duration")) for j in emulator.jobs()
    )


def test_two_variables_and_two_durations_then_a_third(tmp_path, emulator):
    env = setup(tmp_path, emulator.url)
    kling = get_model(KLING)

    plan = run_cli([*bulk(tmp_path, "--vary", "duration=5,10"), "--dry-run"], env, tmp_path)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "2 images x 4 prompts (all, 2 variables) x 2 durations = 16 jobs" in plan.stdout
    price = {
        d: kling.estimate_cost(kling.validate_options({"duration": d})) for d in ["5", "10", "15"]
    }
    assert price["10"] == pytest.approx(2 * price["5"])  # a 10 s clip costs twice a 5 s one
    total = 8 * price["5"] + 8 * price["10"]
    assert f"estimated cost on fal of the jobs planned: {usd(total)}" in plan.stdout
    assert f"duration=10: 8 jobs, {usd(8 * price['10'])}" in plan.stdout
    assert emulator.stats()["uploads"] == 0

    first = run_cli(bulk(tmp_path, "--vary", "duration=5,10"), env, tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert emulator.stats()["uploads"] == 2
    assert f"  duration=10, {kling.name}: 8 jobs, 8 videos, 0 failed" in first.stdout
    assert f"{usd(price['10'])} per clip" in first.stdout
    prompts = [
        f"a {s} push-in at {t}" for s, t in itertools.product(("slow", "fast"), ("dawn", "dusk"))
    ]
    want = Counter({(p, d): 2 for p in prompts for d in ("5", "10")})  # 2 images each
    assert submitted(emulator) == want
    rows = ledger(tmp_path / "ledger.db", "SELECT prompt, axes FROM jobs")
    assert len(rows) == 16
    for prompt, axes in rows:
        recorded = json.loads(axes)
        speed, time = prompt.split()[1], prompt.split()[-1]
        assert recorded["prompt"] == {"{slow|fast}": speed, "{dawn|dusk}": time}
        assert recorded["options"]["duration"] in ("5", "10")

    third = run_cli(bulk(tmp_path, "--vary", "duration=5,10,15"), env, tmp_path)
    assert third.returncode == 0, third.stdout + third.stderr
    assert f"this run: {usd(8 * price['15'])} (8 jobs)" in third.stdout
    assert emulator.stats()["uploads"] == 2  # nothing uploaded again
    assert submitted(emulator) == want + Counter({(p, "15"): 2 for p in prompts})
    assert ledger(tmp_path / "ledger.db", "SELECT COUNT(*) FROM jobs")[0][0] == 24
    assert ledger(tmp_path / "ledger.db", "SELECT COUNT(DISTINCT batch_id) FROM jobs")[0][0] == 1


@pytest.mark.parametrize(
    "vary, says",
    [
        (["duration=5,20"], "--vary duration=20: duration='20': expected one of"),
        (["fps=24,30"], "--vary fps: none of this batch's models"),
        (["duration=5,20", "fps=24"], "--vary fps"),  # every problem at once
    ],
)
def test_bad_values_and_keys_are_refused_before_any_upload(tmp_path, emulator, vary, says):
    env = setup(tmp_path, emulator.url)
    args = [a for v in vary for a in ("--vary", v)]
    out = run_cli(bulk(tmp_path, *args), env, tmp_path)
    assert out.returncode == 2, out.stdout + out.stderr
    assert says in out.stderr and "Traceback" not in out.stderr
    if len(vary) == 2:
        assert "duration=20" in out.stderr
    stats = emulator.stats()
    assert stats["uploads"] == 0 and stats["submits"]["total"] == 0


@pytest.mark.parametrize("option", ["duration=5", "kling:duration=10"])
def test_an_option_set_once_and_varied_is_refused_before_any_upload(tmp_path, emulator, option):
    """``-o duration=5 --vary duration=5,10`` is a contradiction: the varied values used to
    replace the -o value without a word. It is refused at plan time, naming both."""
    env = setup(tmp_path, emulator.url)
    out = run_cli(bulk(tmp_path, "-o", option, "--vary", "duration=5,10"), env, tmp_path)
    assert out.returncode == 2, out.stdout + out.stderr
    value = option.rpartition("=")[2]
    said = " ".join(out.stderr.split())
    assert f"--vary duration=5,10 and -o duration={value} both set duration" in said, said
    assert "drop -o duration" in said and "Traceback" not in out.stderr
    stats = emulator.stats()
    assert stats["uploads"] == 0 and stats["submits"]["total"] == 0
    assert not (tmp_path / "ledger.db").exists() or not ledger(
        tmp_path / "ledger.db", "SELECT id FROM jobs"
    )


def test_a_key_one_model_lacks_goes_to_the_model_that_has_it(tmp_path, emulator):
    env = setup(tmp_path, emulator.url, "a calm pan")
    out = run_cli(bulk(tmp_path, "--vary", "duration=5,10", model=f"{KLING},{WAN}"), env, tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    by = Counter((j["endpoint"], j["arguments"].get("duration")) for j in emulator.jobs())
    assert by == {(KLING, "5"): 2, (KLING, "10"): 2, (WAN, None): 2}
    bad = run_cli(bulk(tmp_path, "--vary", "wan:duration=5", model=f"{KLING},{WAN}"), env, tmp_path)
    assert bad.returncode == 2 and "has no option 'duration'" in bad.stderr


def test_random_picks_are_the_same_on_the_same_command(tmp_path, emulator):
    line = "a push-in at {~dawn|dusk|noon|night|twilight}, {slow|fast}"
    env = setup(tmp_path, emulator.url, line)
    first = run_cli(bulk(tmp_path), env, tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    seed = ledger(tmp_path / "ledger.db", "SELECT prompt_seed FROM batches")[0][0]
    assert isinstance(seed, int) and f"seed {seed}" in first.stdout
    prompts = sorted(p for (p,) in ledger(tmp_path / "ledger.db", "SELECT prompt FROM jobs"))
    assert len(prompts) == 4
    again = run_cli([*bulk(tmp_path), "--dry-run"], env, tmp_path)
    assert "this run: US$ 0.00 (0 jobs)" in again.stdout, again.stdout  # the same prompts
    # another seed picks other words for some prompt: new jobs in the same batch
    mine = {e.text for e in expand_lines([line], None, seed)[0]}
    assert set(prompts) == mine
    seeds = [s for s in range(1, 50) if s != seed]
    other = next(s for s in seeds if {e.text for e in expand_lines([line], None, s)[0]} != mine)
    moved = run_cli([*bulk(tmp_path, "--prompt-seed", str(other)), "--dry-run"], env, tmp_path)
    assert "this run: US$ 0.00 (0 jobs)" not in moved.stdout


def test_prompt_grammar(tmp_path):
    (tmp_path / "wildcards").mkdir()
    (tmp_path / "wildcards" / "camera.txt").write_text("# moves\ndolly in\n\ncrane up\n")
    out, _ = expand_lines(["__camera__ at {dawn|dusk}", "plain {word} \\{a\\|b\\}"], tmp_path)
    assert [e.text for e in out] == [
        "dolly in at dawn",
        "dolly in at dusk",
        "crane up at dawn",
        "crane up at dusk",
        "plain {word} {a|b}",
    ]
    assert out[0].values == {"__camera__": "dolly in", "{dawn|dusk}": "dawn"}
    for bad, says in [
        ("a {slow|fast", "never closed"),
        ("a {slow|{a|b}}", "cannot be nested"),
        ("__nope__ x", "no wildcard file for __nope__"),
    ]:
        with pytest.raises(InputError, match=says):
            parse(bad, WildcardFolder(tmp_path), where="prompt 1")


# ------------------------------------------------------------ the report's grid, in Chromium


@pytest.fixture
def varied_batch(tmp_path, emulator):
    """The acceptance batch, run: 2 images x 4 prompts x 2 durations = 16 clips."""
    env = setup(tmp_path, emulator.url)
    done = run_cli(bulk(tmp_path, "--vary", "duration=5,10"), env, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    (batch,) = ledger(tmp_path / "ledger.db", "SELECT id FROM batches")[0]
    return tmp_path / "ledger.db", batch


def test_grid_offers_every_varied_axis(varied_batch):
    db, batch = varied_batch
    with Store(db) as store:
        cells = cmp.cells_from_rows(store.jobs(batch))
    assert cmp.axes_of(cells) == (
        "image", "prompt", "{slow|fast}", "{dawn|dusk}", "model", "duration", "take",
    )  # fmt: skip
    assert cmp.default_axes(cells) == (("image", "prompt"), ("duration",))
    grid = cmp.arrange(cells, ("{slow|fast}",), ("duration", "{dawn|dusk}"))
    assert grid.row_keys == [("slow",), ("fast",)]
    assert sorted(grid.col_keys) == [
        ("duration 10", "dawn"), ("duration 10", "dusk"), ("duration 5", "dawn"),
        ("duration 5", "dusk"),
    ]  # fmt: skip
    assert all(len(grid.slot(r, c)) == 2 for r in grid.row_keys for c in grid.col_keys)
    with Store(db) as store:  # the notebook's grid: the same axes, chosen by the same names
        view = CompareView(lambda: store.jobs(batch), db, batch, db.parent)
        view.set_axes(cmp.choices(view.cells)["{dawn|dusk}"], cmp.choices(view.cells)["duration"])
        assert view.error is None and view.grid().row_keys == [("dawn",), ("dusk",)]
        values = per_value(store, batch)
    by = {(axis, value): m for axis, value, m in values}
    assert set(by) == {
        ("duration", "5"), ("duration", "10"), ("{slow|fast}", "slow"), ("{slow|fast}", "fast"),
        ("{dawn|dusk}", "dawn"), ("{dawn|dusk}", "dusk"),
    }  # fmt: skip
    assert by[("duration", "10")].cost_per_clip == pytest.approx(
        2 * by[("duration", "5")].cost_per_clip
    )
    assert all(m.jobs == 8 and m.done == 8 and m.failed == 0 for m in by.values())


def test_report_grid_along_duration_and_prompt_variables(browser, varied_batch, tmp_path):  # noqa: F811
    db, batch = varied_batch
    with Store(db) as store:
        index = write_report(store, batch, tmp_path / "report")
    with open(index.parent / "jobs.csv", encoding="utf-8-sig", newline="") as f:
        axes = [json.loads(r["axes"]) for r in csv.DictReader(f)]
    assert len(axes) == 16 and all(
        set(a) == {"{slow|fast}", "{dawn|dusk}", "duration"} for a in axes
    )
    page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(index.resolve().as_uri())
        offered = page.locator("#i2v-rows option").all_inner_texts()
        for axis in ("duration", "{slow|fast}", "{dawn|dusk}", "image", "prompt", "model", "take"):
            assert axis in offered, offered
        assert page.locator("#i2v-cols option").all_inner_texts() == offered
        page.select_option("#i2v-rows", "{slow|fast}")
        page.select_option("#i2v-cols", "duration")
        rows = [
            t.split("\n")[0].strip()
            for t in page.locator("#i2v-compare th.i2v-row").all_inner_texts()
        ]
        cols = [t.strip() for t in page.locator("#i2v-compare th.i2v-col").all_inner_texts()]
        assert rows == ["slow", "fast"] and cols == ["duration 5", "duration 10"], (rows, cols)
        assert page.locator("#i2v-compare .i2v-cell").count() == 16
        assert page.locator("#i2v-compare video").count() == 16
        texts = page.locator("#i2v-compare tr").nth(1).locator("td").all_inner_texts()
        assert len(texts) == 2 and all(t.count("downloaded") == 4 for t in texts)
        assert "slow push-in" in texts[0] and "fast" not in texts[0]
        assert "duration 10" in texts[1] and "duration 5" not in texts[1]
        page.select_option("#i2v-rows", "{dawn|dusk}")
        rows = [
            t.split("\n")[0].strip()
            for t in page.locator("#i2v-compare th.i2v-row").all_inner_texts()
        ]
        assert rows == ["dawn", "dusk"]
        body = page.locator("body").inner_text()
        assert "Per value" in body
        assert not errors, errors
    finally:
        page.context.close()


def test_a_shot_list_cell_varies_too(tmp_path, settings):
    from helpers import plan_in

    from i2vkit.errors import InputError, ShotListError
    from i2vkit.planning import BatchRequest

    make_images(tmp_path / "pics", 1)
    image = next((tmp_path / "pics").iterdir()).name
    shots = tmp_path / "shots.csv"
    shots.write_text(
        f"image,prompt,duration\npics/{image},a {{slow|fast}} pan,5|10\npics/{image},still,4\n"
    )
    plan = plan_in(BatchRequest(shots=shots, model=KLING), settings)
    got = sorted((j.prompt, j.options["duration"], json.dumps(j.varied)) for j in plan.jobs)
    assert got == [
        ("a fast pan", "10", '{"duration": "10"}'),
        ("a fast pan", "5", '{"duration": "5"}'),
        ("a slow pan", "10", '{"duration": "10"}'),
        ("a slow pan", "5", '{"duration": "5"}'),
        ("still", "4", "{}"),
    ]
    assert len({j.key(None) for j in plan.jobs}) == 5
    shots.write_text(f"image,prompt,duration\npics/{image},a pan,5|20\n")
    with pytest.raises(ShotListError, match=r"row 2, column duration: .*'20'"):
        plan_in(BatchRequest(shots=shots, model=KLING), settings)
    # --vary with a shot list was dropped without a word: it says where the values go
    with pytest.raises(InputError, match=r"--vary duration does not apply to a shot list.*5\|10"):
        plan_in(BatchRequest(shots=shots, model=KLING, vary={"duration": ["5", "10"]}), settings)


def test_max_cost_covers_the_whole_expansion(tmp_path, emulator):
    env = setup(tmp_path, emulator.url)
    out = run_cli(bulk(tmp_path, "--vary", "duration=5,10", "--max-cost", "10"), env, tmp_path)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "above the spend cap of US$ 10.00" in out.stdout + out.stderr
    assert emulator.stats()["uploads"] == 0
