"""Models and metrics of the other keypoint sets (issue 13): MPII-16 and CrowdPose-14 through
`lrp pose` (the set's flip pairs, its OKS-NMS or none) and `lrp evaluate` (the set's OKS sigmas).

Pose equivalence runs a random-weight HRNet (non-default BN statistics and head bias) through
`lrp pose` and through the official test pipeline (tests/official_hrnet.py, the installed cv2),
with the flip pairs of the official dataset classes written out here, not derived from lrp.
Evaluation is checked against pycocotools' COCOeval with `kpt_oks_sigmas` set, on both engines.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import official_hrnet as official
from lrp import keypoints as kp
from lrp.document import adopt
from lrp.models import REGISTRY, WeightsInfo
from lrp.models.pose_zoo import PoseSpec
from tests.conftest import run_lrp, snapshot
from test_keypoint_sets import synthetic
from test_warp import tiny_hrnet_with_stats

cv2 = pytest.importorskip("cv2")

# The flip pairs of the official dataset classes: deep-high-resolution-net.pytorch
# lib/dataset/mpii.py, and MMPose's crowdpose dataset info (left/right joint ids).
OFFICIAL_PAIRS = {
    "mpii-16": [[0, 5], [1, 4], [2, 3], [10, 15], [11, 14], [12, 13]],
    "crowdpose-14": [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9], [10, 11]],
}
SIZE = (64, 64)  # (w, h): small, so that the test runs in seconds on a CPU


@pytest.fixture
def set_model(monkeypatch, tmp_path):
    """register(set name) -> (registry name, the network whose weights were saved)."""
    from safetensors.torch import save_file

    monkeypatch.setenv("LRP_WEIGHTS", str(tmp_path / "weights"))
    (tmp_path / "weights").mkdir()

    def register(set_name: str) -> tuple[str, torch.nn.Module]:
        joints = len(kp.get_set(set_name).keypoints)
        spec = PoseSpec(
            name=f"hrnet-tiny-{set_name}",
            task="pose",
            arch="hrnet-tiny",
            builder="lrp.models.hrnet:PoseHighResolutionNet",
            kwargs={"width": 8, "stage_modules": [1, 1, 1], "stage_blocks": 1, "layer1_blocks": 1, "num_joints": joints, "input_size": list(SIZE)},
            weights=WeightsInfo(file=f"hrnet-tiny-{set_name}.safetensors", source="made by the test", licence="-", trained_on="nothing"),
            keypoint_set=set_name,
        )
        monkeypatch.setitem(REGISTRY, spec.name, spec)
        net = tiny_hrnet_with_stats(num_joints=joints)
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp_path / "weights" / spec.weights.file))
        return spec.name, net

    return register


def as_set(coco_doc: dict, set_name: str) -> dict:
    """coco-val-4 with its people's joints renamed into another set (joints of the same name
    keep their place; the rest are unannotated), so that GT boxes select the same people."""
    target = kp.get_set(set_name)
    doc = json.loads(json.dumps(coco_doc))
    doc["categories"] = [kp.person_category(target, doc["categories"][0]["id"])]
    for a in doc["annotations"]:
        g = np.asarray(a.get("keypoints") or [0] * 51, dtype=float).reshape(17, 3)
        out = np.zeros((len(target.keypoints), 3))
        for j, joint in enumerate(target.keypoints):
            if joint in kp.COCO_17.keypoints:
                out[j] = g[kp.COCO_17.index(joint)]
        a["keypoints"] = [float(v) for v in out.ravel()]
        a["num_keypoints"] = int((out[:, 2] > 0).sum())
    return doc


@pytest.fixture
def val4(coco_val4):
    data = json.loads((coco_val4 / "person_keypoints.json").read_text())
    return adopt(data, "val4", images=coco_val4 / "images")


def official_poses(net, doc, coco_val4, pairs):
    """The official test of every GT person of `doc`: crops with the installed cv2, the flip test
    with `pairs`, get_final_preds: (image id, bbox, keypoints (K, 2), joint scores (K,))."""
    from lrp.topdown import box_to_center_scale, clean_gt_box

    images = {i["id"]: i for i in doc["images"]}
    out = []
    for a in doc["annotations"]:
        if max(a.get("keypoints") or [0]) == 0:
            continue
        img = images[a["image_id"]]
        box = clean_gt_box(a["bbox"], img["width"], img["height"], a["area"])
        if box is None:
            continue
        bgr = cv2.imread(str(coco_val4 / "images" / img["file_name"]), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        c, s = box_to_center_scale([box], SIZE[0] / SIZE[1])
        x = torch.from_numpy(official.crop(rgb, c[0], s[0], SIZE)[None]).permute(0, 3, 1, 2).float() / 255.0
        x = (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        with torch.no_grad():
            heatmaps = official.flip_test(net(x).numpy(), net(torch.flip(x, [3])).numpy(), pairs)
        xy, score = official.final_preds(heatmaps, c, s)
        out.append((a["image_id"], a["bbox"], xy[0], score[0]))
    return out


def pose_run(runner, tmp_path, doc, model, *args):
    path = tmp_path / "in.json"
    path.write_text(json.dumps(doc))
    res = run_lrp(runner, ["pose", str(path), "-q", "--device", "cpu", "--model", model, "--warp", "auto", *args])
    return res


@pytest.mark.parametrize("set_name", ["mpii-16", "crowdpose-14"])
def test_pose_of_another_set_equals_the_official_pipeline(runner, tmp_path, set_model, val4, coco_val4, set_name):
    model, net = set_model(set_name)
    doc = as_set(val4, set_name)
    res = pose_run(runner, tmp_path, doc, model, "--oks-nms", "1")  # keep every box: one pose per person
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    poses = out["lrp"]["poses"]
    k = len(kp.get_set(set_name).keypoints)
    want = official_poses(net, doc, coco_val4, OFFICIAL_PAIRS[set_name])
    assert len(poses) == len(want) == 12
    got = {(p["image_id"], tuple(p["bbox"])): np.asarray(p["keypoints"]).reshape(k, 3) for p in poses}
    worst = 0.0
    for iid, bbox, xy, score in want:
        mine = got[(iid, tuple(float(v) for v in bbox))]
        worst = max(worst, float(np.linalg.norm(mine[:, :2] - xy, axis=1).max()))
        np.testing.assert_allclose(mine[:, 2], score, rtol=0, atol=1e-5)
    assert worst <= 0.05, worst
    # The set's pairs matter: the flip test without the swap moves keypoints of this model.
    unswapped = official_poses(net, doc, coco_val4, [])
    moved = max(float(np.linalg.norm(got[(i, tuple(float(v) for v in b))][:, :2] - xy, axis=1).max()) for i, b, xy, _ in unswapped)
    assert moved > 0.5
    # The category (with its lrp field) travels on; the history says what set the model predicts.
    assert kp.category_set(out).name == set_name


def test_mpii_poses_skip_oks_nms_and_crowdpose_uses_its_sigmas(runner, tmp_path, set_model, val4):
    model, _ = set_model("mpii-16")
    res = run_lrp(runner, ["pose", "--device", "cpu", "--model", model, "-"], input=json.dumps(as_set(val4, "mpii-16")))
    assert res.exit_code == 0, res.stderr
    assert "mpii-16 defines no OKS: no OKS-NMS" in res.stderr
    out = json.loads(res.stdout)
    assert len(out["lrp"]["poses"]) == 12  # one per GT person, whatever the overlaps
    assert out["lrp"]["history"][-1]["args"]["oks_nms"] is None


def test_finish_runs_oks_nms_with_the_sets_sigmas():
    """Two poses that overlap under CrowdPose's sigmas but not under a tenth of them."""
    from lrp.pose import finish

    rng = np.random.default_rng(0)
    base = rng.uniform(0, 100, (14, 2))
    results = []
    for shift, score in ((0.0, 0.9), (3.0, 0.8)):
        k = np.concatenate([base + shift, np.full((14, 1), 0.9)], axis=1)
        results.append({"image_id": 1, "category_id": 1, "bbox": [0, 0, 100, 100], "score": score, "keypoints": k, "scale": np.array([0.5, 0.5])})
    wide = finish(results, sigmas=kp.CROWDPOSE_14.sigmas, oks_threshold=0.5)
    narrow = finish(results, sigmas=np.array(kp.CROWDPOSE_14.sigmas) / 10, oks_threshold=0.5)
    # Reference: the official oks_iou of the two (variances (2 sigma)^2, mean area of the padded boxes).
    var = (np.array(kp.CROWDPOSE_14.sigmas) * 2) ** 2
    area = (0.5 * 200) ** 2
    oks = np.mean(np.exp(-(2 * 3.0**2) / var / area / 2))
    assert oks > 0.5 and len(wide) == 1
    assert len(narrow) == 2


def crowd_doc(seed=0):
    doc, _ = synthetic(kp.CROWDPOSE_14, seed=seed, crowd=False, head=False)
    for p in doc["lrp"]["poses"]:
        p.pop("bbox", None)
    return doc


def cocoeval_stats(doc, sigmas):
    """pycocotools' own COCOeval over the document's poses with `kpt_oks_sigmas` = sigmas."""
    import copy
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = copy.deepcopy({k: doc[k] for k in ("images", "annotations", "categories")})
        gt.createIndex()
        dt = gt.loadRes(copy.deepcopy(doc["lrp"]["poses"]))
        E = COCOeval(gt, dt, "keypoints")
        E.params.kpt_oks_sigmas = np.array(sigmas)
        E.evaluate()
        E.accumulate()
        E.summarize()
    return E.stats


def evaluate_json(runner, path, doc, engine):
    path.write_text(json.dumps(doc))
    res = run_lrp(runner, ["evaluate", str(path), "--engine", engine, "--format", "json", "-q"])
    assert res.exit_code == 0, res.stderr
    data = json.loads(res.stdout)
    return data["settings"]["tasks"]["keypoints"]["oks_sigmas"], data["documents"][0]["metrics"]["keypoints"]


@pytest.mark.parametrize("engine", ["hotcoco", "pycocotools"])
def test_evaluate_uses_the_categorys_sigmas(runner, tmp_path, engine):
    doc = crowd_doc()
    path = tmp_path / "crowd.json"
    whose, got = evaluate_json(runner, path, doc, engine)
    assert whose == ["crowdpose-14"]
    want = cocoeval_stats(doc, kp.CROWDPOSE_14.sigmas)
    assert got["AP"] == pytest.approx(want[0], abs=1e-12) and got["AR"] == pytest.approx(want[5], abs=1e-12)
    # A category's own lrp.sigmas win over its set's, and change the numbers.
    doubled = [2 * s for s in kp.CROWDPOSE_14.sigmas]
    doc["categories"][0]["lrp"]["sigmas"] = doubled
    whose, wide = evaluate_json(runner, path, doc, engine)
    assert whose == ["crowdpose-14 (the category's own lrp.sigmas)"]
    assert wide["AP"] == pytest.approx(cocoeval_stats(doc, doubled)[0], abs=1e-12)
    assert wide["AP"] != pytest.approx(got["AP"], abs=1e-3)


def test_bad_sets_and_sigmas(runner, tmp_path, set_model, val4):
    # evaluate on MPII: no OKS sigmas, one line that says where to go instead.
    doc, _ = synthetic(kp.MPII_16, crowd=False)
    path = tmp_path / "mpii.json"
    path.write_text(json.dumps(doc))
    before = snapshot(tmp_path)
    res = run_lrp(runner, ["evaluate", str(path), "-q"])
    assert res.exit_code == 1
    assert snapshot(tmp_path) == before
    assert res.stderr.strip().splitlines() == [
        f"lrp evaluate: error: {path}: mpii-16 defines no OKS sigmas, so OKS (COCO AP) is not defined for its keypoints: "
        "score them with `lrp pck`, or give categories[0].lrp.sigmas"
    ]
    # Malformed own sigmas: named, exit 1.
    crowd = crowd_doc()
    crowd["categories"][0]["lrp"]["sigmas"] = [0.1] * 13
    path.write_text(json.dumps(crowd))
    before = snapshot(tmp_path)
    res = run_lrp(runner, ["evaluate", str(path), "-q"])
    assert res.exit_code == 1
    assert snapshot(tmp_path) == before
    assert "categories[0].lrp.sigmas must be 14 positive numbers" in res.stderr
    # A COCO document through an MPII model, and one whose category names no keypoints.
    model, _ = set_model("mpii-16")
    (tmp_path / "in.json").write_text(json.dumps(val4))
    before = snapshot(tmp_path)
    res = pose_run(runner, tmp_path, val4, model)  # rewrites in.json with the same bytes
    assert res.exit_code == 1
    assert snapshot(tmp_path) == before
    assert res.stderr.strip() == "lrp pose: error: document: categories[0].keypoints are coco-17, not the mpii-16 this needs"
    bare = json.loads(json.dumps(val4))
    bare["categories"][0].pop("keypoints")
    bare["categories"][0].pop("skeleton", None)
    res = pose_run(runner, tmp_path, bare, model)
    assert res.exit_code == 1
    assert res.stderr.strip() == (
        f"lrp pose: error: document: its person category names no keypoints (taken as coco-17), not the mpii-16 {model} predicts"
    )
    assert not (tmp_path / "out.json").exists()


def test_registry_entries_of_other_sets_build_with_their_joints(reference_dir):
    """The registered MPII and CrowdPose HRNets have the official HRNet-W32 key names and
    shapes, but for the head: one heatmap per joint of their set."""
    from lrp.models import get_model

    official = json.loads((reference_dir / "checkpoint-keys" / "hrnet_w32.json").read_text())["keys"]
    for name, set_name in (("hrnet-w32-256x256-mpii", "mpii-16"), ("hrnet-w32-256x192-crowdpose", "crowdpose-14")):
        spec = get_model(name, task="pose")
        assert spec.keypoint_set == set_name
        joints = len(kp.get_set(set_name).keypoints)
        shapes = {k: list(v.shape) for k, v in spec.build().state_dict().items()}
        official = {k: v for k, v in official.items() if not k.endswith("num_batches_tracked")}  # the converter drops them
        want = dict(official, **{"final_layer.weight": [joints, 32, 1, 1], "final_layer.bias": [joints]})
        assert shapes == want


def test_draw_takes_a_document_without_oks(tmp_path, set_model, val4, runner):
    """MPII poses are drawn (ungraded: OKS is undefined), not refused."""
    model, _ = set_model("mpii-16")
    res = pose_run(runner, tmp_path, as_set(val4, "mpii-16"), model)
    assert res.exit_code == 0, res.stderr
    poses = tmp_path / "poses.json"
    poses.write_text(res.stdout)
    res = run_lrp(runner, ["draw", str(poses), "-q", "--out-dir", str(tmp_path / "drawn")])
    assert res.exit_code == 0, res.stderr
    assert len(list((tmp_path / "drawn").glob("*.png"))) == 4
