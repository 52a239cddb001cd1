"""The example Makefiles parse and chain every table and figure (a dry run, no models needed)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")


def _dry_run(directory: str, *args: str) -> str:
    out = subprocess.run(
        ["make", "-n", "-C", str(REPO / "examples" / directory), *args],
        check=True, capture_output=True, text=True,
    )
    return out.stdout


def test_paper_makefile_has_every_table_and_figure():
    text = _dry_run("paper", "COCO=/data/val2017", "ANN=/data/person_keypoints_val2017.json", "OUT=/tmp/lrp-paper", "all")
    for n in range(1, 10):
        assert f"/tmp/lrp-paper/table{n}.md" in text
    for fig in ("figure1-2.png", "figure1-4.png", "figure2.png", "figure3.png"):
        assert fig in text
    # the paper's models and rules
    for needle in ("--model usrnet", "--model esrgan", "faster-rcnn-r101-fpn", "mask-rcnn-r101-fpn",
                   "hrnet-w32-256x192", "--size-from /tmp/lrp-paper/lr2.json", "--threshold 3500", "--boxes gt",
                   "--boxes detections", "--scale 0.25", "--scale 0.5"):
        assert needle in text, needle


def test_offline_makefile_uses_registry_models():
    text = _dry_run("offline", "OUT=/tmp/lrp-offline", "report")
    for needle in ("centernet-mbv3", "movenet-thunder", "realsr-df2k-x4", "srmdnf-x4", "/tmp/lrp-offline/report.md"):
        assert needle in text, needle


def test_paper_makefile_demands_its_inputs():
    out = subprocess.run(["make", "-n", "-C", str(REPO / "examples" / "paper"), "table1"], capture_output=True, text=True)
    assert out.returncode != 0 and "set COCO=" in out.stderr


def test_offline_makefile_writes_the_html_report():
    text = _dry_run("offline", "OUT=/tmp/lrp-offline", "html")
    assert "lrp report -q /tmp/lrp-offline/gtpose/lr4.json /tmp/lrp-offline/gtpose/sr4-realsr-df2k-x4.json" in text
    assert "--out-dir /tmp/lrp-offline/html" in text


# ---- examples/related: every lrp command line of a dry run parses, and its pose options hold --------


def _lrp_command_lines(text: str) -> list[list[str]]:
    """Each `lrp ...` command of a dry run, split at shell operators (&&, ;, |, >)."""
    import shlex

    commands = []
    for line in text.replace("\\\n", " ").splitlines():  # recipes continued with a backslash
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|>")
        lexer.whitespace_split = True
        words: list[str] = []
        for token in [*lexer, ";"]:
            if token and set(token) <= set(";&|>"):
                if words and words[0] == "lrp":
                    commands.append(words[1:])
                words = [] if token != ">" else ["redirect"]
            else:
                words.append(token)
    return commands


def _check_lrp_command(args: list[str]) -> None:
    """Parse with the real CLI (options, types, arity) without running, then the checks `lrp pose`
    makes before reading anything: model, codec, input size, crop-SR scale, --record-argmax."""
    import typer.main

    from lrp.cli import app
    from lrp.pose import check_crop_sr, check_options, check_record_argmax

    import click

    group = typer.main.get_command(app)
    ctx = click.Context(group, info_name="lrp")
    name, *rest = args
    cmd = group.get_command(ctx, name)
    assert cmd is not None, f"no command lrp {name}"
    if isinstance(cmd, click.Group):  # lrp weights SUBCOMMAND
        name, *rest = rest
        cmd = cmd.get_command(ctx, name)
        assert cmd is not None, f"no command lrp weights {name}"
    params = cmd.make_context(name, rest, parent=ctx).params
    if name == "pose":
        spec, size, _, decode = check_options(params["model"], params["boxes"], params["decode"], params["input_size"], params["warp"], params["flip"])
        check_crop_sr(params["crop_sr"], params["crop_size"], size, decode)
        check_record_argmax(spec, params["record_argmax"])


def test_related_makefile_has_every_paper_target_and_its_commands_parse():
    text = _dry_run("related", "COCO=/data/val2017", "ANN=/data/ann.json", "CKPT=/ckpt", "OUT=/tmp/lrp-related", "all", "weights")
    for target in ("cal-figure1.md", "cal-figure5.png", "cal-table2.md", "cal-table8.md", "cal-table9.md", "srpose-table1.md", "mgil-table1.md"):
        assert f"/tmp/lrp-related/{target}" in text, target
    for needle in ("--decode udp --weights udp-weights/hrnet-w32-64x48-udp.safetensors", "--crop-sr realesrgan-x4plus --crop-size 48x64",
                   "--decode maxpool", "hrnet-w32-simcc-32x32 --input-size 32x32 --decode simcc", "--record-argmax",
                   "lrp weights convert hrnet-w32 /ckpt/pose_hrnet_w32_64x48.pth --model hrnet-w32-64x48",
                   "lrp weights convert hrnet-w32-srhead /ckpt/srpose_hrnet_w32_256x192.pth",
                   # CAL Fig. 1 as a chart: four sizes per line, the lines standard and udp
                   "--label standard --label standard --label standard --label standard --label udp --label udp --label udp --label udp",
                   "--plot /tmp/lrp-related/cal-figure1.png --plot-x pose.input_size > /tmp/lrp-related/cal-figure1.md.part"):
        assert needle in text, needle
    commands = _lrp_command_lines(text)
    assert {c[0] for c in commands} == {"pose", "evaluate", "displacement", "weights"}
    for args in commands:
        _check_lrp_command(args)


def test_related_offline_variant_uses_registry_models_and_parses():
    text = _dry_run("related", "-f", "offline.mk", "DATA=/data/val4", "OUT=/tmp/lrp-rel-off", "report")
    for needle in ("posenet --input-size 513x513 --decode plain", "movenet-lightning --input-size 192x192",
                   "--crop-sr realsr-df2k-x4 --crop-size 64x64", "--images /data/val4/images /data/val4/person_keypoints.json",
                   "/tmp/lrp-rel-off/report.md",
                   # PoseNet's three sizes are one line of the chart; MoveNet's two networks a point each
                   "--label posenet@offset --label posenet@offset --label posenet@offset --label movenet-lightning@standard --label movenet-thunder@standard",
                   "--plot /tmp/lrp-rel-off/input-sizes.png --plot-x pose.input_size", "![AP against input size](input-sizes.png)"):
        assert needle in text, needle
    for args in _lrp_command_lines(text):
        _check_lrp_command(args)


def test_the_command_check_catches_a_bad_line():
    import typer

    from lrp.errors import UsageError

    for bad in (["pose", "--no-such-option"], ["pose", "--input-size"], ["evaluate", "--format"]):
        with pytest.raises(typer.Exit) as caught:  # LrpCommand: one line, exit 2
            _check_lrp_command(bad)
        assert caught.value.exit_code == 2
    with pytest.raises(UsageError, match="simcc"):
        _check_lrp_command(["pose", "--model", "hrnet-w32-64x48", "--decode", "simcc"])
    with pytest.raises(AssertionError, match="lrp runz"):
        _check_lrp_command(["runz"])
    with pytest.raises(UsageError, match="record-argmax"):
        _check_lrp_command(["pose", "--model", "movenet-thunder", "--record-argmax"])
