"""The COCO evaluation layer shared by `lrp evaluate`, `lrp bucket` and `lrp mix` (DESIGN.md 4).

pycocotools is the reference: every number is what a `COCOeval` run on the document's own ground
truth and results gives. The engine that computes it is hotcoco by default (a Rust port, held
equal to pycocotools by tests) or pycocotools itself (`--engine pycocotools`); see
lrp/engines.py. What we add:

- person category only, results taken from `lrp.detections` (bbox, segm) and `lrp.poses`
  (keypoints), or the ground truth itself as an oracle (`--oracle`);
- size groups from another frame (the paper's rule): `SizeFrameCOCOeval` lets a person keep the
  S/M/L group or bucket that their area had in a low-resolution frame, while IoU and OKS, which
  are computed before `evaluateImg`, still use the evaluated frame's own areas;
- `summarize_range`, pycocotools' own `summarize` formula for any area range, so that buckets
  can be passed all at once as `params.areaRng`;
- bootstrap resampling of images: each image evaluated once, its results re-accumulated per
  replicate exactly as pycocotools' `accumulate` does.

pycocotools prints progress to stdout; it is redirected so that stdout carries only our table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from lrp import engines
from lrp.document import person_category_id
from lrp.keypoints import oks_sigmas
from lrp.engines import DEFAULT_ENGINE, ENGINES
from lrp.errors import LrpError, UsageError

if TYPE_CHECKING:  # numpy is imported where it is used, so that `lrp --help` stays instant
    import numpy as np

TASKS = ("bbox", "segm", "keypoints")

TASK_TITLES = {
    "bbox": "Person detection (bbox)",
    "segm": "Person segmentation (segm)",
    "keypoints": "Keypoints (OKS)",
}


@dataclass(frozen=True)
class Metric:
    """One entry of pycocotools' `summarize`: AP or AR, IoU threshold, area label, maxDets index."""

    name: str
    ap: bool
    iou: float | None
    area: str
    max_dets_index: int


# Exactly pycocotools' `_summarizeDets` / `_summarizeKps`, in the order of `E.stats`.
DET_METRICS = (
    Metric("AP", True, None, "all", 2),
    Metric("AP50", True, 0.5, "all", 2),
    Metric("AP75", True, 0.75, "all", 2),
    Metric("AP_S", True, None, "small", 2),
    Metric("AP_M", True, None, "medium", 2),
    Metric("AP_L", True, None, "large", 2),
    Metric("AR1", False, None, "all", 0),
    Metric("AR10", False, None, "all", 1),
    Metric("AR", False, None, "all", 2),
    Metric("AR_S", False, None, "small", 2),
    Metric("AR_M", False, None, "medium", 2),
    Metric("AR_L", False, None, "large", 2),
)
KP_METRICS = (
    Metric("AP", True, None, "all", 0),
    Metric("AP50", True, 0.5, "all", 0),
    Metric("AP75", True, 0.75, "all", 0),
    Metric("AP_M", True, None, "medium", 0),
    Metric("AP_L", True, None, "large", 0),
    Metric("AR", False, None, "all", 0),
    Metric("AR50", False, 0.5, "all", 0),
    Metric("AR75", False, 0.75, "all", 0),
    Metric("AR_M", False, None, "medium", 0),
    Metric("AR_L", False, None, "large", 0),
)
METRICS = {"bbox": DET_METRICS, "segm": DET_METRICS, "keypoints": KP_METRICS}

# The columns of the paper's tables (the rest are in the JSON output).
PAPER_COLUMNS = {
    "bbox": ("AP", "AP_S", "AP_M", "AP_L", "AR", "AR_S", "AR_M", "AR_L"),
    "segm": ("AP", "AP_S", "AP_M", "AP_L", "AR", "AR_S", "AR_M", "AR_L"),
    "keypoints": ("AP", "AP_M", "AP_L", "AR", "AR_M", "AR_L"),
}
# Any metric name, lower-cased, to its spelling (the options take ap_m for AP_M).
METRIC_NAMES = {m.name.lower(): m.name for ms in METRICS.values() for m in ms}


# --------------------------------------------------------------------------------------------
# What a document can be evaluated on


def results_tasks(doc: dict) -> list[str]:
    """The tasks that the document's own results support, in TASKS order."""
    detections = doc["lrp"].get("detections") or []
    poses = doc["lrp"].get("poses") or []
    tasks = []
    if detections:
        tasks.append("bbox")
        if all("segmentation" in d for d in detections):
            tasks.append("segm")
    if poses:
        tasks.append("keypoints")
    return tasks


def oracle_tasks(doc: dict) -> list[str]:
    """The tasks the ground truth can stand in for: boxes always, masks and keypoints if present."""
    people = _person_gt(doc)
    tasks = ["bbox"]
    solid = [a for a in people if not a.get("iscrowd")]
    if solid and all(a.get("segmentation") for a in solid):
        tasks.append("segm")
    if any(a.get("num_keypoints", 0) > 0 and a.get("keypoints") for a in people):
        tasks.append("keypoints")
    return tasks


def _person_gt(doc: dict) -> list[dict]:
    cat = person_category_id(doc)
    return [a for a in doc["annotations"] if a.get("category_id") == cat]


def task_results(doc: dict, task: str, oracle: bool = False) -> list[dict]:
    """The results list for `task` (the document's own list: engines copy what they modify)."""
    if oracle:
        return oracle_results(doc, task)
    key = "poses" if task == "keypoints" else "detections"
    return doc["lrp"].get(key) or []


def oracle_results(doc: dict, task: str) -> list[dict]:
    """The ground truth as predictions with score 1: AP must be 1.0 in every frame."""
    out = []
    for a in _person_gt(doc):
        if a.get("iscrowd"):
            continue
        if task == "keypoints":
            if a.get("num_keypoints", 0) > 0 and a.get("keypoints"):
                out.append({"image_id": a["image_id"], "category_id": a["category_id"],
                            "keypoints": list(a["keypoints"]), "score": 1.0})
        else:
            r = {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": list(a["bbox"]), "score": 1.0}
            if task == "segm":
                r["segmentation"] = a["segmentation"]  # engines copy what they modify
            out.append(r)
    return out


# --------------------------------------------------------------------------------------------
# Size groups from another frame


def image_area_factor(img: dict) -> float:
    """How much an area in the origin frame grows in this image's frame (sx * sy)."""
    sx, sy = img["lrp"]["xform"][:2]
    return float(sx) * float(sy)


def frame_scale(doc: dict) -> float:
    """The frame's linear scale relative to the origin (median of sqrt(sx*sy) over images)."""
    import numpy as np

    factors = [image_area_factor(img) for img in doc["images"]]
    if not factors:
        raise LrpError("the document has no images")
    return math.sqrt(float(np.median(factors)))


@dataclass
class SizeFrame:
    """Areas that decide size groups: GT by annotation id, results by a per-image factor."""

    gt_area: dict  # annotation id -> area in the size frame
    det_factor: dict  # image id -> (frame sx*sy) / (evaluated sx*sy)


def size_frame(evaluated: dict, frame: dict, evaluated_name: str, frame_name: str) -> SizeFrame:
    """Size areas from `frame` for `evaluated`; both must hold the same images and annotations."""
    ev_imgs = {img["id"]: img for img in evaluated["images"]}
    fr_imgs = {img["id"]: img for img in frame["images"]}
    _same_ids("image", set(ev_imgs), set(fr_imgs), evaluated_name, frame_name)
    fr_anns = {a["id"]: a for a in frame["annotations"]}
    _same_ids("annotation", {a["id"] for a in evaluated["annotations"]}, set(fr_anns), evaluated_name, frame_name)
    gt_area = {}
    for aid, a in fr_anns.items():
        if "area" not in a:
            raise LrpError(f"{frame_name}: annotation {aid} has no 'area'")
        gt_area[aid] = a["area"]
    det_factor = {iid: image_area_factor(fr_imgs[iid]) / image_area_factor(ev_imgs[iid]) for iid in ev_imgs}
    return SizeFrame(gt_area, det_factor)


def _same_ids(kind: str, evaluated: set, frame: set, evaluated_name: str, frame_name: str) -> None:
    if evaluated == frame:
        return
    missing = sorted(evaluated - frame, key=str)
    extra = sorted(frame - evaluated, key=str)
    detail = f"{kind} {missing[0]} of {evaluated_name} is not in it" if missing else f"it has {kind} {extra[0]}, which {evaluated_name} has not"
    raise LrpError(
        f"{frame_name}: size frame has different {kind} ids from {evaluated_name} ({detail}); "
        "it must be the same dataset in another frame"
    )


# --------------------------------------------------------------------------------------------
# Running COCOeval


class GroundTruth:
    """The document's ground truth for one engine, built once and shared by its tasks."""

    def __init__(self, doc: dict, name: str = "document", engine: str = DEFAULT_ENGINE):
        if engine not in ENGINES:
            raise UsageError(f"--engine {engine!r}: expected one of {', '.join(ENGINES)}")
        # Both engines read these from every annotation and would fail with a bare KeyError.
        for a in doc["annotations"]:
            for key in ("area", "bbox", "iscrowd"):
                if key not in a:
                    raise LrpError(f"{name}: annotation {a['id']} has no '{key}'")
        self.doc, self.name, self.engine = doc, name, engine
        self._coco = None

    @property
    def coco(self):
        if self._coco is None:
            self._coco = engines.hotcoco_gt(self.doc) if self.engine == "hotcoco" else engines.pycocotools_gt(self.doc)
        return self._coco


def gt_coco(doc: dict, name: str = "document", engine: str = DEFAULT_ENGINE) -> GroundTruth:
    return GroundTruth(doc, name, engine)


def _check_results(results: list[dict], task: str, name: str, n_keypoints: int = 17) -> None:
    need = "keypoints" if task == "keypoints" else ("segmentation" if task == "segm" else "bbox")
    where = "lrp.poses" if task == "keypoints" else "lrp.detections"
    # OKS has one sigma per keypoint of the set, so keypoint results hold 3 numbers per keypoint.
    n_values = {"keypoints": 3 * n_keypoints, "bbox": 4}.get(need)
    for i, r in enumerate(results):
        if need not in r:
            raise LrpError(f"{name}: {where}[{i}] (image {r.get('image_id')}) has no '{need}'")
        # pycocotools would fail deep inside numpy on these; say which result is wrong instead.
        if n_values and (not isinstance(r[need], list) or len(r[need]) != n_values):
            got = len(r[need]) if isinstance(r[need], list) else type(r[need]).__name__
            raise LrpError(f"{name}: {where}[{i}] (image {r.get('image_id')}): '{need}' has {got} values, expected {n_values}")


def run_cocoeval(
    doc: dict,
    task: str,
    *,
    name: str = "document",
    area_ranges: Sequence[Sequence[float]] | None = None,
    area_labels: Sequence[str] | None = None,
    sizes: SizeFrame | None = None,
    oracle: bool = False,
    coco_gt: GroundTruth | None = None,
    engine: str | None = None,
    results: list[dict] | None = None,
    img_ids: Sequence[int] | None = None,
    keep_per_image: bool = False,
) -> engines.TaskEval | None:
    """Evaluate and accumulate one task of one document (person category) on an engine.

    Returns a TaskEval whose `eval` is pycocotools' accumulate output and, with the standard
    ranges, `stats` its summary. `results` replaces the document's own; `img_ids` evaluates only
    those images (as on a document restricted to them); `keep_per_image` is needed for
    `bootstrap_evals` (on hotcoco with a size frame). Without results, returns None.
    """
    results = task_results(doc, task, oracle) if results is None else results
    if not results:
        return None
    sigmas = None
    if task == "keypoints":  # the keypoint set's OKS sigmas (an LrpError for a set without them)
        sigmas = oks_sigmas(doc, name)
    _check_results(results, task, name, len(sigmas) if sigmas else 17)
    if task == "keypoints":
        for a in _person_gt(doc):
            if "num_keypoints" not in a or "keypoints" not in a:
                raise LrpError(f"{name}: annotation {a['id']} has no 'num_keypoints'/'keypoints' (needed to evaluate poses)")
    if coco_gt is None or (engine is not None and coco_gt.engine != engine):
        coco_gt = GroundTruth(doc, name, engine or DEFAULT_ENGINE)
    if area_ranges is not None and area_labels is None:
        area_labels = [str(i) for i in range(len(area_ranges))]
    cat = person_category_id(doc)
    kwargs = dict(cat_id=cat, area_ranges=area_ranges, area_labels=area_labels, sizes=sizes, img_ids=img_ids, sigmas=sigmas)
    if coco_gt.engine == "pycocotools":
        E = engines.run_pycocotools(coco_gt.coco, results, task, **kwargs)
    else:
        E = engines.run_hotcoco(doc, coco_gt.coco, results, task, keep_per_image=keep_per_image, **kwargs)
    if area_ranges is None and E.stats is None:
        import numpy as np

        # pycocotools' summarize formula (a test holds it equal to COCOeval's own `stats`).
        E.stats = np.array(list(metric_values(E, task).values()))
    return E


def summarize_range(E, *, ap: bool, area_index: int, max_dets: int, iou: float | None = None, eval_result=None) -> float:
    """pycocotools' `_summarize` for one area range: the mean over defined entries, or -1."""
    import numpy as np

    ev = eval_result if eval_result is not None else E.eval
    p = ev["params"]  # the params accumulate ran with (a bootstrap may keep fewer maxDets)
    m = p.maxDets.index(max_dets)
    s = ev["precision"] if ap else ev["recall"]
    if iou is not None:
        s = s[np.where(iou == p.iouThrs)[0]]
    s = s[:, :, :, area_index, m] if ap else s[:, :, area_index, m]
    kept = s[s > -1]
    return -1 if len(kept) == 0 else float(np.mean(kept))


def metric_values(E, task: str, eval_result=None) -> dict[str, float]:
    """All of pycocotools' summary metrics by name (-1 where undefined), from E.eval."""
    p = E.params
    out = {}
    for m in METRICS[task]:
        area_index = p.areaRngLbl.index(m.area)
        out[m.name] = summarize_range(
            E, ap=m.ap, area_index=area_index, max_dets=p.maxDets[m.max_dets_index], iou=m.iou, eval_result=eval_result
        )
    return out


def defined(value: float) -> float | None:
    """pycocotools' -1 ("no people in this range") as None."""
    return None if value is None or value < 0 else float(value)


def main_max_dets(E) -> int:
    """maxDets of the headline AP/AR: 100 for boxes and masks, 20 for keypoints."""
    return E.params.maxDets[-1]


# --------------------------------------------------------------------------------------------
# Bootstrap over images


def bootstrap_evals(E, n: int, rng: np.random.Generator | None, draws: np.ndarray | None = None, max_dets: int | None = None):
    """Yield `E.eval`-like results for `n` resamplings (with replacement) of the images.

    Every image is evaluated once (E's per-image results); each replicate re-accumulates the
    drawn images' results in draw order, exactly as pycocotools' `accumulate` would on a dataset
    made of the drawn images (tests/test_engine.py checks both). `draws` (n x I indices into the
    sorted image ids) lets several documents share the same resamplings (a paired bootstrap for
    percentage changes). `max_dets` accumulates only that maxDets, which is all that per-bucket
    AP/AR need.
    """
    per = E.per_image()
    if draws is None:
        draws = rng.integers(0, per.n_images, size=(n, per.n_images))
    keep = [max_dets] if max_dets is not None else list(E.params.maxDets)
    for draw in draws:
        yield engines.accumulate_draw(per, E.params, draw, keep)
