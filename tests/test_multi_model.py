"""Several models and several takes in one batch (issue 16, data side), on the emulator.

The acceptance batch: 2 images x 2 prompts x 2 models x 2 takes = 16 jobs, 16 files, the
images uploaded once for both models, plan and summary per model; `--takes 3` later
submits exactly the 8 missing takes; `--takes 1` deletes nothing.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import pytest
from clitools import cli_env, ledger, run_cli, videos, write_prompts
from helpers import make_images, plan_in

from i2vkit.errors import ModelError
from i2vkit.models import get_model
from i2vkit.planning import BatchRequest
from i2vkit.planning.options import split_options, take_seed

WAN, VEO = "fal-ai/wan-i2v", "fal-ai/veo3.1/fast/image-to-video"


def bulk(tmp_path: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "i2vkit",
        "bulk",
        str(tmp_path / "p.txt"),
        "--images-dir",
        str(tmp_path / "pics"),
        "--model",
        "wan-2.1,veo-3.1-fast",  # named by version: `wan` and `veo` follow fal
        "--yes",
        "--no-progress",
        *extra,
    ]


def test_two_models_two_takes_then_a_third_take(tmp_path, emulator):
    make_images(tmp_path / "pics", 2)
    write_prompts(tmp_path / "p.txt", 2)
    env = cli_env(tmp_path, emulator.url)

    first = run_cli(bulk(tmp_path, "--takes", "2"), env, tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    stats = emulator.stats()
    assert stats["uploads"] == 2  # each image once, for both models and both takes
    assert stats["submits"]["by_endpoint"] == {WAN: 8, VEO: 8}
    assert len(videos(tmp_path / "videos")) == 16
    # the plan and the summary, per model
    assert "2 models x 2 takes = 16 jobs" in first.stdout
    assert f"wan-2.1 ({WAN}): 8 jobs" in first.stdout
    assert f"veo-3.1-fast ({VEO}): 8 jobs" in first.stdout
    assert "  wan-2.1: 8 jobs, 8 videos, 0 failed" in first.stdout
    assert "  veo-3.1-fast: 8 jobs, 8 videos, 0 failed" in first.stdout

    db = tmp_path / "ledger.db"
    rows = ledger(db, "SELECT endpoint_id, image_path, prompt, take, seed, request_id FROM jobs")
    assert len(rows) == 16 and {r[3] for r in rows} == {1, 2}
    sent = {j["request_id"]: j["arguments"] for j in emulator.jobs()}
    for _endpoint, _image, prompt, _take, seed, request_id in rows:
        assert sent[request_id]["seed"] == seed  # the recorded seed is the one sent
        assert sent[request_id]["prompt"] == prompt
    takes_of = Counter((r[0], r[1], r[2]) for r in rows)
    assert set(takes_of.values()) == {2}
    for key in takes_of:  # the two takes of a job differ in seed
        assert len({r[4] for r in rows if (r[0], r[1], r[2]) == key}) == 2

    third = run_cli(bulk(tmp_path, "--takes", "3"), env, tmp_path)
    assert third.returncode == 0, third.stdout + third.stderr
    assert emulator.stats()["submits"]["total"] == 24  # exactly 8 more
    assert emulator.stats()["uploads"] == 2
    again = ledger(db, "SELECT endpoint_id, image_path, prompt, take, seed FROM jobs")
    assert len(again) == 24
    before = {(r[0], r[1], r[2], r[3]): r[4] for r in rows}
    for r in again:  # earlier takes untouched: same seeds
        if (r[0], r[1], r[2], r[3]) in before:
            assert before[(r[0], r[1], r[2], r[3])] == r[4]

    fewer = run_cli(bulk(tmp_path, "--takes", "1"), env, tmp_path)
    assert fewer.returncode == 0, fewer.stdout + fewer.stderr
    assert emulator.stats()["submits"]["total"] == 24
    assert len(ledger(db, "SELECT id FROM jobs")) == 24  # nothing deleted
    assert "  wan-2.1: 12 jobs, 12 videos" in fewer.stdout  # the summary still counts them
    assert len(videos(tmp_path / "videos")) == 24


def test_seeds_are_planned_the_same_way_twice(tmp_path, settings):
    make_images(tmp_path / "pics", 2)
    write_prompts(tmp_path / "p.txt", 1)

    def seeds() -> list:
        spec = BatchRequest(tmp_path / "pics", tmp_path / "p.txt", model="wan,kling", takes=3)
        return [(j.model.name, j.take, j.seed) for j in plan_in(spec, settings).jobs]

    first = seeds()
    assert first == seeds()
    wan = [s for m, _, s in first if m == "wan"]
    assert len(wan) == 6 and len(set(wan)) == 6
    assert all(s is None for m, _, s in first if m == "kling")  # no seed option: plain takes


def test_a_given_seed_counts_up_by_take():
    wan = get_model("wan")
    assert [take_seed(wan, ["x"], t, 3, given=100) for t in (1, 2, 3)] == [100, 101, 102]
    assert take_seed(wan, ["x"], 1, 1) is None  # one take, no seed given: none sent
    assert take_seed(wan, ["x"], 1, 1, given=7) == 7


def test_options_go_to_the_models_that_have_them():
    wan, veo, kling = get_model("wan-2.1"), get_model("veo-3.1-fast"), get_model("kling")
    per = split_options([wan, veo, kling], {"seed": "5", "duration": "6s", "kling:duration": "10"})
    assert per[0] == {"seed": "5"}  # wan has a seed, no duration
    assert per[1] == {"seed": "5", "duration": "6s"}
    assert per[2] == {"duration": "10"}  # targeted wins; kling has no seed
    with pytest.raises(ModelError, match="none of this batch's models .* has an option 'nope'"):
        split_options([wan, veo], {"nope": "1"})
    with pytest.raises(ModelError, match="'luma' is not one of this batch's models"):
        split_options([wan, veo], {"luma:duration": "5"})


def test_plan_cost_and_spend_cap_cover_the_whole_batch(tmp_path, emulator):
    make_images(tmp_path / "pics", 2)
    write_prompts(tmp_path / "p.txt", 2)
    env = cli_env(tmp_path, emulator.url)
    wan = get_model("wan-2.1").estimate_cost({})
    veo = get_model("veo-3.1-fast").estimate_cost({})
    total = 4 * wan + 4 * veo
    capped = run_cli(bulk(tmp_path, "--max-cost", f"{total - 0.01:.2f}"), env, tmp_path)
    assert capped.returncode == 2, capped.stdout + capped.stderr
    assert f"US$ {total:,.2f}" in capped.stdout and "spend cap" in capped.stdout
    assert emulator.stats()["uploads"] == 0 and emulator.stats()["submits"]["total"] == 0
    fits = run_cli(bulk(tmp_path, "--max-cost", f"{total:.2f}"), env, tmp_path)
    assert fits.returncode == 0, fits.stdout + fits.stderr
    assert emulator.stats()["submits"]["total"] == 8


def test_a_one_model_batch_keeps_its_batch_id_and_job_keys(tmp_path, settings):
    """A batch started before models and takes per job resumes: one model, first take."""
    from i2vkit.planning.identity import job_key

    make_images(tmp_path / "pics", 1)
    write_prompts(tmp_path / "p.txt", 1)
    plan = plan_in(BatchRequest(tmp_path / "pics", tmp_path / "p.txt", model="wan"), settings)
    job = plan.jobs[0]
    # the formula of before: image path, hash, prompt, occurrence
    assert job.key("abc") == job_key(job.image_ref, "abc", job.prompt, 0)
    spec2 = BatchRequest(tmp_path / "pics", tmp_path / "p.txt", model="wan", takes=2)
    plan2 = plan_in(spec2, settings)
    assert plan2.batch_id == plan.batch_id
    assert plan2.jobs[0].key("abc") == job.key("abc") != plan2.jobs[1].key("abc")


def test_the_ledger_records_each_jobs_own_model_and_options(tmp_path, emulator):
    make_images(tmp_path / "pics", 1)
    write_prompts(tmp_path / "p.txt", 1)
    env = cli_env(tmp_path, emulator.url)
    args = bulk(tmp_path, "-o", "veo-3.1-fast:duration=6s", "-o", "seed=42")
    done = run_cli(args, env, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = ledger(tmp_path / "ledger.db", "SELECT model, options, seed FROM jobs ORDER BY model")
    assert [(m, json.loads(o), s) for m, o, s in rows] == [
        ("veo-3.1-fast", {"duration": "6s", "seed": 42}, 42),
        ("wan-2.1", {"seed": 42}, 42),
    ]
    sent = sorted(emulator.jobs(), key=lambda j: j["endpoint"])
    assert sent[0]["arguments"]["duration"] == "6s" and sent[0]["arguments"]["seed"] == 42
    assert "duration" not in sent[1]["arguments"] and sent[1]["arguments"]["seed"] == 42


def test_a_failed_job_of_a_comparison_names_its_model_and_take_and_the_retry(tmp_path, emulator):
    """In a batch of several models and takes, a FAILED line says which model and which
    take failed (the image and prompt alone are shared by four jobs), and the summary ends
    with the command that submits the failed jobs again."""
    emulator.configure(fail_rate=1.0, fail_kind="validation")
    make_images(tmp_path / "pics", 1)
    write_prompts(tmp_path / "p.txt", 1)
    env = cli_env(tmp_path, emulator.url)
    out = run_cli(bulk(tmp_path, "--takes", "2"), env, tmp_path)
    assert out.returncode == 1, out.stdout + out.stderr
    failed = ledger(tmp_path / "ledger.db", "SELECT id, model, take FROM jobs")
    want = {("wan-2.1", 1), ("wan-2.1", 2), ("veo-3.1-fast", 1), ("veo-3.1-fast", 2)}
    assert {(m, t) for _, m, t in failed} == want
    for job_id, model, take in failed:
        line = next(x for x in out.stdout.splitlines() if x.startswith(f"FAILED job {job_id} "))
        assert f"({model}, take {take}, " in line, line
    batch = ledger(tmp_path / "ledger.db", "SELECT id FROM batches")[0][0]
    assert f"`i2vkit retry {batch}` submits the failed jobs again" in out.stdout
