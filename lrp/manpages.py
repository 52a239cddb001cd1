"""Man pages generated from the CLI itself, so they cannot drift from `--help`.

`python -m lrp.manpages man/` (or `make man`) writes man/lrp.1 and one man/lrp-<command>.1 per
subcommand; tests/test_cli.py fails when the committed pages are stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

try:  # typer >= 0.20 vendors click as typer._click
    from typer import _click as click
except ImportError:  # pragma: no cover - older typer on plain click
    import click

from lrp import __version__

DATE = "2026"  # fixed, so regenerating does not churn the files


def _escape(text: str) -> str:
    text = text.replace("\\", "\\e").replace("-", "\\-")
    # A line starting with . or ' would be read as a groff request.
    return "\n".join(("\\&" + line) if line[:1] in (".", "'") else line for line in text.splitlines())


def _page(prog: str, cmd: click.Command, ctx: click.Context) -> str:
    lines = [
        f'.TH "{prog.upper().replace(" ", "-")}" "1" "{DATE}" "lrp {__version__}" "lrp manual"',
        ".SH NAME",
        f"{prog.replace(' ', '-')} \\- {_escape((cmd.get_short_help_str(limit=200) or '').strip())}",
        ".SH SYNOPSIS",
        ".B " + _escape(prog),
        _escape(" ".join(cmd.collect_usage_pieces(ctx))),
        ".SH DESCRIPTION",
    ]
    for para in (cmd.help or "").strip().split("\n\n"):
        lines += [".PP", _escape(" ".join(l.strip() for l in para.splitlines()) if not para.startswith("  ") else para)]
    options = [p.get_help_record(ctx) for p in cmd.get_params(ctx)]
    options = [o for o in options if o]
    if options:
        lines.append(".SH OPTIONS")
        for flags, help_text in options:
            lines += [".TP", f"\\fB{_escape(flags)}\\fR", _escape(help_text or "")]
    if hasattr(cmd, "list_commands"):
        lines.append(".SH COMMANDS")
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            lines += [".TP", f"\\fB{name}\\fR", _escape(sub.get_short_help_str(limit=200))]
    lines += [".SH SEE ALSO", "lrp(1), the design contract DESIGN.md", ""]
    return "\n".join(lines)


def pages() -> dict[str, str]:
    """File name -> page text, for `lrp` and every subcommand (and sub-subcommand)."""
    import typer

    from lrp.cli import app

    root = typer.main.get_command(app)
    out = {}

    def walk(cmd: click.Command, prog: str, parent: click.Context | None):
        ctx = click.Context(cmd, info_name=prog.split()[-1], parent=parent)
        out[prog.replace(" ", "-") + ".1"] = _page(prog, cmd, ctx)
        if hasattr(cmd, "list_commands"):
            for name in cmd.list_commands(ctx):
                walk(cmd.get_command(ctx, name), f"{prog} {name}", ctx)

    walk(root, "lrp", None)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    target = Path(argv[0] if argv else "man")
    target.mkdir(parents=True, exist_ok=True)
    for old in target.glob("lrp*.1"):
        old.unlink()
    for name, text in pages().items():
        (target / name).write_text(text)
    print(f"wrote {len(list(target.glob('lrp*.1')))} man pages to {target}/", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
