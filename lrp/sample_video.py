"""A synthetic video from the embedded sample's drawer: figures walking across a still scene.

Each video has a fixed background (a still camera) and a few people drawn by lrp.sample; from
frame to frame every person moves by their own velocity (and their limbs stay as drawn), so the
keypoints, polygons, masks, boxes and areas of every frame are exact by construction, as in the
still sample. Seeded: the same version always draws the same pixels.

`python -m lrp.sample_video DIR` writes DIR/person_keypoints.json (a plain COCO file whose images
carry `video_id` and `frame_id`) and DIR/images/<video>/<frame>.png, which is also the layout
`lrp frames DIR/images` reads.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

SAMPLE_VIDEO_VERSION = 1
SEED = 20261202

# In name order, as `lrp frames` numbers a folder's videos.
# (name, width, height, frames, people as (height px, x velocity, y velocity) in px per frame)
VIDEOS = [
    ("cross", 224, 224, 5, [(150, -5.0, 1.0), (90, 7.0, -0.5)]),
    ("walk", 256, 192, 6, [(120, 6.0, 0.5), (80, -4.0, 0.0), (40, 3.0, -1.0)]),
]


def build(out_dir: Path, videos=VIDEOS) -> dict:
    """Draw every frame into `out_dir/images/<video>/` and return the COCO dict (not yet written)."""
    from lrp.outputs import save_png
    from lrp.sample import PERSON_CATEGORY, _annotation, _background, _paint, _parts, _skeleton

    rng = np.random.default_rng(SEED)
    images, annotations = [], []
    for video_id, (name, w, h, n_frames, people) in enumerate(videos, start=1):
        background = _background(rng, w, h)
        figures = []
        slots = np.linspace(0, w, len(people) + 2)[1:-1]
        for slot, (ph, vx, vy) in zip(slots, people):
            top = rng.uniform(0.02 * h, max(0.03 * h, h - ph * 1.05))
            joints = _skeleton(rng, float(slot), top, ph, facing=int(rng.choice([-1, 1])))
            colours = {"skin": rng.uniform([150, 100, 70], [240, 200, 170]), "shirt": rng.uniform(0, 255, 3), "legs": rng.uniform(0, 120, 3)}
            figures.append((ph, np.array([vx, vy]), joints, colours))
        for frame_id in range(n_frames):
            image_id = len(images) + 1
            img = background.copy()
            for ph, velocity, joints, colours in figures:
                moved = joints + velocity * frame_id
                parts = _parts(moved, ph)
                _paint(img, parts, colours)
                ann = _annotation(len(annotations) + 1, image_id, parts, moved, w, h, with_keypoints=True)
                if ann["area"] < 32 * 32:  # as COCO: no keypoints on people this small
                    ann["keypoints"], ann["num_keypoints"] = [0] * 51, 0
                annotations.append(ann)
            file_name = f"{name}/{frame_id:06d}.png"
            save_png(np.clip(np.round(img), 0, 255).astype(np.uint8), out_dir / "images" / file_name)
            images.append({"id": image_id, "file_name": file_name, "width": w, "height": h, "video_id": video_id, "frame_id": frame_id})
    return {
        "info": {"description": "lrp synthetic video: procedurally drawn people walking", "version": str(SAMPLE_VIDEO_VERSION)},
        "licenses": [{"id": 1, "name": "MIT (drawn by lrp)", "url": ""}],
        "images": images,
        "annotations": annotations,
        "categories": [PERSON_CATEGORY],
    }


def write(root: Path) -> Path:
    """Draw the video sample into `root` once; the JSON is written last. Returns the JSON path."""
    from lrp.outputs import atomic_write_text

    root = Path(root)
    ann_file = root / "person_keypoints.json"
    if not ann_file.is_file():
        atomic_write_text(ann_file, json.dumps(build(root)))
    return ann_file


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0] in ("-h", "--help"):
        print("usage: python -m lrp.sample_video DIR   (writes DIR/person_keypoints.json and DIR/images/<video>/)", file=sys.stderr)
        return 2
    print(write(Path(argv[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
