"""`lrp superres`: upscale every image with an SR model and move the document into the SR frame.

Per image: load (threads) -> batch with same-size images -> network on the device (optionally
tile by tile) -> round to uint8 on the device -> PNG (threads). Everything that can be wrong
with the arguments, the weights, the kernel or the image sizes is checked before the first file
is written. GT and results are reframed by lrp.geometry; finished PNGs of an earlier identical
run are reused.
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from lrp.errors import LrpError, UsageError
from lrp.options import BatchSize, Device, Images, Input, KeepGoing, Model, OutDir, Output, Precision, Quiet, Shard, Weights, Workers

# --------------------------------------------------------------------------------------------
# Kernels and degradation


def degradation_kernel(doc: dict, spec, scale: int, *, quiet: bool = True) -> tuple[np.ndarray, str]:
    """The blur + decimation kernel that best explains how the document's images were made: the
    model's official bicubic kernels for a bicubic document when their file is in the weights
    folder (what the official bicubic test uses), else lrp's fit of the document's own resize."""
    from lrp.models import weights_dir
    from lrp.kernels import fit_decimation_kernel, load_kernel, parse_blur, scales_in_name

    deg = doc["lrp"].get("degradation") or {}
    method = deg.get("method", "bicubic")
    same_scale = not deg.get("scale") or abs(deg["scale"] * scale - 1) <= 1e-6
    if not same_scale:
        print(
            f"lrp superres: note: the document was degraded by {deg['scale']:g}, not 1/{scale}; "
            "fitting the kernel of a 1/{scale} resize with the same method",
            file=sys.stderr,
        )
    if spec.bicubic_kernels and method == "bicubic" and not deg.get("kernel") and same_scale:
        name, page = spec.bicubic_kernels
        if scale in (scales_in_name(name) or ()):
            path = weights_dir() / name
            if path.is_file():
                return load_kernel(str(path), scale=scale)[0], f"{name} x1/{scale}"
            if not quiet:
                print(
                    f"lrp superres: note: no {path} (the official bicubic kernels, from {page}); "
                    "using lrp's fitted kernel instead, within 0.007 per tap of the official one",
                    file=sys.stderr,
                )
    blur, _ = parse_blur(deg.get("kernel")) if deg.get("kernel") else (None, None)
    kernel = fit_decimation_kernel(scale, method=method, blur=blur)
    return kernel, f"fitted {method}{' + ' + str(deg.get('kernel')) if blur else ''} x1/{scale}"


# --------------------------------------------------------------------------------------------
# The upscaler: one object that turns a batch of same-size uint8 images into SR uint8 images


class Upscaler:
    def __init__(self, spec, scale: int, forward=None, *, device=None, dtype=None, tile=None, overlap=0, quiet=True):
        self.spec, self.scale, self.forward = spec, scale, forward
        self.device, self.dtype, self.tile, self.overlap, self.quiet = device, dtype, tile, overlap, quiet

    def bytes_per_image(self, w: int, h: int) -> int:
        per_px = self.spec.bytes_per_output_pixel
        if self.dtype is not None:
            per_px = per_px * self.dtype.itemsize // 4 + 8  # + the uint8/float staging
        if self.tile:
            span = self.tile + 2 * self.overlap
            w, h = min(w, span), min(h, span)
        return int(per_px * w * h * self.scale * self.scale)

    def upscale(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        """Same-size HxWx3 uint8 images -> their SR images (uint8)."""
        if self.spec.input == "uint8":  # a plain function of the images (bicubic: numpy, no torch)
            return self.forward(arrays, self.scale)
        import torch

        from lrp.tiling import tiled_forward

        # NHWC uint8 viewed as NCHW is exactly the channels-last layout: no copy, and 4x less
        # to move to the device than float32.
        x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
        if self.tile:
            y = tiled_forward(self.forward, x, self.scale, self.tile, self.overlap, self.device, quiet=self.quiet)
        else:
            try:
                with torch.inference_mode():
                    y = self.forward(x.to(self.device)).cpu()
            except torch.cuda.OutOfMemoryError:
                raise LrpError(f"out of memory on {self.device}; use --tile 256 (or smaller)") from None
        return list(y.permute(0, 2, 3, 1).numpy())


def bicubic():
    """Registry builder of `bicubic`: MATLAB bicubic of uint8 images, numpy matrices, no network."""
    from lrp.resize import resize_image

    return lambda arrays, scale: [resize_image(a, float(scale), "bicubic") for a in arrays]


def _to_uint8_forward(net, dtype):
    """uint8 NCHW on the device -> network -> uint8 NCHW on the device (clamped, rounded)."""
    import torch

    def forward(x: torch.Tensor) -> torch.Tensor:
        y = net(x.to(dtype).div_(255))
        return y.float().clamp_(0, 1).mul_(255).round_().to(torch.uint8)

    return forward


def build_upscaler(
    spec,
    scale: int,
    *,
    weights: Optional[Path] = None,
    device: str = "auto",
    precision: str = "fp32",
    kernel: Optional[np.ndarray] = None,
    noise: float = 0.0,
    tile: Optional[int] = None,
    overlap: int = 32,
    quiet: bool = True,
) -> Upscaler:
    if spec.input == "uint8":
        return Upscaler(spec, scale, spec.build())
    import torch

    from lrp.device import load_model
    from lrp.models import resolve

    net, dev, dtype = load_model(spec, weights, device, precision)
    net = net.to(memory_format=torch.channels_last)
    if spec.conditioner:
        given = {"kernel": kernel, "noise": noise}
        net = resolve(spec.conditioner)(net, scale=scale, device=dev, dtype=dtype, **{c: given[c] for c in spec.conditioning})
    return Upscaler(spec, scale, _to_uint8_forward(net, dtype), device=dev, dtype=dtype, tile=tile, overlap=overlap, quiet=quiet)


# --------------------------------------------------------------------------------------------
# Memory


def memory_budget(device) -> int:
    """Bytes one batch may use: $LRP_MEMORY_LIMIT, else 60% of free device or host memory."""
    if os.environ.get("LRP_MEMORY_LIMIT"):
        return int(float(os.environ["LRP_MEMORY_LIMIT"]))
    if device is not None and device.type == "cuda":
        import torch

        free, _total = torch.cuda.mem_get_info(device)
        return int(free * 0.8)
    try:
        with open("/proc/meminfo") as f:
            info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f}
        return int(info.get("MemAvailable", info.get("MemTotal", 8 << 30)) * 0.6)
    except OSError:
        return 8 << 30


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB"


# --------------------------------------------------------------------------------------------
# The whole document


def resolve_scale(spec, scale: Optional[int], doc: dict) -> int:
    if scale is not None and scale < 1:
        raise UsageError(f"--scale {scale}: must be an integer >= 1")
    if spec.scale is not None:
        if scale is not None and scale != spec.scale:
            raise UsageError(f"model {spec.name} upscales x{spec.scale} only; got --scale {scale}")
        return spec.scale
    if scale is not None:
        return scale
    deg = doc["lrp"].get("degradation") or {}
    if deg.get("scale") and deg["scale"] < 1 and abs(1 / deg["scale"] - round(1 / deg["scale"])) < 1e-6:
        return int(round(1 / deg["scale"]))
    return 4


def run_label(args: dict) -> str:
    """The key arguments in a run folder's name: `realsr-df2k-x4`, `bicubic-x4`."""
    model, scale = args["model"], args["scale"]
    return model if model.endswith(f"x{scale}") else f"{model}-x{scale}"


def superres_document(
    doc: dict,
    *,
    model: str,
    scale: Optional[int] = None,
    weights: Optional[Path] = None,
    kernel: Optional[str] = None,
    noise: Optional[float] = None,
    device: str = "auto",
    precision: str = "fp32",
    batch_size: int = 4,
    tile: Optional[int] = None,
    tile_overlap: int = 32,
    out_dir: Optional[Path] = None,
    workers: Optional[int] = None,
    quiet: bool = False,
    keep_going: bool = False,
    shard: Optional[str] = None,
) -> dict:
    """Super-resolve every image of `doc`, write PNGs, return the document in the SR frame
    (`doc` is untouched). What the model needs (scale, memory, kernel, noise) comes from its
    registry spec. Raises LrpError on the first failing image, or with `keep_going` a
    PartialFailure after all images, carrying the document without the failed ones. `shard`
    ("I/N") keeps one shard of the images; a temporal model still reads their neighbours."""
    from lrp.failures import ImageFailures
    from lrp.document import add_history, image_path
    from lrp.frames import StackedFrames, frame_windows
    from lrp.shard import apply_shard
    from lrp.timing import Stopwatch, gt_people, record_timing
    from lrp.geometry import resize_xform
    from lrp.images import load_rgb, parallel_map
    from lrp.kernels import load_kernel
    from lrp.models import get_model
    from lrp.outputs import (
        Frame, claim_out_dir, drop_images, finish_run, finished_png, output_targets, reframed, resolve_out_dir, save_png,
    )

    spec = get_model(model, "superres")
    sf = resolve_scale(spec, scale, doc)
    if tile is not None and tile < 16:
        raise UsageError(f"--tile {tile}: must be at least 16 pixels")
    if tile_overlap < 0:
        raise UsageError(f"--tile-overlap {tile_overlap}: must be >= 0")
    takes_kernel = "kernel" in spec.conditioning
    takes_noise = "noise" in spec.conditioning or spec.noisy_variant is not None
    if kernel is not None and not takes_kernel:
        raise UsageError(f"--kernel applies to {_models_taking('kernel')} models only, not {model}")
    if noise is not None and not takes_noise:
        raise UsageError(f"--noise applies to {_models_taking('noise')} models only, not {model}")
    kernel_array, kernel_label = None, None
    if takes_kernel:
        if kernel is not None:
            kernel_array, kernel_label = load_kernel(kernel, scale=sf)[0], kernel
        else:
            kernel_array, kernel_label = degradation_kernel(doc, spec, sf, quiet=quiet)
    if takes_noise:
        if noise is None:
            noise = float((doc["lrp"].get("degradation") or {}).get("noise") or 0.0)
        if spec.noisy_variant and noise > 0:
            raise UsageError(f"{model} is trained on noise-free images only; use {spec.noisy_variant} for noisy images")
        if not noise >= 0:
            raise UsageError(f"--noise {noise}: must be >= 0 (grey levels)")
    # What a temporal model reads, from the whole document: a frame's neighbours may lie in other shards.
    windows = frame_windows(doc, spec.frames // 2) if spec.frames > 1 else None
    stacked = StackedFrames(doc, keep=4 * (batch_size + spec.frames)) if windows else None  # decodes each frame ~once
    doc = apply_shard(doc, shard, "superres")
    upscaler = build_upscaler(
        spec, sf, weights=weights, device=device, precision=precision, kernel=kernel_array,
        noise=noise or 0.0, tile=tile, overlap=tile_overlap, quiet=quiet,
    )
    watch = Stopwatch(upscaler.device or "cpu")

    # Sizes first: refuse what cannot fit before anything is written.
    budget = memory_budget(upscaler.device)
    for img in doc["images"]:
        need = upscaler.bytes_per_image(img["width"], img["height"])
        if need > budget:
            w, h = img["width"] * sf, img["height"] * sf
            hint = "use a smaller --tile" if tile else "use --tile 256"
            raise LrpError(
                f"image {img['id']} ({img['file_name']}): the {w}x{h} SR output needs about {_gib(need)}, "
                f"{_gib(budget)} available; {hint}"
            )

    args = {
        "model": model, "scale": sf, "weights": str(weights) if weights else None, "kernel": kernel_label,
        "noise": noise, "precision": precision,
    }
    if windows:
        args["frames"] = spec.frames  # DESIGN: steps that use neighbouring frames say how many
    hash_args = dict(args, tile=tile, tile_overlap=tile_overlap if tile else None)
    root = resolve_out_dir("superres", doc, hash_args, out_dir, label=run_label(args))
    targets = output_targets(doc, root)
    resuming = claim_out_dir(root, "superres", doc, hash_args)
    frames = {}
    for img in doc["images"]:
        size = (img["width"] * sf, img["height"] * sf)
        xf = resize_xform((img["width"], img["height"]), size)
        frames[img["id"]] = Frame(size, xf, xf)

    todo = [img for img in doc["images"] if not (resuming and finished_png(targets[img["id"]], frames[img["id"]].size))]
    batches = _batches(todo, batch_size, lambda img: upscaler.bytes_per_image(img["width"], img["height"]), budget)
    failures = ImageFailures(keep_going)

    def load(batch):
        loaded = []
        for img in batch:
            arr = failures.guard(img["id"], lambda: load_rgb(image_path(doc, img), img["id"], (img["width"], img["height"]))
                                 if windows is None else stacked(windows[img["id"]], img["id"]))
            if arr is not None:
                loaded.append((img, arr))
        return loaded

    def save(img, arr):
        failures.guard(img["id"], save_png, arr, targets[img["id"]], writing=targets[img["id"]])

    with ThreadPoolExecutor(max_workers=max(1, workers or 2)) as writer:
        pending = []
        for loaded in parallel_map(load, batches, workers=workers, desc=f"superres {model}", quiet=quiet):
            if not loaded:
                continue
            try:
                with watch.model():
                    outs = upscaler.upscale([arr for _, arr in loaded])
            except LrpError as e:
                for img, _ in loaded:  # the batch failed as a whole: each of its images did
                    failures.record(img["id"], e, prefix=f"image {img['id']}: ")
                continue
            pending += [writer.submit(save, img, out) for (img, _), out in zip(loaded, outs)]
        for fut in pending:
            fut.result()
    if not failures:
        finish_run(root, doc)

    new_doc = reframed(doc, frames, root)
    add_history(new_doc, "superres", args)
    failed = failures.ids
    ran = [img["id"] for img in todo if img["id"] not in failed]
    record_timing(new_doc, watch, len(ran), gt_people(doc, ran))
    if not quiet:
        reused = len(doc["images"]) - len(todo)
        print(
            f"lrp superres: {len(doc['images']) - len(failures)} images x{sf} with {model} in {root}"
            + (f" ({reused} reused from an earlier run)" if reused else ""),
            file=sys.stderr,
        )
    if failures:
        failures.finish(doc["images"], drop_images(new_doc, failures.ids))
    return new_doc


def _models_taking(what: str) -> str:
    """'usrnet', 'srmd and usrnet': the model families that accept --kernel / --noise."""
    from lrp.models import REGISTRY

    families = sorted(
        {s.arch.split("-")[0] for s in REGISTRY.values()
         if s.task == "superres" and (what in s.conditioning or (what == "noise" and s.noisy_variant))}
    )
    return " and ".join(families) or "no"


def _batches(images: list[dict], batch_size: int, need, budget: int) -> list[list[dict]]:
    """Same-size images together (one forward pass each), at most batch_size and within memory."""
    groups: dict[tuple[int, int], list[dict]] = {}
    for img in images:
        groups.setdefault((img["width"], img["height"]), []).append(img)
    batches = []
    for group in groups.values():
        per_batch = max(1, min(batch_size, budget // max(1, need(group[0]))))
        batches += [group[i : i + per_batch] for i in range(0, len(group), per_batch)]
    return batches


# --------------------------------------------------------------------------------------------
# CLI


def command(
    input: Input = None,
    images: Images = None,
    model: Model = "bicubic",
    scale: Optional[int] = typer.Option(
        None, "--scale", "-s", help="Upscaling factor (default: the model's, or 1/the document's degradation scale, or 4).",
        show_default=False,
    ),
    weights: Weights = None,
    kernel: Optional[str] = typer.Option(
        None, "--kernel", help="usrnet: a 2-D blur kernel file (.npy, text or MATLAB .mat such as the official kernels_bicubicx234.mat; sums to 1) instead of the one that explains the document's degradation.",
        show_default=False,
    ),
    noise: Optional[float] = typer.Option(
        None, "--noise", help="usrnet/srmd: noise level in grey levels (default: the document's degradation).", show_default=False
    ),
    device: Device = "auto",
    precision: Precision = "fp32",
    batch_size: BatchSize = 4,
    tile: Optional[int] = typer.Option(
        None, "--tile", help="Process LR tiles of N x N pixels (for images that do not fit the device).", show_default=False
    ),
    tile_overlap: int = typer.Option(32, "--tile-overlap", help="Extra LR pixels around each tile, cropped after the network."),
    output: Output = None,
    out_dir: OutDir = None,
    shard: Shard = None,
    workers: Workers = None,
    keep_going: KeepGoing = False,
    quiet: Quiet = False,
):
    """Super-resolve every image (bicubic, ESRGAN/ESRNET, USRNet/USRGAN, Real-ESRGAN, RealSR, SRMD).

    Writes the SR images as PNG and prints the document in the SR frame: the xform is composed,
    and GT, detections and poses move with the images. `lrp weights list` shows the models and
    how to get their weights.

    Example:

        lrp degrade --scale 0.25 < hr.json | lrp superres --model realsr-df2k-x4 > sr.json

        lrp superres --model esrgan --tile 128 --precision bf16 lr.json -o sr.json
    """
    from lrp.inputs import load_document
    from lrp.outputs import write_result
    from lrp.shard import parse_shard

    if shard is not None:
        parse_shard(shard)  # a usage error before reading anything
    doc = load_document(input, images=images, allow_sample=True, quiet=quiet)
    write_result(
        "superres",
        output,
        lambda: superres_document(
            doc, model=model, scale=scale, weights=weights, kernel=kernel, noise=noise, device=device,
            precision=precision, batch_size=batch_size, tile=tile, tile_overlap=tile_overlap, out_dir=out_dir,
            workers=workers, quiet=quiet, keep_going=keep_going, shard=shard,
        ),
    )


# `lrp.superres(...)` calls superres_document (lrp/__init__.py: the Python API).
from lrp import callable_step  # noqa: E402

callable_step(__name__)
