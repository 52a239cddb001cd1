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
    for t in tables:
        parts.append(f"### {t.title}\n")
        parts.append("| " + " | ".join(t.columns) + " |")
        aligns = [":---" if i < t.text_columns else "---:" for i in range(len(t.columns))]
        parts.append("| " + " | ".join(aligns) + " |")
        for row in t.rows:
            parts.append("| " + " | ".join(cell_text(c).replace("|", "\\|") for c in row) + " |")
        parts.append("")
    parts.extend(f"{n}  " for n in notes)
    return "\n".join(parts).rstrip() + "\n"


def render_terminal(tables: Sequence[Table], out: IO, notes: Sequence[str] = ()) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table as RichTable

    is_tty = hasattr(out, "isatty") and out.isatty()
    # Piped output keeps whole rows instead of wrapping them to 80 columns.
    console = Console(file=out, width=None if is_tty else 400, highlight=False, soft_wrap=False)
    for t in tables:
        rt = RichTable(title=t.title, box=box.SIMPLE_HEAD, title_justify="left", title_style="bold")
        for i, c in enumerate(t.columns):
            rt.add_column(c, justify="left" if i < t.text_columns else "right", no_wrap=True)
        for row in t.rows:
            rt.add_row(*(cell_text(c) for c in row))
        console.print(rt)
    for n in notes:
        console.print(n)


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
