"""Rendering the tables of `evaluate` and `bucket`: terminal (rich), markdown, csv and json.

The commands build plain `Table`s (cells are floats, None or already formatted text) and one
flat list of records for csv/json; this module only decides how they look. Tables show 3
decimals, as the paper does; csv and json keep every digit.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from dataclasses import dataclass, field
from typing import IO, Sequence

from lrp.errors import UsageError

FORMATS = ("table", "markdown", "csv", "json")


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list] = field(default_factory=list)
    # Columns (by index) whose text is left-aligned; numbers are right-aligned.
    text_columns: int = 1
    # Columns shown only on the terminal, and only where they fit (the first dropped when narrow).
    optional: tuple[str, ...] = ()
    # Text columns that may be shortened with an ellipsis on a narrow terminal (default: all of
    # them). Numbers are never shortened: a column of numbers is dropped whole instead.
    shrinkable: tuple[str, ...] | None = None

    def paper(self) -> "Table":
        """The table without its terminal-only columns (markdown and HTML)."""
        keep = [i for i, c in enumerate(self.columns) if c not in self.optional]
        return Table(self.title, [self.columns[i] for i in keep], [[r[i] for i in keep] for r in self.rows], self.text_columns)


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)} (got {fmt!r})")
    return fmt


def cell_text(value, none_text: str = "n/a", digits: int = 3) -> str:
    if value is None:
        return none_text
    if isinstance(value, float):
        if math.isnan(value):
            return none_text
        return f"{value:.{digits}f}"
    return str(value)


def percent_text(value: float | None) -> str:
    """A percentage change as "+12.3%" (or "n/a" where the baseline is 0 or undefined)."""
    return "n/a" if value is None else f"{value:+.1f}%"


def render_markdown(tables: Sequence[Table], notes: Sequence[str] = ()) -> str:
    parts = []
    for t in (t.paper() for t in tables):
        parts.append(f"### {t.title}\n")
        parts.append("| " + " | ".join(t.columns) + " |")
        aligns = [":---" if i < t.text_columns else "---:" for i in range(len(t.columns))]
        parts.append("| " + " | ".join(aligns) + " |")
        for row in t.rows:
            parts.append("| " + " | ".join(cell_text(c).replace("|", "\\|") for c in row) + " |")
        parts.append("")
    parts.extend(f"{n}  " for n in notes)
    return "\n".join(parts).rstrip() + "\n"


def render_html(tables: Sequence[Table], notes: Sequence[str] = ()) -> str:
    """Tables as HTML fragments (escaped text, numbers right-aligned), for `lrp report`."""
    import html

    parts = []
    for t in (t.paper() for t in tables):
        parts.append(f"<h3>{html.escape(t.title)}</h3>\n<table>")
        parts.append("<tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in t.columns) + "</tr>")
        for row in t.rows:
            cells = (
                f"<td>{html.escape(cell_text(c))}</td>" if i < t.text_columns else f'<td class="num">{html.escape(cell_text(c))}</td>'
                for i, c in enumerate(row)
            )
            parts.append("<tr>" + "".join(cells) + "</tr>")
        parts.append("</table>")
    parts.extend(f"<p>{html.escape(n)}</p>" for n in notes)
    return "\n".join(parts) + "\n"


# --------------------------------------------------------------------------------------------
# The terminal: fit the width by shortening labels and dropping whole columns, never digits

MIN_TEXT = 12  # a shortened label keeps at least this many characters
MIN_HEADER = 4  # a header over numbers is shortened to its numbers' width, but not below this


def terminal_width(out: IO) -> int | None:
    """COLUMNS when set, else the terminal's width; None (no limit) for a pipe or a file."""
    import os
    import shutil

    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    if hasattr(out, "isatty") and out.isatty():
        return shutil.get_terminal_size().columns
    return None


@dataclass
class Layout:
    """What one table shows at a given width: the column indices, their widths and headers."""

    keep: list[int]
    widths: list[int]
    headers: list[str]
    dropped: list[str]


def _line_width(widths: Sequence[int]) -> int:
    # rich's SIMPLE_HEAD box: one space of padding either side of each cell, an edge at both
    # ends and a separator between columns.
    return sum(widths) + 3 * len(widths) + 1


def _shorten(text: str, width: int) -> str:
    from rich.cells import cell_len

    if cell_len(text) <= width:
        return text
    while text and cell_len(text + "…") > width:
        text = text[:-1]
    # Never end on part of a number ("x1-…" could be read as a value): cut before it.
    while text and text[-1] in "0123456789.+-":
        text = text[:-1]
    return text + "…"


def layout(t: Table, width: int | None) -> Layout:
    """Widths that fit `width`: shorten headers over numbers, then labels, then drop columns
    (terminal-only ones first, then from the right), keeping at least the labels and one value."""
    from rich.cells import cell_len

    n = len(t.columns)
    cells = [[cell_text(r[i]) for r in t.rows] for i in range(n)]
    value_width = [max([cell_len(c) for c in col] or [0]) for col in cells]
    natural = [max(cell_len(t.columns[i]), value_width[i]) for i in range(n)]
    shrinkable = set(t.columns[: t.text_columns] if t.shrinkable is None else t.shrinkable)

    def floor(i: int) -> int:
        """The narrowest a column may get."""
        if i < t.text_columns:
            return min(natural[i], MIN_TEXT) if t.columns[i] in shrinkable else natural[i]
        return max(value_width[i], min(cell_len(t.columns[i]), MIN_HEADER))

    keep = list(range(n))
    droppable = [i for i in range(n - 1, t.text_columns - 1, -1) if t.columns[i] in t.optional]
    droppable += [i for i in range(n - 1, t.text_columns, -1) if t.columns[i] not in t.optional]
    dropped: list[str] = []
    while True:
        widths = [natural[i] for i in keep]
        if width is None or _line_width(widths) <= width:
            break
        # Shorten the widest shrinkable columns first, one character at a time, down to their floor.
        excess = _line_width(widths) - width
        for k in sorted(range(len(keep)), key=lambda k: -(widths[k] - floor(keep[k]))):
            cut = min(excess, widths[k] - floor(keep[k]))
            widths[k] -= cut
            excess -= cut
        if excess <= 0 or not droppable:
            break
        i = droppable.pop(0)
        keep.remove(i)
        dropped.append(t.columns[i])
    headers = [_shorten(t.columns[i], w) for i, w in zip(keep, widths)]
    return Layout(keep, widths, headers, dropped)


def render_terminal(tables: Sequence[Table], out: IO, notes: Sequence[str] = (), width: int | None = None) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table as RichTable

    width = terminal_width(out) if width is None else width
    layouts = [layout(t, width) for t in tables]
    # The console is never narrower than a table, so rich itself never squeezes a cell.
    needed = max([_line_width(lay.widths) for lay in layouts] + [width or 0, 40])
    # No markup: a label such as "LR 1/4 [lr4.json]" is text, not a rich style tag to swallow.
    console = Console(file=out, width=needed if width is None else max(width, needed), highlight=False, soft_wrap=False, markup=False)
    for t, lay in zip(tables, layouts):
        title = t.title if width is None else _shorten(t.title, max(10, width - 1))
        rt = RichTable(title=title, box=box.SIMPLE_HEAD, title_justify="left", title_style="bold")
        for i, w, h in zip(lay.keep, lay.widths, lay.headers):
            text = i < t.text_columns
            rt.add_column(h, justify="left" if text else "right", no_wrap=True, width=w, overflow="ellipsis" if text else "fold")
        for row in t.rows:
            rt.add_row(*(_shorten(cell_text(row[i]), w) if i < t.text_columns else cell_text(row[i]) for i, w in zip(lay.keep, lay.widths)))
        console.print(rt)
        shown_dropped = [c for c in lay.dropped if c not in t.optional]
        if shown_dropped:
            console.print(
                f"(not shown at {width} columns: {', '.join(shown_dropped)}; use a wider terminal or --format markdown/json)",
                width=width,
            )
    for n in notes:
        console.print(n, width=width)


def render_csv(columns: Sequence[str], records: Sequence[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for r in records:
        writer.writerow({k: ("" if v is None else (repr(v) if isinstance(v, float) else v)) for k, v in r.items()})
    return buf.getvalue()


def render_json(data) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def emit(tables: Sequence[Table], fmt: str, output=None, *, csv_columns=None, records=None, json_data=None, notes=()) -> None:
    """Write the chosen format to stdout, or atomically to `output`."""
    from lrp.outputs import atomic_write_text

    if fmt == "json":
        text = render_json(json_data)
    elif fmt == "csv":
        text = render_csv(csv_columns, records)
    elif fmt == "markdown":
        text = render_markdown(tables, notes)
    else:
        if output is None:
            render_terminal(tables, sys.stdout, notes)
            sys.stdout.flush()
            return
        buf = io.StringIO()
        render_terminal(tables, buf, notes)
        text = buf.getvalue()
    if output is None or str(output) == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        atomic_write_text(output, text)
