"""Pairing images with prompts: counts, order and refusal of mismatches."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from i2vkit.errors import InputError
from i2vkit.images import ImageFile, scan_images
from i2vkit.pairing import normalize_pairing, pair


@pytest.fixture
def five_images(tmp_path: Path) -> list[ImageFile]:
    for i in range(1, 6):
        Image.new("RGB", (4, 4)).save(tmp_path / f"img{i}.png")
    return scan_images(tmp_path).images


PROMPTS = [f"p{i}" for i in range(1, 7)]


def test_all_combinations_image_major(five_images: list[ImageFile]) -> None:
    pairs = pair(five_images, PROMPTS)
    assert len(pairs) == 30
    assert [p.index for p in pairs] == list(range(30))
    assert [(p.image.path.name, p.prompt) for p in pairs[:7]] == [
        ("img1.png", "p1"),
        ("img1.png", "p2"),
        ("img1.png", "p3"),
        ("img1.png", "p4"),
        ("img1.png", "p5"),
        ("img1.png", "p6"),
        ("img2.png", "p1"),
    ]
    assert pairs[-1].image.path.name == "img5.png" and pairs[-1].prompt == "p6"
    assert [p.prompt_index for p in pairs[:6]] == list(range(6))


def test_accepts_scan_result(tmp_path: Path) -> None:
    Image.new("RGB", (4, 4)).save(tmp_path / "a.png")
    assert len(pair(scan_images(tmp_path), ["x", "y"], "all_combinations")) == 2


@pytest.mark.parametrize("mode", ["one_to_one", "one-to-one", "One-To-One", " one to one "])
def test_one_to_one(five_images: list[ImageFile], mode: str) -> None:
    pairs = pair(five_images, PROMPTS[:5], mode)
    assert len(pairs) == 5
    assert [(p.image.path.name, p.prompt, p.prompt_index) for p in pairs] == [
        (f"img{i}.png", f"p{i}", i - 1) for i in range(1, 6)
    ]


def test_one_to_one_mismatch(five_images: list[ImageFile]) -> None:
    with pytest.raises(InputError) as err:
        pair(five_images, PROMPTS, "one_to_one")
    msg = str(err.value)
    assert "5 images, 6 prompts" in msg
    assert "all combinations" in msg
    with pytest.raises(InputError, match="5 images, 4 prompts"):
        pair(five_images, PROMPTS[:4], "one-to-one")


def test_empty_inputs(five_images: list[ImageFile]) -> None:
    with pytest.raises(InputError, match="image list is empty"):
        pair([], PROMPTS)
    with pytest.raises(InputError, match="prompt list is empty"):
        pair(five_images, [])


def test_unknown_mode(five_images: list[ImageFile]) -> None:
    with pytest.raises(InputError) as err:
        pair(five_images, PROMPTS, "zip")
    assert "'zip'" in str(err.value) and "one_to_one" in str(err.value)


def test_normalize() -> None:
    assert normalize_pairing("ALL") == "all"
    assert normalize_pairing("all-combinations") == "all"
    assert normalize_pairing("one-to-one") == "one_to_one"
