"""A procedural, deterministic COCO person-keypoints document of any size (no pixels).

COCO val2017 has 5,000 images with ~10,600 people; a detector gives ~20,700 boxes and a top-down
pose model ~9,400 poses on them. `synthetic_document(5000)` matches those counts, with the
things that make evaluation non-trivial: crowds, people without keypoints, polygon masks, tied
scores, false positives and misses, people of every size. Used by bench/bench_evaluate.py and by
tests/test_engine.py (small sizes).
"""

from __future__ import annotations

import math

import numpy as np

from lrp.document import SCHEMA

# sqrt(area) of COCO people is roughly log-normal around 90 px.
_LOG_SIDE = (math.log(90.0), 0.9)


def _polygon(rng, x, y, w, h, n=12):
    """A star-shaped polygon inside the box (so mask IoU differs from box IoU)."""
    t = np.sort(rng.uniform(0, 2 * np.pi, n))
    r = rng.uniform(0.6, 1.0, n)
    px = x + w / 2 + np.cos(t) * r * w / 2
    py = y + h / 2 + np.sin(t) * r * h / 2
    return np.column_stack([px, py]).ravel()


def _shoelace(poly):
    x, y = poly[0::2], poly[1::2]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _keypoints(rng, x, y, w, h):
    kx = x + rng.uniform(0.1, 0.9, 17) * w
    ky = y + rng.uniform(0.05, 0.95, 17) * h
    v = rng.choice([0, 1, 2], size=17, p=[0.3, 0.1, 0.6])
    kx[v == 0] = 0
    ky[v == 0] = 0
    return np.column_stack([kx, ky, v]), int((v > 0).sum())


def synthetic_document(n_images: int = 5000, seed: int = 0, masks: bool = False) -> dict:
    """An lrp document with GT people, `lrp.detections` (boxes, optionally masks) and `lrp.poses`."""
    rng = np.random.default_rng(seed)
    images, anns, dets, poses = [], [], [], []
    aid = 1
    for i in range(n_images):
        iid = 1000 + 7 * i  # ids that are not 0..n-1, as in COCO
        W, H = int(rng.choice([640, 480, 500, 427])), int(rng.choice([480, 640, 375, 333]))
        images.append({
            "id": iid, "file_name": f"{iid:012d}.jpg", "width": W, "height": H,
            "lrp": {"origin": {"file_name": f"{iid:012d}.jpg", "width": W, "height": H}, "xform": [1.0, 1.0, 0.0, 0.0]},
        })
        for _ in range(int(rng.poisson(2.125))):
            side = min(math.exp(rng.normal(*_LOG_SIDE)), 0.95 * min(W, H))
            aspect = rng.uniform(0.3, 0.8)
            w, h = max(side * math.sqrt(aspect), 2.0), max(side / math.sqrt(aspect), 2.0)
            h = min(h, H - 1.0)
            x, y = rng.uniform(0, W - w), rng.uniform(0, H - h)
            poly = _polygon(rng, x, y, w, h)
            crowd = int(rng.uniform() < 0.01)
            kps, nk = _keypoints(rng, x, y, w, h)
            if side < 32 or crowd:
                kps[:] = 0
                nk = 0
            anns.append({
                "id": aid, "image_id": iid, "category_id": 1, "iscrowd": crowd,
                "bbox": [float(x), float(y), float(w), float(h)], "area": _shoelace(poly), "segmentation": [poly.tolist()],
                "num_keypoints": nk, "keypoints": kps.ravel().tolist(),
            })
            aid += 1
            if crowd:
                continue
            # Two boxes per person on average (a hit or a miss, and duplicates), as a detector's.
            for _ in range(int(rng.poisson(1.95))):
                jit = rng.normal(0, 0.08, 4)
                box = [float(v) for v in (x + jit[0] * w, y + jit[1] * h, w * (1 + jit[2]), h * (1 + jit[3]))]
                # Scores on a 1/100 grid: ties across images and within one, as real detectors give.
                det = {"image_id": iid, "category_id": 1, "bbox": box, "score": round(float(rng.uniform(0.05, 1)), 2)}
                if masks:
                    det["segmentation"] = [_polygon(rng, *box).tolist()]
                dets.append(det)
            if nk > 0 or rng.uniform() < 0.3:
                noise = rng.normal(0, 0.06 * side, (17, 2))
                k = kps[:, :2] if nk > 0 else np.column_stack([x + rng.uniform(0, w, 17), y + rng.uniform(0, h, 17)])
                xy = k + noise
                pose = np.column_stack([xy, rng.uniform(0.1, 1.0, 17)]).ravel()
                poses.append({"image_id": iid, "category_id": 1, "keypoints": pose.tolist(),
                              "score": round(float(rng.uniform(0.2, 1)), 3)})
        for _ in range(int(rng.poisson(0.1))):  # false positives on the background
            bw, bh = rng.uniform(10, W / 2), rng.uniform(10, H / 2)
            box = [float(rng.uniform(0, W - bw)), float(rng.uniform(0, H - bh)), float(bw), float(bh)]
            det = {"image_id": iid, "category_id": 1, "bbox": box, "score": round(float(rng.uniform(0, 0.6)), 2)}
            if masks:
                det["segmentation"] = [_polygon(rng, *box).tolist()]
            dets.append(det)
    return {
        "info": {"description": f"synthetic COCO people, {n_images} images, seed {seed}"},
        "licenses": [],
        "images": images,
        "annotations": anns,
        "categories": [{"id": 1, "name": "person", "supercategory": "person", "keypoints": [f"k{j}" for j in range(17)],
                        "skeleton": []}],
        "lrp": {"schema": SCHEMA, "image_root": "/nonexistent", "degradation": None, "history": [],
                "detections": dets, "poses": poses},
    }
