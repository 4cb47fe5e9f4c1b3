"""CSV cells a spreadsheet will not run: every CSV i2vkit writes, and the shot lists it reads.

Why: ``jobs.csv`` and ``--write-shots`` files are made to be opened in a spreadsheet and
sent on; a prompt such as ``=HYPERLINK("http://...")`` or ``@SUM(1+1)`` written as is
would run there as a formula. A cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or
a carriage return is written with a leading apostrophe, the mark spreadsheets themselves
use for "text, not a formula". So that reading a shot list back gives exactly what was
written, the escape is unambiguous: a cell that already starts with an apostrophe
followed by one of those characters (or by a second apostrophe) gets one more, and
reading removes exactly one apostrophe from such a cell and from no other. An apostrophe
before anything else (``'Tis the season``) is kept as typed, both ways.
"""

from __future__ import annotations

#: What makes a spreadsheet read a cell as a formula (or hide its start).
TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
ESCAPE = "'"


def _escaped(text: str) -> bool:
    """True for a cell as written by :func:`safe_cell` for a text it had to protect."""
    return text.startswith(ESCAPE) and text[1:2] in (*TRIGGERS, ESCAPE) and len(text) > 1


def safe_cell(value: object) -> object:
    """``value`` as a CSV cell no spreadsheet runs; numbers and other non-text pass as is."""
    if not isinstance(value, str):
        return value
    if value.startswith(TRIGGERS) or _escaped(value):
        return ESCAPE + value
    return value


def read_cell(text: str) -> str:
    """A cell as :func:`safe_cell` wrote it, back to the text it was given."""
    return text[1:] if _escaped(text) else text
