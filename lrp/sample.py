"""The embedded sample: a small COCO person-keypoints dataset that lrp draws itself.

Figures are built from a 17-joint COCO skeleton, then drawn from polygons (one per body part),
so keypoints, polygons, masks, boxes and areas are exact by construction and nothing needs a
licence beyond the project's own. Seeded: the same version always draws the same pixels.
Some people are tiny (below COCO's 32^2 "small" bound, so without keypoints, as COCO does),
some large, and one image holds a crowd region (iscrowd=1, RLE), like COCO.

Used when a head-of-pipeline command gets no input on a terminal, by the tests, and by
`python -m lrp.sample DIR`, which writes the dataset as a plain COCO folder.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import numpy as np

SAMPLE_VERSION = 1
SEED = 20261121

KEYPOINTS = [
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
]
SKELETON = [
    [16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8],
    [7, 9], [8, 10], [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7],
]
PERSON_CATEGORY = {"id": 1, "name": "person", "supercategory": "person", "keypoints": KEYPOINTS, "skeleton": SKELETON}

# (width, height, people heights in pixels); a crowd goes into the image marked True.
IMAGES = [
    (640, 480, [300, 90, 24], False),
    (480, 640, [520], False),
    (640, 427, [150, 140, 60, 18], False),
    (500, 375, [40, 36, 30], True),
    (612, 612, [420, 110], False),
    (640, 360, [70, 65, 55, 22, 16], False),
]


def sample_dir() -> Path:
    root = os.environ.get("LRP_SAMPLE_DIR")
    return Path(root) if root else Path.home() / ".cache" / "lrp" / f"sample-v{SAMPLE_VERSION}"


# --------------------------------------------------------------------------------------------
# Figures


def _skeleton(rng: np.random.Generator, cx: float, top: float, height: float, facing: int) -> np.ndarray:
    """17 joints (x, y) for a standing person of `height` px, feet at top+height."""
    h = height
    sway = rng.uniform(-0.04, 0.04) * h
    sh_y, hip_y = top + 0.20 * h, top + 0.52 * h
    sh_w, hip_w = 0.13 * h, 0.09 * h
    nose = (cx + sway + facing * 0.015 * h, top + 0.07 * h)
    j = np.zeros((17, 2))
    j[0] = nose
    j[1] = (nose[0] + 0.025 * h, nose[1] - 0.02 * h)
    j[2] = (nose[0] - 0.025 * h, nose[1] - 0.02 * h)
    j[3] = (nose[0] + 0.05 * h, nose[1] - 0.005 * h)
    j[4] = (nose[0] - 0.05 * h, nose[1] - 0.005 * h)
    j[5] = (cx + sway + sh_w, sh_y)
    j[6] = (cx + sway - sh_w, sh_y)
    j[11] = (cx + hip_w, hip_y)
    j[12] = (cx - hip_w, hip_y)
    for side, (s, e, w) in enumerate([(5, 7, 9), (6, 8, 10)]):
        sign = 1 if side == 0 else -1
        a1 = math.radians(rng.uniform(5, 70)) * sign
        a2 = a1 + math.radians(rng.uniform(-60, 60))
        j[e] = j[s] + 0.17 * h * np.array([math.sin(a1), math.cos(a1)])
        j[w] = j[e] + 0.15 * h * np.array([math.sin(a2), math.cos(a2)])
    for side, (hp, k, a) in enumerate([(11, 13, 15), (12, 14, 16)]):
        sign = 1 if side == 0 else -1
        a1 = math.radians(rng.uniform(-5, 20)) * sign
        a2 = a1 + math.radians(rng.uniform(-15, 15))
        j[k] = j[hp] + 0.24 * h * np.array([math.sin(a1), math.cos(a1)])
        j[a] = j[k] + 0.23 * h * np.array([math.sin(a2), math.cos(a2)])
    return j


def _limb(p, q, width) -> list[float]:
    d = np.asarray(q, float) - np.asarray(p, float)
    n = np.array([-d[1], d[0]]) / (np.hypot(*d) + 1e-9) * width / 2
    pts = [p + n, q + n, q - n, p - n]
    return [float(v) for pt in pts for v in pt]


def _disc(c, r, n=16) -> list[float]:
    return [float(v) for t in range(n) for v in (c[0] + r * math.cos(2 * math.pi * t / n), c[1] + r * math.sin(2 * math.pi * t / n))]


def _parts(j: np.ndarray, h: float) -> list[tuple[str, list[float]]]:
    """Body-part polygons, back to front."""
    head_c = (j[3] + j[4]) / 2
    torso = [j[6], j[5], j[11], j[12]]
    # Rounded once, here: the stored polygons are exactly the ones painted and measured.
    return [(colour, [round(v, 2) for v in poly]) for colour, poly in [
        ("legs", _limb(j[11], j[13], 0.075 * h)), ("legs", _limb(j[13], j[15], 0.06 * h)),
        ("legs", _limb(j[12], j[14], 0.075 * h)), ("legs", _limb(j[14], j[16], 0.06 * h)),
        ("shirt", [float(v) for p in torso for v in p]),
        ("shirt", _limb(j[5], j[7], 0.06 * h)), ("skin", _limb(j[7], j[9], 0.045 * h)),
        ("shirt", _limb(j[6], j[8], 0.06 * h)), ("skin", _limb(j[8], j[10], 0.045 * h)),
        ("skin", _limb(j[0] + (0, 0.04 * h), (j[5] + j[6]) / 2, 0.05 * h)),
        ("skin", _disc(head_c, 0.065 * h)),
    ]]


def _background(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = rng.uniform(60, 200, size=3)
    grad = rng.uniform(-60, 60, size=(2, 3))
    img = base + (xx[..., None] / w) * grad[0] + (yy[..., None] / h) * grad[1]
    # Low-frequency blobs and fine noise give SR models and detectors some texture to chew on.
    for _ in range(12):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(10, 0.3 * min(w, h))
        col = rng.uniform(-50, 50, size=3)
        img += col * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))[..., None]
    img += rng.normal(0, 6, size=img.shape)
    return np.clip(img, 0, 255)


def _paint(img: np.ndarray, polys_by_colour, rng_colours: dict) -> None:
    from pycocotools import mask as mask_utils

    h, w = img.shape[:2]
    for colour_name, poly in polys_by_colour:
        m = mask_utils.decode(mask_utils.frPyObjects([poly], h, w))[..., 0].astype(bool)
        img[m] = rng_colours[colour_name]


def _annotation(ann_id: int, image_id: int, parts, joints, w: int, h: int, with_keypoints: bool) -> dict:
    from pycocotools import mask as mask_utils

    polys = [p for _, p in parts]
    rle = mask_utils.merge(mask_utils.frPyObjects(polys, h, w))
    xs = np.clip(np.concatenate([p[0::2] for p in polys]), 0, w)
    ys = np.clip(np.concatenate([p[1::2] for p in polys]), 0, h)
    kps = []
    if with_keypoints:
        for x, y in joints:
            inside = 0 <= x < w and 0 <= y < h
            kps += [round(float(x), 2), round(float(y), 2), 2] if inside else [0, 0, 0]
    else:
        kps = [0] * 51
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": 1,
        "iscrowd": 0,
        "segmentation": polys,
        "area": float(mask_utils.area(rle)),
        "bbox": [float(xs.min()), float(ys.min()), float(xs.max() - xs.min()), float(ys.max() - ys.min())],
        "keypoints": kps,
        "num_keypoints": int(sum(1 for v in kps[2::3] if v > 0)),
    }


def build(out_dir: Path) -> dict:
    """Draw the dataset into `out_dir/images` and return the COCO dict (not yet written)."""
    from pycocotools import mask as mask_utils

    from lrp.outputs import save_png

    rng = np.random.default_rng(SEED)
    images, annotations = [], []
    ann_id = 1
    for index, (w, h, heights, crowd) in enumerate(IMAGES):
        image_id = 9001 + index  # ids are not derived from file names, on purpose
        img = _background(rng, w, h)
        slots = np.linspace(0, w, len(heights) + 2)[1:-1]
        for slot, ph in zip(slots, heights):
            top = rng.uniform(0.02 * h, max(0.03 * h, h - ph * 1.02))
            cx = float(np.clip(slot + rng.uniform(-0.03, 0.03) * w, 0.15 * ph, w - 0.15 * ph))
            joints = _skeleton(rng, cx, top, ph, facing=int(rng.choice([-1, 1])))
            parts = _parts(joints, ph)
            colours = {"skin": rng.uniform([150, 100, 70], [240, 200, 170]), "shirt": rng.uniform(0, 255, 3), "legs": rng.uniform(0, 120, 3)}
            _paint(img, parts, colours)
            ann = _annotation(ann_id, image_id, parts, joints, w, h, with_keypoints=True)
            if ann["area"] < 32 * 32:  # COCO annotates no keypoints on people this small
                ann["keypoints"], ann["num_keypoints"] = [0] * 51, 0
            annotations.append(ann)
            ann_id += 1
        if crowd:
            crowd_mask = np.zeros((h, w), np.uint8)
            for k in range(9):
                cx, top = 0.25 * w + k * 0.05 * w, 0.75 * h + (k % 3) * 6
                joints = _skeleton(rng, cx, top, 22, facing=1)
                parts = _parts(joints, 22)
                _paint(img, parts, {"skin": (200, 160, 120), "shirt": rng.uniform(0, 255, 3), "legs": (40, 40, 60)})
                for _, p in parts:
                    crowd_mask |= mask_utils.decode(mask_utils.frPyObjects([p], h, w))[..., 0]
            rle = mask_utils.encode(np.asfortranarray(crowd_mask))
            x, y, bw, bh = (float(v) for v in mask_utils.toBbox(rle))
            annotations.append({
                "id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": 1,
                "segmentation": {"size": [h, w], "counts": rle["counts"].decode("ascii")},
                "area": float(mask_utils.area(rle)), "bbox": [x, y, bw, bh],
                "keypoints": [0] * 51, "num_keypoints": 0,
            })
            ann_id += 1
        name = f"sample_{index:03d}.png"
        save_png(np.clip(np.round(img), 0, 255).astype(np.uint8), out_dir / "images" / name)
        images.append({"id": image_id, "file_name": name, "width": w, "height": h, "license": 1})
    return {
        "info": {"description": "lrp embedded sample: procedurally drawn people", "version": str(SAMPLE_VERSION)},
        "licenses": [{"id": 1, "name": "MIT (drawn by lrp)", "url": ""}],
        "images": images,
        "annotations": annotations,
        "categories": [PERSON_CATEGORY],
    }


def ensure_sample(root: Path | None = None) -> Path:
    """Draw the sample once into `root` (default: the cache); the JSON is written last."""
    root = Path(root) if root is not None else sample_dir()
    ann_file = root / "person_keypoints.json"
    if not ann_file.is_file():
        from lrp.outputs import atomic_write_text

        coco = build(root)
        atomic_write_text(ann_file, json.dumps(coco))
    return root


def sample_document() -> dict:
    from lrp.document import adopt, read_json_file

    root = ensure_sample()
    return adopt(read_json_file(root / "person_keypoints.json"), "sample", images=root / "images")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0] in ("-h", "--help"):
        print("usage: python -m lrp.sample DIR   (writes DIR/person_keypoints.json and DIR/images/)", file=sys.stderr)
        return 2
    root = ensure_sample(Path(argv[0]))
    print(root / "person_keypoints.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
