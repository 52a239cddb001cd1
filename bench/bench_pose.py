"""People per second of `lrp pose` models: batched crops versus one crop at a time, same run.

    .venv/bin/python bench/bench_pose.py                      # every pose model, CPU, 8 people
    .venv/bin/python bench/bench_pose.py --device cuda --people 256 --models hrnet-w32-256x192

Times the part `lrp pose` repeats per person: cutting crops on the device, the forward passes
(with the flip test for heatmap models) and decoding, from person boxes on one 640x480 image
(image decoding is excluded; it overlaps with compute in `lrp pose`). The baseline handles one
person at a time (crop, forward, decode); the batched run cuts all crops in one gather and runs
`--batch-size` crops (plus their mirrors) per forward pass. Weights are random, which does not
change the speed; the speed-up is against the baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lrp.device import resolve_device  # noqa: E402
from lrp.models import REGISTRY  # noqa: E402
from lrp.models.pose_zoo import pose_traits  # noqa: E402
from lrp.topdown import TopDown  # noqa: E402


def people_boxes(n: int, width: int, height: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w = rng.uniform(40, width / 2, n)
    h = rng.uniform(80, height * 0.9, n)
    return np.stack([rng.uniform(0, width - w), rng.uniform(0, height - h), w, h], axis=1)


def time_run(run: TopDown, image: torch.Tensor, boxes: np.ndarray, repeats: int, one_by_one: bool) -> float:
    """Best-of-`repeats` seconds for all boxes (one warm-up first). `one_by_one`: each person
    cut, run and decoded alone, as a per-person loop would; else all crops at once."""
    best = float("inf")
    groups = [boxes[i : i + 1] for i in range(len(boxes))] if one_by_one else [boxes]
    for i in range(repeats + 1):
        if run.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for group in groups:
            c, s = run.centers_scales(group)
            run.predict(run.crops(image, c, s), c, s)
        if run.device.type == "cuda":
            torch.cuda.synchronize()
        if i:
            best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="*", default=sorted(n for n, s in REGISTRY.items() if s.task == "pose"))
    ap.add_argument("--device", default="auto")
    ap.add_argument("--people", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    args = ap.parse_args()

    device = resolve_device(args.device)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[args.precision]
    image = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (480, 640, 3), dtype=np.uint8)).to(device)
    boxes = people_boxes(args.people, 640, 480)
    print(f"device {device} ({torch.get_num_threads()} threads), {args.people} people, {args.precision}, random weights")
    print(f"{'model':22s} {'one at a time':>15s} {'batched':>12s} {'speed-up':>9s}")
    for name in args.models:
        spec = REGISTRY[name]
        torch.manual_seed(0)
        model = spec.build().to(device=device, dtype=dtype)
        head = pose_traits(spec).head
        regression = head == "regression"
        rates = []
        for batch in (1, args.batch_size):
            run = TopDown(model, spec.kwargs["input_size"], kind=head,
                          device=device, dtype=dtype, flip=not regression, batch_size=batch)
            # A temporal model cuts the same crops from each frame of its window (here one still, repeated).
            window = image.repeat(1, 1, spec.frames)
            rates.append(args.people / time_run(run, window, boxes, args.repeats, one_by_one=batch == 1))
        print(f"{name:22s} {rates[0]:11.2f} p/s {rates[1]:8.2f} p/s {rates[1] / rates[0]:8.2f}x", flush=True)


if __name__ == "__main__":
    main()
