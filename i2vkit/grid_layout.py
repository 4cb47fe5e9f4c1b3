"""How the comparison grid is laid out on a page, whatever its axes are.

:mod:`i2vkit.compare` decides *what* goes on the rows and the columns; this module decides
how the result sits on the page, the same way in the notebook (an ipywidgets GridBox, whose
children are the header and slot widgets) and in the report (an HTML table):

* the grid lives in its own scroll box (:data:`SCROLL`), never wider than the output area
  and never taller than the window, so a wide grid scrolls inside itself instead of being cut
  off at the notebook's right edge with its scrollbar thousands of pixels further down;
* column headers stick to the top of that box and row labels to its left edge
  (``position: sticky`` on the grid's own children; a white shadow covers the gaps between
  cells, so nothing shows through beside a header), so after scrolling to the last row
  and column the user still reads which model and take, which image and prompt;
* a row label is the key's parts one per line (the image name in bold, the prompt in plain
  text), in a column wide enough to read;
* cards take the width of their column (a column is at least :data:`CARD_MIN_PX` wide), a
  player's height follows from its width, and a player is never taller than half the
  window: the first screen shows whole clips side by side.
"""

from __future__ import annotations

from collections.abc import Sequence

from .gallery import esc

#: A column is at least this wide (a card's width), and at most CARD_MAX_PX unless it holds
#: several cards: wide enough to judge a clip, small enough that rows of whole clips fit.
CARD_MIN_PX, CARD_MAX_PX = 190, 340
#: The row labels' column.
LABEL_MIN_PX, LABEL_MAX_PX = 150, 220
#: The scroll box's class, and the sticky classes of the headers (grid children).
SCROLL = "i2v-scroll"
STICKY_TOP = "i2v-sticky-top"
STICKY_LEFT = "i2v-sticky-left"

CSS = """
.i2v-compare{font:12px/1.35 system-ui,sans-serif;color:#222}
.i2v-scroll{overflow:auto;max-width:100%;max-height:80vh;min-width:0;box-sizing:border-box;
 border:1px solid #e0e0e0;border-radius:6px;background:#fff;position:relative}
.i2v-grid{border-collapse:separate;border-spacing:6px;table-layout:fixed;width:100%}
.i2v-grid th.i2v-corner{width:170px}
.i2v-grid th{font-weight:400;text-align:left;vertical-align:top;padding:0;background:#fff}
.i2v-grid td{vertical-align:top;padding:0}
.i2v-sticky-top{position:sticky;top:0;z-index:2;background:#fff;
 box-shadow:0 -6px 0 #fff,0 6px 0 #fff}
.i2v-sticky-left{position:sticky;left:0;z-index:1;background:#fff;
 box-shadow:-6px 0 0 #fff,6px 0 0 #fff}
.i2v-sticky-top.i2v-sticky-left{z-index:3;
 box-shadow:0 -6px 0 #fff,0 6px 0 #fff,-6px 0 0 #fff,6px 0 0 #fff,6px 6px 0 #fff,-6px -6px 0 #fff}
.i2v-colhead{font-weight:600;padding:5px 6px;background:#f3f3f3;border-radius:4px;
 overflow-wrap:anywhere;display:-webkit-box;-webkit-box-orient:vertical;-webkit-line-clamp:3;
 overflow:hidden}
.i2v-rowhead{padding:5px 6px;background:#f3f3f3;border-radius:4px;min-width:130px;
 max-width:220px;box-sizing:border-box}
.i2v-rowhead .i2v-key{overflow-wrap:anywhere;line-height:1.3}
.i2v-rowhead .i2v-key:first-child{font-weight:600}
.i2v-rowhead .i2v-key+.i2v-key{color:#333;margin-top:2px;display:-webkit-box;
 -webkit-box-orient:vertical;-webkit-line-clamp:6;overflow:hidden}
.i2v-slot{display:flex;flex-wrap:wrap;gap:6px}
.i2v-cell{border:1px solid #ccc;border-radius:6px;padding:5px;background:#fff;
 flex:1 1 190px;min-width:170px;box-sizing:border-box;line-height:1.35;
 display:flex;flex-direction:column;gap:3px}
.i2v-cell.i2v-keeper{border:2px solid #f9a825;background:#fffbea}
.i2v-cell video{width:100%;height:auto;aspect-ratio:16/10;max-height:45vh;object-fit:contain;
 background:#000;border-radius:4px}
.i2v-box{aspect-ratio:16/10;max-height:45vh;border-radius:4px;padding:6px;box-sizing:border-box;
 overflow:auto;overflow-wrap:anywhere;display:flex;align-items:center;justify-content:center;
 text-align:center}
.i2v-fail{color:#c62828;background:#fdecea}
.i2v-wait{color:#555;background:#f3f3f3}
.i2v-meta{color:#444;font-size:11px}
.i2v-prompt{color:#333;font-size:11px}
.i2v-play-row{margin-top:4px;font:12px system-ui,sans-serif;cursor:pointer}
.i2v-gridbox{overflow:auto;max-width:100%;max-height:80vh;min-width:0;box-sizing:border-box;
 border:1px solid #e0e0e0;border-radius:6px;background:#fff;padding:0 6px 6px 0;
 align-items:start}
.i2v-gridbox > .i2v-sticky-top,.i2v-gridbox > .i2v-sticky-left{margin:0;align-self:stretch}
.i2v-gridbox .i2v-cardbox{flex:1 1 190px;min-width:170px;margin:0}
.i2v-gridbox .i2v-cardbox .i2v-cell{height:100%}
.i2v-gridbox .widget-html,.i2v-gridbox .widget-html-content{height:auto;line-height:inherit}
"""


def columns_template(n_columns: int) -> str:
    """The GridBox's columns: the row labels, then ``n_columns`` columns that share the width
    (none narrower than a card nor wider than :data:`CARD_MAX_PX`; more than fit scroll
    inside the box)."""
    return (
        f"minmax({LABEL_MIN_PX}px, {LABEL_MAX_PX}px) "
        f"repeat({max(1, n_columns)}, minmax({CARD_MIN_PX}px, {CARD_MAX_PX}px))"
    )


def table_min_width(n_columns: int) -> int:
    """The report's table: as wide as the page, but never so narrow that a card shrinks
    below :data:`CARD_MIN_PX` (its columns share the width equally)."""
    return 170 + 6 + max(1, n_columns) * (CARD_MIN_PX + 6) + 6


def column_header(label: str) -> str:
    """A column's header: at most three lines in view (a long prompt), all of it on hover."""
    return f"<div class='i2v-colhead' title='{esc(label)}'>{esc(label)}</div>"


def row_label(parts: Sequence[str], row_id: str) -> str:
    """A row's label: each part of its key on its own line (the first in bold), and its
    *play row* button (the page script starts the row's players)."""
    keys = "".join(f"<div class='i2v-key'>{esc(p)}</div>" for p in parts) or (
        "<div class='i2v-key'>all</div>"
    )
    title = esc(" · ".join(parts) or "all")
    return (
        f"<div title='{title}'>{keys}<button type='button' class='i2v-play-row' "
        f"data-row='{esc(row_id)}'>▶ play row</button></div>"
    )
