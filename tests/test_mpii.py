"""`lrp mpii` (the official HRNet MPII annotation files as a document), the `lrp_crop` field, and
the MPII protocol end to end: `lrp pose --boxes gt` against the official test, `lrp pck --head`
against the official `evaluate`.

The files are made here in the official formats: images drawn with PIL, a `valid.json`, and a
`gt_valid.mat` written by tests/matv5.py's small MATLAB v5 writer. The official side is written
from deep-high-resolution-net.pytorch's protocol (lib/dataset/mpii.py `_get_db` and `evaluate`,
lib/core/function.py `validate`), with the centre and scale computed from valid.json directly,
in float64 as `_get_db` holds them; the crop, flip test and get_final_preds are
tests/official_hrnet.py's, with the installed cv2.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import official_hrnet as official
from lrp.geometry import map_gt_keypoints
from lrp.keypoints import MPII_16
from lrp.sources.matlab import read_mat
from matv5 import savemat
from test_keypoint_set_models import OFFICIAL_PAIRS, SIZE, set_model  # noqa: F401 (set_model: a fixture)
from tests.conftest import run_lrp, snapshot

cv2 = pytest.importorskip("cv2")

# name, (w, h), format
IMAGES = [("000000001.jpg", (160, 128), "JPEG"), ("000000002.png", (144, 176), "PNG"), ("000000003.jpg", (121, 100), "JPEG")]
# image, 1-based centre, scale: two people in an image, one whose centre x is -1 (`_get_db`
# then neither shifts nor pads), one with every joint missing.
PEOPLE = [
    ("000000001.jpg", [60.5, 50.25], 0.42),
    ("000000001.jpg", [110.3, 70.7], 0.35),
    ("000000002.png", [72.1, 80.4], 0.55),
    ("000000002.png", [40.0, 120.0], 0.3),
    ("000000003.jpg", [-1, 40.0], 0.25),
    ("000000003.jpg", [70.0, 50.0], 0.3),
]
NO_JOINTS = 5
NAMES = ["rank", "rkne", "rhip", "lhip", "lkne", "lank", "pelv", "thor", "neck", "head", "rwri", "relb", "rsho", "lsho", "lelb", "lwri"]


def draw_images(folder, seed=0):
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng(seed)
    folder.mkdir()
    for name, (w, h), fmt in IMAGES:
        im = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).filter(ImageFilter.GaussianBlur(2))
        draw = ImageDraw.Draw(im)
        for _ in range(12):
            x, y = rng.uniform(0, w), rng.uniform(0, h)
            r = rng.uniform(4, 20)
            draw.ellipse([x - r, y - r, x + r, y + 1.5 * r], fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        im.save(folder / name, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))


def make_files(tmp_path, seed=0):
    """images/, valid.json and gt_valid.mat in the official formats; returns (paths, entries, gt)."""
    rng = np.random.default_rng(seed)
    draw_images(tmp_path / "images", seed)
    entries, pos, missing, heads = [], [], [], []
    for n, (image, center, scale) in enumerate(PEOPLE):
        cx = center[0] if center[0] != -1 else 30.0
        joints = np.stack([cx + rng.uniform(-80, 80, 16) * scale, center[1] + rng.uniform(-80, 100, 16) * scale], axis=1).round(1)
        vis = (rng.uniform(size=16) < 0.8).astype(int) * (n != NO_JOINTS)
        entries.append({"image": image, "center": center, "scale": scale, "joints": joints.tolist(), "joints_vis": vis.tolist()})
        # The evaluation's truth differs from valid.json's joints, so the test sees which one is read.
        gt_xy = joints + 0.25
        gone = 1 - vis
        if n == 0:
            gone[3] = 1  # annotated in valid.json, missing for the evaluation
        gt_xy[gone == 1] = np.nan if n == 1 else -1.0  # never read
        pos.append(gt_xy)
        missing.append(gone)
        # Head boxes of many sizes (sides of 20 to 800 px), so that the PCKh of a random-weight
        # model is neither 0 nor 100 at 0.5 and at 0.1.
        side = 20.0 * 2.5**n
        x1, y1 = joints[9] - [side / 2, side / 3]
        heads.append([[x1, y1], [x1 + side, y1 + side * 0.8]])
    valid = tmp_path / "valid.json"
    valid.write_text(json.dumps(entries))
    gt = {
        "dataset_joints": NAMES,
        "jnt_missing": np.array(missing, dtype=float).T,  # 16 x N
        "pos_gt_src": np.transpose(np.array(pos), (1, 2, 0)),  # 16 x 2 x N
        "headboxes_src": np.transpose(np.array(heads), (1, 2, 0)),  # 2 x 2 x N
    }
    mat = tmp_path / "gt_valid.mat"
    savemat(mat, gt, compress=True)
    return {"valid": valid, "gt": mat, "images": tmp_path / "images"}, entries, gt


def import_mpii(runner, files, out, *extra, gt=True):
    args = ["mpii", str(files["valid"]), "--images", str(files["images"]), "-o", str(out), *extra]
    if gt:
        args[2:2] = ["--gt", str(files["gt"])]
    return run_lrp(runner, args)


# --------------------------------------------------------------------------------------------
# The MATLAB writer and lrp's reader


@pytest.mark.parametrize("compress", [False, True])
def test_the_writer_reads_back_with_lrps_reader(tmp_path, compress):
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(16, 2, 3)), rng.normal(size=(16, 3))
    path = tmp_path / "x.mat"
    savemat(path, {"names": ["head", "lsho"], "a": a, "b": b}, compress=compress)
    data = path.read_bytes()
    # A cell of char arrays is not a numeric matrix: refused when read, skipped when not asked for.
    with pytest.raises(ValueError, match="is text, not a real numeric matrix"):
        read_mat(data)
    got = read_mat(data, only=("a", "b"))
    assert set(got) == {"a", "b"}
    np.testing.assert_array_equal(got["a"], a)
    np.testing.assert_array_equal(got["b"], b)
    assert read_mat(data, only=("b",)).keys() == {"b"}


# --------------------------------------------------------------------------------------------
# The document


def test_document_holds_what_the_files_say(runner, tmp_path):
    files, entries, gt = make_files(tmp_path)
    res = import_mpii(runner, files, tmp_path / "doc.json")
    assert res.exit_code == 0, res.stderr
    assert "6 people in 3 images" in res.stderr
    doc = json.loads((tmp_path / "doc.json").read_text())
    assert [(i["file_name"], i["width"], i["height"]) for i in doc["images"]] == [(n, w, h) for n, (w, h), _ in IMAGES]
    assert doc["categories"][0]["keypoints"] == list(MPII_16.keypoints) and doc["categories"][0]["lrp"]["set"] == "mpii-16"
    assert doc["lrp"]["history"][-1]["command"] == "mpii"
    by_name = {i["file_name"]: i for i in doc["images"]}
    assert [a["id"] for a in doc["annotations"]] == list(range(1, 7))
    for n, (a, e) in enumerate(zip(doc["annotations"], entries)):
        img = by_name[e["image"]]
        assert a["image_id"] == img["id"] and a["lrp_index"] == n and a["iscrowd"] == 0
        k = np.array(a["keypoints"]).reshape(16, 3)
        present = gt["jnt_missing"][:, n] == 0
        np.testing.assert_array_equal(k[present, :2], gt["pos_gt_src"][present, :, n] - 1)
        assert (k[present, 2] == 2).all() and (k[~present] == 0).all()
        assert a["num_keypoints"] == present.sum()
        (x1, y1), (x2, y2) = gt["headboxes_src"][:, :, n]
        assert a["head_box"] == [x1 - 1, y1 - 1, x2 - x1, y2 - y1]
        # The official crop: centre down 15 x scale and 1.25 x padding unless x is -1, then 0-based.
        cx, cy = e["center"]
        s = e["scale"] * (1.25 if cx != -1 else 1.0)
        cy = cy + 15 * e["scale"] if cx != -1 else cy
        assert a["lrp_crop"] == {"center": [cx - 1, cy - 1], "size": [s * 200, s * 200]}
        side = 200 * e["scale"]
        x0, y0 = max(0, cx - 1 - side / 2), max(0, cy - 1 - side / 2)
        x1_, y1_ = min(img["width"], cx - 1 + side / 2), min(img["height"], cy - 1 + side / 2)
        assert a["bbox"] == pytest.approx([x0, y0, x1_ - x0, y1_ - y0], abs=1e-12)
        assert a["area"] == pytest.approx(a["bbox"][2] * a["bbox"][3], abs=1e-9)
    # Person 0's joint 3 is annotated in valid.json but missing for the evaluation: --gt wins.
    assert entries[0]["joints_vis"][3] == 1 and doc["annotations"][0]["keypoints"][11] == 0

    # Without --gt: valid.json's joints and visibility, no head boxes, and stderr says PCKh is impossible.
    res = import_mpii(runner, files, tmp_path / "nogt.json", gt=False)
    assert res.exit_code == 0, res.stderr
    assert "no head boxes: PCKh (lrp pck --head) is impossible" in res.stderr
    nogt = json.loads((tmp_path / "nogt.json").read_text())
    for a, e in zip(nogt["annotations"], entries):
        assert "head_box" not in a
        k = np.array(a["keypoints"]).reshape(16, 3)
        vis = np.array(e["joints_vis"]) == 1
        np.testing.assert_array_equal(k[vis, :2], np.array(e["joints"])[vis] - 1)
        assert (k[vis, 2] == 2).all() and (k[~vis] == 0).all()
    res = run_lrp(runner, ["pck", "--head", str(tmp_path / "nogt.json"), "-q"])
    assert res.exit_code == 1 and "has no 'head_box'" in res.stderr


def test_the_import_needs_no_torch(tmp_path):
    import subprocess
    import sys

    from tests.conftest import REPO

    files, _, _ = make_files(tmp_path)
    code = (
        "import sys; from lrp.mpii import mpii_document; "
        f"doc = mpii_document({str(files['valid'])!r}, {str(files['images'])!r}, {str(files['gt'])!r}, quiet=True); "
        "assert len(doc['annotations']) == 6; assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_lrp_crop_moves_with_the_frame(runner, tmp_path):
    files, _, _ = make_files(tmp_path)
    assert import_mpii(runner, files, tmp_path / "doc.json").exit_code == 0
    doc = json.loads((tmp_path / "doc.json").read_text())
    res = run_lrp(runner, ["degrade", "--scale", "0.5", str(tmp_path / "doc.json"), "-q", "--out-dir", str(tmp_path / "lr"), "-o", str(tmp_path / "lr.json")])
    assert res.exit_code == 0, res.stderr
    lr = json.loads((tmp_path / "lr.json").read_text())
    images = {i["id"]: i for i in lr["images"]}
    assert images[3]["lrp"]["xform"][0] == 61 / 121 != images[3]["lrp"]["xform"][1]  # per-axis factors from the real sizes
    for a, b in zip(doc["annotations"], lr["annotations"]):
        xf = images[b["image_id"]]["lrp"]["xform"]
        (x, y), (w, h) = a["lrp_crop"]["center"], a["lrp_crop"]["size"]
        assert b["lrp_crop"]["center"] == map_gt_keypoints([x, y, 2], xf)[:2]
        assert b["lrp_crop"]["size"] == [w * xf[0], h * xf[1]]
    res = run_lrp(runner, ["degrade", "--to-origin", str(tmp_path / "lr.json"), "-q", "--out-dir", str(tmp_path / "back"), "-o", str(tmp_path / "back.json")])
    assert res.exit_code == 0, res.stderr
    back = json.loads((tmp_path / "back.json").read_text())
    for a, b in zip(doc["annotations"], back["annotations"]):
        assert b["lrp_crop"]["center"] == pytest.approx(a["lrp_crop"]["center"], abs=1e-9)
        assert b["lrp_crop"]["size"] == pytest.approx(a["lrp_crop"]["size"], abs=1e-9)


# --------------------------------------------------------------------------------------------
# The protocol: lrp pose + lrp pck against the official test and evaluate


def mpii_like_crops(count, seed=0):
    """Centres and scales as `_get_db` makes them from valid.json's decimals (float64)."""
    rng = np.random.default_rng(seed)
    center = np.stack([rng.uniform(20, 380, count), rng.uniform(20, 280, count)], axis=1).round(2)
    scale = rng.uniform(0.3, 2.0, count).round(6)
    center[:, 1] += 15 * scale
    return center - 1, np.repeat(scale[:, None] * 1.25, 2, axis=1)


def test_official_crops_are_built_in_float64_as_mpiis_get_db_holds_them():
    """The crops of float64 centres and scales equal cv2.warpAffine of the official matrices,
    pixel for pixel; built from float32-rounded values (COCO's dtype) they would not."""
    from lrp.heatmaps import crop_to_image, invert_affine
    from lrp.topdown import TopDown, resolve_warp

    center, scale = mpii_like_crops(60)
    size = (256, 256)
    wide = np.ones(len(center), dtype=bool)
    warp = resolve_warp("auto")  # the installed cv2's getAffineTransform, to the last bit
    for i in range(len(center)):
        c, s, one = center[i : i + 1], scale[i : i + 1], wide[:1]
        want = official.affine(center[i], scale[i], size, inverse=True, dtype=np.float64)
        np.testing.assert_array_equal(crop_to_image(c, s, size, points64=one, warp=warp)[0], want)
        forward = official.affine(center[i], scale[i], size, dtype=np.float64)
        got = crop_to_image(c, s, size, inverse_of_forward=True, points64=one, warp=warp)[0]
        np.testing.assert_array_equal(got, invert_affine(forward[None])[0])
    rgb = np.random.default_rng(1).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    run = TopDown(torch.nn.Identity(), size, warp="auto")
    want = np.stack([official.crop(rgb, c, s, size, dtype=np.float64) for c, s in zip(center, scale)]).transpose(0, 3, 1, 2)
    image = torch.from_numpy(rgb)
    np.testing.assert_array_equal(run.crops(image, center, scale, wide).numpy(), want)
    assert (run.crops(image, center, scale).numpy() != want).any()


def official_test(net, entries, images, size, pairs):
    """The official MPII test of every valid.json entry: (preds (N, 16, 2) float32 as `validate`
    stores them, maxvals (N, 16))."""
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    preds, maxvals = [], []
    for e in entries:
        c = np.array(e["center"], dtype=np.float64)
        s = np.array([e["scale"], e["scale"]], dtype=np.float64)
        if c[0] != -1:
            c[1] = c[1] + 15 * s[1]
            s = s * 1.25
        c = c - 1
        bgr = cv2.imread(str(images / e["image"]), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        x = torch.from_numpy(official.crop(rgb, c, s, size, dtype=np.float64)[None]).permute(0, 3, 1, 2).float() / 255.0
        x = (x - mean) / std
        with torch.no_grad():
            heatmaps = official.flip_test(net(x).numpy(), net(torch.flip(x, [3])).numpy(), pairs)
        xy, score = official.final_preds(heatmaps, c[None], s[None], dtype=np.float64)
        preds.append(xy[0].astype(np.float32))
        maxvals.append(score[0])
    return np.stack(preds), np.stack(maxvals)


def official_pckh(preds, gt, threshold):
    """`evaluate` of lib/dataset/mpii.py: predictions + 1 against pos_gt_src, head size 0.6 x the
    head box diagonal; per joint in percent, and the Mean weighted by the joint counts without
    pelvis and thorax (joints 6 and 7)."""
    pred = np.transpose(preds + 1.0, (1, 2, 0))
    visible = 1 - gt["jnt_missing"]
    err = np.linalg.norm(pred - gt["pos_gt_src"], axis=1)
    heads = 0.6 * np.linalg.norm(gt["headboxes_src"][1] - gt["headboxes_src"][0], axis=0)
    scaled = err / (heads * np.ones((len(err), 1))) * visible
    count = visible.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        pckh = 100.0 * ((scaled <= threshold) * visible).sum(axis=1) / count
    keep = np.ones(16, dtype=bool)
    keep[6:8] = False
    return pckh, float(np.sum(pckh[keep] * count[keep] / count[keep].sum()))


def pck_json(runner, path, *args):
    res = run_lrp(runner, ["pck", "--head", str(path), "--format", "json", "-q", *args])
    assert res.exit_code == 0, res.stderr
    return json.loads(res.stdout)["documents"][0]


def test_pose_and_pckh_equal_the_official_mpii_test(runner, tmp_path, set_model):
    files, entries, gt = make_files(tmp_path)
    assert import_mpii(runner, files, tmp_path / "doc.json").exit_code == 0
    model, net = set_model("mpii-16")
    res = run_lrp(runner, ["pose", str(tmp_path / "doc.json"), "-q", "--device", "cpu", "--model", model, "--warp", "auto", "--boxes", "gt", "-o", str(tmp_path / "poses.json")])
    assert res.exit_code == 0, res.stderr
    out = json.loads((tmp_path / "poses.json").read_text())
    doc = json.loads((tmp_path / "doc.json").read_text())
    assert out["lrp"]["history"][-1]["args"]["official_crops"] == 5
    want, scores = official_test(net, entries, files["images"], SIZE, OFFICIAL_PAIRS["mpii-16"])
    # One pose per person with annotated joints, found by its annotation's bbox (poses keep it).
    poses = {(p["image_id"], tuple(p["bbox"])): np.array(p["keypoints"]).reshape(16, 3) for p in out["lrp"]["poses"]}
    assert len(poses) == len(out["lrp"]["poses"]) == len(entries) - 1
    worst = 0.0
    for a in doc["annotations"]:
        if a["num_keypoints"] == 0:
            continue
        mine = poses[(a["image_id"], tuple(a["bbox"]))]
        n = a["lrp_index"]
        worst = max(worst, float(np.linalg.norm(mine[:, :2] - want[n], axis=1).max()))
        np.testing.assert_allclose(mine[:, 2], scores[n], rtol=0, atol=1e-5)
    print(f"max keypoint distance to the official MPII test: {worst:.3g} px")
    assert worst <= 1e-3, worst

    # PCKh@0.5 and @0.1: lrp pck --head equals the official evaluate on the official predictions.
    for threshold in (0.5, 0.1):
        got = pck_json(runner, tmp_path / "poses.json", "--threshold", str(threshold))
        per_joint, mean = official_pckh(want, gt, threshold)
        assert 0 < mean < 100, mean  # the numbers are not trivially all right or all wrong
        for j, name in enumerate(MPII_16.keypoints):
            if np.isnan(per_joint[j]):
                assert got["per_joint"][name] is None
            else:
                assert got["per_joint"][name] == pytest.approx(per_joint[j], abs=1e-9), name
        assert got["mean"] == pytest.approx(mean, abs=1e-9)
    # The official "Mean@0.1" reads row 11 of np.arange(0, 0.51, 0.01), i.e. threshold 0.11.
    row = np.arange(0, 0.5 + 0.01, 0.01)[11]
    at_row = pck_json(runner, tmp_path / "poses.json", "--threshold", repr(float(row)))
    assert at_row["mean"] == pytest.approx(official_pckh(want, gt, row)[1], abs=1e-9)

    # The crop matters: the same people through their plain GT boxes give other keypoints.
    for a in doc["annotations"]:
        a.pop("lrp_crop")
    (tmp_path / "boxes.json").write_text(json.dumps(doc))
    res = run_lrp(runner, ["pose", str(tmp_path / "boxes.json"), "-q", "--device", "cpu", "--model", model, "--warp", "auto", "--boxes", "gt"])
    assert res.exit_code == 0, res.stderr
    moved = 0.0
    for p in json.loads(res.stdout)["lrp"]["poses"]:
        a = next(a for a in doc["annotations"] if a["image_id"] == p["image_id"] and a["bbox"] == p["bbox"])
        moved = max(moved, float(np.linalg.norm(np.array(p["keypoints"]).reshape(16, 3)[:, :2] - want[a["lrp_index"]], axis=1).max()))
    assert moved > 1.0, moved


# --------------------------------------------------------------------------------------------
# Bad input: one line, exit 1, nothing written


def _rewrite_valid(files, change):
    entries = json.loads(files["valid"].read_text())
    files["valid"].write_text(change(entries) if callable(change) else change)


def _drop(entries, i, key):
    del entries[i][key]
    return json.dumps(entries)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda e: json.dumps({"people": e}), "{valid}: not MPII annotations: expected a JSON list of people (annot/valid.json), got dict"),
        (lambda e: _drop(e, 2, "scale"), "{valid}: entry 2 has no 'scale'"),
        (lambda e: json.dumps(e[:1] + [{**e[1], "joints": e[1]["joints"][:15]}] + e[2:]), "{valid}: entry 1: key 'joints' has 15 joints, 16 expected (MPII's order)"),
        (lambda e: json.dumps(e).replace("[110.3, 70.7]", "[110.3, 1e999]"), "{valid}: entry 1: key 'center' must be [x, y] of finite numbers, got [110.3, inf]"),
        (lambda e: json.dumps(e).replace("[110.3, 70.7]", "[110.3, NaN]"), "{valid}: [1]: key 'center[1]': NaN is not a JSON number (values must be finite)"),
    ],
)
def test_bad_valid_json(runner, tmp_path, change, message):
    files, _, _ = make_files(tmp_path)
    _rewrite_valid(files, change)
    before = snapshot(tmp_path)
    res = import_mpii(runner, files, tmp_path / "out.json")
    assert res.exit_code == 1
    assert res.stderr.strip().splitlines() == [f"lrp mpii: error: {message.format(valid=files['valid'])}"]
    assert snapshot(tmp_path) == before  # nothing written, the inputs untouched


@pytest.mark.parametrize("case", ["fewer", "no headboxes", "nan head", "nan joint"])
def test_bad_gt_valid_mat(runner, tmp_path, case):
    files, _, gt = make_files(tmp_path)
    gt = dict(gt)
    if case == "fewer":
        gt = {k: (v[..., :5] if k != "dataset_joints" else v) for k, v in gt.items()}
        message = f"{files['gt']}: 'jnt_missing' holds 5 people, {files['valid']} 6: the two files list the same people in the same order"
    elif case == "no headboxes":
        del gt["headboxes_src"]
        message = f"{files['gt']}: no variable 'headboxes_src' (the official annot/gt_valid.mat holds jnt_missing, pos_gt_src, headboxes_src)"
    elif case == "nan head":
        gt["headboxes_src"] = gt["headboxes_src"].copy()
        gt["headboxes_src"][1, 0, 4] = np.inf
        message = f"{files['gt']}: headboxes_src[:, :, 4] (person 4) is not finite"
    else:
        gt["pos_gt_src"] = gt["pos_gt_src"].copy()
        present = np.argwhere(gt["jnt_missing"][:, 2] == 0)[0, 0]
        gt["pos_gt_src"][present, 1, 2] = np.nan
        message = f"{files['gt']}: pos_gt_src[{present}, :, 2] (person 2, {MPII_16.keypoints[present]}) is not finite"
    savemat(files["gt"], gt)
    before = snapshot(tmp_path)
    res = import_mpii(runner, files, tmp_path / "out.json")
    assert res.exit_code == 1
    assert res.stderr.strip().splitlines() == [f"lrp mpii: error: {message}"]
    assert snapshot(tmp_path) == before


def test_missing_image_and_options(runner, tmp_path):
    files, _, _ = make_files(tmp_path)
    (files["images"] / "000000002.png").unlink()
    before = snapshot(tmp_path)
    res = import_mpii(runner, files, tmp_path / "out.json")
    assert res.exit_code == 1
    assert res.stderr.strip().splitlines() == [
        f"lrp mpii: error: {(files['images'] / '000000002.png').resolve()}: no such image (entry 2 of {files['valid']})"
    ]
    assert snapshot(tmp_path) == before
    res = run_lrp(runner, ["mpii", str(files["valid"]), "-o", str(tmp_path / "out.json")])
    assert res.exit_code == 2 and res.stderr.strip() == "lrp mpii: error: --images DIR is needed: the folder of MPII's images (the file names in valid.json)"


@pytest.mark.parametrize("crop", [{"center": [1.0], "size": [2.0, 2.0]}, {"center": [1.0, 2.0], "size": [0.0, 2.0]}, [1, 2]])
def test_malformed_lrp_crop_is_refused_when_read(runner, tmp_path, crop):
    files, _, _ = make_files(tmp_path)
    assert import_mpii(runner, files, tmp_path / "doc.json").exit_code == 0
    doc = json.loads((tmp_path / "doc.json").read_text())
    doc["annotations"][2]["lrp_crop"] = crop
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    before = snapshot(tmp_path)
    res = run_lrp(runner, ["degrade", "--scale", "0.5", str(path), "-q", "--out-dir", str(tmp_path / "lr"), "-o", str(tmp_path / "lr.json")])
    assert res.exit_code == 1
    assert snapshot(tmp_path) == before
    assert res.stderr.strip().splitlines() == [
        f"lrp degrade: error: {path}: annotation 3 (image 2): key 'lrp_crop' must be "
        f'{{"center": [x, y], "size": [w, h]}} of finite numbers with w, h > 0, got {crop!r}'
    ]
    assert not (tmp_path / "lr.json").exists()
