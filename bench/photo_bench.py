"""The photos regime of bench/run.py (issue 25): a folder of camera-sized JPEGs.

A generated folder of 12-megapixel photos (4032x3024, a few MB each; made at run time
under the benchmark's temp folder, never committed), and on the same files:

* ``sha256sum`` of them all: the floor for anything that reads every byte;
* i2vkit's first plan (``plan_batch`` as ``--dry-run`` makes it: every photo's data
  checked, fresh ledger and process, so nothing is cached);
* i2vkit's first run (``run_batch`` of the request: plan, check, hash, upload, jobs of
  0.1 s on 40 slots, downloads; fresh ledger);
* the naive script: ``asyncio.gather`` of ``fal_client.upload_file``, then of
  ``subscribe_async``, then the downloads; it checks nothing.

Each in its own process, its peak RSS its own (VmHWM; ``/usr/bin/time -f %M`` for
sha256sum). Goals (ratios from one run): peak RSS < 200 MB at 1,000 photos and <= 20 MB
above the run with 40; first plan <= 2x sha256sum; first run <= 1.3x the naive script.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

PHOTO_SIZE = (4032, 3024)
JOB_SECONDS = 0.1
SLOTS = 40
#: The fal double: 40 slots, and the cheapest clip it can make (it still decodes each
#: 12 MP input to make it: that cost is on the same 2 cores as the contenders, alike for all)
EMULATOR = {"concurrency": SLOTS, "clip_seconds": 0.25, "clip_fps": 4, "clip_max_side": 64}
#: photo counts per mode: the first is the baseline the others' memory is compared with
FULL_COUNTS = [40, 300]
QUICK_COUNTS = [8]


def make_photos(folder: Path, count: int, size: tuple[int, int] = PHOTO_SIZE) -> list[Path]:
    """`count` distinct JPEGs of `size`: up to four noise images are encoded (under a second
    each), every file is one of them with a comment segment of its own, so each has its own
    bytes and hash at the cost of a file write."""
    from PIL import Image, ImageFilter

    folder.mkdir(parents=True, exist_ok=True)
    tw, th = size[0] // 8, size[1] // 8
    bases = []
    for _ in range(min(4, count)):
        tile = Image.frombytes("RGB", (tw, th), os.urandom(tw * th * 3))
        tiles = (tile, tile.filter(ImageFilter.GaussianBlur(2)))
        img = Image.new("RGB", size)
        for x in range(0, size[0], tw):
            for y in range(0, size[1], th):
                img.paste(tiles[(x // tw + y // th) % 3 != 0], (x, y))
        encoded = folder / ".base.jpg"
        img.save(encoded, quality=85)
        bases.append(encoded.read_bytes())
        encoded.unlink()
    paths = []
    for i in range(count):
        note = f"photo {i + 1}".encode()
        data = bases[i % len(bases)]
        path = folder / f"IMG_{i + 1:04d}.jpg"
        path.write_bytes(
            data[:2] + b"\xff\xfe" + (len(note) + 2).to_bytes(2, "big") + note + data[2:]
        )
        paths.append(path)
    return paths


# --------------------------------------------------------------------------- children


def child_photos_plan(spec: dict, peak_rss_mb) -> dict:
    """i2vkit's first plan of the folder, as --dry-run makes it (every photo's data read)."""
    from i2vkit.config import Settings
    from i2vkit.planning import BatchRequest, plan_batch
    from i2vkit.workspace import Workspace

    settings = Settings(
        fal_key=spec["key"],
        download_dir=Path(spec["out_dir"]),
        db_path=Path(spec["db_path"]),
        fal_url=spec["url"],
    )
    request = BatchRequest(images_dir=spec["images_dir"], prompts=["a slow zoom"], model="wan")
    t0 = time.perf_counter()
    with Workspace.open(settings) as ws:
        plan = plan_batch(request, ws)
    wall = time.perf_counter() - t0
    return {"wall": wall, "images": len(plan.images), "peak_rss_mb": peak_rss_mb()}


def child_photos_run(spec: dict, peak_rss_mb) -> dict:
    """i2vkit's first run of the folder: run_batch of the request (plan included)."""
    from i2vkit.config import Settings
    from i2vkit.engine import run_batch
    from i2vkit.planning import BatchRequest

    settings = Settings(
        fal_key=spec["key"],
        download_dir=Path(spec["out_dir"]),
        db_path=Path(spec["db_path"]),
        fal_url=spec["url"],
    )
    request = BatchRequest(
        images_dir=spec["images_dir"],
        prompts=["a slow zoom"],
        model="wan",
        output_dir=spec["out_dir"],
        concurrency=SLOTS,
    )
    t0 = time.perf_counter()
    result = run_batch(request, settings)
    wall = time.perf_counter() - t0
    return {
        "wall": wall,
        "videos": sum(1 for j in result.jobs if j.video),
        "uploads": result.uploads,
        "errors": [j.error for j in result.jobs if j.error][:3],
        "peak_rss_mb": peak_rss_mb(),
    }


def child_photos_naive(spec: dict, peak_rss_mb) -> dict:
    """The script a user would write: gather the uploads, then gather the jobs, then save
    the videos. It checks nothing."""
    import fal_client
    import httpx

    from i2vkit.fal_client_hosts import fal_client_pointed_at

    out = Path(spec["out_dir"])
    out.mkdir(parents=True, exist_ok=True)
    paths = sorted(Path(spec["images_dir"]).glob("*.jpg"))

    phases: dict[str, float] = {}

    async def main() -> int:
        t = time.perf_counter()
        urls = await asyncio.gather(*(fal_client.upload_file_async(str(p)) for p in paths))
        phases["upload_s"] = time.perf_counter() - t
        results = await asyncio.gather(
            *(
                fal_client.subscribe_async(
                    "fal-ai/wan-i2v", {"prompt": "a slow zoom", "image_url": u}
                )
                for u in urls
            )
        )
        async with httpx.AsyncClient(timeout=120) as http:

            async def save(i: int, result: dict[str, Any]) -> None:
                video = await http.get(result["video"]["url"])
                video.raise_for_status()
                (out / f"{i}.mp4").write_bytes(video.content)

            phases["jobs_s"] = time.perf_counter() - t - phases["upload_s"]
            await asyncio.gather(*(save(i, r) for i, r in enumerate(results)))
        phases["download_s"] = time.perf_counter() - t - phases["upload_s"] - phases["jobs_s"]
        return len(results)

    t0 = time.perf_counter()
    with fal_client_pointed_at(spec["url"]):
        videos = asyncio.run(main())
    wall = time.perf_counter() - t0
    return {"wall": wall, "videos": videos, **phases, "peak_rss_mb": peak_rss_mb()}


CHILDREN = {
    "photos_plan": child_photos_plan,
    "photos_run": child_photos_run,
    "photos_naive": child_photos_naive,
}


# --------------------------------------------------------------------------- the regime


def sha256sum(paths: list[Path]) -> dict:
    """Wall time and peak RSS of `sha256sum` over the files (page cache warm, as for all)."""
    time_bin = shutil.which("time") or ("/usr/bin/time" if Path("/usr/bin/time").exists() else None)
    cmd = ["sha256sum", *map(str, paths)]
    if time_bin:
        cmd = [time_bin, "-f", "PEAK_KB %M", *cmd]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    peak = None
    if "PEAK_KB" in proc.stderr:
        peak = int(proc.stderr.split("PEAK_KB")[1].split()[0]) / 1024
    return {"wall": wall, "peak_rss_mb": peak}


def warm_up(url: str, key: str, work: Path) -> None:
    """One small job first: the emulator's one-time clip encode is no contender's time."""
    import fal_client
    from PIL import Image

    from i2vkit.fal_client_hosts import fal_client_pointed_at

    image = work / "warm-up.png"
    Image.new("RGB", (64, 48), (90, 120, 200)).save(image)
    with fal_client_pointed_at(url):
        fal = fal_client.SyncClient(key=key)
        fal.subscribe(
            "fal-ai/wan-i2v", {"prompt": "warm-up", "image_url": fal.upload_file(str(image))}
        )


def bench_photos(counts: list[int], work: Path, run_child, emulator, emu_post, key, log) -> dict:
    """Every count: generate, then sha256sum, first plan, first run and the naive script."""
    out: dict = {"size": list(PHOTO_SIZE), "job_seconds": JOB_SECONDS, "slots": SLOTS, "runs": []}
    for count in counts:
        folder = work / f"photos-{count}"
        t0 = time.perf_counter()
        paths = make_photos(folder, count)
        row: dict = {
            "photos": count,
            "bytes": sum(p.stat().st_size for p in paths),
            "generate_s": time.perf_counter() - t0,
        }
        log(f"photos: {count} of {PHOTO_SIZE[0]}x{PHOTO_SIZE[1]}, {row['bytes'] / 1e6:,.0f} MB ...")
        sha256sum(paths)  # the page cache holds them for every contender alike
        row["sha256sum"] = sha256sum(paths)
        for kind in ("photos_plan", "photos_run", "photos_naive"):
            with emulator("--job-seconds", "0") as url:
                warm_up(url, key, work)
                emu_post(url, "/_emulator/config", {"job_seconds": JOB_SECONDS, **EMULATOR})
                emu_post(url, "/_emulator/reset")
                spec = {
                    "url": url,
                    "key": key,
                    "images_dir": str(folder),
                    "out_dir": str(work / f"photos-out-{kind}"),
                    "db_path": str(work / f"photos-{kind}-{count}.db"),
                }
                row[kind] = run_child(kind, spec, work)
            shutil.rmtree(work / f"photos-out-{kind}", ignore_errors=True)
        row["plan_over_sha256sum"] = row["photos_plan"]["wall"] / row["sha256sum"]["wall"]
        row["run_over_naive"] = row["photos_run"]["wall"] / row["photos_naive"]["wall"]
        log(
            f"  sha256sum {row['sha256sum']['wall']:.2f} s, plan {row['photos_plan']['wall']:.2f} s "
            f"({row['plan_over_sha256sum']:.1f}x), run {row['photos_run']['wall']:.1f} s vs naive "
            f"{row['photos_naive']['wall']:.1f} s ({row['run_over_naive']:.2f}x); peak RSS run "
            f"{row['photos_run']['peak_rss_mb']:.0f} MB, naive {row['photos_naive']['peak_rss_mb']:.0f} MB"
        )
        shutil.rmtree(folder, ignore_errors=True)
        out["runs"].append(row)
    return out


def targets(res: dict) -> list[tuple[str, bool | None, str]]:
    runs = (res or {}).get("runs", [])
    t: list[tuple[str, bool | None, str]] = []
    for r in runs:
        n = r["photos"]
        t.append(
            (
                f"photos: first plan of {n} <= 2x sha256sum",
                r["plan_over_sha256sum"] <= 2,
                f"{r['plan_over_sha256sum']:.1f}x ({r['photos_plan']['wall']:.2f} s vs "
                f"{r['sha256sum']['wall']:.2f} s)",
            )
        )
        t.append(
            (
                f"photos: first run of {n} <= 1.3x naive",
                r["run_over_naive"] <= 1.3,
                f"{r['run_over_naive']:.2f}x ({r['photos_run']['wall']:.1f} s vs "
                f"{r['photos_naive']['wall']:.1f} s)",
            )
        )
        t.append(
            (
                f"photos: run peak RSS of {n} < 200 MB",
                r["photos_run"]["peak_rss_mb"] < 200,
                f"{r['photos_run']['peak_rss_mb']:.0f} MB",
            )
        )
    if len(runs) > 1:
        base, top = runs[0], runs[-1]
        growth = top["photos_run"]["peak_rss_mb"] - base["photos_run"]["peak_rss_mb"]
        t.append(
            (
                f"photos: run peak RSS of {top['photos']} <= 20 MB above {base['photos']}",
                growth <= 20,
                f"{growth:+.0f} MB",
            )
        )
    return t


def table(res: dict) -> list[str]:
    lines = [
        f"Photos: {res['size'][0]}x{res['size'][1]} JPEGs, jobs of {res['job_seconds']:g} s "
        f"on {res['slots']} slots",
        "",
        "| photos | MB | sha256sum (s) | first plan (s) | plan / sha256sum | first run (s) "
        "| naive (s) | run / naive | peak RSS plan / run / naive / sha256sum (MB) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in res["runs"]:
        sha = r["sha256sum"]["peak_rss_mb"]
        lines.append(
            f"| {r['photos']} | {r['bytes'] / 1e6:,.0f} | {r['sha256sum']['wall']:.2f} "
            f"| {r['photos_plan']['wall']:.2f} | {r['plan_over_sha256sum']:.1f}x "
            f"| {r['photos_run']['wall']:.1f} | {r['photos_naive']['wall']:.1f} "
            f"| {r['run_over_naive']:.2f}x | {r['photos_plan']['peak_rss_mb']:.0f} / "
            f"{r['photos_run']['peak_rss_mb']:.0f} / {r['photos_naive']['peak_rss_mb']:.0f} / "
            f"{'-' if sha is None else f'{sha:.0f}'} |"
        )
    lines.append("")
    return lines
