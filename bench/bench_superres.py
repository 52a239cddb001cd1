"""Super-resolution benchmark: quality of the real-weight models, and speed against a baseline.

    .venv/bin/python bench/bench_superres.py quality   # PSNR/SSIM on real COCO images, x4
    .venv/bin/python bench/bench_superres.py speed     # images/s, ratios, GFLOP/s
    (weights: `lrp weights fetch realesrgan-x4plus realsr-df2k-x4 srmd-x4 srmdnf-x4`)

Quality: each COCO image of ../shared/data/coco-val-4 is cropped to a multiple of 4, shrunk
x1/4 with lrp's MATLAB bicubic (what `lrp degrade --scale 0.25` does), upscaled x4 by every
model, and compared with the original: PSNR and SSIM on the Y channel (ITU-R BT.601) with a
4-pixel border cropped, as BasicSR and the SR papers report them.

Speed: every number is a ratio against a baseline measured in the same run, which runs the model
the way the official test scripts do (fp32, NCHW, one image at a time, float input). lrp's way:
channels-last, same-size images batched, uint8 to the device, rounding on the device; then bf16
with its PSNR cost. GFLOP/s counts the convolutions' multiply-adds (x2) and is put beside what
one large 3x3 convolution reaches on the same machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lrp.device import load_state_dict, load_strict, weights_dir  # noqa: E402
from lrp.images import load_rgb  # noqa: E402
from lrp.models import get_model  # noqa: E402
from lrp.resize import resize_image  # noqa: E402
from lrp.superres import build_upscaler  # noqa: E402

DATA = Path(os.environ.get("LRP_SHARED_DATA", REPO.parent / "shared" / "data"))
REAL_X4 = ["realesrgan-x4plus", "realsr-df2k-x4", "srmd-x4", "srmdnf-x4"]


# --------------------------------------------------------------------------------------------
# Metrics (BasicSR conventions)


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    img = img.astype(np.float64)
    return 16.0 + (65.481 * img[..., 0] + 128.553 * img[..., 1] + 24.966 * img[..., 2]) / 255.0


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Wang et al. 2004 with an 11x11 Gaussian window (sigma 1.5), 'valid' borders, as BasicSR."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    g = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5**2))
    win = torch.from_numpy(np.outer(g, g) / np.outer(g, g).sum())[None, None]
    x = torch.from_numpy(a.astype(np.float64))[None, None]
    y = torch.from_numpy(b.astype(np.float64))[None, None]
    f = lambda t: F.conv2d(t, win)  # noqa: E731
    mx, my = f(x), f(y)
    sxx, syy, sxy = f(x * x) - mx**2, f(y * y) - my**2, f(x * y) - mx * my
    m = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))
    return float(m.mean())


def y_metrics(sr: np.ndarray, hr: np.ndarray, border: int = 4) -> tuple[float, float]:
    ys, yh = rgb_to_y(sr)[border:-border, border:-border], rgb_to_y(hr)[border:-border, border:-border]
    return psnr(ys, yh), ssim(ys, yh)


# --------------------------------------------------------------------------------------------


def coco_pairs(folder: Path, limit: int | None):
    paths = sorted((folder / "images").glob("*.jpg"))[:limit]
    for p in paths:
        hr = load_rgb(p)
        h, w = (hr.shape[0] // 4) * 4, (hr.shape[1] // 4) * 4
        hr = hr[:h, :w]
        yield p.name, hr, resize_image(hr, 0.25)


def available(names):
    have = [n for n in names if (weights_dir() / get_model(n).weights.file).is_file()]
    for n in sorted(set(names) - set(have)):
        print(f"skipping {n}: no weights (lrp weights fetch {n})", file=sys.stderr)
    return have


def quality(args) -> None:
    models = ["bicubic"] + available(REAL_X4)
    ups = {m: build_upscaler(get_model(m), 4, device="cpu", precision="fp32") for m in models}
    scores = {m: [] for m in models}
    for name, hr, lr in coco_pairs(DATA / "coco-val-4", args.limit):
        for m in models:
            t = time.perf_counter()
            sr = ups[m].upscale([lr])[0]
            scores[m].append(y_metrics(sr, hr))
            print(f"  {name} {lr.shape[1]}x{lr.shape[0]} {m}: PSNR {scores[m][-1][0]:.2f} SSIM {scores[m][-1][1]:.4f} "
                  f"({time.perf_counter() - t:.1f}s)", file=sys.stderr)
    base_p, base_s = np.mean([s[0] for s in scores["bicubic"]]), np.mean([s[1] for s in scores["bicubic"]])
    n = len(scores["bicubic"])
    print(f"\nx4 on {n} real COCO val2017 images (coco-val-4), MATLAB-bicubic degraded; Y channel, 4-px border; real weights")
    print("| model | PSNR (dB) | SSIM | PSNR vs bicubic | SSIM vs bicubic |")
    print("|---|---|---|---|---|")
    for m in models:
        p, s = np.mean([v[0] for v in scores[m]]), np.mean([v[1] for v in scores[m]])
        print(f"| {m} | {p:.2f} | {s:.4f} | {p - base_p:+.2f} | {s - base_s:+.4f} |")


# --------------------------------------------------------------------------------------------
# Speed


def conv_flops(model, x_shape, forward) -> float:
    """Multiply-adds of every Conv2d / ConvTranspose2d in one forward, x2."""
    total = [0.0]

    def hook(mod, inp, out):
        k = mod.weight.shape[2] * mod.weight.shape[3]
        cin = mod.in_channels // mod.groups
        total[0] += 2.0 * out.numel() * cin * k

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    with torch.inference_mode():
        forward(torch.zeros(x_shape))
    for h in handles:
        h.remove()
    return total[0]


def reference_conv_gflops(runs: int = 10) -> float:
    """Best of `runs` single passes of one large 3x3 convolution (the machine's practical peak)."""
    conv = torch.nn.Conv2d(64, 64, 3, 1, 1).eval().to(memory_format=torch.channels_last)
    x = torch.rand(1, 64, 192, 192).contiguous(memory_format=torch.channels_last)
    flops = 2.0 * 64 * 64 * 9 * 192 * 192
    best = float("inf")
    with torch.inference_mode():
        conv(x)
        for _ in range(runs):
            t0 = time.perf_counter()
            conv(x)
            best = min(best, time.perf_counter() - t0)
    return flops / best / 1e9


def _timed(variants: dict, reps: int) -> dict:
    """Best-of-`reps` seconds per variant, the variants interleaved (A B C A B C ...) so that a
    change in the machine's load hits them alike (this machine is shared)."""
    times = {name: [] for name in variants}
    for _ in range(reps):
        for name, fn in variants.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: min(t) for name, t in times.items()}


def speed(args) -> None:
    w, h = args.size
    rng = np.random.default_rng(0)
    hr_batch = [load_rgb(p)[: 4 * h, : 4 * w] for p in sorted((DATA / "coco-val-4" / "images").glob("*.jpg"))]
    hr_batch = [im for im in hr_batch if im.shape[:2] == (4 * h, 4 * w)] or [rng.integers(0, 256, (4 * h, 4 * w, 3), dtype=np.uint8)]
    lrs = [resize_image(hr_batch[i % len(hr_batch)], 0.25) for i in range(args.batch)]
    peak = reference_conv_gflops()
    print(f"\nspeed on {torch.get_num_threads()} CPU threads, {args.batch} images of {w}x{h} (1/4-scale COCO), "
          f"one large 3x3 conv (64->64, 192x192, channels-last fp32) reaches {peak:.1f} GFLOP/s")
    print("| model | baseline img/s | lrp fp32 img/s | fp32 speed-up | lrp bf16 img/s | bf16 speed-up | bf16 PSNR vs fp32 output (dB) | fp32 GFLOP/s (% of large conv) |")
    print("|---|---|---|---|---|---|---|---|")
    for name in ["bicubic"] + available(args.models):
        spec = get_model(name)
        if name == "bicubic":
            ups = build_upscaler(spec, 4)
            ups.upscale(lrs[:1])
            t = _timed({"bicubic": lambda: ups.upscale(lrs)}, args.reps)["bicubic"]
            print(f"| bicubic (numpy matrices) | - | {len(lrs) / t:.2f} | - | - | - | - | - |")
            continue
        fp32 = build_upscaler(spec, 4, device="cpu", precision="fp32")
        bf16 = build_upscaler(spec, 4, device="cpu", precision="bf16")
        # Baseline: the official test loop, float NCHW, one image at a time.
        base_net = spec.build()
        load_strict(base_net, load_state_dict(weights_dir() / spec.weights.file), name)
        base_net.eval()
        if spec.arch == "srmd":
            from lrp.models.srmd import conditioned

            base_fwd = conditioned(base_net, scale=4, noise=0.0, device=torch.device("cpu"), dtype=torch.float32)
        else:
            base_fwd = base_net

        def baseline():
            outs = []
            for lr in lrs:
                x = torch.from_numpy(np.ascontiguousarray(lr.transpose(2, 0, 1))).float().div(255).unsqueeze(0)
                with torch.no_grad():
                    y = base_fwd(x).squeeze().float().clamp_(0, 1).numpy()
                outs.append((np.transpose(y, (1, 2, 0)) * 255.0).round().astype(np.uint8))
            return outs

        # Warm-up on a small input: oneDNN set-up and weights in cache, not a whole batch.
        small = [lrs[0][:32, :32]]
        with torch.no_grad():
            base_fwd(torch.rand(1, 3, 32, 32))
        fp32.upscale(small), bf16.upscale(small)
        best = _timed({"base": baseline, "fp32": lambda: fp32.upscale(lrs), "bf16": lambda: bf16.upscale(lrs)}, args.reps)
        t_base, t32, t16 = best["base"], best["fp32"], best["bf16"]
        out32, out16 = fp32.upscale(lrs), bf16.upscale(lrs)
        cost = np.mean([psnr(a, b) for a, b in zip(out16, out32)])
        flops = conv_flops(base_net, (1, 3, h, w), base_fwd)
        gflops = flops * len(lrs) / t32 / 1e9
        n = len(lrs)
        print(f"| {name} | {n / t_base:.3f} | {n / t32:.3f} | {t_base / t32:.2f}x | {n / t16:.3f} | {t_base / t16:.2f}x | "
              f"{cost:.1f} | {gflops:.1f} ({100 * gflops / peak:.0f}%) |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("part", choices=["quality", "speed", "all"], nargs="?", default="all")
    ap.add_argument("--limit", type=int, default=None, help="quality: at most this many images")
    ap.add_argument("--size", type=int, nargs=2, default=[160, 104], metavar=("W", "H"), help="speed: LR size")
    ap.add_argument("--batch", type=int, default=2, help="speed: images per run (same size: one batch)")
    ap.add_argument("--reps", type=int, default=2, help="speed: timed repetitions (best of, interleaved)")
    ap.add_argument("--models", nargs="*", default=REAL_X4, help="speed: models (need weights)")
    args = ap.parse_args()
    if args.part in ("quality", "all"):
        quality(args)
    if args.part in ("speed", "all"):
        speed(args)


if __name__ == "__main__":
    main()
