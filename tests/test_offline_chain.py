"""The offline example end to end on a slice of real COCO images with real weights:
examples/offline/Makefile -> report.md with every table, every row, and the sanity row at 1.0."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

MODELS = ["srmdnf-x4", "centernet-mbv3", "movenet-thunder"]
SR = ["bicubic", "srmdnf-x4"]

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")]


def _weights_missing() -> list[str]:
    from lrp.device import weights_dir
    from lrp.models import get_model

    return [m for m in MODELS if not (weights_dir() / get_model(m).weights.file).is_file()]


@pytest.fixture(scope="module")
def report(coco_val4, tmp_path_factory):
    missing = _weights_missing()
    if missing:
        pytest.skip(f"real weights not present: {', '.join(missing)} (get them with `lrp weights fetch {' '.join(missing)}`)")
    root = tmp_path_factory.mktemp("offline")
    coco = json.loads((coco_val4 / "person_keypoints.json").read_text())
    keep = {img["id"] for img in coco["images"][:2]}
    coco["images"] = [i for i in coco["images"] if i["id"] in keep]
    coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] in keep]
    (root / "data").mkdir()
    (root / "data" / "person_keypoints.json").write_text(json.dumps(coco))
    lrp = Path(sys.executable).with_name("lrp")
    out = root / "out"
    cmd = ["make", "-s", "-C", str(REPO / "examples" / "offline"), f"DATA={root / 'data'}", f"COCO={coco_val4 / 'images'}",
           f"OUT={out}", f"LRP={lrp}", f"SR={' '.join(SR)}", "MIX_SR=srmdnf-x4", "DEVICE=cpu", "-j2", "report"]
    result = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    return out, (out / "report.md").read_text()


def _table(report_text: str, n: int) -> str:
    part = report_text.split(f"## Table {n}\n", 1)[1]
    return re.split(r"\n## ", part, maxsplit=1)[0]


def _rows(section: str) -> dict[str, list[str]]:
    rows = {}
    for line in section.splitlines():
        if line.startswith("| ") and not line.startswith("| document") and not line.startswith("| :"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows.setdefault(cells[0], cells[1:])
    return rows


def test_every_table_and_row_is_present(report):
    _, text = report
    lr_sr = lambda s: {f"LR 1/{s}"} | {f"LR 1/{s} > {m} x4" for m in SR}  # noqa: E731
    expected = {1: {"original"}, 2: lr_sr(2), 3: lr_sr(4), 4: {"original"}, 5: lr_sr(2), 6: lr_sr(4), 7: lr_sr(2), 8: lr_sr(4)}
    for n, labels in expected.items():
        rows = _rows(_table(text, n))
        assert labels <= set(rows), f"table {n}: rows {sorted(rows)}"
        for label in labels:
            for cell in rows[label]:
                assert cell == "n/a" or 0.0 <= float(cell) <= 1.0, (n, label, cell)
    t9 = _rows(_table(text, 9))
    assert any(label.startswith("LR 1/2 > mixed") for label in t9), sorted(t9)


def test_tables_agree_where_they_share_documents(report):
    _, text = report
    # Table 9's LR and SR rows are Table 7's rows: the same documents evaluated the same way.
    t7, t9 = _table(text, 7), _table(text, 9)
    for label in ("LR 1/2", "LR 1/2 > srmdnf-x4 x4"):
        assert _rows(t9.split("Keypoints")[1])[label] == _rows(t7.split("Keypoints")[1])[label]


def test_sanity_rows_are_exactly_one(report):
    _, text = report
    sanity = text.split("## Sanity", 1)[1].split("## Figures", 1)[0]
    rows = _rows(sanity)
    assert len(rows) >= 2 + 2 * len(SR)
    for label, cells in rows.items():
        assert all(c in ("1.000", "n/a") for c in cells), (label, cells)


def test_figures_are_pngs(report):
    out, _ = report
    for name in ("figure1-2.png", "figure1-4.png", "figure2.png", "figure3.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
