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


# Examples for the pages whose help text has none (the others take theirs from the docstring).
EXAMPLES = {
    "lrp": [
        "lrp degrade --scale 0.25 --images val2017 person_keypoints_val2017.json -o lr4.json",
        "lrp superres --model bicubic --scale 4 lr4.json -o sr4.json",
        "lrp pose --model movenet-thunder --boxes gt sr4.json -o sr4-pose.json",
        "lrp evaluate --size-from lr4.json lr4-pose.json sr4-pose.json",
    ],
    "lrp weights": ["lrp weights list", "lrp weights fetch all", "lrp weights verify"],
    "lrp weights list": ["lrp weights list --task pose", "lrp weights list --long", "lrp weights list --json | jq .name"],
    "lrp weights convert": ["lrp weights convert esrgan RRDB_ESRGAN_x4.pth --model esrgan"],
    "lrp weights fetch": ["lrp weights fetch realesrgan-x4plus movenet-thunder", "lrp weights fetch all"],
    "lrp weights verify": ["lrp weights verify", "lrp weights verify movenet-thunder"],
    "lrp weights path": ["ls -l \"$(lrp weights path movenet-thunder)\""],
}

EXIT_STATUS = [
    ("0", "Success."),
    ("1", "Bad data or a failed step: one line `lrp COMMAND: error: ...` on stderr names the file, image id or "
          "key at fault (a traceback with `lrp --debug`). With --keep-going, every failed image is listed first."),
    ("2", "Usage error: a wrong option, value or combination of arguments."),
]
EXIT_BELOW_BAR = ("3", "A --fail-under bar was not met (every metric below its bar is named).")
EXIT_INTERRUPTED = ("130", "Interrupted (Ctrl-C).")

# (variable, what it does, the commands it matters to; None: all)
ENVIRONMENT = [
    ("LRP_WEIGHTS", "Folder of the .safetensors weights (default ~/.cache/lrp/weights).",
     {"superres", "detect", "pose", "weights"}),
    ("LRP_SAMPLE_DIR", "Where the embedded sample dataset is drawn (default ~/.cache/lrp/sample-vN).",
     {"degrade", "superres", "detect", "pose"}),
    ("LRP_MEMORY_LIMIT", "Bytes one super-resolution batch may use (default: 60% of free memory).", {"superres"}),
    ("COLUMNS", "Width of the terminal tables (default: the terminal's; no limit in a pipe). Tables shorten "
                "labels and leave out whole columns to fit, never digits.", {"evaluate", "bucket", "weights", "runs"}),
    ("LRP_DEBUG", "Set (as --debug does) to show tracebacks instead of one-line errors.", None),
]


def _verbatim(lines: list[str]) -> list[str]:
    return [".PP", ".RS 4", ".nf"] + [_escape(l) for l in lines] + [".fi", ".RE"]


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
    examples: list[list[str]] = []
    for para in (cmd.help or "").strip().split("\n\n"):
        if para.startswith("  "):  # an indented paragraph of the docstring is an example: keep it verbatim
            examples.append([l.strip() for l in para.splitlines() if l.strip()])
        else:
            lines += [".PP", _escape(" ".join(l.strip() for l in para.splitlines()))]
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
    examples = examples or ([EXAMPLES[prog]] if prog in EXAMPLES else [])
    if examples:
        lines.append(".SH EXAMPLES")
        for block in examples:
            lines += _verbatim(block)
    words = prog.split()
    command = words[1] if len(words) > 1 else None
    lines.append(".SH EXIT STATUS")
    codes = EXIT_STATUS + ([EXIT_BELOW_BAR] if command in (None, "evaluate") else []) + [EXIT_INTERRUPTED]
    for code, text in codes:
        lines += [".TP", f"\\fB{code}\\fR", _escape(text)]
    lines.append(".SH ENVIRONMENT")
    for name, text, where in ENVIRONMENT:
        if where is None or command is None or command in where:
            lines += [".TP", f"\\fB{name}\\fR", _escape(text)]
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
