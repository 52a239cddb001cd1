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

The oracle form (`--areas gt` on documents without detections, both posed with `lrp pose --boxes
gt`): a person is one GT annotation, each pose is tied to it by its GT box, and every person gets
exactly one pose, from SR when their GT segmentation area is at or below the threshold.
"""

from __future__ import annotations

import math
from typing import Annotated, Optional

import numpy as np
import typer

from lrp.document import add_history, derive, images_by_id
from lrp.inputs import load_document
from lrp.outputs import write_document
from lrp.engines import DEFAULT_ENGINE
from lrp.evaluate import Engine, check_engine
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


def gt_boxes_mode(sr_doc: dict, areas: str) -> bool:
    """`--areas gt` on documents without detections: poses from `lrp pose --boxes gt`."""
    return areas == "gt" and not sr_doc["lrp"]["detections"]


def mixed_poses(
    sr_doc: dict, lr_doc: dict, threshold: float, *, areas: str = "detections", area_frame: str = "lr"
) -> tuple[list[dict], dict]:
    """The mixed poses (in LR_DOC's frame) and counts of people taken from each source."""
    if gt_boxes_mode(sr_doc, areas):
        return _mix_on_gt_boxes(sr_doc, lr_doc, threshold, area_frame)
    if not sr_doc["lrp"]["detections"]:
        raise LrpError(
            "SR_DOC has no lrp.detections: run `lrp detect` on it first "
            "(or, with poses from `lrp pose --boxes gt`, mix by GT area with --areas gt)"
        )
    _need_poses(sr_doc, lr_doc, "detections")
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
            mixed.append(_from_sr(p, to_lr[iid], lr_images[iid]))
            counts["sr"] += 1
    to_sr = {iid: invert(xf) for iid, xf in to_lr.items()}
    for p in lr_doc["lrp"]["poses"]:
        iid = p["image_id"]
        k = det_index(iid, _box_in(p["bbox"], to_sr[iid]))
        if k is None:
            counts["unmatched"] += 1
            continue
        if area_of[(iid, k)] > threshold:
            mixed.append(_from_lr(p))
            counts["lr"] += 1
    return mixed, counts


def _need_poses(sr_doc: dict, lr_doc: dict, boxes: str) -> None:
    for name, d in (("SR_DOC", sr_doc), ("LR_DOC", lr_doc)):
        if not d["lrp"]["poses"]:
            raise LrpError(f"{name} has no lrp.poses: run `lrp pose --boxes {boxes}` on it first")


def _box_in(box, xf) -> list[float]:
    sx, sy, tx, ty = xf
    x, y, w, h = box
    return [x * sx + tx, y * sy + ty, w * sx, h * sy]


def _from_sr(p: dict, to_lr, lr_img: dict) -> dict:
    q = map_result(p, to_lr, (lr_img["width"], lr_img["height"]))
    q["lrp_source"] = "sr"
    return q


def _from_lr(p: dict) -> dict:
    q = dict(p)
    q["lrp_source"] = "lr"
    return q


def mix_documents(
    sr_doc: dict, lr_doc: dict, threshold: float, *, areas: str = "detections", area_frame: str = "lr"
) -> tuple[dict, dict]:
    """The mixed document (in LR_DOC's frame) and counts of people taken from each source."""
    mixed, counts = mixed_poses(sr_doc, lr_doc, threshold, areas=areas, area_frame=area_frame)
    out = derive(lr_doc)
    out["lrp"]["poses"] = mixed
    return out, counts


# --------------------------------------------------------------------------------------------
# The oracle mix on GT boxes (poses from `lrp pose --boxes gt` in both frames)


def gt_person_areas(sr_doc: dict, lr_doc: dict, area_frame: str = "lr") -> dict:
    """GT segmentation area of every non-crowd person, by annotation id, in the chosen frame."""
    to_lr = frame_map(sr_doc, lr_doc)
    factor = {iid: (xf[0] * xf[1] if area_frame == "lr" else 1.0) for iid, xf in to_lr.items()}
    lr_ids = {a["id"] for a in lr_doc["annotations"]}
    out = {}
    for a in sr_doc["annotations"]:
        if a.get("iscrowd"):
            continue
        if a["id"] not in lr_ids:
            raise LrpError(f"annotation {a['id']} of SR_DOC is not in LR_DOC: they must be the same dataset in two frames")
        out[a["id"]] = a["area"] * factor[a["image_id"]]
    return out


def _poses_by_person(doc: dict, name: str) -> dict:
    """Each pose tied to the GT person whose box it was estimated in (`lrp pose --boxes gt`)."""
    people: dict[int, list] = {}
    for a in doc["annotations"]:
        if not a.get("iscrowd"):
            people.setdefault(a["image_id"], []).append(a)
    boxes = {iid: np.asarray([a["bbox"] for a in anns], dtype=np.float64).reshape(-1, 4) for iid, anns in people.items()}
    out: dict[int, dict] = {}
    unmatched = 0
    for p in doc["lrp"]["poses"]:
        j = _match(p["bbox"], boxes.get(p["image_id"]))
        if j is None:
            unmatched += 1
            continue
        aid = people[p["image_id"]][j]["id"]
        if aid in out:
            raise LrpError(f"{name}: two poses in the GT box of annotation {aid} (image {p['image_id']}); expected `lrp pose --boxes gt`")
        out[aid] = p
    return out, unmatched


def _mix_on_gt_boxes(sr_doc: dict, lr_doc: dict, threshold: float, area_frame: str) -> tuple[list[dict], dict]:
    """Per GT person, the SR pose at or below the threshold (GT area), else the LR pose: once each."""
    _need_poses(sr_doc, lr_doc, "gt")
    area_of = gt_person_areas(sr_doc, lr_doc, area_frame)
    to_lr = frame_map(sr_doc, lr_doc)
    lr_images = images_by_id(lr_doc)
    sr_poses, sr_unmatched = _poses_by_person(sr_doc, "SR_DOC")
    lr_poses, lr_unmatched = _poses_by_person(lr_doc, "LR_DOC")
    mixed, counts = [], {"sr": 0, "lr": 0, "unmatched": sr_unmatched + lr_unmatched, "missing": 0}
    for a in lr_doc["annotations"]:
        aid = a["id"]
        if aid not in sr_poses and aid not in lr_poses:
            continue  # no pose in either frame (a crowd, or nobody with keypoints)
        if area_of[aid] <= threshold:
            if aid in sr_poses:
                iid = sr_poses[aid]["image_id"]
                mixed.append(_from_sr(sr_poses[aid], to_lr[iid], lr_images[iid]))
                counts["sr"] += 1
                continue
        elif aid in lr_poses:
            mixed.append(_from_lr(lr_poses[aid]))
            counts["lr"] += 1
            continue
        counts["missing"] += 1  # the chosen frame has no pose for this person
    return mixed, counts


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


def sweep_thresholds(sr_doc, lr_doc, thresholds, *, areas="detections", area_frame="lr", seed=0, engine=None):
    """Keypoint AP for each threshold on the selection split and on the report split.

    The threshold is chosen on the selection split only; the report split is what a paper would
    publish, so no number reported was tuned on the images it is reported on. LR_DOC's ground
    truth is built once; each split is evaluated as its own images (as on a restricted copy).
    """
    from lrp.cocoeval import DEFAULT_ENGINE, gt_coco

    sel, rep = split_images([i["id"] for i in lr_doc["images"]], seed)
    if not sel or not rep:
        raise LrpError("--threshold auto needs at least two images (one to choose on, one to report on)")
    gt = gt_coco(lr_doc, "LR_DOC", engine or DEFAULT_ENGINE)
    curve = []
    for t in thresholds:
        poses, _ = mixed_poses(sr_doc, lr_doc, t, areas=areas, area_frame=area_frame)
        curve.append({"threshold": t, "selection_AP": keypoint_ap(lr_doc, poses, sel, gt), "report_AP": keypoint_ap(lr_doc, poses, rep, gt)})
    best = max(curve, key=lambda r: (r["selection_AP"], -r["threshold"]))
    return best, curve, (sel, rep)


def keypoint_ap(doc: dict, results: list | None = None, img_ids=None, coco_gt=None) -> float:
    """Keypoint AP of `results` (default: the document's poses) on these images, 0 where nothing matches."""
    from lrp.cocoeval import run_cocoeval

    if results is not None and img_ids is not None:
        results = [r for r in results if r["image_id"] in img_ids]
    E = run_cocoeval(doc, "keypoints", name="mixed", results=results, img_ids=img_ids, coco_gt=coco_gt)
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
    area_frame: Annotated[str, typer.Option("--area-frame", metavar="[lr|sr]", help="Frame the area is measured in: lr (paper) or sr.")] = "lr",
    areas: Annotated[
        str, typer.Option("--areas", metavar="[detections|box|gt]", help="detections (Mask R-CNN mask area, paper), box (w*h) or gt (oracle bound).")
    ] = "detections",
    boxes_only: Annotated[
        bool, typer.Option("--boxes-only", help="Only map SR_DOC's detections into LR_DOC's frame (step one).")
    ] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the selection/report split for --threshold auto.")] = 0,
    plot: Annotated[Optional[str], typer.Option("--plot", help="With --threshold auto: PNG of the AP curve.")] = None,
    engine: Engine = DEFAULT_ENGINE,
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
    check_engine(engine)
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
        area_of = gt_person_areas(sr, lr, area_frame) if gt_boxes_mode(sr, areas) else person_areas(sr, lr, areas, area_frame)
        best, curve, (sel, rep) = sweep_thresholds(
            sr, lr, default_thresholds(area_of), areas=areas, area_frame=area_frame, seed=seed, engine=engine
        )
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
            + (f", {counts['unmatched']} poses matched no SR detection (dropped)" if counts["unmatched"] else "")
            + (f", {counts['missing']} GT people without a pose in the chosen frame" if counts.get("missing") else ""),
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


# `lrp.mix(...)` calls mix_documents (lrp/__init__.py: the Python API).
from lrp import callable_step  # noqa: E402

callable_step(__name__)
