"""Small, real H.264 clips for the fal emulator, and a PyAV-based probe.

:func:`synthesize_clip` turns one still image into a short mp4 (a slow zoom and
pan over the picture, H.264, yuv420p, even dimensions, the input's aspect
ratio). It is what the emulator returns instead of a generated video: real,
playable, small and quick to encode.

:func:`probe` reads codec, duration, size and frame rate of a video with PyAV
(no ffprobe binary needed). :func:`pad_mp4` grows a valid mp4 to an exact byte
count with a trailing ``free`` box, for download benchmarks.
"""

from __future__ import annotations

import io
import os
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from PIL import Image, ImageOps

__all__ = ["ImageLoadError", "output_size", "pad_mp4", "probe", "synthesize_clip"]


class ImageLoadError(ValueError):
    """The bytes are not an image PIL can decode."""


def output_size(width: int, height: int, max_side: int = 256) -> tuple[int, int]:
    """Clip size for an image of ``width`` x ``height``: long side at most
    ``max_side``, aspect ratio kept, both sides even and at least 2."""
    if width <= 0 or height <= 0:
        raise ValueError("image has no pixels")
    scale = min(1.0, max_side / max(width, height))
    limit = max(2, max_side - max_side % 2)
    w = min(limit, max(2, int(round(width * scale / 2)) * 2))
    h = min(limit, max(2, int(round(height * scale / 2)) * 2))
    return w, h


def load_image(image_bytes: bytes, max_side: int = 256) -> Image.Image:
    """Decode ``image_bytes`` into an RGB image (EXIF orientation applied).

    Raises :class:`ImageLoadError` when the bytes are not a decodable image.
    """
    try:
        img = Image.open(io.BytesIO(image_bytes))
        # JPEG: decode at reduced size straight away (fast for big photos).
        img.draft("RGB", (max_side * 2, max_side * 2))
        img.load()
        img = ImageOps.exif_transpose(img)
        if img.mode != "RGB":
            if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
                rgba = img.convert("RGBA")
                bg = Image.new("RGB", rgba.size, (0, 0, 0))
                bg.paste(rgba, mask=rgba.getchannel("A"))
                img = bg
            else:
                img = img.convert("RGB")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ImageLoadError(f"cannot decode image: {exc}") from exc
    if img.width < 1 or img.height < 1:
        raise ImageLoadError("image has no pixels")
    return img


def synthesize_clip(
    image_bytes: bytes, *, seconds: float = 1.5, fps: int = 12, max_side: int = 256
) -> bytes:
    """Encode a short H.264 mp4 that slowly zooms and pans over the image.

    The clip keeps the image's aspect ratio (within rounding to even sizes),
    its long side is at most ``max_side`` and it lasts ``seconds`` at ``fps``.
    Raises :class:`ImageLoadError` when the bytes are not an image.
    """
    img = load_image(image_bytes, max_side=max_side)
    # Decoded image orientation/size defines the aspect (draft() keeps aspect).
    out_w, out_h = output_size(img.width, img.height, max_side)
    # Work on a source a bit larger than the output, so the zoom has detail.
    work_scale = min(1.0, (max_side * 1.25) / max(img.width, img.height))
    if work_scale < 1.0:
        img = img.resize(
            (max(2, round(img.width * work_scale)), max(2, round(img.height * work_scale))),
            Image.BILINEAR,
        )
    src_w, src_h = img.size
    n_frames = max(2, int(round(seconds * fps)))

    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width = out_w
        stream.height = out_h
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "30", "threads": "1"}
        stream.codec_context.time_base = Fraction(1, fps)
        for i in range(n_frames):
            t = i / (n_frames - 1)
            zoom = 1.0 - 0.15 * t  # crop shrinks: slow zoom in
            cw, ch = src_w * zoom, src_h * zoom
            # slow pan from left-top-ish to right-bottom-ish of the free margin
            left = (src_w - cw) * (0.25 + 0.5 * t)
            top = (src_h - ch) * (0.5 + 0.25 * (t - 0.5))
            frame_img = img.resize(
                (out_w, out_h), Image.BILINEAR, box=(left, top, left + cw, top + ch)
            )
            frame = av.VideoFrame.from_image(frame_img)
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buf.getvalue()


def _box_header(size: int) -> bytes:
    if size < 2**32:
        return size.to_bytes(4, "big") + b"free"
    return (1).to_bytes(4, "big") + b"free" + size.to_bytes(8, "big")


def pad_mp4(src: str | os.PathLike, dst: str | os.PathLike, size: int) -> int:
    """Write ``dst``: the mp4 ``src`` followed by a ``free`` box so the file is
    exactly ``size`` bytes and still a valid mp4. The padding is a sparse hole
    (no RAM, little disk). If ``size`` is too small to hold ``src`` plus a box
    header, ``dst`` is ``src`` truncated to ``size`` (no longer playable).
    Returns the final size."""
    data = Path(src).read_bytes()
    pad = size - len(data)
    with open(dst, "wb") as f:
        if pad >= 8:
            f.write(data)
            f.write(_box_header(pad))
            f.truncate(size)
        else:
            f.write(data[:size] if pad < 0 else data)
            f.truncate(size)
    return size


def probe(path: str | os.PathLike | bytes) -> dict[str, Any]:
    """Describe the first video stream of a file (or of mp4 bytes) with PyAV.

    Returns ``{"codec", "duration", "width", "height", "fps", "frames",
    "pix_fmt", "format"}``; duration is in seconds (float)."""
    src: Any = io.BytesIO(path) if isinstance(path, bytes | bytearray) else str(path)
    with av.open(src) as container:
        stream = container.streams.video[0]
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        fps = float(stream.average_rate) if stream.average_rate else None
        return {
            "codec": stream.codec_context.name,
            "duration": duration,
            "width": stream.codec_context.width,
            "height": stream.codec_context.height,
            "fps": fps,
            "frames": stream.frames,
            "pix_fmt": stream.codec_context.pix_fmt,
            "format": container.format.name,
        }
