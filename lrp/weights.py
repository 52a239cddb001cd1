"""`lrp weights`: not built yet (see the issue tracker)."""

from __future__ import annotations

import typer

from lrp.errors import NotImplementedYet
from lrp.options import step

app = typer.Typer(help="(not implemented yet) List, convert, fetch and verify model weights.", no_args_is_help=True)


@app.command("list")
@step("weights")
def list_():
    """(not implemented yet)"""
    raise NotImplementedYet("lrp weights list")
