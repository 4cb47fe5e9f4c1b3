"""Prove an image's data is whole without paying for a full-size decode.

A photo cut short (a copy or download that stopped half-way) has a perfect header: only
reading its image data finds out. Decoding a 12-megapixel JPEG in full costs about 20 times
reading it, so each format gets the cheapest check that still reads every byte of its data:

* JPEG: libjpeg's reduced-size decode (Pillow's ``draft``, 1/8 scale). The entropy-coded
  data is still decoded to its last bit (the DC coefficients need all of it), only the
  inverse DCT, upsampling and colour conversion run at 1/64 of the pixels. A file that ends
  before its data does raises exactly as a full decode would.
* PNG: every chunk's CRC, and the IDAT stream inflated to the end (zlib's own Adler-32
  check), its length matched against what the header's size promises. No unfiltering and
  no pixels: a missing or damaged chunk, a stream cut short or one too short all fail.
* WebP: the RIFF container's sizes against the file's (a cut file fails before any
  decode), then libwebp's decode. libwebp can decode at a smaller scale, but Pillow does not
  expose it; WebP photos are rare next to JPEG, so the full decode is kept.

Memory stays small whatever the image: the PNG check reads in pieces and inflates into a
bounded buffer; a JPEG draft holds 1/64 of the pixels. Every step runs in C code that
releases the GIL, so callers check several images at once on threads.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import IO

from PIL import Image

from .errors import ImageDataError as DataError

#: Read and inflate in pieces of this size: a PNG's memory does not depend on its size.
PIECE = 1 << 20

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # colour type -> samples per pixel
#: (x0, y0, dx, dy) of each Adam7 interlace pass
_ADAM7 = (
    (0, 0, 8, 8),
    (4, 0, 8, 8),
    (0, 4, 4, 8),
    (2, 0, 4, 4),
    (0, 2, 2, 4),
    (1, 0, 2, 2),
    (0, 1, 1, 2),
)


def check_data(im: Image.Image, f: IO[bytes], size: int) -> None:
    """Read all of an opened image's data, as cheaply as its format allows; ``f`` is the
    file (or bytes) Pillow opened it from, ``size`` its length.

    Raises :class:`~i2vkit.errors.ImageDataError` (or Pillow's own OSError/SyntaxError for
    a JPEG or WebP it cannot decode) when the data is damaged or cut short.
    """
    if im.format in ("JPEG", "MPO"):
        w, h = im.size
        im.draft(im.mode, (max(1, w // 8), max(1, h // 8)))
        im.load()
    elif im.format == "PNG":
        f.seek(0)
        check_png(f)
    elif im.format == "WEBP":
        im.load()
        f.seek(0)
        check_riff_sizes(f, size)
    else:
        im.load()


def looks_whole(path: Path, fmt: str, size: int) -> bool:
    """Does the file end the way a whole file of ``fmt`` does? A few bytes read from its end:
    what a run trusts to plan a photo whose data it checks just before uploading it. False
    is no verdict (trailing bytes after a JPEG's end, say): then the plan checks the data."""
    try:
        with open(path, "rb") as f:
            if fmt == "WEBP":
                head = f.read(12)
                return head[:4] == b"RIFF" and struct.unpack("<I", head[4:8])[0] + 8 in (
                    size,
                    size - 1,
                )
            f.seek(max(0, size - 16))
            tail = f.read()
    except OSError:
        return False
    if fmt == "PNG":
        return tail.endswith(b"\x00\x00\x00\x00IEND\xaeB`\x82")
    return tail.endswith(b"\xff\xd9")  # JPEG / MPO: the end-of-image marker


def check_riff_sizes(f: IO[bytes], size: int) -> None:
    """A WebP's RIFF size and its chunks' sizes must fit the file: a cut file does not."""
    head = f.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WEBP":
        raise DataError("its WebP container header is damaged")
    riff_end = struct.unpack("<I", head[4:8])[0] + 8
    if riff_end > size:
        raise DataError(
            f"its data is cut short: the file has {size:,} bytes, its header says {riff_end:,}"
        )
    pos = 12
    while pos + 8 <= riff_end:
        f.seek(pos)
        chunk = f.read(8)
        length = struct.unpack("<I", chunk[4:8])[0]
        pos += 8 + length + (length & 1)
    if pos < riff_end - 1 or pos > riff_end + 1:
        raise DataError("its data is cut short: a WebP chunk runs past the end of the file")


def check_png(f: IO[bytes]) -> None:
    """Walk a PNG's chunks (every CRC) and inflate its IDAT stream to the end, counting."""
    if f.read(8) != _PNG_SIGNATURE:
        raise DataError("its PNG signature is damaged")
    inflate = zlib.decompressobj()
    inflated, expected = 0, None
    while True:
        head = f.read(8)
        if len(head) < 8:
            raise DataError("its data is cut short: the file ends before its IEND chunk")
        length, kind = struct.unpack(">I4s", head)
        crc = zlib.crc32(kind)
        data = b""
        left = length
        while left:
            piece = f.read(min(left, PIECE))
            if not piece:
                raise DataError(f"its data is cut short inside a {kind.decode('latin-1')} chunk")
            left -= len(piece)
            crc = zlib.crc32(piece, crc)
            if kind == b"IDAT":
                inflated += _inflate(inflate, piece)
            elif length <= 64:
                data += piece
        stored = f.read(4)
        if len(stored) < 4:
            raise DataError("its data is cut short: the file ends inside a chunk's checksum")
        if struct.unpack(">I", stored)[0] != crc:
            raise DataError(
                f"one of its {kind.decode('latin-1')} chunks is damaged (its CRC is wrong)"
            )
        if kind == b"IHDR":
            expected = _png_raw_size(data)
        elif kind == b"IEND":
            break
    if not inflate.eof:
        raise DataError("its data is cut short: the compressed image data stops early")
    if expected is not None and inflated != expected:
        raise DataError(
            f"its data is cut short: {inflated:,} bytes of image data, {expected:,} expected"
        )


def _inflate(inflate: zlib._Decompress, data: bytes) -> int:
    """Inflate `data` into a bounded buffer; how many bytes came out."""
    out = 0
    try:
        while data:
            out += len(inflate.decompress(data, PIECE))
            data = inflate.unconsumed_tail
    except zlib.error as exc:
        raise DataError(f"its compressed image data is damaged ({exc})") from None
    return out


def _png_raw_size(ihdr: bytes) -> int | None:
    """Bytes the IDAT stream must inflate to (a filter byte per row, per interlace pass)."""
    if len(ihdr) != 13:
        raise DataError("its IHDR chunk is damaged")
    width, height, depth, colour, _c, _f, interlace = struct.unpack(">IIBBBBB", ihdr)
    channels = _PNG_CHANNELS.get(colour)
    if channels is None:
        return None

    def rows(w: int, h: int) -> int:
        return 0 if w == 0 or h == 0 else h * (1 + (w * channels * depth + 7) // 8)

    if not interlace:
        return rows(width, height)
    return sum(
        rows((width - x0 + dx - 1) // dx, (height - y0 + dy - 1) // dy) for x0, y0, dx, dy in _ADAM7
    )
