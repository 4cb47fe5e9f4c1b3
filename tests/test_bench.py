"""Smoke test of the benchmark's plumbing.

The benchmark itself runs in CI via ``bench/run.py --quick``.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_percentiles():
    bench = load_bench()
    assert bench.pct([], 0.5) is None
    assert bench.pct([3.0, 1.0, 2.0], 0.5) == 2.0
    assert bench.pct([0.0, 10.0], 0.95) == 9.5


def test_sequential_child_against_bench_emulator(tmp_path):
    bench = load_bench()
    [image] = bench.make_small_images(tmp_path / "images", 1)
    with bench.emulator("--job-seconds", "0") as url:
        env = {**os.environ, "FAL_KEY": bench.KEY}
        upload = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from i2vkit.fal_client_hosts import point_fal_client_at; "
                "point_fal_client_at(sys.argv[1]); import fal_client; "
                "print(fal_client.upload_file(sys.argv[2]))",
                url,
                str(image),
            ],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        image_url = upload.stdout.strip()
        spec = {
            "url": url,
            "out_dir": str(tmp_path / "out"),
            "jobs": [[image_url, "one"], [image_url, "two"]],
        }
        res = bench.run_child("a", spec, tmp_path, timeout=120)
        assert res["errors"] == 0 and len(res["done"]) == 2
        assert res["peak_rss_mb"] > 0
        views = httpx.get(url + "/_bench/jobs").json()
        for request_id, done in res["done"].items():
            assert views[request_id]["state"] == "COMPLETED"
            assert views[request_id]["finished"] <= done
        stats = httpx.get(url + "/_emulator/stats").json()
        assert httpx.get(url + "/_bench/jobs").status_code == 200
        after = httpx.get(url + "/_emulator/stats").json()
        assert after["requests"] == stats["requests"]  # /_bench/jobs is not counted
        assert after["responses"] == stats["responses"]
        # what the sequential child did: one upload, then per job submit, result, download
        assert stats["uploads"] == 1 and stats["submits"]["total"] == 2
        assert stats["result_requests"]["total"] == 2 and stats["downloads"] == 2
        assert stats["jobs"]["COMPLETED"] == 2 and stats["jobs"]["failed"] == 0


def test_generated_photos_are_distinct_camera_sized_jpegs(tmp_path):
    """The photos regime's folder: real 12 MP JPEGs a decoder reads whole, each with bytes
    (and so a hash) of its own, or the upload cache would hide most of the uploads."""
    import hashlib

    from PIL import Image

    bench = load_bench()
    paths = bench.photo_bench.make_photos(tmp_path / "photos", 6)
    assert len({hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}) == 6
    for p in paths[:2]:
        with Image.open(p) as im:
            im.load()
            assert (im.format, im.size) == ("JPEG", (4032, 3024))
    assert all(p.stat().st_size > 1_000_000 for p in paths)
