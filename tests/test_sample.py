"""The embedded sample is exact by construction: check it with pycocotools, not with itself."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from lrp import sample
from lrp.images import load_rgb


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    root = tmp_path_factory.mktemp("sample")
    sample.ensure_sample(root)
    return root, json.loads((root / "person_keypoints.json").read_text())


def test_sample_is_deterministic(drawn, tmp_path):
    root, coco = drawn
    sample.ensure_sample(tmp_path)
    assert json.loads((tmp_path / "person_keypoints.json").read_text()) == coco
    for img in coco["images"]:
        assert (root / "images" / img["file_name"]).read_bytes() == (tmp_path / "images" / img["file_name"]).read_bytes()


def test_sample_annotations_are_consistent(drawn):
    root, coco = drawn
    images = {i["id"]: i for i in coco["images"]}
    areas = []
    for ann in coco["annotations"]:
        img = images[ann["image_id"]]
        h, w = img["height"], img["width"]
        seg = ann["segmentation"]
        rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w)) if isinstance(seg, list) else seg
        assert ann["area"] == pytest.approx(float(mask_utils.area(rle)))
        x, y, bw, bh = ann["bbox"]
        mx, my, mw, mh = mask_utils.toBbox(rle)
        # the polygon box contains the rasterised mask's box (to the pixel)
        assert x <= mx + 1 and y <= my + 1 and x + bw >= mx + mw - 1 and y + bh >= my + mh - 1
        kps = np.array(ann["keypoints"]).reshape(17, 3)
        assert ann["num_keypoints"] == int((kps[:, 2] > 0).sum())
        vis = kps[kps[:, 2] > 0]
        assert ((vis[:, 0] >= x - 1) & (vis[:, 0] <= x + bw + 1) & (vis[:, 1] >= y - 1) & (vis[:, 1] <= y + bh + 1)).all()
        areas.append(ann["area"])
        arr = load_rgb(root / "images" / img["file_name"], img["id"], (w, h))
        assert arr.shape == (h, w, 3)
    assert min(areas) < 32 * 32 and max(areas) > 96 * 96  # tiny and large people
    assert any(a["iscrowd"] for a in coco["annotations"])
    assert sum(a["num_keypoints"] > 0 for a in coco["annotations"]) >= 6
    assert all(a["num_keypoints"] == 0 for a in coco["annotations"] if a["area"] < 32 * 32)
    assert len({a["id"] for a in coco["annotations"]}) == len(coco["annotations"])


def test_sample_document_is_an_lrp_document(monkeypatch, tmp_path):
    monkeypatch.setenv("LRP_SAMPLE_DIR", str(tmp_path / "cache"))
    doc = sample.sample_document()
    assert doc["lrp"]["schema"] == "lrp/1"
    assert doc["lrp"]["image_root"] == str((tmp_path / "cache" / "images").resolve())
    assert sample.main([str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "person_keypoints.json").is_file()
