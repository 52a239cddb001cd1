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
    code = (
        "import sys; from lrp.cli import app; import lrp.models; "
        "assert 'torch' not in sys.modules, 'torch imported'; assert 'matplotlib' not in sys.modules, 'matplotlib imported'"
    )
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


@pytest.mark.parametrize("args", [["degrade", "--scale", "0.5"], ["superres", "--model", "bicubic", "--scale", "2"]])
def test_head_of_pipeline_uses_the_sample_on_a_terminal(tmp_path, args):
    """No input and a terminal on stdin: the embedded sample, said on stderr (a real pty here)."""
    import json
    import os
    import pty

    master, slave = pty.openpty()
    env = {**os.environ, "LRP_SAMPLE_DIR": str(tmp_path / "sample")}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "lrp", *args, "-q", "--out-dir", str(tmp_path / "img"), "-o", str(tmp_path / "out.json")],
            stdin=slave, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120,
        )
    finally:
        os.close(master)
        os.close(slave)
    assert done.returncode == 0, done.stderr
    doc = json.loads((tmp_path / "out.json").read_text())
    assert doc["images"][0]["file_name"].startswith("sample_")
    assert doc["lrp"]["history"][-1]["command"] == args[0]


def test_no_input_on_a_terminal_is_a_usage_error_where_no_sample_applies():
    from lrp.inputs import load_document
    from lrp.errors import UsageError

    class Terminal:
        def isatty(self):
            return True

    with pytest.raises(UsageError, match="no input"):
        load_document(None, stdin=Terminal())
