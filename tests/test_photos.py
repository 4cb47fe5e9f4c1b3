"""A folder of camera photos (issue 25): damaged ones never uploaded, each photo uploaded
once and in order through a bounded pipeline, memory that does not grow with the folder."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

from clitools import bulk_args, cli_env, write_prompts
from helpers import make_photos
from PIL import Image

from i2vkit.engine import run_batch
from i2vkit.engine.pipeline import window_for
from i2vkit.images import check_image, scan_images
from i2vkit.planning import BatchRequest
from i2vkit.store import Store


def noise_bytes(fmt: str, size=(512, 384)) -> bytes:
    buf = io.BytesIO()
    Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3)).save(buf, format=fmt)
    return buf.getvalue()


def damaged_png_ending_whole() -> bytes:
    """A PNG whose last bytes are a perfect IEND, one IDAT byte flipped in the middle."""
    data = noise_bytes("PNG")
    at = data.index(b"IDAT") + 4 + 1000
    return data[:at] + bytes([data[at] ^ 0x40]) + data[at + 1 :]


def damaged_jpeg_ending_whole(photo: bytes) -> bytes:
    """A 12 MP JPEG ending with its end-of-image marker, with a stray marker mid-scan."""
    mid = len(photo) // 2
    return photo[:mid] + b"\xff\xc4" + photo[mid + 2 :]


def test_each_format_cut_short_or_damaged_is_refused_by_the_cheap_check(tmp_path):
    """The data checks (JPEG at 1/8 scale, PNG by CRC and inflate, WebP by its RIFF sizes
    and libwebp) refuse what a full decode refuses, in a plan that reads every photo."""
    [photo] = make_photos(tmp_path / "src", 1)
    jpeg = photo.read_bytes()
    png, webp = noise_bytes("PNG"), noise_bytes("WEBP")
    folder = tmp_path / "pics"
    folder.mkdir()
    (folder / "good.jpg").write_bytes(jpeg)
    (folder / "cut.jpg").write_bytes(jpeg[: len(jpeg) * 9 // 10])
    (folder / "marker.jpg").write_bytes(damaged_jpeg_ending_whole(jpeg))
    (folder / "cut.png").write_bytes(png[: len(png) * 9 // 10])
    (folder / "crc.png").write_bytes(damaged_png_ending_whole())
    (folder / "cut.webp").write_bytes(webp[: len(webp) * 9 // 10])
    cut = webp[: len(webp) // 2]  # cut, with the RIFF size made to match the cut file
    (folder / "riff.webp").write_bytes(cut[:4] + struct.pack("<I", len(cut) - 8) + cut[8:])
    result = scan_images(folder)
    assert [im.path.name for im in result.images] == ["good.jpg"]
    reasons = {s.path.name: s.reason for s in result.skipped}
    assert sorted(reasons) == [
        "crc.png",
        "cut.jpg",
        "cut.png",
        "cut.webp",
        "marker.jpg",
        "riff.webp",
    ]
    assert "cut short" in reasons["cut.jpg"] and "cut short" in reasons["cut.png"]
    assert "CRC" in reasons["crc.png"]


def test_png_whose_stream_is_short_but_every_chunk_is_right_is_refused(tmp_path):
    """IDAT chunks with right CRCs holding a whole zlib stream of too few rows: only
    counting what the stream inflates to finds it."""
    width, height = 64, 64
    rows = b"".join(b"\x00" + os.urandom(width * 3) for _ in range(height // 2))
    body = zlib.compress(rows)

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
    (tmp_path / "short.png").write_bytes(png)
    checked = check_image(tmp_path / "short.png", 10**8)
    assert not hasattr(checked, "width"), checked
    assert "cut short" in checked.reason


def test_damaged_photos_among_large_ones_are_never_uploaded(settings, emulator, tmp_path):
    """A run's plan reads only the ends of JPEGs that end as whole files do; their data is
    checked in the pipeline just before the upload. Cut-short files, and a PNG damaged
    inside (PNGs are checked in full by every plan), are skipped by the plan; a JPEG damaged
    inside is failed by the run; none of them reaches fal's CDN."""
    folder = tmp_path / "pics"
    good = make_photos(folder, 4)
    jpeg = good[0].read_bytes()
    png, webp = noise_bytes("PNG"), noise_bytes("WEBP")
    (folder / "photo2a-cut.jpg").write_bytes(jpeg[: len(jpeg) * 2 // 3])
    (folder / "photo2b-cut.png").write_bytes(png[: len(png) * 2 // 3])
    (folder / "photo2c-cut.webp").write_bytes(webp[: len(webp) * 2 // 3])
    (folder / "photo3a-inside.png").write_bytes(damaged_png_ending_whole())
    (folder / "photo3b-inside.jpg").write_bytes(damaged_jpeg_ending_whole(jpeg))
    request = BatchRequest(
        images_dir=str(folder), prompts=["a slow zoom"], model="wan", output_dir=str(tmp_path)
    )
    result = run_batch(request, settings)
    skipped = {s.path.name for s in result.plan.skipped}
    cut = {"photo2a-cut.jpg", "photo2b-cut.png", "photo2c-cut.webp"}
    assert skipped == cut | {"photo3a-inside.png"}
    by_image = {Path(j.image).name: j for j in result.jobs}
    assert sorted(by_image) == sorted([p.name for p in good] + ["photo3b-inside.jpg"])
    for name in ("photo3b-inside.jpg",):
        assert by_image[name].status == "failed"
        assert "not a valid image" in by_image[name].error
        assert "nothing was sent to fal" in by_image[name].error
    assert all(by_image[p.name].video for p in good)
    assert emulator.stats()["uploads"] == len(good)  # the damaged ones never crossed


def test_folder_larger_than_the_window_uploads_each_photo_once_in_order(
    settings, emulator, tmp_path
):
    count = 9
    assert window_for(1) < count
    images = make_photos(tmp_path / "pics", count, size=(320, 240))
    request = BatchRequest(
        images_dir=str(tmp_path / "pics"),
        prompts=["one", "two"],
        model="wan",
        output_dir=str(tmp_path / "out"),
        concurrency=1,  # one slot: the emulator sees the submits in the run's order
        upload_concurrency=1,
    )
    result = run_batch(request, settings)
    assert all(j.video for j in result.jobs) and len(result.jobs) == 2 * count
    assert emulator.stats()["uploads"] == count and result.uploads == count
    with Store(settings.db_path) as store:
        path_of = {j["image_url"]: j["image_path"] for j in store.jobs(result.batch_id)}
    assert len(set(path_of)) == count  # one URL per photo
    sent = [path_of[job["arguments"]["image_url"]] for job in emulator.jobs()]
    expected = [str(p) for p in images for _ in range(2)]
    assert sent == expected
    again = run_batch(request, settings)  # everything cached: nothing uploaded again
    assert again.uploads == 0 and emulator.stats()["uploads"] == count


PEAK = (
    "import sys\n"
    "from i2vkit.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "status = open('/proc/self/status').read().split('VmHWM:')[1].split()[0]\n"
    "print('PEAK_KB', status, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def peak_kb(tmp_path: Path, emulator, count: int, photos: list[Path]) -> int:
    work = tmp_path / f"run{count}"
    folder = work / "pics"
    folder.mkdir(parents=True)
    for p in photos[:count]:
        os.link(p, folder / p.name)
    prompts = write_prompts(work / "prompts.txt", 1)
    args = bulk_args(prompts, folder)
    env = cli_env(work, emulator.url)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).resolve().parent.parent), env.get("PYTHONPATH", "")]
    )
    proc = subprocess.run(
        [sys.executable, "-c", PEAK, *args[3:]],
        env=env,
        cwd=work,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{count} images" in proc.stdout or f"{count} image" in proc.stdout, proc.stdout
    return int(proc.stderr.split("PEAK_KB")[1].split()[0])


def test_peak_memory_does_not_grow_with_the_number_of_photos(emulator, tmp_path):
    """`i2vkit bulk --yes` over 16 and over 48 photos of 12 MP, each in its own process. Both
    fill the pipeline's window and the job slots (16), so what may differ is only what grows
    with the folder: a per-photo leak of one decoded image (36 MB) would add over 1 GB, of
    one file's bytes (4 MB) over 120 MB; the margin allows 40 MB of noise (measured: +10 to
    +18 MB; with 8 photos against 32 the smaller run never overlaps its downloads, and so
    never loads PyAV for the tags, while photos are still in memory)."""
    photos = make_photos(tmp_path / "all", 48)
    small = peak_kb(tmp_path, emulator, 16, photos)
    large = peak_kb(tmp_path, emulator, 48, photos)
    assert emulator.stats()["uploads"] == 16 + 48  # a ledger each: no cache shared
    assert large - small < 40 * 1024, (small, large)


def test_jpeg_check_decodes_at_an_eighth_of_the_size(tmp_path):
    """The JPEG check asks libjpeg for a 1/8-scale decode (all the entropy-coded data, 1/64
    of the pixels), not a full one."""
    from i2vkit.imagedata import check_data

    [photo] = make_photos(tmp_path, 1)
    with open(photo, "rb") as f, Image.open(f) as im:
        check_data(im, f, photo.stat().st_size)
        assert im.size == (4032 // 8, 3024 // 8)


def test_a_whole_interlaced_png_is_accepted(tmp_path):
    """An Adam7 PNG (which Pillow cannot write: made here pass by pass) that Pillow decodes
    in full passes the cheap check too: the expected stream length per pass is right."""
    width, height = 37, 23
    pixels = [
        [(x * 7 % 256, y * 11 % 256, (x + y) % 256) for x in range(width)] for y in range(height)
    ]
    passes = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2))
    raw = b""
    for x0, y0, dx, dy in (*passes, (0, 1, 1, 2)):
        for y in range(y0, height, dy):
            row = [pixels[y][x] for x in range(x0, width, dx)]
            if row:
                raw += b"\x00" + bytes(c for px in row for c in px)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 1)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw))
    (tmp_path / "adam7.png").write_bytes(png + chunk(b"IEND", b""))
    with Image.open(tmp_path / "adam7.png") as im:
        assert im.convert("RGB").getpixel((36, 22)) == pixels[22][36]  # Pillow reads it whole
    checked = check_image(tmp_path / "adam7.png", 10**8)
    assert getattr(checked, "width", None) == width, checked


def test_preview_thumbnails_are_made_once_and_kept_beside_the_ledger(tmp_path):
    from i2vkit import gallery as g

    [photo] = make_photos(tmp_path / "pics", 1)
    cache = g.thumbnail_cache(tmp_path / "ledger.db")
    assert cache.parent == tmp_path
    uri = g.thumbnail_data_uri(photo, cache=cache)
    assert uri is not None and uri.startswith("data:image/jpeg;base64,")
    assert len(uri) <= g.THUMB_MAX_CHARS
    [kept] = list(cache.iterdir())
    assert kept.read_text() == uri
    kept.write_text("data:image/jpeg;base64,KEPT")  # what is kept is what is shown
    assert g.thumbnail_data_uri(photo, cache=cache) == "data:image/jpeg;base64,KEPT"
    os.utime(photo, ns=(1, 1))  # changed: made again
    assert g.thumbnail_data_uri(photo, cache=cache) == uri
    assert len(list(cache.iterdir())) == 2


def test_a_dry_run_reads_every_photo_and_a_run_defers_it(emulator, tmp_path):
    """`--dry-run` (a plan only shown) checks every photo's data, so damage inside a file is
    listed among the skips; the plan of a run reads only the file's end and leaves the data
    of a JPEG to the run's pipeline (a PNG's is always checked in full)."""
    from clitools import run_cli

    folder = tmp_path / "pics"
    make_photos(folder, 2, size=(640, 480))
    (folder / "inside.png").write_bytes(damaged_png_ending_whole())
    (folder / "inside.jpg").write_bytes(
        damaged_jpeg_ending_whole((folder / "photo1.jpg").read_bytes())
    )
    prompts = write_prompts(tmp_path / "prompts.txt", 1)
    out = run_cli(
        bulk_args(prompts, folder, "--dry-run"), cli_env(tmp_path, emulator.url), tmp_path
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "inside.png" in out.stdout + out.stderr and "CRC" in out.stdout + out.stderr
    assert "2 images" in out.stdout
    assert emulator.stats()["uploads"] == 0
    deferred = scan_images(folder, defer=True)
    assert [im.path.name for im in deferred.images] == ["inside.jpg", "photo1.jpg", "photo2.jpg"]
    assert not any(im.data_checked for im in deferred.images)
    assert [s.path.name for s in deferred.skipped] == ["inside.png"]
