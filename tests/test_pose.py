"""`lrp pose` end to end on real COCO images, with a tiny random-weight HRNet registered for the test.

Random weights test the plumbing (which boxes, frames, rescoring, NMS, errors); the real-weight
check is the MoveNet test at the end, which runs only where `lrp weights fetch movenet-thunder`
has been done.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lrp.document import adopt
from lrp.models import REGISTRY, ModelSpec, WeightsInfo
from lrp.topdown import box_to_center_scale
from tests.conftest import run_lrp

TINY = ModelSpec(
    name="hrnet-tiny-test",
    task="pose",
    arch="hrnet-tiny-test",
    builder="lrp.models.hrnet:PoseHighResolutionNet",
    kwargs={"width": 8, "stage_modules": [1, 1, 1], "stage_blocks": 1, "layer1_blocks": 1, "input_size": [48, 64]},
    weights=WeightsInfo(file="hrnet-tiny-test.safetensors", source="made by the test", licence="-", trained_on="nothing"),
)


@pytest.fixture
def tiny_model(monkeypatch, tmp_path):
    from safetensors.torch import save_file

    monkeypatch.setitem(REGISTRY, TINY.name, TINY)
    monkeypatch.setenv("LRP_WEIGHTS", str(tmp_path / "weights"))
    (tmp_path / "weights").mkdir()
    torch.manual_seed(0)
    model = TINY.build()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "weights" / TINY.weights.file))
    return TINY.name


@pytest.fixture
def val4_doc(coco_val4, tmp_path):
    data = json.loads((coco_val4 / "person_keypoints.json").read_text())
    doc = adopt(data, "val4", images=coco_val4 / "images")
    path = tmp_path / "val4.json"
    path.write_text(json.dumps(doc))
    return path, doc


def run_pose(runner, path, *args):
    return run_lrp(runner, ["pose", str(path), "-q", "--device", "cpu", *args])


def test_gt_boxes_give_one_pose_per_person_with_keypoints(runner, tiny_model, val4_doc):
    path, doc = val4_doc
    res = run_pose(runner, path, "--model", tiny_model)
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    poses = out["lrp"]["poses"]
    with_kps = [a for a in doc["annotations"] if max(a["keypoints"]) > 0]
    assert len(poses) == len(with_kps) == 12  # people without keypoints are not run (official)
    assert sorted(map(tuple, (p["bbox"] for p in poses))) == sorted(map(tuple, (a["bbox"] for a in with_kps)))
    imgs = {i["id"]: i for i in doc["images"]}
    for p in poses:
        assert p["category_id"] == 1 and len(p["keypoints"]) == 51 and p["score"] >= 0
        k = np.array(p["keypoints"]).reshape(17, 3)
        center, scale = box_to_center_scale([p["bbox"]], 48 / 64)  # the crop: aspect-fixed, padded
        assert np.all(np.abs(k[:, :2] - center[0]) <= scale[0] * 100 + 1)
        assert imgs[p["image_id"]]
    assert out["lrp"]["history"][-1]["command"] == "pose"
    assert out["lrp"]["history"][-1]["args"]["boxes"] == "gt"
    assert out["annotations"] == doc["annotations"]  # GT untouched


def test_results_load_in_pycocotools(runner, tiny_model, val4_doc):
    from pycocotools.coco import COCO

    path, _ = val4_doc
    out = json.loads(run_pose(runner, path, "--model", tiny_model).stdout)
    gt = COCO()
    gt.dataset = {k: out[k] for k in ("images", "annotations", "categories")}
    gt.createIndex()
    assert len(gt.loadRes(out["lrp"]["poses"]).anns) == 12


def test_batch_size_does_not_change_results_and_flip_does(runner, tiny_model, val4_doc):
    path, _ = val4_doc
    a = json.loads(run_pose(runner, path, "--model", tiny_model, "--batch-size", "1").stdout)["lrp"]["poses"]
    b = json.loads(run_pose(runner, path, "--model", tiny_model, "--batch-size", "64").stdout)["lrp"]["poses"]
    c = json.loads(run_pose(runner, path, "--model", tiny_model, "--no-flip").stdout)["lrp"]["poses"]
    np.testing.assert_allclose([p["keypoints"] for p in a], [p["keypoints"] for p in b], atol=1e-3)
    assert not np.allclose([p["keypoints"] for p in a], [p["keypoints"] for p in c])


def test_detection_boxes_threshold_and_bad_boxes(runner, tiny_model, val4_doc, coco_val4, tmp_path):
    path, doc = val4_doc
    dets = json.loads((coco_val4 / "detections_AP_H_56.json").read_text())
    bad = [
        {"image_id": dets[0]["image_id"], "category_id": 1, "bbox": [10, 10, 0, 50], "score": 0.99},  # zero width
        {"image_id": dets[0]["image_id"], "category_id": 1, "bbox": [5000, 10, 40, 50], "score": 0.99},  # outside
        {"image_id": dets[0]["image_id"], "category_id": 18, "bbox": [10, 10, 40, 50], "score": 0.99},  # a dog
    ]
    doc["categories"].append({"id": 18, "name": "dog"})
    doc["lrp"]["detections"] = dets + bad
    path.write_text(json.dumps(doc))
    res = run_lrp(runner, ["pose", str(path), "--device", "cpu", "--model", tiny_model, "--boxes", "detections", "--det-threshold", "0.5"])
    assert res.exit_code == 0, res.stderr
    kept = [d for d in dets if d["score"] >= 0.5]
    out = json.loads(res.stdout)
    poses = out["lrp"]["poses"]
    assert 0 < len(poses) <= len(kept)
    assert {tuple(p["bbox"]) for p in poses} <= {tuple(d["bbox"]) for d in kept}
    assert "1 zero-size boxes" in res.stderr and "1 boxes outside the image" in res.stderr
    assert "1 non-person detections" in res.stderr
    assert out["lrp"]["detections"] == dets + bad  # detections stay in place


def test_oks_nms_threshold_one_keeps_every_box(runner, tiny_model, val4_doc, coco_val4):
    path, doc = val4_doc
    doc["lrp"]["detections"] = json.loads((coco_val4 / "detections_AP_H_56.json").read_text())[:30]
    path.write_text(json.dumps(doc))
    everyone = json.loads(run_pose(runner, path, "--model", tiny_model, "--boxes", "detections", "--oks-nms", "1").stdout)
    official = json.loads(run_pose(runner, path, "--model", tiny_model, "--boxes", "detections").stdout)
    assert len(everyone["lrp"]["poses"]) == len(doc["lrp"]["detections"])
    assert len(official["lrp"]["poses"]) <= len(everyone["lrp"]["poses"])


def test_no_detections_is_a_clear_error(runner, tiny_model, val4_doc):
    path, _ = val4_doc
    res = run_pose(runner, path, "--model", tiny_model, "--boxes", "detections")
    assert res.exit_code == 1
    assert "no detections" in res.stderr and "lrp detect" in res.stderr


def test_images_without_people_give_no_poses(runner, tiny_model, tmp_path, coco_val4):
    data = json.loads((coco_val4 / "person_keypoints.json").read_text())
    data["annotations"] = []
    path = tmp_path / "empty.json"
    path.write_text(json.dumps(adopt(data, "empty", images=coco_val4 / "images")))
    res = run_pose(runner, path, "--model", tiny_model)
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["lrp"]["poses"] == []


def test_low_resolution_input_size(runner, tiny_model, val4_doc):
    path, _ = val4_doc
    res = run_pose(runner, path, "--model", tiny_model, "--input-size", "36x52", "--decode", "dark")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["lrp"]["history"][-1]["args"]["input_size"] == [36, 52]


def test_bf16_on_the_cpu(runner, tiny_model, val4_doc):
    path, _ = val4_doc
    res = run_pose(runner, path, "--model", tiny_model, "--precision", "bf16")
    assert res.exit_code == 0, res.stderr
    assert len(json.loads(res.stdout)["lrp"]["poses"]) == 12


@pytest.mark.parametrize(
    "args, message",
    [
        (["--boxes", "maybe"], "expected gt or detections"),
        (["--decode", "offset"], "offset head"),
        (["--decode", "argmax"], "expected one of"),
        (["--input-size", "big"], "expected WxH"),
        (["--model", "hrnet-w99"], "unknown model"),
        (["--precision", "fp16"], "fp16 needs CUDA"),
        (["--model", "movenet-thunder", "--decode", "dark"], "no heatmaps"),
        (["--model", "movenet-thunder", "--input-size", "128x128"], "runs at 256x256 only"),
    ],
)
def test_usage_errors(runner, tiny_model, val4_doc, args, message):
    path, _ = val4_doc
    res = run_pose(runner, path, "--model", tiny_model, *args)
    assert res.exit_code == 2, res.stderr
    assert message in res.stderr


def test_missing_weights_say_how_to_get_them(runner, val4_doc, monkeypatch, tmp_path):
    monkeypatch.setenv("LRP_WEIGHTS", str(tmp_path / "nothing"))
    path, _ = val4_doc
    res = run_pose(runner, path)
    assert res.exit_code == 1
    assert "lrp weights convert hrnet-w32" in res.stderr


def test_unreadable_image_fails_or_is_listed_with_keep_going(runner, tiny_model, val4_doc, tmp_path):
    path, doc = val4_doc
    doc["images"][0]["file_name"] = "missing.jpg"
    path.write_text(json.dumps(doc))
    res = run_pose(runner, path, "--model", tiny_model)
    assert res.exit_code == 1 and "missing.jpg" in res.stderr
    res = run_pose(runner, path, "--model", tiny_model, "--keep-going")
    assert res.exit_code == 1 and "1 images failed" in res.stderr
    poses = json.loads(res.stdout)["lrp"]["poses"]
    assert poses and doc["images"][0]["id"] not in {p["image_id"] for p in poses}


@pytest.mark.slow
def test_movenet_thunder_real_weights_on_coco_val4(runner, val4_doc):
    """Real weights (usefulness, not plumbing): MoveNet Thunder with GT boxes on 4 val images."""
    from lrp.device import weights_dir

    if not (weights_dir() / "movenet-thunder.safetensors").is_file():
        pytest.skip("run `lrp weights fetch movenet-thunder` first")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    path, _ = val4_doc
    res = run_pose(runner, path, "--model", "movenet-thunder")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    gt = COCO()
    gt.dataset = {k: out[k] for k in ("images", "annotations", "categories")}
    gt.createIndex()
    ev = COCOeval(gt, gt.loadRes(out["lrp"]["poses"]), "keypoints")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    assert ev.stats[0] > 0.6  # measured 0.766 (GT boxes, 12 people)


def test_collect_people_rules_without_running_a_model():
    from lrp.errors import LrpError
    from lrp.pose import collect_people

    kps = [10, 10, 2] + [0, 0, 0] * 16
    doc = adopt(
        {
            "images": [{"id": 1, "file_name": "a.png", "width": 100, "height": 80}],
            "annotations": [
                {"id": 1, "image_id": 1, "category_id": 1, "bbox": [5, 5, 20, 30], "area": 300, "keypoints": kps},
                {"id": 2, "image_id": 1, "category_id": 1, "bbox": [5, 5, 20, 30], "area": 300, "keypoints": [0] * 51},
                {"id": 3, "image_id": 1, "category_id": 2, "bbox": [5, 5, 20, 30], "area": 300},
                {"id": 4, "image_id": 1, "category_id": 1, "bbox": [200, 5, 20, 30], "area": 300, "keypoints": kps},
                {"id": 5, "image_id": 1, "category_id": 1, "iscrowd": 1, "bbox": [0, 0, 50, 50], "area": 900},
            ],
            "categories": [{"id": 1, "name": "person"}, {"id": 2, "name": "bicycle"}],
        },
        "doc",
        images=".",
    )
    people, skipped = collect_people(doc, "gt")
    assert [p["box"] for p in people] == [[5, 5, 19, 29]] and people[0]["score"] == 1.0
    assert skipped == {"people without annotated keypoints": 2, "non-person annotations": 1, "empty GT boxes": 1}
    doc["annotations"][0].pop("bbox")
    with pytest.raises(LrpError, match="annotation 1 .* no"):
        collect_people(doc, "gt")
    with pytest.raises(LrpError, match="no detections"):
        collect_people(doc, "detections")
    doc["lrp"]["detections"] = [{"image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4], "score": 0.3}]
    assert collect_people(doc, "detections", 0.5) == ([], {"detections below 0.5": 1})
    assert collect_people(doc, "detections", 0.2)[0][0]["score"] == 0.3


def test_poses_are_in_the_documents_frame_after_degrade(runner, tiny_model, val4_doc, tmp_path):
    path, _ = val4_doc
    lr = run_lrp(runner, ["degrade", str(path), "--scale", "0.25", "--out-dir", str(tmp_path / "lr"), "-q"])
    assert lr.exit_code == 0, lr.stderr
    lr_path = tmp_path / "lr.json"
    lr_path.write_text(lr.stdout)
    out = json.loads(run_pose(runner, lr_path, "--model", tiny_model).stdout)
    lr_doc = json.loads(lr.stdout)
    by_id = {a["id"]: a for a in lr_doc["annotations"]}
    assert len(out["lrp"]["poses"]) == 12
    for p in out["lrp"]["poses"]:
        assert p["bbox"] in [a["bbox"] for a in by_id.values()]  # the LR-frame GT box
        k = np.array(p["keypoints"]).reshape(17, 3)
        center, scale = box_to_center_scale([p["bbox"]], 48 / 64)
        assert np.all(np.abs(k[:, :2] - center[0]) <= scale[0] * 100 + 1)


def test_detections_file_from_the_original_frame(tmp_path, runner, coco_val4):
    """The official detector's file is in the original frame; after `degrade` it must be mapped."""
    import json as _json

    from lrp.degrade import degrade_document
    from lrp.inputs import load_document
    from lrp.pose import detections_from_origin

    doc = load_document(str(coco_val4 / "person_keypoints.json"), images=coco_val4 / "images")
    lr = degrade_document(doc, scale=0.25, out_dir=tmp_path / "lr", quiet=True)
    dets = detections_from_origin(str(coco_val4 / "detections_AP_H_56.json"), lr)
    raw = _json.loads((coco_val4 / "detections_AP_H_56.json").read_text())
    assert len(dets) == len(raw)
    img = {i["id"]: i for i in lr["images"]}[raw[0]["image_id"]]
    sx, sy = img["lrp"]["xform"][:2]
    assert dets[0]["bbox"] == pytest.approx([raw[0]["bbox"][0] * sx, raw[0]["bbox"][1] * sy, raw[0]["bbox"][2] * sx, raw[0]["bbox"][3] * sy])
    bad = tmp_path / "bad.json"
    bad.write_text(_json.dumps([{"image_id": 123456789, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 1}]))
    with pytest.raises(Exception, match="unknown image id 123456789"):
        detections_from_origin(str(bad), lr)
