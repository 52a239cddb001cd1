"""Per-person scores: OKS of each ground-truth person against the pose matched to it, and the box
IoU of the detection matched to it. No torch here (used by `lrp draw` and `lrp report`).

The formulas are pycocotools' own (`COCOeval.computeOks`, `maskUtils.iou` for boxes), so a
person's OKS here is the number COCOeval thresholds; tests/test_draw.py holds them to it. The
matching is COCOeval's greedy one (predictions by descending score, each takes the unmatched
person it overlaps most) without a threshold, so that a poor pose still shows how poor it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lrp.document import person_category_id

from lrp.keypoints import COCO_17

COCO_SIGMAS = np.array(COCO_17.sigmas)  # pycocotools `Params.kpt_oks_sigmas`


@dataclass(frozen=True)
class Match:
    """The result matched to one ground-truth person: its index in the results list and score."""

    index: int
    value: float  # OKS for poses, IoU for detections


def sigmas_of(doc: dict, name: str = "document") -> np.ndarray:
    """OKS sigmas of the person category (lrp.keypoints.oks_sigmas: its own, else its set's)."""
    from lrp.keypoints import oks_sigmas

    return np.asarray(oks_sigmas(doc, name), dtype=float)


def oks(gt: dict, keypoints, sigmas: np.ndarray = COCO_SIGMAS) -> float:
    """pycocotools' `computeOks` for one ground-truth annotation and one predicted pose."""
    g = np.asarray(gt["keypoints"], dtype=float)
    d = np.asarray(keypoints, dtype=float)
    xg, yg, vg = g[0::3], g[1::3], g[2::3]
    xd, yd = d[0::3], d[1::3]
    variances = (sigmas * 2) ** 2
    if np.count_nonzero(vg > 0) > 0:
        dx, dy = xd - xg, yd - yg
    else:  # no visible joint: distance to a box twice the size of the person's
        bx, by, bw, bh = gt["bbox"]
        z = np.zeros(len(sigmas))
        dx = np.max((z, (bx - bw) - xd), axis=0) + np.max((z, xd - (bx + 2 * bw)), axis=0)
        dy = np.max((z, (by - bh) - yd), axis=0) + np.max((z, yd - (by + 2 * bh)), axis=0)
    e = (dx**2 + dy**2) / variances / (gt["area"] + np.spacing(1)) / 2
    if np.count_nonzero(vg > 0) > 0:
        e = e[vg > 0]
    return float(np.sum(np.exp(-e)) / e.shape[0])


def box_iou(gt: dict, box) -> float:
    """pycocotools' box IoU of a prediction against a ground-truth box (crowd: over the prediction)."""
    gx, gy, gw, gh = gt["bbox"]
    dx, dy, dw, dh = box
    iw = max(0.0, min(gx + gw, dx + dw) - max(gx, dx))
    ih = max(0.0, min(gy + gh, dy + dh) - max(gy, dy))
    inter = iw * ih
    union = dw * dh if gt.get("iscrowd") else dw * dh + gw * gh - inter
    return float(inter / union) if union > 0 else 0.0


def _greedy(people: list[dict], results: list[tuple[int, dict]], score) -> dict[int, Match]:
    """COCOeval's matching order: results by descending score (stable), each to its best free person."""
    order = sorted(results, key=lambda ir: -float(ir[1]["score"]))
    taken: dict[int, Match] = {}
    for index, r in order:
        best, best_value = None, 0.0
        for a in people:
            if a["id"] in taken:
                continue
            value = score(a, r)
            if value > best_value:
                best, best_value = a["id"], value
        if best is not None:
            taken[best] = Match(index, best_value)
    return taken


def _by_image(items: list, key: str = "image_id") -> dict[int, list]:
    out: dict[int, list] = {}
    for item in items:
        out.setdefault(item[key], []).append(item)
    return out


def match_poses(doc: dict) -> dict[int, Match]:
    """Annotation id -> the pose in `lrp.poses` matched to that person (people with keypoints)."""
    cat = person_category_id(doc)
    sigmas = sigmas_of(doc)
    people = [
        a for a in doc["annotations"]
        if a.get("category_id") == cat and not a.get("iscrowd") and a.get("num_keypoints", 0) > 0 and a.get("keypoints")
    ]
    poses = [(i, p) for i, p in enumerate(doc["lrp"].get("poses") or []) if p.get("keypoints")]
    out: dict[int, Match] = {}
    results_by_image: dict[int, list] = {}
    for i, p in poses:
        results_by_image.setdefault(p["image_id"], []).append((i, p))
    for image_id, anns in _by_image(people).items():
        out.update(_greedy(anns, results_by_image.get(image_id, []), lambda a, r: oks(a, r["keypoints"], sigmas)))
    return out


def match_detections(doc: dict) -> dict[int, Match]:
    """Annotation id -> the detection in `lrp.detections` matched to that (non-crowd) person."""
    cat = person_category_id(doc)
    people = [a for a in doc["annotations"] if a.get("category_id") == cat and not a.get("iscrowd") and a.get("bbox")]
    results_by_image: dict[int, list] = {}
    for i, d in enumerate(doc["lrp"].get("detections") or []):
        if d.get("bbox"):
            results_by_image.setdefault(d["image_id"], []).append((i, d))
    out: dict[int, Match] = {}
    for image_id, anns in _by_image(people).items():
        out.update(_greedy(anns, results_by_image.get(image_id, []), lambda a, r: box_iou(a, r["bbox"])))
    return out
