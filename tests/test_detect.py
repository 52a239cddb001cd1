"""`lrp detect`: document in, COCO detection results out, classes, thresholds and bad input.

Plumbing runs CenterNet with random weights (a real 2M-parameter architecture, fast on a CPU);
usefulness is checked with the real CenterNet weights when `lrp weights fetch centernet-mbv3` has
put them in the weights directory.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import run_lrp
from lrp.errors import LrpError, UsageError

from test_centernet import random_tf_weights


@pytest.fixture(scope="module")
def random_centernet(tmp_path_factory):
    from safetensors.torch import save_file

    from lrp.models.centernet import convert_tfjs_weights

    path = tmp_path_factory.mktemp("weights") / "centernet-random.safetensors"
    state = convert_tfjs_weights(random_tf_weights(5))
    # A strong "person" bias makes person peaks everywhere: detections to check.
    state["CenternetHead.centernet_cls_output.pointwise.bias"][0] = 3.0
    state["CenternetHead.centernet_wh_output.pointwise.bias"][:] = 1.0  # box sides about 16 px
    save_file(state, str(path))
    return path


@pytest.fixture
def small_input(monkeypatch):
    """Random-weight plumbing runs at 128 x 128 instead of 512 x 512: 16 times less work."""
    from lrp.models import centernet

    monkeypatch.setattr(centernet, "INPUT_SIZE", 128)


@pytest.fixture
def tiny_doc(tmp_path, small_input):
    """A plain COCO file with an RGB, a grayscale, an RGBA and a 10x7 image."""
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    specs = [("rgb.png", "RGB", (80, 60)), ("gray.png", "L", (64, 48)), ("rgba.png", "RGBA", (50, 70)), ("tiny.png", "RGB", (10, 7))]
    entries = []
    for i, (name, mode, (w, h)) in enumerate(specs, start=1):
        channels = {"RGB": 3, "L": 1, "RGBA": 4}[mode]
        arr = (rng.random((h, w, channels)) * 255).astype(np.uint8)
        Image.fromarray(arr.squeeze(-1) if channels == 1 else arr, mode).save(images / name)
        entries.append({"id": 10 * i, "file_name": name, "width": w, "height": h})
    doc = {"images": entries, "annotations": [], "categories": [{"id": 1, "name": "person", "supercategory": "person"}]}
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(doc))
    return path, images


def detect(runner, doc_path, images, weights, *extra):
    args = ["detect", str(doc_path), "--images", str(images), "--model", "centernet-mbv3", "--weights", str(weights), "-q", *extra]
    return run_lrp(runner, args)


def test_detections_in_each_image_frame(runner, tiny_doc, random_centernet):
    doc_path, images = tiny_doc
    result = detect(runner, doc_path, images, random_centernet, "--score-threshold", "0", "--max-per-image", "5")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    dets = doc["lrp"]["detections"]
    sizes = {img["id"]: (img["width"], img["height"]) for img in doc["images"]}
    per_image = {}
    for d in dets:
        assert set(d) == {"image_id", "category_id", "bbox", "score"}
        assert d["category_id"] == 1
        w, h = sizes[d["image_id"]]
        x, y, bw, bh = d["bbox"]
        assert 0 <= x and 0 <= y and bw > 0 and bh > 0 and x + bw <= w + 1e-3 and y + bh <= h + 1e-3
        per_image.setdefault(d["image_id"], []).append(d["score"])
    # Gray, RGBA and 10x7 images work too; each image has at most 5, in decreasing score.
    assert set(per_image) == set(sizes)
    assert all(len(s) <= 5 and s == sorted(s, reverse=True) for s in per_image.values())
    assert doc["lrp"]["history"][-1]["command"] == "detect"
    assert doc["lrp"]["history"][-1]["args"]["classes"] == [1]
    # Deterministic: the same run gives the same document.
    again = detect(runner, doc_path, images, random_centernet, "--score-threshold", "0", "--max-per-image", "5")
    assert json.loads(again.stdout)["lrp"]["detections"] == dets


def test_bf16_and_batches_give_the_same_people(runner, tiny_doc, random_centernet):
    doc_path, images = tiny_doc
    ref = json.loads(detect(runner, doc_path, images, random_centernet, "--max-per-image", "3").stdout)["lrp"]["detections"]
    batched = detect(runner, doc_path, images, random_centernet, "--max-per-image", "3", "--batch-size", "3")
    assert json.loads(batched.stdout)["lrp"]["detections"] == ref
    bf16 = detect(runner, doc_path, images, random_centernet, "--max-per-image", "3", "--precision", "bf16", "--device", "cpu")
    assert bf16.exit_code == 0, bf16.stderr
    got = json.loads(bf16.stdout)["lrp"]["detections"]
    count = lambda dets: sorted((d["image_id"], sum(e["image_id"] == d["image_id"] for e in dets)) for d in dets)  # noqa: E731
    assert count(got) == count(ref)
    # Random weights put many peaks within bf16's rounding of each other, so compare the maps.
    from lrp.device import load_state_dict
    from lrp.models.centernet import build_centernet

    model = build_centernet()
    model.load_state_dict(load_state_dict(random_centernet))
    x = torch.rand(1, 3, 128, 128) * 255
    with torch.no_grad():
        heat32, sides32 = model(x)
        heat16, sides16 = model.to(torch.bfloat16)(x.to(torch.bfloat16))
    assert float((heat16.float() - heat32).abs().max()) < 0.05
    assert float((sides16.float() - sides32).abs().max()) < 0.05 * float(sides32.abs().max())


def test_no_people_is_an_empty_list(runner, tiny_doc, random_centernet):
    doc_path, images = tiny_doc
    result = detect(runner, doc_path, images, random_centernet, "--score-threshold", "0.999999")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["lrp"]["detections"] == []


def test_other_classes_add_coco_categories(runner, tiny_doc, random_centernet, tmp_path):
    doc_path, images = tiny_doc
    out = tmp_path / "out.json"
    args = ["--score-threshold", "0", "--classes", "person, dog,traffic_light", "-o", str(out)]
    result = detect(runner, doc_path, images, random_centernet, *args)
    assert result.exit_code == 0, result.stderr
    doc = json.loads(out.read_text())
    cats = {c["name"]: c["id"] for c in doc["categories"]}
    assert cats == {"person": 1, "dog": 18, "traffic light": 10}
    assert {d["category_id"] for d in doc["lrp"]["detections"]} <= {1, 18, 10}
    all_classes = detect(runner, doc_path, images, random_centernet, "--classes", "all", "--score-threshold", "0")
    assert len(json.loads(all_classes.stdout)["categories"]) == 80


def test_bad_options_and_weights(runner, tiny_doc, random_centernet, tmp_path, monkeypatch):
    doc_path, images = tiny_doc
    bad = detect(runner, doc_path, images, random_centernet, "--classes", "persn")
    assert bad.exit_code == 2 and "unknown class 'persn'" in bad.stderr and "person" in bad.stderr
    bad = detect(runner, doc_path, images, random_centernet, "--score-threshold", "1.5")
    assert bad.exit_code == 2 and "--score-threshold" in bad.stderr
    bad = detect(runner, doc_path, images, random_centernet, "--precision", "fp16", "--device", "cpu")
    assert bad.exit_code == 2 and "fp16 needs CUDA" in bad.stderr
    bad = run_lrp(runner, ["detect", str(doc_path), "--images", str(images), "--model", "nope", "-q"])
    assert bad.exit_code == 2 and "centernet-mbv3" in bad.stderr
    # Weights of another architecture: one line naming the file and the mismatch.
    from safetensors.torch import save_file

    wrong = tmp_path / "wrong.safetensors"
    save_file({"backbone.bottom_up.stem.conv1.weight": torch.zeros(64, 3, 7, 7)}, str(wrong))
    bad = detect(runner, doc_path, images, wrong)
    assert bad.exit_code == 1 and "wrong.safetensors" in bad.stderr and "do not fit" in bad.stderr
    # Missing registry weights: the message says how to get them.
    monkeypatch.setenv("LRP_WEIGHTS", str(tmp_path / "empty"))
    bad = run_lrp(runner, ["detect", str(doc_path), "--images", str(images), "-q"])
    assert bad.exit_code == 1 and "lrp weights convert faster-rcnn-r101-fpn" in bad.stderr


def test_broken_image_fails_or_is_listed(runner, tiny_doc, random_centernet):
    doc_path, images = tiny_doc
    (images / "gray.png").write_bytes(b"not a png")
    bad = detect(runner, doc_path, images, random_centernet)
    assert bad.exit_code == 1 and "image 20" in bad.stderr
    kept = detect(runner, doc_path, images, random_centernet, "--keep-going", "--score-threshold", "0")
    assert kept.exit_code == 1 and "image 20" in kept.stderr
    dets = json.loads(kept.stdout)["lrp"]["detections"]
    assert {d["image_id"] for d in dets} == {10, 30, 40}


def test_category_id_clash_is_an_error():
    from lrp.detect import category_ids_for, parse_classes

    doc = {"categories": [{"id": 1, "name": "person"}, {"id": 18, "name": "my-dog"}]}
    assert category_ids_for(doc, parse_classes("person")) == {0: 1}
    with pytest.raises(LrpError, match="category id 18 is 'my-dog'"):
        category_ids_for(doc, parse_classes("dog"))
    with pytest.raises(UsageError):
        parse_classes(" , ")


def test_mask_results_are_rle_with_pixel_area():
    from pycocotools import mask as mask_util

    from lrp.detect import to_coco_results

    masks = torch.zeros(2, 6, 8, dtype=torch.bool)
    masks[0, 1:4, 2:7] = True
    out = {
        "boxes": torch.tensor([[2.0, 1.0, 7.0, 4.0], [0.0, 0.0, 1.0, 1.0]]),
        "scores": torch.tensor([0.9, 0.3]),
        "classes": torch.tensor([0, 3]),
        "masks": masks,
    }
    res = to_coco_results(7, out, {0: 1})
    assert len(res) == 1  # class 3 (motorcycle) not asked for
    r = res[0]
    assert r["bbox"] == [2.0, 1.0, 5.0, 3.0] and r["area"] == 15 and r["image_id"] == 7
    assert r["segmentation"]["size"] == [6, 8] and isinstance(r["segmentation"]["counts"], str)
    np.testing.assert_array_equal(mask_util.decode(r["segmentation"]), masks[0].numpy())


def _weights_present(name: str) -> bool:
    from lrp.device import weights_dir

    return (weights_dir() / f"{name}.safetensors").is_file()


@pytest.mark.slow
@pytest.mark.realdata
@pytest.mark.skipif(not _weights_present("centernet-mbv3"), reason="real weights absent: run `lrp weights fetch centernet-mbv3`")
def test_real_centernet_finds_the_people_of_coco_val4(runner, coco_val4, tmp_path):
    out = tmp_path / "det.json"
    args = ["detect", str(coco_val4 / "person_keypoints.json"), "--images", str(coco_val4 / "images"), "--model", "centernet-mbv3", "-q", "-o", str(out)]
    result = run_lrp(runner, args)
    assert result.exit_code == 0, result.stderr
    report = json.loads(run_lrp(runner, ["evaluate", str(out), "--format", "json"]).stdout)
    assert report["documents"][0]["metrics"]["bbox"]["AP"] > 0.5  # measured 0.623 with the real weights


def test_mask_model_fills_segmentation_and_area(tiny_doc):
    """Mask R-CNN (tiny random R-50) through `detect_images`: RLE masks in each image's frame."""
    from pycocotools import mask as mask_util

    from lrp.detect import category_ids_for, detect_images, parse_classes
    from lrp.inputs import load_document
    from test_rcnn import tiny_model

    doc_path, images = tiny_doc
    doc = load_document(str(doc_path), images=images)
    doc["images"] = doc["images"][:2]  # the RGB and the grayscale image
    results, failures = detect_images(doc, tiny_model(mask=True), category_ids_for(doc, parse_classes("person")), quiet=True, batch_size=2)
    assert failures == [] and results
    sizes = {img["id"]: (img["height"], img["width"]) for img in doc["images"]}
    for r in results:
        assert r["segmentation"]["size"] == list(sizes[r["image_id"]])
        assert r["area"] == int(mask_util.decode(r["segmentation"]).sum())
