"""`lrp detect`: not built yet (see the issue tracker)."""

from __future__ import annotations

from lrp.errors import NotImplementedYet
from lrp.options import Input, Output, Quiet


def command(input: Input = None, output: Output = None, quiet: Quiet = False):
    """(not implemented yet)"""
    raise NotImplementedYet("lrp detect")
