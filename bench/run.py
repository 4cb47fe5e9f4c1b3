"""i2vkit benchmarks, side by side with the scripts a user would otherwise write.

    python bench/run.py            # the full run (about 20 minutes on 2 cores)
    python bench/run.py --quick    # CI: small versions of every regime, 1-2 minutes

Prints a table, writes JSON to bench/results/latest.json, and reports every target
as met / NOT met; it never fails on a missed target (exit 0). See bench/README.md.

Everything runs on loopback against the fal emulator in its own process
(bench/emu_server.py). Each measured client runs in a child process of its own
(`python bench/run.py --child KIND --spec FILE --out FILE`), so its peak RSS is
its own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import photo_bench  # noqa: E402  (bench/photo_bench.py: the photos regime, issue 25)

KEY = "bench:i2vkit-bench-secret"
ENDPOINT = "fal-ai/wan-i2v"  # what the "wan" model submits to
RESULTS = HERE / "results" / "latest.json"
IMAGE_CACHE = Path(tempfile.gettempdir()) / "i2vkit-bench-images"  # kept between runs

# Regimes: (name, jobs, job seconds, account slots, jobs (a) runs before extrapolating).
# The realistic ones first: a few slots, jobs of several seconds standing in for fal's
# 30-300 s; then the two stress regimes. i2vkit runs with --concurrency = the slots.
FULL_REGIMES = [
    ("2 slots, 5 s jobs", 12, 5.0, 2, 12),
    ("8 slots, 5 s jobs", 40, 5.0, 8, 8),
    ("40 slots, 5 s jobs", 200, 5.0, 40, 8),
    ("stress: 100 slots, 1 s jobs", 1000, 1.0, 100, 30),
    ("scale: 50 slots, 0.5 s jobs", 2000, 0.5, 50, 0),
]
QUICK_REGIMES = [  # CI: about a minute; the realistic shape and the scale one, small
    ("2 slots, 2 s jobs", 4, 2.0, 2, 2),
    ("8 slots, 2 s jobs", 16, 2.0, 8, 0),
    ("scale: 50 slots, 0.5 s jobs", 200, 0.5, 50, 0),
]
FULL = {
    "regimes": FULL_REGIMES,
    "images": 4,  # 4 images x N/4 prompts = N jobs (pairing "all")
    "replan_images": 1000,
    "video_bytes": 500_000_000,
    "download_rounds": 5,
    "photos": photo_bench.FULL_COUNTS,
}
QUICK = {
    "regimes": QUICK_REGIMES,
    "images": 4,
    "replan_images": 200,
    "video_bytes": 100_000_000,
    "download_rounds": 3,
    "photos": photo_bench.QUICK_COUNTS,
}
GATHER_TIMEOUT = (10.0, 120.0)  # (b) is stopped after max(10 x ideal, 120 s): "not done"
CHILD_TIMEOUT = 900  # s; no child may hang the benchmark


# --------------------------------------------------------------------------- helpers


def peak_rss_mb() -> float:
    """This process's peak RSS in MiB: VmHWM, the high-water mark of its own address space.

    Not getrusage's ru_maxrss: Linux carries that across execve, so a child would
    report its parent's peak when the parent was bigger (seen here: +60 MB).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    k = (len(s) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


@contextmanager
def emulator(*flags: str):
    """The emulator in its own process; yields its base URL."""
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "emu_server.py"), "--port", "0", "--key", KEY, *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
    )
    try:
        url = proc.stdout.readline().strip()
        if not url.startswith("http"):
            raise RuntimeError(f"emulator did not start (first line {url!r})")
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def emu_get(url: str, path: str) -> dict:
    import httpx

    return httpx.get(url + path, timeout=60).json()


def emu_post(url: str, path: str, body: dict | None = None) -> dict:
    import httpx

    return httpx.post(url + path, json=body or {}, timeout=60).json()


def run_child(kind: str, spec: dict, workdir: Path, timeout: float = CHILD_TIMEOUT) -> dict:
    spec_file = workdir / f"{kind}-spec.json"
    out_file = workdir / f"{kind}-out.json"
    spec_file.write_text(json.dumps(spec))
    env = {**os.environ, "FAL_KEY": KEY, "PYTHONPATH": str(ROOT)}
    for name in ("I2VKIT_FAL_URL", "I2VKIT_DB", "FAL_KEY_ID", "FAL_KEY_SECRET"):
        env.pop(name, None)
    proc = subprocess.run(
        [
            sys.executable,
            str(HERE / "run.py"),
            "--child",
            kind,
            "--spec",
            str(spec_file),
            "--out",
            str(out_file),
        ],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0 or not out_file.exists():
        raise RuntimeError(f"child {kind} failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(out_file.read_text())


def make_small_images(folder: Path, count: int) -> list[Path]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        img = Image.new("RGB", (320, 240), ((60 * i) % 256, (110 + 40 * i) % 256, 200))
        for x in range(0, 320, 8):
            img.putpixel((x, i), (255, 255, 255))
        path = folder / f"img{i + 1:02d}.png"
        img.save(path)
        paths.append(path)
    return paths


def make_noise_images(count: int) -> tuple[Path, list[Path]]:
    """`count` real ~1 MB PNGs (580x580 RGB noise, stored uncompressed), cached under /tmp."""
    from PIL import Image

    folder = IMAGE_CACHE / f"{count}"
    paths = [folder / f"noise{i:04d}.png" for i in range(count)]
    marker = folder / ".complete"
    if marker.exists() and all(p.exists() for p in paths):
        return folder, paths
    folder.mkdir(parents=True, exist_ok=True)
    side = 580
    base = bytearray(os.urandom(side * side * 3))
    for i, p in enumerate(paths):
        # vary a strip of pixels per copy: every file has its own bytes (and hash)
        at = (i * 7919 * 3) % (len(base) - 4096)
        base[at : at + 4096] = os.urandom(4096)
        Image.frombytes("RGB", (side, side), bytes(base)).save(p, compress_level=0)
    marker.write_text("ok")
    return folder, paths


# --------------------------------------------------------------------------- children


def child_sequential(spec: dict) -> dict:
    """(a) The old script: for each job, fal_client.subscribe, then download the video."""
    import fal_client
    import httpx

    from i2vkit.fal_client_hosts import fal_client_pointed_at

    out = Path(spec["out_dir"])
    out.mkdir(parents=True, exist_ok=True)
    done, errors = {}, 0
    t0 = time.perf_counter()
    with fal_client_pointed_at(spec["url"]):
        for i, (image_url, prompt) in enumerate(spec["jobs"]):
            ids: list[str] = []
            try:
                result = fal_client.subscribe(
                    ENDPOINT, {"prompt": prompt, "image_url": image_url}, on_enqueue=ids.append
                )
                video = httpx.get(result["video"]["url"], timeout=60)
                video.raise_for_status()
                (out / f"{i}.mp4").write_bytes(video.content)
                done[ids[0]] = time.time()
            except Exception:  # a naive script would crash; we count it instead
                errors += 1
    wall = time.perf_counter() - t0
    return {"wall": wall, "done": done, "errors": errors, "peak_rss_mb": peak_rss_mb()}


def child_gather(spec: dict) -> dict:
    """(b) asyncio.gather over fal_client.subscribe_async for every job, then download."""
    import fal_client
    import httpx

    from i2vkit.fal_client_hosts import fal_client_pointed_at

    out = Path(spec["out_dir"])
    out.mkdir(parents=True, exist_ok=True)
    done: dict[str, float] = {}

    async def main() -> list:
        async with httpx.AsyncClient(timeout=120) as http:

            async def one(i: int, image_url: str, prompt: str) -> None:
                ids: list[str] = []
                result = await fal_client.subscribe_async(
                    ENDPOINT, {"prompt": prompt, "image_url": image_url}, on_enqueue=ids.append
                )
                video = await http.get(result["video"]["url"])
                video.raise_for_status()
                (out / f"{i}.mp4").write_bytes(video.content)
                done[ids[0]] = time.time()

            return await asyncio.gather(
                *(one(i, u, p) for i, (u, p) in enumerate(spec["jobs"])), return_exceptions=True
            )

    t0 = time.perf_counter()
    with fal_client_pointed_at(spec["url"]):
        results = asyncio.run(main())
    wall = time.perf_counter() - t0
    errors = [repr(r) for r in results if isinstance(r, BaseException)]
    return {
        "wall": wall,
        "done": done,
        "errors": len(errors),
        "first_errors": errors[:3],
        "peak_rss_mb": peak_rss_mb(),
    }


def child_i2vkit(spec: dict) -> dict:
    """(c) i2vkit's run_batch; the images are already in its upload cache."""
    from i2vkit.backend import backend_for
    from i2vkit.config import Settings
    from i2vkit.engine import run_batch
    from i2vkit.fal import FalConnection
    from i2vkit.planning import BatchRequest
    from i2vkit.store import Store
    from i2vkit.uploads import Uploader

    settings = Settings(
        fal_key=KEY,
        download_dir=Path(spec["out_dir"]),
        db_path=Path(spec["db_path"]),
        fal_url=spec["url"],
    )

    async def warm_cache() -> int:
        with Store(settings.db_path) as store:
            async with FalConnection(backend_for(settings), settings.fal_key) as fal:
                report = await Uploader(store, fal).upload_all(spec["images"])
                return report.uploaded

    uploaded = asyncio.run(warm_cache())
    config = BatchRequest(
        images_dir=spec["images_dir"],
        prompts=spec["prompts"],
        model="wan",
        pairing="all",
        output_dir=spec["out_dir"],
        concurrency=spec["concurrency"],  # and the rest at i2vkit's defaults
    )
    t0 = time.perf_counter()
    result = run_batch(config, settings)
    wall = time.perf_counter() - t0
    done = {}
    ledger = {"status_requests": 0, "status_streams": 0}
    with Store(settings.db_path) as store:
        for job in store.jobs(result.batch_id):
            ledger["status_requests"] += job["status_requests"]
            ledger["status_streams"] += job["status_streams"]
            if job["downloaded_at"] and job["request_id"]:
                done[job["request_id"]] = datetime.fromisoformat(job["downloaded_at"]).timestamp()
    return {
        "ledger": ledger,
        "wall": wall,
        "done": done,
        "errors": sum(1 for j in result.jobs if not j.video),
        "first_errors": [j.error for j in result.jobs if j.error][:3],
        "client_requests": dict(result.requests),
        "uploads_before": uploaded,
        "uploads_in_run": result.uploads,
        "peak_rss_mb": peak_rss_mb(),
    }


def child_replan(spec: dict) -> dict:
    """A re-plan of an all-cached folder: plan_batch (scan + Pillow verify) + cached upload step."""
    t_start = time.perf_counter()
    from i2vkit.backend import backend_for
    from i2vkit.config import Settings
    from i2vkit.fal import FalConnection
    from i2vkit.images import scan_images
    from i2vkit.planning import BatchRequest, plan_batch
    from i2vkit.store import Store
    from i2vkit.uploads import Uploader
    from i2vkit.workspace import Workspace

    t_imported = time.perf_counter()
    settings = Settings(
        fal_key=KEY,
        download_dir=Path(spec["out_dir"]),
        db_path=Path(spec["db_path"]),
        fal_url=spec["url"],
    )
    config = BatchRequest(images_dir=spec["images_dir"], prompts=["a slow zoom"], model="wan")

    async def replan() -> dict:
        t0 = time.perf_counter()
        with Workspace.open(settings) as ws:
            plan = plan_batch(config, ws)
        t1 = time.perf_counter()
        with Store(settings.db_path) as store:
            async with FalConnection(backend_for(settings), settings.fal_key) as fal:
                t2 = time.perf_counter()
                report = await Uploader(store, fal).upload_all([im.path for im in plan.images])
                t3 = time.perf_counter()
        return {
            "plan_s": t1 - t0,
            "open_s": t2 - t1,
            "cache_s": t3 - t2,
            "total_s": t3 - t0,
            "images": len(plan.images),
            "uploads": report.uploaded,
            "hashed": report.hashed,
            "reused": report.reused,
        }

    out = asyncio.run(replan())
    out["import_s"] = t_imported - t_start
    # where the plan time goes: listing + stat alone vs the full Pillow-verifying scan
    t0 = time.perf_counter()
    with os.scandir(spec["images_dir"]) as it:
        for e in it:
            e.stat()
    out["listdir_stat_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    scan_images(spec["images_dir"])
    out["scan_images_s"] = time.perf_counter() - t0
    return out


def child_download(spec: dict) -> dict:
    """i2vkit.download.download of one URL; peak RSS growth over the download."""
    import httpx
    import psutil

    from i2vkit.download import download

    async def main() -> dict:
        async with httpx.AsyncClient(timeout=120) as client:
            base = psutil.Process().memory_info().rss / 2**20
            t0 = time.perf_counter()
            size = await download(client, spec["url"], Path(spec["dest"]))
            wall = time.perf_counter() - t0
            return {"wall": wall, "size": size, "rss_before_mb": base}

    out = asyncio.run(main())
    out["peak_rss_mb"] = peak_rss_mb()
    out["rss_growth_mb"] = out["peak_rss_mb"] - out["rss_before_mb"]
    return out


CHILDREN = {
    "a": child_sequential,
    "b": child_gather,
    "c": child_i2vkit,
    "replan": child_replan,
    "download": child_download,
    **{
        kind: (lambda spec, fn=fn: fn(spec, peak_rss_mb))
        for kind, fn in photo_bench.CHILDREN.items()
    },
}


# --------------------------------------------------------------------------- benchmarks


def slot_idle_gaps(views: dict, slots: int) -> list[float]:
    """How long an account slot stood idle after each completion: the k-th completion's
    slot is the one the (k + slots)-th job started in (jobs start in order, one per freed
    slot), so the gap is that start minus that completion. What a client that submits
    the next job late (or polls late) costs on fal, where a slot only works while a job
    is in it."""
    starts = sorted(v["started"] for v in views.values() if v["started"])
    ends = sorted(v["finished"] for v in views.values() if v["finished"] and v["started"])
    return [
        max(0.0, starts[k + slots] - ends[k]) for k in range(min(len(ends), len(starts) - slots))
    ]


def bench_regime(regime: tuple, cfg: dict, work: Path) -> dict:
    """One regime: (a), (b) and (c), each on a fresh emulator (a stopped (b) cannot leave
    queued jobs behind for the next approach), all with the same images and prompts."""
    import fal_client

    from i2vkit.fal_client_hosts import fal_client_pointed_at

    name, n, job_s, slots, seq_jobs = regime
    n_images = cfg["images"]
    n_prompts = n // n_images
    n = n_images * n_prompts
    ideal = math.ceil(n / slots) * job_s
    images = make_small_images(work / "images", n_images)
    prompts = [f"a slow zoom, take {k + 1}" for k in range(n_prompts)]
    out: dict = {
        "name": name,
        "jobs": n,
        "ideal_s": ideal,
        "slots": slots,
        "job_seconds": job_s,
        "approaches": {},
    }
    gather_timeout = max(GATHER_TIMEOUT[0] * ideal, GATHER_TIMEOUT[1])
    runs = []
    if seq_jobs:
        runs.append(("a", "(a) sequential fal_client.subscribe", seq_jobs, CHILD_TIMEOUT))
    runs.append(("b", "(b) asyncio.gather(fal_client.subscribe_async)", n, gather_timeout))
    runs.append(("c", f"(c) i2vkit, --concurrency {slots}", n, CHILD_TIMEOUT))
    for kind, label, ran, timeout in runs:
        # warm-up with 0 s jobs: the emulator's one-time clip encodes are not timed
        with emulator("--job-seconds", "0") as url:
            with fal_client_pointed_at(url):
                fal = fal_client.SyncClient(key=KEY)
                image_urls = [fal.upload_file(str(p)) for p in images]
                for u in image_urls:
                    fal.subscribe(ENDPOINT, {"prompt": "warm-up", "image_url": u})
            emu_post(url, "/_emulator/config", {"job_seconds": job_s, "concurrency": slots})
            emu_post(url, "/_emulator/reset")
            warm = set(emu_get(url, "/_bench/jobs"))
            jobs = [(u, p) for u in image_urls for p in prompts]
            spec = {"url": url, "out_dir": str(work / f"out-{kind}")}
            if kind == "c":
                spec |= {
                    "images_dir": str(work / "images"),
                    "images": [str(p) for p in images],
                    "prompts": prompts,
                    "concurrency": slots,
                    "db_path": str(work / f"c-{n}-{slots}-ledger.db"),
                }
            else:
                spec["jobs"] = jobs[:ran]
            log(f"{name}: {label}, {ran} jobs ...")
            try:
                res = run_child(kind, spec, work, timeout=timeout)
            except subprocess.TimeoutExpired:
                res = None
            stats = emu_get(url, "/_emulator/stats")
            views = {k: v for k, v in emu_get(url, "/_bench/jobs").items() if k not in warm}
        shutil.rmtree(work / f"out-{kind}", ignore_errors=True)
        if res is None:
            out["approaches"][kind] = {"label": label, "timed_out": timeout, "jobs_run": ran}
            log(f"  not done after {timeout:.0f} s: stopped")
            continue
        lat = [
            res["done"][rid] - views[rid]["finished"]
            for rid in res["done"]
            if rid in views and views[rid]["finished"]
        ]
        gaps = slot_idle_gaps(views, slots)
        row = {
            "label": label,
            "jobs_run": ran,
            "measured_wall_s": res["wall"],
            "extrapolated": ran != n,
            "wall_s": res["wall"] * n / ran,
            "errors": res["errors"],
            "status_per_job": stats["status_requests"]["total"] / ran,
            "streams": stats["status_streams"],
            "requests": stats["requests"],
            "requests_per_job": stats["requests"] / ran,
            "done_to_disk_p50_s": pct(lat, 0.5),
            "done_to_disk_p95_s": pct(lat, 0.95),
            "slot_idle_p50_s": pct(gaps, 0.5),
            "slot_idle_p95_s": pct(gaps, 0.95),
            "peak_rss_mb": res["peak_rss_mb"],
            "peak_in_flight": stats["max_concurrency"],
            "max_concurrent_submits": stats["max_concurrent_submits"],
            "responses": stats["responses"],
        }
        row["wall_over_ideal"] = row["wall_s"] / ideal
        for k in ("client_requests", "first_errors", "uploads_in_run", "ledger"):
            if k in res:
                row[k] = res[k]
        out["approaches"][kind] = row
        log(
            f"  wall {row['wall_s']:.1f} s{' (extrapolated)' if row['extrapolated'] else ''}"
            f" = {row['wall_over_ideal']:.2f} x ideal, {row['status_per_job']:.1f} status/job, "
            f"peak {row['peak_in_flight']} in flight, errors {row['errors']}"
        )
    return out


def bench_throughput(cfg: dict, work: Path) -> dict:
    return {"regimes": [bench_regime(r, cfg, work) for r in cfg["regimes"]]}


def bench_replan(cfg: dict, work: Path) -> dict:
    from i2vkit.backend import backend_for
    from i2vkit.config import Settings
    from i2vkit.fal import FalConnection
    from i2vkit.store import Store
    from i2vkit.uploads import Uploader, hash_file

    count = cfg["replan_images"]
    log(f"replan: {count} images of ~1 MB (cached in {IMAGE_CACHE}) ...")
    t0 = time.perf_counter()
    folder, paths = make_noise_images(count)
    gen_s = time.perf_counter() - t0
    total_bytes = sum(p.stat().st_size for p in paths)
    out: dict = {"images": count, "bytes": total_bytes, "generate_s": gen_s}
    with emulator() as url:
        settings = Settings(
            fal_key=KEY,
            download_dir=work / "replan-out",
            db_path=work / "replan-ledger.db",
            fal_url=url,
        )

        async def first_run():
            with Store(settings.db_path) as store:
                async with FalConnection(backend_for(settings), settings.fal_key) as fal:
                    t = time.perf_counter()
                    rep = await Uploader(store, fal).upload_all(paths)
                    return rep, time.perf_counter() - t

        report, up_s = asyncio.run(first_run())
        out["first_upload"] = {
            "uploaded": report.uploaded,
            "failed": len(report.failed),
            "seconds": up_s,
        }
        log(f"  first run uploaded {report.uploaded} in {up_s:.1f} s; re-planning ...")
        res = run_child(
            "replan",
            {
                "url": url,
                "images_dir": str(folder),
                "db_path": str(settings.db_path),
                "out_dir": str(work / "replan-out"),
            },
            work,
        )
        out["replan"] = res
    # cold hashing: i2vkit's hash_file vs sha256sum, same files, both page-cache warm
    subprocess.run(["sha256sum", *map(str, paths)], capture_output=True, check=True)  # warm
    hash_runs, sum_runs = [], []
    for _ in range(2):
        t = time.perf_counter()
        for p in paths:
            hash_file(p)
        hash_runs.append(time.perf_counter() - t)
        t = time.perf_counter()
        subprocess.run(["sha256sum", *map(str, paths)], capture_output=True, check=True)
        sum_runs.append(time.perf_counter() - t)
    mb = total_bytes / 1e6
    out["hash"] = {
        "i2vkit_MBps": mb / min(hash_runs),
        "sha256sum_MBps": mb / min(sum_runs),
        "i2vkit_runs_s": hash_runs,
        "sha256sum_runs_s": sum_runs,
    }
    out["hash"]["ratio"] = out["hash"]["i2vkit_MBps"] / out["hash"]["sha256sum_MBps"]
    log(
        f"  re-plan {res['total_s']:.2f} s ({res['uploads']} uploads); hashing "
        f"{out['hash']['i2vkit_MBps']:.0f} vs {out['hash']['sha256sum_MBps']:.0f} MB/s"
    )
    return out


def bench_download(cfg: dict, work: Path) -> dict:
    import fal_client

    from i2vkit.fal_client_hosts import fal_client_pointed_at

    size = cfg["video_bytes"]
    log(f"download: one {size / 1e6:.0f} MB video, i2vkit vs curl ...")
    [image] = make_small_images(work / "dl-image", 1)
    with emulator("--job-seconds", "0", "--video-size", str(size)) as url:
        with fal_client_pointed_at(url):
            fal = fal_client.SyncClient(key=KEY)
            image_url = fal.upload_file(str(image))
            result = fal.subscribe(ENDPOINT, {"prompt": "big", "image_url": image_url})
            video_url = result["video"]["url"]
        dest_dir = work / "dl"
        dest_dir.mkdir()
        curl_runs, curl_sync_runs, kit_runs, growth = [], [], [], []
        for r in range(cfg["download_rounds"]):
            dest = dest_dir / f"curl{r}.mp4"
            subprocess.run(["sync"], check=True)  # every run starts with no dirty pages queued
            t = time.perf_counter()
            proc = subprocess.run(
                [
                    "curl",
                    "-s",
                    "-S",
                    "-f",
                    "-o",
                    str(dest),
                    "-w",
                    "%{time_total} %{size_download}",
                    video_url,
                ],
                capture_output=True,
                text=True,
                check=True,
                timeout=300,
            )
            curl_s = float(proc.stdout.split()[0])
            assert int(float(proc.stdout.split()[1])) == size
            subprocess.run(["sync", "--data", str(dest)], check=True)  # same durability as i2vkit
            curl_sync_runs.append(time.perf_counter() - t)
            curl_runs.append(curl_s)
            dest.unlink()
            subprocess.run(["sync"], check=True)
            res = run_child(
                "download", {"url": video_url, "dest": str(dest_dir / f"kit{r}.mp4")}, work
            )
            assert res["size"] == size
            kit_runs.append(res["wall"])
            growth.append(res["rss_growth_mb"])
            (dest_dir / f"kit{r}.mp4").unlink()
    mb = size / 1e6
    out = {
        "bytes": size,
        "curl_MBps": mb / statistics.median(curl_runs),
        "curl_plus_fsync_MBps": mb / statistics.median(curl_sync_runs),
        "i2vkit_MBps": mb / statistics.median(kit_runs),
        "curl_runs_s": curl_runs,
        "curl_plus_fsync_runs_s": curl_sync_runs,
        "i2vkit_runs_s": kit_runs,
        "rss_growth_mb": max(growth),
        "rss_growth_runs_mb": growth,
    }
    out["ratio"] = out["i2vkit_MBps"] / out["curl_MBps"]
    out["ratio_vs_curl_plus_fsync"] = out["i2vkit_MBps"] / out["curl_plus_fsync_MBps"]
    log(
        f"  i2vkit {out['i2vkit_MBps']:.0f} MB/s, curl {out['curl_MBps']:.0f} MB/s "
        f"(curl + fsync {out['curl_plus_fsync_MBps']:.0f}), RSS growth {out['rss_growth_mb']:.1f} MB"
    )
    return out


# --------------------------------------------------------------------------- report


def bench_photos(cfg: dict, work: Path) -> dict:
    return photo_bench.bench_photos(cfg["photos"], work, run_child, emulator, emu_post, KEY, log)


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import psutil

        ram = psutil.virtual_memory().total / 2**30
    except Exception:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram_gib": round(ram, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def targets(res: dict) -> list[tuple[str, bool | None, str]]:
    t: list[tuple[str, bool | None, str]] = []
    for reg in (res.get("throughput") or {}).get("regimes", []):
        b, c = reg["approaches"].get("b"), reg["approaches"].get("c")
        if not c or c.get("timed_out"):
            continue
        name = reg["name"]
        if b:
            if b.get("timed_out"):
                t.append(
                    (
                        f"{name}: (c) never slower than (b)",
                        True,
                        f"{c['wall_s']:.1f} s; (b) not done after {b['timed_out']:.0f} s",
                    )
                )
            else:
                t.append(
                    (
                        f"{name}: (c) never slower than (b)",
                        c["wall_s"] <= b["wall_s"],
                        f"{c['wall_s']:.1f} s vs {b['wall_s']:.1f} s",
                    )
                )
        if reg["job_seconds"] >= 3:
            t.append(
                (
                    f"{name}: (c) within 3% of ideal",
                    c["wall_over_ideal"] <= 1.03,
                    f"{c['wall_over_ideal']:.3f} x ideal ({c['wall_s']:.1f} s vs "
                    f"{reg['ideal_s']:.1f} s)",
                )
            )
        t.append(
            (
                f"{name}: (c) <= 2 status requests per job",
                c["status_per_job"] <= 2,
                f"{c['status_per_job']:.2f}",
            )
        )
        if reg["jobs"] >= 2000:
            t.append(
                (
                    f"{name}: (c) within 2x ideal",
                    c["wall_over_ideal"] <= 2,
                    f"{c['wall_over_ideal']:.2f} x ideal",
                )
            )
            t.append(
                (
                    f"{name}: (c) 45+ jobs in flight at peak",
                    c["peak_in_flight"] >= 45,
                    f"{c['peak_in_flight']} of {reg['slots']}",
                )
            )
    rp = res.get("replan")
    if rp:
        r = rp["replan"]
        t.append(
            (
                f"cached re-plan of {rp['images']} images < 1 s",
                r["total_s"] < 1.0 and r["uploads"] == 0,
                f"{r['total_s']:.2f} s, {r['uploads']} uploads",
            )
        )
        t.append(
            (
                "cold hashing >= 70% of sha256sum",
                rp["hash"]["ratio"] >= 0.7,
                f"{rp['hash']['ratio'] * 100:.0f}%",
            )
        )
    dl = res.get("download")
    if dl:
        t.append(
            (
                "download >= 70% of curl",
                dl["ratio"] >= 0.7,
                f"{dl['ratio'] * 100:.0f}% (vs curl + fsync: "
                f"{dl['ratio_vs_curl_plus_fsync'] * 100:.0f}%)",
            )
        )
        t.append(
            (
                "download peak RSS growth < 64 MB",
                dl["rss_growth_mb"] < 64,
                f"{dl['rss_growth_mb']:.1f} MB",
            )
        )
    t += photo_bench.targets(res.get("photos") or {})
    return t


def fmt(v, spec=".2f", none="-"):
    return none if v is None else format(v, spec)


def table(res: dict) -> str:
    lines: list[str] = []
    for reg in (res.get("throughput") or {}).get("regimes", []):
        lines.append(
            f"{reg['name']}: {reg['jobs']:,} jobs x {reg['job_seconds']:g} s on "
            f"{reg['slots']} slots, ideal {reg['ideal_s']:.1f} s"
        )
        lines.append("")
        lines.append(
            "| approach | wall (s) | wall / ideal | status req / job | done -> disk p50 / p95 (s)"
            " | slot idle p50 / p95 (s) | peak in flight | peak RSS (MB) |"
        )
        lines.append("|---|---:|---:|---:|---:|---:|---:|---:|")
        for row in reg["approaches"].values():
            if row.get("timed_out"):
                lines.append(
                    f"| {row['label']} | not done in {row['timed_out']:.0f} s (stopped) "
                    "| - | - | - | - | - | - |"
                )
                continue
            wall = f"{row['wall_s']:.1f}"
            if row["extrapolated"]:
                wall = f"~{row['wall_s']:.0f} *"
            err = f" ({row['errors']} errors)" if row["errors"] else ""
            lines.append(
                f"| {row['label']}{err} | {wall} | {row['wall_over_ideal']:.3f} | "
                f"{row['status_per_job']:.2f} | "
                f"{fmt(row['done_to_disk_p50_s'], '.3f')} / {fmt(row['done_to_disk_p95_s'], '.3f')}"
                f" | {fmt(row['slot_idle_p50_s'], '.3f')} / {fmt(row['slot_idle_p95_s'], '.3f')}"
                f" | {row['peak_in_flight']} | {row['peak_rss_mb']:.0f} |"
            )
        a = reg["approaches"].get("a")
        if a and a.get("extrapolated"):
            lines.append("")
            lines.append(
                f"\\* (a) ran {a['jobs_run']} jobs in {a['measured_wall_s']:.1f} s, extrapolated "
                f"linearly to {reg['jobs']:,} (a sequential loop's time is linear in the jobs)."
            )
        elif not a:
            lines.append("")
            lines.append("(a) not run: a sequential loop would take minutes here.")
        lines.append("")
    rp = res.get("replan")
    if rp:
        r = rp["replan"]
        h = rp["hash"]
        lines.append(f"Cached re-plan: {rp['images']} images, {rp['bytes'] / 1e6:,.0f} MB")
        lines.append("")
        lines.append("| measure | value |")
        lines.append("|---|---:|")
        lines.append(
            f"| re-plan, all cached (plan_batch + upload step) | {r['total_s']:.3f} s "
            f"({r['uploads']} uploads, {r['hashed']} hashed) |"
        )
        lines.append(
            f"| - plan_batch (scan: Pillow open + verify of every image) | {r['plan_s']:.3f} s |"
        )
        lines.append(f"| - upload step (cache lookups) | {r['cache_s']:.3f} s |")
        lines.append(f"| - ledger + connection open | {r['open_s']:.3f} s |")
        lines.append(f"| (listing + stat alone) | {r['listdir_stat_s']:.3f} s |")
        lines.append(f"| (python start to i2vkit imported, not counted) | {r['import_s']:.3f} s |")
        lines.append(
            f"| first run: upload all (not counted) | {rp['first_upload']['seconds']:.1f} s |"
        )
        lines.append(f"| cold hashing, i2vkit hash_file | {h['i2vkit_MBps']:,.0f} MB/s |")
        lines.append(f"| cold hashing, sha256sum | {h['sha256sum_MBps']:,.0f} MB/s |")
        lines.append("")
    dl = res.get("download")
    if dl:
        lines.append(
            f"Download: one {dl['bytes'] / 1e6:.0f} MB video (median of {len(dl['i2vkit_runs_s'])})"
        )
        lines.append("")
        lines.append("| client | MB/s |")
        lines.append("|---|---:|")
        lines.append(f"| curl -o | {dl['curl_MBps']:,.0f} |")
        lines.append(
            f"| curl -o, then sync --data (same durability as i2vkit) | "
            f"{dl['curl_plus_fsync_MBps']:,.0f} |"
        )
        lines.append(f"| i2vkit download (fsync before rename) | {dl['i2vkit_MBps']:,.0f} |")
        lines.append(f"| i2vkit peak RSS growth | {dl['rss_growth_mb']:.1f} MB |")
        lines.append("")
    if res.get("photos"):
        lines += photo_bench.table(res["photos"])
    lines.append("Targets:")
    lines.append("")
    for name, ok, detail in targets(res):
        lines.append(f"- {name}: {'met' if ok else 'NOT met'} ({detail})")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smaller sizes (CI; 1-2 minutes)")
    p.add_argument(
        "--only",
        choices=["throughput", "replan", "download", "photos"],
        action="append",
        help="run only these sections (repeatable)",
    )
    p.add_argument("--out", help="JSON output path (default bench/results/latest.json)")
    p.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    p.add_argument("--spec", help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.child:
        spec = json.loads(Path(args.spec).read_text())
        Path(args.out).write_text(json.dumps(CHILDREN[args.child](spec)))
        return 0

    cfg = QUICK if args.quick else FULL
    sections = args.only or ["throughput", "replan", "download", "photos"]
    started = time.perf_counter()
    results: dict = {
        "mode": "quick" if args.quick else "full",
        "config": cfg,
        "machine": machine(),
        "started": datetime.now().isoformat(timespec="seconds"),
    }
    work = Path(tempfile.mkdtemp(prefix="i2vkit-bench-"))
    try:
        for name, fn in (
            ("throughput", bench_throughput),
            ("replan", bench_replan),
            ("download", bench_download),
            ("photos", bench_photos),
        ):
            if name not in sections:
                continue
            try:
                results[name] = fn(cfg, work)
            except Exception as exc:  # report and go on: the script never fails CI
                log(f"{name} FAILED: {exc!r}")
                results.setdefault("errors", {})[name] = repr(exc)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["seconds"] = time.perf_counter() - started
    results["targets"] = [{"target": n, "met": ok, "detail": d} for n, ok, d in targets(results)]
    m = results["machine"]
    text = table(results)
    print()
    print(f"Machine: {m['nproc']} CPUs ({m['cpu']}), {m['ram_gib']} GiB RAM, Python {m['python']}")
    print(f"Mode: {results['mode']}; took {results['seconds']:.0f} s")
    print()
    print(text)
    out = Path(args.out) if args.out else RESULTS
    out.parent.mkdir(parents=True, exist_ok=True)
    results["table"] = text
    out.write_text(json.dumps(results, indent=2))
    print(f"\nJSON written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
