"""`lrp draw`: ground truth and predictions drawn on the images, one lossless PNG each.

Each output is a strip of panels, one per input document, all at one scale: the scale of the
document whose frame is largest for that image (the original, or the SR output). Smaller frames
(the LR input) are enlarged with nearest-neighbour sampling, so their pixels show as they are
and a reader sees what SR did to a 30 px person. With `--people` each strip is cropped to one
person (and enlarged to a readable size with an integer factor).

Predictions are coloured by how right they are: a pose by its OKS against the person it is
matched to (lrp/people.py, pycocotools' formula), a detection by its box IoU. Drawing uses only
PIL; the same input gives byte-identical PNGs (no time, no randomness, PIL's embedded font).
No torch here.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional

import typer

from lrp.errors import LrpError, UsageError
from lrp.evaluate import Labels
from lrp.options import FLAG, Images, Quiet, Workers

GT_COLOUR = (0, 220, 255)
UNMATCHED = (230, 0, 230)
BACKGROUND = (24, 24, 24)
TEXT = (240, 240, 240)
OUTSIDE = (60, 60, 60)  # panel area outside the image
# (lowest value, colour): OKS or IoU at least this much gets this colour.
GRADES = ((0.75, (40, 200, 60)), (0.5, (255, 170, 0)), (0.0, (235, 45, 45)))
LEGEND = "GT cyan; predictions by OKS (pose) or IoU (box): green >= .75, orange >= .5, red < .5, magenta unmatched"
BAND = 16  # height of the text bands above and below each panel
GAP = 6  # between panels
PERSON_MIN, PERSON_MAX = 192, 384  # panel height of a person crop, in pixels
PERSON_ASPECT = 0.75  # crops at least this wide for their height, so that the captions fit
MARGIN = 0.2  # around a person's box, as a fraction of its size


def grade(value: float | None) -> tuple[int, int, int]:
    if value is None:
        return UNMATCHED
    for low, colour in GRADES:
        if value >= low:
            return colour
    return GRADES[-1][1]


def font(size: int = 11):
    from PIL import ImageFont

    # Pillow's embedded font: the same glyphs on every machine, so PNGs are reproducible.
    return ImageFont.load_default(size=size)


# --------------------------------------------------------------------------------------------
# Inputs


@dataclass
class Source:
    """One input document with its per-person matches, ready to draw."""

    name: str
    label: str
    doc: dict
    images: dict  # image id -> image entry
    people: dict  # image id -> person annotations
    poses: dict  # annotation id -> Match (OKS)
    detections: dict  # annotation id -> Match (IoU)
    pose_grade: dict  # pose index -> OKS of its person (absent: unmatched)
    det_grade: dict  # detection index -> IoU of its person
    min_score: float = 0.0  # unmatched predictions scored below this are not drawn

    def shown(self, kind: str, image_id: int):
        """(index, result) of the detections or poses of one image that are drawn."""
        grades = self.det_grade if kind == "detections" else self.pose_grade
        for i, r in enumerate(self.doc["lrp"].get(kind) or []):
            if r["image_id"] == image_id and (i in grades or float(r["score"]) >= self.min_score):
                yield i, r


def prepare(named_docs: list[tuple[str, dict]], labels: list[str] | None = None, min_score: float = 0.0) -> list[Source]:
    from lrp.document import images_by_id, person_category_id
    from lrp.labels import history_label
    from lrp.keypoints import defines_oks
    from lrp.people import match_detections, match_poses

    sources = []
    for k, (name, doc) in enumerate(named_docs):
        cat = person_category_id(doc)
        people: dict = {}
        for a in doc["annotations"]:
            if a.get("category_id") == cat:
                people.setdefault(a["image_id"], []).append(a)
        # Without OKS (MPII, PoseTrack) poses are drawn ungraded, in one colour.
        poses, dets = match_poses(doc) if defines_oks(doc, name) else {}, match_detections(doc)
        label = labels[k] if labels else history_label(doc["lrp"].get("history", []))
        sources.append(
            Source(
                name, label, doc, images_by_id(doc), people, poses, dets,
                {m.index: m.value for m in poses.values()}, {m.index: m.value for m in dets.values()}, min_score,
            )
        )
    first = sources[0]
    for s in sources[1:]:
        if set(s.images) != set(first.images):
            raise LrpError(f"{s.name} and {first.name} hold different images: a chain must be one dataset through its steps")
        ids = {a["id"] for anns in s.people.values() for a in anns}
        if ids != {a["id"] for anns in first.people.values() for a in anns}:
            raise LrpError(f"{s.name} and {first.name} hold different person annotations (ids must be stable)")
    return sources


# --------------------------------------------------------------------------------------------
# Geometry: every panel shows one region of a reference frame


def _area_factor(img: dict) -> float:
    sx, sy = img["lrp"]["xform"][:2]
    return float(sx) * float(sy)


def reference(sources: list[Source], image_id: int) -> Source:
    """The document whose frame is largest for this image: the others are drawn at its scale."""
    return max(sources, key=lambda s: _area_factor(s.images[image_id]))


def relative_xform(src: Source, ref: Source, image_id: int) -> tuple[float, float, float, float]:
    """(ax, ay, bx, by) with x_src = ax * x_ref + bx: both frames go through the origin."""
    sx, sy, tx, ty = (float(v) for v in src.images[image_id]["lrp"]["xform"])
    rx, ry, rtx, rty = (float(v) for v in ref.images[image_id]["lrp"]["xform"])
    ax, ay = sx / rx, sy / ry
    return ax, ay, tx - rtx * ax, ty - rty * ay


@dataclass(frozen=True)
class View:
    """Region (x0, y0) of the reference frame, `zoom` panel pixels per reference pixel."""

    x0: float
    y0: float
    zoom: float
    size: tuple[int, int]


def image_view(ref: Source, image_id: int) -> View:
    img = ref.images[image_id]
    return View(0.0, 0.0, 1.0, (img["width"], img["height"]))


def person_view(ref: Source, ann: dict) -> View:
    """A person's box with a margin, enlarged by a whole factor (or reduced) to a readable height."""
    x, y, w, h = (float(v) for v in ann["bbox"])
    mx, my = max(4.0, MARGIN * w), max(4.0, MARGIN * h)
    mx = max(mx, (PERSON_ASPECT * (h + 2 * my) - w) / 2)
    x0, y0, rw, rh = x - mx, y - my, w + 2 * mx, h + 2 * my
    if rh < PERSON_MIN:
        zoom = float(min(16, math.ceil(PERSON_MIN / rh)))
    elif rh > PERSON_MAX:
        zoom = PERSON_MAX / rh
    else:
        zoom = 1.0
    return View(x0, y0, zoom, (max(1, round(rw * zoom)), max(1, round(rh * zoom))))


# --------------------------------------------------------------------------------------------
# Drawing one panel


def _masks_blended(arr, items: list[tuple[object, tuple]], h: int, w: int):
    """Tint the pixels of each (segmentation, colour), at the frame's own resolution."""
    import numpy as np
    from pycocotools import mask as mask_utils

    out = arr.astype(np.float32)
    for seg, colour in items:
        if isinstance(seg, list):
            if not seg:
                continue
            rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
        elif isinstance(seg, dict) and isinstance(seg.get("counts"), list):
            rle = mask_utils.frPyObjects(seg, h, w)
        elif isinstance(seg, dict):
            rle = seg
        else:
            continue
        m = mask_utils.decode(rle).astype(bool)
        if m.shape != (h, w):
            continue
        out[m] = 0.75 * out[m] + 0.25 * np.asarray(colour, dtype=np.float32)
    return np.round(out).astype(np.uint8)


def _segments(src: Source, image_id: int) -> list[tuple[object, tuple]]:
    items = [(a["segmentation"], GT_COLOUR) for a in src.people.get(image_id, []) if a.get("segmentation")]
    for i, d in src.shown("detections", image_id):
        if d.get("segmentation"):
            items.append((d["segmentation"], grade(src.det_grade.get(i))))
    return items


def render_panel(src: Source, ref: Source, image_id: int, view: View, focus: int | None = None):
    """This document's image of `image_id`, cropped and scaled to `view`, with GT and results."""
    from PIL import Image, ImageDraw

    from lrp.document import image_path
    from lrp.images import load_rgb

    img = src.images[image_id]
    arr = load_rgb(image_path(src.doc, img), image_id, expect_size=(img["width"], img["height"]))
    arr = _masks_blended(arr, _segments(src, image_id), img["height"], img["width"])
    ax, ay, bx, by = relative_xform(src, ref, image_id)
    # Panel pixel u shows reference x = x0 + u / zoom, that is source x = ax * (x0 + u / zoom) + bx.
    coeffs = (ax / view.zoom, 0.0, ax * view.x0 + bx, 0.0, ay / view.zoom, ay * view.y0 + by)
    enlarging = view.zoom / ax >= 0.999 and view.zoom / ay >= 0.999
    panel = Image.fromarray(arr).transform(
        view.size, Image.Transform.AFFINE, coeffs,
        resample=Image.Resampling.NEAREST if enlarging else Image.Resampling.BILINEAR, fillcolor=OUTSIDE,
    )

    def to_panel(x: float, y: float) -> tuple[float, float]:
        return ((x - bx) / ax - view.x0) * view.zoom, ((y - by) / ay - view.y0) * view.zoom

    width = max(1, round(min(view.size) / 120))
    draw = ImageDraw.Draw(panel)
    skeleton = _skeleton(src.doc)
    for a in src.people.get(image_id, []):
        if a.get("bbox"):
            _box(draw, to_panel, a["bbox"], GT_COLOUR, 1)
        if a.get("num_keypoints", 0) > 0 and a.get("keypoints"):
            _pose(draw, to_panel, a["keypoints"], skeleton, GT_COLOUR, width, visible_only=True)
    for i, d in src.shown("detections", image_id):
        if d.get("bbox"):
            _box(draw, to_panel, d["bbox"], grade(src.det_grade.get(i)), width if i in src.det_grade else 1)
    for i, p in src.shown("poses", image_id):
        if p.get("keypoints"):
            _pose(draw, to_panel, p["keypoints"], skeleton, grade(src.pose_grade.get(i)), width + 1, visible_only=False)
    if focus is None:  # whole image: the OKS of each person beside their box
        for a in src.people.get(image_id, []):
            m = src.poses.get(a["id"])
            if m is not None:
                x, y = to_panel(a["bbox"][0], a["bbox"][1])
                _label(draw, (x, y - 13), f"{m.value:.2f}", grade(m.value))
    return panel


def _skeleton(doc: dict) -> list[tuple[int, int]]:
    from lrp.document import person_category_id

    cat_id = person_category_id(doc)
    cat = next(c for c in doc["categories"] if c["id"] == cat_id)
    return [(int(a) - 1, int(b) - 1) for a, b in cat.get("skeleton") or []]


def _box(draw, to_panel, bbox, colour, width: int) -> None:
    x, y, w, h = bbox
    (u0, v0), (u1, v1) = to_panel(x, y), to_panel(x + w, y + h)
    draw.rectangle([u0, v0, max(u0, u1 - 1), max(v0, v1 - 1)], outline=colour, width=width)


def _pose(draw, to_panel, keypoints, skeleton, colour, width: int, visible_only: bool) -> None:
    import numpy as np

    k = np.asarray(keypoints, dtype=float).reshape(-1, 3)
    shown = k[:, 2] > 0 if visible_only else np.ones(len(k), dtype=bool)
    points = [to_panel(x, y) for x, y, _ in k]
    for a, b in skeleton:
        if a < len(k) and b < len(k) and shown[a] and shown[b]:
            draw.line([points[a], points[b]], fill=colour, width=width)
    r = width + 0.5
    for (u, v), s in zip(points, shown):
        if s:
            draw.ellipse([u - r, v - r, u + r, v + r], fill=colour)


def _label(draw, xy, text: str, colour) -> None:
    f = font()
    left, top, right, bottom = draw.textbbox(xy, text, font=f)
    draw.rectangle([left - 2, top - 1, right + 2, bottom + 1], fill=BACKGROUND)
    draw.text(xy, text, fill=colour, font=f)


# --------------------------------------------------------------------------------------------
# Strips


def person_caption(src: Source, ann_id: int) -> tuple[str, tuple]:
    """"OKS 0.734  IoU 0.81" for one person in one document, coloured by the OKS."""
    pose, det = src.poses.get(ann_id), src.detections.get(ann_id)
    ann = next(a for anns in src.people.values() for a in anns if a["id"] == ann_id)
    parts = []
    if src.doc["lrp"].get("poses"):
        if not ann.get("num_keypoints"):
            parts.append("no GT keypoints")
        else:
            parts.append(f"OKS {pose.value:.3f}" if pose else "OKS - (no pose)")
    if src.doc["lrp"].get("detections"):
        parts.append(f"IoU {det.value:.2f}" if det else "IoU - (missed)")
    colour = grade(pose.value) if pose else (grade(det.value) if det else TEXT)
    return "  ".join(parts) or "ground truth only", colour


def strip(sources: list[Source], image_id: int, ann_id: int | None = None):
    """Panels side by side, one per document, each with its label above (and scores below): a PIL image."""
    from PIL import Image, ImageDraw

    ref = reference(sources, image_id)
    if ann_id is None:
        view = image_view(ref, image_id)
    else:
        ann = next((a for a in ref.people.get(image_id, []) if a["id"] == ann_id), None)
        if ann is None or not ann.get("bbox"):
            raise LrpError(f"{ref.name}: image {image_id} has no person annotation {ann_id} with a box")
        view = person_view(ref, ann)
    pw, ph = view.size
    n = len(sources)
    width = n * pw + (n - 1) * GAP
    caption_font = font()
    what = f"image {image_id}" + (f", person {ann_id}" if ann_id is not None else "")
    footer = f"{what}. {LEGEND}"
    # The legend must fit: a narrow strip gets a wider canvas.
    legend_width = int(ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(footer, font=caption_font)) + 8
    canvas = Image.new("RGB", (max(width, min(legend_width, 2000)), ph + 3 * BAND), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for k, src in enumerate(sources):
        x = k * (pw + GAP)
        canvas.paste(render_panel(src, ref, image_id, view, focus=ann_id), (x, BAND))
        scale = view.zoom / max(relative_xform(src, ref, image_id)[:2])
        title = src.label + (f"  (x{scale:.3g} nearest)" if scale > 1.001 else "")
        draw.text((x + 2, 2), _fit(draw, title, pw - 4, caption_font), fill=TEXT, font=caption_font)
        if ann_id is not None:
            text, colour = person_caption(src, ann_id)
            draw.text((x + 2, BAND + ph + 2), _fit(draw, text, pw - 4, caption_font), fill=colour, font=caption_font)
    draw.text((2, BAND * 2 + ph + 2), _fit(draw, footer, canvas.width - 4, caption_font), fill=TEXT, font=caption_font)
    return canvas


def _fit(draw, text: str, width: float, f) -> str:
    """Shorten text with an ellipsis to fit `width` pixels (labels only, never numbers we print)."""
    if draw.textlength(text, font=f) <= width:
        return text
    while text and draw.textlength(text + "…", font=f) > width:
        text = text[:-1]
    return text + "…"


def targets(sources: list[Source], people: bool, image_ids: list[int] | None, ann_ids: list[int] | None) -> list[tuple[int, int | None]]:
    """(image id, annotation id or None) of every strip to draw, in image then annotation order."""
    first = sources[0]
    wanted = sorted(first.images) if not image_ids else list(dict.fromkeys(image_ids))
    for iid in wanted:
        if iid not in first.images:
            raise UsageError(f"--image-id {iid}: no such image in {first.name}")
    if ann_ids:
        known = {a["id"]: a["image_id"] for anns in first.people.values() for a in anns}
        for aid in ann_ids:
            if aid not in known:
                raise UsageError(f"--ann-id {aid}: no such person annotation in {first.name}")
        return [(known[aid], aid) for aid in dict.fromkeys(ann_ids) if not image_ids or known[aid] in wanted]
    if not people:
        return [(iid, None) for iid in wanted]
    return [
        (iid, a["id"])
        for iid in wanted
        for a in sorted(first.people.get(iid, []), key=lambda a: a["id"])
        if not a.get("iscrowd") and a.get("bbox") and a["bbox"][2] > 0 and a["bbox"][3] > 0
    ]


def strip_name(image_id: int, ann_id: int | None) -> str:
    return f"{image_id}.png" if ann_id is None else f"{image_id}-{ann_id}.png"


def check_out_dir(out_dir: Path, sources: list[Source]) -> Path:
    """Refuse a folder that is, holds or lies inside an input image folder."""
    target = out_dir.resolve()
    for s in sources:
        root = Path(s.doc["lrp"]["image_root"]).resolve()
        if target == root or root in target.parents or target in root.parents:
            raise UsageError(f"--out-dir {out_dir}: is, holds or lies inside the image folder {root} of {s.name}; choose another folder")
    if target.exists() and not target.is_dir():
        raise UsageError(f"--out-dir {out_dir}: exists and is not a folder")
    target.mkdir(parents=True, exist_ok=True)
    return target


def draw_strips(sources: list[Source], items: list[tuple[int, int | None]], out_dir: Path, *, workers=None, quiet=False) -> list[Path]:
    """Write one PNG per item into `out_dir` (atomically) and return their paths."""
    import numpy as np

    from lrp.images import encode_png, parallel_map

    def one(item):
        from lrp.outputs import atomic_write_bytes

        path = out_dir / strip_name(*item)
        atomic_write_bytes(path, encode_png(np.asarray(strip(sources, *item))))
        return path

    return list(parallel_map(one, items, workers=workers, desc="draw", quiet=quiet))


# --------------------------------------------------------------------------------------------
# Reading any documents


def load_sources(paths: list[str] | None, images: Path | None) -> list[tuple[str, dict]]:
    """(name, document) for each path ('-' once for stdin); `--images` roots plain COCO files."""
    from lrp.inputs import load_document

    paths = list(paths or ["-"])
    if paths.count("-") > 1:
        raise UsageError("stdin ('-') can be given only once")
    return [("<stdin>" if p == "-" else p, load_document(p, images=images)) for p in paths]


FilesDir = Annotated[
    Optional[Path],
    typer.Option("--out-dir", help="Folder for the files written (required; never an input image folder).", show_default=False),
]


def command(
    documents: Annotated[
        Optional[list[str]],
        typer.Argument(
            help="Documents to draw: one, or a chain of the same images (LR, SR, original) side by side; "
            "'-' or nothing reads stdin.",
            show_default=False,
        ),
    ] = None,
    out_dir: FilesDir = None,
    people: Annotated[bool, typer.Option("--people", metavar=FLAG, help="One strip per person (cropped, enlarged) instead of per image.")] = False,
    image_id: Annotated[
        Optional[list[int]], typer.Option("--image-id", help="Draw only this image (repeatable).", show_default=False)
    ] = None,
    ann_id: Annotated[
        Optional[list[int]], typer.Option("--ann-id", help="Draw only this person (repeatable; implies --people).", show_default=False)
    ] = None,
    label: Labels = None,
    min_score: Annotated[
        float, typer.Option("--min-score", min=0.0, help="Hide predictions scored below this unless matched to a person.")
    ] = 0.3,
    images: Images = None,
    workers: Workers = None,
    quiet: Quiet = False,
):
    """Draw ground truth and predictions (skeletons, boxes, masks) on each image as lossless PNGs.

    GT is cyan; each prediction is coloured by its OKS (poses) or IoU (boxes) against the person it
    is matched to: green >= 0.75, orange >= 0.5, red below, magenta unmatched (hidden below
    --min-score). Several documents of
    the same images (a chain such as LR, SR, original) are drawn side by side at the scale of the
    largest frame, smaller frames enlarged with nearest-neighbour sampling; --people crops one strip
    per person, with each document's OKS under its panel. Prints the paths written, one a line.

        lrp draw lr4-pose.json sr4-pose.json val.json --people --out-dir strips/
    """
    if out_dir is None:
        raise UsageError("--out-dir DIR is required (the folder for the PNGs)")
    if label and len(label) != len(documents or ["-"]):
        raise UsageError(f"--label given {len(label)} times for {len(documents or ['-'])} documents")
    sources = prepare(load_sources(documents, images), label, min_score)
    items = targets(sources, people or bool(ann_id), image_id, ann_id)
    target = check_out_dir(out_dir, sources)
    for path in draw_strips(sources, items, target, workers=workers, quiet=quiet):
        print(path)
    if not quiet:
        print(f"drew {len(items)} {'people' if people or ann_id else 'images'} into {target}", file=sys.stderr)
