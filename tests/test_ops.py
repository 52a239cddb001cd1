"""The vectorised detection ops against straightforward loop implementations written here.

The references transcribe torchvision's CPU kernels (nms_kernel.cpp, roi_align_kernel.cpp) and
Detectron2's box coding line by line, one box and one sample at a time.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lrp.models import ops


# --------------------------------------------------------------------------------------------
# References


def ref_nms(boxes: np.ndarray, scores: np.ndarray, thr: float) -> list[int]:
    order = sorted(range(len(scores)), key=lambda i: -scores[i])  # Python's sort is stable
    areas = [(b[2] - b[0]) * (b[3] - b[1]) for b in boxes]
    removed = [False] * len(boxes)
    keep = []
    for _i, i in enumerate(order):
        if removed[i]:
            continue
        keep.append(i)
        for j in order[_i + 1 :]:
            if removed[j]:
                continue
            xx1, yy1 = max(boxes[i][0], boxes[j][0]), max(boxes[i][1], boxes[j][1])
            xx2, yy2 = min(boxes[i][2], boxes[j][2]), min(boxes[i][3], boxes[j][3])
            inter = max(0.0, xx2 - xx1) * max(0.0, yy2 - yy1)
            union = areas[i] + areas[j] - inter
            ovr = inter / union if union != 0 else float("nan")
            if ovr > thr:
                removed[j] = True
    return keep


def ref_bilinear(fm: np.ndarray, y: float, x: float) -> np.ndarray:
    c, h, w = fm.shape
    if y < -1.0 or y > h or x < -1.0 or x > w:
        return np.zeros(c)
    y, x = max(y, 0.0), max(x, 0.0)
    y_low, x_low = int(y), int(x)
    if y_low >= h - 1:
        y_high = y_low = h - 1
        y = float(y_low)
    else:
        y_high = y_low + 1
    if x_low >= w - 1:
        x_high = x_low = w - 1
        x = float(x_low)
    else:
        x_high = x_low + 1
    ly, lx = y - y_low, x - x_low
    hy, hx = 1 - ly, 1 - lx
    return hy * hx * fm[:, y_low, x_low] + hy * lx * fm[:, y_low, x_high] + ly * hx * fm[:, y_high, x_low] + ly * lx * fm[:, y_high, x_high]


def ref_roi_align(feat: np.ndarray, rois: np.ndarray, out: int, scale: float, sampling: int, aligned: bool) -> np.ndarray:
    n, c, h, w = feat.shape
    result = np.zeros((len(rois), c, out, out))
    off = 0.5 if aligned else 0.0
    for r, (b, x1, y1, x2, y2) in enumerate(rois):
        sx, sy = x1 * scale - off, y1 * scale - off
        rw, rh = x2 * scale - off - sx, y2 * scale - off - sy
        if not aligned:
            rw, rh = max(rw, 1.0), max(rh, 1.0)
        bw, bh = rw / out, rh / out
        gh = sampling if sampling > 0 else math.ceil(rh / out)
        gw = sampling if sampling > 0 else math.ceil(rw / out)
        count = max(gh * gw, 1)
        for ph in range(out):
            for pw in range(out):
                acc = np.zeros(c)
                for iy in range(gh):
                    y = sy + ph * bh + (iy + 0.5) * bh / gh
                    for ix in range(gw):
                        x = sx + pw * bw + (ix + 0.5) * bw / gw
                        acc += ref_bilinear(feat[int(b)], y, x)
                result[r, :, ph, pw] = acc / count
    return result


# --------------------------------------------------------------------------------------------
# NMS


def random_boxes(n: int, seed: int, size: float = 100.0, spread: float = 60.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * size
    wh = torch.rand(n, 2, generator=g) * spread
    return torch.cat([xy, xy + wh], 1)


@pytest.mark.parametrize("thr", [0.3, 0.5, 0.7])
@pytest.mark.parametrize("seed", [0, 1])
def test_nms_matches_greedy_reference(thr, seed):
    boxes = random_boxes(300, seed)
    scores = torch.rand(300, generator=torch.Generator().manual_seed(seed + 10))
    got = ops.nms(boxes, scores, thr, block=64).tolist()  # small blocks: exercise the cross-block path
    assert got == ref_nms(boxes.numpy().tolist(), scores.numpy().tolist(), thr)
    assert got == ops.nms(boxes, scores, thr).tolist()  # block size does not change the answer


def test_nms_long_suppression_chain():
    # A row of boxes each overlapping the next: greedy keeps every other one. A one-shot
    # "suppressed by any higher box" rule would keep only the first.
    x = torch.arange(40, dtype=torch.float32) * 6
    boxes = torch.stack([x, torch.zeros(40), x + 10, torch.full((40,), 10.0)], 1)
    scores = torch.linspace(1, 0.5, 40)
    got = ops.nms(boxes, scores, 0.2).tolist()
    assert got == ref_nms(boxes.tolist(), scores.tolist(), 0.2)
    assert got == list(range(0, 40, 2))


def test_nms_degenerate_and_tied_boxes():
    boxes = torch.tensor(
        [[0, 0, 10, 10], [0, 0, 10, 10], [5, 5, 5, 5], [5, 5, 5, 5], [0, 0, 0, 10], [20, 20, 30, 30]], dtype=torch.float32
    )
    scores = torch.tensor([0.9, 0.9, 0.8, 0.8, 0.7, 0.1])
    got = ops.nms(boxes, scores, 0.5).tolist()
    # Equal scores: the earlier box wins; empty boxes (IoU 0/0) never suppress nor get suppressed.
    assert got == [0, 2, 3, 4, 5]
    assert got == ref_nms(boxes.tolist(), scores.tolist(), 0.5)
    assert ops.nms(torch.zeros((0, 4)), torch.zeros(0), 0.5).tolist() == []


def test_batched_nms_is_nms_per_class():
    boxes = random_boxes(200, 3)
    scores = torch.rand(200, generator=torch.Generator().manual_seed(4))
    classes = torch.randint(0, 5, (200,), generator=torch.Generator().manual_seed(5))
    got = ops.batched_nms(boxes, scores, classes, 0.5)
    expect = []
    for c in range(5):
        idx = (classes == c).nonzero().squeeze(1)
        expect += [int(idx[i]) for i in ref_nms(boxes[idx].tolist(), scores[idx].tolist(), 0.5)]
    assert sorted(got.tolist()) == sorted(expect)
    assert torch.all(scores[got][:-1] >= scores[got][1:])  # by decreasing score


# --------------------------------------------------------------------------------------------
# RoIAlign


@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("sampling", [0, 2])
def test_roi_align_matches_reference(aligned, sampling):
    g = torch.Generator().manual_seed(0)
    feat = torch.randn(2, 3, 12, 15, generator=g)
    scale = 0.5
    rois = torch.tensor(
        [
            [0, 2.0, 3.0, 20.0, 18.0],  # ordinary
            [1, -6.0, -4.0, 8.0, 9.0],  # crosses the top-left border
            [0, 20.0, 14.0, 40.0, 30.0],  # runs past the bottom-right border (map is 24x30 px)
            [1, 10.0, 10.0, 10.0, 10.0],  # a point: zero size
            [0, 12.0, 5.0, 11.0, 4.0],  # inverted: negative size
            [1, 0.0, 0.0, 30.0, 24.0],  # the whole map: larger sampling grid
            [0, 50.0, 50.0, 60.0, 60.0],  # entirely outside
        ]
    )
    got = ops.roi_align(feat, rois, 4, scale, sampling, aligned=aligned)
    expect = ref_roi_align(feat.double().numpy(), rois.double().numpy(), 4, scale, sampling, aligned)
    np.testing.assert_allclose(got.numpy(), expect, atol=1e-5, rtol=1e-5)


def test_roi_align_chunks_and_groups_agree():
    g = torch.Generator().manual_seed(1)
    feat = torch.randn(1, 4, 20, 20, generator=g)
    xy = torch.rand(50, 2, generator=g) * 60
    wh = torch.rand(50, 2, generator=g) * 40
    rois = torch.cat([torch.zeros(50, 1), xy, xy + wh], 1)
    whole = ops.roi_align(feat, rois, 7, 0.25, 0)
    chunked = ops.roi_align(feat, rois, 7, 0.25, 0, max_elements=500)
    one_by_one = torch.cat([ops.roi_align(feat, rois[i : i + 1], 7, 0.25, 0) for i in range(50)])
    torch.testing.assert_close(whole, chunked)
    torch.testing.assert_close(whole, one_by_one)
    assert ops.roi_align(feat, torch.zeros((0, 5)), 7, 0.25).shape == (0, 4, 7, 7)


# --------------------------------------------------------------------------------------------
# Box coding and mask paste


def test_apply_deltas_inverts_get_deltas_and_clamps():
    src = random_boxes(20, 7) + torch.tensor([0, 0, 1, 1])
    dst = random_boxes(20, 8) + torch.tensor([0, 0, 1, 1])
    w = (10.0, 10.0, 5.0, 5.0)
    torch.testing.assert_close(ops.apply_deltas(ops.get_deltas(src, dst, w), src, w), dst, atol=1e-4, rtol=1e-4)
    huge = torch.tensor([[0.0, 0.0, 100.0, 100.0]])
    box = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    out = ops.apply_deltas(huge, box)
    assert out[0, 2] - out[0, 0] == pytest.approx(10 * 1000 / 16, rel=1e-5)  # exp clamped at log(1000/16)
    two_classes = ops.apply_deltas(torch.zeros(1, 8), box)
    assert two_classes.shape == (1, 8) and torch.equal(two_classes[0, :4], box[0])


def test_paste_masks_full_and_border_boxes():
    masks = torch.ones(3, 28, 28)
    boxes = torch.tensor([[2.0, 3.0, 12.0, 9.0], [-5.0, -5.0, 4.0, 4.0], [15.0, 10.0, 30.0, 30.0]])
    out = ops.paste_masks(masks, boxes, 16, 20)
    assert out.shape == (3, 16, 20) and out.dtype == torch.bool
    # A full mask fills exactly the pixels whose centres lie inside its box (clipped to the image).
    ys, xs = torch.meshgrid(torch.arange(16) + 0.5, torch.arange(20) + 0.5, indexing="ij")
    for k, (x0, y0, x1, y1) in enumerate(boxes.tolist()):
        inside = (xs > x0) & (xs < x1) & (ys > y0) & (ys < y1)
        assert torch.equal(out[k], inside)
    assert ops.paste_masks(torch.zeros(0, 28, 28), torch.zeros(0, 4), 5, 5).shape == (0, 5, 5)
