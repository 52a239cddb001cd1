"""Frames and the annotations in them (DESIGN.md section 1). No torch here.

An xform `[sx, sy, tx, ty]` maps origin coordinates to a frame: `x' = sx*x + tx`,
`y' = sy*y + ty`. Coordinates are continuous (pixel i covers [i, i+1)), so a corner-aligned
resize is a pure scale and a strided decimation `x[::k]` adds the offset `(1 - 1/k) / 2`.
"""

from __future__ import annotations

import copy
import math
from typing import Sequence

import numpy as np

Xform = Sequence[float]


def compose(first: Xform, then: Xform) -> list[float]:
    """The xform of applying `first`, then `then`."""
    sx1, sy1, tx1, ty1 = first
    sx2, sy2, tx2, ty2 = then
    return [sx2 * sx1, sy2 * sy1, sx2 * tx1 + tx2, sy2 * ty1 + ty2]


def invert(xf: Xform) -> list[float]:
    sx, sy, tx, ty = xf
    return [1.0 / sx, 1.0 / sy, -tx / sx, -ty / sy]


def resize_xform(old_size: tuple[int, int], new_size: tuple[int, int]) -> list[float]:
    """Corner-aligned resize from (w, h) to (w', h'): per-axis factors from the real sizes."""
    (w, h), (nw, nh) = old_size, new_size
    return [nw / w, nh / h, 0.0, 0.0]


def strided_xform(step: int) -> list[float]:
    """`x[::step]`: output pixel i is input pixel step*i, so centres map i*step+0.5 -> i+0.5."""
    return [1.0 / step, 1.0 / step, 0.5 * (1.0 - 1.0 / step), 0.5 * (1.0 - 1.0 / step)]


def output_size(size: int, scale: float) -> int:
    """MATLAB imresize: ceil(size * scale), guarding against 0.1*30 = 3.0000000000000004."""
    return max(1, int(math.ceil(round(size * scale, 9))))


# --------------------------------------------------------------------------------------------
# Points, boxes, polygons


def map_points(xs, ys, xf: Xform):
    sx, sy, tx, ty = xf
    return [sx * x + tx for x in xs], [sy * y + ty for y in ys]


def map_bbox(bbox: Sequence[float], xf: Xform) -> list[float]:
    sx, sy, tx, ty = xf
    x, y, w, h = bbox
    return [x * sx + tx, y * sy + ty, w * sx, h * sy]


def map_polygon(poly: Sequence[float], xf: Xform) -> list[float]:
    sx, sy, tx, ty = xf
    out = list(poly)
    out[0::2] = [sx * x + tx for x in poly[0::2]]
    out[1::2] = [sy * y + ty for y in poly[1::2]]
    return out


def map_gt_keypoints(kps: Sequence[float], xf: Xform) -> list[float]:
    """GT keypoints [x, y, v]*K: v > 0 moves, v = 0 stays (0, 0, 0) as COCO writes it."""
    sx, sy, tx, ty = xf
    out = list(kps)
    for i in range(0, len(kps), 3):
        if kps[i + 2] > 0:
            out[i] = sx * kps[i] + tx
            out[i + 1] = sy * kps[i + 1] + ty
    return out


def map_result_keypoints(kps: Sequence[float], xf: Xform) -> list[float]:
    """Predicted keypoints [x, y, score]*K: every point moves, scores stay."""
    sx, sy, tx, ty = xf
    out = list(kps)
    out[0::3] = [sx * x + tx for x in kps[0::3]]
    out[1::3] = [sy * y + ty for y in kps[1::3]]
    return out


# --------------------------------------------------------------------------------------------
# Masks (RLE): decoded, resampled nearest at the new pixel centres, re-encoded


def map_rle(rle: dict, xf: Xform, new_size: tuple[int, int]) -> dict:
    from pycocotools import mask as mask_utils

    h, w = rle["size"]
    if isinstance(rle.get("counts"), list):
        rle = mask_utils.frPyObjects(rle, h, w)
    mask = mask_utils.decode(rle)
    resized = resample_mask_nearest(mask, xf, new_size)
    out = mask_utils.encode(np.asfortranarray(resized))
    out["counts"] = out["counts"].decode("ascii")
    return out


def resample_mask_nearest(mask: np.ndarray, xf: Xform, new_size: tuple[int, int]) -> np.ndarray:
    """Each new pixel takes the old pixel under its centre (clamped at the borders)."""
    sx, sy, tx, ty = xf
    nw, nh = new_size
    h, w = mask.shape
    cols = np.clip(np.floor((np.arange(nw) + 0.5 - tx) / sx), 0, w - 1).astype(np.int64)
    rows = np.clip(np.floor((np.arange(nh) + 0.5 - ty) / sy), 0, h - 1).astype(np.int64)
    return mask[rows[:, None], cols[None, :]].astype(np.uint8)


def map_segmentation(seg, xf: Xform, new_size: tuple[int, int]):
    if isinstance(seg, list):
        return [map_polygon(p, xf) for p in seg]
    if isinstance(seg, dict):
        return map_rle(seg, xf, new_size)
    return seg


# --------------------------------------------------------------------------------------------
# Whole annotations and results


def map_annotation(ann: dict, xf: Xform, new_size: tuple[int, int]) -> dict:
    """GT annotation into a new frame: ids, iscrowd and num_keypoints unchanged."""
    sx, sy = xf[0], xf[1]
    out = copy.deepcopy(ann)
    if "bbox" in ann:
        out["bbox"] = map_bbox(ann["bbox"], xf)
    if "head_box" in ann:  # MPII's head rectangle, PCKh's norm (lrp pck)
        out["head_box"] = map_bbox(ann["head_box"], xf)
    if "area" in ann:
        out["area"] = ann["area"] * sx * sy
    if "segmentation" in ann:
        out["segmentation"] = map_segmentation(ann["segmentation"], xf, new_size)
    if "keypoints" in ann:
        out["keypoints"] = map_gt_keypoints(ann["keypoints"], xf)
    if "lrp_crop" in ann:
        out["lrp_crop"] = map_crop(ann["lrp_crop"], xf)
    return out


def map_crop(crop: dict, xf: Xform) -> dict:
    """An official crop {center, size} (lrp mpii): the centre moves as a keypoint does, the size
    scales by the frame's factors."""
    sx, sy, tx, ty = xf
    (x, y), (w, h) = crop["center"], crop["size"]
    return {**crop, "center": [sx * x + tx, sy * y + ty], "size": [w * sx, h * sy]}


def map_result(res: dict, xf: Xform, new_size: tuple[int, int]) -> dict:
    """A detection or keypoint result into a new frame."""
    sx, sy = xf[0], xf[1]
    out = copy.deepcopy(res)
    if "bbox" in res:
        out["bbox"] = map_bbox(res["bbox"], xf)
    if "area" in res:
        out["area"] = res["area"] * sx * sy
    if "segmentation" in res:
        out["segmentation"] = map_segmentation(res["segmentation"], xf, new_size)
    if "keypoints" in res:
        out["keypoints"] = map_result_keypoints(res["keypoints"], xf)
    return out


def reframe_document(doc: dict, new_sizes: dict[int, tuple[int, int]], step_xforms: dict[int, Xform], new_names: dict[int, str]) -> None:
    """Move a whole document (in place) into new frames, one per image.

    `new_sizes[id] = (w, h)`, `step_xforms[id]` maps the current frame to the new one,
    `new_names[id]` is the new file name relative to the new image root.
    """
    for img in doc["images"]:
        iid = img["id"]
        xf = step_xforms[iid]
        img["lrp"]["xform"] = compose(img["lrp"]["xform"], xf)
        img["width"], img["height"] = new_sizes[iid]
        img["file_name"] = new_names[iid]
    doc["annotations"] = [
        map_annotation(a, step_xforms[a["image_id"]], new_sizes[a["image_id"]]) for a in doc["annotations"]
    ]
    for key in ("detections", "poses"):
        doc["lrp"][key] = [
            map_result(r, step_xforms[r["image_id"]], new_sizes[r["image_id"]]) for r in doc["lrp"].get(key) or []
        ]
