"""The stream document: reading, adopting plain COCO, validation errors, atomic writing."""

from __future__ import annotations

import io
import json
import re

import pytest

from lrp import document as d
from lrp import outputs
from lrp.inputs import load_document
from lrp.errors import LrpError, UsageError


def _coco():
    return {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 8}],
        "annotations": [{"id": 5, "image_id": 1, "category_id": 1, "bbox": [1, 1, 2, 2], "area": 4.0, "iscrowd": 0}],
        "categories": [{"id": 1, "name": "person"}],
    }


def test_plain_coco_is_adopted_with_identity_frame(tmp_path):
    doc = d.adopt(_coco(), "x.json", images=tmp_path)
    assert doc["lrp"]["schema"] == "lrp/1"
    assert doc["lrp"]["image_root"] == str(tmp_path.resolve())
    assert doc["images"][0]["lrp"] == {"origin": {"file_name": "a.jpg", "width": 10, "height": 8}, "xform": [1.0, 1.0, 0.0, 0.0]}
    assert doc["lrp"]["detections"] == [] and doc["lrp"]["poses"] == [] and doc["lrp"]["history"] == []


def test_plain_coco_without_images_is_a_usage_error():
    with pytest.raises(UsageError, match="needs --images"):
        d.adopt(_coco(), "x.json")


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda c: c["images"].append(dict(c["images"][0])), "duplicate image id 1"),
        (lambda c: c["annotations"].append(dict(c["annotations"][0])), "duplicate annotation id 5"),
        (lambda c: c["annotations"][0].update(image_id=99), "annotation 5 refers to unknown image id 99"),
        (lambda c: c["annotations"][0].update(category_id=3), "annotation 5 refers to unknown category id 3"),
        (lambda c: c.pop("categories"), "missing key 'categories'"),
        (lambda c: c.update(images={}), "'images' is not a list"),
        (lambda c: c["images"][0].pop("width"), r"images\[0\] has no 'width'"),
        (lambda c: c["images"][0].update(id="1"), "image id '1' is not an integer"),
        (lambda c: c["images"][0].update(height=0), "image 1: width/height must be positive"),
    ],
)
def test_bad_documents_name_the_culprit(tmp_path, mutate, message):
    coco = _coco()
    mutate(coco)
    with pytest.raises(LrpError, match=message):
        d.adopt(coco, "x.json", images=tmp_path)


def test_results_for_unknown_images_are_rejected(tmp_path):
    doc = d.adopt(_coco(), "x.json", images=tmp_path)
    doc["lrp"]["detections"] = [{"image_id": 2, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5}]
    with pytest.raises(LrpError, match=r"lrp.detections\[0\] refers to unknown image id 2"):
        d.check_document(doc, "x.json")
    results = tmp_path / "res.json"
    results.write_text(json.dumps([{"image_id": 3, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 1}]))
    with pytest.raises(LrpError, match="unknown image id 3"):
        d.load_results(str(results), doc)


def test_malformed_and_non_coco_json(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": [')
    with pytest.raises(LrpError, match=r"bad.json: not valid JSON"):
        load_document(str(bad), images=tmp_path)
    lst = tmp_path / "list.json"
    lst.write_text("[]")
    with pytest.raises(LrpError, match="a JSON list"):
        load_document(str(lst), images=tmp_path)
    with pytest.raises(LrpError, match="no such file"):
        load_document(str(tmp_path / "missing.json"), images=tmp_path)


def test_stdin_and_empty_stdin(tmp_path):
    doc = load_document("-", images=tmp_path, stdin=io.StringIO(json.dumps(_coco())))
    assert doc["images"][0]["id"] == 1
    with pytest.raises(LrpError, match="empty input"):
        load_document(None, images=tmp_path, stdin=io.StringIO(""))


def test_lrp_document_round_trips_through_json(tmp_path):
    doc = d.adopt(_coco(), "x.json", images=tmp_path)
    d.add_history(doc, "degrade", {"scale": 0.25, "out": tmp_path})
    out = tmp_path / "doc.json"
    outputs.write_document(doc, out)
    again = load_document(str(out))
    assert again == json.loads(json.dumps(doc))
    assert again["lrp"]["history"][0]["args"] == {"scale": 0.25, "out": str(tmp_path)}
    assert "\n" not in out.read_text().strip()  # compact


def test_unknown_schema_is_refused(tmp_path):
    doc = d.adopt(_coco(), "x.json", images=tmp_path)
    doc["lrp"]["schema"] = "lrp/99"
    with pytest.raises(LrpError, match="unknown lrp schema"):
        d.adopt(doc, "y.json")


def test_atomic_write_leaves_no_half_file(tmp_path, monkeypatch):
    target = tmp_path / "out.json"
    target.write_text("old")

    class Boom(Exception):
        pass

    def failing_replace(*a, **k):
        raise Boom()

    monkeypatch.setattr(outputs.os, "replace", failing_replace)
    with pytest.raises(Boom):
        outputs.atomic_write_text(target, "new content")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]  # no temp file left behind


def _lrp_imports() -> dict[str, set[str]]:
    """Every lrp module and the lrp modules it imports, at the top or inside functions."""
    import ast
    from pathlib import Path

    package = Path(d.__file__).resolve().parent
    graph: dict[str, set[str]] = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(package.parent).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found = graph.setdefault(module, set())
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = module.split(".")[: -node.level + (path.name == "__init__.py") or None]
                target = ".".join(base + ([node.module] if node.module else []))
            elif isinstance(node, ast.ImportFrom):
                target = node.module or ""
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("lrp"):
                        found.add(alias.name)
                continue
            else:
                continue
            if target.startswith("lrp"):
                # `from lrp import geometry` imports the module lrp.geometry
                names = [f"{target}.{a.name}" for a in node.names]
                found.update(n for n in names if (package.parent / (n.replace(".", "/") + ".py")).exists()
                             or (package.parent / n.replace(".", "/") / "__init__.py").exists())
                if target != "lrp":
                    found.add(target)
    return {m: {t for t in ts if t != m} for m, ts in graph.items()}


def test_no_import_cycles():
    """No circle among lrp's modules, counting imports inside functions too (they run later, but
    a circle still means two modules that cannot be understood one without the other)."""
    graph = _lrp_imports()
    assert "lrp.document" in graph and "lrp.outputs" in graph["lrp.sample"]
    state: dict[str, int] = {}
    cycles = []

    def visit(module: str, stack: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph.get(module, ())):
            if target == "lrp":
                continue
            if state.get(target) == 1:
                cycles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target, stack + [target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_every_module_imports():
    import importlib

    for module in sorted(_lrp_imports()):
        if module != "lrp.__main__":
            importlib.import_module(module)


def test_compressed_rle_reader_agrees_with_pycocotools():
    """The RLE check decodes COCO's compressed counts itself (pycocotools would read past its
    buffer on a bad string); on real masks it must give pycocotools' own run lengths."""
    import numpy as np
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(3)
    for h, w in ((40, 60), (7, 300), (123, 45)):
        m = (rng.random((h, w)) < rng.uniform(0.05, 0.9)).astype(np.uint8)
        m[: h // 3] = 0  # long runs too
        rle = mask_utils.encode(np.asfortranarray(m))
        counts = d._rle_counts(rle["counts"].decode("ascii"))
        runs = mask_utils.frPyObjects({"size": [h, w], "counts": counts}, h, w)
        assert (mask_utils.decode(runs) == m).all()
        assert sum(counts) == h * w
    assert d._rle_counts("\x7f") is None and d._rle_counts("P") is None  # out of range, unfinished


def _with_keypoints():
    coco = _coco()
    coco["categories"][0]["keypoints"] = ["nose", "eye"]
    coco["annotations"][0].update(keypoints=[1, 2, 2, 0, 0, 0], num_keypoints=1, segmentation=[[1, 1, 3, 1, 3, 3]])
    return coco


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda c: c["annotations"][0].update(bbox=[1, 1, -2, 2]), r"annotation 5 \(image 1\): key 'bbox' must be four finite numbers"),
        (lambda c: c["annotations"][0].update(bbox=[1, 1, True, 2]), r"annotation 5 \(image 1\): key 'bbox'"),
        (lambda c: c["annotations"][0].update(area=float("inf")), r"annotation 5 \(image 1\): key 'area'"),
        (lambda c: c["annotations"][0].update(keypoints=[1, 2, 2]), r"annotation 5 \(image 1\): key 'keypoints' has 3 values, expected 6"),
        (lambda c: c["annotations"][0].update(keypoints=[1, 2, "2", 0, 0, 0]), r"annotation 5 \(image 1\): key 'keypoints' must be a list of finite numbers"),
        (lambda c: c["annotations"][0].update(segmentation=[[1, 1, 3]]), r"annotation 5 \(image 1\): key 'segmentation' must hold polygons"),
        (lambda c: c["annotations"][0].update(segmentation="x"), r"annotation 5 \(image 1\): key 'segmentation' must be a list of polygons or an RLE"),
        (lambda c: c["annotations"][0].update(segmentation={"size": [8, 10], "counts": [79]}), r"annotation 5 \(image 1\): key 'segmentation.counts' is not an RLE of 8x10 pixels"),
        (lambda c: c["annotations"][0].update(segmentation={"size": [8, 10], "counts": [-1, 81]}), r"annotation 5 \(image 1\): key 'segmentation.counts' is not an RLE of 8x10 pixels"),
        (lambda c: c["images"][0].update(file_name="a/"), r"image 1: key 'file_name' must name an image file"),
        (lambda c: c["images"][0].update(lrp={"xform": [1, 1, 0]}), r"image 1: key 'lrp.xform' must be \[sx, sy, tx, ty\]"),
        (lambda c: c["images"][0].update(lrp={"xform": [0, 1, 0, 0]}), r"image 1: key 'lrp.xform' must be"),
        (lambda c: c["images"][0].update(lrp={"origin": {"file_name": "a.jpg", "width": -1, "height": 2}}), r"image 1: key 'lrp.origin' must hold"),
        (lambda c: c["categories"][0].update(keypoints="nose"), r"category 1: key 'keypoints' must be a list of names"),
        (lambda c: c["categories"][0].update(id=[1]), r"category id \[1\] is not an integer"),
        (lambda c: c["annotations"][0].update(iscrowd=2), r"annotation 5 \(image 1\): key 'iscrowd' must be 0 or 1, got 2"),
        (lambda c: c["annotations"][0].update(num_keypoints="1"), r"annotation 5 \(image 1\): key 'num_keypoints' must be an integer >= 0, got '1'"),
    ],
)
def test_bad_values_are_refused_on_reading(tmp_path, mutate, message):
    coco = _with_keypoints()
    d.adopt(json.loads(json.dumps(coco)), "x.json", images=tmp_path)  # the unmutated one passes
    mutate(coco)
    with pytest.raises(LrpError, match="^x.json: " + message):
        d.adopt(coco, "x.json", images=tmp_path)


def test_results_files_are_validated_like_documents(tmp_path):
    doc = d.adopt(_with_keypoints(), "x.json", images=tmp_path)
    good = {"image_id": 1, "category_id": 1, "keypoints": [1, 2, 0.5, 3, 4, 0.9], "score": 0.7}
    for bad, message in [
        (dict(good, keypoints=[1, 2, 0.5]), r"res.json\[0\] \(image 1\): key 'keypoints' has 3 values, expected 6"),
        (dict(good, score=None), r"key 'score' must be a finite number, got None"),
        (dict(good, score=True), r"key 'score' must be a finite number, got True"),
        (dict(good, category_id="1"), r"key 'category_id' must be an integer, got '1'"),
        (dict(good, category_id=2), r"refers to unknown category id 2"),
    ]:
        path = tmp_path / "res.json"
        path.write_text(json.dumps([good, bad][::-1]))
        with pytest.raises(LrpError, match=message):
            d.load_results(str(path), doc)
    path.write_text('[{"image_id": 1, "category_id": 1, "score": -Infinity}]')
    with pytest.raises(LrpError, match=r"res.json: \[0\] \(image 1\): key 'score': -Infinity is not a JSON number"):
        d.load_results(str(path), doc)


def test_origin_root_is_recorded_and_carried(tmp_path):
    doc = d.adopt(_coco(), "x.json", images=tmp_path)
    assert doc["lrp"]["origin_root"] == str(tmp_path.resolve()) == d.origin_root(doc)
    derived = d.derive(doc)
    derived["lrp"]["image_root"] = "/elsewhere"
    d.add_history(derived, "degrade", {})
    again = d.adopt(json.loads(json.dumps(derived)), "y.json")
    assert d.origin_root(again) == str(tmp_path.resolve())


@pytest.mark.parametrize("key, value, message", [
    ("history", "degrade", "key 'lrp.history' must be a list of steps"),
    ("history", [{"args": {}}], "key 'lrp.history' must be a list of steps"),
    ("degradation", "bicubic", "key 'lrp.degradation' must be an object or null"),
    ("image_root", 5, "key 'lrp.image_root' is missing or not a folder path"),
    ("origin_root", "", "key 'lrp.origin_root' is missing or not a folder path"),
])
def test_bad_lrp_blocks_are_refused(tmp_path, key, value, message):
    doc = json.loads(json.dumps(d.adopt(_coco(), "x.json", images=tmp_path)))
    doc["lrp"][key] = value
    with pytest.raises(LrpError, match="^y.json: " + re.escape(message)):
        d.adopt(doc, "y.json")
