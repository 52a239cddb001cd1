"""The `lrp` command: a thin typer layer over the library modules, one module per subcommand.

Nothing heavy is imported here or at the top of the command modules: torch is imported inside
the commands that run models, so `lrp --help` answers at once.
"""

from __future__ import annotations

import os
import signal

import typer

from lrp import __version__
from lrp.options import step

app = typer.Typer(
    name="lrp",
    help="Composable tools for pose estimation of low-resolution people: degrade, super-resolve, "
    "detect, estimate poses, mix, evaluate and bucket COCO datasets. Every command reads and "
    "writes one JSON document (a valid COCO dataset with an 'lrp' block), so they chain in pipes.",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    # Markdown: docstring paragraphs reflow to the terminal, indented examples stay verbatim.
    rich_markup_mode="markdown",
)


def _version(value: bool):
    if value:
        print(f"lrp {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks instead of one-line errors."),
):
    if debug:
        os.environ["LRP_DEBUG"] = "1"


def _register() -> None:
    # Import order is the order of `lrp --help`: the pipeline's order.
    from lrp import bucket, degrade, detect, evaluate, frames, mix, pose, superres, weights

    for module in (frames, degrade, superres, detect, pose, mix, evaluate, bucket):
        name = module.__name__.rsplit(".", 1)[1]
        app.command(name, help=module.command.__doc__, no_args_is_help=False)(step(name)(module.command))
    app.add_typer(weights.app, name="weights")


_register()


def main() -> None:
    # Behave like a Unix filter: `lrp ... | head` ends quietly instead of raising BrokenPipeError.
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    app()
