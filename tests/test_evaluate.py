"""`lrp evaluate`: numbers identical to a plain pycocotools COCOeval, size groups from another
frame, output formats, --fail-under, and bad inputs."""

from __future__ import annotations

import contextlib
import copy
import csv
import io
import json

import numpy as np
import pytest

from lrp import cocoeval as ce
from lrp.document import add_history, adopt
from lrp.evaluate import evaluate_document
from lrp.geometry import output_size, reframe_document, resize_xform
from tests.conftest import load_json, run_lrp

pytestmark = pytest.mark.realdata


# --------------------------------------------------------------------------------------------
# Helpers (also used by test_bucket.py)


def plain_cocoeval(gt_dataset: dict, results: list, iou_type: str, area_rng=None):
    """What a user would run by hand: COCO + loadRes + COCOeval, on copies of the data."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = copy.deepcopy(gt_dataset)
        gt.createIndex()
        dt = gt.loadRes(copy.deepcopy(results))
        E = COCOeval(gt, dt, iou_type)
        if area_rng is not None:
            E.params.areaRng = area_rng
        E.evaluate()
        E.accumulate()
        E.summarize()
    return E


def jittered_poses(doc: dict, seed: int = 0, extra: int = 3) -> list[dict]:
    """Keypoint results near the GT (seeded noise, random scores) plus a few false positives."""
    rng = np.random.default_rng(seed)
    out = []
    for a in doc["annotations"]:
        if a.get("iscrowd") or a.get("num_keypoints", 0) == 0:
            continue
        k = np.array(a["keypoints"], dtype=float).reshape(-1, 3)
        scale = np.sqrt(a["area"]) * 0.08
        xy = k[:, :2] + rng.normal(0, scale, size=(len(k), 2))
        # Unlabelled joints (0, 0, 0) are guessed near the box centre, as a model would.
        x, y, w, h = a["bbox"]
        xy[k[:, 2] == 0] = [x + w / 2, y + h / 2]
        kps = np.column_stack([xy, rng.uniform(0.2, 1.0, len(k))]).ravel()
        out.append({"image_id": a["image_id"], "category_id": 1, "keypoints": kps.tolist(), "score": float(rng.uniform(0.3, 1))})
    images = [img for img in doc["images"]]
    for i in range(extra):
        img = images[i % len(images)]
        pts = np.column_stack([rng.uniform(0, img["width"], 17), rng.uniform(0, img["height"], 17), np.full(17, 0.5)])
        out.append({"image_id": img["id"], "category_id": 1, "keypoints": pts.ravel().tolist(), "score": float(rng.uniform(0, 0.5))})
    return out


def jittered_boxes(doc: dict, seed: int = 0, with_masks: bool = False) -> list[dict]:
    """Box results near the non-crowd GT (some missed), plus the GT polygons as masks."""
    rng = np.random.default_rng(seed)
    out = []
    for a in doc["annotations"]:
        if a.get("iscrowd") or rng.uniform() < 0.15:
            continue
        x, y, w, h = a["bbox"]
        box = [x + rng.normal(0, 0.05 * w), y + rng.normal(0, 0.05 * h), w * rng.uniform(0.85, 1.15), h * rng.uniform(0.85, 1.15)]
        r = {"image_id": a["image_id"], "category_id": 1, "bbox": box, "score": float(rng.uniform(0.05, 1))}
        if with_masks:
            r["segmentation"] = copy.deepcopy(a["segmentation"])
        out.append(r)
    return out


def load_val4(coco_val4, poses_seed: int | None = 0) -> dict:
    raw = json.loads((coco_val4 / "person_keypoints.json").read_text())
    doc = adopt(raw, "val4", images=coco_val4 / "images")
    doc["lrp"]["detections"] = json.loads((coco_val4 / "detections_AP_H_56.json").read_text())
    if poses_seed is not None:
        doc["lrp"]["poses"] = jittered_poses(doc, poses_seed)
    return doc


def gt_dataset(doc: dict) -> dict:
    return {k: doc[k] for k in ("info", "images", "annotations", "categories")}


def rescaled(doc: dict, scale: float, method: str = "bicubic") -> dict:
    """The document in a resized frame, as `lrp degrade --scale` would leave it (no pixels)."""
    d = copy.deepcopy(doc)
    sizes = {i["id"]: (output_size(i["width"], scale), output_size(i["height"], scale)) for i in d["images"]}
    steps = {i["id"]: resize_xform((i["width"], i["height"]), sizes[i["id"]]) for i in d["images"]}
    reframe_document(d, sizes, steps, {i["id"]: i["file_name"] for i in d["images"]})
    add_history(d, "degrade", {"scale": scale, "method": method})
    return d


def write(tmp_path, name: str, doc) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return str(path)


@pytest.fixture(scope="module")
def val4(coco_val4):
    return load_val4(coco_val4)


# --------------------------------------------------------------------------------------------
# Numbers: identical to plain COCOeval


def test_bbox_and_keypoints_equal_plain_cocoeval_on_coco_val4(val4, coco_val4):
    ev = evaluate_document(val4, name="val4")
    assert set(ev.metrics) == {"bbox", "keypoints"}  # the detector's results have no masks
    plain_bbox = plain_cocoeval(gt_dataset(val4), json.loads((coco_val4 / "detections_AP_H_56.json").read_text()), "bbox")
    plain_kp = plain_cocoeval(gt_dataset(val4), val4["lrp"]["poses"], "keypoints")
    assert list(ev.metrics["bbox"].values()) == plain_bbox.stats.tolist()
    assert list(ev.metrics["keypoints"].values()) == plain_kp.stats.tolist()
    # Not a degenerate case: real, distinct, defined numbers.
    assert 0.5 < ev.metrics["bbox"]["AP"] < 1 and 0.1 < ev.metrics["keypoints"]["AP"] < 1


def test_bbox_segm_keypoints_equal_plain_cocoeval_with_crowds(coco_train_mini):
    raw = json.loads((coco_train_mini / "person_keypoints.json").read_text())
    doc = adopt(raw, "train-mini", images=coco_train_mini / "images")
    assert any(a["iscrowd"] for a in doc["annotations"])
    doc["lrp"]["detections"] = jittered_boxes(doc, seed=1, with_masks=True)
    doc["lrp"]["poses"] = jittered_poses(doc, seed=2)
    ev = evaluate_document(doc, name="train-mini")
    assert set(ev.metrics) == {"bbox", "segm", "keypoints"}
    for task, key in (("bbox", "detections"), ("segm", "detections"), ("keypoints", "poses")):
        plain = plain_cocoeval(gt_dataset(doc), doc["lrp"][key], task)
        assert list(ev.metrics[task].values()) == plain.stats.tolist(), task


def test_our_summarize_equals_pycocotools_stats(val4):
    for task in ("bbox", "keypoints"):
        E = ce.run_cocoeval(val4, task)
        assert list(ce.metric_values(E, task).values()) == E.stats.tolist()


def test_oracle_is_perfect_in_every_frame(val4):
    for doc in (val4, rescaled(val4, 0.25), rescaled(rescaled(val4, 0.25), 4)):
        ev = evaluate_document(doc, oracle=True)
        assert set(ev.metrics) == {"bbox", "segm", "keypoints"}
        for task, metrics in ev.metrics.items():
            # (AR1 and AR10 cap the detections per image below the number of people.)
            defined = [v for k, v in metrics.items() if v >= 0 and k not in ("AR1", "AR10")]
            # AP and AR are 1 up to pycocotools' own eps in tp / (tp + fp + eps).
            assert defined and all(v == pytest.approx(1.0, abs=1e-12) for v in defined), (task, metrics)


# --------------------------------------------------------------------------------------------
# Size groups from another frame (--size-from)


def test_size_from_lr_gives_the_lr_table_for_an_exact_rescale(val4):
    lr4 = rescaled(val4, 0.25)
    back = rescaled(lr4, 4)
    own = evaluate_document(back).metrics
    lr = evaluate_document(lr4).metrics
    with_lr_sizes = evaluate_document(back, size_doc=lr4, size_name="lr4").metrics
    # IoU and OKS are unchanged by an exact rescale, so only the size groups differ ...
    assert own["bbox"]["AP"] == pytest.approx(lr["bbox"]["AP"], abs=1e-12)
    assert own["bbox"]["AP_S"] != pytest.approx(lr["bbox"]["AP_S"])
    # ... and taking them from the LR frame gives the LR numbers.
    for task in ("bbox", "keypoints"):
        for k, v in lr[task].items():
            assert with_lr_sizes[task][k] == pytest.approx(v, abs=1e-12), (task, k)


def test_size_from_swaps_areas_for_groups_only_not_for_oks(val4):
    """A frame whose areas are 4x (sx, sy doubled): groups follow 4x areas, OKS keeps its own.

    Expected = a plain COCOeval of the same document with every area range divided by 4
    (exact in binary floating point), which leaves OKS untouched.
    """
    frame = copy.deepcopy(val4)
    for img in frame["images"]:
        img["lrp"]["xform"] = [2 * v for v in img["lrp"]["xform"][:2]] + img["lrp"]["xform"][2:]
    for a in frame["annotations"]:
        a["area"] *= 4
    ev = evaluate_document(val4, size_doc=frame, size_name="frame")
    for task, key in (("bbox", "detections"), ("keypoints", "poses")):
        default_rng = plain_cocoeval(gt_dataset(val4), val4["lrp"][key], task).params.areaRng
        plain = plain_cocoeval(gt_dataset(val4), val4["lrp"][key], task, [[lo / 4, hi / 4] for lo, hi in default_rng])
        assert list(ev.metrics[task].values()) == plain.stats.tolist(), task
    # The control: the groups really moved.
    assert ev.metrics["keypoints"]["AP_M"] != evaluate_document(val4).metrics["keypoints"]["AP_M"]


def test_size_from_with_other_ids_is_an_error(val4):
    from lrp.errors import LrpError

    other = copy.deepcopy(val4)
    other["images"] = other["images"][:-1]
    with pytest.raises(LrpError, match="different image ids"):
        evaluate_document(val4, size_doc=other, size_name="other.json")
    other = copy.deepcopy(val4)
    renamed = other["annotations"][0]["id"]
    other["annotations"][0]["id"] = 999999999
    with pytest.raises(LrpError, match=f"different annotation ids.*annotation {renamed} of document is not in it"):
        evaluate_document(val4, size_doc=other, size_name="other.json")


# --------------------------------------------------------------------------------------------
# Bootstrap


def test_bootstrap_is_seeded_and_brackets_the_estimate(val4):
    a = evaluate_document(val4, bootstrap=30, seed=7)
    b = evaluate_document(val4, bootstrap=30, seed=7)
    c = evaluate_document(val4, bootstrap=30, seed=8)
    assert a.intervals == b.intervals and a.intervals != c.intervals
    lo, hi = a.intervals["bbox"]["AP"]
    assert lo < hi and 0 <= lo <= 1 and 0 <= hi <= 1
    # The point estimates are untouched by the resampling.
    assert a.metrics == evaluate_document(val4).metrics


def test_bootstrap_identity_draw_reproduces_the_estimate(val4):
    E = ce.run_cocoeval(val4, "keypoints")
    identity = np.arange(len(val4["images"]))[None, :]
    (result,) = list(ce.bootstrap_evals(E, 1, None, draws=identity))
    assert ce.metric_values(E, "keypoints", result) == ce.metric_values(E, "keypoints")


# --------------------------------------------------------------------------------------------
# The command line


@pytest.fixture
def docs(tmp_path, val4):
    lr4 = rescaled(val4, 0.25)
    return {
        "val4": write(tmp_path, "val4.json", val4),
        "lr4": write(tmp_path, "lr4.json", lr4),
        "sr4": write(tmp_path, "sr4.json", rescaled(lr4, 4)),
    }


def test_cli_table_rows_labelled_by_history(runner, docs):
    result = run_lrp(runner, ["evaluate", docs["lr4"], docs["sr4"]])
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "Person detection (bbox)" in out and "Keypoints (OKS)" in out
    assert "LR 1/4" in out and "LR 1/4 > bicubic x4" in out
    for col in ("AP_S", "AR_L"):
        assert col in out
    # Provenance on stderr, not stdout.
    assert "degrade(scale=0.25, method=bicubic)" in result.stderr and "maxDets" in result.stderr
    assert "boxes:" in result.stderr and "degrade(" not in out


def test_cli_json_is_full_precision_and_equal_to_the_library(runner, docs, val4):
    result = run_lrp(runner, ["evaluate", "-q", "--format", "json", docs["val4"], docs["lr4"], "--size-from", docs["lr4"]])
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    data = load_json(result.stdout)
    assert [d["label"] for d in data["documents"]] == ["original", "LR 1/4"]
    lib = evaluate_document(val4, size_doc=rescaled(val4, 0.25), size_name="lr4").metrics
    got = data["documents"][0]["metrics"]
    for task in lib:
        assert got[task] == {k: (None if v < 0 else v) for k, v in lib[task].items()}
    assert data["settings"]["size_from"] == docs["lr4"]
    assert data["settings"]["tasks"]["keypoints"]["maxDets"] == [20]
    assert data["documents"][0]["box_source"] == "n/a"


def test_cli_markdown_and_csv(runner, docs):
    md = run_lrp(runner, ["evaluate", "-q", "--format", "markdown", docs["val4"]])
    assert md.exit_code == 0
    assert "| document | AP | AP_S | AP_M | AP_L | AR | AR_S | AR_M | AR_L |" in md.stdout
    assert "| document | AP | AP_M | AP_L | AR | AR_M | AR_L |" in md.stdout
    out = run_lrp(runner, ["evaluate", "-q", "--format", "csv", docs["val4"], docs["lr4"]])
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert [r["label"] for r in rows] == ["original", "LR 1/4"]
    assert rows[0]["bbox.AP"] == repr(json.loads(run_lrp(runner, ["evaluate", "-q", "--format", "json", docs["val4"]]).stdout)["documents"][0]["metrics"]["bbox"]["AP"])


def test_cli_stdin_output_file_labels_and_duplicates(runner, docs, tmp_path):
    text = open(docs["val4"]).read()
    out_file = tmp_path / "table.md"
    result = run_lrp(runner, ["evaluate", "-q", "--format", "markdown", "-o", str(out_file)], input=text)
    assert result.exit_code == 0 and result.stdout == "" and "| original |" in out_file.read_text()
    result = run_lrp(runner, ["evaluate", "-q", "--format", "csv", docs["val4"], docs["val4"]])
    labels = [r["label"] for r in csv.DictReader(io.StringIO(result.stdout))]
    assert labels == ["original [val4.json]", "original [val4.json]"]
    result = run_lrp(runner, ["evaluate", "-q", "--format", "csv", "--label", "HR", "--label", "LR", docs["val4"], docs["lr4"]])
    assert [r["label"] for r in csv.DictReader(io.StringIO(result.stdout))] == ["HR", "LR"]
    result = run_lrp(runner, ["evaluate", "-q", "--label", "only-one", docs["val4"], docs["lr4"]])
    assert result.exit_code == 2 and "--label" in result.stderr


def test_cli_fail_under(runner, docs):
    ok = run_lrp(runner, ["evaluate", "-q", docs["val4"], "--fail-under", "bbox.AP=0.5", "--fail-under", "AR=0.01"])
    assert ok.exit_code == 0, ok.stderr
    low = run_lrp(runner, ["evaluate", "-q", docs["val4"], "--fail-under", "bbox.AP_M=0.99"])
    assert low.exit_code == 3
    assert low.stderr.count("\n") == 1 and "bbox.AP_M = 0.767 is below 0.99" in low.stderr
    assert "Person detection" in low.stdout  # the table is still printed
    # Bare AP means keypoints when the document has them.
    bare = run_lrp(runner, ["evaluate", "-q", docs["val4"], "--fail-under", "AP=0.99", "--format", "json"])
    assert bare.exit_code == 3 and "keypoints.AP" in bare.stderr
    for bad in ("AP", "AP=high", "XX=0.5", "keypoints.AP_S=0.5", "=0.5"):
        result = run_lrp(runner, ["evaluate", "-q", docs["val4"], "--fail-under", bad])
        assert result.exit_code == 2, bad
        assert "--fail-under" in result.stderr


def test_cli_fail_under_for_absent_task_is_a_usage_error(runner, tmp_path, val4):
    no_poses = copy.deepcopy(val4)
    no_poses["lrp"]["poses"] = []
    path = write(tmp_path, "boxes-only.json", no_poses)
    result = run_lrp(runner, ["evaluate", "-q", path, "--fail-under", "keypoints.AP=0.1"])
    assert result.exit_code == 2 and "has no keypoints.AP" in result.stderr and result.stdout == ""
    # Keypoint columns are absent, not -1.
    result = run_lrp(runner, ["evaluate", "-q", path])
    assert result.exit_code == 0 and "Keypoints" not in result.stdout


def test_cli_bad_inputs(runner, tmp_path, val4, docs):
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"images": [')
    result = run_lrp(runner, ["evaluate", str(bad_json)])
    assert result.exit_code == 1 and "bad.json: not valid JSON" in result.stderr
    results_list = write(tmp_path, "results.json", val4["lrp"]["detections"])
    result = run_lrp(runner, ["evaluate", results_list])
    assert result.exit_code == 1 and "not a COCO dataset" in result.stderr
    unknown = copy.deepcopy(val4)
    unknown["lrp"]["detections"][3]["image_id"] = 123456789
    result = run_lrp(runner, ["evaluate", write(tmp_path, "unknown.json", unknown)])
    assert result.exit_code == 1 and "unknown image id 123456789" in result.stderr
    plain = write(tmp_path, "plain.json", gt_dataset(val4))
    result = run_lrp(runner, ["evaluate", plain])
    assert result.exit_code == 1 and "has no lrp.detections or lrp.poses" in result.stderr
    other = copy.deepcopy(val4)
    other["images"] = other["images"][:2]
    other["annotations"] = [a for a in other["annotations"] if a["image_id"] in {i["id"] for i in other["images"]}]
    other["lrp"]["detections"] = other["lrp"]["poses"] = []
    result = run_lrp(runner, ["evaluate", docs["val4"], "--size-from", write(tmp_path, "other.json", other)])
    assert result.exit_code == 1 and "other.json: size frame has different image ids" in result.stderr
    no_kp = copy.deepcopy(val4)
    del no_kp["lrp"]["poses"][0]["keypoints"]
    result = run_lrp(runner, ["evaluate", write(tmp_path, "nokp.json", no_kp)])
    assert result.exit_code == 1 and "lrp.poses[0]" in result.stderr and "'keypoints'" in result.stderr
    short = copy.deepcopy(val4)
    short["lrp"]["poses"][2]["keypoints"] = short["lrp"]["poses"][2]["keypoints"][:39]
    result = run_lrp(runner, ["evaluate", write(tmp_path, "short.json", short)])
    assert result.exit_code == 1 and "lrp.poses[2]" in result.stderr and "has 39 values, expected 51" in result.stderr
    no_area = copy.deepcopy(val4)
    del no_area["annotations"][4]["area"]
    result = run_lrp(runner, ["evaluate", write(tmp_path, "noarea.json", no_area)])
    assert result.exit_code == 1 and f"annotation {val4['annotations'][4]['id']} has no 'area'" in result.stderr
    result = run_lrp(runner, ["evaluate", docs["val4"], "--format", "xml"])
    assert result.exit_code == 2 and "--format" in result.stderr
    result = run_lrp(runner, ["evaluate", "-", "-"], input="{}")
    assert result.exit_code == 2


def test_cli_oracle_on_a_plain_coco_file(runner, tmp_path, val4):
    """A plain COCO file needs no --images here: evaluation reads no pixels."""
    plain = write(tmp_path, "plain.json", gt_dataset(val4))
    result = run_lrp(runner, ["evaluate", "-q", "--oracle", "--format", "json", plain, "--fail-under", "AP=1", "--fail-under", "bbox.AR=1"])
    # pycocotools' precision envelope makes the oracle's AP exactly 1, so even a bar of 1 passes.
    assert result.exit_code == 0, result.stderr
    data = load_json(result.stdout)
    assert data["documents"][0]["label"] == "original (oracle)"
    assert data["documents"][0]["metrics"]["keypoints"]["AP"] == 1.0


def test_cli_bootstrap_in_json_and_table(runner, docs):
    result = run_lrp(runner, ["evaluate", "-q", "--format", "json", "--bootstrap", "20", "--seed", "3", docs["val4"]])
    data = load_json(result.stdout)
    lo, hi = data["documents"][0]["intervals"]["bbox"]["AP"]
    assert lo <= hi and data["settings"]["bootstrap"]["resamples"] == 20
    table = run_lrp(runner, ["evaluate", "-q", "--bootstrap", "20", "--seed", "3", docs["val4"]])
    assert f"[{lo:.3f}, {hi:.3f}]" in table.stdout
