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
