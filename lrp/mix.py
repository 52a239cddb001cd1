"""`lrp mix`: per person, keypoints from the SR image or from the original, by segmentation area.

The paper's Table 9: Mask R-CNN on the SR image gives every person a box and a mask area. The
area is converted to the original (LR) frame; at or below the threshold the person's keypoints
come from the SR image, above it from the original image, estimated in the same box mapped back.

Two documents go in, both describing the same images in two frames:
  SR_DOC  the SR stage with `lrp.detections` (boxes + mask areas) and `lrp.poses` estimated on them;
  LR_DOC  the original stage with `lrp.poses` estimated on the SAME detections mapped into its
          frame (make it with `lrp mix --boxes-only SR_DOC LR_DOC | lrp pose --boxes detections`).
A person is one SR detection; poses are tied to it through their `bbox`. The result is LR_DOC with
the mixed poses, all in its frame, ready for `lrp evaluate`. No torch here.
"""

from __future__ import annotations

import math
from typing import Annotated, Optional

import numpy as np
import typer

from lrp.document import add_history, derive, images_by_id
from lrp.inputs import load_document
from lrp.outputs import write_document
from lrp.errors import LrpError, UsageError
from lrp.geometry import compose, invert, map_result
from lrp.options import Output, Quiet

AREA_SOURCES = ("detections", "box", "gt")


# --------------------------------------------------------------------------------------------
# Library


def frame_map(src_doc: dict, dst_doc: dict) -> dict[int, list[float]]:
    """Per image id, the xform from src's frame to dst's frame (both from the same origin)."""
    src, dst = images_by_id(src_doc), images_by_id(dst_doc)
    if set(src) != set(dst):
        only = sorted(set(src) ^ set(dst))[:3]
        raise LrpError(f"the two documents describe different images (e.g. image id {only[0]})")
    out = {}
    for iid, img in src.items():
        a, b = img["lrp"]["origin"], dst[iid]["lrp"]["origin"]
        if (a["width"], a["height"]) != (b["width"], b["height"]):
            raise LrpError(f"image {iid}: the two documents come from different originals")
        out[iid] = compose(invert(img["lrp"]["xform"]), dst[iid]["lrp"]["xform"])
    return out


def transfer_detections(src_doc: dict, dst_doc: dict) -> dict:
    """dst_doc with src_doc's detections mapped into its frame (poses dropped: they would be stale)."""
    xfs = frame_map(src_doc, dst_doc)
    dst_images = images_by_id(dst_doc)
    out = derive(dst_doc)
    out["lrp"]["detections"] = [
        map_result(d, xfs[d["image_id"]], (dst_images[d["image_id"]]["width"], dst_images[d["image_id"]]["height"]))
        for d in src_doc["lrp"]["detections"]
    ]
    out["lrp"]["poses"] = []
    return out


def _box_index(results: list[dict]) -> dict[int, np.ndarray]:
    by_image: dict[int, list] = {}
    for r in results:
        by_image.setdefault(r["image_id"], []).append(r["bbox"])
    return {k: np.asarray(v, dtype=np.float64).reshape(-1, 4) for k, v in by_image.items()}


def _match(box, candidates: np.ndarray | None) -> int | None:
    """Index of the candidate box equal to `box` (up to rounding), else of the best IoU >= 0.9."""
    if candidates is None or len(candidates) == 0:
        return None
    b = np.asarray(box, dtype=np.float64)
    close = np.all(np.abs(candidates - b) <= 1e-4 * (1 + np.abs(b)), axis=1)
    if close.any():
        return int(np.argmax(close))
    ious = _iou(b, candidates)
    best = int(np.argmax(ious))
    return best if ious[best] >= 0.9 else None


def _iou(b: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x1 = np.maximum(b[0], boxes[:, 0])
    y1 = np.maximum(b[1], boxes[:, 1])
    x2 = np.minimum(b[0] + b[2], boxes[:, 0] + boxes[:, 2])
    y2 = np.minimum(b[1] + b[3], boxes[:, 1] + boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    union = b[2] * b[3] + boxes[:, 2] * boxes[:, 3] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def person_areas(sr_doc: dict, lr_doc: dict, areas: str = "detections", area_frame: str = "lr") -> dict:
    """Area of every SR detection in the chosen frame, keyed by (image id, detection index)."""
    if areas not in AREA_SOURCES:
        raise UsageError(f"--areas {areas!r}: expected one of {', '.join(AREA_SOURCES)}")
    to_lr = frame_map(sr_doc, lr_doc)
    factor = {iid: (xf[0] * xf[1] if area_frame == "lr" else 1.0) for iid, xf in to_lr.items()}
    dets = sr_doc["lrp"]["detections"]
    gt_boxes = _box_index([a for a in sr_doc["annotations"] if not a.get("iscrowd")]) if areas == "gt" else {}
    gt_anns: dict[int, list] = {}
    for a in sr_doc["annotations"]:
        if not a.get("iscrowd"):
            gt_anns.setdefault(a["image_id"], []).append(a)
    per_image_index: dict[int, int] = {}
    out = {}
    for det in dets:
        iid = det["image_id"]
        k = per_image_index.get(iid, 0)
        per_image_index[iid] = k + 1
        if areas == "detections":
            if "area" not in det:
                raise LrpError(
                    f"image {iid}: SR detection {k} has no mask 'area' (use a mask model such as "
                    "mask-rcnn-r101-fpn, or --areas box / --areas gt)"
                )
            area = det["area"]
        elif areas == "box":
            area = det["bbox"][2] * det["bbox"][3]
        else:
            j = _match(det["bbox"], gt_boxes.get(iid)) if iid in gt_boxes else None
            if j is None:
                best = _iou(np.asarray(det["bbox"], float), gt_boxes[iid]) if iid in gt_boxes else np.zeros(0)
                j = int(np.argmax(best)) if best.size and best.max() >= 0.5 else None
            area = gt_anns[iid][j]["area"] if j is not None else det.get("area", det["bbox"][2] * det["bbox"][3])
        out[(iid, k)] = area * factor[iid]
    return out


def mix_documents(
    sr_doc: dict, lr_doc: dict, threshold: float, *, areas: str = "detections", area_frame: str = "lr"
) -> tuple[dict, dict]:
    """The mixed document (in LR_DOC's frame) and counts of people taken from each source."""
    if not sr_doc["lrp"]["detections"]:
        raise LrpError("SR_DOC has no lrp.detections: run `lrp detect` on it first")
    for name, d in (("SR_DOC", sr_doc), ("LR_DOC", lr_doc)):
        if not d["lrp"]["poses"]:
            raise LrpError(f"{name} has no lrp.poses: run `lrp pose --boxes detections` on it first")
    area_of = person_areas(sr_doc, lr_doc, areas, area_frame)
    to_lr = frame_map(sr_doc, lr_doc)
    lr_images = images_by_id(lr_doc)
    sr_det_boxes = _box_index(sr_doc["lrp"]["detections"])

    def det_index(iid: int, sr_box) -> int | None:
        return _match(sr_box, sr_det_boxes.get(iid))

    mixed, counts = [], {"sr": 0, "lr": 0, "unmatched": 0}
    for p in sr_doc["lrp"]["poses"]:
        iid = p["image_id"]
        k = det_index(iid, p["bbox"])
        if k is None:
            counts["unmatched"] += 1
            continue
        if area_of[(iid, k)] <= threshold:
            img = lr_images[iid]
            q = map_result(p, to_lr[iid], (img["width"], img["height"]))
            q["lrp_source"] = "sr"
            mixed.append(q)
            counts["sr"] += 1
    to_sr = {iid: invert(xf) for iid, xf in to_lr.items()}
    for p in lr_doc["lrp"]["poses"]:
        iid = p["image_id"]
        sx, sy, tx, ty = to_sr[iid]
        x, y, w, h = p["bbox"]
        k = det_index(iid, [x * sx + tx, y * sy + ty, w * sx, h * sy])
        if k is None:
            counts["unmatched"] += 1
            continue
        if area_of[(iid, k)] > threshold:
            q = dict(p)
            q["lrp_source"] = "lr"
            mixed.append(q)
            counts["lr"] += 1
    out = derive(lr_doc)
    out["lrp"]["poses"] = mixed
    return out, counts


def split_images(image_ids, seed: int = 0, selection_fraction: float = 0.5) -> tuple[set, set]:
    """A seeded split into a selection half (to choose a threshold) and a report half."""
    ids = sorted(image_ids)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(ids))
    n_sel = int(round(len(ids) * selection_fraction))
    sel = {ids[i] for i in order[:n_sel]}
    return sel, set(ids) - sel


def restrict(doc: dict, image_ids: set) -> dict:
    """A copy of `doc` with only these images (and their annotations and results)."""
    from lrp.outputs import drop_images

    return drop_images(derive(doc), {img["id"] for img in doc["images"]} - set(image_ids))


def sweep_thresholds(sr_doc, lr_doc, thresholds, *, areas="detections", area_frame="lr", seed=0):
    """Keypoint AP for each threshold on the selection split and on the report split.

    The threshold is chosen on the selection split only; the report split is what a paper would
    publish, so no number reported was tuned on the images it is reported on.
    """
    sel, rep = split_images([i["id"] for i in lr_doc["images"]], seed)
    if not sel or not rep:
        raise LrpError("--threshold auto needs at least two images (one to choose on, one to report on)")
    curve = []
    for t in thresholds:
        mixed, _ = mix_documents(sr_doc, lr_doc, t, areas=areas, area_frame=area_frame)
        curve.append({"threshold": t, "selection_AP": keypoint_ap(restrict(mixed, sel)), "report_AP": keypoint_ap(restrict(mixed, rep))})
    best = max(curve, key=lambda r: (r["selection_AP"], -r["threshold"]))
    return best, curve, (sel, rep)


def keypoint_ap(doc: dict) -> float:
    """Keypoint AP of a document's poses (pycocotools), 0 where nothing can be matched."""
    from lrp.cocoeval import run_cocoeval

    E = run_cocoeval(doc, "keypoints", name="mixed")
    return max(float(E.stats[0]), 0.0) if E is not None else 0.0


def default_thresholds(area_of: dict) -> list[float]:
    """0 (never SR), every 250 px^2 up to the largest person, and +inf (always SR)."""
    top = max(area_of.values(), default=0.0)
    steps = list(np.arange(0, math.ceil(top / 250) * 250 + 1, 250.0))
    return [float(t) for t in steps] + [math.inf]


# --------------------------------------------------------------------------------------------
# CLI


def command(
    sr_doc: Annotated[str, typer.Argument(help="SR stage: detections with mask areas, and poses on them.")],
    lr_doc: Annotated[str, typer.Argument(help="Original (LR) stage: poses on the same detections mapped back.")],
    threshold: Annotated[
        str, typer.Option("--threshold", help="Area at or below which a person's keypoints come from SR; 'auto' sweeps.")
    ] = "3500",
    area_frame: Annotated[str, typer.Option("--area-frame", help="Frame the area is measured in: lr (paper) or sr.")] = "lr",
    areas: Annotated[
        str, typer.Option("--areas", help="detections (Mask R-CNN mask area, paper), box (w*h) or gt (oracle bound).")
    ] = "detections",
    boxes_only: Annotated[
        bool, typer.Option("--boxes-only", help="Only map SR_DOC's detections into LR_DOC's frame (step one).")
    ] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the selection/report split for --threshold auto.")] = 0,
    plot: Annotated[Optional[str], typer.Option("--plot", help="With --threshold auto: PNG of the AP curve.")] = None,
    output: Output = None,
    quiet: Quiet = False,
):
    """Per person, take keypoints from the SR image or the original one by segmentation area.

    The paper's Table 9 approach: people whose Mask R-CNN area (converted to the LR frame) is at
    or below --threshold keep the keypoints estimated on the SR image; larger people take those
    estimated on the original image. A chain:

        lrp detect --model mask-rcnn-r101-fpn sr.json > sr-det.json
        lrp pose --boxes detections sr-det.json > sr-pose.json
        lrp mix --boxes-only sr-det.json lr.json | lrp pose --boxes detections > lr-pose.json
        lrp mix --threshold 3500 sr-pose.json lr-pose.json | lrp evaluate

    --threshold auto sweeps thresholds, chooses one on a seeded half of the images and reports
    it on the other half, with the whole curve (table on stderr, --plot PNG).
    """
    import sys

    if area_frame not in ("lr", "sr"):
        raise UsageError(f"--area-frame {area_frame!r}: expected lr or sr")
    sr = load_document(sr_doc)
    lr = load_document(lr_doc)
    from lrp.labels import history_label

    args = {"threshold": threshold, "area_frame": area_frame, "areas": areas, "boxes_only": boxes_only, "sr_doc": sr_doc,
            "sr_label": history_label([s for s in sr["lrp"]["history"] if s.get("command") == "superres"])}
    if boxes_only:
        out = transfer_detections(sr, lr)
        add_history(out, "mix", args)
        write_document(out, output)
        return
    if threshold == "auto":
        area_of = person_areas(sr, lr, areas, area_frame)
        best, curve, (sel, rep) = sweep_thresholds(sr, lr, default_thresholds(area_of), areas=areas, area_frame=area_frame, seed=seed)
        if not quiet:
            print(f"threshold sweep ({len(sel)} selection images, {len(rep)} report images, seed {seed}):", file=sys.stderr)
            print("threshold  selection_AP  report_AP", file=sys.stderr)
            for row in curve:
                mark = "  <- chosen" if row is best else ""
                print(f"{row['threshold']:>9g}  {row['selection_AP']:.3f}         {row['report_AP']:.3f}{mark}", file=sys.stderr)
        if plot:
            _plot_curve(curve, best, plot)
        t = best["threshold"]
        args["chosen_threshold"] = t
        args["sweep"] = curve
    else:
        try:
            t = float(threshold)
        except ValueError:
            raise UsageError(f"--threshold {threshold!r}: expected a number or 'auto'") from None
    out, counts = mix_documents(sr, lr, t, areas=areas, area_frame=area_frame)
    if not quiet:
        print(
            f"lrp mix: {counts['sr']} people from SR, {counts['lr']} from the original"
            + (f", {counts['unmatched']} poses matched no SR detection (dropped)" if counts["unmatched"] else ""),
            file=sys.stderr,
        )
    add_history(out, "mix", args)
    write_document(out, output)


def _plot_curve(curve, best, path) -> None:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lrp.outputs import atomic_write_bytes

    finite = [r for r in curve if math.isfinite(r["threshold"])]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot([r["threshold"] for r in finite], [r["selection_AP"] for r in finite], label="selection split")
    ax.plot([r["threshold"] for r in finite], [r["report_AP"] for r in finite], label="report split")
    if math.isfinite(best["threshold"]):
        ax.axvline(best["threshold"], color="grey", linestyle="--", label=f"chosen {best['threshold']:g}")
    ax.set_xlabel("segmentation area threshold (px^2)")
    ax.set_ylabel("keypoint AP")
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
