"""The command line as a whole: every command exists and is documented, help is instant."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lrp.cli import app
from tests.conftest import REPO, run_lrp

MISSION = ["degrade", "superres", "detect", "pose", "mix", "evaluate", "bucket", "weights"]


def _commands():
    import typer

    root = typer.main.get_command(app)
    return root


def test_every_mission_command_exists():
    root = _commands()
    assert set(MISSION) <= set(root.commands)


@pytest.mark.parametrize("name", MISSION)
def test_every_command_has_help_text(runner, name):
    result = run_lrp(runner, [name, "--help"])
    assert result.exit_code == 0
    cmd = _commands().commands[name]
    assert cmd.help and len(cmd.help.strip()) > 20, f"lrp {name} needs a real help text"
    for param in cmd.params:
        if param.name not in ("help",) and getattr(param, "help", None) is None and param.param_type_name == "option":
            pytest.fail(f"lrp {name}: option {param.opts} has no help text")


def test_help_does_not_import_torch():
    code = "import sys; from lrp.cli import app; import lrp.models; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_version(runner):
    result = run_lrp(runner, ["--version"])
    assert result.exit_code == 0 and result.stdout.startswith("lrp ")


def test_man_pages_are_fresh():
    from lrp.manpages import pages

    expected = pages()
    man = REPO / "man"
    have = {p.name for p in man.glob("lrp*.1")}
    assert have == set(expected), f"man/ is stale: run `make man` (missing {set(expected) - have}, extra {have - set(expected)})"
    for name, text in expected.items():
        assert (man / name).read_text() == text, f"man/{name} is stale: run `make man`"


def test_unknown_command_is_a_usage_error(runner):
    result = runner.invoke(app, ["frobnicate"])
    assert result.exit_code == 2
