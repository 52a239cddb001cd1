"""Crop-level against image-level super-resolution before top-down pose (CAL Table 2's two ways):
people per second of the whole SR + pose step, as ratios against image-level SR measured in the
same run.

    python bench/bench_crop_sr.py [--data ../shared/data/coco-val-4] [--sr bicubic srmdnf-x4]
                                  [--pose movenet-thunder] [--repeats 2]

Image level: `superres_document` x4 on every 1/4 image, then `pose_document` on the SR document
(the SR model sees the whole image). Crop level: `pose_document(crop_sr=MODEL)` on the 1/4
document (each person is cut at input/4 and only the crop is super-resolved). Both use real,
registry-shipped weights (`lrp weights fetch all`); the 1/4 document is made once with `degrade`.
It prints the keypoint AP of each run too, so a speed-up is never read without its accuracy.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lrp.degrade import degrade_document  # noqa: E402
from lrp.evaluate import evaluate_document  # noqa: E402
from lrp.inputs import load_document  # noqa: E402
from lrp.pose import pose_document  # noqa: E402
from lrp.superres import superres_document  # noqa: E402
from timer import best_of  # noqa: E402  (bench/timer.py)


def keypoint_ap(doc: dict) -> float:
    return evaluate_document(doc).metrics["keypoints"]["AP"]


def main() -> None:
    repo = Path(__file__).resolve().parents[1]
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=repo.parent / "shared" / "data" / "coco-val-4")
    ap.add_argument("--sr", nargs="+", default=["bicubic", "srmdnf-x4"])
    ap.add_argument("--pose", default="movenet-thunder")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()

    hr = load_document(str(args.data / "person_keypoints.json"), images=args.data / "images")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        lr = degrade_document(hr, scale=0.25, out_dir=tmp / "lr", quiet=True)
        people = sum(1 for a in lr["annotations"] if not a.get("iscrowd"))
        print(f"{len(lr['images'])} images, {people} GT people, 1/4 bicubic; pose {args.pose} on GT boxes; best of {args.repeats}")
        print(f"{'SR model':<16} {'image-level s':>14} {'crop-level s':>13} {'crop/image speed':>17} {'AP image':>9} {'AP crop':>8}")
        for i, model in enumerate(args.sr):

            def image_level(i=i, model=model):
                # A new folder each time: a resumed run would skip the SR work being timed.
                out = tmp / f"sr{i}-{time.perf_counter_ns()}"
                sr = superres_document(lr, model=model, scale=4, out_dir=out, quiet=True)
                return pose_document(sr, model=args.pose, quiet=True)

            def crop_level(model=model):
                return pose_document(lr, model=args.pose, crop_sr=model, quiet=True)

            last = {}  # the documents of the timed calls, for their AP
            t_image = best_of(lambda: last.__setitem__("image", image_level()), args.repeats)
            t_crop = best_of(lambda: last.__setitem__("crop", crop_level()), args.repeats)
            doc_image, doc_crop = last["image"], last["crop"]
            print(f"{model:<16} {t_image:>14.2f} {t_crop:>13.2f} {t_image / t_crop:>16.2f}x "
                  f"{keypoint_ap(doc_image):>9.3f} {keypoint_ap(doc_crop):>8.3f}")


if __name__ == "__main__":
    main()
