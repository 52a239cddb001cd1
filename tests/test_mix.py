"""`lrp mix`: the area threshold routes each person to the SR or the original pose."""

from __future__ import annotations

import json

import pytest

from lrp import geometry as g
from lrp.document import adopt, derive
from lrp.errors import LrpError
from lrp.mix import mix_documents, person_areas, split_images, transfer_detections
from tests.conftest import run_lrp


def _lr_doc(tmp_path):
    coco = {
        "images": [{"id": 1, "file_name": "a.png", "width": 100, "height": 80}],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 1, "iscrowd": 0, "bbox": [5, 5, 10, 20], "area": 150.0,
             "num_keypoints": 1, "keypoints": [10, 10, 2] + [0, 0, 0] * 16},
            {"id": 11, "image_id": 1, "category_id": 1, "iscrowd": 0, "bbox": [40, 10, 50, 60], "area": 2400.0,
             "num_keypoints": 1, "keypoints": [60, 30, 2] + [0, 0, 0] * 16},
        ],
        "categories": [{"id": 1, "name": "person"}],
    }
    return adopt(coco, "lr.json", images=tmp_path)


def _sr_doc(lr):
    sr = derive(lr)
    g.reframe_document(sr, {1: (400, 320)}, {1: [4.0, 4.0, 0.0, 0.0]}, {1: "a.png"})
    # Mask areas in the SR frame: 16x the LR areas of the two people.
    sr["lrp"]["detections"] = [
        {"image_id": 1, "category_id": 1, "bbox": [20, 20, 40, 80], "score": 0.9, "area": 150.0 * 16},
        {"image_id": 1, "category_id": 1, "bbox": [160, 40, 200, 240], "score": 0.8, "area": 2400.0 * 16},
    ]
    return sr


def _pose(bbox, x, y, tag):
    return {"image_id": 1, "category_id": 1, "bbox": bbox, "score": 1.0, "keypoints": [x, y, 1.0] * 17, "tag": tag}


def _both(tmp_path):
    lr = _lr_doc(tmp_path)
    sr = _sr_doc(lr)
    sr["lrp"]["poses"] = [_pose(d["bbox"], 40.0, 40.0, "sr") for d in sr["lrp"]["detections"]]
    lr2 = transfer_detections(sr, lr)
    lr2["lrp"]["poses"] = [_pose(d["bbox"], 11.0, 11.0, "lr") for d in lr2["lrp"]["detections"]]
    return sr, lr2


def test_transfer_maps_detections_back(tmp_path):
    lr = _lr_doc(tmp_path)
    sr = _sr_doc(lr)
    back = transfer_detections(sr, lr)
    assert [d["bbox"] for d in back["lrp"]["detections"]] == [[5, 5, 10, 20], [40, 10, 50, 60]]
    assert back["lrp"]["detections"][0]["area"] == pytest.approx(150.0)
    assert back["images"][0]["width"] == 100


def test_areas_are_converted_to_the_lr_frame(tmp_path):
    sr, lr = _both(tmp_path)
    areas = person_areas(sr, lr, "detections", "lr")
    assert areas == {(1, 0): pytest.approx(150.0), (1, 1): pytest.approx(2400.0)}
    assert person_areas(sr, lr, "detections", "sr")[(1, 0)] == pytest.approx(2400.0)
    assert person_areas(sr, lr, "box", "lr")[(1, 1)] == pytest.approx(50 * 60)
    assert person_areas(sr, lr, "gt", "lr")[(1, 1)] == pytest.approx(2400.0)


@pytest.mark.parametrize("threshold, sources", [(0, ["lr", "lr"]), (150, ["sr", "lr"]), (2000, ["sr", "lr"]), (2400, ["sr", "sr"])])
def test_threshold_routes_people(tmp_path, threshold, sources):
    sr, lr = _both(tmp_path)
    mixed, counts = mix_documents(sr, lr, threshold)
    got = sorted(mixed["lrp"]["poses"], key=lambda p: p["bbox"][0])
    assert [p["lrp_source"] for p in got] == sources
    for p in got:
        # every pose ends up in the LR frame: SR keypoints (40, 40) map to (10, 10)
        assert p["keypoints"][:2] == ([10.0, 10.0] if p["lrp_source"] == "sr" else [11.0, 11.0])
    assert counts["sr"] + counts["lr"] == 2 and counts["unmatched"] == 0
    assert mixed["images"] == lr["images"]


def test_missing_inputs_are_clear_errors(tmp_path):
    sr, lr = _both(tmp_path)
    sr["lrp"]["detections"][0].pop("area")
    with pytest.raises(LrpError, match="has no mask 'area'"):
        mix_documents(sr, lr, 3500)
    lr["lrp"]["poses"] = []
    with pytest.raises(LrpError, match="LR_DOC has no lrp.poses"):
        mix_documents(sr, lr, 3500, areas="box")


def test_split_is_seeded_and_disjoint():
    a, b = split_images(range(10), seed=3)
    assert a.isdisjoint(b) and a | b == set(range(10)) and len(a) == 5
    assert split_images(range(10), seed=3) == (a, b)


def test_cli_mix_and_boxes_only(tmp_path, runner):
    sr, lr = _both(tmp_path)
    (tmp_path / "sr.json").write_text(json.dumps(sr))
    (tmp_path / "lr.json").write_text(json.dumps(lr))
    result = run_lrp(runner, ["mix", "-q", "--threshold", "3500", str(tmp_path / "sr.json"), str(tmp_path / "lr.json")])
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert {p["lrp_source"] for p in out["lrp"]["poses"]} == {"sr"}
    assert out["lrp"]["history"][-1]["command"] == "mix"
    result = run_lrp(runner, ["mix", "--boxes-only", str(tmp_path / "sr.json"), str(tmp_path / "lr.json")])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["lrp"]["poses"] == []
    bad = run_lrp(runner, ["mix", "--threshold", "big", str(tmp_path / "sr.json"), str(tmp_path / "lr.json")])
    assert bad.exit_code == 2 and "--threshold 'big'" in bad.stderr


def test_auto_threshold_is_chosen_on_the_selection_split_only(tmp_path):
    from lrp.mix import sweep_thresholds

    # Four images; the SR poses are right for small people only, LR poses right for large ones.
    lr = _lr_doc(tmp_path)
    lr["images"] = [dict(lr["images"][0], id=i) for i in range(1, 5)]
    for img in lr["images"]:
        img["lrp"] = {"origin": {"file_name": "a.png", "width": 100, "height": 80}, "xform": [1.0, 1.0, 0.0, 0.0]}
    base = lr["annotations"]
    lr["annotations"] = [dict(a, id=a["id"] * 10 + i, image_id=i) for i in range(1, 5) for a in base]
    sr = derive(lr)
    g.reframe_document(sr, {i: (400, 320) for i in range(1, 5)}, {i: [4.0, 4.0, 0.0, 0.0] for i in range(1, 5)},
                       {i: "a.png" for i in range(1, 5)})
    sr["lrp"]["detections"] = [
        {"image_id": a["image_id"], "category_id": 1, "bbox": a["bbox"], "score": 0.9, "area": a["area"]} for a in sr["annotations"]
    ]
    def kp(ann, good, scale):
        x, y = ann["keypoints"][0], ann["keypoints"][1]
        off = 0.0 if good else 15.0 * scale
        return [x + off, y + off, 1.0] + [0.0, 0.0, 0.0] * 16
    small = {a["id"] for a in sr["annotations"] if a["area"] < 5000}
    sr["lrp"]["poses"] = [dict(d, keypoints=kp(a, a["id"] in small, 4)) for d, a in zip(sr["lrp"]["detections"], sr["annotations"])]
    lr2 = transfer_detections(sr, lr)
    lr2["lrp"]["poses"] = [dict(d, keypoints=kp(a, a["id"] not in small, 1)) for d, a in zip(lr2["lrp"]["detections"], lr["annotations"])]
    best, curve, (sel, rep) = sweep_thresholds(sr, lr2, [0.0, 150.0, 2400.0])
    assert sel.isdisjoint(rep) and len(sel) == 2
    assert best["threshold"] == 150.0  # small people (150 px^2) from SR, large (2400) from LR
    assert best["selection_AP"] == pytest.approx(1.0) and best["report_AP"] == pytest.approx(1.0)
    assert [r["threshold"] for r in curve] == [0.0, 150.0, 2400.0]
    assert curve[0]["selection_AP"] < 1.0 and curve[2]["selection_AP"] < 1.0


# --------------------------------------------------------------------------------------------
# --areas gt on poses from `lrp pose --boxes gt` (no detections): the oracle mix


def _gt_pose(ann, dx, tag):
    """A pose as `lrp pose --boxes gt` writes it: the GT box as given, keypoints near the GT."""
    k = [v + dx if i % 3 != 2 else 1.0 for i, v in enumerate(ann["keypoints"])]
    return {"image_id": ann["image_id"], "category_id": 1, "bbox": list(ann["bbox"]), "keypoints": k,
            "score": 0.9, "tag": tag}


def _gt_box_docs(tmp_path):
    lr = _lr_doc(tmp_path)
    lr["annotations"].append({"id": 12, "image_id": 1, "category_id": 1, "iscrowd": 1, "bbox": [0, 0, 5, 5], "area": 25.0,
                              "num_keypoints": 0, "keypoints": [0, 0, 0] * 17})
    sr = derive(lr)
    g.reframe_document(sr, {1: (400, 320)}, {1: [4.0, 4.0, 0.0, 0.0]}, {1: "a.png"})
    assert not sr["lrp"]["detections"] and not lr["lrp"]["detections"]
    people = [a for a in lr["annotations"] if not a["iscrowd"]]
    sr["lrp"]["poses"] = [_gt_pose(a, 4.0, f"sr{a['id']}") for a in sr["annotations"] if not a["iscrowd"]]
    lr["lrp"]["poses"] = [_gt_pose(a, 1.0, f"lr{a['id']}") for a in people]
    return sr, lr


@pytest.mark.parametrize("threshold", [0, 150, 2000, 2400, 1e9])
def test_areas_gt_on_gt_box_poses_keeps_every_person_once(tmp_path, threshold):
    sr, lr = _gt_box_docs(tmp_path)
    mixed, counts = mix_documents(sr, lr, threshold, areas="gt")
    # The hand-built selection: person 10 (LR area 150) and 11 (2400), SR at or below the threshold.
    expected = []
    for aid, area in ((10, 150.0), (11, 2400.0)):
        src = "sr" if area <= threshold else "lr"
        pose = next(p for p in (sr if src == "sr" else lr)["lrp"]["poses"] if p["tag"] == f"{src}{aid}")
        if src == "sr":
            pose = g.map_result(pose, [0.25, 0.25, 0.0, 0.0], (100, 80))
        expected.append(dict(pose, lrp_source=src))
    assert mixed["lrp"]["poses"] == expected
    assert sorted(p["tag"][2:] for p in mixed["lrp"]["poses"]) == ["10", "11"]  # each GT person once
    assert counts == {"sr": sum(a <= threshold for a in (150, 2400)), "lr": sum(a > threshold for a in (150, 2400)),
                      "unmatched": 0, "missing": 0}


def test_areas_gt_on_gt_box_poses_from_the_cli_and_auto(tmp_path, runner):
    sr, lr = _gt_box_docs(tmp_path)
    (tmp_path / "sr.json").write_text(json.dumps(sr))
    (tmp_path / "lr.json").write_text(json.dumps(lr))
    result = run_lrp(runner, ["mix", "--areas", "gt", "--threshold", "1000", str(tmp_path / "sr.json"), str(tmp_path / "lr.json")])
    assert result.exit_code == 0, result.stderr
    assert [p["lrp_source"] for p in json.loads(result.stdout)["lrp"]["poses"]] == ["sr", "lr"]
    assert "1 people from SR, 1 from the original" in result.stderr
    # Without --areas gt the missing detections are still a clear error, now naming the way out.
    bad = run_lrp(runner, ["mix", "--threshold", "1000", str(tmp_path / "sr.json"), str(tmp_path / "lr.json")])
    assert bad.exit_code == 1 and "SR_DOC has no lrp.detections" in bad.stderr and "--areas gt" in bad.stderr


def test_areas_gt_on_real_coco_with_synthetic_poses(coco_val4):
    """coco-val-4 at 1/4 and x4 back, posed on GT boxes: every person with keypoints exactly once."""
    from tests.test_evaluate import jittered_poses, load_val4, rescaled

    hr = load_val4(coco_val4, poses_seed=None)
    lr = rescaled(hr, 0.25)
    sr = rescaled(lr, 4)
    for doc, seed in ((lr, 1), (sr, 2)):
        doc["lrp"]["detections"] = []
        poses = jittered_poses(doc, seed, extra=0)
        for p, a in zip(poses, [a for a in doc["annotations"] if not a["iscrowd"] and a["num_keypoints"] > 0]):
            p["bbox"] = list(a["bbox"])
            p["ann"] = a["id"]
        doc["lrp"]["poses"] = poses
    people = {a["id"] for a in lr["annotations"] if not a["iscrowd"] and a["num_keypoints"] > 0}
    assert len(people) >= 10
    areas = {a["id"]: a["area"] for a in lr["annotations"]}
    threshold = sorted(areas[i] for i in people)[len(people) // 2]
    mixed, counts = mix_documents(sr, lr, threshold, areas="gt")
    got = {p["ann"]: p["lrp_source"] for p in mixed["lrp"]["poses"]}
    assert len(mixed["lrp"]["poses"]) == len(people) and set(got) == people
    for aid, src in got.items():
        # SR area mapped to the LR frame equals the LR area up to rounding; none sits on the edge here.
        assert src == ("sr" if areas[aid] <= threshold else "lr"), aid
    assert counts["sr"] > 0 and counts["lr"] > 0 and counts["missing"] == 0
