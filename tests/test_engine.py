"""The evaluation engines (lrp/engines.py) against a plain pycocotools COCOeval.

Every AP/AR that evaluate, bucket and mix report comes from an engine's precision/recall arrays;
here both engines' whole arrays are held to a plain `COCOeval` run by hand on the same data (to
1e-12; in practice they are the same bits): summary stats, 24 buckets, size groups from another
frame, crowds, masks, keypoints, on real COCO (coco-val-4, coco-train-mini) and on a generated
document with tied scores. Then the bootstrap: re-accumulating per-image results equals
pycocotools' accumulate over the drawn images and a COCOeval of the resampled document.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json

import numpy as np
import pytest

from bench.synth_coco import synthetic_document
from lrp import bucket as bk
from lrp import cocoeval as ce
from lrp import engines
from lrp.document import adopt
from lrp.evaluate import evaluate_document
from tests.test_evaluate import gt_dataset, jittered_boxes, jittered_poses, load_val4, plain_cocoeval, rescaled

TOL = 1e-12
KEY = {"bbox": "detections", "segm": "detections", "keypoints": "poses"}


def assert_same_eval(ours, plain, what=""):
    """Every entry of precision and recall (hence every AP/AR pycocotools can report)."""
    for key in ("precision", "recall"):
        a, b = np.asarray(ours.eval[key]), np.asarray(plain.eval[key])
        assert a.shape == b.shape, (what, key, a.shape, b.shape)
        assert np.max(np.abs(a - b), initial=0.0) <= TOL, (what, key)


def digest(doc) -> str:
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


@pytest.fixture(scope="module")
def synth():
    return synthetic_document(60, seed=3, masks=True)


@pytest.fixture(scope="module")
def val4(coco_val4):
    return load_val4(coco_val4)


@pytest.fixture(scope="module")
def train_mini(coco_train_mini):
    raw = json.loads((coco_train_mini / "person_keypoints.json").read_text())
    doc = adopt(raw, "train-mini", images=coco_train_mini / "images")
    doc["lrp"]["detections"] = jittered_boxes(doc, seed=1, with_masks=True)
    doc["lrp"]["poses"] = jittered_poses(doc, seed=2)
    return doc


def _docs(request):
    return {name: request.getfixturevalue(name) for name in ("synth", "val4", "train_mini")}


TASKS = {"synth": ("bbox", "segm", "keypoints"), "val4": ("bbox", "keypoints"), "train_mini": ("bbox", "segm", "keypoints")}


@pytest.mark.realdata
@pytest.mark.parametrize("engine", engines.ENGINES)
@pytest.mark.parametrize("name", ["synth", "val4", "train_mini"])
def test_summary_equals_plain_cocoeval(request, name, engine):
    doc = request.getfixturevalue(name)
    if name == "train_mini":
        assert any(a["iscrowd"] for a in doc["annotations"])
    before = digest(doc)
    for task in TASKS[name]:
        ours = ce.run_cocoeval(doc, task, engine=engine)
        plain = plain_cocoeval(gt_dataset(doc), doc["lrp"][KEY[task]], task)
        assert_same_eval(ours, plain, (name, task))
        assert np.max(np.abs(np.asarray(ours.stats) - plain.stats)) <= TOL, (name, task)
        assert len(ours.stats) == len(plain.stats)
    # The engine read the document without writing into it (no deep copy was needed).
    assert digest(doc) == before


@pytest.mark.realdata
@pytest.mark.parametrize("engine", engines.ENGINES)
@pytest.mark.parametrize("name", ["synth", "val4", "train_mini"])
def test_24_buckets_equal_plain_cocoeval(request, name, engine):
    doc = request.getfixturevalue(name)
    ranges = bk.area_ranges(bk.default_edges(1.0))
    assert len(ranges) == 24
    for task in ("bbox", "keypoints"):
        ours = ce.run_cocoeval(doc, task, area_ranges=ranges, engine=engine)
        plain = plain_cocoeval(gt_dataset(doc), doc["lrp"][KEY[task]], task, [list(r) for r in ranges])
        assert_same_eval(ours, plain, (name, task))
    # Not degenerate: several buckets hold people with distinct AP.
    run = bk.bucket_document(doc, bk.default_edges(1.0), engine=engine)
    assert len({round(v, 9) for v in run.metrics["bbox"]["AP"] if v >= 0}) > 2


def _scaled_frame(doc):
    """The same people in a frame with 4x the areas (xform doubled): exact in binary."""
    frame = copy.deepcopy(doc)
    for img in frame["images"]:
        img["lrp"]["xform"] = [2 * v for v in img["lrp"]["xform"][:2]] + img["lrp"]["xform"][2:]
    for a in frame["annotations"]:
        a["area"] *= 4
    return frame


@pytest.mark.realdata
@pytest.mark.parametrize("engine", engines.ENGINES)
@pytest.mark.parametrize("name", ["synth", "val4", "train_mini"])
def test_size_frame_equals_plain_cocoeval_with_scaled_ranges(request, name, engine):
    """Groups from 4x areas, OKS from the document's own: a plain COCOeval with ranges / 4."""
    doc = request.getfixturevalue(name)
    sizes = ce.size_frame(doc, _scaled_frame(doc), "doc", "frame")
    for task in TASKS[name]:
        for ranges in (None, bk.area_ranges(bk.default_edges(2.0))):
            ours = ce.run_cocoeval(doc, task, sizes=sizes, area_ranges=ranges, engine=engine)
            base = ranges or engines.default_params(task).areaRng
            plain = plain_cocoeval(gt_dataset(doc), doc["lrp"][KEY[task]], task, [[lo / 4, hi / 4] for lo, hi in base])
            assert_same_eval(ours, plain, (name, task, ranges is None))


@pytest.mark.realdata
@pytest.mark.parametrize("name", ["synth", "val4", "train_mini"])
def test_size_frame_of_a_real_lr_document_is_the_same_on_both_engines(request, name):
    """The paper's case: sizes from the 1/4 document for its x4 rescale (areas not a uniform
    multiple after rounding): hotcoco equals the reference hook in pycocotools."""
    doc = request.getfixturevalue(name)
    lr4 = rescaled(doc, 0.25)
    back = rescaled(lr4, 4)
    back["lrp"]["detections"], back["lrp"]["poses"] = doc["lrp"]["detections"], doc["lrp"]["poses"]
    sizes = ce.size_frame(back, lr4, "back", "lr4")
    for task in TASKS[name]:
        for ranges in (None, bk.area_ranges(bk.default_edges(0.25))):
            hot = ce.run_cocoeval(back, task, sizes=sizes, area_ranges=ranges, engine="hotcoco")
            ref = ce.run_cocoeval(back, task, sizes=sizes, area_ranges=ranges, engine="pycocotools")
            assert_same_eval(hot, ref, (name, task))
    # The control: the groups moved against the document's own frame.
    own = ce.run_cocoeval(back, "bbox", engine="hotcoco").stats
    assert not np.array_equal(own, ce.run_cocoeval(back, "bbox", sizes=sizes, engine="hotcoco").stats)


@pytest.mark.realdata
def test_evaluate_and_bucket_agree_across_engines(val4):
    lr4 = rescaled(val4, 0.25)
    for kwargs in ({}, {"size_doc": lr4, "size_name": "lr4"}, {"oracle": True}):
        a = evaluate_document(val4, engine="hotcoco", **kwargs).metrics
        b = evaluate_document(val4, engine="pycocotools", **kwargs).metrics
        assert a == b, kwargs
    edges = bk.default_edges(0.25)
    a = bk.bucket_document(val4, edges, frame_doc=lr4, engine="hotcoco").metrics
    b = bk.bucket_document(val4, edges, frame_doc=lr4, engine="pycocotools").metrics
    assert a == b


# --------------------------------------------------------------------------------------------
# Bootstrap: each image evaluated once, replicates re-accumulated


def _pycocotools_E(doc, task, area_rng=None):
    """A plain COCOeval after evaluate() (no accumulate yet)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = copy.deepcopy(gt_dataset(doc))
        gt.createIndex()
        E = COCOeval(gt, gt.loadRes(copy.deepcopy(doc["lrp"][KEY[task]])), task)
        if area_rng is not None:
            E.params.areaRng = area_rng
            E.params.areaRngLbl = [str(i) for i in range(len(area_rng))]
        E.evaluate()
    return E


def _resampled(doc, image_ids, draw):
    """A new document made of the drawn images (repeats as new images, ids in draw order)."""
    by_id = {img["id"]: img for img in doc["images"]}
    out = {"info": {}, "categories": doc["categories"], "images": [], "annotations": [], "lrp": {"detections": [], "poses": []}}
    for new_id, i in enumerate(draw, start=1):
        old = image_ids[i]
        out["images"].append(dict(by_id[old], id=new_id))
        for a in doc["annotations"]:
            if a["image_id"] == old:
                out["annotations"].append(dict(a, id=len(out["annotations"]) + 1, image_id=new_id))
        for key in ("detections", "poses"):
            out["lrp"][key] += [dict(r, image_id=new_id) for r in doc["lrp"][key] if r["image_id"] == old]
    return out


@pytest.mark.parametrize("engine", engines.ENGINES)
def test_bootstrap_replicate_equals_cocoeval_of_the_resampled_document(synth, engine):
    rng = np.random.default_rng(5)
    ids = sorted(img["id"] for img in synth["images"])
    draws = rng.integers(0, len(ids), size=(3, len(ids)))
    for task in ("bbox", "keypoints"):
        ours = ce.run_cocoeval(synth, task, engine=engine)
        for draw, result in zip(draws, ce.bootstrap_evals(ours, len(draws), None, draws=draws)):
            with contextlib.redirect_stdout(io.StringIO()):
                # pycocotools' own accumulate over the re-ordered per-image results ...
                E = _pycocotools_E(synth, task)
                n_img, n_area = len(ids), len(E.params.areaRng)
                E.evalImgs = [E.evalImgs[a * n_img + i] for a in range(n_area) for i in draw]
                E.params.imgIds = [ids[i] for i in draw]
                E._paramsEval.imgIds = E.params.imgIds
                E.accumulate()
            plain = plain_cocoeval(gt_dataset(_resampled(synth, ids, draw)), _resampled(synth, ids, draw)["lrp"][KEY[task]], task)
            for reference in (E, plain):  # ... and a COCOeval of the resampled document
                for key in ("precision", "recall"):
                    assert np.max(np.abs(result[key] - reference.eval[key])) <= TOL, (task, key)
            assert ce.metric_values(ours, task, result) != ce.metric_values(ours, task)  # it did resample


@pytest.mark.realdata
@pytest.mark.parametrize("engine", engines.ENGINES)
def test_identity_draw_is_pycocotools_accumulate_with_sizes_and_buckets(val4, engine):
    lr4 = rescaled(val4, 0.25)
    sizes = ce.size_frame(val4, lr4, "val4", "lr4")
    ranges = bk.area_ranges(bk.default_edges(0.25))
    identity = np.arange(len(val4["images"]))[None, :]
    for task in ("bbox", "keypoints"):
        E = ce.run_cocoeval(val4, task, sizes=sizes, area_ranges=ranges, engine=engine, keep_per_image=True)
        (result,) = ce.bootstrap_evals(E, 1, None, draws=identity)
        for key in ("precision", "recall"):
            assert np.array_equal(result[key], E.eval[key]), (task, key)


def test_accumulate_draw_with_ties_and_empty_images():
    """Tied scores across images keep draw order; images without results are skipped."""
    doc = synthetic_document(25, seed=11)
    assert len({d["score"] for d in doc["lrp"]["detections"]}) < len(doc["lrp"]["detections"])  # ties exist
    E = ce.run_cocoeval(doc, "bbox", engine="hotcoco")
    plain = _pycocotools_E(doc, "bbox")
    draw = np.array([3, 3, 0, 24, 7, 7, 7, 1] * 3)
    result = engines.accumulate_draw(E.per_image(), E.params, draw, E.params.maxDets)
    n_img, n_area = len(doc["images"]), 4
    with contextlib.redirect_stdout(io.StringIO()):
        plain.evalImgs = [plain.evalImgs[a * n_img + i] for a in range(n_area) for i in draw]
        plain.params.imgIds = plain._paramsEval.imgIds = [plain.params.imgIds[i] for i in draw]
        plain.accumulate()
    for key in ("precision", "recall"):
        assert np.array_equal(result[key], plain.eval[key]), key


# --------------------------------------------------------------------------------------------
# The command line


@pytest.mark.realdata
def test_cli_engine_option(runner, tmp_path, val4):
    from tests.conftest import load_json, run_lrp
    from tests.test_evaluate import write

    lr4 = rescaled(val4, 0.25)
    paths = [write(tmp_path, "val4.json", val4), write(tmp_path, "lr4.json", lr4)]
    outputs = {}
    for engine in engines.ENGINES:
        ev = run_lrp(runner, ["evaluate", "--format", "json", "--engine", engine, "--size-from", paths[1], paths[0]])
        assert ev.exit_code == 0, ev.stderr
        assert f"settings: engine {engine};" in ev.stderr
        data = load_json(ev.stdout)
        assert data["settings"]["engine"] == engine
        bucket = run_lrp(runner, ["bucket", "-q", "--format", "json", "--engine", engine, "--baseline", paths[1], paths[0]])
        assert bucket.exit_code == 0, bucket.stderr
        outputs[engine] = (data["documents"][0]["metrics"], load_json(bucket.stdout)["documents"])
    assert outputs["hotcoco"] == outputs["pycocotools"]
    for command in (["evaluate", paths[0]], ["bucket", paths[0]], ["mix", paths[0], paths[1]]):
        bad = run_lrp(runner, [command[0], "--engine", "cocoapi", *command[1:]])
        assert bad.exit_code == 2 and f"lrp {command[0]}: error: --engine 'cocoapi': expected one of hotcoco, pycocotools" in bad.stderr
