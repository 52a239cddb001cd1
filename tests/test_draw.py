"""`lrp draw` and the per-person scores it colours by: OKS and IoU equal pycocotools' own, strips
are byte-identical on a re-run, chains are drawn at one scale, bad inputs give one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lrp import people, sample
from lrp.draw import prepare, relative_xform, render_panel, strip, targets
from tests.conftest import run_lrp
from tests.test_evaluate import jittered_boxes, jittered_poses, load_val4


def test_oks_and_iou_equal_pycocotools_on_coco_val4(coco_val4):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    from pycocotools import mask as mask_utils

    doc = load_val4(coco_val4)
    gt = COCO()
    gt.dataset = {k: doc[k] for k in ("info", "images", "annotations", "categories")}
    gt.createIndex()
    E = COCOeval(gt, gt.loadRes(json.loads(json.dumps(doc["lrp"]["poses"]))), "keypoints")
    E.params.catIds = [1]
    E._prepare()
    checked = 0
    for img in doc["images"]:
        ious = E.computeOks(img["id"], 1)
        dts = sorted(E._dts[img["id"], 1], key=lambda d: -d["score"])  # computeOks' own order
        gts = E._gts[img["id"], 1]
        for i, d in enumerate(dts):
            for j, g in enumerate(gts):
                assert people.oks(g, d["keypoints"]) == pytest.approx(ious[i, j], rel=1e-12, abs=1e-15)
                checked += 1
    assert checked > 20
    for d in doc["lrp"]["detections"][:40]:
        for g in [a for a in doc["annotations"] if a["image_id"] == d["image_id"]]:
            ref = mask_utils.iou([d["bbox"]], [g["bbox"]], [g["iscrowd"]])[0, 0]
            assert people.box_iou(g, d["bbox"]) == pytest.approx(ref, rel=1e-12, abs=1e-15)


def test_matching_gives_each_person_the_pose_aimed_at_them(coco_val4):
    doc = load_val4(coco_val4)
    matches = people.match_poses(doc)
    with_kp = [a for a in doc["annotations"] if a["num_keypoints"] > 0 and not a["iscrowd"]]
    # jittered_poses puts one pose near every person with keypoints (then random false positives).
    assert set(matches) == {a["id"] for a in with_kp}
    for k, a in enumerate(with_kp):
        assert matches[a["id"]].index == k and matches[a["id"]].value > 0.5
    doc["lrp"]["poses"] = []
    assert people.match_poses(doc) == {}


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """The embedded sample at 1/4 and at full size, with poses jittered from the GT in each frame."""
    from typer.testing import CliRunner

    root = tmp_path_factory.mktemp("drawchain")
    sample.ensure_sample(root / "sample")
    runner = CliRunner()
    lr = root / "lr.json"
    res = run_lrp(runner, ["degrade", "-q", "--scale", "0.25", "--images", str(root / "sample/images"),
                           str(root / "sample/person_keypoints.json"), "-o", str(lr), "--out-dir", str(root / "lr")])
    assert res.exit_code == 0, res.stderr
    paths = []
    for name, src in (("lr-pose.json", lr), ("hr-pose.json", None)):
        if src is None:
            d = json.loads((root / "sample/person_keypoints.json").read_text())
            d["lrp"] = {"schema": "lrp/1", "image_root": str(root / "sample/images"), "history": [], "degradation": None,
                        "detections": [], "poses": []}
        else:
            d = json.loads(src.read_text())
        d["lrp"]["poses"] = jittered_poses(d, seed=1 if src is None else 3)  # other noise in each frame
        d["lrp"]["detections"] = jittered_boxes(d, seed=2, with_masks=True)
        (root / name).write_text(json.dumps(d))
        paths.append(str(root / name))
    return root, paths


def test_draw_is_deterministic_lossless_and_one_file_per_image(runner, chain, tmp_path):
    root, (lr, hr) = chain
    first = run_lrp(runner, ["draw", lr, hr, "--out-dir", str(tmp_path / "a")])
    assert first.exit_code == 0, first.stderr
    written = first.stdout.split()
    n_images = len(json.loads(open(hr).read())["images"])
    assert len(written) == n_images and all(p.endswith(".png") for p in written)
    again = run_lrp(runner, ["draw", "-q", lr, hr, "--out-dir", str(tmp_path / "b")])
    for p in written:
        name = p.rsplit("/", 1)[1]
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert again.stderr == ""
    # Lossless: the HR panel (the reference frame, zoom 1) holds the input pixels outside what is drawn.
    img = json.loads(open(hr).read())["images"][0]
    out = np.asarray(Image.open(tmp_path / "a" / f"{img['id']}.png").convert("RGB"))
    src = np.asarray(Image.open(root / "sample/images" / img["file_name"]).convert("RGB"))
    w, h = img["width"], img["height"]
    panel = out[16:16 + h, w + 6: 2 * w + 6]
    assert panel.shape == src.shape
    assert (panel == src).mean() > 0.5  # most pixels are untouched by masks, boxes and skeletons


def test_chain_strips_share_one_scale_and_lr_is_enlarged_with_nearest(chain):
    root, (lr, hr) = chain
    from lrp.document import adopt

    sources = prepare([(p, adopt(json.loads(open(p).read()), p)) for p in (lr, hr)])
    for s in sources:
        s.doc["lrp"]["poses"] = []  # nothing drawn over the pixels but boxes
        s.doc["lrp"]["detections"] = []
        s.pose_grade, s.det_grade, s.poses, s.detections = {}, {}, {}, {}
        for anns in s.people.values():
            for a in anns:
                a.pop("segmentation", None)
    size = {a["id"]: a["bbox"][3] for anns in sources[1].people.values() for a in anns}
    iid, aid = min(targets(sources, True, None, None), key=lambda t: size[t[1]])  # the smallest person
    im = np.asarray(strip(sources, iid, aid))
    ann = next(a for a in sources[1].people[iid] if a["id"] == aid)
    from lrp.draw import person_view

    view = person_view(sources[1], ann)
    assert view.zoom >= 1 and float(view.zoom).is_integer()
    pw, ph = view.size
    assert im.shape[0] == ph + 3 * 16 and im.shape[1] >= 2 * pw + 6
    # Without anything drawn over it, the LR panel is exactly a nearest-neighbour enlargement:
    # panel pixel u shows LR pixel floor(ax * (x0 + (u + 0.5) / zoom) + bx).
    for s in sources:
        s.people = {}
    panel = np.asarray(render_panel(sources[0], sources[1], iid, view))
    lr_img = sources[0].images[iid]
    lr_px = np.asarray(Image.open(Path(sources[0].doc["lrp"]["image_root"]) / lr_img["file_name"]).convert("RGB"))
    ax, ay, bx, by = relative_xform(sources[0], sources[1], iid)
    cols = np.floor(ax * (view.x0 + (np.arange(pw) + 0.5) / view.zoom) + bx).astype(int)
    rows = np.floor(ay * (view.y0 + (np.arange(ph) + 0.5) / view.zoom) + by).astype(int)
    inside_c = (cols >= 0) & (cols < lr_img["width"])
    inside_r = (rows >= 0) & (rows < lr_img["height"])
    expected = lr_px[rows[inside_r]][:, cols[inside_c]]
    assert np.array_equal(panel[inside_r][:, inside_c], expected)
    runs = np.unique(cols[inside_c], return_counts=True)[1][1:-1]  # whole LR pixels (not the cut edges)
    assert len(runs) >= 2 and abs(runs - view.zoom / ax).max() <= 1


def test_people_strips_and_selection(runner, chain, tmp_path):
    root, (lr, hr) = chain
    doc = json.loads(open(hr).read())
    ann = next(a for a in doc["annotations"] if not a["iscrowd"])
    res = run_lrp(runner, ["draw", "-q", lr, hr, "--ann-id", str(ann["id"]), "--out-dir", str(tmp_path)])
    assert res.exit_code == 0, res.stderr
    assert res.stdout.split() == [str(tmp_path.resolve() / f"{ann['image_id']}-{ann['id']}.png")]
    res = run_lrp(runner, ["draw", "-q", hr, "--people", "--image-id", str(ann["image_id"]), "--out-dir", str(tmp_path / "p")])
    n = sum(1 for a in doc["annotations"] if a["image_id"] == ann["image_id"] and not a["iscrowd"])
    assert res.exit_code == 0 and len(res.stdout.split()) == n


def test_draw_bad_inputs(runner, chain, tmp_path, coco_val4):
    root, (lr, hr) = chain
    cases = [
        (["draw", hr], 2, "--out-dir DIR is required"),
        (["draw", hr, "--out-dir", str(root / "sample/images")], 2, "image folder"),
        (["draw", hr, "--out-dir", str(root / "sample/images/sub")], 2, "image folder"),
        (["draw", hr, "--out-dir", str(root / "sample")], 2, "image folder"),
        (["draw", str(tmp_path / "nope.json"), "--out-dir", str(tmp_path / "o")], 1, "nope.json: no such file"),
        (["draw", hr, "--image-id", "99999", "--out-dir", str(tmp_path / "o")], 2, "--image-id 99999"),
        (["draw", hr, "--ann-id", "99999", "--out-dir", str(tmp_path / "o")], 2, "--ann-id 99999"),
        (["draw", hr, lr, "--label", "one", "--out-dir", str(tmp_path / "o")], 2, "--label given 1 times"),
        (["draw", str(coco_val4 / "person_keypoints.json"), "--out-dir", str(tmp_path / "o")], 2, "needs --images"),
    ]
    other = json.loads(open(hr).read())
    other["images"] = other["images"][:1]
    other["annotations"] = [a for a in other["annotations"] if a["image_id"] == other["images"][0]["id"]]
    other["lrp"]["poses"] = other["lrp"]["detections"] = []
    (tmp_path / "other.json").write_text(json.dumps(other))
    cases.append((["draw", hr, str(tmp_path / "other.json"), "--out-dir", str(tmp_path / "o")], 1, "hold different images"))
    broken = json.loads(open(hr).read())
    (root / "sample/images" / broken["images"][0]["file_name"]).rename(root / "moved.png")
    try:
        cases_missing = (["draw", hr, "--out-dir", str(tmp_path / "m")], 1, "file not found")
        for args, code, text in cases + [cases_missing]:
            res = run_lrp(runner, args)
            assert res.exit_code == code, (args, res.stderr)
            assert res.stderr.startswith("lrp draw: error: ") and text in res.stderr, res.stderr
            assert len(res.stderr.strip().splitlines()) == 1
    finally:
        (root / "moved.png").rename(root / "sample/images" / broken["images"][0]["file_name"])
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_val4_chain_draws(runner, coco_val4, tmp_path):
    """Real COCO people through a 1/4 frame: one strip per person with keypoints and a caption each."""
    doc = load_val4(coco_val4)
    (tmp_path / "hr.json").write_text(json.dumps(doc))
    res = run_lrp(runner, ["draw", "-q", str(tmp_path / "hr.json"), "--people", "--out-dir", str(tmp_path / "o")])
    assert res.exit_code == 0, res.stderr
    assert len(res.stdout.split()) == sum(1 for a in doc["annotations"] if not a["iscrowd"])


def test_min_score_hides_only_unmatched_predictions(chain):
    from lrp.document import adopt

    root, (lr, hr) = chain
    doc = adopt(json.loads(open(hr).read()), hr)
    (src,) = prepare([(hr, doc)], min_score=0.99)
    for kind, grades in (("poses", src.pose_grade), ("detections", src.det_grade)):
        results = doc["lrp"][kind]
        for iid in src.images:
            shown = {i for i, _ in src.shown(kind, iid)}
            expected = {i for i, r in enumerate(results) if r["image_id"] == iid and (i in grades or r["score"] >= 0.99)}
            assert shown == expected
        hidden = [i for i, r in enumerate(results) if i not in grades and r["score"] < 0.99]
        assert grades and (kind == "detections" or hidden)  # the jittered poses include unmatched false positives
    (everything,) = prepare([(hr, doc)])
    assert sum(1 for iid in everything.images for _ in everything.shown("poses", iid)) == len(doc["lrp"]["poses"])
