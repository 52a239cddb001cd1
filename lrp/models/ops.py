"""Detection operators in plain, vectorised PyTorch: box IoU, NMS, RoIAlign, box coding, mask paste.

They reproduce the semantics of torchvision's `nms`, `batched_nms` and `roi_align(aligned=True)`
and of Detectron2's `Box2BoxTransform` and `paste_masks_in_image`, which the R-CNN models were
trained and evaluated with. No Python loop runs per box: NMS loops over blocks of boxes and
RoIAlign over the few distinct sampling-grid sizes.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# exp() of a box delta is clamped at this value (Detectron2's default `scale_clamp`).
DEFAULT_SCALE_CLAMP = math.log(1000.0 / 16)


# --------------------------------------------------------------------------------------------
# Boxes (x1, y1, x2, y2)


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU, len(a) x len(b), computed as torchvision's NMS kernel does.

    Two empty boxes give 0/0 = NaN, which compares False with any threshold, so degenerate boxes
    never suppress anything (as in torchvision).
    """
    x1 = torch.maximum(a[:, None, 0], b[None, :, 0])
    y1 = torch.maximum(a[:, None, 1], b[None, :, 1])
    x2 = torch.minimum(a[:, None, 2], b[None, :, 2])
    y2 = torch.minimum(a[:, None, 3], b[None, :, 3])
    inter = (x2 - x1).clamp_(min=0) * (y2 - y1).clamp_(min=0)
    return inter / (box_area(a)[:, None] + box_area(b)[None, :] - inter)


def clip_boxes(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    x1 = boxes[:, 0].clamp(0, width)
    y1 = boxes[:, 1].clamp(0, height)
    x2 = boxes[:, 2].clamp(0, width)
    y2 = boxes[:, 3].clamp(0, height)
    return torch.stack((x1, y1, x2, y2), dim=1)


def nonempty(boxes: torch.Tensor) -> torch.Tensor:
    return (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])


# --------------------------------------------------------------------------------------------
# Non-maximum suppression


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float, block: int = 1024) -> torch.Tensor:
    """Exact greedy NMS: indices of the kept boxes, by decreasing score (torchvision.ops.nms).

    Greedy NMS keeps box i (in score order) iff no earlier *kept* box overlaps it by more than
    the threshold. That recurrence has exactly one solution, which we reach without a loop per
    box: boxes are taken in blocks; a block is first culled by the kept boxes of earlier blocks
    (one IoU matrix), then the recurrence inside the block is iterated as a whole (Jacobi style)
    until it stops changing. After k sweeps the first k boxes of the block are final, and
    suppression chains are short in practice, so a handful of sweeps suffices.
    """
    n = len(boxes)
    if n == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    # Stable sort: among equal scores the earlier box wins (a fixed, documented tie rule).
    order = torch.sort(scores, descending=True, stable=True).indices
    boxes = boxes[order].float()
    keep = torch.zeros(n, dtype=torch.bool, device=boxes.device)
    for start in range(0, n, block):
        stop = min(n, start + block)
        b = boxes[start:stop]
        alive = torch.ones(stop - start, dtype=torch.bool, device=boxes.device)
        if start > 0:
            kept = boxes[:start][keep[:start]]
            if len(kept):
                alive = ~(box_iou(kept, b) > iou_threshold).any(0)
        # over[j, i]: earlier box j would suppress later box i.
        over = torch.triu(box_iou(b, b) > iou_threshold, diagonal=1) & alive[:, None]
        over_f = over.to(torch.float32)
        state = alive
        while True:
            new = alive & ~((state.to(torch.float32) @ over_f) > 0)
            if torch.equal(new, state):
                break
            state = new
        keep[start:stop] = state
    return order[keep]


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, classes: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy NMS done independently per class (torchvision.ops.batched_nms), by decreasing score.

    One `nms` per class present (a loop over at most 80 classes, not over boxes) rather than
    torchvision's coordinate-offset trick: IoUs stay exact and no cross-class pairs are computed.
    """
    if len(boxes) == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    present = torch.unique(classes)
    if len(present) == 1:
        return nms(boxes, scores, iou_threshold)
    kept = []
    for c in present:
        idx = (classes == c).nonzero().squeeze(1)
        kept.append(idx[nms(boxes[idx], scores[idx], iou_threshold)])
    keep = torch.cat(kept)
    return keep[torch.sort(scores[keep], descending=True, stable=True).indices]


# --------------------------------------------------------------------------------------------
# RoIAlign


def roi_align(
    features: torch.Tensor,
    rois: torch.Tensor,
    output_size: int | tuple[int, int],
    spatial_scale: float,
    sampling_ratio: int = 0,
    aligned: bool = True,
    max_elements: int = 1 << 25,
) -> torch.Tensor:
    """torchvision.ops.roi_align on N x C x H x W features and R x 5 rois (batch index, x1, y1, x2, y2).

    Each output bin averages a grid of bilinear samples; with sampling_ratio <= 0 the grid adapts
    to the RoI size (ceil(roi_size / output_size) per axis). RoIs are grouped by grid size, and
    each group is sampled with one `grid_sample` per image. torchvision's border rule maps onto
    `padding_mode="border"` (a sample within one pixel outside the map takes the edge value)
    plus a mask that zeroes samples further out.
    """
    ph, pw = (output_size, output_size) if isinstance(output_size, int) else output_size
    n, c, h, w = features.shape
    r = len(rois)
    out = features.new_zeros((r, c, ph, pw))
    if r == 0:
        return out
    rois = rois.to(torch.float32)
    offset = 0.5 if aligned else 0.0
    x1 = rois[:, 1] * spatial_scale - offset
    y1 = rois[:, 2] * spatial_scale - offset
    roi_w = rois[:, 3] * spatial_scale - offset - x1
    roi_h = rois[:, 4] * spatial_scale - offset - y1
    if not aligned:
        roi_w = roi_w.clamp(min=1.0)
        roi_h = roi_h.clamp(min=1.0)
    bin_w = roi_w / pw
    bin_h = roi_h / ph
    if sampling_ratio > 0:
        grid_h = torch.full((r,), sampling_ratio, dtype=torch.long, device=rois.device)
        grid_w = grid_h.clone()
    else:
        grid_h = torch.ceil(roi_h / ph).long()
        grid_w = torch.ceil(roi_w / pw).long()
    batch = rois[:, 0].long()
    features32 = features.float()  # sampling weights are float32; a no-op for float32 maps
    pairs = torch.stack((grid_h, grid_w), 1)
    for gh, gw in torch.unique(pairs, dim=0).tolist():
        if gh <= 0 or gw <= 0:
            continue  # an empty grid averages nothing: zeros, as torchvision gives
        idx = ((grid_h == gh) & (grid_w == gw)).nonzero().squeeze(1)
        # Sample offsets inside the RoI, in bins: bin index + (i + 0.5) / grid, per axis.
        fy = torch.arange(ph * gh, device=rois.device, dtype=torch.float32)
        fx = torch.arange(pw * gw, device=rois.device, dtype=torch.float32)
        fy = fy.div(gh, rounding_mode="floor") + (fy.remainder(gh) + 0.5) / gh
        fx = fx.div(gw, rounding_mode="floor") + (fx.remainder(gw) + 0.5) / gw
        chunk = max(1, max_elements // max(1, ph * gh * pw * gw * c))
        for b in torch.unique(batch[idx]).tolist():
            in_image = idx[batch[idx] == b]
            for s in range(0, len(in_image), chunk):
                sel = in_image[s : s + chunk]
                ys = y1[sel, None] + fy[None, :] * bin_h[sel, None]  # k x (ph*gh)
                xs = x1[sel, None] + fx[None, :] * bin_w[sel, None]  # k x (pw*gw)
                vals = _sample(features32[b : b + 1], ys, xs)  # k x C x (ph*gh) x (pw*gw)
                vals = vals.view(len(sel), c, ph, gh, pw, gw).sum(dim=(3, 5)) / (gh * gw)
                out[sel] = vals.to(out.dtype)
    return out


def _sample(feature: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
    """Bilinear samples of a 1 x C x H x W map at the outer products of ys (k x Y) and xs (k x X)."""
    _, c, h, w = feature.shape
    k, ny, nx = ys.shape[0], ys.shape[1], xs.shape[1]
    # align_corners=True maps -1/+1 to the centres of the first/last pixel: pixel index = coordinate.
    gy = ys * (2.0 / max(h - 1, 1)) - 1.0
    gx = xs * (2.0 / max(w - 1, 1)) - 1.0
    grid = torch.stack((gx[:, None, :].expand(k, ny, nx), gy[:, :, None].expand(k, ny, nx)), dim=-1)
    vals = F.grid_sample(
        feature, grid.reshape(1, k * ny, nx, 2), mode="bilinear", padding_mode="border", align_corners=True
    )
    vals = vals.view(c, k, ny, nx).transpose(0, 1)
    inside = ((ys >= -1.0) & (ys <= h))[:, :, None] & ((xs >= -1.0) & (xs <= w))[:, None, :]
    return vals * inside[:, None].to(vals.dtype)


# --------------------------------------------------------------------------------------------
# Box coding (Detectron2's Box2BoxTransform)


def apply_deltas(
    deltas: torch.Tensor,
    boxes: torch.Tensor,
    weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0),
    scale_clamp: float = DEFAULT_SCALE_CLAMP,
) -> torch.Tensor:
    """Decode R x (k*4) deltas (dx, dy, dw, dh per class) against R x 4 boxes into R x (k*4) boxes."""
    deltas = deltas.float()
    boxes = boxes.to(deltas.dtype)
    widths = boxes[:, 2] - boxes[:, 0]
    heights = boxes[:, 3] - boxes[:, 1]
    ctr_x = boxes[:, 0] + 0.5 * widths
    ctr_y = boxes[:, 1] + 0.5 * heights
    wx, wy, ww, wh = weights
    dx = deltas[:, 0::4] / wx
    dy = deltas[:, 1::4] / wy
    dw = (deltas[:, 2::4] / ww).clamp(max=scale_clamp)
    dh = (deltas[:, 3::4] / wh).clamp(max=scale_clamp)
    pred_ctr_x = dx * widths[:, None] + ctr_x[:, None]
    pred_ctr_y = dy * heights[:, None] + ctr_y[:, None]
    pred_w = torch.exp(dw) * widths[:, None]
    pred_h = torch.exp(dh) * heights[:, None]
    x1 = pred_ctr_x - 0.5 * pred_w
    y1 = pred_ctr_y - 0.5 * pred_h
    x2 = pred_ctr_x + 0.5 * pred_w
    y2 = pred_ctr_y + 0.5 * pred_h
    return torch.stack((x1, y1, x2, y2), dim=-1).reshape(deltas.shape)


def get_deltas(src: torch.Tensor, dst: torch.Tensor, weights=(1.0, 1.0, 1.0, 1.0)) -> torch.Tensor:
    """The inverse of apply_deltas (used by the tests and for training-style targets)."""
    sw, sh = src[:, 2] - src[:, 0], src[:, 3] - src[:, 1]
    sx, sy = src[:, 0] + 0.5 * sw, src[:, 1] + 0.5 * sh
    tw, th = dst[:, 2] - dst[:, 0], dst[:, 3] - dst[:, 1]
    tx, ty = dst[:, 0] + 0.5 * tw, dst[:, 1] + 0.5 * th
    wx, wy, ww, wh = weights
    return torch.stack((wx * (tx - sx) / sw, wy * (ty - sy) / sh, ww * torch.log(tw / sw), wh * torch.log(th / sh)), 1)


# --------------------------------------------------------------------------------------------
# Masks


def paste_masks(masks: torch.Tensor, boxes: torch.Tensor, height: int, width: int, threshold: float = 0.5, chunk: int = 16) -> torch.Tensor:
    """Paste R x M x M mask probabilities into R x height x width boolean masks (Detectron2).

    Pixel centres sit at +0.5; each box maps to [-1, 1] for `grid_sample(align_corners=False)`
    over the whole image, as Detectron2 does on the GPU (its CPU path crops a window around each
    box, which can cut off the soft border of large masks); a pixel is in the mask at >= 0.5.
    """
    r = len(masks)
    out = torch.zeros((r, height, width), dtype=torch.bool, device=masks.device)
    if r == 0:
        return out
    boxes = boxes.float()
    img_y = torch.arange(height, device=masks.device, dtype=torch.float32) + 0.5
    img_x = torch.arange(width, device=masks.device, dtype=torch.float32) + 0.5
    for s in range(0, r, chunk):
        m = masks[s : s + chunk, None].float()
        b = boxes[s : s + chunk]
        k = len(b)
        gy = (img_y[None, :] - b[:, 1:2]) / (b[:, 3:4] - b[:, 1:2]) * 2 - 1
        gx = (img_x[None, :] - b[:, 0:1]) / (b[:, 2:3] - b[:, 0:1]) * 2 - 1
        grid = torch.stack((gx[:, None, :].expand(k, height, width), gy[:, :, None].expand(k, height, width)), dim=3)
        out[s : s + chunk] = F.grid_sample(m, grid, align_corners=False)[:, 0] >= threshold
    return out
