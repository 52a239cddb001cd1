"""The `lrp` command: a thin typer layer over the library modules, one module per subcommand.

Nothing heavy is imported here or at the top of the command modules: torch is imported inside
the commands that run models, so `lrp --help` answers at once.
"""

from __future__ import annotations

import os
import signal
import sys


def _interrupted_at_start(signum, frame):
    # Ctrl-C while the modules below load: one line, the shell's exit code, no traceback.
    print("lrp: interrupted", file=sys.stderr)
    os._exit(130)


try:
    _default_sigint = signal.signal(signal.SIGINT, _interrupted_at_start)
except ValueError:  # imported outside the main thread: leave signals alone
    _default_sigint = None

import typer  # noqa: E402
from typer.core import TyperCommand  # noqa: E402

from lrp import __version__  # noqa: E402
from lrp.options import LrpCommand, step  # noqa: E402

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
    from lrp import bucket, cost, crowdpose, degrade, detect, displacement, draw, evaluate, frames, merge, mix, mpii, pck, pose, quality, report, runs, superres, weights

    for module in (frames, mpii, degrade, superres, detect, pose, merge, mix, evaluate, bucket, displacement, draw, report, pck, crowdpose, quality, cost):
        name = module.__name__.rsplit(".", 1)[1]
        app.command(name, cls=LrpCommand, help=module.command.__doc__, no_args_is_help=False)(step(name)(module.command))
    for sub in (weights, runs):
        for info in sub.app.registered_commands:
            if info.cls in (None, TyperCommand):
                info.cls = LrpCommand
        app.add_typer(sub.app, name=sub.__name__.rsplit(".", 1)[1])


_register()
if _default_sigint is not None:  # start-up is over: Ctrl-C raises KeyboardInterrupt again
    signal.signal(signal.SIGINT, _default_sigint)


def main() -> None:
    # Behave like a Unix filter: `lrp ... | head` ends quietly instead of raising BrokenPipeError.
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    try:
        app()
    except KeyboardInterrupt:  # between start-up and a command's own handling
        print("lrp: interrupted", file=sys.stderr)
        sys.exit(130)
