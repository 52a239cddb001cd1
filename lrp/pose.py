"""`lrp pose`: top-down keypoints for every person box, as the official HRNet test does it.

Boxes come from the ground truth (`--boxes gt`, the official GT-box cleaning: only people with
annotated keypoints, boxes clipped to the image) or from `lrp.detections` (`--boxes
detections`, person boxes scoring at least `--det-threshold`). Each box becomes a crop of the
model's input aspect ratio with 25% padding; the model's keypoints are mapped back into the
document's frame, rescored (box score x mean joint score above 0.2) and filtered by OKS-NMS
(0.9) per image, exactly as the official COCO evaluation does before `COCOeval`.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from typing import Annotated, Optional

import typer

from lrp.errors import LrpError, UsageError
from lrp.options import BatchSize, Device, Images, Input, KeepGoing, Model, Output, Precision, Quiet, Weights, Workers

BoxSource = Annotated[str, typer.Option("--boxes", help="gt (ground-truth person boxes) or detections (lrp.detections).")]
DetThreshold = Annotated[float, typer.Option("--det-threshold", help="Skip detections scoring below this (official: 0.0).")]
Decode = Annotated[str, typer.Option("--decode", help="Heatmap decoding: standard, dark, udp (UDP-trained weights) or offset.")]
Flip = Annotated[
    Optional[bool],
    typer.Option("--flip/--no-flip", help="Flip test (default: on for heatmap models, off for MoveNet).", show_default=False),
]
InputSize = Annotated[
    Optional[str],
    typer.Option("--input-size", help="Model input WxH, e.g. 48x64 for low-resolution weights (default: the model's).", show_default=False),
]
InVis = Annotated[float, typer.Option("--in-vis", help="Joint score threshold of the rescoring.")]
OksNms = Annotated[float, typer.Option("--oks-nms", help="OKS-NMS threshold per image (1 keeps every person).")]
DetectionsFile = Annotated[
    Optional[str],
    typer.Option(
        "--detections-file",
        help="A COCO results file of person boxes in the ORIGINAL images' frame (e.g. the official HRNet "
        "detector's detections_AP_H_56.json); mapped into this document's frame as lrp.detections. "
        "Implies --boxes detections.",
        show_default=False,
    ),
]


def command(
    input: Input = None,
    images: Images = None,
    output: Output = None,
    model: Model = "hrnet-w32-256x192",
    weights: Weights = None,
    boxes: BoxSource = "gt",
    det_threshold: DetThreshold = 0.0,
    detections_file: DetectionsFile = None,
    decode: Decode = "standard",
    flip: Flip = None,
    input_size: InputSize = None,
    in_vis: InVis = 0.2,
    oks_nms: OksNms = 0.9,
    device: Device = "auto",
    precision: Precision = "fp32",
    batch_size: BatchSize = 32,
    workers: Workers = None,
    keep_going: KeepGoing = False,
    quiet: Quiet = False,
):
    """Estimate COCO keypoints of every person box (GT or detections) into lrp.poses.

    Top-down, as the official HRNet test: each box grows to the model's aspect ratio and 1.25x,
    is cut out (bilinear, black border; OpenCV 4 semantics) and run with the flip test; heatmaps
    are decoded (--decode standard|dark|udp), mapped back into the document's frame, rescored
    (box score x mean joint score above --in-vis) and filtered by OKS-NMS (--oks-nms) per image.
    --boxes gt uses the people with annotated keypoints, boxes cleaned as the official code does.

    Example:

        lrp pose --model hrnet-w32-256x192 --boxes gt hr.json -o poses.json

        lrp degrade --scale 0.25 hr.json | lrp pose --model movenet-thunder --boxes detections | lrp evaluate
    """
    from lrp.document import add_history, derive, load_document, write_document
    from lrp.models import get_model
    from lrp.timing import Stopwatch, record_timing
    from lrp.topdown import DECODERS

    if boxes not in ("gt", "detections"):
        raise UsageError(f"--boxes {boxes!r}: expected gt or detections")
    if decode not in DECODERS:
        raise UsageError(f"--decode {decode!r}: expected one of {', '.join(DECODERS)}")
    spec = get_model(model, task="pose")
    size = parse_size(input_size) if input_size else tuple(spec.kwargs.get("input_size", (192, 256)))
    regression = spec.arch.startswith("movenet")
    if regression and input_size and size != tuple(spec.kwargs["input_size"]):
        raise UsageError(f"--input-size {input_size}: {model} runs at {'x'.join(map(str, spec.kwargs['input_size']))} only")
    if regression and decode != "standard":
        raise UsageError(f"--decode {decode}: {model} regresses keypoints, it has no heatmaps to decode")
    if decode == "offset":
        raise UsageError(f"--decode offset needs a model with an offset head; {model} predicts heatmaps only")

    doc = derive(load_document(input, images=images, allow_sample=True, quiet=quiet))
    if detections_file is not None:
        boxes = "detections"
        doc["lrp"]["detections"] = detections_from_origin(detections_file, doc)
    people, skipped = collect_people(doc, boxes, det_threshold)
    runner = build_runner(spec, weights, size, device, precision, batch_size, decode, flip, regression)
    watch = Stopwatch(runner.device)
    results, failures = estimate(doc, people, runner, workers=workers, quiet=quiet, keep_going=keep_going, watch=watch)
    doc["lrp"]["poses"] = finish(results, in_vis=in_vis, oks_threshold=oks_nms)
    add_history(
        doc,
        "pose",
        {"model": model, "boxes": boxes, "det_threshold": det_threshold, "detections_file": detections_file, "decode": decode, "flip": runner.flip,
         "input_size": list(size), "in_vis": in_vis, "oks_nms": oks_nms, "weights": str(weights) if weights else None},
    )
    record_timing(doc, watch, len({r["image_id"] for r in results}), len(results))
    if not quiet:
        n_images = len({p["image_id"] for p in people})
        extra = "".join(f", {n} {why}" for why, n in skipped.items() if n)
        print(
            f"lrp pose: {model} on {len(people)} {boxes} boxes in {n_images} images -> "
            f"{len(doc['lrp']['poses'])} poses after OKS-NMS{extra}",
            file=sys.stderr,
        )
    write_document(doc, output)
    if failures:
        raise LrpError(f"{len(failures)} images failed: " + "; ".join(failures))


def detections_from_origin(path: str, doc: dict) -> list[dict]:
    """A results file made on the original images, moved into each image's frame of `doc`."""
    from lrp.document import images_by_id, load_results
    from lrp.geometry import map_result

    images = images_by_id(doc)
    out = []
    for i, det in enumerate(load_results(path, doc)):
        if "bbox" not in det:
            raise LrpError(f"{path}[{i}] (image {det['image_id']}) has no 'bbox'")
        img = images[det["image_id"]]
        out.append(map_result(det, img["lrp"]["xform"], (img["width"], img["height"])))
    return out


def parse_size(text: str) -> tuple[int, int]:
    """'48x64' (width x height, as `IMAGE_SIZE` in the official configs) -> (48, 64)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UsageError(f"--input-size {text!r}: expected WxH, e.g. 192x256") from None
    if w < 8 or h < 8:
        raise UsageError(f"--input-size {text}: both sides must be at least 8 pixels")
    return w, h


# --------------------------------------------------------------------------------------------
# Which boxes (no torch)


def collect_people(doc: dict, boxes: str, det_threshold: float = 0.0) -> tuple[list[dict], dict[str, int]]:
    """The person boxes to run on: [{image_id, bbox (as given), box (cleaned), score}] and
    counts of what was skipped and why."""
    from lrp.document import images_by_id, person_category_id
    from lrp.topdown import clean_gt_box

    person = person_category_id(doc)
    imgs = images_by_id(doc)
    skipped: dict[str, int] = defaultdict(int)
    people = []
    if boxes == "gt":
        for ann in doc["annotations"]:
            if ann.get("category_id") != person:
                skipped["non-person annotations"] += 1
                continue
            if max(ann.get("keypoints") or [0]) == 0:  # crowds and people without keypoints
                skipped["people without annotated keypoints"] += 1
                continue
            if not isinstance(ann.get("bbox"), list) or len(ann["bbox"]) != 4:
                raise LrpError(f"annotation {ann['id']} (image {ann['image_id']}) has keypoints but no [x, y, w, h] 'bbox'")
            img = imgs[ann["image_id"]]
            box = clean_gt_box(ann["bbox"], img["width"], img["height"], ann.get("area", 0))
            if box is None:
                skipped["empty GT boxes"] += 1
                continue
            people.append({"image_id": ann["image_id"], "category_id": person, "bbox": list(ann["bbox"]), "box": box, "score": 1.0})
        return people, dict(skipped)
    detections = doc["lrp"].get("detections") or []
    if not detections:
        raise LrpError("the document has no detections (lrp.detections is empty): run `lrp detect` first, or use --boxes gt")
    for i, det in enumerate(detections):
        if det.get("category_id") != person:
            skipped["non-person detections"] += 1
            continue
        bbox = det.get("bbox")
        if not isinstance(bbox, list) or len(bbox) != 4:
            raise LrpError(f"lrp.detections[{i}] (image {det['image_id']}) has no [x, y, w, h] 'bbox'")
        if det["score"] < det_threshold:
            skipped[f"detections below {det_threshold}"] += 1
            continue
        img = imgs[det["image_id"]]
        x, y, w, h = bbox
        if not (w > 0 and h > 0):
            skipped["zero-size boxes"] += 1
            continue
        if x >= img["width"] or y >= img["height"] or x + w <= 0 or y + h <= 0:
            skipped["boxes outside the image"] += 1
            continue
        people.append(
            {"image_id": det["image_id"], "category_id": person, "bbox": list(bbox), "box": list(bbox), "score": float(det["score"])}
        )
    return people, dict(skipped)


# --------------------------------------------------------------------------------------------
# Running the model


def build_runner(spec, weights, size, device, precision, batch_size, decode, flip, regression):
    from lrp.device import load_model
    from lrp.topdown import TopDown

    net, dev, dtype = load_model(spec, weights, device, precision)
    return TopDown(
        net,
        size,
        kind="regression" if regression else "heatmap",
        device=dev,
        dtype=dtype,
        flip=(not regression) if flip is None else flip,
        decoder=decode,
        batch_size=batch_size,
    )


def estimate(doc: dict, people: list[dict], runner, *, workers=None, quiet=False, keep_going=False, watch=None):
    """Keypoints for every person: a list of result dicts (before rescoring), and failures."""
    import numpy as np
    import torch

    from lrp.document import image_path, images_by_id
    from lrp.images import load_rgb, parallel_map
    from lrp.timing import timed

    imgs = images_by_id(doc)
    by_image: dict[int, list[dict]] = defaultdict(list)
    for p in people:
        by_image[p["image_id"]].append(p)
    failures: list[str] = []

    def load(iid):
        img = imgs[iid]
        try:
            return iid, load_rgb(image_path(doc, img), iid, (img["width"], img["height"])), None
        except LrpError as e:
            if not keep_going:
                raise
            return iid, None, str(e)

    results: list[dict] = []
    # Crops of several images wait here until a batch is full: (people, centers, scales, crops).
    pending: list[tuple[list[dict], np.ndarray, np.ndarray, torch.Tensor]] = []
    queued = 0

    def flush():
        nonlocal pending, queued
        if not pending:
            return
        group, centers, scales, crops = zip(*pending)
        scale = np.concatenate(scales)
        with timed(watch):
            kps = runner.predict(torch.cat(crops), np.concatenate(centers), scale)
        for p, k, s in zip((p for ps in group for p in ps), kps, scale):
            results.append({**p, "keypoints": k, "scale": s})
        pending, queued = [], 0

    for iid, pixels, error in parallel_map(load, list(by_image), workers=workers, desc="pose", quiet=quiet):
        if error is not None:
            failures.append(error)
            continue
        ps = by_image[iid]
        center, scale = runner.centers_scales([p["box"] for p in ps])
        image = torch.from_numpy(np.array(pixels, copy=True)).to(runner.device)
        pending.append((ps, center, scale, runner.crops(image, center, scale)))
        queued += len(ps)
        if queued >= runner.batch_size:
            flush()
    flush()
    return results, failures


def finish(results: list[dict], *, in_vis: float = 0.2, oks_threshold: float = 0.9) -> list[dict]:
    """Rescore and OKS-NMS per image, then COCO keypoint results (image order kept)."""
    import numpy as np

    from lrp.topdown import oks_nms, pose_area, rescore

    by_image: dict[int, list[dict]] = defaultdict(list)
    for r in results:
        by_image[r["image_id"]].append(r)
    out = []
    for iid, rs in by_image.items():
        kps = np.stack([r["keypoints"] for r in rs])
        scores = rescore(np.array([r["score"] for r in rs]), kps[:, :, 2], in_vis)
        areas = pose_area(np.stack([r["scale"] for r in rs]))
        for i in sorted(oks_nms(kps, scores, areas, oks_threshold)):
            out.append(
                {
                    "image_id": iid,
                    "category_id": rs[i]["category_id"],
                    "keypoints": [float(v) for v in kps[i].reshape(-1)],
                    "score": float(scores[i]),
                    "bbox": [float(v) for v in rs[i]["bbox"]],
                }
            )
    return out
