"""Make the sample images in data/images (drawn by code, so they are ours to ship).

Run `python data/make_samples.py` to re-create them; the committed files are its output.
"""

import math
from pathlib import Path

from PIL import Image, ImageDraw

HERE = Path(__file__).parent / "images"


def scene(width: int, height: int, sky: tuple, ground: tuple, sun: tuple, seed: int) -> Image.Image:
    img = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(img)
    for y in range(height):
        t = y / height
        color = tuple(int(sky[i] * (1 - t) + ground[i] * t) for i in range(3))
        draw.line([(0, y), (width, y)], fill=color)
    r = height // 7
    cx, cy = int(width * (0.25 + 0.5 * ((seed * 37) % 10) / 10)), height // 3
    draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=sun)
    for k in range(6):
        x0 = k * width // 5 - width // 10
        peak = int(height * (0.45 + 0.15 * math.sin(seed + k)))
        draw.polygon(
            [(x0, height), (x0 + width // 4, peak), (x0 + width // 2, height)],
            fill=tuple(max(0, c - 40 - 10 * k) for c in ground),
        )
    return img


def main() -> None:
    HERE.mkdir(parents=True, exist_ok=True)
    scene(480, 320, (40, 90, 200), (240, 180, 120), (255, 230, 120), 1).save(
        HERE / "01_dawn.jpg", quality=85
    )
    scene(320, 480, (20, 20, 60), (90, 60, 140), (240, 240, 255), 2).save(HERE / "02_night.png")
    scene(400, 400, (250, 120, 60), (60, 40, 30), (255, 250, 200), 3).save(
        HERE / "03_dusk.webp", quality=80
    )


if __name__ == "__main__":
    main()
