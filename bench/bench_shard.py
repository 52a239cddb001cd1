"""What `--shard` and `lrp merge` cost on a COCO-val-sized document, against reading it once.

A generated document of 5,000 images, ~10,600 people, ~20,700 detections and ~9,400 poses (the
sizes of issue 11's synthetic val set). Baseline, in the same run: one JSON round trip of the
whole document (what every step pays to read and write it). Measured: splitting it into N
shards (`shard_document`: what each shard's process pays, mostly hashing the whole input so
that merge can check the shards belong together), and merging the N shard documents (`merge_documents`) with the
detections made after the split (ordered image by image) and the poses passed through it
(ordered by their recorded positions).

    .venv/bin/python bench/bench_shard.py --shards 8
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from timer import best_of  # noqa: E402  (bench/timer.py)

from lrp.document import add_history, adopt  # noqa: E402
from lrp.merge import merge_documents  # noqa: E402
from lrp.shard import shard_document  # noqa: E402


def generated(n_images: int, seed: int = 0) -> dict:
    rng = random.Random(seed)
    images, annotations, detections, poses = [], [], [], []
    for k in range(n_images):
        iid = rng.randrange(1, 10**6) * 1000 + k  # sparse, unordered ids as in COCO
        images.append({"id": iid, "file_name": f"{iid:012d}.jpg", "width": 640, "height": 480})
        for _ in range(rng.choice([0, 1, 2, 2, 3, 4])):
            box = [rng.uniform(0, 500), rng.uniform(0, 300), rng.uniform(10, 140), rng.uniform(20, 180)]
            kps = [round(rng.uniform(0, 600), 2) for _ in range(51)]
            annotations.append({"id": len(annotations) + 1, "image_id": iid, "category_id": 1, "bbox": box,
                                "area": box[2] * box[3] * 0.6, "iscrowd": 0, "keypoints": kps, "num_keypoints": 17})
            detections += [{"image_id": iid, "category_id": 1, "bbox": box, "score": rng.random()} for _ in range(2)]
            if rng.random() < 0.9:
                poses.append({"image_id": iid, "category_id": 1, "keypoints": kps, "score": rng.random(), "bbox": box})
    rng.shuffle(annotations)  # COCO's annotations are not in image order either
    doc = adopt({"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "person"}]}, "bench", images="/tmp")
    doc["lrp"]["detections"], doc["lrp"]["poses"] = detections, poses
    return doc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    doc = generated(args.images)
    n = args.shards
    print(f"{len(doc['images'])} images, {len(doc['annotations'])} annotations, "
          f"{len(doc['lrp']['detections'])} detections, {len(doc['lrp']['poses'])} poses; {n} shards")

    roundtrip = best_of(lambda: json.loads(json.dumps(doc)), args.repeat)
    split = best_of(lambda: shard_document(doc, 0, n, "detect"), args.repeat)
    shards = []
    for i in range(n):
        part = json.loads(json.dumps(shard_document(doc, i, n, "detect")))
        add_history(part, "detect", {"model": "bench"})  # detections made after the split
        shards.append((f"shard{i}.json", part))
    merge = best_of(lambda: merge_documents(shards), args.repeat)
    print(f"baseline: JSON round trip of the document   {roundtrip:7.3f} s  1.00x")
    print(f"take one shard of {n} (what each shard pays)  {split:7.3f} s  {split / roundtrip:.2f}x")
    print(f"merge {n} shards                              {merge:7.3f} s  {merge / roundtrip:.2f}x")


if __name__ == "__main__":
    main()
