"""Keypoint sets (lrp.keypoints), PCK/PCKh (`lrp pck`) and CrowdPose AP (`lrp crowdpose`).

The metrics are checked on synthetic data against references written here from the protocols:
PCK from the generating correspondence (no matching code), CrowdPose AP by a direct
implementation of OKS, greedy matching and COCO's 101-point precision.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from lrp import crowdpose, keypoints as kp, pck
from lrp.errors import LrpError
from tests.conftest import run_lrp


# --------------------------------------------------------------------------------------------
# The sets


def test_coco_17_is_cocos():
    from pycocotools.cocoeval import Params

    from lrp.sample import KEYPOINTS, SKELETON

    assert list(kp.COCO_17.keypoints) == KEYPOINTS
    assert [list(p) for p in kp.COCO_17.skeleton] == SKELETON
    np.testing.assert_array_equal(np.array(kp.COCO_17.sigmas), Params(iouType="keypoints").kpt_oks_sigmas)
    assert kp.COCO_17.flip_pairs == ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))


def test_other_sets():
    # MPII joint ids 0-15 (r ankle ... l wrist) and the flip pairs every MPII code uses.
    assert kp.MPII_16.keypoints[0] == "right_ankle" and kp.MPII_16.keypoints[9] == "head_top"
    assert kp.MPII_16.flip_pairs == ((3, 2), (4, 1), (5, 0), (13, 12), (14, 11), (15, 10))
    assert kp.MPII_16.sigmas is None and kp.MPII_16.mean_excludes == ("pelvis", "thorax")
    # CrowdPose: 12 limbs then head, neck; its own sigmas (head and neck .79 / 10).
    assert kp.CROWDPOSE_14.keypoints[12:] == ("head", "neck")
    assert kp.CROWDPOSE_14.sigmas == tuple(s / 10 for s in (0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89, 0.79, 0.79))
    assert kp.CROWDPOSE_14.flip_pairs == ((0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (10, 11))
    # PoseTrack: poseval's Joint order, no OKS sigmas.
    assert kp.POSETRACK_15.keypoints[12:] == ("neck", "nose", "head_top") and kp.POSETRACK_15.sigmas is None
    for s in kp.SETS.values():
        n = len(s.keypoints)
        assert len(set(s.keypoints)) == n
        assert all(1 <= a <= n and 1 <= b <= n for a, b in s.skeleton)
        for left, right in s.flip_pairs:
            assert s.keypoints[left].replace("left_", "") == s.keypoints[right].replace("right_", "")
        # Every joint is on the skeleton.
        assert {i for p in s.skeleton for i in p} == set(range(1, n + 1))


def test_find_set_and_category_lrp():
    for s in kp.SETS.values():
        cat = kp.person_category(s)
        assert kp.find_set(cat) is s
        assert cat["lrp"] == {"set": s.name, "flip_pairs": [list(p) for p in s.flip_pairs], "sigmas": None if s.sigmas is None else list(s.sigmas)}
        json.dumps(cat, allow_nan=False)
    assert kp.find_set({"keypoints": ["a", "b"]}) is None
    doc = {"categories": [{"id": 1, "name": "person", "keypoints": list(kp.MPII_16.keypoints)}]}
    assert kp.category_set(doc) is kp.MPII_16
    with pytest.raises(LrpError, match=r"doc: categories\[0\].keypoints are mpii-16, not the coco-17"):
        kp.category_set(doc, "doc", expect="coco-17")
    doc["categories"][0]["keypoints"] = ["a"]
    with pytest.raises(LrpError, match=r"categories\[0\].keypoints \(1 names\) are none of the known sets"):
        kp.category_set(doc, "doc")
    doc["categories"][0] = kp.person_category(kp.COCO_17)
    doc["categories"][0]["lrp"]["set"] = "mpii-16"
    with pytest.raises(LrpError, match=r"categories\[0\].lrp.set says 'mpii-16'"):
        kp.category_set(doc, "doc")


# --------------------------------------------------------------------------------------------
# Synthetic data: people in separate slots, predictions = GT + noise, some missing, some false


def synthetic(kset, seed=0, n_images=12, head=True, crowd=True, flood_image=None, noise=(0.01, 0.3)):
    rng = np.random.default_rng(seed)
    k = len(kset.keypoints)
    images, anns, poses, truth = [], [], [], {}
    aid = 1
    for i in range(n_images):
        iid = 100 + i
        img = {"id": iid, "file_name": f"{iid}.png", "width": 800, "height": 400}
        if crowd:
            img["crowdIndex"] = float([0.05, 0.2, 0.5, 0.79, 0.8, 0.95][i % 6])
        images.append(img)
        for slot in range(int(rng.integers(1, 5))):
            s = float(rng.uniform(30, 150))
            cx, cy = 100 + slot * 200, 200
            xy = np.stack([rng.uniform(cx - s / 3, cx + s / 3, k), rng.uniform(cy - s, cy + s, k)], 1)
            v = np.where(rng.random(k) < 0.15, 0, 2)
            v[0] = 2
            g = np.zeros((k, 3))
            g[v > 0, :2], g[:, 2] = xy[v > 0], v
            x0, y0 = xy.min(0) - 3
            x1, y1 = xy.max(0) + 3
            ann = {"id": aid, "image_id": iid, "category_id": 1, "iscrowd": 0, "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                   "area": float((x1 - x0) * (y1 - y0) * 0.6), "keypoints": [float(t) for t in g.ravel()], "num_keypoints": int((v > 0).sum())}
            if head:
                ann["head_box"] = [float(cx - s / 6), float(cy - s), float(s / 3), float(s / 4)]
            anns.append(ann)
            truth[aid] = None
            if rng.random() > 0.1:  # a few people get no prediction at all
                sd = rng.uniform(*noise) * s
                p = xy + rng.normal(0, sd, xy.shape)
                jitter = rng.normal(0, 2, 4)
                poses.append({"image_id": iid, "category_id": 1, "score": float(rng.uniform(0.05, 1)),
                              "keypoints": [float(t) for t in np.concatenate([p, np.ones((k, 1))], 1).ravel()],
                              "bbox": [float(a + b) for a, b in zip(ann["bbox"], jitter)]})
                truth[aid] = p
            aid += 1
        n_false = 22 if iid == flood_image else int(rng.random() < 0.4)
        for _ in range(n_false):  # false positives in the empty right-hand slot
            p = np.stack([rng.uniform(720, 790, k), rng.uniform(100, 300, k)], 1)
            poses.append({"image_id": iid, "category_id": 1, "score": float(rng.uniform(0.05, 1)),
                          "keypoints": [float(t) for t in np.concatenate([p, np.ones((k, 1))], 1).ravel()]})
    doc = {"info": {}, "licenses": [], "images": images, "annotations": anns, "categories": [kp.person_category(kset)],
           "lrp": {"schema": "lrp/1", "image_root": "/nonexistent", "history": [], "detections": [], "poses": poses}}
    return doc, truth


def ref_pck(doc, truth, head, thr):
    k = len(doc["categories"][0]["keypoints"])
    correct, counted = np.zeros(k), np.zeros(k)
    for a in doc["annotations"]:
        g = np.array(a["keypoints"]).reshape(k, 3)
        norm = 0.6 * math.sqrt(a["head_box"][2] ** 2 + a["head_box"][3] ** 2) if head else max(a["bbox"][2:])
        for j in range(k):
            if g[j, 2] > 0:
                counted[j] += 1
                p = truth[a["id"]]
                if p is not None and np.linalg.norm(p[j] - g[j, :2]) / norm <= thr:
                    correct[j] += 1
    return correct, counted


@pytest.mark.parametrize("kset, head, thr", [(kp.MPII_16, True, 0.5), (kp.MPII_16, False, 0.2), (kp.COCO_17, False, 0.1), (kp.POSETRACK_15, True, 0.5)])
def test_pck_equals_the_reference(kset, head, thr):
    doc, truth = synthetic(kset, seed=len(kset.keypoints))
    got = pck.joint_scores(doc, norm="head" if head else "bbox", threshold=thr)
    correct, counted = ref_pck(doc, truth, head, thr)
    assert got.correct == correct.astype(int).tolist() and got.counted == counted.astype(int).tolist()
    assert 0 < sum(got.correct) < sum(got.counted)  # neither all right nor all wrong
    keep = [j for j, n in enumerate(kset.keypoints) if n not in kset.mean_excludes]
    assert got.mean(kset.mean_excludes) == pytest.approx(100 * correct[keep].sum() / counted[keep].sum(), rel=1e-12)
    assert got.matched == sum(p is not None for p in truth.values())


# --------------------------------------------------------------------------------------------
# CrowdPose AP: a direct implementation of the protocol


def ref_crowdpose(doc, image_ids):
    sig = np.array(kp.CROWDPOSE_14.sigmas)
    var = (2 * sig) ** 2
    thresholds = np.linspace(0.5, 0.95, 10)
    rec_thrs = np.linspace(0, 1, 101)
    per_t = [[] for _ in thresholds]  # (score, is_tp) over all images
    n_gt = 0
    for iid in sorted(image_ids):
        gts = [a for a in doc["annotations"] if a["image_id"] == iid]
        dts = sorted((p for p in doc["lrp"]["poses"] if p["image_id"] == iid), key=lambda p: -p["score"])[:20]
        n_gt += len(gts)
        oks = np.zeros((len(dts), len(gts)))
        for di, d in enumerate(dts):
            pd = np.array(d["keypoints"]).reshape(14, 3)
            for gi, g in enumerate(gts):
                pg = np.array(g["keypoints"]).reshape(14, 3)
                scale = g["bbox"][3] * g["bbox"][2] * 0.53
                e = ((pd[:, 0] - pg[:, 0]) ** 2 + (pd[:, 1] - pg[:, 1]) ** 2) / var / (scale + np.spacing(1)) / 2
                oks[di, gi] = np.mean(np.exp(-e[pg[:, 2] > 0]))
        for ti, t in enumerate(thresholds):
            taken = set()
            for di, d in enumerate(dts):
                best, best_oks = None, min(t, 1 - 1e-10)
                for gi in range(len(gts)):
                    if gi not in taken and oks[di, gi] >= best_oks:
                        best, best_oks = gi, oks[di, gi]
                if best is not None:
                    taken.add(best)
                per_t[ti].append((d["score"], best is not None))
    precision = np.zeros((len(thresholds), len(rec_thrs)))
    recall = np.zeros(len(thresholds))
    for ti, results in enumerate(per_t):
        results.sort(key=lambda r: -r[0])
        tp = np.cumsum([r[1] for r in results])
        fp = np.cumsum([not r[1] for r in results])
        rc = tp / n_gt
        pr = tp / (tp + fp + np.spacing(1))
        for i in range(len(pr) - 2, -1, -1):
            pr[i] = max(pr[i], pr[i + 1])
        recall[ti] = rc[-1] if len(rc) else 0
        for ri, r in enumerate(rec_thrs):
            idx = np.searchsorted(rc, r, side="left")
            precision[ti, ri] = pr[idx] if idx < len(pr) else 0
    return precision, recall


def test_crowdpose_equals_the_reference():
    doc, _ = synthetic(kp.CROWDPOSE_14, seed=3, n_images=18, head=False, flood_image=105, noise=(0.002, 0.06))
    got = crowdpose.evaluate_crowdpose(doc)
    precision, recall = ref_crowdpose(doc, [i["id"] for i in doc["images"]])
    assert got["AP"] == pytest.approx(precision.mean(), rel=1e-12)
    assert got["AP50"] == pytest.approx(precision[0].mean(), rel=1e-12)
    assert got["AP75"] == pytest.approx(precision[5].mean(), rel=1e-12)
    assert got["AR"] == pytest.approx(recall.mean(), rel=1e-12)
    assert got["AR75"] == pytest.approx(recall[5], rel=1e-12)
    assert 0.1 < got["AP"] < 0.9
    # The split at 0.2 / 0.8: 0.2 is medium, 0.8 is hard.
    splits = {"easy": [], "medium": [], "hard": []}
    for img in doc["images"]:
        ci = img["crowdIndex"]
        splits["easy" if ci < 0.2 else "medium" if ci < 0.8 else "hard"].append(img["id"])
    assert crowdpose.crowd_splits(doc) == splits
    for name, ids in splits.items():
        p, _ = ref_crowdpose(doc, ids)
        assert got[f"AP_{name}"] == round(float(p.mean()), 4)
    # The 0.53 box scale is what it evaluates with: COCO's mask areas give another AP.
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = COCO()
    gt.dataset = {k: doc[k] for k in ("images", "annotations", "categories")}
    gt.createIndex()
    results = [{k: v for k, v in r.items() if k != "bbox"} for r in doc["lrp"]["poses"]]
    E = COCOeval(gt, gt.loadRes(results), "keypoints")
    E.params.kpt_oks_sigmas = np.array(kp.CROWDPOSE_14.sigmas)
    E.params.maxDets, E.params.areaRng, E.params.areaRngLbl = [20], [[0, 1e10]], ["all"]
    E.evaluate()
    E.accumulate()
    assert E.eval["precision"].mean() != pytest.approx(got["AP"], rel=1e-6)


# --------------------------------------------------------------------------------------------
# The commands


@pytest.fixture
def files(tmp_path):
    out = {}
    for name, kset, head, crowd in (("mpii", kp.MPII_16, True, False), ("coco", kp.COCO_17, False, False), ("crowd", kp.CROWDPOSE_14, False, True)):
        doc, _ = synthetic(kset, seed=1, head=head, crowd=crowd)
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(doc))
        out[name] = path
    return out


def test_pck_command(runner, files):
    res = run_lrp(runner, ["pck", "-q", "--head", str(files["mpii"]), "--format", "json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["metric"] == "PCKh@0.5" and data["documents"][0]["mean_excludes"] == ["pelvis", "thorax"]
    doc = json.loads(files["mpii"].read_text())
    scores = pck.joint_scores(doc, norm="head", threshold=0.5)
    assert data["documents"][0]["per_joint"]["head_top"] == pytest.approx(scores.per_joint()[9])
    assert data["documents"][0]["limbs"]["ankle"] == pytest.approx(0.5 * (scores.per_joint()[0] + scores.per_joint()[5]))
    md = run_lrp(runner, ["pck", "-q", str(files["coco"]), "--threshold", "0.1", "--format", "markdown"])
    assert md.exit_code == 0 and "### PCK@0.1 per joint (%)" in md.stdout and "| shoulder (l+r)/2 |" in md.stdout
    csv = run_lrp(runner, ["pck", "-q", str(files["coco"]), "--format", "csv"])
    assert csv.exit_code == 0 and csv.stdout.splitlines()[0] == "label,file,joint,pck,correct,counted" and len(csv.stdout.splitlines()) == 1 + 18


def test_crowdpose_command(runner, files):
    res = run_lrp(runner, ["crowdpose", "-q", str(files["crowd"]), "--format", "json"])
    assert res.exit_code == 0, res.output
    (rec,) = json.loads(res.stdout)
    assert rec["AP"] == pytest.approx(crowdpose.evaluate_crowdpose(json.loads(files["crowd"].read_text()))["AP"])
    assert rec["images_easy"] + rec["images_medium"] + rec["images_hard"] == 12
    table = run_lrp(runner, ["crowdpose", str(files["crowd"])])
    assert table.exit_code == 0 and "AP_hard" in table.stdout


def test_bad_inputs(runner, files, tmp_path):
    res = run_lrp(runner, ["pck", "--head", str(files["coco"])])
    assert res.exit_code == 1 and "annotation 1 (image 100) has no 'head_box' [x, y, w, h]" in res.stderr
    res = run_lrp(runner, ["pck", "--set", "coco-17", str(files["mpii"])])
    assert res.exit_code == 1 and "categories[0].keypoints are mpii-16, not the coco-17" in res.stderr
    res = run_lrp(runner, ["pck", "--set", "h36m", str(files["mpii"])])
    assert res.exit_code == 2 and "unknown keypoint set 'h36m'" in res.stderr
    res = run_lrp(runner, ["pck", "--threshold", "0", str(files["mpii"])])
    assert res.exit_code == 2
    res = run_lrp(runner, ["pck", str(files["mpii"]), str(files["coco"])])
    assert res.exit_code == 1 and "differs from" in res.stderr
    res = run_lrp(runner, ["crowdpose", str(files["coco"])])
    assert res.exit_code == 1 and "keypoints are coco-17, not the crowdpose-14" in res.stderr
    doc = json.loads(files["crowd"].read_text())
    del doc["images"][3]["crowdIndex"]
    (tmp_path / "noci.json").write_text(json.dumps(doc))
    res = run_lrp(runner, ["crowdpose", str(tmp_path / "noci.json")])
    assert res.exit_code == 1 and "image 103 has no numeric 'crowdIndex'" in res.stderr
    doc = json.loads(files["crowd"].read_text())
    doc["lrp"]["poses"][2]["keypoints"] = doc["lrp"]["poses"][2]["keypoints"][:39]
    (tmp_path / "short.json").write_text(json.dumps(doc))
    res = run_lrp(runner, ["crowdpose", str(tmp_path / "short.json")])
    # Refused on reading (lrp.document checks every keypoint list against its category).
    assert res.exit_code == 1 and "lrp.poses[2] (image 101): key 'keypoints' has 39 values, expected 42" in res.stderr
    res = run_lrp(runner, ["pck", str(tmp_path / "short.json")])
    assert res.exit_code == 1 and "lrp.poses[2]" in res.stderr


def test_help_and_no_torch():
    import subprocess
    import sys

    code = "import sys, lrp.pck, lrp.crowdpose, lrp.keypoints; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
    from typer.testing import CliRunner

    for cmd, word in (("pck", "head_box"), ("crowdpose", "crowdIndex")):
        res = run_lrp(CliRunner(), [cmd, "--help"])
        assert res.exit_code == 0 and word in res.stdout


def test_head_box_moves_with_the_frame():
    """A degrade step maps head_box as it maps bbox, so PCKh reads it in the document's frame."""
    from lrp.geometry import map_annotation

    ann = {"id": 1, "image_id": 1, "bbox": [40.0, 20.0, 100.0, 200.0], "head_box": [80.0, 20.0, 24.0, 30.0]}
    out = map_annotation(ann, [0.25, 0.5, 1.0, 2.0], (40, 60))
    assert out["head_box"] == [21.0, 12.0, 6.0, 15.0]
    assert pck.head_size(out["head_box"], "x") == pytest.approx(0.6 * math.hypot(6, 15))


def test_pose_refuses_a_document_of_another_keypoint_set(runner, tmp_path):
    """An MPII-16 document cannot go through a COCO-17 model: one line naming the key, exit 1."""
    from conftest import run_lrp
    from lrp.keypoints import get_set, person_category
    from lrp.sample import sample_document

    doc = sample_document()
    mpii = person_category(get_set("mpii-16"), doc["categories"][0]["id"])
    doc["categories"] = [mpii]
    for a in doc["annotations"]:
        a["keypoints"], a["num_keypoints"] = [0] * 48, 0
    path = tmp_path / "mpii.json"
    path.write_text(json.dumps(doc))
    res = run_lrp(runner, ["pose", str(path), "-q", "--model", "movenet-thunder", "--device", "cpu"])
    assert res.exit_code == 1
    assert res.stderr.strip() == "lrp pose: error: document: categories[0].keypoints are mpii-16, not the coco-17 this needs"
