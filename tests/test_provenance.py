"""Every clip carries how it was made (issue 26): the recipe in the mp4's own tags, read
back with PyAV directly (not through i2vkit), in its sidecar, kept by export and report,
and printed by `i2vkit info` from the file alone, with the ledger deleted."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import av
from clitools import cli_env, ledger, playable, run_cli, videos
from helpers import make_images


def i2vkit(*args: str) -> list[str]:
    return [sys.executable, "-m", "i2vkit", *args]


def run_one(tmp_path: Path, emulator, **env_extra: str) -> tuple[dict, Path]:
    make_images(tmp_path / "pics", 1)
    (tmp_path / "p.txt").write_text("A heron lifts off the lake\n", encoding="utf-8")
    env = cli_env(tmp_path, emulator.url, **env_extra)
    args = i2vkit("bulk", str(tmp_path / "p.txt"), "--images-dir", str(tmp_path / "pics"),
                  "--model", "wan-2.1", "-o", "seed=41", "--batch", "heron", "--yes",
                  "--no-progress")  # fmt: skip
    done = run_cli(args, env, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    return env, tmp_path / "videos"


def tags_of(video: Path) -> dict[str, str]:
    with av.open(str(video)) as container:
        return dict(container.metadata)


def test_a_downloaded_video_carries_its_recipe_in_its_tags_and_sidecar(tmp_path, emulator):
    env, out = run_one(tmp_path, emulator)
    [video] = videos(out)
    assert playable(video)
    tags = tags_of(video)
    recipe = json.loads(tags["i2vkit"])
    assert json.loads(tags["comment"]) == recipe  # the standard key too

    [(request_id, arguments, status)] = ledger(
        tmp_path / "ledger.db", "SELECT request_id, arguments, status FROM jobs"
    )
    assert status == "downloaded"
    [submitted] = [j for j in emulator.jobs() if j["request_id"] == request_id]
    assert recipe["request_id"] == request_id
    assert recipe["endpoint_id"] == submitted["endpoint"]
    assert recipe["arguments"] == submitted["arguments"] == json.loads(arguments)
    assert recipe["arguments"]["seed"] == 41 and recipe["seed"] == 41
    image = tmp_path / "pics" / "img1.png"
    assert recipe["image"]["file"] == "img1.png"
    assert recipe["image"]["sha256"] == hashlib.sha256(image.read_bytes()).hexdigest()
    assert recipe["image"]["url"] == submitted["arguments"]["image_url"]
    assert recipe["prompt"] == "A heron lifts off the lake"
    assert recipe["batch"]["name"] == "heron" and recipe["take"] == 1
    assert recipe["times"]["submitted"] and recipe["times"]["completed"]
    assert recipe["cost"]["estimated_usd"] is not None and recipe["cost"]["estimated_usd"] > 0
    assert recipe["i2vkit_version"]

    sidecar = video.with_suffix(".json")
    assert json.loads(sidecar.read_text(encoding="utf-8")) == recipe
    [(size,)] = ledger(tmp_path / "ledger.db", "SELECT video_size FROM jobs")
    assert size == video.stat().st_size

    # the file alone: no ledger
    (tmp_path / "ledger.db").unlink()
    sidecar.unlink()
    info = run_cli(i2vkit("info", str(video)), env, tmp_path)
    assert info.returncode == 0, info.stdout + info.stderr
    assert request_id in info.stdout and "A heron lifts off the lake" in info.stdout
    assert "img1.png" in info.stdout and '"seed": 41' in info.stdout
    assert not (tmp_path / "ledger.db").exists()


def test_sidecars_off_keeps_the_tags(tmp_path, emulator):
    _env, out = run_one(tmp_path, emulator, I2VKIT_SIDECARS="0")
    [video] = videos(out)
    assert not video.with_suffix(".json").exists()
    assert "i2vkit" in tags_of(video)


def test_export_and_report_keep_the_recipe(tmp_path, emulator):
    env, out = run_one(tmp_path, emulator)
    [(job_id,)] = ledger(tmp_path / "ledger.db", "SELECT id FROM jobs")
    assert run_cli(i2vkit("keep", "heron", str(job_id)), env, tmp_path).returncode == 0
    picks = tmp_path / "picks"
    done = run_cli(i2vkit("export", "heron", "--keepers", str(picks)), env, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    [mp4] = [p for p in picks.iterdir() if p.suffix == ".mp4"]
    assert json.loads(mp4.with_suffix(".json").read_text(encoding="utf-8"))["prompt"]
    assert "i2vkit" in tags_of(mp4)

    report = run_cli(i2vkit("report", "heron", "--out", str(tmp_path / "rep")), env, tmp_path)
    assert report.returncode == 0, report.stdout + report.stderr
    placed = [p for p in (tmp_path / "rep").rglob("*.mp4")]
    assert placed and all(p.with_suffix(".json").is_file() for p in placed)


def test_info_on_a_video_without_a_recipe_says_so(tmp_path, emulator):
    env = cli_env(tmp_path, emulator.url)
    plain = tmp_path / "plain.mp4"
    with av.open(str(plain), "w") as c:
        s = c.add_stream("libx264", rate=4)
        s.width, s.height, s.pix_fmt = 32, 32, "yuv420p"
        import numpy as np

        for _ in range(4):
            frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), dtype=np.uint8), "rgb24")
            c.mux(s.encode(frame))
        c.mux(s.encode())
    info = run_cli(i2vkit("info", str(plain)), env, tmp_path)
    assert info.returncode != 0 and "plain.mp4" in info.stderr + info.stdout
    assert "recipe" in info.stderr + info.stdout


def test_again_submits_the_same_arguments_but_the_seed(tmp_path, emulator):
    env, out = run_one(tmp_path, emulator)
    [video] = videos(out)
    first = json.loads(tags_of(video)["i2vkit"])
    copied = tmp_path / "elsewhere" / "liked.mp4"  # a clip copied out of the folder
    copied.parent.mkdir()
    copied.write_bytes(video.read_bytes())
    uploads = emulator.stats()["uploads"]

    done = run_cli(i2vkit("again", str(copied), "--takes", "2", "--priority", "low", "--yes",
                          "--no-progress"), env, tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "new batch" in done.stdout
    assert emulator.stats()["uploads"] == uploads  # the image by its hash: not uploaded again
    submitted = [j["arguments"] for j in emulator.jobs()][1:]
    assert len(submitted) == 2
    seeds = {a["seed"] for a in submitted}
    assert len(seeds) == 2 and first["seed"] not in seeds
    for arguments in submitted:
        assert {k: v for k, v in arguments.items() if k != "seed"} == {
            k: v for k, v in first["arguments"].items() if k != "seed"
        }
    assert all(j["headers"].get("X-Fal-Queue-Priority") == "low" for j in emulator.jobs()[1:])
    batches = ledger(tmp_path / "ledger.db", "SELECT DISTINCT batch_id FROM jobs")
    assert len(batches) == 2  # a new batch, the first one untouched

    # a seed given, an option changed, and the image file gone: its recorded URL
    (tmp_path / "pics" / "img1.png").unlink()
    (tmp_path / "ledger.db").unlink()  # nor the upload cache
    third = run_cli(i2vkit("again", str(copied), "-o", "seed=7", "-o", "num_frames=97",
                           "--yes", "--no-progress"), env, tmp_path)  # fmt: skip
    assert third.returncode == 0, third.stdout + third.stderr
    last = emulator.jobs()[-1]["arguments"]
    assert last["seed"] == 7 and last["num_frames"] == 97
    assert last["image_url"] == first["arguments"]["image_url"]
    assert last["prompt"] == first["arguments"]["prompt"]


def test_the_notebook_makes_more_like_a_clip(tmp_path, emulator, settings):
    from i2vkit.notebook.again import again

    _env, out = run_one(tmp_path, emulator)
    [video] = videos(out)
    first = json.loads(tags_of(video)["i2vkit"])
    result = again(video, takes=1, options={"seed": 99}, settings=settings)
    assert result.ok, result.jobs
    last = emulator.jobs()[-1]["arguments"]
    assert last["seed"] == 99
    assert {k: v for k, v in last.items() if k != "seed"} == {
        k: v for k, v in first["arguments"].items() if k != "seed"
    }
