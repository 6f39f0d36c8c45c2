"""One-line table cells of plain text, rendered without Rich's layout pipeline.

Textual's DataTable renders every cell through `console.render_lines(Styled(Padding(cell)))`:
wrapping, justification and cropping for a one-line label, ~60 us a cell on 2 cores. After an edit
every cell of the plans table is new (its caches are keyed by the table's update count), so the
~300 cells on screen took ~20 ms of the ~30 ms the table's repaint costs, inside the TUI's
edit -> table budget (`planner bench --tui`). A cell that is one line of unmarked text which fits
its column (every cell the plans table makes) needs none of that: its segments are the text
justified in the column, the padding, and the DataTable's styles layered as `Styled` layers them.

`plain_cell_lines` builds exactly the segments the Rich pipeline gives (tests compare the two on
every cell of a real table and on a grid of texts, styles, justifications and widths); anything
else returns None and takes the DataTable's own path.
"""

from __future__ import annotations

from rich.cells import cell_len
from rich.console import Console
from rich.segment import Segment
from rich.style import Style
from rich.text import Text

SegmentLines = list[list[Segment]]
JUSTIFIED = ("left", "right", "center")


def plain_cell_lines(console: Console, cell: object, pre_style: Style, post_style: Style, width: int,
                     padding: int) -> SegmentLines | None:
    """The one line `console.render_lines(Styled(Padding(cell, (0, padding)), pre_style, post_style),
    options of `width` x 1 without wrapping)` gives, or None when `cell` is not one line of plain
    text that fits (`Text` without spans, tabs or trailing spaces, no wider than the column)."""
    if not isinstance(cell, Text) or cell.spans or cell.end not in ("", "\n") or padding < 0 or width < 1:
        return None
    plain = cell.plain
    inner = width - 2 * padding
    used = cell_len(plain)
    justify = cell.justify
    if (inner < used or "\n" in plain or "\t" in plain or plain != plain.rstrip()
            or justify not in (None, "default", *JUSTIFIED)):
        return None
    pad_style = console.get_style("none")
    text_style = console.get_style(cell.style) if cell.style else None
    excess = inner - used
    body: list[Segment]
    if not plain:
        # Rich drops an empty text's style span and, unjustified, keeps its empty segment
        if inner == 0:
            body = [Segment("")]
        elif justify in JUSTIFIED:
            body = [Segment(" " * inner, text_style)]
        else:
            body = ([] if text_style else [Segment("")]) + [Segment(" " * inner, pad_style)]
    elif justify == "right":
        body = [Segment(" " * excess + plain, text_style)]
    elif justify == "left":
        body = [Segment(plain + " " * excess, text_style)]
    elif justify == "center":
        body = [Segment(" " * (excess // 2) + plain + " " * (excess - excess // 2), text_style)]
    else:  # unjustified: the padding to the column's width is the Padding's, not the text's
        body = [Segment(plain, text_style)] + ([Segment(" " * excess, pad_style)] if excess else [])
    side = [Segment(" " * padding, pad_style)] if padding else []
    return [list(Segment.apply_style(side + body + side, style=pre_style, post_style=post_style))]
