"""File names and file URLs that hold on every platform, Windows' rules being the strictest.

Everything i2vkit names on disk (videos, their `.part` files, exported reports and
keepers) goes through :func:`safe_component`, and every path that ends up in HTML
(gallery, report) through :func:`file_url`, so a model id with a ``/``, an image stem
with a ``:`` or a folder under ``C:\\Users\\Zoë`` means the same thing on Linux, macOS
and Windows.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from pathlib import PurePath
from urllib.parse import quote

#: A name part is kept this short so that folder + name stays within Windows' MAX_PATH
#: (260) in ordinary folders, and far from the 255-unit/255-byte limits of NTFS and ext4.
MAX_COMPONENT = 120

#: Characters Windows refuses in a file name (besides the control characters).
WINDOWS_FORBIDDEN = '<>:"/\\|?*'

#: Device names Windows reserves in every folder, with or without an extension
#: (``NUL.mp4`` is the null device too). The superscript digits count as digits there.
RESERVED_NAMES = frozenset(
    ["CON", "PRN", "AUX", "NUL"]
    + [f"{dev}{n}" for dev in ("COM", "LPT") for n in [*"123456789", "¹", "²", "³"]]
)

_SUFFIX_LEN = 10
_HASH_SUFFIX = re.compile(rf"-[0-9a-f]{{{_SUFFIX_LEN}}}$")


def _unsafe(ch: str) -> bool:
    # isprintable() is False for control characters, DEL, lone surrogates (undecodable
    # bytes from os.fsdecode) and invisible format characters such as U+202E, which
    # make a name read differently from what it is.
    return ch in WINDOWS_FORBIDDEN or not ch.isprintable()


def is_reserved(name: str) -> bool:
    """Does Windows read ``name`` as a device (``con``, ``NUL.txt``, ``com1 .mp4``)?"""
    return name.split(".", 1)[0].rstrip(" ").upper() in RESERVED_NAMES


def _fits(name: str, max_len: int) -> bool:
    # NTFS counts UTF-16 units, ext4 bytes: bound both (a CJK name is 3 bytes a character).
    units = len(name.encode("utf-16-le", "surrogatepass")) // 2
    return units <= max_len and len(name.encode("utf-8", "surrogatepass")) <= 2 * max_len


def safe_component(text: str, *, max_len: int = MAX_COMPONENT) -> str:
    """One file-name part for `text` that is valid on Windows, macOS and Linux.

    A `text` that is already valid everywhere comes back unchanged, so ordinary
    names stay readable (``wan``, ``kling-1.6``, ``beach at dawn``). Anything else
    (a forbidden or invisible character, a leading or trailing dot or space, a
    reserved device name, more than `max_len`) is cleaned up *and* given the suffix
    ``-`` + 10 hex digits of the sha256 of the original text. Why the suffix: cleaning
    alone would map ``fal-ai/wan`` and ``fal-ai-wan``, or ``a:b`` and ``a?b``, to the
    same file and one job's video would pass for another's. A valid text that itself
    ends like such a suffix is suffixed too, so an unchanged name never looks like a
    cleaned one: distinct texts give distinct names (up to a 40-bit hash collision
    between two cleaned ones).

    Case is kept as given: names that differ only in case are distinct here but one
    file on Windows and macOS; callers that put several such names in one folder also
    put a distinct number in them (job ids).
    """
    if max_len < _SUFFIX_LEN + 2:
        raise ValueError(f"max_len must be at least {_SUFFIX_LEN + 2}, got {max_len}")
    runs = itertools.groupby(text, key=_unsafe)
    cleaned = "".join("-" if unsafe else "".join(chars) for unsafe, chars in runs).strip(". ")
    if (
        cleaned == text
        and cleaned
        and not is_reserved(cleaned)
        and not _HASH_SUFFIX.search(cleaned)
        and _fits(cleaned, max_len)
    ):
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:_SUFFIX_LEN]
    stem = cleaned.strip(". -")
    while stem and not _fits(f"_{stem}-{digest}", max_len):  # room for the "_" below
        stem = stem[:-1].rstrip(". -")
    name = f"{stem}-{digest}" if stem else f"_{digest}"
    return f"_{name}" if is_reserved(name) else name  # "con.txt-..." is still the console


def file_url(path: PurePath, base: PurePath | None = None) -> str:
    """A URL for the file `path`: relative to the folder `base` when it can be, else ``file:``.

    Works on the path's own flavour, never the running system's: a
    ``PureWindowsPath('C:/Users/Zoë/clips/1_wan.mp4')`` under ``C:\\Users\\Zoë`` gives
    ``clips/1_wan.mp4`` on any machine. Segments are joined with ``/`` and each is
    percent-encoded (``:``, ``#``, ``%``, spaces and non-ASCII letters included), so a
    browser reads back exactly the file's name. Both paths should be absolute (resolve
    them first); a file on another drive than `base` has no relative URL and gets an
    absolute ``file:///C:/...`` one.
    """
    if base is not None:
        parts = _relative_parts(path, base)
        if parts is not None:
            return "/".join(quote(part, safe="") for part in parts) or "."
    return path.as_uri()


def _relative_parts(path: PurePath, base: PurePath) -> list[str] | None:
    """`path` relative to `base` as segments (``..`` to climb), or None across drives."""
    flavour = type(path)

    def same(a: str, b: str) -> bool:
        return flavour(a) == flavour(b)  # case-insensitive for Windows paths

    if path.is_absolute() != base.is_absolute() or not same(path.anchor, base.anchor):
        return None
    p, b = path.parts[1 if path.anchor else 0 :], base.parts[1 if base.anchor else 0 :]
    common = 0
    while common < min(len(p), len(b)) and same(p[common], b[common]):
        common += 1
    return [".."] * (len(b) - common) + list(p[common:])
