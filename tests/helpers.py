"""Helpers for tests: real image files and the key the test emulator accepts."""

from __future__ import annotations

import random
from pathlib import Path

import httpx
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


def upload_blob(emulator, data: bytes) -> str:
    token = httpx.post(
        f"{emulator.url}/storage/auth/token",
        params={"storage_type": "fal-cdn-v3"},
        headers={"Authorization": "Key testid:testsecret-0123456789"},
        json={},
    ).json()
    answer = httpx.post(
        f"{emulator.url}/files/upload",
        content=data,
        headers={
            "Authorization": f"{token['token_type']} {token['token']}",
            "Content-Type": "video/mp4",
            "X-Fal-File-Name": "clip.mp4",
        },
    )
    return answer.json()["access_url"]


def plan_in(request, settings):
    """plan_batch as every front end calls it: in a workspace opened for it (the ledger and
    catalogue of ``settings``), closed again once the plan exists."""
    from i2vkit.planning import plan_batch
    from i2vkit.workspace import Workspace

    with Workspace.open(settings) as ws:
        return plan_batch(request, ws)


def make_photos(folder: Path, count: int, *, size=(4032, 3024), start: int = 0) -> list[Path]:
    """`count` distinct camera-sized JPEGs (12 MP by default, a few MB each: noise and
    blurred noise compress like a photo). One image is encoded; each file is it with a
    comment segment of its own, so every file has its own bytes (and hash) for free."""
    import os

    from PIL import ImageFilter

    folder.mkdir(parents=True, exist_ok=True)
    tw, th = max(1, size[0] // 8), max(1, size[1] // 8)
    tile = Image.frombytes("RGB", (tw, th), os.urandom(tw * th * 3))
    tiles = (tile, tile.filter(ImageFilter.GaussianBlur(2)))
    base = Image.new("RGB", size)
    for x in range(0, size[0], tw):
        for y in range(0, size[1], th):
            base.paste(tiles[(x // tw + y // th) % 3 != 0], (x, y))
    encoded = folder / ".base.jpg"
    base.save(encoded, quality=85)
    data = encoded.read_bytes()
    encoded.unlink()
    paths = []
    for i in range(start, start + count):
        note = f"photo {i + 1}".encode()
        comment = b"\xff\xfe" + (len(note) + 2).to_bytes(2, "big") + note
        path = folder / f"photo{i + 1}.jpg"
        path.write_bytes(data[:2] + comment + data[2:])  # after the start-of-image marker
        paths.append(path)
    return paths
