"""Options shared by the subcommands (DESIGN.md section 2), as typer annotations.

Declaring them once keeps names, short flags and help texts identical across commands.
"""

from __future__ import annotations

import functools
import os
import sys

from pathlib import Path
from typing import Annotated, Optional

import typer

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


def step(name: str):
    """Turn LrpError into `lrp NAME: error: ...` on stderr and its exit code (tracebacks with --debug)."""

    def wrap(fn):
        @functools.wraps(fn)
        def run(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except LrpError as e:
                if os.environ.get("LRP_DEBUG"):
                    raise
                print(f"lrp {name}: error: {e}", file=sys.stderr)
                raise typer.Exit(e.exit_code) from None
            except KeyboardInterrupt:
                print(f"lrp {name}: interrupted", file=sys.stderr)
                raise typer.Exit(130) from None

        return run

    return wrap
