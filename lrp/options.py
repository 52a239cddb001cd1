"""Options shared by the subcommands (DESIGN.md section 2), as typer annotations.

Declaring them once keeps names, short flags and help texts identical across commands.
"""

from __future__ import annotations

import functools
import os
import sys
import warnings
from pathlib import Path
from typing import Annotated, Optional

import typer
from typer.core import TyperCommand, TyperGroup

try:  # newer typer carries its own copy of click
    from typer._click.exceptions import UsageError as ClickUsageError
except ImportError:  # older typer runs on click itself
    from click.exceptions import UsageError as ClickUsageError

from lrp.errors import LrpError

Input = Annotated[
    Optional[str],
    typer.Argument(
        help="Input document (COCO or lrp JSON); '-' or nothing reads stdin. "
        "On a terminal with no input, head-of-pipeline commands use the embedded sample.",
        show_default=False,
    ),
]
Images = Annotated[
    Optional[Path],
    typer.Option("--images", help="Image folder of a plain COCO file (its file_names are relative to it).", show_default=False),
]
Output = Annotated[
    Optional[Path],
    typer.Option("-o", "--output", help="Write the document to FILE atomically instead of stdout.", show_default=False),
]
OutDir = Annotated[
    Optional[Path],
    typer.Option(
        "--out-dir",
        help="Folder for the images this step writes (default: lrp-runs/COMMAND-HASH/, resumable).",
        show_default=False,
    ),
]
# metavar: the choices (or, for a flag, nothing) in --help instead of typer's <str>/<bool>; the
# values themselves are still checked by the commands, with their one-line errors.
FLAG = ""
Quiet = Annotated[bool, typer.Option("-q", "--quiet", metavar=FLAG, help="No progress bars or summaries on stderr.")]
KeepGoing = Annotated[
    bool, typer.Option("--keep-going", metavar=FLAG, help="Skip images that fail, list every failure, still exit 1.")
]
Workers = Annotated[
    Optional[int], typer.Option("--workers", min=1, help="Threads for decoding and encoding images.", show_default=False)
]
Shard = Annotated[
    Optional[str],
    typer.Option(
        "--shard",
        help="Process only shard I of N (0-based, e.g. 0/4): the images whose id's SHA-256 mod N is I, "
        "with their annotations and results; join the shard documents with `lrp merge`.",
        show_default=False,
    ),
]
Device = Annotated[str, typer.Option("--device", metavar="[auto|cpu|cuda|cuda:N]", help="Where models run.")]
Precision = Annotated[
    str, typer.Option("--precision", metavar="[fp32|bf16|fp16]", help="Number format of the model (fp16 on CUDA only).")
]
BatchSize = Annotated[int, typer.Option("--batch-size", min=1, help="Images (or crops) per forward pass.")]
Model = Annotated[str, typer.Option("--model", help="Model name from the registry (see `lrp weights list`).")]
Weights = Annotated[
    Optional[Path],
    typer.Option("--weights", help="A .safetensors file to use instead of the registry's.", show_default=False),
]


# Options whose value is a file the command writes; every other path-like argument is an input.
OUTPUT_OPTIONS = {"output": "-o", "plot": "--plot", "plot_file": "--plot"}


def step(name: str):
    """Run a command body the way every lrp command behaves (DESIGN.md section 2).

    Before it runs: refuse an output file that is one of its inputs or a folder. While it
    runs: hold back library warnings, so that an error is the only line printed. When it fails:
    `lrp NAME: error: ...` on stderr and the exit code (tracebacks with --debug), also for the
    failures that are not ours to raise: out of memory, a document nested too deeply, a full
    disk on stdout, Ctrl-C.
    """

    def wrap(fn):
        @functools.wraps(fn)
        def run(*args, **kwargs):
            from lrp.outputs import check_output_files

            if sys.stdin is None:  # started with stdin closed: reading it is an error, not a crash
                sys.stdin = ClosedStdin()
            try:
                with warnings.catch_warnings(record=True) as held:  # the user's -W filters still apply
                    outputs = {flag: kwargs.get(key) for key, flag in OUTPUT_OPTIONS.items() if kwargs.get(key) is not None}
                    inputs = [v for key, v in kwargs.items() if key not in OUTPUT_OPTIONS] + list(args)
                    check_output_files(outputs, inputs, sys.stdin if _reads_stdin(kwargs) else None)
                    result = fn(*args, **kwargs)
            except BaseException as e:
                if os.environ.get("LRP_DEBUG"):
                    raise
                message, code = _failure(e)
                if message is None:
                    raise
                print(f"lrp {name}: {message}", file=sys.stderr)
                raise typer.Exit(code) from None
            for w in held:  # a successful run still shows what the libraries had to say
                warnings.showwarning(w.message, w.category, w.filename, w.lineno)
            return result

        return run

    return wrap


def _reads_stdin(kwargs: dict) -> bool:
    """Does the command read its document(s) from stdin (no path given, or '-')?"""
    for key in ("input", "documents"):
        if key in kwargs:
            value = kwargs[key]
            return value in (None, "-") or (isinstance(value, list) and (not value or "-" in value))
    return False


def _failure(e: BaseException) -> tuple[str | None, int]:
    """The one line and exit code for a failure (None: not ours, let it through)."""
    if isinstance(e, LrpError):
        return f"error: {e}", e.exit_code
    if isinstance(e, KeyboardInterrupt):
        return "interrupted", 130
    if isinstance(e, MemoryError):
        return "error: out of memory (try fewer --workers, a smaller --batch-size or --tile, or smaller images)", 1
    if isinstance(e, RecursionError):
        return "error: the input is nested too deeply to process", 1
    return None, 0


class ClosedStdin:
    """Stands in for a closed stdin: not a terminal, and reading it is a one-line error."""

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        raise OSError("stdin is closed")

    def read(self, *args):
        raise LrpError("<stdin>: stdin is closed; give a document path")

    readline = read

    @property
    def buffer(self):
        return self


class OneLineUsageErrors:
    """Usage errors read `lrp COMMAND: error: ...` like every other error (a mixin for click)."""

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except ClickUsageError as e:
            if type(e).__name__ == "NoArgsIsHelpError":
                raise
            path = [info_name]
            while parent is not None and parent.parent is not None:  # `lrp weights convert`
                path.insert(0, parent.info_name)
                parent = parent.parent
            message = " ".join(e.format_message().split())
            print(f"lrp {path[0]}: error: {message} (see 'lrp {' '.join(path)} --help')", file=sys.stderr)
            raise typer.Exit(2) from None


class LrpCommand(OneLineUsageErrors, TyperCommand):
    """A subcommand whose usage errors read `lrp COMMAND: error: ...` like every other error."""


class LrpGroup(OneLineUsageErrors, TyperGroup):
    """A command with subcommands (`lrp runs`), whose own usage errors are one line too."""
