"""`lrp pose`: top-down keypoints for every person box, as the official HRNet test does it.

Boxes come from the ground truth (`--boxes gt`, the official GT-box cleaning: only people with
annotated keypoints, boxes clipped to the image) or from `lrp.detections` (`--boxes
detections`, person boxes scoring at least `--det-threshold`). Each box becomes a crop of the
model's input aspect ratio with 25% padding, except a GT person with an `lrp_crop` (the crop a
dataset's official test cuts, from `lrp mpii`), cut as given; the model's keypoints are mapped back into the
document's frame, rescored (box score x mean joint score above 0.2) and filtered by OKS-NMS
(0.9) per image, exactly as the official COCO evaluation does before `COCOeval`.

What a model can do comes from its registry entry (`lrp.models.pose_zoo.PoseSpec`: head, codecs,
input sizes, crop reference), never from its name; decoding is a codec object (`lrp.codecs`);
crops follow the OpenCV generation chosen by `--warp`. A model whose entry says `frames = 2r+1`
gets, for each box, the same crop of every frame of the image's window (`window_loader`,
lrp.frames), stacked on channels. `pose_document` is the library function, `command` only
parses options and writes the result.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from typing import Annotated, Optional

import typer

from lrp.errors import LrpError, PartialFailure, UsageError
from lrp.options import BatchSize, Device, Images, Input, KeepGoing, Model, Output, Precision, Quiet, Shard, Weights, Workers

BoxSource = Annotated[str, typer.Option("--boxes", metavar="[gt|detections]", help="gt (ground-truth person boxes) or detections (lrp.detections).")]
DetThreshold = Annotated[float, typer.Option("--det-threshold", help="Skip detections scoring below this (official: 0.0).")]
Decode = Annotated[
    Optional[str],
    typer.Option(
        "--decode",
        metavar="[standard|dark|udp|plain|maxpool|offset|simcc]",
        help="Codec reading the model's head: standard, dark, udp (UDP-trained weights), plain (argmax, no "
        "post-processing), maxpool (SRPose's fast argmax), offset (offset heads) or simcc (SimCC heads). "
        "Default: the model's own (offset for PoseNet, standard otherwise). A codec the model's head cannot "
        "feed (simcc on a heatmap head) is refused.",
        show_default=False,
    ),
]
Flip = Annotated[
    Optional[bool],
    typer.Option("--flip/--no-flip", help="Flip test (default: on for heatmap models, off for MoveNet and PoseNet).", show_default=False),
]
InputSize = Annotated[
    Optional[str],
    typer.Option("--input-size", help="Model input WxH, e.g. 48x64 for low-resolution weights (default: the model's).", show_default=False),
]
Warp = Annotated[
    str,
    typer.Option(
        "--warp",
        help="Crop semantics: opencv4 (the fixed-point cv2.warpAffine of OpenCV 3.4/4.x, as the official HRNet "
        "results were made), opencv5 (the float warp of OpenCV 5.x), or auto: what the model's official inference "
        "gives under the OpenCV installed here (5.x when none is).",
    ),
]
CropSR = Annotated[
    Optional[str],
    typer.Option(
        "--crop-sr",
        help="Super-resolve each person crop with this superres model (CAL's crop-level SR): cut at --crop-size, "
        "upscale to the model input, estimate, map back into the document's frame.",
        show_default=False,
    ),
]
CropSize = Annotated[
    Optional[str],
    typer.Option("--crop-size", help="Low crop WxH for --crop-sr (default: the input size / the SR scale).", show_default=False),
]
RecordArgmax = Annotated[
    bool,
    typer.Option(
        "--record-argmax",
        help="Also record each keypoint's heatmap peak cell before any sub-pixel step: lrp_argmax [x, y, ...] in "
        "the document's frame and lrp_cell (image pixels per heatmap cell) on every pose, for lrp displacement "
        "(CAL Fig. 5). Refused for regression heads (no heatmap).",
    ),
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
    decode: Decode = None,
    flip: Flip = None,
    input_size: InputSize = None,
    warp: Warp = "auto",
    crop_sr: CropSR = None,
    crop_size: CropSize = None,
    record_argmax: RecordArgmax = False,
    in_vis: InVis = 0.2,
    oks_nms: OksNms = 0.9,
    device: Device = "auto",
    precision: Precision = "fp32",
    batch_size: BatchSize = 32,
    shard: Shard = None,
    workers: Workers = None,
    keep_going: KeepGoing = False,
    quiet: Quiet = False,
):
    """Estimate the keypoints of every person box (GT or detections) into lrp.poses.

    Top-down, as the official HRNet test: each box grows to the model's aspect ratio and 1.25x,
    is cut out (bilinear, black border; --warp picks the OpenCV generation) and run with the flip test; heatmaps
    are decoded (--decode: a codec the model's head can feed), mapped back into the document's frame, rescored
    (box score x mean joint score above --in-vis) and filtered by OKS-NMS (--oks-nms) per image.
    --boxes gt uses the people with annotated keypoints, boxes cleaned as the official code does;
    a person with an `lrp_crop` (`lrp mpii`: MPII's official centre and scale) is cut from that crop
    as given, with no cleaning, aspect-ratio change or padding.
    The document's keypoint set must be the model's (COCO-17, or MPII-16 / CrowdPose-14 for those
    HRNets): the flip test swaps that set's joints, and OKS-NMS uses its sigmas (MPII and PoseTrack
    define none: one pose per box).
    A temporal model (registry frames=5, e.g. temporal-pose-5-random) gets the same crop of every frame
    t-2 .. t+2 of the image's video (clamped at the ends; an image outside any video is repeated),
    stacked on channels, and gives frame t's heatmaps.

    Example:

        lrp pose --model hrnet-w32-256x192 --boxes gt hr.json -o poses.json

        lrp degrade --scale 0.25 hr.json | lrp pose --model movenet-thunder --boxes detections | lrp evaluate
    """
    from lrp.inputs import load_document
    from lrp.outputs import write_result

    spec, size, _, decode = check_options(model, boxes, decode, input_size, warp, flip)  # usage errors before reading anything
    check_crop_sr(crop_sr, crop_size, size, decode)
    check_record_argmax(spec, record_argmax)
    doc = load_document(input, images=images, allow_sample=True, quiet=quiet)
    write_result(
        "pose",
        output,
        lambda: pose_document(
            doc,
            model=model,
            weights=weights,
            boxes=boxes,
            det_threshold=det_threshold,
            detections_file=detections_file,
            shard=shard,
            decode=decode,
            flip=flip,
            input_size=input_size,
            warp=warp,
            crop_sr=crop_sr,
            crop_size=crop_size,
            record_argmax=record_argmax,
            in_vis=in_vis,
            oks_nms=oks_nms,
            device=device,
            precision=precision,
            batch_size=batch_size,
            workers=workers,
            quiet=quiet,
            keep_going=keep_going,
        ),
    )


class PoseFailures(PartialFailure):
    """`--keep-going` ended with images that could not be read: `doc` has the poses of the rest."""

    def __init__(self, failures: list[str], total: int, doc: dict):
        super().__init__(failures, total, doc)
        self.args = (f"{len(failures)} images failed (of {total}; listed above): the document has the poses of the others",)


def pose_document(
    doc: dict,
    *,
    model: str = "hrnet-w32-256x192",
    weights=None,
    boxes: str = "gt",
    det_threshold: float = 0.0,
    detections_file: str | None = None,
    shard: str | None = None,
    decode: str | None = None,
    flip: bool | None = None,
    input_size: str | None = None,
    warp: str = "auto",
    crop_sr: str | None = None,
    crop_size: str | None = None,
    record_argmax: bool = False,
    in_vis: float = 0.2,
    oks_nms: float = 0.9,
    device: str = "auto",
    precision: str = "fp32",
    batch_size: int = 32,
    workers: int | None = None,
    quiet: bool = False,
    keep_going: bool = False,
) -> dict:
    """Keypoints of every person box of `doc` into `lrp.poses` of a new document (`doc` is untouched).

    Raises UsageError for a bad option, LrpError on the first image that fails, or with
    `keep_going` a PoseFailures (a PartialFailure) after all images, carrying the document with
    the poses of the images that succeeded. `shard` ("I/N") keeps one shard of the images
    (after `detections_file`, which covers every image).
    """
    from lrp.document import add_history, derive
    from lrp.keypoints import oks_sigmas_if_defined
    from lrp.shard import apply_shard
    from lrp.timing import Stopwatch, record_timing

    spec, size, warp_used, decode = check_options(model, boxes, decode, input_size, warp, flip)
    sr = check_crop_sr(crop_sr, crop_size, size, decode)
    check_record_argmax(spec, record_argmax)

    kset = check_keypoint_set(doc, spec)
    doc = derive(doc)
    if detections_file is not None:
        boxes = "detections"
        doc["lrp"]["detections"] = detections_from_origin(detections_file, doc)
    frames = window_loader(doc, spec, workers)  # before the shard: a frame's neighbours may lie in other shards
    doc = apply_shard(doc, shard, "pose")
    people, skipped = collect_people(doc, boxes, det_threshold)
    runner = build_runner(spec, weights, size, device, precision, batch_size, decode, flip, warp=warp_used, keypoint_set=kset)
    runner.record_argmax = record_argmax
    if sr is not None:
        from lrp.superres import build_upscaler

        sr_spec, low, factor = sr
        upscaler = build_upscaler(sr_spec, factor, device=device, precision=precision)
        runner.crop_sr = (upscaler.upscale, low, factor)
    crops = sum("center" in p for p in people)
    watch = Stopwatch(runner.device)
    results, failures = estimate(doc, people, runner, workers=workers, quiet=quiet, keep_going=keep_going, watch=watch, frames=frames)
    # Sets whose protocol defines no OKS (MPII, PoseTrack) keep one pose per box: no OKS-NMS.
    sigmas = oks_sigmas_if_defined(doc)
    doc["lrp"]["poses"] = finish(results, in_vis=in_vis, oks_threshold=oks_nms if sigmas is not None else None, sigmas=sigmas)
    add_history(
        doc,
        "pose",
        {"model": model, "boxes": boxes, "det_threshold": det_threshold, "detections_file": detections_file, "decode": decode, "flip": runner.flip,
         "input_size": list(size), "warp": warp_used, "crop_sr": crop_sr, "crop_size": list(sr[1]) if sr else None, "record_argmax": record_argmax, "in_vis": in_vis, "oks_nms": oks_nms if sigmas is not None else None, "weights": str(weights) if weights else None,
         **({"frames": spec.frames} if frames else {}),  # DESIGN: steps that use neighbouring frames say how many
         **({"official_crops": crops} if crops else {})},  # people cut from their lrp_crop, not a box
    )
    record_timing(doc, watch, len({r["image_id"] for r in results}), len(results))
    if not quiet:
        n_images = len({p["image_id"] for p in people})
        extra = "".join(f", {n} {why}" for why, n in skipped.items() if n)
        if crops:
            extra += f", {crops} cut from their lrp_crop"
        if sigmas is None:
            extra += f" ({kset.name} defines no OKS: no OKS-NMS)"
        print(
            f"lrp pose: {model} on {len(people)} {boxes} boxes in {n_images} images -> "
            f"{len(doc['lrp']['poses'])} poses{' after OKS-NMS' if sigmas is not None else ''}{extra}",
            file=sys.stderr,
        )
    if failures:
        raise PoseFailures(failures, len({p["image_id"] for p in people}), doc)
    return doc


def check_options(model: str, boxes: str, decode: str | None, input_size: str | None, warp: str, flip: bool | None = None):
    """What the model can do against what was asked: (spec, input size, resolved warp, codec
    name; None takes the model's first codec), or a UsageError naming the option."""
    from lrp.codecs import CODECS
    from lrp.models import get_model
    from lrp.models.pose_zoo import pose_traits
    from lrp.topdown import WARPS, resolve_warp

    if boxes not in ("gt", "detections"):
        raise UsageError(f"--boxes {boxes!r}: expected gt or detections")
    spec = get_model(model, task="pose")
    traits = pose_traits(spec)
    decode = decode or traits.codecs[0]
    if decode not in CODECS:
        raise UsageError(f"--decode {decode!r}: expected one of {', '.join(CODECS)}")
    if decode not in traits.codecs:
        reads = CODECS[decode].reads
        if traits.head == "regression":
            why = "it has no heatmaps to decode"
        elif traits.head == "posenet":
            why = "a stride-16 offset head: decode it with --decode offset or plain"
        elif reads == "heatmap+offset":
            why = "--decode offset needs a model with an offset head"
        else:
            why = f"--decode {decode} reads a {reads} head"
        raise UsageError(
            f"--decode {decode}: {spec.name} has a {traits.head} head ({why}); it feeds {', '.join(traits.codecs)}"
        )
    default = tuple(spec.kwargs.get("input_size", (192, 256)))
    size = parse_size(input_size) if input_size else default
    if traits.head == "posenet":
        check_posenet_options(spec.name, flip, size)
    if traits.input_sizes and size not in {tuple(v) for v in traits.input_sizes}:
        supported = ", ".join("x".join(map(str, v)) for v in traits.input_sizes)
        raise UsageError(f"--input-size {input_size}: {spec.name} runs at {supported} only")
    if warp != "auto" and warp not in WARPS:
        raise UsageError(f"--warp {warp!r}: expected auto or one of {', '.join(WARPS)}")
    if warp == "auto":
        warp = resolve_warp("auto") if traits.crop == "cv2" else traits.crop
    return spec, size, warp, decode


def check_posenet_options(model: str, flip, size: tuple[int, int]) -> None:
    """PoseNet's stride-16 offset head: no flip test (its offsets are not mirrored), 16 n + 1 inputs."""
    if flip:
        raise UsageError(f"--flip: {model} runs without the flip test (its offsets are not mirrored)")
    if any((v - 1) % 16 for v in size):
        raise UsageError(f"--input-size {size[0]}x{size[1]}: {model} takes sides of 16 n + 1 pixels (e.g. 257x257, 385x385)")


def check_keypoint_set(doc: dict, spec):
    """The document's keypoint set (lrp.keypoints.document_set: COCO-17 where its category names
    none), which must be the model's: poses of another set would be scored against the wrong joints."""
    from lrp.keypoints import category_set, document_set, names_keypoints
    from lrp.models.pose_zoo import pose_traits

    want = pose_traits(spec).keypoint_set
    kset = document_set(doc, "document")
    if kset.name != want:
        if names_keypoints(doc):
            category_set(doc, "document", expect=want)  # raises the one line naming the category
        raise LrpError(f"document: its person category names no keypoints (taken as {kset.name}), not the {want} {spec.name} predicts")
    return kset


def check_record_argmax(spec, record_argmax: bool) -> None:
    from lrp.models.pose_zoo import pose_traits

    if record_argmax and pose_traits(spec).head == "regression":
        raise UsageError(f"--record-argmax: {spec.name} regresses its keypoints (no heatmap peak to record)")


def check_crop_sr(crop_sr: str | None, crop_size: str | None, size: tuple[int, int], decode: str):
    """(superres spec, low crop size, SR factor) for --crop-sr, None without it; a UsageError
    when the SR model's scale does not take the crop to the model input exactly."""
    if crop_sr is None:
        if crop_size is not None:
            raise UsageError("--crop-size needs --crop-sr MODEL")
        return None
    from lrp.models import get_model

    spec = get_model(crop_sr, task="superres")
    if spec.frames > 1:
        raise UsageError(f"--crop-sr {crop_sr}: a temporal SR model takes neighbouring frames, and a person crop has none; use a single-frame SR model")
    if decode == "udp":
        raise UsageError("--crop-sr with --decode udp: UDP's corner-aligned crops do not compose with centre-aligned SR")
    w, h = size
    if crop_size is not None:
        cw, ch = parse_size(crop_size, option="--crop-size", smallest=2)
        factor = spec.scale or (w // cw if w % cw == 0 else 0)
    else:
        factor = spec.scale or 4
        cw, ch = w // factor, h // factor
    if not factor or cw * factor != w or ch * factor != h:
        got = f"x{factor} from {cw}x{ch} gives {cw * factor}x{ch * factor}" if factor else f"no integer factor takes {cw}x{ch}"
        raise UsageError(f"--crop-sr {crop_sr}: {got}, not the model input {w}x{h}")
    return spec, (cw, ch), factor


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


def parse_size(text: str, option: str = "--input-size", smallest: int = 8) -> tuple[int, int]:
    """'48x64' (width x height, as `IMAGE_SIZE` in the official configs) -> (48, 64)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UsageError(f"{option} {text!r}: expected WxH, e.g. 192x256") from None
    if w < smallest or h < smallest:
        raise UsageError(f"{option} {text}: both sides must be at least {smallest} pixels")
    return w, h


# --------------------------------------------------------------------------------------------
# Which boxes (no torch)


def collect_people(doc: dict, boxes: str, det_threshold: float = 0.0) -> tuple[list[dict], dict[str, int]]:
    """The person boxes to run on: [{image_id, bbox (as given), box (cleaned), score}] and
    counts of what was skipped and why. A GT person with an `lrp_crop` (the crop a dataset's
    official test cuts, e.g. `lrp mpii`) also gets its `center` and `scale` (crop_center_scale)."""
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
            if "lrp_crop" in ann:
                people.append({"image_id": ann["image_id"], "category_id": person, "bbox": list(ann["bbox"]), "box": list(ann["bbox"]),
                               **crop_center_scale(ann["lrp_crop"]), "score": 1.0})
                continue
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


def crop_center_scale(crop: dict) -> dict:
    """An annotation's `lrp_crop` {center, size} as the official test's centre and scale.

    The crop is cut as given: centre = its centre, scale = size / 200 (PIXEL_STD), with no GT-box
    cleaning, no aspect-ratio change and no 1.25 padding (the size holds the padding already).
    MPII's official test assumes a square model input (its s is [s, s]); for an input of another
    aspect ratio lrp keeps the crop's scale and the warp fits its width to the input width, as
    `get_affine_transform` does (it reads only the width), so the crop's height follows the
    input's aspect ratio (a UDP model maps each axis of the scale). The values stay float64,
    as MPII's `_get_db` holds them, and the crop is built from them in float64 (`points64`)."""
    from lrp.heatmaps import PIXEL_STD

    return {"center": [float(v) for v in crop["center"]], "scale": [float(v) / PIXEL_STD for v in crop["size"]]}


def crop_params(runner, people: list[dict]):
    """(centres (N, 2), scales (N, 2), points64 (N,)) of one image's people: an official crop's
    own centre and scale (float64), else the box grown to the model's aspect ratio and padded."""
    import numpy as np

    center, scale = runner.centers_scales([p["box"] for p in people])
    points64 = np.array(["center" in p for p in people], dtype=bool)
    for i, p in enumerate(people):
        if points64[i]:
            center[i], scale[i] = p["center"], p["scale"]
    return center, scale, points64


# --------------------------------------------------------------------------------------------
# Running the model


def build_runner(spec, weights, size, device, precision, batch_size, decode, flip, warp="opencv4", keypoint_set=None):
    from lrp.device import load_model
    from lrp.keypoints import COCO_17, flip_index
    from lrp.models.pose_zoo import pose_traits
    from lrp.topdown import RAW_INPUT_HEADS, TopDown

    net, dev, dtype = load_model(spec, weights, device, precision)
    head = pose_traits(spec).head
    return TopDown(
        net,
        size,
        kind=head,
        device=dev,
        dtype=dtype,
        flip=(head not in RAW_INPUT_HEADS) if flip is None else flip,
        decoder=decode,
        batch_size=batch_size,
        warp=warp,
        flip_index=flip_index(keypoint_set or COCO_17),
    )


def window_loader(doc: dict, spec, workers: int | None = None):
    """For a model that takes 2r+1 frames (`spec.frames`): image id -> frames t-r .. t+r of its
    video read and stacked on channels (H x W x 3T, frame t-r first; lrp.frames); None for a
    1-frame model. `doc` is the whole document, so the windows of a shard's frames are whole."""
    if spec.frames <= 1:
        return None
    from lrp.frames import StackedFrames, frame_windows
    from lrp.images import default_workers

    windows = frame_windows(doc, spec.frames // 2)
    # The loader threads read about 2 x workers images ahead; neighbouring windows share all
    # but one frame, so keeping that many windows decodes each frame about once.
    stacked = StackedFrames(doc, keep=spec.frames * (2 * (workers or default_workers()) + 2))
    return lambda image_id: stacked(windows[image_id], image_id)


def estimate(doc: dict, people: list[dict], runner, *, workers=None, quiet=False, keep_going=False, watch=None, frames=None):
    """Keypoints for every person: a list of result dicts (before rescoring), and failures.
    `frames` (window_loader) reads an image's window of frames instead of the image alone."""
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
            if frames is not None:
                return iid, frames(iid), None
            return iid, load_rgb(image_path(doc, img), iid, (img["width"], img["height"])), None
        except LrpError as e:
            if not keep_going:
                raise
            return iid, None, str(e)

    results: list[dict] = []
    # Crops of several images wait here until a batch is full: (people, centers, scales, points64, crops).
    pending: list[tuple[list[dict], np.ndarray, np.ndarray, np.ndarray, torch.Tensor]] = []
    queued = 0

    def flush():
        nonlocal pending, queued
        if not pending:
            return
        group, centers, scales, points64, crops = zip(*pending)
        scale = np.concatenate(scales)
        with timed(watch):
            kps = runner.predict(torch.cat(crops), np.concatenate(centers), scale, np.concatenate(points64))
        for p, k, s in zip((p for ps in group for p in ps), kps, scale):
            results.append({**p, "keypoints": k, "scale": s})
        pending, queued = [], 0

    for iid, pixels, error in parallel_map(load, list(by_image), workers=workers, desc="pose", quiet=quiet):
        if error is not None:
            failures.append(error)
            continue
        ps = by_image[iid]
        center, scale, points64 = crop_params(runner, ps)
        image = torch.from_numpy(np.array(pixels, copy=True)).to(runner.device)
        pending.append((ps, center, scale, points64, runner.crops(image, center, scale, points64)))
        queued += len(ps)
        if queued >= runner.batch_size:
            flush()
    flush()
    return results, failures


def finish(results: list[dict], *, in_vis: float = 0.2, oks_threshold: float | None = 0.9, sigmas=None) -> list[dict]:
    """Rescore and OKS-NMS per image (`sigmas`: the keypoint set's, COCO's when None; no NMS
    when `oks_threshold` is None), then COCO keypoint results (image order kept)."""
    import numpy as np

    from lrp.topdown import OKS_SIGMAS, oks_nms, pose_area, rescore

    sigmas = OKS_SIGMAS if sigmas is None else np.asarray(sigmas, dtype=np.float64)

    by_image: dict[int, list[dict]] = defaultdict(list)
    for r in results:
        by_image[r["image_id"]].append(r)
    out = []
    for iid, rs in by_image.items():
        kps = np.stack([r["keypoints"] for r in rs])
        scores = rescore(np.array([r["score"] for r in rs]), kps[:, :, 2], in_vis)
        areas = pose_area(np.stack([r["scale"] for r in rs]))
        kept = range(len(rs)) if oks_threshold is None else sorted(oks_nms(kps, scores, areas, oks_threshold, sigmas))
        for i in kept:
            result = {
                "image_id": iid,
                "category_id": rs[i]["category_id"],
                "keypoints": [float(v) for v in kps[i, :, :3].reshape(-1)],
                "score": float(scores[i]),
                "bbox": [float(v) for v in rs[i]["bbox"]],
            }
            if kps.shape[2] > 3:  # --record-argmax: extra keys, which COCO results loaders ignore
                result["lrp_argmax"] = [float(v) for v in kps[i, :, 3:5].reshape(-1)]
                result["lrp_cell"] = float(kps[i, 0, 5])
            out.append(result)
    return out


# `lrp.pose(...)` calls pose_document (lrp/__init__.py: the Python API).
from lrp import callable_step  # noqa: E402

callable_step(__name__)
