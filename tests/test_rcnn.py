"""Faster/Mask R-CNN (ResNet-FPN): key layout against the Detectron2 manifests, conversion of
random `.pkl` checkpoints laid out like the official ones, and the pieces' Detectron2 semantics."""

from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pytest
import torch

from lrp.device import load_strict
from lrp.errors import LrpError
from lrp.models import ops, rcnn


def manifest(reference_dir, name: str) -> dict[str, list[int]]:
    return json.loads((reference_dir / "checkpoint-keys" / f"detectron2_{name}.json").read_text())["keys"]


def random_pkl(path, keys: dict[str, list[int]], *, norm_stats: bool = True, seed: int = 0):
    """A Detectron2-style .pkl: numpy arrays under "model", with the extras real files carry."""
    rng = np.random.default_rng(seed)
    model = {}
    for name, shape in keys.items():
        if not norm_stats and (name.endswith("running_mean") or name.endswith("running_var")):
            continue
        if name.endswith("running_var"):
            model[name] = rng.uniform(0.5, 2.0, shape).astype(np.float32)
        else:
            model[name] = (rng.standard_normal(shape) * 0.01).astype(np.float32)
    model["pixel_mean"] = np.array([[[103.53]], [[116.28]], [[123.675]]], np.float32)
    model["pixel_std"] = np.ones((3, 1, 1), np.float32)
    model["proposal_generator.anchor_generator.cell_anchors.0"] = np.zeros((3, 4), np.float32)
    with open(path, "wb") as f:
        pickle.dump({"model": model, "__author__": "test"}, f)
    return model


@pytest.mark.slow
def test_full_r101_builds_like_the_manifest_and_strict_loads_a_random_pkl(reference_dir, tmp_path):
    keys = manifest(reference_dir, "faster_rcnn_R_101_FPN")
    model = rcnn.build_rcnn(101, mask=False)
    own = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert own == keys  # same names, same shapes (dict equality ignores order)
    raw = random_pkl(tmp_path / "model_final_f6e8b1.pkl", keys)
    state = rcnn.convert_detectron2(tmp_path / "model_final_f6e8b1.pkl")
    load_strict(model, state, "faster-rcnn-r101-fpn")
    name = "backbone.bottom_up.res4.22.conv2.norm.running_var"
    assert torch.equal(model.state_dict()[name], torch.from_numpy(raw[name]))
    mask_keys = manifest(reference_dir, "mask_rcnn_R_101_FPN")
    assert {k: list(v.shape) for k, v in rcnn.build_rcnn(101, mask=True).state_dict().items()} == mask_keys


def test_r50_mask_weight_bias_only_norms_and_wrong_checkpoints(reference_dir, tmp_path):
    keys = manifest(reference_dir, "mask_rcnn_R_50_FPN")
    raw = random_pkl(tmp_path / "m.pkl", keys, norm_stats=False)
    state = rcnn.convert_detectron2(tmp_path / "m.pkl")
    assert "pixel_mean" not in state and not any("cell_anchors" in k for k in state)
    model = load_strict(rcnn.build_rcnn(50, mask=True), state, "mask-rcnn-r50-fpn")
    norm = model.backbone.bottom_up.res2[0].conv1.norm
    assert torch.equal(norm.running_mean, torch.zeros(64)) and torch.equal(norm.running_var, torch.ones(64))
    assert torch.equal(norm.weight, torch.from_numpy(raw["backbone.bottom_up.res2.0.conv1.norm.weight"]))
    # A Mask R-CNN checkpoint into Faster R-CNN (and back) fails with the culprits named.
    with pytest.raises(LrpError, match="unexpected .*roi_heads.mask_head"):
        load_strict(rcnn.build_rcnn(50, mask=False), state, "faster-rcnn-r50-fpn")
    with pytest.raises(LrpError, match="wrong shape .*res4"):
        load_strict(rcnn.build_rcnn(101, mask=True), dict(state, **{"backbone.bottom_up.res4.0.conv1.weight": torch.zeros(1)}), "x")
    (tmp_path / "bad.pkl").write_bytes(b"not a pickle")
    with pytest.raises(LrpError, match="bad.pkl: not a readable Detectron2 checkpoint"):
        rcnn.convert_detectron2(tmp_path / "bad.pkl")
    with open(tmp_path / "list.pkl", "wb") as f:
        pickle.dump([1, 2], f)
    with pytest.raises(LrpError, match="expected a dict of tensors"):
        rcnn.convert_detectron2(tmp_path / "list.pkl")
    with pytest.raises(LrpError, match="no such file"):
        rcnn.convert_detectron2(tmp_path / "missing.pkl")


def tiny_model(mask=True, seed=0):
    """R-50 with random weights, a person-biased classifier, on small inputs (plumbing only)."""
    torch.manual_seed(seed)
    model = rcnn.build_rcnn(50, mask=mask)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith("running_var"):
                t.uniform_(0.5, 1.5)
            elif name.endswith("norm.weight"):
                t.uniform_(0.2, 0.5)
            elif t.dtype.is_floating_point:
                t.normal_(0, 0.02)
        model.roi_heads.box_predictor.cls_score.bias[0] = 6.0  # person wins: detections to check
    model.min_size, model.max_size = 64, 96
    # Fewer proposals and detections than the real test settings keep this fast on a busy CPU.
    model.proposal_generator.pre_nms_topk, model.proposal_generator.post_nms_topk = 200, 60
    return model.configure(detections_per_image=20)


def test_tiny_forward_is_deterministic_and_in_frame():
    model = tiny_model()
    rng = np.random.default_rng(0)
    imgs = [(rng.random((48, 64, 3)) * 255).astype(np.uint8), (rng.random((30, 20, 3)) * 255).astype(np.uint8)]
    out1 = model.detect(imgs)
    out2 = model.detect(imgs)
    for img, a, b in zip(imgs, out1, out2):
        h, w = img.shape[:2]
        assert len(a["boxes"]) > 0
        for key in ("boxes", "scores", "classes", "masks"):
            assert torch.equal(a[key], b[key])
        boxes = a["boxes"]
        assert bool(((boxes[:, 0] >= 0) & (boxes[:, 2] <= w) & (boxes[:, 1] >= 0) & (boxes[:, 3] <= h)).all())
        assert bool((boxes[:, 2] > boxes[:, 0]).all() & (boxes[:, 3] > boxes[:, 1]).all())
        assert a["masks"].shape == (len(boxes), h, w) and a["masks"].dtype == torch.bool
        assert bool((a["scores"] > 0.05).all()) and len(boxes) <= 20
        assert bool((a["scores"][:-1] >= a["scores"][1:]).all())
    # Thresholds are honoured.
    model.configure(score_thresh=0.5, detections_per_image=3)
    for out in model.detect(imgs[1:]):
        assert len(out["boxes"]) <= 3 and bool((out["scores"] > 0.5).all())


def test_batching_pads_and_keeps_images_apart():
    model = tiny_model(mask=False)
    rng = np.random.default_rng(1)
    a, b = ((rng.random((40, 56, 3)) * 255).astype(np.uint8) for _ in range(2))
    batch, sizes = model.preprocess([a, np.zeros((90, 30, 3), np.uint8)])
    assert batch.shape[-2:] == (96, 96) and sizes == [rcnn.resized_shape(40, 56, 64, 96), rcnn.resized_shape(90, 30, 64, 96)]
    # Same-size images batch without extra padding: each result is the image's own.
    together = model.detect([a, b])
    for img, out in zip((a, b), together):
        alone = model.detect([img])[0]
        assert len(alone["boxes"]) == len(out["boxes"]) > 0
        torch.testing.assert_close(out["boxes"], alone["boxes"], atol=1e-3, rtol=1e-4)
        torch.testing.assert_close(out["scores"], alone["scores"], atol=1e-5, rtol=1e-4)


def test_resize_rule_matches_detectron2():
    assert rcnn.resized_shape(425, 640) == (800, 1205)
    assert rcnn.resized_shape(480, 640) == (800, 1067)
    assert rcnn.resized_shape(640, 427) == (1199, 800)
    assert rcnn.resized_shape(500, 2000) == (333, 1333)  # long side capped
    assert rcnn.resized_shape(1, 5000) == (1, 1333)


def test_anchors_match_detectron2():
    cell = rcnn.cell_anchors(32)
    w = math.sqrt(32 * 32 / 0.5)
    torch.testing.assert_close(cell[0], torch.tensor([-w / 2, -0.5 * w / 2, w / 2, 0.5 * w / 2]))
    torch.testing.assert_close(cell[1], torch.tensor([-16.0, -16.0, 16.0, 16.0]))
    grid = rcnn.grid_anchors(2, 3, 8, 32, "cpu")
    assert grid.shape == (2 * 3 * 3, 4)
    # Location-major, x fastest: the 4th location is (x=0, y=8); anchors of one location are consecutive.
    torch.testing.assert_close(grid[3 * 3 + 1], torch.tensor([-16.0, -8.0, 16.0, 24.0]))


def test_level_assignment_matches_detectron2():
    side = torch.tensor([10.0, 111.9, 112.0, 224.0, 447.0, 448.0, 2000.0])
    boxes = torch.stack([torch.zeros(7), torch.zeros(7), side, side], 1)
    assert rcnn.assign_levels(boxes).tolist() == [0, 0, 1, 2, 2, 3, 3]


def test_fpn_strides_and_postprocess_scaling():
    model = tiny_model(mask=False)
    feats = model.backbone(torch.zeros(1, 3, 64, 96))
    assert [tuple(f.shape[-2:]) for f in feats] == [(16, 24), (8, 12), (4, 6), (2, 3), (1, 2)]
    out = {"boxes": torch.tensor([[10.0, 20.0, 50.0, 40.0], [90.0, 0.0, 120.0, 10.0]]), "scores": torch.tensor([0.9, 0.8]), "classes": torch.tensor([0, 0])}
    res = rcnn.postprocess(out, (64, 80), (32, 40))
    # Scaled by 0.5 per axis; the second box falls outside the 40-pixel-wide image and is dropped.
    torch.testing.assert_close(res["boxes"], torch.tensor([[5.0, 10.0, 25.0, 20.0]]))
    assert ops.nonempty(res["boxes"]).all()


def test_weights_convert_cli_takes_a_detectron2_pkl(reference_dir, tmp_path, runner):
    from conftest import run_lrp
    from lrp.device import load_state_dict

    keys = manifest(reference_dir, "faster_rcnn_R_50_FPN")
    raw = random_pkl(tmp_path / "model_final_280758.pkl", keys, seed=3)
    out = tmp_path / "faster-rcnn-r50-fpn.safetensors"
    result = run_lrp(runner, ["weights", "convert", "faster-rcnn-r50-fpn", str(tmp_path / "model_final_280758.pkl"), "-o", str(out)])
    assert result.exit_code == 0, result.stderr
    state = load_state_dict(out)
    assert set(state) == set(keys)
    name = "roi_heads.box_predictor.bbox_pred.weight"
    assert torch.equal(state[name], torch.from_numpy(raw[name]))
    # The same file is not a Mask R-CNN checkpoint: refused, naming the missing head.
    bad = run_lrp(runner, ["weights", "convert", "mask-rcnn-r50-fpn", str(tmp_path / "model_final_280758.pkl"), "-o", str(tmp_path / "m.safetensors")])
    assert bad.exit_code == 1 and "mask_head" in bad.stderr and not (tmp_path / "m.safetensors").exists()
