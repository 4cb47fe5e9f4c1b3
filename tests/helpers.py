"""Helpers for tests: real image files and the key the test emulator accepts."""

from __future__ import annotations

import random
from pathlib import Path

from PIL import Image

TEST_KEY = "testid:testsecret-0123456789"


def make_images(folder: Path, count: int, *, start: int = 0, size=(64, 48)) -> list[Path]:
    """`count` distinct small images (different colours, so different bytes)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(start, start + count):
        rng = random.Random(i)
        img = Image.new("RGB", size, (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
        img.putpixel((i % size[0], 0), (255 - i % 256, i % 256, 7))
        path = folder / f"img{i + 1}.png"
        img.save(path)
        paths.append(path)
    return paths
