"""Decoder speed: people per second of each codec (`lrp.codecs`), as ratios against the
standard decoder measured in the same run.

    python bench/bench_decode.py [--people 256] [--repeats 3]

Heatmaps are random Gaussians around random peaks (what a trained head gives, roughly) at the
stride-4 size of a 256x192 input (64x48) and at the input resolution (256x192, SRPose's SR
head); offsets and SimCC vectors of the matching sizes. CPU, numpy: the decoders run on the host.
At the input resolution a 16th of the people are decoded (DARK/UDP blur in float64 there needs
about 1 GB for 64 people); people/s stay comparable.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lrp.codecs import CODECS  # noqa: E402
from timer import best_of  # noqa: E402  (bench/timer.py)


def gaussian_heatmaps(n: int, size: tuple[int, int], rng) -> np.ndarray:
    w, h = size
    peaks = rng.uniform([2, 2], [w - 3, h - 3], (n, 17, 2))
    xs, ys = np.arange(w), np.arange(h)
    sigma = 2.0 * w / 48
    gx = np.exp(-((xs[None, None] - peaks[..., :1]) ** 2) / (2 * sigma**2))
    gy = np.exp(-((ys[None, None] - peaks[..., 1:]) ** 2) / (2 * sigma**2))
    return (gy[..., :, None] * gx[..., None, :] + rng.normal(0, 0.01, (n, 17, h, w))).astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--people", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    input_size = (192, 256)
    print(f"{args.people} people, 17 keypoints, input 192x256, best of {args.repeats}; ratios against standard at the same heatmap size")
    print(f"{'heatmaps':10s} {'codec':10s} {'people/s':>12s} {'vs standard':>12s}")
    for label, size, n in (("64x48", (48, 64), args.people), ("256x192", (192, 256), max(2, args.people // 16))):
        hm = gaussian_heatmaps(n, size, rng)
        center, scale = rng.uniform(100, 500, (n, 2)), rng.uniform(0.3, 1.5, (n, 2))
        outputs = {
            "heatmap": hm,
            "heatmap+offset": (hm, rng.uniform(-0.5, 0.5, (n, 17, 2, size[1], size[0])).astype(np.float32)),
            "simcc": (rng.standard_normal((n, 17, 384)).astype(np.float32), rng.standard_normal((n, 17, 512)).astype(np.float32)),
        }
        base = None
        for name, cls in CODECS.items():
            if name == "simcc" and label != "64x48":
                continue  # SimCC has no heatmaps: one row is enough
            codec = cls()
            out = outputs[cls.reads]
            rate = n / best_of(lambda: codec.decode(out, center, scale, input_size), args.repeats, warmup=True)
            base = rate if name == "standard" else base
            print(f"{label:10s} {name:10s} {rate:12.0f} {rate / base:11.2f}x", flush=True)


if __name__ == "__main__":
    main()
