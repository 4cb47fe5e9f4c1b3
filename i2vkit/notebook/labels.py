"""A widget's label that shows its help on hover (every field of the form has one)."""

from __future__ import annotations

from typing import Any


def described(label: str, help_text: str) -> dict[str, Any]:
    """A widget's label that shows ``help_text`` on hover. ipywidgets 8 puts a labelled
    widget's ``tooltip`` nowhere (and writes "null" into the label's title when there is
    none), so the label is a span carrying its own title."""
    from .. import gallery as g

    return {
        "description": f"<span title='{g.esc(help_text)}'>{g.esc(label)}</span>",
        "description_allow_html": True,
        "tooltip": help_text,
    }
