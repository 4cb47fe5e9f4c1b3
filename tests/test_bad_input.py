"""Bad input through the real CLI: each case is a clear error (exit 2, nothing uploaded or
submitted) or a reported skip (the good part of the batch runs, nothing submitted for what
is invalid, nothing else lost)."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import pytest
from clitools import (
    assert_one_playable_video_per_job,
    bulk_args,
    cli_env,
    ledger,
    run_cli,
    videos,
    write_prompts,
)
from helpers import make_images
from PIL import Image


@pytest.fixture
def work(tmp_path, emulator):
    """A folder with 2 good images and 2 prompts, and a runner for the CLI there."""
    make_images(tmp_path / "pics", 2)
    prompts = write_prompts(tmp_path / "prompts.txt", 2)

    def cli(*extra: str, prompts_file: Path = prompts, images: Path | str | None = None, **kw):
        args = bulk_args(prompts_file, tmp_path / "pics", *extra, **kw)
        if images is not None:
            args[args.index("--images-dir") + 1] = str(images)
        return run_cli(args, cli_env(tmp_path, emulator.url), tmp_path)

    cli.tmp = tmp_path
    cli.emu = emulator
    return cli


def nothing_sent(emulator) -> None:
    stats = emulator.stats()
    assert stats["uploads"] == 0, "an upload happened"
    assert stats["submits"]["total"] == 0, "a job was submitted"


def refused(out, *words: str) -> None:
    """Exit 2 with one `error:` line on stderr that contains every word."""
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.startswith("error: "), out.stderr
    for word in words:
        assert word in out.stderr, f"{word!r} not in {out.stderr!r}"


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height (a decompression bomb's shape)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


# ----------------------------------------------------------------------------- images


def test_bad_image_files_are_skipped_and_reported_the_rest_runs(work):
    """A corrupt .jpg, a 0-byte .png, a real 12,000 x 12,000 PNG and a small PNG claiming
    12,000 x 12,000 in its header sit next to 2 good images: each bad one is named on stdout
    with why and what to do; only the 2 good images are uploaded and their 4 jobs run."""
    pics = work.tmp / "pics"
    (pics / "corrupt.jpg").write_bytes(os.urandom(4096))
    (pics / "empty.png").write_bytes(b"")
    Image.new("1", (12_000, 12_000)).save(pics / "huge.png")  # 1-bit: cheap to make
    (pics / "bomb.png").write_bytes(png_claiming(12_000, 12_000))
    out = work()
    assert out.returncode == 0, out.stdout + out.stderr
    assert "= 4 jobs" in out.stdout
    skipped = {
        line.split(":")[0].split()[-1]: line
        for line in out.stdout.splitlines()
        if line.startswith("skipped")
    }
    assert set(skipped) >= {"corrupt.jpg", "empty.png", "huge.png", "bomb.png"}, out.stdout
    assert "not a valid image" in skipped["corrupt.jpg"]
    assert "0 bytes" in skipped["empty.png"]
    assert "12000x12000" in skipped["huge.png"] and "downscale" in skipped["huge.png"]
    assert "12000x12000" in skipped["bomb.png"]
    stats = work.emu.stats()
    assert stats["uploads"] == 2 and stats["submits"]["total"] == 4
    assert_one_playable_video_per_job(work.tmp / "ledger.db", work.tmp / "videos", 4)
    images = {
        Path(r[0]).name for r in ledger(work.tmp / "ledger.db", "SELECT image_path FROM jobs")
    }
    assert images == {"img1.png", "img2.png"}


def test_images_cut_short_are_skipped_like_corrupt_files(work):
    """A JPEG cut to 60 % of its bytes and a PNG whose later pixel data is missing (every
    chunk and checksum intact, IEND present) next to 2 good images: both are named as not
    valid, neither is uploaded; only the good images' 4 jobs run."""
    pics = work.tmp / "pics"
    photo = Image.frombytes("RGB", (256, 256), os.urandom(256 * 256 * 3))
    photo.save(pics / "whole.jpg", format="JPEG")
    data = (pics / "whole.jpg").read_bytes()
    (pics / "whole.jpg").unlink()
    (pics / "cut.jpg").write_bytes(data[: len(data) * 6 // 10])
    (pics / "cut.png").write_bytes(png_missing_half_its_data(photo))
    out = work()
    assert out.returncode == 0, out.stdout + out.stderr
    skipped = [line for line in out.stdout.splitlines() if line.startswith("skipped")]
    for name in ("cut.jpg", "cut.png"):
        [line] = [s for s in skipped if s.startswith(f"skipped {name}:")]  # the plan's line
        assert "not a valid image" in line and "cut short" in line, line
    stats = work.emu.stats()
    assert stats["uploads"] == 2 and stats["submits"]["total"] == 4
    images = {
        Path(r[0]).name for r in ledger(work.tmp / "ledger.db", "SELECT image_path FROM jobs")
    }
    assert images == {"img1.png", "img2.png"}


def png_missing_half_its_data(image: Image.Image) -> bytes:
    """``image`` as a PNG of many IDAT chunks with the second half of them left out: what a
    header-and-checksum check accepts and only a full decode rejects."""
    from io import BytesIO

    from PIL import ImageFile

    buffer, old = BytesIO(), ImageFile.MAXBLOCK
    ImageFile.MAXBLOCK = 4096  # Pillow writes one IDAT chunk per block
    try:
        image.save(buffer, format="PNG")
    finally:
        ImageFile.MAXBLOCK = old
    data, pos, chunks = buffer.getvalue(), 8, []
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        chunks.append(data[pos : pos + 12 + length])
        pos += 12 + length
    idats = [c for c in chunks if c[4:8] == b"IDAT"]
    assert len(idats) > 4
    dropped = idats[len(idats) // 2 :]
    return data[:8] + b"".join(c for c in chunks if c not in dropped)


def test_only_bad_images_is_a_clear_error(work):
    pics = work.tmp / "pics"
    for p in pics.iterdir():
        p.unlink()
    (pics / "corrupt.jpg").write_bytes(b"not a jpeg at all")
    (pics / "empty.png").write_bytes(b"")
    out = work()
    refused(out, "No usable images", "corrupt.jpg", "empty.png")
    nothing_sent(work.emu)


def test_images_folder_missing(work):
    out = work(images=work.tmp / "no-such-folder")
    refused(out, "Images folder not found", "no-such-folder")
    nothing_sent(work.emu)


def test_images_folder_is_a_file(work):
    out = work(images=work.tmp / "prompts.txt")
    refused(out, "is a file, not a folder", "prompts.txt")
    nothing_sent(work.emu)


def test_windows_style_path_on_linux(work):
    out = work(images="C:\\Users\\me\\Pictures")
    refused(out, "looks like a Windows path", "/mnt/c/Users/me/Pictures")
    nothing_sent(work.emu)
    out = work(prompts_file=Path("D:\\prompts.txt"))
    refused(out, "Prompts file not found", "Windows path")
    nothing_sent(work.emu)


def test_symlink_loop_with_recursive_finishes(work):
    """A folder that links to itself and to its parent, scanned with --recursive: the scan
    ends, every image is used once, nothing twice."""
    pics = work.tmp / "pics"
    sub = pics / "sub"
    make_images(sub, 1, start=5)
    (sub / "loop").symlink_to(sub, target_is_directory=True)
    (sub / "up").symlink_to(pics, target_is_directory=True)
    (pics / "self").symlink_to(".", target_is_directory=True)
    out = work("--recursive")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "3 images x 2 prompts" in out.stdout
    assert work.emu.stats()["uploads"] == 3 and work.emu.stats()["submits"]["total"] == 6
    assert_one_playable_video_per_job(work.tmp / "ledger.db", work.tmp / "videos", 6)


def test_unicode_and_spaces_in_names(work, tmp_path):
    """Images, the folder and the prompts file named with spaces, accents, CJK and emoji."""
    folder = tmp_path / "my pictures — été 写真 🎞"
    make_images(folder, 2)
    for i, p in enumerate(sorted(folder.iterdir())):
        p.rename(folder / f"photo {i} – café 猫 🐱.png")
    prompts = tmp_path / "prompts — ünïcode.txt"
    prompts.write_text("a cat in the rain, ☔ à la française\n", encoding="utf-8")
    out = work(prompts_file=prompts, images=folder)
    assert out.returncode == 0, out.stdout + out.stderr
    assert_one_playable_video_per_job(tmp_path / "ledger.db", tmp_path / "videos", 2)
    rows = ledger(tmp_path / "ledger.db", "SELECT image_path, prompt FROM jobs")
    assert {Path(r[0]).name for r in rows} == {f"photo {i} – café 猫 🐱.png" for i in range(2)}
    assert {r[1] for r in rows} == {"a cat in the rain, ☔ à la française"}


# ----------------------------------------------------------------------------- prompts


def test_prompts_file_missing(work):
    out = work(prompts_file=work.tmp / "missing.txt")
    refused(out, "Prompts file not found", "missing.txt")
    nothing_sent(work.emu)


@pytest.mark.parametrize(
    "content",
    [b"", b"\n\n   \n", b"# only a comment\n   # another\n\n"],
    ids=["empty", "blank-lines", "only-comments"],
)
def test_prompts_file_without_prompts(work, content):
    path = work.tmp / "nothing.txt"
    path.write_bytes(content)
    out = work(prompts_file=path)
    refused(out, "No prompts found", "nothing.txt", "one prompt per line")
    nothing_sent(work.emu)


def test_prompts_file_not_utf8(work):
    path = work.tmp / "latin1.txt"
    path.write_bytes("a café at night\n".encode("latin-1"))
    out = work(prompts_file=path)
    refused(out, "not valid UTF-8", "latin1.txt", "line 1", "Save")
    nothing_sent(work.emu)
    path.write_bytes("a prompt\n".encode("utf-16"))
    out = work(prompts_file=path)
    refused(out, "UTF-16", "UTF-8")
    nothing_sent(work.emu)


def test_prompt_over_the_model_limit(work):
    from i2vkit.models import get_model

    limit = get_model("wan-2.1").max_prompt_chars  # the model clitools runs
    path = work.tmp / "long.txt"
    path.write_text("a short one\n" + "x" * (limit + 1) + "\n")
    out = work(prompts_file=path)
    refused(out, "prompt(s) 2", str(limit), "shorten")
    nothing_sent(work.emu)


# ----------------------------------------------------------------------------- options


def test_unknown_model(work):
    out = work(model="wann")
    refused(out, "Unknown model 'wann'", "Did you mean 'wan'", "Known models")
    nothing_sent(work.emu)


@pytest.mark.parametrize("value", ["0", "-3"])
def test_concurrency_zero_or_negative(work, value):
    out = work("--concurrency", value)
    refused(out, "concurrency", "at least 1", value)
    nothing_sent(work.emu)


def test_output_folder_not_writable(work):
    """The output folder's parent is a regular file (so it can never be created, even by
    root): refused before anything is uploaded or paid for."""
    blocker = work.tmp / "a-file"
    blocker.write_text("not a folder")
    out = work("--output-dir", str(blocker / "videos"))
    refused(out, "Output folder", str(blocker / "videos"))
    nothing_sent(work.emu)


def test_dotenv_with_a_malformed_line(work):
    (work.tmp / ".env").write_text("AUTO_DOWNLOAD_DIR=videos\nthis line is not an assignment\n")
    out = work()
    refused(out, ".env", "line 2", "KEY=value")
    nothing_sent(work.emu)
    assert not videos(work.tmp / "videos")
