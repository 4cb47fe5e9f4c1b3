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
