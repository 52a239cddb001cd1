"""Frames: xforms compose and invert, every kind of annotation moves consistently."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from lrp import geometry as g


def test_compose_and_invert_are_exact_inverses():
    a = [107 / 427, 160 / 640, 0.0, 0.0]
    b = g.strided_xform(2)
    ab = g.compose(a, b)
    x, y = 123.25, 77.5
    xs, ys = g.map_points([x], [y], ab)
    # applying a, then b, equals the composed xform
    xa, ya = g.map_points([x], [y], a)
    xb, yb = g.map_points(xa, ya, b)
    assert xs[0] == pytest.approx(xb[0], abs=1e-12) and ys[0] == pytest.approx(yb[0], abs=1e-12)
    back = g.map_points(xs, ys, g.invert(ab))
    assert back[0][0] == pytest.approx(x, abs=1e-9) and back[1][0] == pytest.approx(y, abs=1e-9)


def test_strided_offset_maps_pixel_centres():
    xf = g.strided_xform(4)
    # input pixel 4*i has its centre at 4*i + 0.5; it becomes output pixel i, centre i + 0.5
    for i in range(5):
        assert g.map_points([4 * i + 0.5], [0], xf)[0][0] == pytest.approx(i + 0.5)


def test_output_size_is_matlab_ceil():
    assert g.output_size(427, 0.25) == 107
    assert g.output_size(640, 0.25) == 160
    assert g.output_size(30, 0.1) == 3  # not 4: 30*0.1 = 3.0000000000000004 in floating point
    assert g.output_size(3, 0.1) == 1


def test_annotation_moves_bbox_area_polygon_keypoints():
    ann = {
        "id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": 400.0, "bbox": [10, 20, 30, 40],
        "segmentation": [[10, 20, 40, 20, 40, 60, 10, 60]], "num_keypoints": 1,
        "keypoints": [15, 25, 2] + [0, 0, 0] * 16,
    }
    xf = [0.5, 0.25, 1.0, 2.0]
    out = g.map_annotation(ann, xf, (50, 25))
    assert out["bbox"] == [6.0, 7.0, 15.0, 10.0]
    assert out["area"] == pytest.approx(400 * 0.125)
    assert out["segmentation"][0][:4] == [6.0, 7.0, 21.0, 7.0]
    assert out["keypoints"][:3] == [8.5, 8.25, 2]
    assert out["keypoints"][3:6] == [0, 0, 0]  # v = 0 stays (0, 0, 0)
    assert out["id"] == 1 and out["num_keypoints"] == 1 and out["iscrowd"] == 0
    assert ann["bbox"] == [10, 20, 30, 40]  # the input is not modified


def test_crowd_rle_is_resized_and_keeps_its_shape():
    h, w = 40, 60
    mask = np.zeros((h, w), np.uint8)
    mask[8:24, 12:44] = 1
    rle = mask_utils.encode(np.asfortranarray(mask))
    rle["counts"] = rle["counts"].decode()
    xf = [0.5, 0.5, 0.0, 0.0]
    out = g.map_rle(rle, xf, (30, 20))
    assert out["size"] == [20, 30]
    small = mask_utils.decode(out)
    assert small.sum() == (24 - 8) // 2 * (44 - 12) // 2
    assert small[4:12, 6:22].all()
    # uncompressed RLE (counts as a list) is accepted too
    unc = {"size": [h, w], "counts": [int(v) for v in _uncompressed_counts(mask)]}
    assert mask_utils.decode(g.map_rle(unc, xf, (30, 20))).sum() == small.sum()


def _uncompressed_counts(mask):
    flat = mask.flatten(order="F")
    counts, current, run = [], 0, 0
    for v in flat:
        if v != current:
            counts.append(run)
            current, run = v, 0
        run += 1
    counts.append(run)
    return counts


def test_result_keypoints_all_move():
    res = {"image_id": 1, "category_id": 1, "score": 0.9, "keypoints": [1, 2, 0.5] * 17, "bbox": [0, 0, 4, 4]}
    out = g.map_result(res, [2, 2, 0, 0], (10, 10))
    assert out["keypoints"][:3] == [2, 4, 0.5]
    assert out["score"] == 0.9


def test_reframe_document_composes_xform(tmp_path):
    doc = {
        "images": [{"id": 7, "file_name": "a.jpg", "width": 427, "height": 640,
                    "lrp": {"origin": {"file_name": "a.jpg", "width": 427, "height": 640}, "xform": [1.0, 1.0, 0.0, 0.0]}}],
        "annotations": [{"id": 1, "image_id": 7, "category_id": 1, "bbox": [100, 100, 40, 80], "area": 2000.0}],
        "lrp": {"detections": [{"image_id": 7, "category_id": 1, "bbox": [100, 100, 40, 80], "score": 1.0}], "poses": []},
    }
    size = (g.output_size(427, 0.25), g.output_size(640, 0.25))
    xf = g.resize_xform((427, 640), size)
    g.reframe_document(doc, {7: size}, {7: xf}, {7: "a.png"})
    img = doc["images"][0]
    assert (img["width"], img["height"], img["file_name"]) == (107, 160, "a.png")
    assert img["lrp"]["xform"][0] == pytest.approx(107 / 427)
    assert doc["annotations"][0]["bbox"] == doc["lrp"]["detections"][0]["bbox"]
    back = g.map_bbox(doc["annotations"][0]["bbox"], g.invert(img["lrp"]["xform"]))
    assert back == pytest.approx([100, 100, 40, 80], abs=1e-9)
    assert math.isclose(doc["annotations"][0]["area"], 2000 * (107 / 427) * (160 / 640))
