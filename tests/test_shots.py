"""Shot lists in (issue 17): one job per row, exactly the arguments each row asks for, every
malformed row named (file, row, column) before anything is uploaded, resume after kill -9."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from clitools import cli_env, ledger, run_cli, videos, wait_until, write_prompts
from helpers import make_images, plan_in, upload_blob

from i2vkit.errors import InputError
from i2vkit.models import get_model
from i2vkit.planning import BatchRequest
from i2vkit.planning.shots import read_shots

WAN, VEO = "fal-ai/wan-i2v", "fal-ai/veo3.1/fast/image-to-video"
KLING = "fal-ai/kling-video/v3/standard/image-to-video"


def shots_cmd(path: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "i2vkit", "bulk", "--shots", str(path), "--yes", "--no-progress",
            *extra]  # fmt: skip


def three_model_list(tmp_path: Path) -> Path:
    """A spreadsheet export: UTF-8 with BOM, ';' delimiters, a prompt with a line break."""
    make_images(tmp_path / "pics", 3)
    text = (
        "image;prompt;model;end_image;duration;seed;takes;name\r\n"
        'pics/img1.png;"a slow pan\r\nover the sea";wan-2.1;;;7;;opening\r\n'
        "pics/img2.png;a dolly in;veo-3.1-fast;;6s;;;\r\n"
        "pics/img3.png;a crane up;kling;pics/img1.png;10;;2;finale\r\n"
    )
    path = tmp_path / "shots.csv"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    return path


def test_spreadsheet_csv_is_read_as_written(tmp_path):
    rows = read_shots(three_model_list(tmp_path))
    assert [r.where for r in rows] == ["row 2", "row 3", "row 4"]
    assert rows[0].cells["prompt"] == "a slow pan\r\nover the sea"
    assert rows[0].cells["image"] == "pics/img1.png" and "end_image" not in rows[0].cells
    assert rows[2].cells == {
        "image": "pics/img3.png",
        "prompt": "a crane up",
        "model": "kling",
        "end_image": "pics/img1.png",
        "duration": "10",
        "takes": "2",
        "name": "finale",
    }


def test_a_shot_list_runs_with_exactly_its_arguments(tmp_path, emulator):
    path = three_model_list(tmp_path)
    env = cli_env(tmp_path, emulator.url)
    done = run_cli(shots_cmd(path), env, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(videos(tmp_path / "videos")) == 4  # 1 + 1 + 2 takes
    sent = sorted(emulator.jobs(), key=lambda j: (j["endpoint"], j["submitted_at"]))
    got = [(j["endpoint"], j["arguments"]) for j in sent]
    cdn = emulator.url + "/"
    for endpoint, args in got:
        assert args.pop(get_model(endpoint).image_field).startswith(cdn)
    kling = [a for e, a in got if e == KLING]
    for a in kling:
        assert a.pop("end_image_url").startswith(cdn)
    assert kling == [{"prompt": "a crane up", "duration": "10"}] * 2  # no seed option: plain
    assert [a for e, a in got if e == VEO] == [{"prompt": "a dolly in", "duration": "6s"}]
    assert [a for e, a in got if e == WAN] == [{"prompt": "a slow pan\r\nover the sea", "seed": 7}]
    names = ledger(tmp_path / "ledger.db", "SELECT shot_name, model, take FROM jobs ORDER BY id")
    assert sorted(names, key=str) == sorted(
        [
            ("opening", "wan-2.1", 1),
            (None, "veo-3.1-fast", 1),
            ("finale", "kling", 1),
            ("finale", "kling", 2),
        ],
        key=str,
    )
    again = run_cli(shots_cmd(path), env, tmp_path)  # the same command resumes: nothing new
    assert again.returncode == 0 and emulator.stats()["submits"]["total"] == 4


def test_a_shot_list_resumes_after_kill_9(tmp_path, emulator):
    make_images(tmp_path / "pics", 3)
    with open(tmp_path / "shots.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["image", "prompt", "model", "duration"])
        for i in range(1, 4):
            w.writerow([f"pics/img{i}.png", f"shot {i}", "wan", ""])
            w.writerow([f"pics/img{i}.png", f"shot {i}", "veo", "4s"])
    env = cli_env(tmp_path, emulator.url)
    emulator.configure(job_seconds=(0.2, 0.5), start_limit=2)  # the batch cannot finish
    proc = subprocess.Popen(
        shots_cmd(tmp_path / "shots.csv"),
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(
            # jobs fal created, not POSTs begun: a POST the kill cuts off mid-body creates
            # none, and its job is rightly submitted again by the resumed run
            lambda: len(emulator.jobs()) == 6 or proc.poll() is not None,
            120,
            "every shot submitted",
        )
        assert proc.poll() is None, "the batch ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    emulator.configure(start_limit=None)
    resumed = run_cli(shots_cmd(tmp_path / "shots.csv"), env, tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    inputs = [repr(sorted(j["arguments"].items())) for j in emulator.jobs()]
    assert len(inputs) == len(set(inputs)) == 6  # zero duplicate submits
    assert len(videos(tmp_path / "videos")) == 6


def bad(tmp_path: Path, settings, body: str, name: str = "shots.csv") -> str:
    make_images(tmp_path / "pics", 2)
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    with pytest.raises(InputError) as caught:
        plan_in(BatchRequest(shots=path), settings)
    return str(caught.value)


@pytest.mark.parametrize(
    ("row", "where", "says"),
    [
        ("pics/nope.png,a prompt,wan,", "row 3, column image", "no such file 'pics/nope.png'"),
        ("pics/img1.png,,wan,", "row 3, column prompt", "empty"),
        ("pics/img1.png,p,nosuchmodel,", "row 3, column model", "Unknown model 'nosuchmodel'"),
        ("pics/img1.png,p,wan-2.1,9s", "row 3, column duration", "no option 'duration'"),
        ("pics/img1.png,p,veo,7s", "row 3, column duration", 'expected one of "4s"'),
    ],
)
def test_each_malformed_row_is_named(tmp_path, settings, row, where, says):
    body = f"image,prompt,model,duration\npics/img1.png,fine,wan,\n{row}\n"
    message = bad(tmp_path, settings, body)
    assert f"shots.csv {where}: " in message and says in message
    assert "row 2" not in message  # the good row is not blamed


def test_bad_takes_end_image_and_seed_are_named(tmp_path, settings):
    body = (
        "image,prompt,model,takes,end_image,seed\n"
        "pics/img1.png,p,wan,0,,\n"
        "pics/img1.png,p,wan-2.1,1,pics/img2.png,\n"
        "pics/img1.png,p,wan,1,,abc\n"
        "pics/img1.png,p,kling,1,pics/gone.png,\n"
    )
    message = bad(tmp_path, settings, body)
    assert "shots.csv row 2, column takes: must be a whole number of at least 1" in message
    assert (
        "shots.csv row 3, column end_image: wan-2.1 (fal-ai/wan-i2v) takes no end image" in message
    )
    assert "shots.csv row 4, column seed: seed='abc': expected a whole number" in message
    assert "shots.csv row 5, column end_image: no such file 'pics/gone.png'" in message
    assert "4 problem(s)" in message


def test_jsonl_rows_are_named_by_line(tmp_path, settings):
    body = (
        '{"image": "pics/img1.png", "prompt": "p", "model": "veo", "duration": "6s"}\n'
        "\n"
        '{"image": "pics/img2.png", "prompt": "p", "model": "veo", "duration": 5}\n'
        "not json\n"
    )
    message = bad(tmp_path, settings, body, "shots.jsonl")
    assert "shots.jsonl line 4: not JSON" in message


def test_a_header_without_prompt_and_a_file_not_utf8(tmp_path, settings):
    assert "shots.csv row 1: no 'prompt' column" in bad(tmp_path, settings, "image;text\na;b\n")
    path = tmp_path / "latin.csv"
    path.write_bytes("image,prompt\npics/img1.png,caf\xe9\n".encode("latin-1"))
    with pytest.raises(InputError, match="latin.csv is not UTF-8 text.*CSV UTF-8"):
        plan_in(BatchRequest(shots=path), settings)


def test_every_row_is_checked_before_anything_is_uploaded(tmp_path, emulator):
    make_images(tmp_path / "pics", 2)
    (tmp_path / "shots.csv").write_text(
        "image,prompt,model\npics/img1.png,ok,wan\npics/missing.png,x,wan\npics/img2.png,,wan\n"
    )
    out = run_cli(shots_cmd(tmp_path / "shots.csv"), cli_env(tmp_path, emulator.url), tmp_path)
    assert out.returncode == 2
    assert "row 3, column image" in out.stderr and "row 4, column prompt" in out.stderr
    assert emulator.stats()["uploads"] == 0 and emulator.stats()["submits"]["total"] == 0


def test_write_shots_turns_a_folder_plan_into_a_shot_list(tmp_path, emulator, settings):
    make_images(tmp_path / "pics", 2)
    write_prompts(tmp_path / "p.txt", 2)
    env = cli_env(tmp_path, emulator.url)
    args = [sys.executable, "-m", "i2vkit", "bulk", str(tmp_path / "p.txt"), "--images-dir",
            str(tmp_path / "pics"), "--model", "wan,veo", "-o", "veo:duration=6s", "--takes",
            "2", "--dry-run", "--write-shots", str(tmp_path / "out.csv")]  # fmt: skip
    done = run_cli(args, env, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert emulator.stats()["uploads"] == 0 and emulator.stats()["submits"]["total"] == 0
    with open(tmp_path / "out.csv", encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8 and {r["takes"] for r in rows} == {"2"}
    assert {(r["model"], r["duration"]) for r in rows} == {("wan", ""), ("veo", "6s")}
    assert rows[0]["image"] == "pics/img1.png"  # relative to the shot list
    folder = plan_in(
        BatchRequest(
            tmp_path / "pics",
            tmp_path / "p.txt",
            model="wan,veo",
            options={"veo:duration": "6s"},
            takes=2,
        ),  # fmt: skip
        settings,
    )
    shots = plan_in(BatchRequest(shots=tmp_path / "out.csv"), settings)

    def jobs(plan):
        return sorted((j.image_ref, j.prompt, j.model.name, j.take, repr(j.options))
                      for j in plan.jobs)  # fmt: skip

    assert jobs(shots) == jobs(folder)
    again = run_cli(args, env, tmp_path)  # an edited shot list is never overwritten
    assert again.returncode == 2 and "already exists" in again.stderr


def test_a_url_row_is_sent_as_is_beside_an_uploaded_local_row(tmp_path, emulator):
    """Issue 17: a row's image may be an http(s) URL. fal fetches it itself, so i2vkit sends
    exactly that URL and uploads nothing for it; the local row's image goes through the CDN."""
    local, remote = make_images(tmp_path / "pics", 2)
    url = upload_blob(emulator, remote.read_bytes())  # a real image behind a loopback URL
    assert url.startswith("http://127.0.0.1:")
    emulator.reset_stats()  # from here on, only what the shot list uploads counts
    (tmp_path / "shots.csv").write_text(
        f"image,prompt,model\npics/{local.name},a local shot,wan\n{url},a url shot,wan\n",
        encoding="utf-8",
    )
    env = cli_env(tmp_path, emulator.url)
    done = run_cli(shots_cmd(tmp_path / "shots.csv"), env, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert emulator.stats()["uploads"] == 1  # the local image only
    sent = {j["arguments"]["prompt"]: j["arguments"] for j in emulator.jobs()}
    assert sorted(sent) == ["a local shot", "a url shot"]
    assert sent["a url shot"]["image_url"] == url
    cdn = sent["a local shot"]["image_url"]
    assert cdn.startswith(emulator.url + "/files/") and cdn != url
    assert len(videos(tmp_path / "videos")) == 2
    rows = ledger(tmp_path / "ledger.db", "SELECT prompt, status, image_url FROM jobs")
    assert sorted(rows) == [("a local shot", "downloaded", cdn), ("a url shot", "downloaded", url)]


@pytest.mark.parametrize(
    ("column", "value", "says"),
    [
        ("image", "ftp://127.0.0.1/img1.png", "'ftp://127.0.0.1/img1.png' is not an http(s) URL"),
        ("image", "http:///img1.png", "'http:///img1.png' has no host"),
        ("image", "https://", "'https://' has no host"),
        ("image", "http://127.0.0.1:x/a", "'http://127.0.0.1:x/a' has a port that is not a number"),
        ("end_image", "file://pics/img2.png", "'file://pics/img2.png' is not an http(s) URL"),
    ],
)
def test_a_malformed_url_is_named(tmp_path, settings, column, value, says):
    body = "image,prompt,model,end_image\npics/img1.png,fine,kling,\n" + (
        "{},bad,kling,\n" if column == "image" else "pics/img1.png,bad,kling,{}\n"
    ).format(value)
    message = bad(tmp_path, settings, body)
    assert f"shots.csv row 3, column {column}: {says}" in message
    assert "row 2" not in message and "1 problem(s)" in message


def test_a_url_scheme_in_capitals_is_still_a_url(tmp_path, settings):
    """Spreadsheets capitalise; 'HTTP://' must be sent as a URL, not looked for as a file."""
    make_images(tmp_path / "pics", 1)
    (tmp_path / "shots.csv").write_text("image,prompt\nHTTPS://127.0.0.1:9/a.png,p\n")
    plan = plan_in(BatchRequest(shots=tmp_path / "shots.csv"), settings)
    assert [j.image_ref for j in plan.jobs] == ["https://127.0.0.1:9/a.png"]
    assert plan.images == []  # nothing to upload
