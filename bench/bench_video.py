"""Video plumbing costs, as ratios against baselines measured in the same run.

1. `lrp frames VIDEO` (decode with PyAV, write lossless PNG, build the document) against a plain
   PyAV loop that decodes and saves each frame with PIL's default PNG settings.
2. Frame windows: reading the 5 stacked frames a temporal model takes (lrp.frames.StackedFrames)
   against reading the one frame a single-image model takes, per frame.
3. The stopwatch around model calls: a superres run of the bicubic model with lrp's timing
   against the bare `Upscaler.upscale` calls on the same images (what timing adds per image).

The video is the synthetic one (lrp.sample_video) enlarged and encoded with FFV1, so nothing
outside the repository is needed.

    .venv/bin/python bench/bench_video.py --frames 60 --size 640x480
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from timer import best_of  # noqa: E402  (bench/timer.py)


def make_video(path: Path, n: int, size: tuple[int, int]) -> None:
    """A moving synthetic scene (the sample video's first frames, scrolled) as FFV1."""
    import av

    from lrp.sample_video import build

    with tempfile.TemporaryDirectory() as tmp:
        coco = build(Path(tmp))
        base = np.asarray(Image.open(Path(tmp) / "images" / coco["images"][0]["file_name"]).convert("RGB").resize(size))
    with av.open(str(path), "w") as c:
        s = c.add_stream("ffv1", rate=25)
        s.width, s.height, s.pix_fmt = size[0], size[1], "bgr0"
        for t in range(n):
            for p in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(np.roll(base, 3 * t, axis=1)), format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def plain_decode(video: Path, out: Path) -> None:
    import av

    out.mkdir(parents=True, exist_ok=True)
    with av.open(str(video)) as c:
        for i, frame in enumerate(c.decode(video=0)):
            Image.fromarray(frame.to_ndarray(format="rgb24")).save(out / f"{i:06d}.png")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))

    from lrp.document import images_by_id, image_path
    from lrp.frames import StackedFrames, frame_windows, frames_document
    from lrp.images import load_rgb

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        video = tmp / "clip.mkv"
        make_video(video, args.frames, size)
        runs = iter(range(10**6))
        base = best_of(lambda: plain_decode(video, tmp / f"plain{next(runs)}"), args.repeat)
        ours = best_of(lambda: frames_document([video], tmp / f"lrp{next(runs)}", quiet=True), args.repeat)
        print(f"frames: {args.frames} frames {args.size}; plain PyAV+PIL loop {args.frames / base:.1f} frames/s; "
              f"lrp frames {args.frames / ours:.1f} frames/s = {base / ours:.2f}x the baseline's speed")

        doc = frames_document([video], tmp / "lrp-final", quiet=True)
        imgs = images_by_id(doc)
        windows = frame_windows(doc, 2)
        one = best_of(lambda: [load_rgb(image_path(doc, i), i["id"]) for i in doc["images"]], args.repeat)
        five = best_of(lambda: [stack(windows[i["id"]]) for stack in [StackedFrames(doc)] for i in doc["images"]], args.repeat)
        print(f"windows: reading 5 stacked frames per frame costs {five / one:.2f}x reading one "
              f"({1000 * one / len(imgs):.2f} vs {1000 * five / len(imgs):.2f} ms per frame)")

        from lrp.models import get_model
        from lrp.superres import build_upscaler, superres_document

        arrays = [load_rgb(image_path(doc, i), i["id"]) for i in doc["images"]]
        upscaler = build_upscaler(get_model("bicubic"), 2)
        bare = best_of(lambda: [upscaler.upscale(arrays[k : k + 4]) for k in range(0, len(arrays), 4)], args.repeat)
        step = best_of(lambda: superres_document(doc, model="bicubic", scale=2, out_dir=tmp / f"sr{next(runs)}", quiet=True), args.repeat)
        timed_doc = superres_document(doc, model="bicubic", scale=2, out_dir=tmp / "sr-final", quiet=True)
        t = timed_doc["lrp"]["history"][-1]["timing"]
        print(f"timing: bare upscale calls {1000 * bare / len(arrays):.2f} ms per frame; the step records model "
              f"{t['model_ms_per_image']:.2f} ms and total {t['total_ms_per_image']:.2f} ms per frame "
              f"(model/bare = {t['model_ms_per_image'] / (1000 * bare / len(arrays)):.2f}x; whole step incl. PNG writing "
              f"{step / bare:.2f}x the bare calls)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
