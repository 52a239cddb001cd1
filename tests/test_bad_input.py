"""Bad input at the command line: one line naming the culprit, the documented exit code,
no output file, and the input untouched. One table of cases across the data commands."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import run_lrp


def _tree_digest(root: Path) -> str:
    """The input: the annotation file and the image folder."""
    h = hashlib.sha256()
    for p in sorted([root / "ann.json", *(root / "images").rglob("*")]):
        if p.is_file():
            h.update(p.relative_to(root).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture
def dataset(tmp_path):
    """A two-image plain COCO folder with real JPEGs."""
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.jpg", "b.jpg"):
        Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(images / name, quality=90)
    coco = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 60, "height": 40}, {"id": 2, "file_name": "b.jpg", "width": 60, "height": 40}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [5, 5, 20, 30], "area": 500.0, "iscrowd": 0,
             "segmentation": [[5, 5, 25, 5, 25, 35, 5, 35]], "num_keypoints": 1, "keypoints": [10, 10, 2] + [0, 0, 0] * 16},
        ],
        "categories": [{"id": 1, "name": "person"}],
    }
    (tmp_path / "ann.json").write_text(json.dumps(coco))
    return tmp_path


def _case_files(root: Path, case: str) -> list[str]:
    ann = root / "ann.json"
    coco = json.loads(ann.read_text())
    images = ["--images", str(root / "images")]
    if case == "missing image":
        (root / "images" / "b.jpg").unlink()
        return ["degrade", "--scale", "0.5", *images, str(ann)]
    if case == "truncated image":
        data = (root / "images" / "b.jpg").read_bytes()
        (root / "images" / "b.jpg").write_bytes(data[: len(data) // 2])
        return ["degrade", "--scale", "0.5", *images, str(ann)]
    if case == "corrupt image":
        (root / "images" / "b.jpg").write_bytes(b"this is not a jpeg")
        return ["degrade", "--scale", "0.5", *images, str(ann)]
    if case == "malformed json":
        ann.write_text(ann.read_text()[:-10])
        return ["degrade", "--scale", "0.5", *images, str(ann)]
    if case == "not coco":
        ann.write_text(json.dumps({"hello": "world"}))
        return ["degrade", "--scale", "0.5", *images, str(ann)]
    if case == "duplicate image ids":
        coco["images"][1]["id"] = 1
    if case == "annotation of unknown image":
        coco["annotations"][0]["image_id"] = 42
    if case == "results for unknown images":
        coco["lrp"] = {"schema": "lrp/1", "image_root": str(root / "images"), "history": [],
                       "detections": [{"image_id": 77, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 1.0}], "poses": []}
        for img in coco["images"]:
            img["lrp"] = {"origin": {"file_name": img["file_name"], "width": 60, "height": 40}, "xform": [1, 1, 0, 0]}
        ann.write_text(json.dumps(coco))
        return ["evaluate", str(ann)]
    ann.write_text(json.dumps(coco))
    return ["degrade", "--scale", "0.5", *images, str(ann)]


CASES = {
    "missing image": (1, "image 2"),
    "truncated image": (1, "image 2"),
    "corrupt image": (1, "image 2"),
    "malformed json": (1, "not valid JSON"),
    "not coco": (1, "not a COCO dataset: missing key 'images'"),
    "duplicate image ids": (1, "duplicate image id 1"),
    "annotation of unknown image": (1, "unknown image id 42"),
    "results for unknown images": (1, "unknown image id 77"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_gives_one_line_and_exit_code(dataset, runner, case, tmp_path):
    args = _case_files(dataset, case)
    before = _tree_digest(dataset)
    out = tmp_path / "result" / "result.json"
    out_dir = tmp_path / "result" / "images"
    if args[0] == "degrade":
        args += ["--out-dir", str(out_dir)]
    result = run_lrp(runner, [*args, "-o", str(out)])
    code, needle = CASES[case]
    assert result.exit_code == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"lrp {args[0]}: error: "), result.stderr
    assert needle in lines[0]
    assert not out.exists(), "no output document on failure"
    assert result.stdout == ""
    assert _tree_digest(dataset) == before, "the input was modified"
    if out_dir.exists():
        assert not [p for p in out_dir.rglob("*") if p.name.endswith(".part")], "half-written image left behind"


def test_out_dir_equal_to_input_is_refused(dataset, runner, tmp_path):
    before = _tree_digest(dataset)
    result = run_lrp(runner, ["degrade", "--scale", "0.5", "--images", str(dataset / "images"), str(dataset / "ann.json"),
                              "--out-dir", str(dataset / "images")])
    assert result.exit_code == 2
    assert "input image folder" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert _tree_digest(dataset) == before


def test_plain_coco_without_images_is_a_usage_error(dataset, runner):
    result = run_lrp(runner, ["degrade", "--scale", "0.5", str(dataset / "ann.json")])
    assert result.exit_code == 2 and "needs --images" in result.stderr

