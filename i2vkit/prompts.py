"""Read the prompts file: one prompt per line.

The format is deliberately the simplest thing a non-programmer can edit in any
editor: one prompt per line, blank lines and ``#`` comments ignored. Files come
from Notepad, Word exports and Macs, so a UTF-8 BOM and CRLF / CR line endings
are accepted; anything that is not UTF-8 is refused with the byte position,
because guessing an encoding silently would put mojibake into paid prompts.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

from .errors import InputError
from .images import existing_path, typed_path

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_BOM = "\ufeff"


def parse_prompts(text: str, *, source: str = "the prompts text") -> list[str]:
    """Split ``text`` into prompts: one per line, stripped; blanks and ``#`` lines dropped.

    Only ``\\r\\n``, ``\\r`` and ``\\n`` end a line (not the exotic separators
    ``str.splitlines`` also honours), so a prompt is never cut in two by a stray
    form feed. ``source`` names the text in the error raised when no prompt is
    left, because an empty batch is always a mistake.
    """
    if text.startswith(_BOM):
        text = text[1:]
    prompts: list[str] = []
    for line in _LINE_BREAK.split(text):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        prompts.append(line)
    if not prompts:
        raise InputError(
            f"No prompts found in {source}: it is empty or holds only blank lines and "
            "# comments. Write one prompt per line (lines starting with # are ignored)."
        )
    return prompts


def read_prompts(path: str | os.PathLike) -> list[str]:
    """Read a UTF-8 prompts file (BOM and CRLF allowed) and return its prompts in order.

    Raises :class:`InputError` naming the file when it is missing, a folder,
    unreadable, not UTF-8 (with the line and byte offset of the first bad byte)
    or holds no prompt.
    """
    p = existing_path(
        typed_path(path), "Prompts file", "create a text file with one prompt per line"
    )
    if p.is_dir():
        raise InputError(
            f"Prompts file {p} is a folder, not a file. Pass the text file that holds "
            "one prompt per line."
        )
    try:
        data = p.read_bytes()
    except PermissionError:
        raise InputError(
            f"Prompts file {p} cannot be read (permission denied). Fix its permissions "
            "or copy it somewhere you own."
        ) from None
    except OSError as exc:
        raise InputError(f"Prompts file {p} cannot be read ({exc.strerror or exc}).") from None

    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InputError(
            f"Prompts file {p} is saved as UTF-16 (Windows 'Unicode'), not UTF-8. "
            "Save it again as UTF-8 (in Notepad: File > Save As > Encoding: UTF-8)."
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        bad = data[exc.start : exc.start + 1].hex()
        raise InputError(
            f"Prompts file {p} is not valid UTF-8: byte 0x{bad} at byte offset {exc.start} "
            f"(line {line}) cannot be decoded. Save the file as UTF-8 (in most editors: "
            "Save As > Encoding: UTF-8) and try again."
        ) from None
    return parse_prompts(text, source=str(p))


def check_prompt_lengths(
    prompts: Sequence[str], max_chars: int, model_name: str, unit: str = "characters"
) -> None:
    """Refuse prompts longer than the model accepts, before anything is uploaded or paid for.

    fal would reject them one job at a time with a 422; listing every offending
    prompt number (1-based, as in the file without blanks and comments) up front
    lets the user fix them all in one edit. ``unit`` is "characters" or "bytes" (UTF-8
    bytes, how PixVerse counts: a prompt of accented or CJK text can fit in characters
    and still be too long there).
    """
    in_bytes = unit == "bytes"
    sizes = [len(p.encode("utf-8")) if in_bytes else len(p) for p in prompts]
    too_long = [(i, n) for i, n in enumerate(sizes, start=1) if n > max_chars]
    if not too_long:
        return
    label, short = ("UTF-8 bytes", "bytes") if in_bytes else ("characters", "chars")
    numbers = ", ".join(str(i) for i, _ in too_long[:20])
    shown = ", ".join(f"#{i} ({n} {short})" for i, n in too_long[:20])
    more = f" and {len(too_long) - 20} more" if len(too_long) > 20 else ""
    raise InputError(
        f"prompt(s) {numbers}{more} are longer than the {max_chars} {label} model "
        f"{model_name} accepts: {shown}; shorten them (prompt numbers count only "
        "non-blank, non-comment lines)."
    )
