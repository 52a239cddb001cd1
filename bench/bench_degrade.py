"""Images per second of `lrp degrade` against a plain per-image PIL loop, in one run.

Baseline: for each image, PIL open, resize with PIL BICUBIC to the ceil size, save PNG with
PIL's default settings, one image after another (what a short script would do). lrp: the whole
`degrade_document` (MATLAB bicubic as matrix products, decode/encode in threads), once with its
default number of threads and once with one thread.

    .venv/bin/python bench/bench_degrade.py --limit 40 --scale 0.25
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lrp.document import adopt  # noqa: E402
from lrp.geometry import output_size  # noqa: E402
from lrp.images import default_workers  # noqa: E402

DEFAULT_IMAGES = REPO.parent / "shared" / "data" / "coco-train-mini" / "images"


def folder_document(folder: Path, limit: int | None) -> dict:
    """A COCO document of the images in a folder (sizes from the file headers), no annotations."""
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:limit]
    images = []
    for i, path in enumerate(files, start=1):
        with Image.open(path) as im:
            w, h = im.size
        images.append({"id": i, "file_name": path.name, "width": w, "height": h})
    data = {"images": images, "annotations": [], "categories": [{"id": 1, "name": "person"}]}
    return adopt(data, str(folder), images=folder)


def pil_loop(doc: dict, folder: Path, scale: float, out: Path) -> None:
    for img in doc["images"]:
        with Image.open(folder / img["file_name"]) as im:
            size = (output_size(im.width, scale), output_size(im.height, scale))
            im.resize(size, Image.Resampling.BICUBIC).save(out / (Path(img["file_name"]).stem + ".png"))


def lrp_run(doc: dict, scale: float, out: Path, workers: int | None) -> None:
    from lrp.degrade import degrade_document

    degrade_document(doc, scale=scale, out_dir=out, workers=workers, quiet=True)


def timed(fn, repeat: int) -> float:
    """Best wall time of `repeat` runs, each into a fresh folder (no resume shortcuts)."""
    best = float("inf")
    for _ in range(repeat):
        with tempfile.TemporaryDirectory(prefix="bench-degrade-") as tmp:
            t0 = time.perf_counter()
            fn(Path(tmp))
            best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=Path, default=DEFAULT_IMAGES, help="folder of JPEG/PNG images")
    ap.add_argument("--limit", type=int, default=None, help="use only the first N images")
    ap.add_argument("--scale", type=float, default=0.25)
    ap.add_argument("--repeat", type=int, default=2, help="best of N runs per contender")
    ap.add_argument("--workers", type=int, default=None, help=f"lrp threads (default {default_workers()})")
    args = ap.parse_args()

    doc = folder_document(args.images, args.limit)
    n = len(doc["images"])
    if n == 0:
        sys.exit(f"no images in {args.images}")
    for img in doc["images"]:  # warm the page cache so that neither contender pays for the disk
        (args.images / img["file_name"]).read_bytes()

    contenders = {
        "PIL loop (baseline)": lambda out: pil_loop(doc, args.images, args.scale, out),
        f"lrp degrade, {args.workers or default_workers()} threads": lambda out: lrp_run(doc, args.scale, out, args.workers),
        "lrp degrade, 1 thread": lambda out: lrp_run(doc, args.scale, out, 1),
    }
    print(f"{n} images from {args.images}, scale {args.scale:g}, best of {args.repeat}, {os.cpu_count()} CPU cores")
    base = None
    for name, fn in contenders.items():
        rate = n / timed(fn, args.repeat)
        base = base or rate
        print(f"{name:32s} {rate:8.1f} images/s   x{rate / base:.2f} vs PIL loop")


if __name__ == "__main__":
    main()
