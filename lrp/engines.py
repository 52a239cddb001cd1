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
- keypoints: OKS divides by the ground truth's own `area`, which must stay. So each area range
  is one hotcoco run with one range that holds every real area: a person whose size-frame area
  is outside the range has `num_keypoints` 0 for that run (pycocotools' own ignore flag for
  keypoints, which OKS does not read), and each pose carries as `area` a code, in (0) or out
  (inf) of the range. Per image this is exactly what `evaluateImg` does for that range: the
  same OKS, the same ignored people, the same ignored unmatched poses; the runs' accumulations
  are pycocotools' per range, stacked on its area axis.
"""

from __future__ import annotations

import contextlib
import copy
import io
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Sequence

if TYPE_CHECKING:
    import numpy as np

ENGINES = ("hotcoco", "pycocotools")
DEFAULT_ENGINE = "hotcoco"

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
class _Dets:
    """The detections of one category over all images, image by image in order.

    pycocotools' evalImgs of one image hold the same detections in the same order for every
    area range (only what is matched or ignored differs), so this layout is shared by them.
    """

    score: "np.ndarray"  # (N,) as in evalImgs: sorted by score within each image
    image: "np.ndarray"  # (N,) image index
    rank: "np.ndarray"  # (N,) position within its image
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
class _Cell:
    """One (category, area range): what each detection of `_Dets` is, and the people per image."""

    matched: "np.ndarray"  # (T, N) bool: dtMatches != 0
    ignored: "np.ndarray"  # (T, N) bool: dtIgnore
    npig: "np.ndarray"  # (I,) people not ignored, per image
    present: "np.ndarray"  # (I,) bool: pycocotools has an evalImg (not None) for this image


@dataclass
class PerImage:
    """pycocotools' `evalImgs` as arrays: dets[k] and cells[k][a] for category k, area range a."""

    n_images: int
    n_iou: int
    dets: list
    cells: list


def _rows(blocks: list, n_iou: int, dtype) -> "np.ndarray":
    """(T, N) from per-image (T, D) blocks, as arrays (pycocotools) or lists of rows (hotcoco)."""
    import numpy as np
    from itertools import chain

    if not blocks:
        return np.zeros((n_iou, 0), dtype=dtype)
    if isinstance(blocks[0], np.ndarray):
        return np.concatenate([np.asarray(b).reshape(n_iou, -1) for b in blocks], axis=1).astype(dtype)
    return np.array([list(chain.from_iterable(b[t] for b in blocks)) for t in range(n_iou)], dtype=np.float64).astype(dtype)


def per_image_from_evalimgs(entries, n_cat: int, n_area: int, n_img: int, n_iou: int) -> PerImage:
    """Arrays from evalImgs dicts, given as (k, a, i, dict) for category k, area range a, image i."""
    parts = [[[] for _ in range(n_area)] for _ in range(n_cat)]
    for k, a, i, e in entries:
        if e is not None:
            parts[k][a].append((i, e))
    dets, cells = [], []
    for k in range(n_cat):
        layout, row = None, []
        for a in range(n_area):
            layout, cell = cell_from_evalimgs(parts[k][a], n_img, n_iou, layout)
            row.append(cell)
        dets.append(layout)
        cells.append(row)
    return PerImage(n_img, n_iou, dets, cells)


def cell_from_evalimgs(items, n_img: int, n_iou: int, layout: "_Dets | None" = None) -> tuple["_Dets", "_Cell"]:
    """One (category, area range) from its (image index, evalImg) pairs; checks `layout` if given.

    An image without an entry (not evaluated, or None) holds nothing here: no people, no
    detections.
    """
    import numpy as np
    from itertools import chain

    items = sorted(items, key=lambda t: t[0])
    images = np.array([i for i, _ in items], dtype=np.int64)
    lengths = np.array([len(e["dtScores"]) for _, e in items], dtype=np.int64)
    scores = np.fromiter(chain.from_iterable(e["dtScores"] for _, e in items), dtype=np.float64, count=int(lengths.sum()))
    with_dets = [e for _, e in items if len(e["dtScores"])]
    present = np.zeros(n_img, dtype=bool)
    present[images] = True
    npig = np.zeros(n_img, dtype=np.int64)
    npig[images] = [len(e["gtIgnore"]) - int(np.count_nonzero(e["gtIgnore"])) for _, e in items]
    image = np.repeat(images, lengths)
    if layout is None:
        starts = np.cumsum(lengths) - lengths
        layout = _Dets(scores, image, np.arange(len(image)) - np.repeat(starts, lengths))
    elif not (np.array_equal(layout.image, image) and np.array_equal(layout.score, scores)):
        raise AssertionError("evalImgs hold different detections for two area ranges of one image")
    cell = _Cell(
        _rows([e["dtMatches"] for e in with_dets], n_iou, np.float64) != 0,
        _rows([e["dtIgnore"] for e in with_dets], n_iou, bool),
        npig, present,
    )
    return layout, cell


def accumulate_draw(per: PerImage, params: EvalParams, draw: "np.ndarray", max_dets: Sequence[int]) -> dict:
    """pycocotools' `accumulate` over the images `draw` (indices, repeats allowed, in order).

    The same operations in the same order as `COCOeval.accumulate` on the evalImgs of those
    images, so the numbers are the same bits: detections concatenated image by image in draw
    order, a stable sort by score, cumulative sums, the precision envelope, recall thresholds.
    The sort is done once per category and maxDets and serves every area range.
    """
    import numpy as np

    draw = np.asarray(draw, dtype=np.int64)
    T, R = len(params.iouThrs), len(params.recThrs)
    K, A, M = len(per.cells), len(per.cells[0]) if per.cells else 0, len(max_dets)
    precision = -np.ones((T, R, K, A, M))
    recall = -np.ones((T, K, A, M))
    rec_thrs = np.asarray(params.recThrs)
    eps = np.spacing(1)
    for k, (dets, row) in enumerate(zip(per.dets, per.cells)):
        npigs = [int(cell.npig[draw].sum()) if cell.present[draw].any() else 0 for cell in row]
        if not any(npigs):
            continue
        previous = None
        for m, max_det in enumerate(max_dets):
            kept, counts, starts = dets.layout(max_det, per.n_images)
            if previous is not None and len(kept) == len(previous):
                # No image has more detections than the smaller maxDets: the same numbers.
                precision[:, :, k, :, m] = precision[:, :, k, :, m - 1]
                recall[:, k, :, m] = recall[:, k, :, m - 1]
                continue
            previous = kept
            lengths = counts[draw]
            total = int(lengths.sum())
            # Positions of the drawn images' blocks, one after the other, in draw order.
            offsets = np.repeat(starts[draw] - (np.cumsum(lengths) - lengths), lengths)
            idx = kept[offsets + np.arange(total)]
            idx = idx[np.argsort(-dets.score[idx], kind="mergesort")]
            nd = len(idx)
            for a, (cell, npig) in enumerate(zip(row, npigs)):
                if npig == 0:
                    continue
                dtm = cell.matched[:, idx]
                dtig = cell.ignored[:, idx]
                tps = np.logical_and(dtm, np.logical_not(dtig))
                fps = np.logical_and(np.logical_not(dtm), np.logical_not(dtig))
                tp = np.cumsum(tps, axis=1).astype(dtype=float)
                fp = np.cumsum(fps, axis=1).astype(dtype=float)
                rc = tp / npig
                pr = tp / (fp + tp + eps)
                recall[:, k, a, m] = rc[:, -1] if nd else 0
                q = np.zeros((T, R))
                if nd:
                    # The envelope pycocotools builds right to left, as a running maximum.
                    pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]
                    for t in range(T):
                        inds = np.searchsorted(rc[t], rec_thrs, side="left")
                        ok = inds < nd
                        q[t, ok] = pr[t, inds[ok]]
                precision[:, :, k, a, m] = q
    p = copy.copy(params)
    p.maxDets = list(max_dets)
    return {"params": p, "precision": precision, "recall": recall}


# --------------------------------------------------------------------------------------------
# pycocotools


@contextlib.contextmanager
def quiet_stdout():
    """pycocotools prints progress with print(); keep it off our stdout."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def size_frame_cocoeval_class():
    from pycocotools.cocoeval import COCOeval

    class SizeFrameCOCOeval(COCOeval):
        """COCOeval whose area ranges look at areas from another frame.

        `evaluate()` computes every IoU/OKS first (with the evaluated frame's own areas) and
        only then calls `evaluateImg` per image and area range, the one place where areas
        decide who is ignored. So we swap the size areas in around that call and back after.
        """

        sizes = None  # a lrp.cocoeval.SizeFrame while evaluating in another frame

        def evaluateImg(self, imgId, catId, aRng, maxDet):
            if self.sizes is None:
                return super().evaluateImg(imgId, catId, aRng, maxDet)
            gts, dts = self._gts[imgId, catId], self._dts[imgId, catId]
            saved = [(o, o["area"]) for o in (*gts, *dts)]
            factor = self.sizes.det_factor[imgId]
            try:
                for g in gts:
                    g["area"] = self.sizes.gt_area[g["id"]]
                for d in dts:
                    d["area"] = d["area"] * factor
                return super().evaluateImg(imgId, catId, aRng, maxDet)
            finally:
                for o, area in saved:
                    o["area"] = area

    return SizeFrameCOCOeval


def pycocotools_gt(dataset: dict):
    """A pycocotools COCO over copies of the ground truth (it writes 'ignore' into annotations)."""
    from pycocotools.coco import COCO

    coco = COCO()
    coco.dataset = {k: copy.deepcopy(dataset[k]) for k in ("info", "images", "annotations", "categories")}
    with quiet_stdout():
        coco.createIndex()
    return coco


def run_pycocotools(coco_gt, results, task, *, cat_id, area_ranges, area_labels, sizes, img_ids=None, sigmas=None) -> TaskEval:
    """`sigmas`: the OKS sigmas of the keypoint set (None: pycocotools' own, COCO-17's)."""
    import numpy as np

    cls = size_frame_cocoeval_class()
    with quiet_stdout():
        coco_dt = coco_gt.loadRes(copy.deepcopy(results))  # loadRes writes ids and areas into it
        E = cls(coco_gt, coco_dt, task)
        E.sizes = sizes
        E.params.catIds = [cat_id]
        if sigmas is not None:
            E.params.kpt_oks_sigmas = np.array(sigmas, dtype=np.float64)
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


def run_hotcoco(
    dataset, coco_gt, results, task, *, cat_id, area_ranges, area_labels, sizes, img_ids=None, keep_per_image=False, sigmas=None
) -> TaskEval:
    """Evaluate with hotcoco; `coco_gt` is the plain GT (shared between tasks), `dataset` the doc.

    With a size frame, `coco_gt` is changed for the evaluation (areas, or `num_keypoints` per
    range) and restored afterwards, so that no second copy of the ground truth is built.
    `keep_per_image` keeps what the bootstrap needs (read now where several runs are made).
    """
    import numpy as np

    base = default_params(task)
    ranges = [list(r) for r in area_ranges] if area_ranges is not None else base.areaRng
    labels = list(area_labels) if area_ranges is not None else base.areaRngLbl
    ids = sorted(img_ids) if img_ids is not None else sorted(img["id"] for img in dataset["images"])
    dt = coco_gt.load_res(results)
    index = {iid: i for i, iid in enumerate(ids)}
    n_iou = len(base.iouThrs)
    if sizes is not None and task == "keypoints":
        evals, layout, cells = [], None, []
        for E in _keypoints_by_range(dataset, coco_gt, dt, results, task, cat_id, ids, ranges, sizes, sigmas):
            evals.append(E.eval)
            if keep_per_image:
                items = [(index[e["image_id"]], e) for e in E.eval_imgs if e is not None]
                layout, cell = cell_from_evalimgs(items, len(ids), n_iou, layout)
                cells.append(cell)
            del E  # an evaluator alive would make the next update copy the whole ground truth
        # Run r evaluated range r as its one range: stack them as pycocotools' area axis.
        precision = np.concatenate([ev["precision"] for ev in evals], axis=3)
        recall = np.concatenate([ev["recall"] for ev in evals], axis=2)
        per = PerImage(len(ids), n_iou, [layout], [cells]) if keep_per_image else None
        runs = None
    else:
        restore = _size_areas(dataset, coco_gt, dt, results, task, sizes) if sizes is not None else None
        try:
            runs = [_evaluate(coco_gt, dt, task, cat_id, ids, ranges, labels, sigmas)]
        finally:
            if restore is not None:
                restore()
        precision, recall = runs[0].eval["precision"], runs[0].eval["recall"]
    params = EvalParams(task, ids, [cat_id], base.iouThrs, base.recThrs, base.maxDets, ranges, labels)

    def per_image():
        if runs is None:
            if per is None:
                raise RuntimeError("per-image results of a size-frame keypoint run need keep_per_image=True")
            return per
        range_index = {tuple(r): a for a, r in enumerate(ranges)}
        entries = ((0, range_index[tuple(e["aRng"])], index[e["image_id"]], e) for e in runs[0].eval_imgs if e is not None)
        return per_image_from_evalimgs(entries, 1, len(ranges), len(ids), n_iou)

    ev = {"params": params, "precision": precision, "recall": recall}
    return TaskEval(task, "hotcoco", params, ev, None, per_image)


def _evaluate(gt, dt, task, cat_id, img_ids, ranges, labels, sigmas=None):
    import hotcoco

    E = hotcoco.COCOeval(gt, dt, task)
    E.params.cat_ids = [cat_id]
    if sigmas is not None:
        E.params.kpt_oks_sigmas = [float(v) for v in sigmas]
    E.params.img_ids = img_ids
    E.params.area_rng = ranges
    E.params.area_rng_lbl = labels
    E.evaluate()
    E.accumulate()
    return E


def _size_areas(dataset, gt, dt, results, task, sizes):
    """Boxes, masks: IoU never reads `area`, so people carry their size-frame area and results
    their own times the frame factor. Returns the function that puts the GT areas back."""
    import numpy as np

    gt_ids = np.array([a["id"] for a in dataset["annotations"]], dtype=np.int64)
    own = np.array([a["area"] for a in dataset["annotations"]], dtype=np.float64)
    gt.update_anns(ids=gt_ids, area=np.array([sizes.gt_area[i] for i in gt_ids.tolist()], dtype=np.float64))
    if task == "bbox":  # loadRes' area of a box result: w * h
        area = np.array([r["bbox"][2] * r["bbox"][3] for r in results], dtype=np.float64)
        dt_ids = np.arange(1, len(results) + 1, dtype=np.int64)
    else:  # of a mask: its pixel count, as the engine decoded it
        anns = dt.anns
        dt_ids = np.array(sorted(anns), dtype=np.int64)
        area = np.array([anns[i]["area"] for i in dt_ids.tolist()], dtype=np.float64)
    factor = np.array([sizes.det_factor[r["image_id"]] for r in results], dtype=np.float64)
    dt.update_anns(ids=dt_ids, area=area * factor)
    return lambda: gt.update_anns(ids=gt_ids, area=own)


def _keypoints_by_range(dataset, gt, dt, results, task, cat_id, img_ids, ranges, sizes, sigmas=None):
    """Yield one hotcoco run per area range (see the module docstring); `gt` is restored after."""
    import numpy as np

    from lrp.errors import LrpError

    people = [a for a in dataset["annotations"] if a.get("category_id") == cat_id]
    for a in people:
        if not -_WIDE <= a["area"] <= _WIDE:
            raise LrpError(f"annotation {a['id']}: area {a['area']!r} is not a finite number")
    ann_ids = [a["id"] for a in people]
    own = np.array([a["num_keypoints"] for a in people], dtype=np.int64)
    size = np.array([sizes.gt_area[i] for i in ann_ids], dtype=np.float64)
    # pycocotools' loadRes area of a pose: the box around its keypoints; then the frame factor.
    kp = np.array([r["keypoints"] for r in results], dtype=np.float64).reshape(len(results), -1)
    x, y = kp[:, 0::3], kp[:, 1::3]
    area = (x.max(axis=1) - x.min(axis=1)) * (y.max(axis=1) - y.min(axis=1))
    sized = area * np.array([sizes.det_factor[r["image_id"]] for r in results], dtype=np.float64)
    dt_ids = np.arange(1, len(results) + 1, dtype=np.int64)
    current = own.copy()

    def set_num_keypoints(want):
        changed = np.flatnonzero(want != current)
        if len(changed):
            gt.update_anns([{"id": ann_ids[j], "num_keypoints": int(want[j])} for j in changed.tolist()])
            current[changed] = want[changed]

    try:
        for lo, hi in ranges:
            # Outside the range: num_keypoints 0, pycocotools' ignore flag for keypoints.
            set_num_keypoints(np.where((size < lo) | (size > hi), 0, own))
            # A pose's area only decides whether, unmatched, it is ignored: in or out of the range.
            dt.update_anns(ids=dt_ids, area=np.where((sized < lo) | (sized > hi), np.inf, 0.0))
            yield _evaluate(gt, dt, task, cat_id, img_ids, [[-_WIDE, _WIDE]], ["all"], sigmas)
    finally:
        set_num_keypoints(own)
