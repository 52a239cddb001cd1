"""`lrp detect`: run an object detector on every image and fill `lrp.detections`.

Results are COCO detection results in this document's frame: `bbox` (x, y, w, h), `score`,
`category_id`, and for mask models `segmentation` (RLE) and `area` (mask pixels). By default only
people are kept; `--classes` picks other COCO classes by name. Models predict the 80 COCO classes;
their contiguous class index maps to the document's category of the same name, and a class the
document lacks is added with its COCO id.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from lrp.errors import LrpError, UsageError
from lrp.failures import ImageFailures
from lrp.options import BatchSize, Device, Images, Input, KeepGoing, Model, Output, Precision, Quiet, Shard, Weights, Workers

Classes = Annotated[
    str,
    typer.Option("--classes", help="Comma-separated COCO class names to keep (e.g. person,bicycle), or 'all'."),
]
ScoreThreshold = Annotated[
    float, typer.Option("--score-threshold", help="Keep detections scoring above this (Detectron2's test default 0.05).")
]
MaxPerImage = Annotated[
    int,
    typer.Option(
        "--max-per-image",
        min=1,
        help="At most this many detections per image, over all 80 classes before --classes filters "
        "(Detectron2's TEST.DETECTIONS_PER_IMAGE).",
    ),
]


def command(
    input: Input = None,
    images: Images = None,
    output: Output = None,
    model: Model = "faster-rcnn-r101-fpn",
    weights: Weights = None,
    classes: Classes = "person",
    score_threshold: ScoreThreshold = 0.05,
    max_per_image: MaxPerImage = 100,
    device: Device = "auto",
    precision: Precision = "fp32",
    batch_size: BatchSize = 1,
    shard: Shard = None,
    workers: Workers = None,
    keep_going: KeepGoing = False,
    quiet: Quiet = False,
):
    """Detect people (or --classes) in every image into lrp.detections (COCO results, + masks for Mask R-CNN).

    Models: faster-rcnn-r101-fpn (the paper's detector), faster-rcnn-r50-fpn, mask-rcnn-r101-fpn,
    mask-rcnn-r50-fpn (Detectron2 model-zoo weights: `lrp weights convert`), centernet-mbv3 and
    nanodet (small COCO detectors: `lrp weights fetch centernet-mbv3 nanodet`). Boxes are in this document's frame;
    Mask R-CNN adds `segmentation` (RLE) and `area` (mask pixels). Images with nobody give no
    results, not an error.

    Example:

        lrp detect --model mask-rcnn-r101-fpn sr4.json -o sr4-det.json
        lrp degrade --scale 0.25 ... | lrp detect --model centernet-mbv3 | lrp evaluate
    """
    from lrp.inputs import load_document
    from lrp.outputs import write_result
    from lrp.shard import apply_shard

    check_options(model, classes, score_threshold)  # usage errors before reading any input
    doc = apply_shard(load_document(input, images=images, allow_sample=True, quiet=quiet), shard, "detect")
    write_result(
        "detect",
        output,
        lambda: detect_document(
            doc, model=model, weights=weights, classes=classes, score_threshold=score_threshold, max_per_image=max_per_image,
            device=device, precision=precision, batch_size=batch_size, workers=workers, quiet=quiet, keep_going=keep_going,
        ),
    )


def detect_document(
    doc: dict,
    *,
    model: str = "faster-rcnn-r101-fpn",
    weights=None,
    classes: str = "person",
    score_threshold: float = 0.05,
    max_per_image: int = 100,
    device: str = "auto",
    precision: str = "fp32",
    batch_size: int = 1,
    workers: int | None = None,
    quiet: bool = False,
    keep_going: bool = False,
) -> dict:
    """A copy of `doc` with `lrp.detections` from `model` (`doc` is untouched).

    Raises LrpError on the first failing image, or with `keep_going` a PartialFailure after all
    images, carrying the document (the failed images stay, without detections).
    """
    from lrp.document import add_history, derive
    from lrp.timing import Stopwatch, gt_people, module_device, record_timing

    spec, wanted = check_options(model, classes, score_threshold)
    doc = derive(doc)
    category_ids = category_ids_for(doc, wanted)
    detector = load_detector(spec, weights, device, precision, score_threshold, max_per_image, list(category_ids))
    failures = ImageFailures(keep_going)
    watch = Stopwatch(module_device(detector))
    results, _ = detect_images(doc, detector, category_ids, batch_size=batch_size, workers=workers, quiet=quiet, failures=failures, watch=watch)
    doc["lrp"]["detections"] = results
    add_history(
        doc,
        "detect",
        {"model": model, "classes": sorted(category_ids.values()), "score_threshold": score_threshold,
         "max_per_image": max_per_image, "weights": str(weights) if weights else None},
    )
    failed = failures.ids
    ran = [img["id"] for img in doc["images"] if img["id"] not in failed]
    record_timing(doc, watch, len(ran), gt_people(doc, ran))
    if not quiet:
        print(f"lrp detect: {model} on {len(doc['images']) - len(failures)} images -> {len(results)} detections", file=sys.stderr)
    failures.finish(doc["images"], doc, "they have no detections")
    return doc


# --------------------------------------------------------------------------------------------
# Options, classes and categories (no torch)


def check_options(model: str, classes: str, score_threshold: float):
    """(the registry spec, contiguous class indices), or the UsageError of a bad option."""
    from lrp.models import get_model

    wanted = parse_classes(classes)
    if not 0.0 <= score_threshold < 1.0:
        raise UsageError(f"--score-threshold {score_threshold}: expected a value in [0, 1)")
    return get_model(model, task="detect"), wanted


def parse_classes(text: str) -> list[int]:
    """'person,bicycle' or 'all' -> contiguous class indices; unknown names are a usage error."""
    from lrp.models.detect_zoo import COCO_CATEGORIES

    names = [name for _, name, _ in COCO_CATEGORIES]
    if text.strip().lower() == "all":
        return list(range(len(names)))
    wanted = []
    for raw in text.split(","):
        name = raw.strip().lower().replace("_", " ")
        if not name:
            continue
        if name not in names:
            raise UsageError(f"--classes: unknown class {raw.strip()!r}; COCO classes are: {', '.join(names)}")
        if names.index(name) not in wanted:
            wanted.append(names.index(name))
    if not wanted:
        raise UsageError("--classes: no class named (e.g. --classes person)")
    return wanted


def category_ids_for(doc: dict, wanted: list[int]) -> dict[int, int]:
    """Contiguous class index -> the document's category id, adding missing COCO categories."""
    from lrp.models.detect_zoo import COCO_CATEGORIES

    by_name = {c.get("name"): c["id"] for c in doc["categories"]}
    used_ids = {c["id"]: c.get("name") for c in doc["categories"]}
    out = {}
    for idx in wanted:
        coco_id, name, supercategory = COCO_CATEGORIES[idx]
        if name in by_name:
            out[idx] = by_name[name]
            continue
        if coco_id in used_ids:
            raise LrpError(
                f"category id {coco_id} is {used_ids[coco_id]!r} in this document, so COCO class {name!r} cannot be added with its COCO id"
            )
        doc["categories"].append({"id": coco_id, "name": name, "supercategory": supercategory})
        used_ids[coco_id] = name
        out[idx] = coco_id
    return out


# --------------------------------------------------------------------------------------------
# Running a detector


def load_detector(spec, weights, device: str, precision: str, score_threshold: float, max_per_image: int, classes=None):
    """The registry model (lrp.device.load_model), configured for this run."""
    from lrp.device import load_model

    net, _, _ = load_model(spec, weights, device, precision)
    return net.configure(score_thresh=score_threshold, detections_per_image=max_per_image, classes=classes)


def detect_images(doc: dict, detector, category_ids: dict[int, int], *, batch_size=1, workers=None, quiet=False, failures=None, watch=None):
    """COCO detection results for every image of `doc`, and the messages of the images that
    failed: they go to `failures` (an lrp.failures.ImageFailures; by default the first raises)."""
    from lrp.document import image_path
    from lrp.images import load_rgb, parallel_map
    from lrp.timing import timed

    failures = failures if failures is not None else ImageFailures(keep_going=False)
    results: list[dict] = []

    def load(img):
        return img, failures.guard(img["id"], lambda: load_rgb(image_path(doc, img), img["id"], (img["width"], img["height"])))

    batch: list[tuple[dict, object]] = []

    def flush():
        if batch:
            with timed(watch):
                outs = detector.detect([pixels for _, pixels in batch])
            for (img, _), out in zip(batch, outs):
                results.extend(to_coco_results(img["id"], out, category_ids))
            batch.clear()

    for img, pixels in parallel_map(load, doc["images"], workers=workers, desc="detect", quiet=quiet):
        if pixels is None:
            continue
        batch.append((img, pixels))
        if len(batch) >= batch_size:
            flush()
    flush()
    return results, failures.messages(doc["images"])


def to_coco_results(image_id, out: dict, category_ids: dict[int, int]) -> list[dict]:
    """One image's detector output (x1,y1,x2,y2 boxes, scores, classes[, masks]) -> COCO results."""
    import numpy as np

    classes = out["classes"].cpu().numpy()
    keep = np.flatnonzero(np.isin(classes, list(category_ids)))
    if len(keep) == 0:
        return []
    boxes = out["boxes"].float().cpu().numpy()[keep]
    scores = out["scores"].float().cpu().numpy()[keep]
    masks = out["masks"].cpu().numpy()[keep] if "masks" in out else None
    results = []
    for k, (box, score, cls) in enumerate(zip(boxes, scores, classes[keep])):
        x1, y1, x2, y2 = (float(v) for v in box)
        res = {"image_id": image_id, "category_id": category_ids[int(cls)], "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(score)}
        if masks is not None:
            res["segmentation"], res["area"] = encode_mask(masks[k])
        results.append(res)
    return results


def encode_mask(mask) -> tuple[dict, int]:
    """A boolean H x W mask -> (COCO RLE with str counts, pixel count)."""
    import numpy as np
    from pycocotools import mask as mask_util

    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle, int(mask.sum())


# `lrp.detect(...)` calls detect_document (lrp/__init__.py: the Python API).
from lrp import callable_step  # noqa: E402

callable_step(__name__)
