"""`lrp degrade`: frames of the annotations, pixels, and the command-line contract."""

from __future__ import annotations

import contextlib
import io
import json
import math
import shutil

import numpy as np
import pytest
from conftest import run_lrp
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from lrp.degrade import degrade_document, plan_frames
from lrp.inputs import load_document
from lrp.outputs import reframed
from lrp.images import load_rgb
from lrp.resize import resize_image

# --------------------------------------------------------------------------------------------
# Helpers


def adopted(folder):
    return load_document(str(folder / "person_keypoints.json"), images=folder / "images")


def with_gt_as_predictions(doc):
    """GT boxes of non-crowd people and GT keypoints of people with keypoints, as results."""
    dets, poses = [], []
    for a in doc["annotations"]:
        if a.get("iscrowd"):
            continue
        dets.append({"image_id": a["image_id"], "category_id": a["category_id"], "bbox": list(a["bbox"]), "score": 1.0})
        if a.get("num_keypoints", 0) > 0:
            poses.append({"image_id": a["image_id"], "category_id": a["category_id"], "keypoints": list(a["keypoints"]), "score": 1.0})
    doc["lrp"]["detections"], doc["lrp"]["poses"] = dets, poses
    return doc


def coco_ap(doc, iou_type):
    """Plain pycocotools: the document's GT against its own lrp.detections / lrp.poses."""
    gt = COCO()
    gt.dataset = {k: v for k, v in doc.items() if k != "lrp"}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        results = doc["lrp"]["detections" if iou_type == "bbox" else "poses"]
        dt = gt.loadRes(json.loads(json.dumps(results)))
        ev = COCOeval(gt, dt, iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats[0]


def tiny_dataset(tmp_path, coco_val4, ids=(785, 40083)):
    """A copy of a few coco-val-4 images and their annotations in tmp_path (so we may break it)."""
    src = json.loads((coco_val4 / "person_keypoints.json").read_text())
    images = [i for i in src["images"] if i["id"] in ids]
    data = dict(src, images=images, annotations=[a for a in src["annotations"] if a["image_id"] in ids])
    (tmp_path / "in").mkdir()
    for img in images:
        shutil.copy(coco_val4 / "images" / img["file_name"], tmp_path / "in" / img["file_name"])
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps(data))
    return ann, tmp_path / "in", data


def snapshot(folder):
    return {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(folder.iterdir())}


# --------------------------------------------------------------------------------------------
# Frames: exact values, AP = 1.0 in every frame, round trips (no pixels needed)


@pytest.mark.parametrize("dataset", ["coco_val4", "coco_train_mini"])
@pytest.mark.parametrize("scale", [0.5, 0.25])
def test_annotations_move_by_the_real_size_factors(dataset, scale, request, tmp_path):
    doc = with_gt_as_predictions(adopted(request.getfixturevalue(dataset)))
    new = reframed(doc, plan_frames(doc, scale=scale), tmp_path)
    old_imgs = {i["id"]: i for i in doc["images"]}
    new_imgs = {i["id"]: i for i in new["images"]}
    for iid, img in new_imgs.items():
        w, h = old_imgs[iid]["width"], old_imgs[iid]["height"]
        assert (img["width"], img["height"]) == (math.ceil(w * scale), math.ceil(h * scale))
        assert img["lrp"]["xform"] == [img["width"] / w, img["height"] / h, 0.0, 0.0]
        assert img["file_name"].endswith(".png") and img["lrp"]["origin"]["file_name"] == old_imgs[iid]["file_name"]
    assert [a["id"] for a in new["annotations"]] == [a["id"] for a in doc["annotations"]]  # none dropped
    crowds = 0
    for old, ann in zip(doc["annotations"], new["annotations"]):
        img = new_imgs[ann["image_id"]]
        sx, sy = img["lrp"]["xform"][:2]
        x, y, bw, bh = old["bbox"]
        np.testing.assert_allclose(ann["bbox"], [x * sx, y * sy, bw * sx, bh * sy], rtol=1e-12)
        assert ann["area"] == pytest.approx(old["area"] * sx * sy, rel=1e-12)
        assert ann["num_keypoints"] == old["num_keypoints"] and ann["iscrowd"] == old["iscrowd"]
        kp_old, kp = np.reshape(old["keypoints"], (-1, 3)), np.reshape(ann["keypoints"], (-1, 3))
        visible = kp_old[:, 2] > 0
        np.testing.assert_allclose(kp[visible, :2], kp_old[visible, :2] * [sx, sy], rtol=1e-12)
        assert np.all(kp[~visible] == 0)
        if ann["iscrowd"]:
            crowds += 1
            rle = ann["segmentation"]
            assert rle["size"] == [img["height"], img["width"]]
            old_rle = mask_utils.frPyObjects(old["segmentation"], *old["segmentation"]["size"])
            old_pixels, new_pixels = mask_utils.area(old_rle), mask_utils.area(rle)
            assert new_pixels == pytest.approx(old_pixels * sx * sy, rel=0.1)
        else:
            for p_old, p in zip(old["segmentation"], ann["segmentation"]):
                np.testing.assert_allclose(p[0::2], np.multiply(p_old[0::2], sx), rtol=1e-12)
                np.testing.assert_allclose(p[1::2], np.multiply(p_old[1::2], sy), rtol=1e-12)
    assert crowds == (5 if dataset == "coco_train_mini" else 0)


@pytest.mark.parametrize("dataset", ["coco_val4", "coco_train_mini"])
def test_gt_as_predictions_gives_ap_one_in_every_frame(dataset, request, tmp_path):
    doc = with_gt_as_predictions(adopted(request.getfixturevalue(dataset)))
    frames = {"original": doc}
    for scale in (0.5, 0.25):
        frames[f"1/{int(1 / scale)}"] = reframed(doc, plan_frames(doc, scale=scale), tmp_path)
    frames["strided 1/4"] = reframed(doc, plan_frames(doc, scale=0.25, method="strided"), tmp_path)
    frames["back to origin"] = reframed(frames["1/4"], plan_frames(frames["1/4"], to_origin=True), tmp_path)
    for name, d in frames.items():
        assert coco_ap(d, "bbox") == pytest.approx(1.0, abs=1e-12), name
        assert coco_ap(d, "keypoints") == pytest.approx(1.0, abs=1e-12), name


def test_wrong_predictions_do_not_give_ap_one(coco_val4, tmp_path):
    """The AP check above can fail: predictions left in the original frame score far lower."""
    doc = with_gt_as_predictions(adopted(coco_val4))
    new = reframed(doc, plan_frames(doc, scale=0.25), tmp_path)
    new["lrp"]["detections"] = doc["lrp"]["detections"]
    assert coco_ap(new, "bbox") < 0.5


@pytest.mark.parametrize("method", ["bicubic", "strided"])
def test_degrade_then_to_origin_restores_every_coordinate(coco_train_mini, tmp_path, method):
    doc = with_gt_as_predictions(adopted(coco_train_mini))
    small = reframed(doc, plan_frames(doc, scale=0.25, method=method), tmp_path)
    back = reframed(small, plan_frames(small, to_origin=True), tmp_path)
    for img in back["images"]:
        np.testing.assert_allclose(img["lrp"]["xform"], [1, 1, 0, 0], atol=1e-12)
        assert (img["width"], img["height"]) == (img["lrp"]["origin"]["width"], img["lrp"]["origin"]["height"])
    for old, new in zip(doc["annotations"], back["annotations"]):
        np.testing.assert_allclose(new["bbox"], old["bbox"], rtol=0, atol=1e-9)
        np.testing.assert_allclose(new["keypoints"], old["keypoints"], rtol=0, atol=1e-9)
        assert new["area"] == pytest.approx(old["area"], abs=1e-9)
        if not old["iscrowd"]:
            for p_old, p in zip(old["segmentation"], new["segmentation"]):
                np.testing.assert_allclose(p, p_old, rtol=0, atol=1e-9)
    for key in ("detections", "poses"):
        for old, new in zip(doc["lrp"][key], back["lrp"][key]):
            np.testing.assert_allclose(new.get("bbox", []), old.get("bbox", []), atol=1e-9)
            np.testing.assert_allclose(new.get("keypoints", []), old.get("keypoints", []), atol=1e-9)


# --------------------------------------------------------------------------------------------
# Pixels and frames agree


def synthetic_doc(tmp_path, size=(64, 48), box=(8, 12, 16, 20)):
    """One black image with a white box whose GT bbox is exactly that box."""
    w, h = size
    arr = np.zeros((h, w, 3), np.uint8)
    x, y, bw, bh = box
    arr[y : y + bh, x : x + bw] = 255
    (tmp_path / "syn").mkdir()
    Image.fromarray(arr).save(tmp_path / "syn" / "a.png")
    data = {
        "images": [{"id": 7, "file_name": "a.png", "width": w, "height": h}],
        "annotations": [{"id": 1, "image_id": 7, "category_id": 1, "bbox": list(box), "area": bw * bh, "iscrowd": 0, "segmentation": [[x, y, x + bw, y, x + bw, y + bh, x, y + bh]], "num_keypoints": 0, "keypoints": [0] * 51}],
        "categories": [{"id": 1, "name": "person"}],
    }
    path = tmp_path / "syn.json"
    path.write_text(json.dumps(data))
    return load_document(str(path), images=tmp_path / "syn")


@pytest.mark.parametrize("method", ["area", "strided", "nearest"])
def test_the_box_in_the_pixels_is_where_the_annotation_says(tmp_path, method):
    doc = synthetic_doc(tmp_path)
    new = degrade_document(doc, scale=0.25, method=method, out_dir=tmp_path / "out", quiet=True)
    out = load_rgb(tmp_path / "out" / "a.png")[:, :, 0]
    x, y, bw, bh = new["annotations"][0]["bbox"]
    ys, xs = np.nonzero(out > 127)
    # White pixels are exactly those whose centre lies inside the transformed box.
    assert (xs.min(), xs.max() + 1, ys.min(), ys.max() + 1) == (
        math.ceil(x - 0.5), math.floor(x + bw - 0.5) + 1, math.ceil(y - 0.5), math.floor(y + bh - 0.5) + 1
    )
    if method == "strided":
        assert new["images"][0]["lrp"]["xform"] == [0.25, 0.25, 0.375, 0.375]
        assert new["annotations"][0]["bbox"] == [8 * 0.25 + 0.375, 12 * 0.25 + 0.375, 4.0, 5.0]


# --------------------------------------------------------------------------------------------
# The command line


def test_cli_file_input_writes_pngs_and_a_reframed_document(runner, coco_val4, tmp_path):
    out = tmp_path / "lr"
    r = run_lrp(runner, ["degrade", "--scale", "0.25", "--images", str(coco_val4 / "images"), str(coco_val4 / "person_keypoints.json"), "--out-dir", str(out), "-q"])
    assert r.exit_code == 0, r.stderr
    assert r.stderr == ""
    doc = json.loads(r.stdout)
    assert doc["lrp"]["image_root"] == str(out.resolve())
    assert doc["lrp"]["degradation"] == {"method": "bicubic", "scale": 0.25, "kernel": None, "noise": 0.0, "jpeg": None, "seed": 0}
    assert doc["lrp"]["history"][-1]["command"] == "degrade"
    img = next(i for i in doc["images"] if i["id"] == 40083)  # 500 x 333
    assert (img["width"], img["height"]) == (125, 84)
    pixels = load_rgb(out / img["file_name"])
    assert pixels.shape == (84, 125, 3)
    assert (out / img["file_name"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    original = load_rgb(coco_val4 / "images" / img["lrp"]["origin"]["file_name"])
    np.testing.assert_array_equal(pixels, resize_image(original, 0.25))


def test_cli_stdin_chain_and_round_trip(runner, coco_val4, tmp_path):
    ann, images, _ = tiny_dataset(tmp_path, coco_val4)
    r1 = run_lrp(runner, ["degrade", "--scale", "0.25", "--images", str(images), "--out-dir", str(tmp_path / "a"), "-q"], input=ann.read_text())
    assert r1.exit_code == 0, r1.stderr
    r2 = run_lrp(runner, ["degrade", "--to-origin", "-", "--out-dir", str(tmp_path / "b"), "-q"], input=r1.stdout)
    assert r2.exit_code == 0, r2.stderr
    original, back = json.loads(ann.read_text()), json.loads(r2.stdout)
    for img in back["images"]:
        np.testing.assert_allclose(img["lrp"]["xform"], [1, 1, 0, 0], atol=1e-12)
        arr = load_rgb(tmp_path / "b" / img["file_name"])
        assert arr.shape == (img["lrp"]["origin"]["height"], img["lrp"]["origin"]["width"], 3)
    for old, new in zip(original["annotations"], back["annotations"]):
        np.testing.assert_allclose(new["bbox"], old["bbox"], atol=1e-9)
        np.testing.assert_allclose(new["keypoints"], old["keypoints"], atol=1e-9)
        for p_old, p in zip(old["segmentation"], new["segmentation"]):
            np.testing.assert_allclose(p, p_old, atol=1e-9)
    assert [h["args"].get("to_origin") for h in back["lrp"]["history"]] == [False, True]
    assert back["lrp"]["degradation"]["to_origin"] is True


def test_cli_output_file_is_written_atomically(runner, coco_val4, tmp_path):
    ann, images, _ = tiny_dataset(tmp_path, coco_val4, ids=(40083,))
    target = tmp_path / "docs" / "lr.json"
    r = run_lrp(runner, ["degrade", "-s", "0.5", "--images", str(images), str(ann), "-o", str(target), "--out-dir", str(tmp_path / "o"), "-q"])
    assert r.exit_code == 0, r.stderr
    assert r.stdout == ""
    assert json.loads(target.read_text())["images"][0]["width"] == 250
    assert [p.name for p in target.parent.iterdir()] == ["lr.json"]  # no temporary leftovers


def test_cli_refuses_the_input_image_folder_as_out_dir(runner, coco_val4, tmp_path):
    ann, images, _ = tiny_dataset(tmp_path, coco_val4)
    before = snapshot(images)
    r = run_lrp(runner, ["degrade", "-s", "0.5", "--images", str(images), str(ann), "--out-dir", str(images)])
    assert r.exit_code == 2
    assert "input image folder" in r.stderr
    assert snapshot(images) == before


def test_cli_missing_image_fails_naming_it_and_leaves_no_half_files(runner, coco_val4, tmp_path):
    ann, images, data = tiny_dataset(tmp_path, coco_val4)
    (images / "000000000785.jpg").unlink()
    r = run_lrp(runner, ["degrade", "-s", "0.5", "--images", str(images), str(ann), "--out-dir", str(tmp_path / "o"), "--workers", "1", "-q"])
    assert r.exit_code == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lrp degrade: error: image 785") and "000000000785.jpg" in lines[0]
    assert not (tmp_path / "o" / "000000000785.png").exists()
    assert not list((tmp_path / "o").glob(".*part"))


def truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def test_cli_truncated_jpeg_fails(runner, coco_val4, tmp_path):
    ann, images, _ = tiny_dataset(tmp_path, coco_val4)
    truncate(images / "000000040083.jpg")
    r = run_lrp(runner, ["degrade", "-s", "0.5", "--images", str(images), str(ann), "--out-dir", str(tmp_path / "o"), "-q"])
    assert r.exit_code == 1
    assert "image 40083" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "o" / "000000040083.png").exists()


def test_cli_keep_going_lists_every_failure(runner, coco_val4, tmp_path):
    ann, images, _ = tiny_dataset(tmp_path, coco_val4, ids=(785, 40083, 196141))
    truncate(images / "000000040083.jpg")
    (images / "000000196141.jpg").write_bytes(b"not a jpeg at all")
    target = tmp_path / "lr.json"
    r = run_lrp(runner, ["degrade", "-s", "0.5", "--images", str(images), str(ann), "--out-dir", str(tmp_path / "o"), "--keep-going", "-o", str(target), "-q"])
    assert r.exit_code == 1
    assert "image 40083" in r.stderr and "image 196141" in r.stderr and "2 of 3 images failed" in r.stderr
    doc = json.loads(target.read_text())
    assert [i["id"] for i in doc["images"]] == [785]
    assert {a["image_id"] for a in doc["annotations"]} == {785}
    assert sorted(p.name for p in (tmp_path / "o").glob("*.png")) == ["000000000785.png"]


def test_cli_resume_reuses_finished_images(runner, coco_val4, tmp_path, monkeypatch):
    ann, images, _ = tiny_dataset(tmp_path, coco_val4)
    monkeypatch.chdir(tmp_path)
    args = ["degrade", "-s", "0.25", "--images", str(images), str(ann)]
    r1 = run_lrp(runner, args)
    assert r1.exit_code == 0, r1.stderr
    (run_dir,) = (tmp_path / "lrp-runs").iterdir()
    before = snapshot(run_dir)
    r2 = run_lrp(runner, args)
    assert r2.exit_code == 0
    assert "2 reused" in r2.stderr
    assert snapshot(run_dir) == before
    assert json.loads(r1.stdout)["images"] == json.loads(r2.stdout)["images"]
    # Other arguments, other folder.
    assert run_lrp(runner, args[:2] + ["0.5"] + args[3:] + ["-q"]).exit_code == 0
    assert len(list((tmp_path / "lrp-runs").iterdir())) == 2


def test_cli_out_dir_of_another_run_is_refused_not_mixed(runner, coco_val4, tmp_path):
    ann, images, _ = tiny_dataset(tmp_path, coco_val4, ids=(40083,))
    out = tmp_path / "o"
    base = ["degrade", "-s", "0.5", "--images", str(images), str(ann), "--out-dir", str(out)]
    assert run_lrp(runner, base + ["-q"]).exit_code == 0
    before = snapshot(out)
    r = run_lrp(runner, base + ["--noise", "3"])
    assert r.exit_code == 2 and "another run" in r.stderr
    assert snapshot(out) == before
    r = run_lrp(runner, base)  # the same run again: resumed, nothing rewritten
    assert r.exit_code == 0 and "1 reused" in r.stderr
    assert snapshot(out) == before


def test_cli_noise_is_seeded_per_image_not_per_thread(runner, coco_val4, tmp_path):
    ann, images, _ = tiny_dataset(tmp_path, coco_val4)
    common = ["degrade", "-s", "0.5", "--noise", "5", "--images", str(images), str(ann), "-q"]
    outs = {}
    for name, extra in {"w1": ["--workers", "1"], "w4": ["--workers", "4"], "seed1": ["--seed", "1"], "clean": []}.items():
        args = common if name != "clean" else [a for a in common if a not in ("--noise", "5")]
        r = run_lrp(runner, args + extra + ["--out-dir", str(tmp_path / name)])
        assert r.exit_code == 0, r.stderr
        outs[name] = load_rgb(tmp_path / name / "000000000785.png").astype(np.int16)
    np.testing.assert_array_equal(outs["w1"], outs["w4"])
    assert np.any(outs["w1"] != outs["seed1"])
    diff = (outs["w1"] - outs["clean"])[(outs["clean"] > 20) & (outs["clean"] < 235)]
    assert abs(diff.mean()) < 0.1 and 4.8 < diff.std() < 5.2


def test_cli_jpeg_changes_pixels_but_files_stay_png(runner, coco_val4, tmp_path):
    ann, images, _ = tiny_dataset(tmp_path, coco_val4, ids=(40083,))
    arrays = {}
    for name, extra in {"plain": [], "jpeg": ["--jpeg", "20"]}.items():
        r = run_lrp(runner, ["degrade", "-s", "0.5", "--images", str(images), str(ann), "--out-dir", str(tmp_path / name), "-q"] + extra)
        assert r.exit_code == 0, r.stderr
        path = tmp_path / name / "000000040083.png"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        arrays[name] = load_rgb(path).astype(int)
    assert json.loads(r.stdout)["lrp"]["degradation"]["jpeg"] == 20
    assert np.abs(arrays["plain"] - arrays["jpeg"]).mean() > 1.0


def test_cli_strided_records_the_offset(runner, coco_val4, tmp_path):
    ann, images, data = tiny_dataset(tmp_path, coco_val4, ids=(40083,))
    r = run_lrp(runner, ["degrade", "-s", "0.25", "-m", "strided", "--images", str(images), str(ann), "--out-dir", str(tmp_path / "o"), "-q"])
    assert r.exit_code == 0, r.stderr
    img = json.loads(r.stdout)["images"][0]
    assert img["lrp"]["xform"] == [0.25, 0.25, 0.375, 0.375]
    original = load_rgb(images / "000000040083.jpg")
    np.testing.assert_array_equal(load_rgb(tmp_path / "o" / img["file_name"]), original[::4, ::4])


def test_cli_kernel_files(runner, coco_val4, tmp_path):
    ann, images, _ = tiny_dataset(tmp_path, coco_val4, ids=(40083,))
    delta = np.zeros((5, 5))
    delta[2, 2] = 1.0
    np.save(tmp_path / "delta.npy", delta)
    (tmp_path / "box.txt").write_text("0.111111111 0.111111111 0.111111111\n" * 2 + "0.111111112 0.111111112 0.111111112\n")
    base = ["degrade", "-s", "0.5", "--images", str(images), str(ann), "-q"]
    results = {}
    for name, extra in {"none": [], "delta": ["--kernel", str(tmp_path / "delta.npy")], "box": ["--kernel", str(tmp_path / "box.txt")]}.items():
        r = run_lrp(runner, base + extra + ["--out-dir", str(tmp_path / name)])
        assert r.exit_code == 0, r.stderr
        results[name] = load_rgb(tmp_path / name / "000000040083.png").astype(int)
    assert np.abs(results["none"] - results["delta"]).max() <= 1  # float32 rounding only
    assert np.abs(results["none"] - results["box"]).mean() > 1.0
    assert json.loads(r.stdout)["lrp"]["degradation"]["kernel"] == str(tmp_path / "box.txt")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--scale", "0"], "positive"),
        (["--scale", "-0.5"], "positive"),
        ([], "--scale"),
        (["--scale", "0.5", "--to-origin"], "not both"),
        (["--scale", "0.3", "--method", "strided"], "integer"),
        (["--scale", "0.5", "--method", "lanczos"], "expected one of"),
        (["--scale", "0.5", "--kernel", "gaussian:abc"], "SIGMA"),
        (["--scale", "0.5", "--kernel", "gaussian:-1"], "SIGMA"),
        (["--scale", "0.5", "--kernel", "no-such-kernel.npy"], "kernel"),
        (["--scale", "0.5", "--kernel", "KERNEL_1D"], "2-D"),
        (["--scale", "0.5", "--kernel", "KERNEL_SUM2"], "sum to 1"),
        (["--scale", "0.5", "--jpeg", "0"], "1..100"),
        (["--scale", "0.5", "--noise", "-1"], ">= 0"),
    ],
)
def test_cli_usage_errors_exit_2(runner, coco_val4, tmp_path, args, message):
    np.save(tmp_path / "k1.npy", np.ones(3) / 3)
    np.save(tmp_path / "k2.npy", np.ones((3, 3)) * 2 / 9)
    args = [{"KERNEL_1D": str(tmp_path / "k1.npy"), "KERNEL_SUM2": str(tmp_path / "k2.npy")}.get(a, a) for a in args]
    out = tmp_path / "o"
    r = run_lrp(runner, ["degrade", *args, "--images", str(coco_val4 / "images"), str(coco_val4 / "person_keypoints.json"), "--out-dir", str(out)])
    assert r.exit_code == 2, r.stderr
    assert message in r.stderr
    assert not out.exists() or not any(out.iterdir())


def test_embedded_sample_degrades_with_ap_one_and_its_crowd_kept(tmp_path):
    """Runs without ../shared/data: the sample has people of every size and a crowd region."""
    from lrp.sample import sample_document

    doc = with_gt_as_predictions(sample_document())
    new = degrade_document(doc, scale=0.5, out_dir=tmp_path / "o", quiet=True)
    assert coco_ap(new, "bbox") == pytest.approx(1.0, abs=1e-12)
    assert coco_ap(new, "keypoints") == pytest.approx(1.0, abs=1e-12)
    sizes = {i["id"]: (i["width"], i["height"]) for i in new["images"]}
    crowd = [a for a in new["annotations"] if a["iscrowd"]]
    assert crowd and all(a["segmentation"]["size"] == list(sizes[a["image_id"]][::-1]) for a in crowd)
    for img in new["images"]:
        assert load_rgb(tmp_path / "o" / img["file_name"]).shape == (img["height"], img["width"], 3)
