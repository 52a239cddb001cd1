"""--help shows the choices of fixed-choice options, model names get a "did you mean", and the
man pages carry examples (verbatim), EXIT STATUS and ENVIRONMENT."""

from __future__ import annotations

import re

import pytest

from lrp.errors import UsageError


def _help(runner, *args: str) -> str:
    from lrp.cli import app

    res = runner.invoke(app, [*args, "--help"], env={"COLUMNS": "200"}, catch_exceptions=False)
    assert res.exit_code == 0
    return res.stdout


@pytest.mark.parametrize(
    "command, option, choices",
    [
        (["superres"], "--device", "[auto|cpu|cuda|cuda:N]"),
        (["pose"], "--precision", "[fp32|bf16|fp16]"),
        (["pose"], "--boxes", "[gt|detections]"),
        (["pose"], "--decode", "[standard|dark|udp|plain|maxpool|offset|simcc]"),
        (["degrade"], "--method", "[bicubic|bilinear|area|nearest|strided]"),
        (["evaluate"], "--format", "[table|markdown|csv|json]"),
        (["bucket"], "--format", "[table|markdown|csv|json]"),
        (["weights", "list"], "--task", "[superres|detect|pose]"),
    ],
)
def test_help_shows_choices(runner, command, option, choices):
    line = next(l for l in _help(runner, *command).splitlines() if re.match(rf"^│ {re.escape(option)}\s", l))
    assert choices in line and "<str>" not in line


def test_help_shows_no_type_for_flags(runner):
    text = _help(runner, "degrade")
    for flag in ("--quiet", "--keep-going", "--to-origin"):
        line = next(l for l in text.splitlines() if re.match(rf"^│ {flag}\s", l))
        assert "<bool>" not in line, line


def test_the_choices_still_take_the_same_values(runner, tmp_path):
    from lrp.cli import app

    res = runner.invoke(app, ["evaluate", "--format", "xml", str(tmp_path / "x.json")])
    assert res.exit_code == 2 and "lrp evaluate: error: --format must be one of table, markdown, csv, json" in res.stderr


def test_unknown_model_suggests_the_closest_name(runner):
    from lrp.cli import app
    from lrp.models import get_model

    with pytest.raises(UsageError, match="did you mean 'movenet-thunder'"):
        get_model("movenet-thunderr", "pose")
    with pytest.raises(UsageError) as e:
        get_model("zzzzzz", "pose")
    assert "did you mean" not in str(e.value) and "movenet-thunder" in str(e.value)
    res = runner.invoke(app, ["weights", "path", "realesrgan-x4"])
    assert res.exit_code == 2 and "did you mean 'realesrgan-x4plus'" in res.stderr


def test_man_pages_have_examples_exit_status_and_environment():
    from lrp.manpages import pages

    for name, text in pages().items():
        for section in (".SH EXAMPLES", ".SH EXIT STATUS", ".SH ENVIRONMENT"):
            assert section in text, (name, section)
        examples = text.split(".SH EXAMPLES", 1)[1].split(".SH EXIT STATUS", 1)[0]
        # Verbatim (no fill), and each example is a real lrp command line.
        assert ".nf" in examples and ".fi" in examples
        assert re.search(r"^(ls .*)?lrp ", examples.split(".nf", 1)[1].lstrip(), re.M), name
        assert ("\\fB3\\fR" in text) == (name in ("lrp.1", "lrp-evaluate.1"))
    assert "LRP_WEIGHTS" in pages()["lrp-pose.1"] and "LRP_MEMORY_LIMIT" in pages()["lrp-superres.1"]
