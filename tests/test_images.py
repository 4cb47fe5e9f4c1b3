"""Scanning real folders of real (and fake) images made with Pillow."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

from i2vkit.errors import InputError
from i2vkit.images import ImageFile, ScanResult, scan_images, windows_path_hint


def make(path: Path, fmt: str = "PNG", size: tuple[int, int] = (8, 6), mode: str = "RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, "red" if mode == "RGB" else 0).save(path, format=fmt)
    return path


def names(result: ScanResult) -> list[str]:
    return [i.path.name for i in result.images]


def test_mixed_folder(tmp_path: Path) -> None:
    make(tmp_path / "img10.jpg", "JPEG")
    make(tmp_path / "img2.png")
    make(tmp_path / "IMG3.PNG")
    make(tmp_path / "img1.webp", "WEBP")
    (tmp_path / "corrupt.jpg").write_bytes(os.urandom(2048))
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "prompts.md").write_text("x")
    make(tmp_path / ".hidden.png")
    (tmp_path / "empty.jpg").write_bytes(b"")

    result = scan_images(tmp_path)

    assert names(result) == ["img1.webp", "img2.png", "IMG3.PNG", "img10.jpg"]
    assert result.ignored == 2
    skipped = {s.path.name: s.reason for s in result.skipped}
    assert set(skipped) == {"corrupt.jpg", "empty.jpg"}
    assert "not a valid image" in skipped["corrupt.jpg"]
    assert "remove it" in skipped["corrupt.jpg"]
    assert "0 bytes" in skipped["empty.jpg"]

    by_name = {i.path.name: i for i in result.images}
    webp = by_name["img1.webp"]
    assert webp.format == "webp" and webp.content_type == "image/webp"
    assert (webp.width, webp.height) == (8, 6)
    assert webp.path.is_absolute()
    assert webp.size == (tmp_path / "img1.webp").stat().st_size
    assert webp.mtime_ns == (tmp_path / "img1.webp").stat().st_mtime_ns
    assert by_name["img10.jpg"].content_type == "image/jpeg"
    assert by_name["IMG3.PNG"].format == "png"


def test_real_format_wins_over_extension(tmp_path: Path) -> None:
    make(tmp_path / "actually_png.jpg", "PNG")
    make(tmp_path / "a_gif.png", "GIF")
    result = scan_images(tmp_path)
    assert [(i.path.name, i.format, i.content_type) for i in result.images] == [
        ("actually_png.jpg", "png", "image/png")
    ]
    assert result.skipped[0].path.name == "a_gif.png"
    assert "GIF" in result.skipped[0].reason


def test_truncated_png_is_skipped(tmp_path: Path) -> None:
    good = make(tmp_path / "good.png", size=(64, 64))
    data = good.read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    result = scan_images(tmp_path)
    assert names(result) == ["good.png"]
    assert [s.path.name for s in result.skipped] == ["cut.png"]


def test_natural_sort_case_insensitive(tmp_path: Path) -> None:
    for n in ["img10.png", "img2.png", "Img1.png", "img100.png", "b.png", "A.png"]:
        make(tmp_path / n)
    assert names(scan_images(tmp_path)) == [
        "A.png",
        "b.png",
        "Img1.png",
        "img2.png",
        "img10.png",
        "img100.png",
    ]


def test_unicode_and_spaces(tmp_path: Path) -> None:
    make(tmp_path / "café au lait 2.jpg", "JPEG")
    make(tmp_path / "日本 語 10.png")
    make(tmp_path / "smile 😀.webp", "WEBP")
    result = scan_images(str(tmp_path))
    assert sorted(names(result)) == sorted(
        ["café au lait 2.jpg", "日本 語 10.png", "smile 😀.webp"]
    )


def test_pixel_limit_logic(tmp_path: Path) -> None:
    make(tmp_path / "big.png", size=(200, 100))
    make(tmp_path / "small.png", size=(10, 10))
    result = scan_images(tmp_path, max_pixels=10_000)
    assert names(result) == ["small.png"]
    assert "too large" in result.skipped[0].reason
    assert "200x100" in result.skipped[0].reason


def test_real_huge_image_is_skipped(tmp_path: Path) -> None:
    # 12,000 x 12,000 = 144 MP: over our 100 MP default and over Pillow's own
    # decompression-bomb warning threshold. An all-black 'L' PNG compresses to ~150 KB.
    make(tmp_path / "huge.png", size=(12_000, 12_000), mode="L")
    make(tmp_path / "ok.png")
    result = scan_images(tmp_path)
    assert names(result) == ["ok.png"]
    assert result.skipped[0].path.name == "huge.png"
    assert "too large" in result.skipped[0].reason


def test_decompression_bomb_error_is_reported(tmp_path: Path) -> None:
    # Pillow itself refuses images over twice its MAX_IMAGE_PIXELS; with our own
    # limit raised past that, Pillow's error must still become a skip, not a crash.
    limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = 1000
    try:
        make(tmp_path / "bomb.png", size=(100, 100), mode="L")
        make(tmp_path / "ok.png", size=(10, 10))
        result = scan_images(tmp_path, max_pixels=10**12)
    finally:
        Image.MAX_IMAGE_PIXELS = limit
    assert names(result) == ["ok.png"]
    assert "too large" in result.skipped[0].reason


def test_unreadable_file(tmp_path: Path) -> None:
    # Root reads anything, so as root the scan runs in a child without the DAC capabilities.
    import json
    import subprocess
    import sys

    locked = make(tmp_path / "locked.png")
    make(tmp_path / "ok.png")
    locked.chmod(0)
    code = (
        "import json, sys; from i2vkit.images import scan_images; r = scan_images(sys.argv[1]);"
        "print(json.dumps([[i.path.name for i in r.images], [s.reason for s in r.skipped]]))"
    )
    caps = "-dac_override,-dac_read_search"
    drop = ["setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}", "--"]
    out = subprocess.run(
        [*(drop if os.geteuid() == 0 else []), sys.executable, "-c", code, str(tmp_path)],
        capture_output=True,
        text=True,
    )
    locked.chmod(0o644)
    assert out.returncode == 0, out.stderr
    images, reasons = json.loads(out.stdout)
    assert images == ["ok.png"]
    assert "permission denied" in reasons[0]


def test_non_recursive_by_default(tmp_path: Path) -> None:
    make(tmp_path / "top.png")
    make(tmp_path / "sub" / "inner.png")
    make(tmp_path / ".hidden_dir" / "secret.png")
    assert names(scan_images(tmp_path)) == ["top.png"]
    assert names(scan_images(tmp_path, recursive=True)) == ["inner.png", "top.png"]


def test_recursive_survives_symlink_loops(tmp_path: Path) -> None:
    root = tmp_path / "root"
    make(root / "a.png")
    make(root / "sub" / "b.png")
    make(root / "sub" / "deeper" / "c.png")
    os.symlink(root, root / "sub" / "deeper" / "loop_to_root")
    os.symlink(root / "sub", root / "sub" / "self_loop")
    outside = tmp_path / "outside"
    make(outside / "o.png")
    os.symlink(outside, root / "link_out")
    os.symlink(outside, root / "sub" / "link_out_again")
    os.symlink(root, outside / "back_in")
    os.symlink(tmp_path / "nowhere", root / "dangling_dir")
    os.symlink(tmp_path / "nowhere.png", root / "dangling.png")

    result = scan_images(root, recursive=True)

    rel = sorted(i.path.relative_to(root).as_posix() for i in result.images)
    assert rel == ["a.png", "link_out/o.png", "sub/b.png", "sub/deeper/c.png"]
    assert [s.path.name for s in result.skipped] == ["dangling.png"]
    assert "broken link" in result.skipped[0].reason


def test_recursive_order_is_natural_on_relative_path(tmp_path: Path) -> None:
    make(tmp_path / "set10" / "x.png")
    make(tmp_path / "set2" / "x.png")
    make(tmp_path / "set2" / "img10.png")
    make(tmp_path / "set2" / "img9.png")
    result = scan_images(tmp_path, recursive=True)
    rel = [i.path.relative_to(tmp_path).as_posix() for i in result.images]
    assert rel == ["set2/img9.png", "set2/img10.png", "set2/x.png", "set10/x.png"]


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="Images folder not found") as err:
        scan_images(tmp_path / "nope")
    assert "Check the path" in str(err.value)


def test_file_instead_of_folder(tmp_path: Path) -> None:
    f = make(tmp_path / "one.png")
    with pytest.raises(InputError, match="is a file, not a folder"):
        scan_images(f)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (r"C:\Users\me\pics", "/mnt/c/Users/me/pics"),
        ("D:/photos/trip", "/mnt/d/photos/trip"),
        (r"pics\holiday", "pics/holiday"),
    ],
)
def test_windows_path(raw: str, expected: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # the raw path must not exist relative to cwd
    with pytest.raises(InputError, match="Windows") as err:
        scan_images(raw)
    assert expected in str(err.value)


def test_windows_hint_none_for_posix() -> None:
    assert windows_path_hint("/home/me/pics") is None
    assert windows_path_hint("pics/holiday") is None


def test_no_images_explains_why(tmp_path: Path) -> None:
    (tmp_path / "broken.jpg").write_bytes(b"not an image at all")
    (tmp_path / "readme.txt").write_text("x")
    make(tmp_path / "sub" / "in_sub.png")
    with pytest.raises(InputError) as err:
        scan_images(tmp_path)
    msg = str(err.value)
    assert "No usable images" in msg
    assert "1 file skipped" in msg and "broken.jpg" in msg and "not a valid image" in msg
    assert "1 file ignored" in msg
    assert "recursive" in msg


def test_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="No usable images"):
        scan_images(tmp_path)


def test_image_file_is_frozen(tmp_path: Path) -> None:
    make(tmp_path / "a.png")
    img = scan_images(tmp_path).images[0]
    assert isinstance(img, ImageFile)
    with pytest.raises(AttributeError):
        img.size = 3  # type: ignore[misc]


# -- images cut short: the header is fine, the data is not (issue 14, item 5) -------------


def noise(path: Path, fmt: str, size: tuple[int, int] = (256, 256)) -> bytes:
    """A photo-like image (noise compresses badly, so its data spans many bytes/chunks)."""
    Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3)).save(path, format=fmt)
    return path.read_bytes()


def png_chunks(data: bytes) -> list[bytes]:
    """A PNG's chunks as raw bytes (length, type, data, CRC), signature excluded."""
    chunks, pos = [], 8
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        chunks.append(data[pos : pos + 12 + length])
        pos += 12 + length
    return chunks


def test_truncated_jpeg_is_skipped_like_a_corrupt_file(tmp_path: Path) -> None:
    data = noise(tmp_path / "good.jpg", "JPEG")
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) * 2 // 3])  # the header is intact
    result = scan_images(tmp_path)
    assert names(result) == ["good.jpg"]
    [skipped] = result.skipped
    assert skipped.path.name == "cut.jpg"
    assert "is not a valid image" in skipped.reason and "cut short" in skipped.reason
    assert "remove it from the folder" in skipped.reason


def test_png_missing_image_data_but_well_formed_chunks_is_skipped(tmp_path: Path) -> None:
    """Every chunk's CRC is right and IEND is there, but half the pixel data is missing:
    a header-and-checksum check passes it, only decoding finds it."""
    from PIL import ImageFile as PilImageFile

    old = PilImageFile.MAXBLOCK
    PilImageFile.MAXBLOCK = 4096  # Pillow writes one IDAT chunk per block: many chunks
    try:
        data = noise(tmp_path / "good.png", "PNG")
    finally:
        PilImageFile.MAXBLOCK = old
    chunks = png_chunks(data)
    idats = [c for c in chunks if c[4:8] == b"IDAT"]
    assert len(idats) > 4
    kept = [c for c in chunks if c[4:8] != b"IDAT" or c in idats[: len(idats) // 2]]
    (tmp_path / "cut.png").write_bytes(data[:8] + b"".join(kept))
    with Image.open(tmp_path / "cut.png") as im:
        im.verify()  # what the check used to do: it passes
    result = scan_images(tmp_path)
    assert names(result) == ["good.png"]
    assert [s.path.name for s in result.skipped] == ["cut.png"]
    assert "cut short" in result.skipped[0].reason


def test_truncated_webp_is_skipped(tmp_path: Path) -> None:
    data = noise(tmp_path / "good.webp", "WEBP")
    (tmp_path / "cut.webp").write_bytes(data[: len(data) * 2 // 3])
    result = scan_images(tmp_path)
    assert names(result) == ["good.webp"]
    assert [s.path.name for s in result.skipped] == ["cut.webp"]
    assert "is not a valid image" in result.skipped[0].reason


def test_a_file_cut_after_it_was_checked_is_checked_again(tmp_path: Path) -> None:
    """Decoded files are remembered by path, size and mtime: a change is never trusted."""
    data = noise(tmp_path / "a.jpg", "JPEG")
    assert names(scan_images(tmp_path)) == ["a.jpg"]
    (tmp_path / "a.jpg").write_bytes(data[: len(data) // 2])
    noise(tmp_path / "b.jpg", "JPEG")
    result = scan_images(tmp_path)
    assert names(result) == ["b.jpg"] and [s.path.name for s in result.skipped] == ["a.jpg"]


def test_trusted_files_are_not_decoded_again(tmp_path: Path) -> None:
    """What `trusted` vouches for (plan: unchanged since it was uploaded) only has its
    header read; the others are decoded in full."""
    data = noise(tmp_path / "x.jpg", "JPEG")
    (tmp_path / "trusted.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "other.jpg").write_bytes(data[: len(data) // 2])
    seen: list[str] = []

    def trusted(path: Path, st: os.stat_result) -> bool:
        seen.append(path.name)
        return path.name == "trusted.jpg" and st.st_size == len(data) // 2

    result = scan_images(tmp_path, trusted=trusted)
    assert names(result) == ["trusted.jpg", "x.jpg"]
    assert [s.path.name for s in result.skipped] == ["other.jpg"]
    assert "trusted.jpg" in seen
