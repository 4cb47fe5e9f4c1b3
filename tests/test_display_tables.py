"""What the notebooks say in words and tables (issue 23, the display): grammar that agrees
with the numbers, tables with readable headers and local times to the second, prompts cut
between words, the timeline's runs and caption, and the grid's default layout."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from i2vkit import compare as cmp
from i2vkit import runs
from i2vkit import tables as tb
from i2vkit import timeline as tl
from i2vkit.engine import run_batch
from i2vkit.keepers import mark
from i2vkit.models import get_model
from i2vkit.planning import BatchRequest, plan_batch
from i2vkit.store import Store
from i2vkit.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]
LONG = "a slow cinematic push-in over the misty harbour at dawn while gulls circle the masts"


@pytest.fixture
def one_image(tmp_path) -> Path:
    folder = tmp_path / "one"
    folder.mkdir()
    shutil.copy(REPO / "data" / "images" / "01_dawn.jpg", folder / "01_dawn.jpg")
    return folder


@pytest.fixture
def single(settings, one_image):
    """One image x one (long) prompt on one model: one job, done."""
    result = run_batch(BatchRequest(one_image, prompts=[LONG], model="wan"), settings)
    assert result.ok, result.summary()
    return result


def test_counts_agree_with_their_nouns(settings, single, one_image, tmp_path):
    from i2vkit.notebook import CompareView
    from i2vkit.notebook.preview import plan_html
    from i2vkit.report import write_report

    ws = Workspace.open(settings)
    plan = plan_batch(BatchRequest(one_image, prompts=["pan"], model="wan"), ws)
    html = plan_html(plan, ws)
    assert "1 job</b>: 1 image x 1 prompt (all)" in html, html
    assert "1 images" not in html and "1 prompts" not in html

    summary = single.summary()
    assert "1 job, 1 downloaded" in summary and "wan: 1 job, 1 video, 0 failed" in summary
    assert not re.search(r"\b1 (jobs|videos)\b", summary), summary

    with Store(settings.db_path) as store:
        rows = store.jobs(single.batch_id)
        index = write_report(store, single.batch_id, tmp_path / "report")
    page = index.read_text("utf-8")
    for said in ("1 image</b>", "1 prompt</b>", "1 model</b>", "1 job ("):
        assert said in page, said
    assert not re.search(r"\b1 (images|prompts|models|jobs)\b", page)
    view = CompareView(lambda: rows, settings.db_path, single.batch_id, tmp_path)
    assert "1 job (1 downloaded)" in view.heading()


def test_batch_table_reads_like_a_table(settings, single):
    with Store(settings.db_path) as store:
        job = store.jobs(single.batch_id)[0]
        mark(store, single.batch_id, [job["id"]], True)
        table = tb.batches_table(store, store.list_batches())
    assert table.headers[:2] == ["Batch", "Created"]
    assert not [h for h in table.headers if "_" in h], table.headers  # no column names
    row = dict(zip(table.headers, table.rows[0], strict=True))
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", row["Created"]), row  # no µs
    assert row["Keepers"] == "1" and row["Jobs"] == "1" and row["Videos"] == "1"
    clip = get_model("wan").estimate_cost()  # wan's price for one clip, from the catalogue
    assert clip is not None and row["Cost (est.)"] == f"US$ {clip:.2f}", row
    assert_money_never_wraps(table.html())


def assert_money_never_wraps(html: str) -> None:
    """Each amount sits in a cell that keeps to one line, or is joined by a no-break space."""
    for cell in re.findall(r"<t[dh] style='([^']*)'>(.*?)</t[dh]>", html):
        assert "US$ " not in cell[1] or "white-space:nowrap" in cell[0], cell


def test_local_time_is_the_users_zone_to_the_second(monkeypatch):
    import time

    monkeypatch.setenv("TZ", "Asia/Kolkata")  # UTC+05:30, no daylight saving
    time.tzset()
    try:
        assert tb.local_time("2026-01-02T03:04:05.678901+00:00") == "2026-01-02 08:34:05"
        assert tb.local_time(None) == ""
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_files_table_cuts_prompts_between_words(settings, single):
    with Store(settings.db_path) as store:
        table = tb.files_table(store.jobs(single.batch_id))
    prompt = dict(zip(table.headers, table.rows[0], strict=True))["Prompt"]
    assert prompt.endswith("…") and len(prompt) <= 60
    shown = prompt[:-1].split()
    assert shown == LONG.split()[: len(shown)], prompt  # every word whole
    assert tb.shorten("x" * 80, 10) == "x" * 9 + "…"  # one long word: cut at the limit


def test_run_summary_is_small_tables(single):
    from i2vkit.notebook import run_summary

    run, models, lines = tb.run_tables(single)
    facts = dict(run.rows)
    assert facts["Jobs"] == "1 (1 downloaded)" and facts["Batch total"].startswith("US$ ")
    assert models is not None and models.rows[0][:4] == ["wan", "1", "1", "0"]
    html = run_summary(single).html
    assert html.count("<table") == 2 and "US$" in html
    assert_money_never_wraps(html)
    assert run_summary(single).text() == single.summary()  # the script prints the CLI's


# ---------------------------------------------------------------------------- timeline


def stamp(second: float) -> str:
    minutes, s = divmod(second, 60)
    return f"2026-01-01T10:{int(minutes):02d}:{s:06.3f}+00:00"


def job(i, owner, created, submitted, take=1, model="wan"):
    return {
        "id": i,
        "image_path": f"/x/img{i}.png",
        "prompt": "slow pan",
        "model": model,
        "take": take,
        "status": "downloaded",
        "owner": owner,
        "created_at": stamp(created),
        "submitted_at": stamp(submitted),
        "started_at": stamp(submitted + 0.5),
        "completed_at": stamp(submitted + 4),
        "downloaded_at": stamp(submitted + 4.5),
    }


def test_a_second_run_is_its_own_stretch_and_the_pause_no_wait():
    """Run 1 at 10:00, run 2 nine minutes later; job 3 was planned in run 1 and submitted in
    run 2 (resumed). The pause is cut out, and nobody "waited here" through it."""
    rows = [
        job(1, "a", 0, 0.2),
        job(2, "a", 0, 0.3),
        job(3, "b", 0, 540.2),
        job(4, "b", 540, 540.3, take=2),
    ]
    chart = tl.chart(rows)
    assert [(round(s.start, 1), round(s.end, 1)) for s in chart.stretches] == [
        (0.0, 4.8),
        (540.0, 544.8),
    ]
    resumed = next(t for t in chart.times if t.job_id == 3)
    assert resumed.segments[0] == ("local", 540.0, 540.2)
    caption = tl.timeline_summary(rows)
    assert caption.startswith("2 runs: run 1 at ") and "run 2 8 min 55 s later" in caption
    assert "waited here" not in caption and "run time dominates" in caption
    text = tl.timeline_text(rows)
    assert "4 img4.png · wan · take 2" in text and "1 img1.png · wan · take 1" in text
    svg = tl.timeline_svg(rows)
    assert svg.count('class="i2v-pause"') == 1 and "+8 min 55 s" in svg


def test_one_run_keeps_its_waits_and_short_pauses():
    """Without owners (an older ledger) and with pauses under MIN_GAP_S: one stretch, and a
    wait here from the batch's start is still a wait here."""
    rows = [job(1, None, 0, 6.0), job(2, None, 0, 6.0 + runs.MIN_GAP_S - 1)]
    for r in rows:
        r["owner"] = None
    chart = tl.chart(rows)
    assert len(chart.stretches) == 1 and chart.stretches[0].start == 0.0
    assert "waited here" in tl.timeline_summary(rows)
    assert runs.duration_words(552) == "9 min 12 s" and runs.duration_words(2.25) == "2.2 s"


# ---------------------------------------------------------------------------- grid axes


def cells(images=3, prompts=3, models=("wan",), takes=1):
    return [
        cmp.Cell(0, f"/i/{i}.png", f"p{p}", m, take=t)
        for m in models
        for i in range(images)
        for p in range(prompts)
        for t in range(1, takes + 1)
    ]


def test_default_layout_puts_side_by_side_what_fits():
    assert cmp.default_axes(cells(models=("wan", "kling"), takes=2)) == (
        ("image", "prompt"),
        ("model", "take"),
    )
    # 2 models x 3 takes = 6 columns would not fit: the takes go to the rows
    assert cmp.default_axes(cells(models=("wan", "kling"), takes=3)) == (
        ("image", "prompt", "take"),
        ("model",),
    )
    assert cmp.default_axes(cells()) == (("image",), ("prompt",))  # one model, one take
    assert cmp.default_axes(cells(prompts=1)) == (("prompt",), ("image",))
