"""Find the images a batch will animate.

Every image costs an upload and a paid fal job, so a file that is not really an
image (a renamed PDF, a half-copied download, a 0-byte placeholder) must be caught
here, before any money is spent. Such files are *reported* in
:attr:`ScanResult.skipped` with a sentence saying why, never raised: one bad file
must not stop a batch of a hundred good ones. Only problems with the folder
itself (missing, a file, a Windows path on Linux, nothing usable inside) raise
:class:`~i2vkit.errors.InputError`.
"""

from __future__ import annotations

import io
import os
import re
import stat
import sys
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from .errors import ImageDataError, InputError
from .imagedata import check_data, looks_whole

#: Extensions we consider at all (compared lower-case). Anything else is ignored.
IMAGE_EXTENSIONS: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".webp"})

#: Pillow format name -> (our format name, MIME type). MPO is what Pillow calls
#: the multi-picture JPEGs many phones and cameras write; they are plain JPEGs to
#: every decoder that ignores the extra frames, fal's included.
ACCEPTED_FORMATS: dict[str, tuple[str, str]] = {
    "JPEG": ("jpeg", "image/jpeg"),
    "MPO": ("jpeg", "image/jpeg"),
    "PNG": ("png", "image/png"),
    "WEBP": ("webp", "image/webp"),
}

#: Images above this many pixels are skipped: no i2v model needs them, uploading
#: them is slow, and a tiny file claiming huge dimensions is a decompression bomb.
DEFAULT_MAX_PIXELS: int = 100_000_000

_FIX = "re-export it as JPEG, PNG or WebP, or remove it from the folder"


@dataclass(frozen=True)
class ImageFile:
    """One confirmed image, with what the upload cache needs to recognise it later."""

    path: Path  # absolute
    size: int  # bytes
    mtime_ns: int
    format: str  # "jpeg" | "png" | "webp": the real format, whatever the extension says
    width: int
    height: int
    content_type: str  # MIME type matching ``format``
    #: False when only the header and the file's end were read (a run's plan): the run
    #: checks the data (:func:`check_data_of`) before it uploads the image.
    data_checked: bool = True

    @property
    def name(self) -> str:
        """The file name, for progress lines and job tables."""
        return self.path.name


@dataclass(frozen=True)
class Skipped:
    """A file (or sub-folder) that looked like an image but will not be used, and why."""

    path: Path
    reason: str  # a user-readable sentence that ends with what to do


@dataclass
class ScanResult:
    """Everything :func:`scan_images` found, so callers can show the skips to the user."""

    images: list[ImageFile]
    skipped: list[Skipped]
    ignored: int = 0  # files without an image extension (notes, .txt prompts, ...)
    folder: Path | None = None
    subfolders: int = field(default=0, repr=False)  # seen but not entered (non-recursive)

    def skipped_summary(self, limit: int = 10) -> str:
        """One line per skipped file, so a CLI or notebook can print why in one call."""
        lines = [f"{s.path.name}: {s.reason}" for s in self.skipped[:limit]]
        if len(self.skipped) > limit:
            lines.append(f"... and {len(self.skipped) - limit} more")
        return "\n".join(lines)


# --------------------------------------------------------------------------- paths

_WINDOWS_DRIVE = re.compile(r"^([A-Za-z]):[\\/]?(.*)$")


def typed_path(value: str | os.PathLike) -> str:
    """A path argument as the user typed it (bytes decoded as the OS does)."""
    raw = os.fspath(value)
    return os.fsdecode(raw) if isinstance(raw, bytes) else raw


def existing_path(raw: str, what: str, create: str) -> Path:
    """``raw`` made absolute, or an InputError "{what} not found" that says why (a Windows
    path typed on Linux) or where it was looked for and what to ``create``."""
    path = Path(os.path.abspath(os.path.expanduser(raw)))
    if not path.exists():
        hint = windows_path_hint(raw)
        if hint:
            raise InputError(f"{what} not found: {raw}. {hint}.")
        raise InputError(
            f"{what} not found: {path}. Check the path (it is resolved from the current "
            f"directory {os.getcwd()}) or {create}."
        )
    return path


def windows_path_hint(raw: str, platform: str = sys.platform) -> str | None:
    """If ``raw`` looks like a Windows path, say which Linux/WSL path to use instead.

    Users on WSL or in a Linux notebook often paste a path from Explorer
    (``C:\\Users\\me\\pics``). On Linux that is just a strange relative file name
    that does not exist, and "not found" alone would not tell them why.
    Returns ``None`` when ``raw`` does not look like a Windows path, and on any platform
    but Linux (`platform` as in ``sys.platform``): on Windows such a path is simply a
    path, and the ``/mnt/c`` advice is WSL's.
    """
    if not platform.startswith("linux"):
        return None
    m = _WINDOWS_DRIVE.match(raw)
    if m:
        drive, rest = m.group(1).lower(), m.group(2).replace("\\", "/").strip("/")
        suggestion = f"/mnt/{drive}/{rest}" if rest else f"/mnt/{drive}"
        return (
            f"{raw!r} looks like a Windows path. On Linux/WSL use the Linux form, "
            f"for example {suggestion}"
        )
    if raw.startswith("\\\\"):
        return (
            f"{raw!r} looks like a Windows network path. Mount the share on Linux and "
            "use the mounted path instead"
        )
    if "\\" in raw:
        return (
            f"{raw!r} contains backslashes, which look like a Windows path. On Linux "
            f"use forward slashes, for example {raw.replace(chr(92), '/')}"
        )
    return None


def _natural_key(rel: str) -> tuple:
    """Sort key so ``img2`` comes before ``img10``, case-insensitively, per path part."""
    parts = []
    for component in rel.split("/"):
        chunks = re.split(r"(\d+)", component.casefold())
        parts.append(tuple((0, int(c), c) if c.isdigit() else (1, 0, c) for c in chunks if c))
    return (tuple(parts), rel)


# ------------------------------------------------------------------------ checking


#: Decides whether a file that was decoded in full before, unchanged since (same path, size
#: and mtime), may skip the full decode now; :func:`i2vkit.planning.plan_batch` passes one that
#: trusts the upload cache.
Trusted = Callable[[Path, os.stat_result], bool]

#: Files this process has checked in full, by (path, size, mtime_ns): the notebook form
#: re-plans on every change, and reading a folder of photos again each time is seconds.
_decoded: set[tuple[str, int, int]] = set()

#: Threads that check images at once: the checks run in C code that releases the GIL.
CHECK_WORKERS: int = max(
    1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
)


def check_image(
    path: Path, max_pixels: int, *, trusted: Trusted | None = None, defer: bool = False
) -> ImageFile | Skipped:
    """Open one candidate with Pillow and decide whether it is a usable image.

    All the image data is read, not only its header: a JPEG or PNG cut short (a download
    or copy that stopped half-way) has a perfect header and would be uploaded and paid
    for, and only fal would find out (:func:`i2vkit.imagedata.check_data`: as cheap as
    each format allows). A file already checked by this process, or one ``trusted``
    vouches for (unchanged since it was last checked and uploaded), only has its header
    read. With ``defer`` (a run's plan) a JPEG that ends as a whole file does is passed
    with ``data_checked=False``: the run checks its data just before uploading it, so
    uploads start while later photos are still being checked. PNG and WebP are checked
    here in full even then: a PNG can lose pixel data with every chunk and checksum
    intact, and a damaged image is a line of the plan (skipped), never a failed job.
    """
    st = _regular_file(path)
    if isinstance(st, Skipped):
        return st
    try:
        with warnings.catch_warnings():
            # We apply our own pixel limit below; Pillow's warning would only be noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with open(path, "rb") as f, Image.open(f) as im:
                pil_format = im.format or "unknown"
                width, height = im.size
                if width * height > max_pixels:
                    return Skipped(
                        path,
                        f"is too large ({width}x{height} = {width * height / 1e6:.0f} megapixels, "
                        f"limit {max_pixels / 1e6:.0f}); downscale it before running a batch",
                    )
                key = (str(path), st.st_size, st.st_mtime_ns)
                checked = key in _decoded or (trusted is not None and trusted(path, st))
                deferred = (
                    defer and pil_format == "JPEG" and looks_whole(path, pil_format, st.st_size)
                )
                if not checked and not deferred:
                    check_data(im, f, st.st_size)  # a truncated or damaged file raises here
                    _decoded.add(key)
                    checked = True
    except _UNREADABLE as exc:
        return Skipped(path, _why_unreadable(exc))

    if pil_format not in ACCEPTED_FORMATS:
        return Skipped(
            path,
            f"is really a {pil_format} image, which image-to-video models do not accept; {_FIX}",
        )
    fmt, content_type = ACCEPTED_FORMATS[pil_format]
    return ImageFile(
        path=path,
        size=st.st_size,
        mtime_ns=st.st_mtime_ns,
        format=fmt,
        width=width,
        height=height,
        content_type=content_type,
        data_checked=checked,
    )


#: What opening or reading an image raises when it is not a usable one (Pillow raises all of
#: these for truncated or corrupt data).
_UNREADABLE = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    ImageDataError,
    Image.DecompressionBombError,
)


def _why_unreadable(exc: BaseException) -> str:
    """The skip's sentence for what opening or reading an image raised."""
    if isinstance(exc, PermissionError):
        return "cannot be read (permission denied); fix its permissions or remove it"
    if isinstance(exc, Image.DecompressionBombError):
        return f"is too large to open safely ({exc}); downscale it before running a batch"
    if isinstance(exc, UnidentifiedImageError):
        return f"is not a valid image (cannot identify image file); {_FIX}"
    if "truncated" in str(exc).lower():
        return f"is not a valid image (its data is cut short: {exc}); {_FIX}"
    return f"is not a valid image ({exc}); {_FIX}"


def _regular_file(path: Path) -> os.stat_result | Skipped:
    """The file's stat, or why it cannot be an image (gone, unreadable, not a file, empty)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return Skipped(path, "is a broken link or vanished during the scan; fix or remove it")
    except PermissionError:
        return Skipped(path, "cannot be read (permission denied); fix its permissions or remove it")
    except OSError as exc:
        return Skipped(path, f"cannot be read ({exc.strerror or exc}); check the file or remove it")
    if not stat.S_ISREG(st.st_mode):
        return Skipped(path, "is not a regular file; remove it from the folder")
    if st.st_size == 0:
        return Skipped(path, f"is an empty file (0 bytes); {_FIX}")
    return st


def check_data_of(image: ImageFile, data: bytes) -> str | None:
    """Check the data of an image planned with ``defer``, from its bytes as just read (the
    run uploads these same bytes): None when it is whole, else why it is not (a sentence
    ending with what to do)."""
    if len(data) != image.size:
        return "changed since the batch was planned; run the batch again to plan it anew"
    source = io.BytesIO(data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(source) as im:
                if ACCEPTED_FORMATS.get(im.format or "", ("",))[0] != image.format:
                    return "changed since the batch was planned; run the batch again"
                check_data(im, source, len(data))
    except _UNREADABLE as exc:
        return _why_unreadable(exc)
    _decoded.add((str(image.path), image.size, image.mtime_ns))
    return None


def _resolve_folder(folder: str | os.PathLike) -> Path:
    """Turn the user's folder argument into an absolute Path, or explain what is wrong."""
    raw = typed_path(folder)
    if not raw.strip():
        raise InputError(
            "Images folder is empty (no path given). Pass the folder holding your images."
        )
    path = existing_path(raw, "Images folder", "create the folder and put your images in it")
    if path.is_file():
        raise InputError(
            f"Images folder {path} is a file, not a folder. Pass the folder that contains "
            "your images (for one image, put it in a folder of its own)."
        )
    if not path.is_dir():
        raise InputError(
            f"Images folder {path} is not a folder. Pass the folder holding your images."
        )
    if not os.access(path, os.R_OK | os.X_OK):
        raise InputError(
            f"Images folder {path} cannot be read (permission denied). Fix its permissions "
            "or copy the images to a folder you own."
        )
    return path


def scan_images(
    folder: str | os.PathLike,
    *,
    recursive: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    trusted: Trusted | None = None,
    defer: bool = False,
) -> ScanResult:
    """List the usable images in ``folder``, in natural order, and say why others were skipped.

    Files are picked by extension (jpg/jpeg/png/webp, any case) and then confirmed
    by Pillow, so the content decides: a PNG named ``.jpg`` is accepted as PNG, a
    ``.jpg`` full of random bytes is skipped. Hidden files and folders (names
    starting with ``.``) are ignored, as are files with other extensions (counted
    in ``ignored``). With ``recursive=True`` sub-folders are walked too; a
    symlinked folder is followed only when it points outside the tree and only
    once, so symlink loops end and no image is listed twice.

    Every image's data is read (see :func:`check_image`; ``trusted`` may vouch for
    unchanged files checked before; ``defer`` leaves it to the run), on
    :data:`CHECK_WORKERS` threads, one image per thread at a time: memory does not grow
    with the folder. Raises :class:`InputError` when the folder is unusable or holds no
    usable image.
    """
    root = _resolve_folder(folder)
    walk = _FolderWalk(root, recursive)
    images: list[ImageFile] = []
    skipped: list[Skipped] = []
    paths = list(walk.image_named_files())

    def check(path: Path) -> ImageFile | Skipped:
        return check_image(path, max_pixels, trusted=trusted, defer=defer)

    with ThreadPoolExecutor(min(CHECK_WORKERS, max(1, len(paths)))) as pool:
        results = list(pool.map(check, paths))
    for checked in results:
        if isinstance(checked, ImageFile):
            images.append(checked)
        else:
            skipped.append(checked)
    skipped.extend(walk.unreadable)
    images.sort(key=lambda i: _relative_key(i.path, root))
    skipped.sort(key=lambda s: _relative_key(s.path, root))
    result = ScanResult(images, skipped, walk.ignored, root, walk.subfolders)
    if not images:
        raise InputError(_no_images_message(root, result, recursive))
    return result


def _relative_key(path: Path, root: Path) -> tuple:
    """Natural order of a path below `root` (of the whole path when it is not below)."""
    try:
        rel = path.relative_to(root).as_posix()
    except ValueError:
        rel = path.as_posix()
    return _natural_key(rel)


@dataclass
class _FolderWalk:
    """The files :func:`scan_images` looks at, folder by folder in natural order, and what
    it passes over: hidden names, files of other extensions (``ignored``), sub-folders
    (counted; entered when ``recursive``) and folders it cannot read (``unreadable``)."""

    root: Path
    recursive: bool
    ignored: int = 0
    subfolders: int = 0
    unreadable: list[Skipped] = field(default_factory=list)
    _root_real: str = ""
    _visited: set[str] = field(default_factory=set)

    def image_named_files(self) -> Iterator[Path]:
        """Each file with an image extension, depth first (a folder's files, then its
        sub-folders'); the counts are complete once this is exhausted."""
        self._root_real = os.path.realpath(self.root)
        self._visited = {self._root_real}
        pending: list[Path] = [self.root]
        while pending:
            child_dirs: list[Path] = []
            for entry in self._entries(pending.pop()):
                if entry.name.startswith("."):
                    continue
                entry_path = Path(entry.path)
                try:
                    is_dir = entry.is_dir()  # follows symlinks
                except OSError:
                    is_dir = False
                if is_dir:
                    self.subfolders += 1
                    if self.recursive and self._enters(entry, entry_path):
                        child_dirs.append(entry_path)
                elif os.path.splitext(entry.name)[1].lower() not in IMAGE_EXTENSIONS:
                    self.ignored += 1
                else:
                    yield entry_path
            pending.extend(reversed(child_dirs))

    def _entries(self, folder: Path) -> list[os.DirEntry]:
        """The folder's entries in natural order; none (and a note why) if it is unreadable."""
        try:
            with os.scandir(folder) as it:
                return sorted(it, key=lambda e: _natural_key(e.name))
        except PermissionError:
            why = "is a folder that cannot be read (permission denied); fix its permissions"
        except OSError as exc:
            why = f"is a folder that cannot be read ({exc.strerror or exc})"
        self.unreadable.append(Skipped(folder, why))
        return []

    def _enters(self, entry: os.DirEntry, entry_path: Path) -> bool:
        """Walk into this sub-folder? A symlink back into the tree is not followed (its real
        path is walked anyway), and no folder is walked twice (so a symlink loop ends)."""
        real = os.path.realpath(entry_path)
        root_real = self._root_real
        inside = real == root_real or real.startswith(root_real.rstrip(os.sep) + os.sep)
        if entry.is_symlink() and inside:
            return False
        if real in self._visited:
            return False
        self._visited.add(real)
        return True


def _no_images_message(root: Path, result: ScanResult, recursive: bool) -> str:
    parts = [f"No usable images in {root}."]
    if result.skipped:
        n = len(result.skipped)
        parts.append(
            f"{n} file{'s' if n != 1 else ''} skipped:\n" + result.skipped_summary(limit=5) + "\n"
        )
    if result.ignored:
        parts.append(
            f"{result.ignored} file{'s' if result.ignored != 1 else ''} ignored because they "
            "are not .jpg, .jpeg, .png or .webp."
        )
    if result.subfolders and not recursive:
        parts.append(
            f"The folder has {result.subfolders} sub-folder(s); scan recursively "
            "(recursive=True / --recursive) to include them."
        )
    parts.append("Put .jpg, .png or .webp images in the folder and try again.")
    return " ".join(parts)
