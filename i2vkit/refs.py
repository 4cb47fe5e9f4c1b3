"""Image references: a URL or a local file, and the image name a reference shows.

A batch's images and end frames are references: a local path (of either platform's
flavour: a ledger written on Windows holds ``C:\\shots\\a.png``) or a URL (from a shot
list or ``--end-image``). Which one a reference is, and what it is called in a grid, a
status line or a file name, is decided here and nowhere else.

* :func:`is_remote`: fal fetches it itself (an http(s) URL or a ``data:`` URI), so it is
  sent as is and never uploaded;
* :func:`looks_like_url`: it names a scheme (``ftp://``, ``HTTP://``), so it is a URL and
  never a file name, even one fal cannot fetch (:func:`checked_url` says why);
* :func:`is_url`: either of those: not a local file;
* :func:`image_name` / :func:`image_stem`: the name a reference ends in.

A scheme's case never matters (RFC 3986: ``HTTP://`` is ``http://``).
"""

from __future__ import annotations

import re
import urllib.parse

#: A value that starts like a URL ("ftp://", "HTTP://") is one, never a file name.
URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")

_FETCHED_BY_FAL = ("http://", "https://", "data:")


def is_remote(ref: str) -> bool:
    """True for what fal can fetch itself (an http(s) URL or a data URI), False for a local
    path. A scheme's case does not matter (``HTTP://`` is a URL, as :func:`checked_url` says)."""
    return ref[:8].lower().startswith(_FETCHED_BY_FAL)


def is_data_uri(ref: str) -> bool:
    """A ``data:`` URI (the image's bytes in the reference itself), any case."""
    return ref[:5].lower() == "data:"


def looks_like_url(ref: str) -> bool:
    """Names a scheme (``x://``): a URL, never a file name."""
    return bool(URL_SCHEME.match(ref))


def is_url(ref: str) -> bool:
    """Not a local file: a URL of any scheme, or a data URI."""
    return looks_like_url(ref) or is_data_uri(ref)


def checked_url(raw: str) -> tuple[str, str]:
    """``raw`` (which names a scheme) as the URL to send, or why fal could not fetch it.

    Checked at plan time (a shot list's row and column, or --end-image, at hand) because a
    URL is sent as is: a bad one would otherwise pass the plan, cost a submit and fail on
    fal as a download error naming neither. The scheme comes back lower-cased."""
    parts = urllib.parse.urlsplit(raw)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        return raw, "is not an http(s) URL"
    try:
        host, _port = parts.hostname, parts.port  # a port that is not a number raises
    except ValueError:
        return raw, "has a port that is not a number"
    if not host:
        return raw, "has no host"
    return scheme + raw[len(parts.scheme) :], ""


def image_name(ref: str) -> str:
    """The name a reference ends in: a path's last part (``/`` or ``\\``), a URL path's last
    part (without query or fragment, %-escapes decoded; the host when the path is empty),
    ``data:<media type>`` for a data URI."""
    if is_data_uri(ref):
        return "data:" + (ref[5:].split(",", 1)[0].split(";", 1)[0] or "text/plain")
    if looks_like_url(ref):
        parts = urllib.parse.urlsplit(ref)
        last = parts.path.rstrip("/").rsplit("/", 1)[-1]
        return urllib.parse.unquote(last) or parts.netloc or ref
    return ref.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1] or ref


def image_stem(ref: str) -> str:
    """:func:`image_name` without its extension (``a.png`` -> ``a``); "" for a data URI."""
    if is_data_uri(ref):
        return ""
    name = image_name(ref)
    stem, dot, _ext = name.rpartition(".")
    return stem if dot and stem.strip(".") else name
