"""Real weights prove usefulness: the registry-shipped models on the four COCO val2017 images of
../shared/data/coco-val-4, at full resolution and after `lrp degrade --scale 0.25`, scored by
pycocotools' own COCOeval. Each test skips until `lrp weights fetch MODEL` has been run.

The bars sit below the measured values (in the comments) with room for a different CPU's
rounding; they fail for a wrong decode, a wrong crop convention or swapped channels.
"""

from __future__ import annotations

import json

import pytest
from conftest import run_lrp

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def val4_docs(coco_val4, tmp_path_factory):
    """Input arguments of the val-4 set: 'hr' as it is, 'lr4' after the 1/4 MATLAB bicubic downscale."""
    from typer.testing import CliRunner

    tmp = tmp_path_factory.mktemp("val4")
    hr = ["--images", str(coco_val4 / "images"), str(coco_val4 / "person_keypoints.json")]
    res = run_lrp(CliRunner(), ["degrade", "-q", "--scale", "0.25", "-o", str(tmp / "lr4.json"), "--out-dir", str(tmp / "lr4"), *hr])
    assert res.exit_code == 0, res.stderr
    return {"hr": hr, "lr4": [str(tmp / "lr4.json")]}


def need_weights(name: str):
    from lrp.device import weights_dir

    if not (weights_dir() / f"{name}.safetensors").is_file():
        pytest.skip(f"run `lrp weights fetch {name}` first")


def coco_stats(doc: dict, results: list[dict], iou_type: str) -> list[float]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = COCO()
    gt.dataset = {k: doc[k] for k in ("images", "annotations", "categories")}
    gt.createIndex()
    ev = COCOeval(gt, gt.loadRes(results), iou_type)
    ev.params.catIds = [1]
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return list(ev.stats)


def pose_ap(runner, inputs: list[str], *args) -> tuple[float, float]:
    res = run_lrp(runner, ["pose", *inputs, "-q", "--device", "cpu", "--boxes", "gt", *args])
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    stats = coco_stats(out, out["lrp"]["poses"], "keypoints")
    return stats[0], stats[5]  # AP, AR


def test_movenet_lightning(runner, val4_docs):
    need_weights("movenet-lightning")
    ap, ar = pose_ap(runner, val4_docs["hr"], "--model", "movenet-lightning")
    assert ap > 0.5 and ar > 0.55  # measured AP 0.603, AR 0.650 (Thunder: 0.766)
    ap, ar = pose_ap(runner, val4_docs["lr4"], "--model", "movenet-lightning")
    assert ap > 0.3 and ar > 0.4  # measured AP 0.405, AR 0.492


def test_posenet_offset_decode(runner, val4_docs):
    need_weights("posenet")
    ap, ar = pose_ap(runner, val4_docs["hr"], "--model", "posenet", "--decode", "offset")
    assert ap > 0.42 and ar > 0.45  # measured AP 0.514, AR 0.542 (385x385 crops)
    ap, ar = pose_ap(runner, val4_docs["lr4"], "--model", "posenet")  # offset is its default
    assert ap > 0.1 and ar > 0.15  # measured AP 0.170, AR 0.217


def test_nanodet_person_boxes(runner, val4_docs):
    need_weights("nanodet")
    for inputs, bar in ((val4_docs["hr"], 0.5), (val4_docs["lr4"], 0.38)):
        res = run_lrp(runner, ["detect", *inputs, "-q", "--device", "cpu", "--model", "nanodet"])
        assert res.exit_code == 0, res.stderr
        out = json.loads(res.stdout)
        stats = coco_stats(out, out["lrp"]["detections"], "bbox")
        assert stats[0] > bar  # measured AP 0.591 (AR 0.650) full resolution, 0.472 (0.550) at 1/4
