"""`lrp crowdpose`: keypoint AP as CrowdPose's official evaluation (crowdpose-api) computes it.

CrowdPose's `cocoeval.py` is pycocotools' with four changes, all reproduced here on pycocotools'
own COCOeval (so every other step, matching and the 101-point precision, is the reference's):
- OKS with CrowdPose's 14 sigmas (lrp.keypoints.CROWDPOSE_14);
- the object scale of a GT person is `bbox_h * bbox_w * 0.53` instead of the mask area, in OKS
  and in the area test (done by giving pycocotools GT annotations with that `area`);
- maxDets 20 and one area range, "all" = [0, 1e5^2];
- AP easy / medium / hard: the images split by their `crowdIndex` (an image field of CrowdPose's
  files) at 0.2 and 0.8 (easy < 0.2 <= medium < 0.8 <= hard), each subset evaluated alone and
  scored as the mean of its whole precision array rounded to 4 decimals, as the official
  `get_type_result` does. An empty split is reported as undefined (the official code gives -1).
"""

from __future__ import annotations

import copy
from typing import Annotated, Optional

import typer

from lrp.errors import LrpError
from lrp.evaluate import Format, Labels, TableOutput
from lrp.options import Quiet

AREA_FACTOR = 0.53
SPLITS = (("easy", 0.0, 0.2), ("medium", 0.2, 0.8), ("hard", 0.8, None))
METRICS = ("AP", "AP50", "AP75", "AR", "AR50", "AR75", "AP_easy", "AP_medium", "AP_hard")


def crowd_splits(doc: dict, name: str = "document") -> dict[str, list[int]]:
    """Image ids per split by `crowdIndex`; every image must have one."""
    out = {s: [] for s, _, _ in SPLITS}
    for img in doc["images"]:
        ci = img.get("crowdIndex")
        if not isinstance(ci, (int, float)) or isinstance(ci, bool):
            raise LrpError(f"{name}: image {img['id']} has no numeric 'crowdIndex' (CrowdPose's crowding of the image), needed for easy/medium/hard")
        split = next(s for s, lo, hi in SPLITS if hi is None or ci < hi)
        out[split].append(img["id"])
    return out


def crowdpose_gt(doc: dict):
    """A pycocotools COCO of the ground truth whose person areas are CrowdPose's box scale."""
    from pycocotools.coco import COCO

    from lrp.engines import quiet_stdout

    anns = []
    for a in doc["annotations"]:
        a = copy.deepcopy(a)
        # The official: tmparea = gt['bbox'][3] * gt['bbox'][2] * 0.53 (same factors, same order).
        a["area"] = a["bbox"][3] * a["bbox"][2] * AREA_FACTOR
        anns.append(a)
    gt = COCO()
    gt.dataset = {"images": copy.deepcopy(doc["images"]), "annotations": anns, "categories": copy.deepcopy(doc["categories"])}
    with quiet_stdout():
        gt.createIndex()
    return gt


def _evaluate(gt, dt, image_ids):
    import numpy as np
    from pycocotools.cocoeval import COCOeval

    from lrp.keypoints import CROWDPOSE_14
    from lrp.engines import quiet_stdout

    E = COCOeval(gt, dt, "keypoints")
    p = E.params
    p.kpt_oks_sigmas = np.array(CROWDPOSE_14.sigmas)
    p.maxDets = [20]
    p.areaRng = [[0**2, 1e5**2]]
    p.areaRngLbl = ["all"]
    p.imgIds = sorted(image_ids)
    with quiet_stdout():
        E.evaluate()
        E.accumulate()
    return E


def _summary(E, ap: bool, iou: float | None = None) -> float:
    """The official `_summarize` for area 'all', maxDets 20: the mean of defined entries, or -1."""
    import numpy as np

    p = E.params
    if ap:
        s = E.eval["precision"]
        if iou is not None:
            s = s[np.where(abs(iou - p.iouThrs) < 0.01)[0]]
        s = s[:, :, :, 0, 0]
    else:
        s = E.eval["recall"]
        if iou is not None:
            s = s[np.where(iou == p.iouThrs)[0]]
        s = s[:, :, 0, 0]
    kept = s[s > -1]
    return -1.0 if len(kept) == 0 else float(np.mean(kept))


def evaluate_crowdpose(doc: dict, name: str = "document") -> dict[str, float | None]:
    """CrowdPose's keypoint summary (its stats 0-2, 5-10) of the document's lrp.poses."""
    import numpy as np

    from lrp.keypoints import category_set

    category_set(doc, name, expect="crowdpose-14")
    poses = doc["lrp"].get("poses") or []
    if not poses:
        raise LrpError(f"{name} has no lrp.poses to evaluate")
    for i, r in enumerate(poses):
        if not isinstance(r.get("keypoints"), list) or len(r["keypoints"]) != 3 * 14:
            n = len(r["keypoints"]) // 3 if isinstance(r.get("keypoints"), list) else 0
            raise LrpError(f"{name}: lrp.poses[{i}] (image {r['image_id']}) has {n} keypoints, CrowdPose has 14")
    for a in doc["annotations"]:
        if not isinstance(a.get("bbox"), list) or len(a["bbox"]) != 4:
            raise LrpError(f"{name}: annotation {a['id']} has no [x, y, w, h] 'bbox' (CrowdPose's OKS scale)")
    splits = crowd_splits(doc, name)
    gt = crowdpose_gt(doc)
    from lrp.engines import quiet_stdout

    results = copy.deepcopy(poses)
    if not all("bbox" in r for r in results):
        # loadRes takes the box branch when the first result has a box, and fails on one that
        # has none; what it derives (the results' areas) only matters outside the one range.
        for r in results:
            r.pop("bbox", None)
    with quiet_stdout():
        dt = gt.loadRes(results)
    E = _evaluate(gt, dt, [img["id"] for img in doc["images"]])
    out = {
        "AP": _summary(E, True), "AP50": _summary(E, True, 0.5), "AP75": _summary(E, True, 0.75),
        "AR": _summary(E, False), "AR50": _summary(E, False, 0.5), "AR75": _summary(E, False, 0.75),
    }
    for split, ids in splits.items():
        if not ids:
            out[f"AP_{split}"] = None
            continue
        Es = _evaluate(gt, dt, ids)
        out[f"AP_{split}"] = round(float(np.mean(Es.eval["precision"][:, :, :, 0, :])), 4)
    return {k: (None if v is not None and v < 0 else v) for k, v in out.items()}


def command(
    documents: Annotated[
        Optional[list[str]], typer.Argument(help="CrowdPose documents with lrp.poses; '-' or nothing reads stdin.", show_default=False)
    ] = None,
    label: Labels = None,
    fmt: Format = "table",
    output: TableOutput = None,
    quiet: Quiet = False,
):
    """Keypoint AP/AR as CrowdPose's official evaluation, with its easy/medium/hard split.

    CrowdPose-14 keypoints and sigmas, object scale 0.53 x box area, maxDets 20; AP easy,
    medium and hard over the images whose `crowdIndex` is < 0.2, in [0.2, 0.8) and >= 0.8.
    The numbers are pycocotools' own COCOeval with those settings.

        lrp crowdpose crowdpose-val-sr.json crowdpose-val-lr.json --format markdown
    """
    import sys

    from lrp.evaluate import document_labels, load_documents
    from lrp.tables import Table, check_format, emit

    check_format(fmt)
    named = load_documents(documents or None)
    labels = document_labels(named, label)
    rows = []
    for (name, doc), lbl in zip(named, labels):
        rows.append((lbl, name, evaluate_crowdpose(doc, name), {k: len(v) for k, v in crowd_splits(doc, name).items()}))
    if not quiet:
        for lbl, _, _, counts in rows:
            print(f"crowdpose: {lbl}: images easy/medium/hard {counts['easy']}/{counts['medium']}/{counts['hard']}; maxDets 20", file=sys.stderr)
    table = Table("CrowdPose keypoints (official protocol)", ["document", *METRICS])
    for lbl, _, m, _ in rows:
        table.rows.append([lbl, *[m[k] for k in METRICS]])
    records = [{"label": lbl, "file": name, **m, **{f"images_{k}": v for k, v in counts.items()}} for lbl, name, m, counts in rows]
    columns = ["label", "file", *METRICS, "images_easy", "images_medium", "images_hard"]
    emit([table], fmt, output, csv_columns=columns, records=records, json_data=records)
