"""`lrp pck`: PCK@alpha (box-normalised) and PCKh@0.5 (MPII protocol) per joint.

A joint of a ground-truth person counts when it is annotated (v > 0); it is correct when the
predicted joint lies within `threshold * norm` of it (distance <= bound, as MPII's and poseval's
evaluations test it):
- PCK@alpha: norm = max(w, h) of the person's GT box (MMPose's bbox-normalised PCK);
- PCKh@t: norm = the head size, 0.6 x the diagonal of the person's head box (MPII's
  `SC_BIAS = 0.6`, poseval's `getHeadSize`). The head box is an annotation field this project
  defines: `head_box: [x, y, w, h]` in the document's frame (MPII's head rectangle x1,y1,x2,y2
  becomes [x1, y1, x2 - x1, y2 - y1]).
Predictions (`lrp.poses`) are matched to GT people per image, one to one, greedily by box IoU
(the prediction's `bbox`, else its keypoints' extent), highest first, IoU >= 0.5; a GT person
left without a prediction has every joint wrong. Per joint: correct / annotated, in percent as
MPII tables print it; `mean` weights joints by their counts (MPII's "Mean", which leaves out
pelvis and thorax for MPII-16); left/right joints are also averaged per limb (MPII's "Sho", ...).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Optional

import typer

from lrp.errors import LrpError, UsageError
from lrp.evaluate import Format, Labels, TableOutput
from lrp.options import Quiet

HEAD_SIZE_FACTOR = 0.6
MATCH_IOU = 0.5


def head_size(head_box, where: str) -> float:
    if not isinstance(head_box, list) or len(head_box) != 4 or not all(isinstance(v, (int, float)) for v in head_box):
        raise LrpError(f"{where}: 'head_box' must be [x, y, w, h]")
    size = HEAD_SIZE_FACTOR * math.hypot(head_box[2], head_box[3])
    if not size > 0:
        raise LrpError(f"{where}: 'head_box' {head_box} has no size")
    return size


def box_iou(a, b) -> float:
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax1, bx1) - max(a[0], b[0]))
    ih = max(0.0, min(ay1, by1) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def result_box(r: dict) -> list[float]:
    if isinstance(r.get("bbox"), list) and len(r["bbox"]) == 4:
        return r["bbox"]
    xs, ys = r["keypoints"][0::3], r["keypoints"][1::3]
    return [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]


def match(gts: list[dict], preds: list[dict]) -> dict[int, dict]:
    """GT annotation id -> its prediction (greedy one-to-one by box IoU >= 0.5)."""
    pairs = sorted(
        ((box_iou(g["bbox"], result_box(p)), gi, pi) for gi, g in enumerate(gts) for pi, p in enumerate(preds)),
        key=lambda t: (-t[0], t[1], t[2]),
    )
    used_g, used_p, out = set(), set(), {}
    for iou, gi, pi in pairs:
        if iou < MATCH_IOU:
            break
        if gi in used_g or pi in used_p:
            continue
        used_g.add(gi)
        used_p.add(pi)
        out[gts[gi]["id"]] = preds[pi]
    return out


@dataclass
class JointScores:
    keypoints: tuple[str, ...]
    correct: list[int]
    counted: list[int]
    people: int
    matched: int

    def per_joint(self) -> list[float | None]:
        return [100.0 * c / n if n else None for c, n in zip(self.correct, self.counted)]

    def mean(self, excludes=()) -> float | None:
        keep = [i for i, k in enumerate(self.keypoints) if k not in excludes]
        n = sum(self.counted[i] for i in keep)
        return 100.0 * sum(self.correct[i] for i in keep) / n if n else None

    def limbs(self) -> dict[str, float | None]:
        """MPII's grouping: the mean of the left and right joint's PCK, per joint kind."""
        values = dict(zip(self.keypoints, self.per_joint()))
        out = {}
        for name in self.keypoints:
            if name.startswith("left_") and f"right_{name[5:]}" in values:
                left, right = values[name], values[f"right_{name[5:]}"]
                out[name[5:]] = None if left is None or right is None else 0.5 * (left + right)
        return out


def joint_scores(doc: dict, *, norm: str, threshold: float, name: str = "document", kset=None) -> JointScores:
    """Correct and annotated joints per keypoint over the document (norm: 'bbox' or 'head')."""
    from lrp.document import person_category_id
    from lrp.keypoints import category_set

    kset = kset or category_set(doc, name)
    k = len(kset.keypoints)
    cat = person_category_id(doc)
    gts_by_image: dict = {}
    for a in doc["annotations"]:
        if a.get("category_id") != cat or a.get("iscrowd") or not a.get("num_keypoints"):
            continue
        if len(a.get("keypoints") or []) != 3 * k:
            raise LrpError(f"{name}: annotation {a['id']} has {len(a.get('keypoints') or []) // 3} keypoints, the category {k}")
        gts_by_image.setdefault(a["image_id"], []).append(a)
    preds_by_image: dict = {}
    for i, r in enumerate(doc["lrp"].get("poses") or []):
        if r.get("category_id", cat) != cat:
            continue
        if len(r.get("keypoints") or []) != 3 * k:
            raise LrpError(f"{name}: lrp.poses[{i}] (image {r['image_id']}) has {len(r.get('keypoints') or []) // 3} keypoints, the category {k}")
        preds_by_image.setdefault(r["image_id"], []).append(r)
    correct, counted = [0] * k, [0] * k
    people = matched = 0
    for iid, gts in gts_by_image.items():
        found = match(gts, preds_by_image.get(iid, []))
        for g in gts:
            where = f"{name}: annotation {g['id']} (image {iid})"
            if norm == "head":
                if "head_box" not in g:
                    raise LrpError(f"{where} has no 'head_box' [x, y, w, h]: PCKh needs the head box of every person")
                size = head_size(g["head_box"], where)
            else:
                size = max(g["bbox"][2], g["bbox"][3])
                if not size > 0:
                    raise LrpError(f"{where}: 'bbox' has no size")
            people += 1
            pred = found.get(g["id"])
            matched += pred is not None
            kp = g["keypoints"]
            for j in range(k):
                if kp[3 * j + 2] <= 0:
                    continue
                counted[j] += 1
                if pred is not None:
                    d = math.hypot(pred["keypoints"][3 * j] - kp[3 * j], pred["keypoints"][3 * j + 1] - kp[3 * j + 1])
                    correct[j] += d <= threshold * size
    return JointScores(kset.keypoints, correct, counted, people, matched)


# --------------------------------------------------------------------------------------------
# The command


@dataclass
class PckRun:
    label: str
    name: str
    scores: JointScores
    excludes: tuple[str, ...]


def metric_name(norm: str, threshold: float) -> str:
    return f"PCKh@{threshold:g}" if norm == "head" else f"PCK@{threshold:g}"


def _pct(value: float | None) -> str | None:
    return None if value is None else f"{value:.1f}"  # MPII tables print one decimal


def build_tables(runs: list[PckRun], metric: str):
    from lrp.tables import Table

    t = Table(f"{metric} per joint (%)", ["joint", *[r.label for r in runs]])
    for j, joint in enumerate(runs[0].scores.keypoints):
        t.rows.append([joint, *[_pct(r.scores.per_joint()[j]) for r in runs]])
    for limb in runs[0].scores.limbs():
        t.rows.append([f"{limb} (l+r)/2", *[_pct(r.scores.limbs()[limb]) for r in runs]])
    excl = runs[0].excludes
    t.rows.append(["mean" + (f" (without {', '.join(excl)})" if excl else ""), *[_pct(r.scores.mean(excl)) for r in runs]])
    t.rows.append(["people matched", *[f"{r.scores.matched}/{r.scores.people}" for r in runs]])
    return [t]


def json_data(runs: list[PckRun], metric: str, threshold: float, norm: str) -> dict:
    return {
        "metric": metric,
        "threshold": threshold,
        "norm": "0.6 x head box diagonal" if norm == "head" else "max(w, h) of the GT box",
        "documents": [
            {
                "label": r.label, "file": r.name, "people": r.scores.people, "matched": r.scores.matched,
                "per_joint": dict(zip(r.scores.keypoints, r.scores.per_joint())),
                "counted": dict(zip(r.scores.keypoints, r.scores.counted)),
                "limbs": r.scores.limbs(), "mean": r.scores.mean(r.excludes), "mean_excludes": list(r.excludes),
            }
            for r in runs
        ],
    }


def csv_records(runs: list[PckRun]) -> tuple[list[str], list[dict]]:
    columns = ["label", "file", "joint", "pck", "correct", "counted"]
    records = []
    for r in runs:
        for joint, value, c, n in zip(r.scores.keypoints, r.scores.per_joint(), r.scores.correct, r.scores.counted):
            records.append({"label": r.label, "file": r.name, "joint": joint, "pck": value, "correct": c, "counted": n})
        records.append({"label": r.label, "file": r.name, "joint": "mean", "pck": r.scores.mean(r.excludes)})
    return columns, records


def command(
    documents: Annotated[
        Optional[list[str]], typer.Argument(help="Documents with lrp.poses; '-' or nothing reads stdin.", show_default=False)
    ] = None,
    head: Annotated[bool, typer.Option("--head", help="PCKh: normalise by 0.6 x the head box diagonal (annotation field head_box).")] = False,
    threshold: Annotated[
        Optional[float], typer.Option("--threshold", help="Fraction of the norm (default 0.2 for PCK, 0.5 for PCKh).", show_default=False)
    ] = None,
    keypoint_set: Annotated[
        Optional[str],
        typer.Option("--set", help="Require this keypoint set (coco-17, mpii-16, crowdpose-14, posetrack-15); default: the category's.", show_default=False),
    ] = None,
    label: Labels = None,
    fmt: Format = "table",
    output: TableOutput = None,
    quiet: Quiet = False,
):
    """PCK@alpha (normalised by the GT box's longer side) or, with --head, PCKh@0.5 per joint.

    PCKh is MPII's protocol: a joint is correct within threshold x head size, the head size being
    0.6 x the diagonal of the person's head box, read from the annotation field `head_box`
    [x, y, w, h]. Predictions are matched to GT people by box IoU (>= 0.5, greedy); unmatched
    people count every joint wrong. Values in percent, per joint, per left/right limb, and the
    count-weighted mean (MPII-16: without pelvis and thorax, as MPII's Mean).

        lrp pck --head mpii-sr.json mpii-lr.json --format markdown
    """
    import sys

    from lrp.evaluate import document_labels, load_documents
    from lrp.keypoints import category_set, get_set
    from lrp.tables import check_format, emit

    check_format(fmt)
    norm = "head" if head else "bbox"
    threshold = threshold if threshold is not None else (0.5 if head else 0.2)
    if not threshold > 0:
        raise UsageError(f"--threshold {threshold:g}: must be positive")
    if keypoint_set is not None:
        get_set(keypoint_set)
    named = load_documents(documents or None)
    labels = document_labels(named, label)
    runs = []
    for (name, doc), lbl in zip(named, labels):
        kset = category_set(doc, name, keypoint_set)
        if runs and kset.keypoints != runs[0].scores.keypoints:
            raise LrpError(f"{name}: keypoint set {kset.name} differs from {runs[0].name}'s; compare documents of one set")
        scores = joint_scores(doc, norm=norm, threshold=threshold, name=name, kset=kset)
        runs.append(PckRun(lbl, name, scores, kset.mean_excludes))
    metric = metric_name(norm, threshold)
    if not quiet:
        for r in runs:
            print(f"{metric}: {r.label}: {r.scores.matched} of {r.scores.people} people matched a prediction (box IoU >= {MATCH_IOU})", file=sys.stderr)
    columns, records = csv_records(runs)
    emit(build_tables(runs, metric), fmt, output, csv_columns=columns, records=records, json_data=json_data(runs, metric, threshold, norm))
