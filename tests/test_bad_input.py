"""Bad input at the command line: one line naming the culprit, the documented exit code,
no output file, and the input untouched. One table of cases across the data commands."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lrp.errors import LrpError
from tests.conftest import REPO, run_lrp
from tests.conftest import snapshot as _snapshot
from tests.test_detect import random_centernet, small_input  # noqa: F401 (fixtures)
from tests.test_pose import tiny_model  # noqa: F401 (fixture)


def _env(**extra) -> dict:
    """The environment of a real `python -m lrp`: this checkout's package first."""
    return dict(os.environ, PYTHONPATH=str(REPO), **extra)


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



# --------------------------------------------------------------------------------------------
# Hostile documents, paths and outputs (issue 9): one line, the exit code, nothing written, the
# input byte for byte as it was. Each case edits the dataset fixture and returns the arguments.


def _png_header(path: Path, width: int, height: int, depth: int = 8, colour: int = 2, pixels: np.ndarray | None = None) -> None:
    """A PNG written by hand: PIL cannot write 48-bit RGB, nor a header larger than its data."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    if pixels is not None:
        raw = b"".join(b"\x00" + row.astype(">u2" if depth == 16 else np.uint8).tobytes() for row in pixels)
    else:
        raw = b"\x00" * 64  # far less data than the header declares
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def _lrp_doc(root: Path, coco: dict, **block) -> dict:
    """`coco` as an lrp document (what a pipe carries), with results or other block keys."""
    doc = json.loads(json.dumps(coco))
    doc["lrp"] = {"schema": "lrp/1", "image_root": str(root / "images"), "history": [], "detections": [], "poses": [], **block}
    for img in doc["images"]:
        img["lrp"] = {"origin": {"file_name": "a.jpg", "width": 60, "height": 40}, "xform": [1.0, 1.0, 0.0, 0.0]}
    return doc


KEYPOINT_CATEGORY = {"id": 1, "name": "person", "keypoints": [f"k{i}" for i in range(17)]}
DETECTION = {"image_id": 1, "category_id": 1, "bbox": [1, 2, 10, 12], "score": 0.9}
DEGRADE = ["degrade", "--scale", "0.5"]


def _annotation(coco, **change):
    coco["annotations"][0].update(change)
    return coco


def _write(root: Path, name: str, value) -> str:
    path = root / name
    path.write_text(value if isinstance(value, str) else json.dumps(value))
    return str(path)


def _hostile(root: Path, case: str) -> list[str]:
    """Arguments of one hostile case (files written under `root`, the input dataset)."""
    ann = root / "ann.json"
    coco = json.loads(ann.read_text())
    images = ["--images", str(root / "images")]
    text = ann.read_text()
    plain = {
        "bbox with NaN": lambda: text.replace("[5, 5, 20, 30]", "[5, NaN, 20, 30]"),
        "area Infinity": lambda: text.replace("500.0", "Infinity"),
        "negative box width": lambda: _annotation(coco, bbox=[5, 5, -20, 30]),
        "negative area": lambda: _annotation(coco, area=-1.0),
        "bbox of the wrong type": lambda: _annotation(coco, bbox="5 5 20 30"),
        "keypoints of the wrong type": lambda: _annotation(coco, keypoints={"x": 1}),
        "keypoints of the wrong length": lambda: dict(_annotation(coco, keypoints=[1, 2, 2] * 16), categories=[KEYPOINT_CATEGORY]),
        "odd polygon": lambda: _annotation(coco, segmentation=[[5, 5, 25, 5, 25]]),
        "undecodable RLE": lambda: _annotation(coco, iscrowd=1, segmentation={"size": [40, 60], "counts": "\x7f\x7f!!"}),
        "RLE of the wrong length": lambda: _annotation(coco, iscrowd=1, segmentation={"size": [40, 60], "counts": [100, 20]}),
        "crowd RLE size not the image's": lambda: _annotation(coco, iscrowd=1, segmentation={"size": [400, 600], "counts": [240000]}),
        "file_name an int": lambda: coco["images"][1].update(file_name=7) or coco,
        "file_name null": lambda: coco["images"][1].update(file_name=None) or coco,
        "file_name empty": lambda: coco["images"][1].update(file_name="") or coco,
        "file_name dot": lambda: coco["images"][1].update(file_name=".") or coco,
        "file_name with NUL": lambda: coco["images"][1].update(file_name="b\x00.jpg") or coco,
        "deeply nested JSON": lambda: '{"images": ' + "[" * 100000 + "]" * 100000 + "}",
    }
    if case in plain:
        value = plain[case]()
        _write(root, "ann.json", value)
        return [*DEGRADE, *images, str(ann)]
    results = {
        "result score NaN": '[{"image_id": 1, "category_id": 1, "bbox": [1, 2, 10, 12], "score": NaN}]',
        "result score a string": [dict(DETECTION, score="high")],
        "result category unknown": [dict(DETECTION, category_id=9)],
        "result category not an integer": [dict(DETECTION, category_id=1.5)],
        "result box negative": [dict(DETECTION, bbox=[1, 2, -10, 12])],
    }
    if case in results:
        value = results[case]
        if isinstance(value, str):
            doc = json.dumps(_lrp_doc(root, coco)).replace('"detections": []', '"detections": ' + value)
        else:
            doc = _lrp_doc(root, coco, detections=value)
        return ["evaluate", _write(root, "doc.json", doc)]
    if case == "xform of two values":
        doc = _lrp_doc(root, coco)
        doc["images"][0]["lrp"]["xform"] = [0.5, 0.5]
        return [*DEGRADE, _write(root, "doc.json", doc)]
    escapes = {"file_name with ..": "../secret/b.png", "file_name absolute": str(root / "secret" / "b.png"),
               "file_name a symlink out": "link.png"}
    if case in escapes:
        (root / "secret").mkdir()
        Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(root / "secret" / "b.png")
        (root / "images" / "link.png").symlink_to(root / "secret" / "b.png")
        coco["images"][1]["file_name"] = escapes[case]
        _write(root, "ann.json", coco)
        return [*DEGRADE, *images, str(ann)]
    if case == "png declaring 30000x30000":
        _png_header(root / "images" / "big.png", 30000, 30000)
        coco["images"][1].update(file_name="big.png")
        _write(root, "ann.json", coco)
        return [*DEGRADE, *images, str(ann)]
    if case == "png of 10000x10000 (a PIL warning) and the wrong size":
        _png_header(root / "images" / "big.png", 10000, 10000)
        coco["images"][1].update(file_name="big.png")
        _write(root, "ann.json", coco)
        return [*DEGRADE, *images, str(ann)]
    if case == "32-bit image":
        Image.fromarray(np.full((40, 60), 70000, np.int32), "I").save(root / "images" / "deep.tif")
        coco["images"][1]["file_name"] = "deep.tif"
        _write(root, "ann.json", coco)
        return [*DEGRADE, *images, str(ann)]
    if case == "huge --scale":
        return ["degrade", "--scale", "100000", *images, str(ann)]
    if case == "--scale not a number":
        return ["degrade", "--scale", "abc", *images, str(ann)]
    raise AssertionError(case)


HOSTILE = {
    "bbox with NaN": (1, "annotation 1: key 'bbox[1]': NaN is not a JSON number"),
    "area Infinity": (1, "annotation 1: key 'area': Infinity is not a JSON number"),
    "negative box width": (1, "annotation 1 (image 1): key 'bbox' must be four finite numbers with w, h >= 0"),
    "negative area": (1, "annotation 1 (image 1): key 'area' must be a finite number >= 0"),
    "bbox of the wrong type": (1, "annotation 1: 'bbox' must be [x, y, w, h]"),
    "keypoints of the wrong type": (1, "annotation 1 (image 1): key 'keypoints' must be a list of finite numbers"),
    "keypoints of the wrong length": (1, "annotation 1 (image 1): key 'keypoints' has 48 values, expected 51"),
    "odd polygon": (1, "annotation 1 (image 1): key 'segmentation' must hold polygons of x, y pairs"),
    "undecodable RLE": (1, "annotation 1 (image 1): key 'segmentation.counts' is not an RLE of 40x60 pixels"),
    "RLE of the wrong length": (1, "annotation 1 (image 1): key 'segmentation.counts' is not an RLE of 40x60 pixels"),
    "crowd RLE size not the image's": (1, "annotation 1 (image 1): key 'segmentation.size' is [400, 600], but the image is [40, 60]"),
    "file_name an int": (1, "image 2: key 'file_name' must name an image file relative to the image folder, got 7"),
    "file_name null": (1, "image 2: key 'file_name' must name an image file relative to the image folder, got None"),
    "file_name empty": (1, "image 2: key 'file_name' must name an image file relative to the image folder, got ''"),
    "file_name dot": (1, "image 2: key 'file_name' must name an image file relative to the image folder, got '.'"),
    "file_name with NUL": (1, "image 2: key 'file_name' must name an image file relative to the image folder, got 'b\\x00.jpg'"),
    "deeply nested JSON": (1, "not valid JSON: nested too deeply"),
    "result score NaN": (1, "lrp.detections[0] (image 1): key 'score': NaN is not a JSON number"),
    "result score a string": (1, "lrp.detections[0] (image 1): key 'score' must be a finite number, got 'high'"),
    "result category unknown": (1, "lrp.detections[0] (image 1) refers to unknown category id 9"),
    "result category not an integer": (1, "lrp.detections[0] (image 1): key 'category_id' must be an integer, got 1.5"),
    "result box negative": (1, "lrp.detections[0] (image 1): key 'bbox' must be four finite numbers with w, h >= 0"),
    "xform of two values": (1, "image 1: key 'lrp.xform' must be [sx, sy, tx, ty] with sx, sy > 0, got [0.5, 0.5]"),
    "file_name with ..": (1, "image 2: file_name '../secret/b.png' points outside the image folder"),
    "file_name absolute": (1, "points outside the image folder"),
    "file_name a symlink out": (1, "image 2: file_name 'link.png' points outside the image folder"),
    "png declaring 30000x30000": (1, "image 2 ("),
    "png of 10000x10000 (a PIL warning) and the wrong size": (1, "is 10000x10000 pixels but the document says 60x40"),
    "32-bit image": (1, "image 2 ("),
    "huge --scale": (2, "image 1: the output would be 6000000x4000000 pixels"),
    "--scale not a number": (2, "Invalid value for '--scale'"),
}
# Failures of one image: the others' outputs may be in the run folder (it resumes), nothing else.
PER_IMAGE = {"png declaring 30000x30000", "png of 10000x10000 (a PIL warning) and the wrong size", "32-bit image"}
NEEDLE_TOO = {"png declaring 30000x30000": "decompression bomb", "32-bit image": "32-bit integer images (mode I) are not supported"}




@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_input_is_refused_in_one_line_and_writes_nothing(dataset, runner, case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default lrp-runs/ folder would land here
    args = _hostile(dataset, case)
    before = _snapshot(tmp_path)
    out = tmp_path / "out.json"
    result = run_lrp(runner, [*args, "-o", str(out)])
    code, needle = HOSTILE[case]
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == code, result.stderr
    assert len(lines) == 1 and lines[0].startswith(f"lrp {args[0]}: error: "), result.stderr
    assert needle in lines[0] and NEEDLE_TOO.get(case, "") in lines[0], lines[0]
    assert result.stdout == "" and not out.exists()
    after = _snapshot(tmp_path)
    if case in PER_IMAGE:
        after = {k: v for k, v in after.items() if not k.startswith("lrp-runs/")}
        assert not [p for p in tmp_path.rglob("*.part")], "half-written image left behind"
    else:
        assert not (tmp_path / "lrp-runs").exists()
    assert after == before, "a file was written, changed or removed"


# --------------------------------------------------------------------------------------------
# Outputs that would overwrite an input (item 4): refused before anything runs


def _derived(dataset: Path, runner, tmp_path: Path) -> Path:
    """A degraded document (a derived stage) of the dataset, written in a folder of its own."""
    path = tmp_path / "lr.json"
    result = run_lrp(runner, [*DEGRADE, "-q", "--images", str(dataset / "images"), str(dataset / "ann.json"),
                              "--out-dir", str(tmp_path / "lr"), "-o", str(path)])
    assert result.exit_code == 0, result.stderr
    return path


def _overwrite_case(case: str, dataset: Path, derived: Path) -> list[str]:
    ann, images = str(dataset / "ann.json"), ["--images", str(dataset / "images")]
    return {
        "degrade -o the input": [*DEGRADE, *images, ann, "-o", ann],
        "degrade -o a folder": [*DEGRADE, *images, ann, "-o", str(dataset)],
        "detect -o the input": ["detect", str(derived), "-o", str(derived)],
        "pose -o the input": ["pose", str(derived), "-o", str(derived)],
        "mix --boxes-only -o the input": ["mix", "--boxes-only", str(derived), str(derived), "-o", str(derived)],
        "evaluate -o the input": ["evaluate", str(derived), "-o", str(derived)],
        "bucket --plot onto the input": ["bucket", "--baseline", str(derived), str(derived), "--plot", str(derived)],
        "weights convert -o the checkpoint": ["weights", "convert", "esrgan", ann, "-o", ann],
        "--out-dir above the image root": [*DEGRADE, *images, ann, "--out-dir", str(dataset)],
        "--out-dir inside the image root": [*DEGRADE, *images, ann, "--out-dir", str(dataset / "images" / "lr")],
        "--out-dir the origin root of a derived document": ["superres", "--model", "bicubic", str(derived), "--out-dir", str(dataset / "images")],
        "--out-dir inside the origin root": ["degrade", "--to-origin", str(derived), "--out-dir", str(dataset / "images" / "x")],
        "--out-dir above the origin root": ["degrade", "--to-origin", str(derived), "--out-dir", str(dataset)],
    }[case]


OVERWRITE = {
    "degrade -o the input": "-o {ann}: is an input of this command; refusing to write over it",
    "degrade -o a folder": "-o {root}: is a folder; give a file name",
    "detect -o the input": "-o {lr}: is an input of this command",
    "pose -o the input": "-o {lr}: is an input of this command",
    "mix --boxes-only -o the input": "-o {lr}: is an input of this command",
    "evaluate -o the input": "-o {lr}: is an input of this command",
    "bucket --plot onto the input": "--plot {lr}: is an input of this command",
    "weights convert -o the checkpoint": "-o {ann}: is an input of this command",
    "--out-dir above the image root": "--out-dir {root} contains the input image folder {root}/images; refusing to write over the input",
    "--out-dir inside the image root": "lies inside the input image folder",
    "--out-dir the origin root of a derived document": "--out-dir {root}/images is the origin image folder {root}/images",
    "--out-dir inside the origin root": "lies inside the origin image folder",
    "--out-dir above the origin root": "contains the origin image folder",
}


@pytest.mark.parametrize("case", list(OVERWRITE))
def test_outputs_over_an_input_are_refused(dataset, runner, tmp_path, tmp_path_factory, monkeypatch, case):
    monkeypatch.chdir(tmp_path)
    derived = _derived(dataset, runner, tmp_path_factory.mktemp("derived"))
    args = _overwrite_case(case, dataset, derived)
    before = (_snapshot(tmp_path), _snapshot(derived.parent))
    result = run_lrp(runner, args)
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, result.stderr
    expected = OVERWRITE[case].format(ann=dataset / "ann.json", root=dataset, lr=derived)
    assert len(lines) == 1 and lines[0].startswith(f"lrp {args[0]}: error: ") and expected in lines[0], result.stderr
    assert result.stdout == ""
    assert (_snapshot(tmp_path), _snapshot(derived.parent)) == before, "a file was written, changed or removed"


def test_stdin_redirected_from_the_output_file_is_refused(dataset, tmp_path):
    ann = dataset / "ann.json"
    before = _snapshot(dataset)
    with open(ann, "rb") as stdin:
        proc = subprocess.run([sys.executable, "-m", "lrp", *DEGRADE, "--images", str(dataset / "images"), "-o", str(ann)],
                              stdin=stdin, capture_output=True, text=True, cwd=tmp_path, env=_env())
    assert proc.returncode == 2
    assert proc.stderr == f"lrp degrade: error: -o {ann}: is an input of this command; refusing to write over it\n"
    assert _snapshot(dataset) == before and not (tmp_path / "lrp-runs").exists()
    # stdin that the command does not read is no input of it
    other = tmp_path / "other.json"
    other.write_text("{}")
    with open(other, "rb") as stdin:
        proc = subprocess.run([sys.executable, "-m", "lrp", *DEGRADE, "-q", "--images", str(dataset / "images"), str(ann), "-o", str(other)],
                              stdin=stdin, capture_output=True, text=True, cwd=tmp_path, env=_env())
    assert proc.returncode == 0, proc.stderr
    assert json.loads(other.read_text())["lrp"]["history"][0]["command"] == "degrade"


# --------------------------------------------------------------------------------------------
# Reading outside the image root (item 6): the one path resolution every command uses


def test_image_path_stays_inside_the_root(tmp_path):
    from lrp.document import image_path

    root = tmp_path / "images"
    (root / "sub").mkdir(parents=True)
    (tmp_path / "secret.png").write_bytes(b"x")
    (root / "out.png").symlink_to(tmp_path / "secret.png")
    (root / "in.png").symlink_to(root / "sub")
    doc = {"lrp": {"image_root": str(root)}}
    assert image_path(doc, {"id": 1, "file_name": "sub/../a.png"}) == root.resolve() / "a.png"
    assert image_path(doc, {"id": 1, "file_name": "in.png"}) == (root / "sub").resolve()  # a link that stays inside
    for name in ("../secret.png", "sub/../../secret.png", str(tmp_path / "secret.png"), "out.png", "/etc/passwd"):
        with pytest.raises(LrpError, match=f"^image 1: file_name '{re.escape(name)}' points outside the image folder"):
            image_path(doc, {"id": 1, "file_name": name})
    for name in ("", ".", None, 3, "a\x00b"):
        with pytest.raises(LrpError, match="must name an image file"):
            image_path(doc, {"id": 1, "file_name": name})


def test_pose_refuses_a_file_name_outside_the_image_root(dataset, runner, tmp_path, tiny_model):
    """Before the fix pose read ../secret/b.png and returned keypoints from it."""
    (tmp_path / "secret").mkdir()
    Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(tmp_path / "secret" / "b.png")
    coco = json.loads((dataset / "ann.json").read_text())
    coco["images"][0]["file_name"] = "../../secret/b.png"
    doc = _lrp_doc(dataset, coco)
    path = _write(tmp_path, "doc.json", doc)
    result = run_lrp(runner, ["pose", path, "-q", "--device", "cpu", "--model", tiny_model])
    assert result.exit_code == 1
    assert result.stderr == f"lrp pose: error: image 1: file_name '../../secret/b.png' points outside the image folder {(dataset / 'images').resolve()}\n"
    assert result.stdout == ""


def test_detect_refuses_an_absolute_file_name(dataset, runner, tmp_path, random_centernet, small_input):
    coco = json.loads((dataset / "ann.json").read_text())
    coco["images"][1]["file_name"] = str(dataset / "images" / "a.jpg")  # even one inside the root: names are relative
    result = run_lrp(runner, ["detect", _write(tmp_path, "doc.json", coco), "--images", str(dataset / "images"),
                              "--model", "centernet-mbv3", "--weights", str(random_centernet), "-q"])
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.startswith(f"lrp detect: error: image 2: file_name '{dataset}/images/a.jpg' points outside the image folder")


# --------------------------------------------------------------------------------------------
# 16-bit PNGs (item 7): the high byte, never clipped at 255


def test_16_bit_grey_and_rgb_pngs_keep_their_high_byte(tmp_path):
    from lrp.images import load_rgb

    values = np.array([[0, 255, 256, 1000], [32768, 40000, 65280, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "grey16.png")
    with Image.open(tmp_path / "grey16.png") as im:
        assert im.mode == "I;16"  # what PIL made of it, so the test reads the case it means
    grey = load_rgb(tmp_path / "grey16.png")
    expected = (values >> 8).astype(np.uint8)
    assert grey.dtype == np.uint8 and grey.shape == (2, 4, 3)
    assert (grey == expected[..., None]).all()
    rgb16 = np.stack([values, values[:, ::-1], 65535 - values], axis=-1)
    _png_header(tmp_path / "rgb48.png", 4, 2, depth=16, colour=2, pixels=rgb16.reshape(2, -1))
    rgb = load_rgb(tmp_path / "rgb48.png")
    assert (rgb == (rgb16 >> 8).astype(np.uint8)).all()


def test_degrade_of_a_16_bit_png_is_not_saturated(tmp_path, runner):
    ramp = (np.arange(64 * 48, dtype=np.uint32).reshape(48, 64) * 21).astype(np.uint16)  # 0 .. 64491
    (tmp_path / "images").mkdir()
    Image.fromarray(ramp).save(tmp_path / "images" / "r.png")
    coco = {"images": [{"id": 1, "file_name": "r.png", "width": 64, "height": 48}], "annotations": [], "categories": [{"id": 1, "name": "person"}]}
    ann = _write(tmp_path, "ann.json", coco)
    result = run_lrp(runner, ["degrade", "-q", "--scale", "0.5", "--method", "nearest", "--images", str(tmp_path / "images"), ann,
                              "--out-dir", str(tmp_path / "lr")])
    assert result.exit_code == 0, result.stderr
    from lrp.degrade import degrade_pixels, plan_frames

    out = np.asarray(Image.open(tmp_path / "lr" / "r.png"))
    assert (out == 255).mean() < 0.05  # clipped, 99% were 255
    high = np.repeat((ramp >> 8).astype(np.uint8)[..., None], 3, axis=2)
    (frame,) = plan_frames(coco, scale=0.5, method="nearest").values()
    assert (out == degrade_pixels(high, frame, method="nearest")).all()


# --------------------------------------------------------------------------------------------
# Resume (item 10) and the umask (item 11)


def test_rerunning_a_pipe_resumes_and_gives_the_same_document(dataset, runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    images = ["--images", str(dataset / "images")]

    def pipe():
        lr = run_lrp(runner, [*DEGRADE, "-q", *images, str(dataset / "ann.json")])
        assert lr.exit_code == 0, lr.stderr
        sr = run_lrp(runner, ["superres", "-q", "--model", "bicubic"], input=lr.stdout)
        assert sr.exit_code == 0, sr.stderr
        return sr.stdout

    def files():
        return {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in sorted((tmp_path / "lrp-runs").rglob("*")) if p.is_file()}

    first = pipe()
    written = files()
    assert len(written) == 2 * 3  # two steps: two images and a manifest each
    second = pipe()
    assert files() == written, "the second run rewrote or moved images"

    def timeless(text):
        doc = json.loads(text)
        for step in doc["lrp"]["history"]:
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", step.pop("time"))
            step.pop("timing", None)  # how long a model step took (lrp.timing): a time too
        return doc

    def bytes_without_times(text):
        return re.sub(r',"timing":\{[^{}]*\}', "", re.sub(r'"time":"[^"]*"', "", text))

    assert timeless(first) == timeless(second)
    assert bytes_without_times(first) == bytes_without_times(second)  # byte for byte


def test_run_hash_ignores_times_only():
    from lrp.outputs import run_hash

    doc = {"images": [], "lrp": {"image_root": "/x", "history": [{"command": "degrade", "args": {"scale": 0.5}, "version": "0", "time": "T1"}]}}
    later = json.loads(json.dumps(doc))
    later["lrp"]["history"][0]["time"] = "T2"
    other = json.loads(json.dumps(doc))
    other["lrp"]["history"][0]["args"]["scale"] = 0.25
    assert run_hash("superres", doc, {"model": "a"}) == run_hash("superres", later, {"model": "a"})
    assert run_hash("superres", doc, {"model": "a"}) != run_hash("superres", other, {"model": "a"})
    assert run_hash("superres", doc, {"model": "a"}) != run_hash("superres", doc, {"model": "b"})
    assert doc["lrp"]["history"][0]["time"] == "T1"  # the document itself is left as it was


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_outputs_honour_the_umask(dataset, tmp_path, umask, mode):
    out = tmp_path / "out"
    code = (f"import os, sys; os.umask({umask}); from lrp.cli import main; "
            f"sys.argv = ['lrp', 'degrade', '-q', '--scale', '0.5', '--images', {str(dataset / 'images')!r}, "
            f"{str(dataset / 'ann.json')!r}, '--out-dir', {str(out / 'lr')!r}, '-o', {str(out / 'lr.json')!r}]; main()")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path, env=_env())
    sample = f"import os, sys; os.umask({umask}); from lrp.sample import main; sys.exit(main([{str(out / 'sample')!r}]))"
    subprocess.run([sys.executable, "-c", sample], check=True, cwd=tmp_path, env=_env(), capture_output=True)
    written = [out / "lr.json", out / "lr" / "a.png", out / "lr" / "b.png", out / "lr" / ".lrp-run.json",
               out / "sample" / "person_keypoints.json", *(out / "sample" / "images").iterdir()]
    assert len(written) > 6
    assert {p.name: oct(p.stat().st_mode & 0o777) for p in written} == {p.name: oct(mode) for p in written}


# --------------------------------------------------------------------------------------------
# One line instead of a traceback, in a real process (item 9)


def _lrp_process(args, tmp_path, **kwargs):
    return subprocess.run([sys.executable, "-m", "lrp", *args], capture_output=True, text=True, cwd=tmp_path, env=_env(), **kwargs)


def test_closed_stdin_is_one_line(tmp_path):
    proc = _lrp_process(["degrade", "--scale", "0.5"], tmp_path, stdin=subprocess.DEVNULL, preexec_fn=lambda: os.close(0))
    assert proc.returncode == 1
    assert proc.stderr == "lrp degrade: error: <stdin>: stdin is closed; give a document path\n"
    evaluate = _lrp_process(["evaluate"], tmp_path, stdin=subprocess.DEVNULL, preexec_fn=lambda: os.close(0))
    assert evaluate.returncode in (1, 2) and len(evaluate.stderr.splitlines()) == 1
    assert evaluate.stderr.startswith("lrp evaluate: error: ") and "Traceback" not in evaluate.stderr


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_stdout_on_a_full_disk_is_one_line(dataset, tmp_path):
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "lrp", *DEGRADE, "-q", "--images", str(dataset / "images"),
                               str(dataset / "ann.json"), "--out-dir", str(tmp_path / "lr")],
                              stdout=full, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=_env())
    assert proc.returncode == 1
    assert proc.stderr == "lrp degrade: error: <stdout>: cannot write the document: No space left on device\n"


def test_ctrl_c_during_start_up_is_one_line(tmp_path):
    """SIGINT at several moments while lrp loads (after Python's own start-up, which is not
    ours): one line and exit 130, or the command finished first."""
    outcomes = []
    for delay in (0.01, 0.03, 0.08, 0.2, 0.5):
        code = ("import os, signal, sys, threading; "
                f"t = threading.Timer({delay}, os.kill, (os.getpid(), signal.SIGINT)); t.daemon = True; t.start(); "
                "sys.argv = ['lrp', 'evaluate', '--help']; from lrp.cli import main; main()")
        proc = subprocess.run([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              cwd=tmp_path, env=_env(), timeout=120)
        assert "Traceback" not in proc.stderr, proc.stderr
        assert (proc.returncode, proc.stderr) in ((130, "lrp: interrupted\n"), (130, "lrp evaluate: interrupted\n"), (130, ""), (0, "")), \
            (delay, proc.returncode, proc.stderr)
        outcomes.append(proc.returncode)
    assert 130 in outcomes, "no moment of start-up was interrupted"


def test_usage_errors_of_click_read_like_every_error(runner):
    result = run_lrp(runner, ["degrade", "--scale", "abc"])
    assert result.exit_code == 2
    assert result.stderr.startswith("lrp degrade: error: Invalid value for '--scale' / '-s': ") and len(result.stderr.splitlines()) == 1
    result = run_lrp(runner, ["weights", "convert"])
    assert result.exit_code == 2
    assert result.stderr == "lrp weights: error: Missing argument 'arch'. (see 'lrp weights convert --help')\n"


@pytest.mark.parametrize("error, line, code", [
    (MemoryError(), "lrp x: error: out of memory (try fewer --workers, a smaller --batch-size or --tile, or smaller images)", 1),
    (RecursionError("maximum recursion depth exceeded"), "lrp x: error: the input is nested too deeply to process", 1),
    (KeyboardInterrupt(), "lrp x: interrupted", 130),
    (LrpError("image 3: bad"), "lrp x: error: image 3: bad", 1),
])
def test_step_turns_failures_into_one_line(capsys, monkeypatch, error, line, code):
    import typer
    import warnings

    from lrp.options import step

    monkeypatch.delenv("LRP_DEBUG", raising=False)

    def body():
        warnings.warn("a library has something to say")
        raise error

    with pytest.raises(typer.Exit) as exit_info:
        step("x")(body)()
    assert exit_info.value.exit_code == code
    assert capsys.readouterr().err == line + "\n"  # the warning is not printed before it


def test_step_shows_warnings_after_success():
    import warnings

    from lrp.options import step

    def body():
        warnings.warn("a library has something to say")
        return 5

    with pytest.warns(UserWarning, match="a library has something to say"):
        assert step("x")(body)() == 5


def test_output_never_holds_bare_nan(tmp_path):
    from lrp.outputs import write_document

    with pytest.raises(LrpError, match=r"cannot write nan at x: JSON has no NaN or Infinity"):  # lrp.jsonio
        write_document({"x": float("nan")}, tmp_path / "o.json")
    assert not (tmp_path / "o.json").exists()
