"""Detector speed: images per second per model, and where the time goes.

    .venv/bin/python bench/bench_detect.py [--device cpu|cuda] [--models a,b] [--images N]

For each detector it runs `detect()` on real COCO images (../shared/data/coco-val-4, cycled to
N images) and prints images per second, then the share of the time spent in the backbone, in
NMS and in RoIAlign (the ops are wrapped with timers for this; on CUDA each timer
synchronises). A micro-benchmark then times NMS on 5,000 RPN-like boxes and RoIAlign on 1,000
RoIs, as ratios of one backbone forward measured in the same run: the baseline. Real weights are
used when present in the weights directory, else random ones (same speed for the network;
random R-CNNs get a person bias so that NMS and the mask head see ~100 detections per image)
and the table says which.
"""

from __future__ import annotations

import argparse
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from lrp.device import load_state_dict, resolve_device, weights_dir
from lrp.images import load_rgb
from lrp.models import get_model, ops, rcnn

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "coco-val-4" / "images"
MODELS = ["centernet-mbv3", "faster-rcnn-r50-fpn", "faster-rcnn-r101-fpn", "mask-rcnn-r50-fpn", "mask-rcnn-r101-fpn"]


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Timers:
    """Wrap functions of a module with accumulating timers (outermost call only)."""

    def __init__(self, device):
        self.device, self.total, self.depth = device, {}, 0

    @contextmanager
    def patch(self, module, name, label):
        original = getattr(module, name)

        def timed(*args, **kwargs):
            self.depth += 1
            outer = self.depth == 1
            if outer:
                sync(self.device)
                start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.depth -= 1
                if outer:
                    sync(self.device)
                    self.total[label] = self.total.get(label, 0.0) + time.perf_counter() - start

        setattr(module, name, timed)
        try:
            yield
        finally:
            setattr(module, name, original)


def build(name, device):
    spec = get_model(name, task="detect")
    model = spec.build()
    path = weights_dir() / spec.weights.file
    real = path.is_file()
    if real:
        model.load_state_dict(load_state_dict(path), strict=True)
    else:
        torch.manual_seed(0)
        with torch.no_grad():
            for key, t in model.state_dict().items():
                if key.endswith("running_var"):
                    t.fill_(1.0)
                elif t.dtype.is_floating_point:
                    fan_in = int(np.prod(t.shape[1:])) if t.dim() > 1 else 1
                    t.normal_(0, (1.0 / fan_in) ** 0.5 if t.dim() > 1 else 0.01)
            if isinstance(model, rcnn.GeneralizedRCNN):
                # Random R-CNNs score every class below 0.05; a person bias gives the NMS and
                # mask stages their usual ~100 detections per image to work on.
                model.roi_heads.box_predictor.cls_score.bias[0] = 4.0
    return model.to(device).eval(), real


def time_backbone(model, images, device, repeats=3):
    """One backbone forward on the first image (the baseline of the micro-benchmarks)."""
    if isinstance(model, rcnn.GeneralizedRCNN):
        batch, _ = model.preprocess(images[:1])
        run = lambda: model.backbone(batch)  # noqa: E731
    else:
        batch = model.preprocess(images[:1])
        run = lambda: model(batch)  # noqa: E731
    with torch.no_grad():
        run()
        sync(device)
        start = time.perf_counter()
        for _ in range(repeats):
            run()
        sync(device)
    return (time.perf_counter() - start) / repeats, tuple(batch.shape[-2:])


def rpn_like_boxes(n, device, seed=0):
    """Boxes around a few hundred objects, many overlapping, as RPN proposals are."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.rand(300, 2, generator=g) * torch.tensor([1333.0, 800.0])
    sizes = torch.rand(300, 2, generator=g) * 300 + 16
    pick = torch.randint(0, 300, (n,), generator=g)
    c = centres[pick] + torch.randn(n, 2, generator=g) * sizes[pick] * 0.15
    s = sizes[pick] * (1 + 0.2 * torch.randn(n, 2, generator=g)).clamp(min=0.3)
    boxes = torch.cat([c - s / 2, c + s / 2], 1)
    return boxes.to(device), torch.rand(n, generator=g).to(device)


def micro(device, baseline):
    boxes, scores = rpn_like_boxes(5000, device)
    levels = torch.randint(0, 5, (5000,), device=device)
    ops.batched_nms(boxes, scores, levels, 0.7)
    sync(device)
    start = time.perf_counter()
    for _ in range(3):
        kept = ops.nms(boxes, scores, 0.7)
    sync(device)
    t_nms = (time.perf_counter() - start) / 3
    start = time.perf_counter()
    for _ in range(3):
        ops.batched_nms(boxes, scores, levels, 0.7)
    sync(device)
    t_bnms = (time.perf_counter() - start) / 3
    # FPN maps p2..p5 of an 800 x 1344 input; each proposal pooled on its level, as the box head does.
    feats = [torch.randn(1, 256, 200 // 2**k, 336 // 2**k, device=device) for k in range(4)]
    proposals = [boxes[:1000]]
    rcnn.multilevel_roi_align(feats, proposals, 7)
    sync(device)
    start = time.perf_counter()
    for _ in range(3):
        rcnn.multilevel_roi_align(feats, proposals, 7)
    sync(device)
    t_roi = (time.perf_counter() - start) / 3
    print(f"\nmicro-benchmarks (baseline: one R-101-FPN backbone forward = {baseline * 1000:.0f} ms)")
    print(f"  NMS, 5000 boxes, IoU 0.7 ({len(kept)} kept):      {t_nms * 1000:8.1f} ms = {t_nms / baseline:.3f} x backbone")
    print(f"  batched NMS, 5000 boxes over 5 levels:          {t_bnms * 1000:8.1f} ms = {t_bnms / baseline:.3f} x backbone")
    print(f"  RoIAlign 7x7, 1000 RoIs on FPN levels p2-p5:     {t_roi * 1000:8.1f} ms = {t_roi / baseline:.3f} x backbone")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--images", type=int, default=4, help="images per model (coco-val-4, cycled)")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    files = sorted(DATA.glob("*.jpg"))
    images = [load_rgb(files[i % len(files)]) for i in range(args.images)]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}; {len(images)} COCO val images of about 640 x 480; torch {torch.__version__}")
    print(f"{'model':22} {'weights':7} {'img/s':>7} {'backbone':>9} {'NMS':>6} {'RoIAlign':>9} {'other':>6}  detections/img")
    r101_backbone = None
    for model_name in args.models.split(","):
        model, real = build(model_name, device)
        backbone_once, _ = time_backbone(model, images, device)
        if model_name == "faster-rcnn-r101-fpn":
            r101_backbone = backbone_once
        model.detect(images[:1])  # warm-up
        timers = Timers(device)
        backbone = model.backbone if isinstance(model, rcnn.GeneralizedRCNN) else model.MobilenetV3
        with timers.patch(ops, "nms", "nms"), timers.patch(ops, "roi_align", "roi_align"), timers.patch(backbone, "forward", "backbone"):
            # rcnn and centernet import ops functions through the module, so the patches apply.
            sync(device)
            start = time.perf_counter()
            n_det = 0
            for img in images:
                n_det += len(model.detect([img])[0]["boxes"])
            sync(device)
            total = time.perf_counter() - start
        share = {k: v / total for k, v in timers.total.items()}
        other = 1 - sum(share.values())
        print(
            f"{model_name:22} {'real' if real else 'random':7} {len(images) / total:7.2f} {share.get('backbone', 0):9.1%} "
            f"{share.get('nms', 0):6.1%} {share.get('roi_align', 0):9.1%} {other:6.1%}  {n_det / len(images):.0f}"
        )
        del model
    if r101_backbone is None:
        model, _ = build("faster-rcnn-r101-fpn", device)
        r101_backbone, _ = time_backbone(model, images, device)
    micro(device, r101_backbone)


if __name__ == "__main__":
    main()
