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
from lrp.options import BatchSize, Device, Images, Input, KeepGoing, Model, OutDir, Output, Precision, Quiet, Weights, Workers

# Peak working memory per output pixel per image at fp32 (activations at HR size, measured
# roughly from the largest live tensors): used to refuse images that would not fit untiled.
_BYTES_PER_OUTPUT_PIXEL = {"bicubic": 40, "esrgan": 1100, "usrnet": 2600, "usrnet-tiny": 900, "srmd": 200}


# --------------------------------------------------------------------------------------------
# Kernels and degradation


def read_kernel(spec: str) -> np.ndarray:
    """A blur kernel file (.npy, or whitespace-separated text): 2-D, finite, sums to about 1."""
    from lrp.resize import load_kernel_file

    return check_kernel(load_kernel_file(spec)[0], f"--kernel {spec}")


def check_kernel(k: np.ndarray, where: str) -> np.ndarray:
    if k.ndim != 2 or min(k.shape) < 1:
        raise UsageError(f"{where}: a blur kernel must be a 2-D array, got shape {tuple(k.shape)}")
    if not np.all(np.isfinite(k)):
        raise UsageError(f"{where}: the kernel has NaN or infinite entries")
    if abs(k.sum() - 1.0) > 1e-2:
        raise UsageError(f"{where}: a blur kernel must sum to about 1 (it sums to {k.sum():.4g})")
    return k


def degradation_kernel(doc: dict, scale: int) -> tuple[np.ndarray, str]:
    """The blur + decimation kernel that best explains how the document's images were made."""
    from lrp.degrade import parse_kernel
    from lrp.models.usrnet import fit_decimation_kernel

    deg = doc["lrp"].get("degradation") or {}
    method = deg.get("method", "bicubic")
    if deg and deg.get("scale") and abs(deg["scale"] * scale - 1) > 1e-6:
        print(
            f"lrp superres: note: the document was degraded by {deg['scale']:g}, not 1/{scale}; "
            "fitting the kernel of a 1/{scale} resize with the same method",
            file=sys.stderr,
        )
    blur, _ = parse_kernel(deg.get("kernel")) if deg.get("kernel") else (None, None)
    kernel = fit_decimation_kernel(scale, method=method, blur=blur)
    return kernel, f"fitted {method}{' + ' + str(deg.get('kernel')) if blur else ''} x1/{scale}"


# --------------------------------------------------------------------------------------------
# The upscaler: one object that turns a batch of same-size uint8 images into SR uint8 images


class Upscaler:
    def __init__(self, spec, scale: int, forward=None, *, device=None, dtype=None, tile=None, overlap=0, quiet=True):
        self.spec, self.scale, self.forward = spec, scale, forward
        self.device, self.dtype, self.tile, self.overlap, self.quiet = device, dtype, tile, overlap, quiet

    def bytes_per_image(self, w: int, h: int) -> int:
        arch = self.spec.arch
        per_px = _BYTES_PER_OUTPUT_PIXEL.get(arch, 2000)
        if self.dtype is not None:
            per_px = per_px * self.dtype.itemsize // 4 + 8  # + the uint8/float staging
        if self.tile:
            span = self.tile + 2 * self.overlap
            w, h = min(w, span), min(h, span)
        return int(per_px * w * h * self.scale * self.scale)

    def upscale(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        """Same-size HxWx3 uint8 images -> their SR images (uint8)."""
        if self.forward is None:  # bicubic: numpy matrices, no torch
            from lrp.resize import resize_image

            return [resize_image(a, float(self.scale), "bicubic") for a in arrays]
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


class BicubicUpscaler:
    """Registry builder of `bicubic` (it has no network; Upscaler runs lrp.resize directly)."""


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
    if spec.arch == "bicubic":
        return Upscaler(spec, scale)
    import torch

    from lrp.device import load_state_dict, load_strict, resolve_device, resolve_dtype, weights_path

    dev = resolve_device(device)
    dtype = resolve_dtype(precision, dev)
    path = weights_path(spec, weights)
    net = spec.build()
    load_strict(net, load_state_dict(path), str(path))
    net = net.eval().to(device=dev, dtype=dtype, memory_format=torch.channels_last)
    if spec.arch in ("usrnet", "usrnet-tiny"):
        from lrp.models.usrnet import conditioned

        net = conditioned(net, kernel=kernel, scale=scale, noise=noise, device=dev, dtype=dtype)
    elif spec.arch == "srmd":
        from lrp.models.srmd import conditioned

        net = conditioned(net, scale=scale, noise=noise, device=dev, dtype=dtype)
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
) -> dict:
    from lrp.errors import PartialFailure
    from lrp.document import add_history, image_path
    from lrp.geometry import resize_xform
    from lrp.images import load_rgb, parallel_map
    from lrp.models import get_model
    from lrp.outputs import Frame, claim_out_dir, drop_images, finished_png, output_targets, reframed, resolve_out_dir, save_png

    spec = get_model(model, "superres")
    sf = resolve_scale(spec, scale, doc)
    if tile is not None and tile < 16:
        raise UsageError(f"--tile {tile}: must be at least 16 pixels")
    if tile_overlap < 0:
        raise UsageError(f"--tile-overlap {tile_overlap}: must be >= 0")
    takes_kernel, takes_noise = spec.arch in ("usrnet", "usrnet-tiny"), spec.arch in ("usrnet", "usrnet-tiny", "srmd")
    if kernel is not None and not takes_kernel:
        extra = " (SRMD here is conditioned on the bicubic kernel only)" if spec.arch == "srmd" else ""
        raise UsageError(f"--kernel applies to usrnet models only, not {model}{extra}")
    if noise is not None and not takes_noise:
        raise UsageError(f"--noise applies to usrnet and srmd models only, not {model}")
    kernel_array, kernel_label = None, None
    if takes_kernel:
        if kernel is not None:
            kernel_array, kernel_label = read_kernel(kernel), kernel
        else:
            kernel_array, kernel_label = degradation_kernel(doc, sf)
    if takes_noise:
        if noise is None:
            noise = float((doc["lrp"].get("degradation") or {}).get("noise") or 0.0)
        if spec.arch == "srmd" and not spec.kwargs.get("noise_input", True) and noise > 0:
            raise UsageError(f"{model} is the noise-free SRMD; use srmd-x{sf} for noisy images")
        if not noise >= 0:
            raise UsageError(f"--noise {noise}: must be >= 0 (grey levels)")
    upscaler = build_upscaler(
        spec, sf, weights=weights, device=device, precision=precision, kernel=kernel_array,
        noise=noise or 0.0, tile=tile, overlap=tile_overlap, quiet=quiet,
    )

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
    hash_args = dict(args, tile=tile, tile_overlap=tile_overlap if tile else None)
    root = resolve_out_dir("superres", doc, hash_args, out_dir)
    targets = output_targets(doc, root)
    resuming = claim_out_dir(root, "superres", doc, hash_args)
    frames = {}
    for img in doc["images"]:
        size = (img["width"] * sf, img["height"] * sf)
        xf = resize_xform((img["width"], img["height"]), size)
        frames[img["id"]] = Frame(size, xf, xf)

    todo = [img for img in doc["images"] if not (resuming and finished_png(targets[img["id"]], frames[img["id"]].size))]
    batches = _batches(todo, batch_size, lambda img: upscaler.bytes_per_image(img["width"], img["height"]), budget)
    failures: dict[int, str] = {}

    def load(batch):
        loaded = []
        for img in batch:
            try:
                loaded.append((img, load_rgb(image_path(doc, img), img["id"], (img["width"], img["height"]))))
            except LrpError as e:
                if not keep_going:
                    raise
                failures[img["id"]] = str(e)
        return loaded

    def save(img, arr):
        try:
            save_png(arr, targets[img["id"]])
        except OSError as e:
            failures[img["id"]] = f"image {img['id']} ({targets[img['id']]}): cannot write: {e.strerror or e}"

    with ThreadPoolExecutor(max_workers=max(1, workers or 2)) as writer:
        pending = []
        for loaded in parallel_map(load, batches, workers=workers, desc=f"superres {model}", quiet=quiet):
            if not loaded:
                continue
            try:
                outs = upscaler.upscale([arr for _, arr in loaded])
            except LrpError as e:
                if not keep_going:
                    raise
                for img, _ in loaded:
                    failures[img["id"]] = f"image {img['id']}: {e}"
                continue
            pending += [writer.submit(save, img, out) for (img, _), out in zip(loaded, outs)]
        for fut in pending:
            fut.result()
    if failures and not keep_going:
        raise LrpError(next(iter(failures.values())))

    new_doc = reframed(doc, frames, root)
    add_history(new_doc, "superres", args)
    if not quiet:
        reused = len(doc["images"]) - len(todo)
        print(
            f"lrp superres: {len(doc['images']) - len(failures)} images x{sf} with {model} in {root}"
            + (f" ({reused} reused from an earlier run)" if reused else ""),
            file=sys.stderr,
        )
    if failures:
        raise PartialFailure(list(failures.values()), len(doc["images"]), drop_images(new_doc, set(failures)))
    return new_doc


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
        None, "--kernel", help="usrnet: a 2-D blur kernel file (.npy or text, sums to 1) instead of the one fitted to the document's degradation.",
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

    doc = load_document(input, images=images, allow_sample=True, quiet=quiet)
    write_result(
        "superres",
        output,
        lambda: superres_document(
            doc, model=model, scale=scale, weights=weights, kernel=kernel, noise=noise, device=device,
            precision=precision, batch_size=batch_size, tile=tile, tile_overlap=tile_overlap, out_dir=out_dir,
            workers=workers, quiet=quiet, keep_going=keep_going,
        ),
    )
