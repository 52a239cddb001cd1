"""The COCO evaluation engines behind `lrp evaluate`, `lrp bucket` and `lrp mix --threshold auto`.

Two engines give the same numbers (tests/test_engine.py holds them equal to a plain pycocotools
`COCOeval` on real and synthetic data, every AP/AR, crowds, masks, keypoints, size frames):

- `hotcoco` (default): a Rust port of pycocotools' matching and accumulation. On a 5,000-image
  document it evaluates boxes and keypoints about 10x faster than pycocotools (see
  bench/bench_evaluate.py); it reads the document's lists without copying them into Python.
- `pycocotools`: the reference itself, `COCOeval` with the size-frame hook of lrp/cocoeval.py.

Both hand back a `TaskEval`: pycocotools' `eval` dict (precision T x R x K x A x M, recall
T x K x A x M), its params, and on demand the per-image results (`PerImage`) from which
`accumulate_draw` re-accumulates any resampling of the images, for the bootstrap: each image is
evaluated once, and a replicate costs a sort of the drawn images' detections.

**Size groups from another frame, on hotcoco.** pycocotools decides size groups inside
`evaluateImg` from the same `area` that OKS divides by, so lrp swaps areas around that call.
hotcoco has no such hook, so the rule is expressed in its data instead:

- boxes and masks: IoU never reads `area`, so the ground truth simply carries its size-frame
  area and each result its area times the image's frame factor (the same product pycocotools'
  hook computes); the area ranges are the usual ones.
- keypoints: OKS divides by the ground truth's own `area`, which must stay. Every area range
  becomes a category of its own: a copy of each person whose size-frame area is outside the range
  has `num_keypoints` 0 (pycocotools' own ignore flag for keypoints, which OKS does not read),
  and a copy of each pose carries as `area` a code, in or out of the range, tested against one
  range that holds every real area. Per image and category this is exactly what `evaluateImg`
  does per image and range: the same OKS, the same ignored people, the same ignored unmatched
  poses; accumulation is per category as it is per range.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Sequence

if TYPE_CHECKING:
    import numpy as np

ENGINES = ("hotcoco", "pycocotools")
DEFAULT_ENGINE = "hotcoco"

_KEYPOINT_GT_KEYS = ("image_id", "iscrowd", "bbox", "area", "keypoints")

# One range that holds every real area, for the per-range categories of keypoints on hotcoco.
_WIDE = 1e300


@dataclass
class EvalParams:
    """The parts of pycocotools' `Params` that accumulation and summaries read."""

    iouType: str
    imgIds: list
    catIds: list
    iouThrs: "np.ndarray"
    recThrs: "np.ndarray"
    maxDets: list
    areaRng: list
    areaRngLbl: list


@dataclass
class TaskEval:
    """One evaluated task: `eval` is pycocotools' accumulate output, `stats` its summary."""

    task: str
    engine: str
    params: EvalParams
    eval: dict
    stats: "np.ndarray | None" = None
    _per_image: Callable[[], "PerImage"] | None = field(default=None, repr=False)
    _cached: "PerImage | None" = field(default=None, repr=False)

    def per_image(self) -> "PerImage":
        if self._cached is None:
            self._cached = self._per_image()
        return self._cached


def default_params(task: str) -> EvalParams:
    from pycocotools.cocoeval import Params

    p = Params(iouType=task)
    return EvalParams(task, [], [], p.iouThrs, p.recThrs, list(p.maxDets), [list(r) for r in p.areaRng], list(p.areaRngLbl))


# --------------------------------------------------------------------------------------------
# Per-image results and accumulation over any list of images


@dataclass
class _Cell:
    """The detections of one (category, area range) over all images, image by image in order."""

    score: "np.ndarray"  # (N,) as in evalImgs: sorted by score within each image
    matched: "np.ndarray"  # (T, N) bool: dtMatches != 0
    ignored: "np.ndarray"  # (T, N) bool: dtIgnore
    image: "np.ndarray"  # (N,) image index
    rank: "np.ndarray"  # (N,) position within its image
    npig: "np.ndarray"  # (I,) people not ignored, per image
    present: "np.ndarray"  # (I,) bool: pycocotools has an evalImg (not None) for this image
    _layouts: dict = field(default_factory=dict, repr=False)

    def layout(self, max_det: int, n_images: int):
        """The detections within maxDets of their image, their count and first position per image."""
        import numpy as np

        if max_det not in self._layouts:
            kept = np.flatnonzero(self.rank < max_det)
            counts = np.bincount(self.image[kept], minlength=n_images)
            starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
            self._layouts[max_det] = (kept, counts, starts)
        return self._layouts[max_det]


@dataclass
class PerImage:
    """pycocotools' `evalImgs` as arrays: cells[k][a] for category k and area range a."""

    n_images: int
    n_iou: int
    cells: list


def per_image_from_evalimgs(entries, n_cat: int, n_area: int, n_img: int, n_iou: int) -> PerImage:
    """Arrays from evalImgs dicts, given as (k, a, i, dict) for category k, area range a, image i."""
    import numpy as np

    parts = [[[] for _ in range(n_area)] for _ in range(n_cat)]
    for k, a, i, e in entries:
        if e is not None:
            parts[k][a].append((i, e))
    cells = []
    for k in range(n_cat):
        row = []
        for a in range(n_area):
            items = sorted(parts[k][a], key=lambda t: t[0])
            npig = np.zeros(n_img, dtype=np.int64)
            present = np.zeros(n_img, dtype=bool)
            scores, matched, ignored, image, rank = [], [], [], [], []
            for i, e in items:
                present[i] = True
                npig[i] = int(np.count_nonzero(np.asarray(e["gtIgnore"], dtype=bool) == 0))
                d = len(e["dtScores"])
                if d == 0:
                    continue
                scores.append(np.asarray(e["dtScores"], dtype=np.float64))
                matched.append(np.asarray(e["dtMatches"], dtype=np.float64).reshape(n_iou, d) != 0)
                ignored.append(np.asarray(e["dtIgnore"], dtype=bool).reshape(n_iou, d))
                image.append(np.full(d, i, dtype=np.int64))
                rank.append(np.arange(d))
            cat = lambda xs, shape: np.concatenate(xs, axis=-1) if xs else np.zeros(shape)  # noqa: E731
            row.append(_Cell(
                cat(scores, (0,)), cat(matched, (n_iou, 0)).astype(bool), cat(ignored, (n_iou, 0)).astype(bool),
                cat(image, (0,)).astype(np.int64), cat(rank, (0,)).astype(np.int64), npig, present,
            ))
        cells.append(row)
    return PerImage(n_img, n_iou, cells)


def accumulate_draw(per: PerImage, params: EvalParams, draw: "np.ndarray", max_dets: Sequence[int]) -> dict:
    """pycocotools' `accumulate` over the images `draw` (indices, repeats allowed, in order).

    The same operations in the same order as `COCOeval.accumulate` on the evalImgs of those
    images, so the numbers are the same bits: detections concatenated image by image in draw
    order, a stable sort by score, cumulative sums, the precision envelope, recall thresholds.
    """
    import numpy as np

    draw = np.asarray(draw, dtype=np.int64)
    T, R = len(params.iouThrs), len(params.recThrs)
    K, A, M = len(per.cells), len(per.cells[0]) if per.cells else 0, len(max_dets)
    precision = -np.ones((T, R, K, A, M))
    recall = -np.ones((T, K, A, M))
    rec_thrs = np.asarray(params.recThrs)
    eps = np.spacing(1)
    for k, row in enumerate(per.cells):
        for a, cell in enumerate(row):
            if not cell.present[draw].any():
                continue
            npig = int(cell.npig[draw].sum())
            if npig == 0:
                continue
            previous = None
            for m, max_det in enumerate(max_dets):
                kept, counts, starts = cell.layout(max_det, per.n_images)
                if previous is not None and len(kept) == len(previous):
                    # No image has more detections than the smaller maxDets: the same numbers.
                    precision[:, :, k, a, m] = precision[:, :, k, a, m - 1]
                    recall[:, k, a, m] = recall[:, k, a, m - 1]
                    continue
                previous = kept
                lengths = counts[draw]
                total = int(lengths.sum())
                # Positions of the drawn images' blocks, one after the other, in draw order.
                offsets = np.repeat(starts[draw] - (np.cumsum(lengths) - lengths), lengths)
                idx = kept[offsets + np.arange(total)]
                scores = cell.score[idx]
                order = np.argsort(-scores, kind="mergesort")
                idx = idx[order]
                dtm = cell.matched[:, idx]
                dtig = cell.ignored[:, idx]
                tps = np.logical_and(dtm, np.logical_not(dtig))
                fps = np.logical_and(np.logical_not(dtm), np.logical_not(dtig))
                tp_sum = np.cumsum(tps, axis=1).astype(dtype=float)
                fp_sum = np.cumsum(fps, axis=1).astype(dtype=float)
                for t in range(T):
                    tp, fp = tp_sum[t], fp_sum[t]
                    nd = len(tp)
                    rc = tp / npig
                    pr = tp / (fp + tp + eps)
                    recall[t, k, a, m] = rc[-1] if nd else 0
                    # The envelope pycocotools builds right to left, as a running maximum.
                    pr = np.maximum.accumulate(pr[::-1])[::-1] if nd else pr
                    inds = np.searchsorted(rc, rec_thrs, side="left")
                    q = np.zeros(R)
                    ok = inds < nd
                    q[ok] = pr[inds[ok]]
                    precision[t, :, k, a, m] = q
    p = copy.copy(params)
    p.maxDets = list(max_dets)
    return {"params": p, "precision": precision, "recall": recall}


# --------------------------------------------------------------------------------------------
# pycocotools


def pycocotools_gt(dataset: dict):
    """A pycocotools COCO over copies of the ground truth (it writes 'ignore' into annotations)."""
    from pycocotools.coco import COCO

    from lrp.cocoeval import quiet_stdout

    coco = COCO()
    coco.dataset = {k: copy.deepcopy(dataset[k]) for k in ("info", "images", "annotations", "categories")}
    with quiet_stdout():
        coco.createIndex()
    return coco


def run_pycocotools(coco_gt, results, task, *, cat_id, area_ranges, area_labels, sizes, img_ids=None) -> TaskEval:
    from lrp.cocoeval import quiet_stdout, size_frame_cocoeval_class

    cls = size_frame_cocoeval_class()
    with quiet_stdout():
        coco_dt = coco_gt.loadRes(copy.deepcopy(results))  # loadRes writes ids and areas into it
        E = cls(coco_gt, coco_dt, task)
        E.sizes = sizes
        E.params.catIds = [cat_id]
        if img_ids is not None:
            E.params.imgIds = sorted(img_ids)
        if area_ranges is not None:
            E.params.areaRng = [list(r) for r in area_ranges]
            E.params.areaRngLbl = list(area_labels)
        E.evaluate()
        E.accumulate()
        if area_ranges is None:
            E.summarize()
    p = E._paramsEval
    params = EvalParams(task, list(p.imgIds), list(p.catIds), p.iouThrs, p.recThrs, list(p.maxDets),
                        [list(r) for r in p.areaRng], list(p.areaRngLbl))
    n_img, n_area = len(p.imgIds), len(p.areaRng)

    def per_image():
        # evalImgs is ordered category, area range, image (as accumulate reads it).
        entries = ((*_pycocotools_cell(j, n_area, n_img), e) for j, e in enumerate(E.evalImgs))
        return per_image_from_evalimgs(entries, 1, n_area, n_img, len(p.iouThrs))

    ev = dict(E.eval)
    ev["params"] = params
    return TaskEval(task, "pycocotools", params, ev, E.stats if area_ranges is None else None, per_image)


def _pycocotools_cell(j: int, n_area: int, n_img: int) -> tuple[int, int, int]:
    k, rest = divmod(j, n_area * n_img)
    a, i = divmod(rest, n_img)
    return k, a, i


# --------------------------------------------------------------------------------------------
# hotcoco


def hotcoco_gt(dataset: dict):
    """A hotcoco COCO over the ground truth (read into Rust; our dicts are not modified)."""
    import hotcoco

    return hotcoco.COCO({k: dataset[k] for k in ("images", "annotations", "categories")})


def run_hotcoco(dataset, coco_gt, results, task, *, cat_id, area_ranges, area_labels, sizes, img_ids=None) -> TaskEval:
    """Evaluate with hotcoco; `coco_gt` is the plain GT (shared between tasks), `dataset` the doc."""
    import hotcoco
    import numpy as np

    base = default_params(task)
    ranges = [list(r) for r in area_ranges] if area_ranges is not None else base.areaRng
    labels = list(area_labels) if area_ranges is not None else base.areaRngLbl
    ids = sorted(img_ids) if img_ids is not None else sorted(img["id"] for img in dataset["images"])
    per_range_categories = sizes is not None and task == "keypoints"
    if per_range_categories:
        gt, dt, cat_ids = _keypoints_by_range(dataset, results, cat_id, ranges, sizes)
        eval_ranges, eval_labels = [[-_WIDE, _WIDE]], ["all"]
    else:
        gt = coco_gt
        if sizes is not None:  # boxes, masks: areas only decide size groups
            gt = hotcoco_gt(dataset)
            gt_ids = np.array([a["id"] for a in dataset["annotations"]], dtype=np.int64)
            gt.update_anns(ids=gt_ids, area=np.array([sizes.gt_area[i] for i in gt_ids.tolist()], dtype=np.float64))
        dt = gt.load_res(results)
        if sizes is not None:
            anns = dt.anns
            dt_ids = np.array(sorted(anns), dtype=np.int64)
            area = np.array([anns[i]["area"] * sizes.det_factor[anns[i]["image_id"]] for i in dt_ids.tolist()], dtype=np.float64)
            dt.update_anns(ids=dt_ids, area=area)
        cat_ids = [cat_id]
        eval_ranges, eval_labels = ranges, labels
    E = hotcoco.COCOeval(gt, dt, task)
    E.params.cat_ids = cat_ids
    E.params.img_ids = ids
    E.params.area_rng = eval_ranges
    E.params.area_rng_lbl = eval_labels
    E.evaluate()
    E.accumulate()
    precision, recall = E.eval["precision"], E.eval["recall"]
    if per_range_categories:  # category k is area range k: back to one category, A ranges
        precision = np.ascontiguousarray(precision.transpose(0, 1, 3, 2, 4))
        recall = np.ascontiguousarray(recall.transpose(0, 2, 1, 3))
    params = EvalParams(task, ids, [cat_id], base.iouThrs, base.recThrs, base.maxDets, ranges, labels)
    n_area, n_img = len(ranges), len(ids)
    index = {iid: i for i, iid in enumerate(ids)}
    range_index = {tuple(r): a for a, r in enumerate(eval_ranges)}
    cat_index = {c: k for k, c in enumerate(cat_ids)}

    def locate(e):
        a = cat_index[e["category_id"]] if per_range_categories else range_index[tuple(e["aRng"])]
        return 0, a, index[e["image_id"]], e

    def per_image():
        entries = (locate(e) for e in E.eval_imgs if e is not None)
        return per_image_from_evalimgs(entries, 1, n_area, n_img, len(base.iouThrs))

    ev = {"params": params, "precision": precision, "recall": recall}
    return TaskEval(task, "hotcoco", params, ev, None, per_image)


def _keypoints_by_range(dataset, results, cat_id, ranges, sizes):
    """hotcoco inputs with one category per area range (see the module docstring)."""
    import numpy as np

    people = [a for a in dataset["annotations"] if a.get("category_id") == cat_id]
    # Only what keypoint evaluation reads (no masks: OKS never looks at them).
    slim = [{k: a[k] for k in _KEYPOINT_GT_KEYS if k in a} for a in people]
    anns = []
    for r, (lo, hi) in enumerate(ranges):
        for a, b in zip(people, slim):
            s = sizes.gt_area[a["id"]]
            outside = s < lo or s > hi
            anns.append({**b, "id": len(anns) + 1, "category_id": r + 1, "num_keypoints": 0 if outside else a["num_keypoints"]})
    cats = [{"id": r + 1, "name": f"range {r}"} for r in range(len(ranges))]
    gt = hotcoco_gt({"images": dataset["images"], "annotations": anns, "categories": cats})
    # pycocotools' loadRes area of a pose: the box around its keypoints.
    kp = np.array([r["keypoints"] for r in results], dtype=np.float64).reshape(len(results), -1)
    x, y = kp[:, 0::3], kp[:, 1::3]
    area = (x.max(axis=1) - x.min(axis=1)) * (y.max(axis=1) - y.min(axis=1))
    factor = np.array([sizes.det_factor[r["image_id"]] for r in results], dtype=np.float64)
    sized = [float(v) for v in (area * factor)]
    dts, codes = [], []
    for r, (lo, hi) in enumerate(ranges):
        for d, s in zip(results, sized):
            dts.append({"image_id": d["image_id"], "category_id": r + 1, "keypoints": d["keypoints"], "score": d["score"]})
            codes.append(np.inf if (s < lo or s > hi) else 0.0)
    dt = gt.load_res(dts)
    dt.update_anns(ids=np.arange(1, len(dts) + 1, dtype=np.int64), area=np.array(codes, dtype=np.float64))
    for a in people:
        if not -_WIDE <= a["area"] <= _WIDE:
            from lrp.errors import LrpError

            raise LrpError(f"annotation {a['id']}: area {a['area']!r} is not a finite number")
    return gt, dt, [r + 1 for r in range(len(ranges))]
