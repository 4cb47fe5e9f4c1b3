"""The videos the emulator's jobs return: small, real H.264 clips made from the input image.

:func:`synthesize_clip` turns one still image into a short mp4 (a slow zoom and pan over
the picture, H.264, yuv420p, even dimensions, the input's aspect ratio): real, playable,
small and quick to encode, which is all a test of our side of the protocol needs.
:class:`ClipCache` encodes each distinct image once per clip shape, off the event loop,
however many jobs ask for it at the same time.

:func:`probe` reads codec, duration, size and frame rate of a video with PyAV (no ffprobe
binary needed); :func:`pad_mp4` grows a valid mp4 to an exact byte count with a trailing
``free`` box, for download benchmarks (the ``video_size`` knob).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from PIL import Image, ImageOps

from .runtime import Runtime

__all__ = [
    "GREY_PNG",
    "ClipCache",
    "ImageLoadError",
    "output_size",
    "pad_mp4",
    "probe",
    "synthesize_clip",
]


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
        img: Image.Image = Image.open(io.BytesIO(image_bytes))
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
            Image.Resampling.BILINEAR,
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
                (out_w, out_h), Image.Resampling.BILINEAR, box=(left, top, left + cw, top + ch)
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


def encode_to_file(image_bytes: bytes, dest: Path, seconds: float, fps: int, max_side: int) -> int:
    """Encode the clip of ``image_bytes`` into ``dest`` atomically; returns its size."""
    data = synthesize_clip(image_bytes, seconds=seconds, fps=fps, max_side=max_side)
    tmp = dest.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, dest)
    return len(data)


def _grey_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (320, 180), (128, 128, 128)).save(buf, "PNG")
    return buf.getvalue()


GREY_PNG = _grey_png()
"""The input of endpoints whose image is optional and was left out: a flat grey frame."""


class ClipCache:
    """Encoded clips on disk, one per (image, clip shape[, padded size]).

    Many jobs often share one image (one image, many prompts), and an encode costs far
    more than a job's whole protocol exchange. So the first job to need a clip starts its
    encode on the runtime's thread pool and every other job awaits the same future,
    shielded, so that a job cancelled meanwhile does not cancel the encode for the rest.
    An image that cannot be decoded stays cached as that failure (:class:`ImageLoadError`);
    any other failure is forgotten, so the next job tries again.
    """

    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime
        self._clips: dict[str, asyncio.Future] = {}
        self._padded: dict[tuple[str, int], asyncio.Future] = {}

    async def clip(self, image_bytes: bytes) -> tuple[Path, int]:
        """(path, size) of the clip for ``image_bytes``, padded to the ``video_size`` knob."""
        k = self._rt.knobs
        digest = hashlib.sha256(image_bytes).hexdigest()
        key = f"{digest}-{k['clip_seconds']}-{k['clip_fps']}-{k['clip_max_side']}"
        shape = (k["clip_seconds"], k["clip_fps"], k["clip_max_side"])
        path, size = await self._once(self._clips, key, self._encode, key, image_bytes, shape)
        vsize = k["video_size"]
        if vsize:
            path, size = await self._once(self._padded, (key, vsize), self._pad, path, vsize)
        return path, size

    async def _once(self, cache: dict, key: Any, make: Any, *args: Any) -> tuple[Path, int]:
        fut = cache.get(key)
        if fut is None:
            fut = asyncio.get_running_loop().create_future()
            cache[key] = fut
            asyncio.ensure_future(self._settle(cache, key, fut, make(*args)))
        return await asyncio.shield(fut)

    async def _settle(self, cache: dict, key: Any, fut: asyncio.Future, work: Any) -> None:
        try:
            result = await work
        except BaseException as exc:
            if not isinstance(exc, ImageLoadError):
                cache.pop(key, None)  # do not cache unexpected failures
            if not fut.done():
                fut.set_exception(exc)
                fut.exception()  # mark retrieved: no "never retrieved" warning
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        fut.set_result(result)

    async def _encode(
        self, key: str, image_bytes: bytes, shape: tuple[float, int, int]
    ) -> tuple[Path, int]:
        dest = self._rt.path("clips", f"{key}.mp4")
        size = await self._rt.in_thread(encode_to_file, image_bytes, dest, *shape)
        self._rt.stats.encodes += 1
        return dest, size

    async def _pad(self, clip_path: Path, vsize: int) -> tuple[Path, int]:
        dest = clip_path.with_name(f"{clip_path.stem}-{vsize}.mp4")
        return dest, await self._rt.in_thread(pad_mp4, clip_path, dest, vsize)
