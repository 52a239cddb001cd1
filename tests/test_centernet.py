"""CenterNet-MobileNetV3: conversion from TF.js names, TF semantics of each piece, decode, and
(when the real graph is at hand) agreement with an independent numpy execution of the graph."""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lrp.errors import LrpError
from lrp.models import centernet as cn

sys.path.insert(0, str(Path(__file__).parent))
import tfjs_numpy  # noqa: E402

# Where `lrp weights fetch centernet-mbv3` (or a user) unpacked models/centernet.json + .bin.
REAL_GRAPH = os.environ.get("LRP_CENTERNET_TFJS")


def random_tf_weights(seed=0) -> dict[str, np.ndarray]:
    """Random arrays under the TF.js names, in TF layouts (HWIO, depthwise HWC1), plus constants."""
    rng = np.random.default_rng(seed)
    model = cn.CenterNet()
    own = model.state_dict()
    out = {}
    for ours, theirs in cn.tf_weight_names(model).items():
        shape = tuple(own[ours].shape)
        if len(shape) == 4:
            o, i, h, w = shape
            shape = (h, w, o, 1) if ours.endswith("depthwise.weight") else (h, w, i, o)
        out[theirs] = (rng.standard_normal(shape) * 0.1).astype(np.float32)
    out["tower_0/MobilenetV3/Conv/hard_swish/mul_1/y"] = np.float32(cn.SIXTH)
    out["tower_0/MobilenetV3/Conv/hard_swish/add/y"] = np.float32(3.0)
    out["tower_0/mul/y"] = np.float32(16.0)
    return out


def test_converter_covers_every_parameter_with_the_right_layout():
    tf = random_tf_weights()
    state = cn.convert_tfjs_weights(tf)
    model = cn.build_centernet()
    model.load_state_dict(state, strict=True)
    names = cn.tf_weight_names(model)
    assert len(set(names.values())) == len(names) == len(model.state_dict())
    # Depthwise: TF [kh, kw, C, 1] -> torch [C, 1, kh, kw]; dense: TF [kh, kw, in, out] -> [out, in, kh, kw].
    dw = tf["tower_0/MobilenetV3/expanded_conv_3/depthwise/depthwise_weights"]
    assert dw.shape == (5, 5, 72, 1)
    assert state["MobilenetV3.expanded_conv_3.depthwise.weight"][7, 0, 1, 4] == dw[1, 4, 7, 0]
    stem = tf["tower_0/MobilenetV3/Conv/Conv2D_weights"]
    assert state["MobilenetV3.Conv.weight"][5, 2, 0, 1] == stem[0, 1, 2, 5]
    assert sum(v.numel() for v in state.values()) == 2_014_924  # the parameter count of the real file


def test_converter_rejects_a_different_graph():
    tf = random_tf_weights()
    with_exact_sixth = dict(tf, **{"tower_0/MobilenetV3/Conv/hard_swish/mul_1/y": np.float32(1 / 6)})
    with pytest.raises(LrpError, match="graph constant .*mul_1/y"):
        cn.convert_tfjs_weights(with_exact_sixth)
    missing = {k: v for k, v in tf.items() if k != "tower_0/extern1/Conv2D_weights"}
    with pytest.raises(LrpError, match="extern1/Conv2D_weights is missing"):
        cn.convert_tfjs_weights(missing)
    wrong = dict(tf, **{"tower_0/extern1/Conv2D_bn_offset": np.zeros(481, np.float32)})
    with pytest.raises(LrpError, match="has shape \\(481,\\), expected \\(480,\\)"):
        cn.convert_tfjs_weights(wrong)


@pytest.mark.parametrize("size", [(8, 8), (9, 10), (7, 13)])
@pytest.mark.parametrize("kernel,stride", [(3, 2), (5, 2), (3, 1), (5, 1)])
def test_same_padding_matches_tensorflow(size, kernel, stride):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 3, *size, generator=g)
    dense = cn.TFConv2d(3, 4, kernel, stride=stride)
    depth = cn.TFConv2d(3, 3, kernel, stride=stride, groups=3, bias=False)
    xn = x.permute(0, 2, 3, 1).double().numpy()
    with torch.no_grad():
        got = dense(x).permute(0, 2, 3, 1).numpy()
        got_dw = depth(x).permute(0, 2, 3, 1).numpy()
    w = dense.weight.detach().permute(2, 3, 1, 0).double().numpy()
    ref = tfjs_numpy.conv2d(xn, w, (stride, stride), "SAME") + dense.bias.detach().double().numpy()
    ref_dw = tfjs_numpy.depthwise(xn, depth.weight.detach().permute(2, 3, 0, 1).double().numpy(), (stride, stride), "SAME")
    assert got.shape == ref.shape == (1, math.ceil(size[0] / stride), math.ceil(size[1] / stride), 4)
    np.testing.assert_allclose(got, ref, atol=1e-5)
    np.testing.assert_allclose(got_dw, ref_dw, atol=1e-5)


@pytest.mark.parametrize("src,dst", [((4, 4), (8, 8)), ((5, 7), (12, 9)), ((20, 30), (8, 8))])
def test_resize_is_tensorflow_legacy_bilinear(src, dst):
    x = torch.randn(1, 2, *src, generator=torch.Generator().manual_seed(1))
    got = cn.tf_resize_bilinear(x, *dst).permute(0, 2, 3, 1).numpy()
    ref = tfjs_numpy.resize_bilinear_legacy(x.permute(0, 2, 3, 1).double().numpy(), dst)
    np.testing.assert_allclose(got, ref, atol=1e-5)


def ref_decode(heat: np.ndarray, sides: np.ndarray, topk: int) -> np.ndarray:
    """The graph's decode, one candidate at a time: NHWC order, 3x3 peaks, ties to the lower index."""
    _, c, h, w = heat.shape
    cands = []
    for y in range(h):
        for x in range(w):
            for k in range(c):
                v = heat[0, k, y, x]
                nb = heat[0, k, max(0, y - 1) : y + 2, max(0, x - 1) : x + 2]
                score = v if v == nb.max() else 0.0
                cands.append((-score, (y * w + x) * c + k, x, y, k))
    cands.sort()
    out = []
    for neg, _, x, y, k in cands[:topk]:
        l, t, r, b = sides[0, :, y, x]
        out.append([4 * x - l, 4 * y - t, 4 * x + r, 4 * y + b, -neg, k])
    return np.array(out, dtype=np.float64)


def test_decode_matches_a_loop_reference():
    g = torch.Generator().manual_seed(2)
    heat = torch.rand(1, 3, 6, 5, generator=g)
    heat[0, 1, 2, 2] = heat[0, 1, 2, 3] = 2.0  # a tie of two neighbouring peaks: both stay peaks
    heat[0, 0, 5, 4] = 2.0  # tie across classes and positions: lower flat index first
    sides = torch.rand(1, 4, 6, 5, generator=g) * 10
    model = cn.CenterNet(num_classes=3, topk=12)
    got = model.decode(heat, sides).numpy()[0]
    np.testing.assert_allclose(got, ref_decode(heat.double().numpy(), sides.double().numpy(), 12), atol=1e-5)
    # Fewer peaks than k: the rest are zeros, taken in index order as TF's TopKV2 does.
    sparse = torch.zeros(1, 3, 6, 5)
    sparse[0, 2, 1, 1], sparse[0, 0, 4, 3] = 0.7, 0.9
    got = model.decode(sparse, sides).numpy()[0]
    np.testing.assert_allclose(got, ref_decode(sparse.double().numpy(), sides.double().numpy(), 12), atol=1e-5)


def test_random_weight_forward_is_deterministic_and_sized():
    torch.manual_seed(0)
    model = cn.build_centernet()
    model.load_state_dict(cn.convert_tfjs_weights(random_tf_weights(3)))
    x = torch.rand(1, 3, 64, 96) * 255
    with torch.no_grad():
        heat, sides = model(x)
        heat2, sides2 = model(x)
    assert heat.shape == (1, 80, 16, 24) and sides.shape == (1, 4, 16, 24)
    assert torch.equal(heat, heat2) and torch.equal(sides, sides2)
    assert float(heat.min()) >= 0 and float(heat.max()) <= 1
    # detect() on odd, tiny and gray-turned-RGB images returns boxes inside each image.
    model.configure(score_thresh=0.0, detections_per_image=7)
    imgs = [np.full((5, 3, 3), 128, np.uint8), (np.random.default_rng(0).random((33, 70, 3)) * 255).astype(np.uint8)]
    for img, out in zip(imgs, model.detect(imgs)):
        h, w = img.shape[:2]
        b = out["boxes"]
        assert len(b) <= 7 and out["scores"].shape == out["classes"].shape == (len(b),)
        assert bool(((b[:, 0] >= 0) & (b[:, 2] <= w) & (b[:, 1] >= 0) & (b[:, 3] <= h)).all())


@pytest.mark.skipif(not REAL_GRAPH, reason="set LRP_CENTERNET_TFJS to the real models/centernet.json to compare with the graph")
def test_real_graph_agrees_with_numpy_execution(coco_val4):
    from lrp.images import load_rgb
    from lrp.sources.tfjs import read_graph_model

    graph = read_graph_model(REAL_GRAPH)
    model = cn.build_centernet()
    model.load_state_dict(cn.convert_tfjs_weights(graph.weights))
    x = model.preprocess([load_rgb(coco_val4 / "images" / "000000196141.jpg")])
    ref = tfjs_numpy.run_graph(graph, {"tower_0/images": x.permute(0, 2, 3, 1).double().numpy()}, ["tower_0/keypoints", "tower_0/wh", "tower_0/detections"])
    with torch.no_grad():
        heat, sides = model(x)
        dets = model.decode(heat, sides)
    np.testing.assert_allclose(heat.permute(0, 2, 3, 1).numpy(), ref["tower_0/keypoints"], atol=1e-5)
    np.testing.assert_allclose(sides.permute(0, 2, 3, 1).numpy(), ref["tower_0/wh"], rtol=1e-5, atol=2e-3)  # sides reach ~250 px
    np.testing.assert_allclose(dets.numpy(), ref["tower_0/detections"], rtol=1e-5, atol=2e-3)
