"""`lrp degrade`: make low-resolution (or otherwise degraded) copies of a dataset's images.

Per image, in this order: blur (`--kernel`) -> resize (`--scale` or `--to-origin`) -> additive
Gaussian noise (`--noise`) -> round and clip to uint8 -> JPEG round trip (`--jpeg`). The images
are written as lossless PNG; the document moves into the new frames (lrp.geometry) and records
the degradation in `lrp.degradation` and `lrp.history`. No torch: the resize is numpy matrix
products (lrp.resize), run in threads together with decoding and PNG encoding.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from lrp import geometry
from lrp.document import add_history, image_path
from lrp.errors import UsageError
from lrp.failures import ImageFailures
from lrp.images import load_rgb, parallel_map
from lrp.inputs import load_document
from lrp.kernels import parse_blur
from lrp.outputs import (
    Frame, check_image_size, claim_out_dir, drop_images, finish_run, finished_png, output_targets, reframed, resolve_out_dir,
    save_png, write_result,
)
from lrp.options import Images, Input, KeepGoing, OutDir, Output, Quiet, Shard, Workers
from lrp.resize import METHODS, Blur, resample, single_threaded_blas, strided_step, to_uint8
from lrp.shard import apply_shard


# --------------------------------------------------------------------------------------------
# Arguments


def check_arguments(scale: float | None, to_origin: bool, method: str, noise: float, jpeg: int | None) -> None:
    if method not in METHODS:
        raise UsageError(f"--method {method}: expected one of {', '.join(METHODS)}")
    if to_origin and scale is not None:
        raise UsageError("give either --scale or --to-origin, not both")
    if not to_origin and scale is None:
        raise UsageError("give --scale S (e.g. 0.25) or --to-origin")
    if scale is not None and not (scale > 0 and np.isfinite(scale)):
        raise UsageError(f"--scale {scale}: must be a positive number")
    if method == "strided":
        if to_origin:
            raise UsageError("--method strided only decimates; it cannot resize --to-origin")
        try:
            strided_step(scale)
        except ValueError as e:
            raise UsageError(f"--scale {scale:g}: {e}") from None
    if not noise >= 0:
        raise UsageError(f"--noise {noise}: must be >= 0 (grey levels)")
    if jpeg is not None and not 1 <= jpeg <= 100:
        raise UsageError(f"--jpeg {jpeg}: quality must be in 1..100")


# --------------------------------------------------------------------------------------------
# Frames (no pixels)


def plan_frames(doc: dict, *, scale: float | None = None, method: str = "bicubic", to_origin: bool = False) -> dict[int, Frame]:
    """The new frame of every image of `doc`."""
    frames = {}
    for img in doc["images"]:
        w, h = img["width"], img["height"]
        if to_origin:
            origin = img["lrp"]["origin"]
            # The exact inverse of everything so far: sample where the recorded xform says.
            back = geometry.invert(img["lrp"]["xform"])
            frames[img["id"]] = Frame((origin["width"], origin["height"]), back, back)
        elif method == "strided":
            xf = geometry.strided_xform(strided_step(scale))
            size = (geometry.output_size(w, scale), geometry.output_size(h, scale))
            frames[img["id"]] = Frame(size, xf, xf)
        else:
            size = (geometry.output_size(w, scale), geometry.output_size(h, scale))
            frames[img["id"]] = Frame(size, [scale, scale, 0.0, 0.0], geometry.resize_xform((w, h), size))
        check_image_size(frames[img["id"]].size, f"image {img['id']}")
    return frames


def degrade_pixels(
    arr: np.ndarray,
    frame: Frame,
    *,
    method: str = "bicubic",
    blur: Blur | None = None,
    noise: float = 0.0,
    jpeg: int | None = None,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """HxWx3 uint8 -> the degraded uint8 image of `frame.size`."""
    out = resample(arr, frame.size, frame.sample_xform, method, blur)
    if noise > 0:
        rng = rng if rng is not None else np.random.default_rng(0)
        out += rng.standard_normal(out.shape, dtype=np.float32) * np.float32(noise)
    out = to_uint8(out)
    if jpeg is not None:
        out = jpeg_round_trip(out, jpeg)
    return out


def jpeg_round_trip(arr: np.ndarray, quality: int) -> np.ndarray:
    """Encode as JPEG in memory (PIL/libjpeg, 4:2:0 chroma) and decode again."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert("RGB"))


def noise_rng(seed: int, image_id: int) -> np.random.Generator:
    """One stream per (seed, image id): results do not depend on thread order or image order."""
    return np.random.default_rng(np.random.SeedSequence([seed % 2**63, image_id % 2**63]))


def run_label(args: dict) -> str:
    """The key arguments in a run folder's name: `bicubic-x0.25`, `area-to-origin-noise5-jpeg75`."""
    parts = [args["method"], "to-origin" if args["to_origin"] else f"x{args['scale']:g}"]
    if args["kernel"]:
        parts.append("blur")
    if args["noise"]:
        parts.append(f"noise{args['noise']:g}")
    if args["jpeg"] is not None:
        parts.append(f"jpeg{args['jpeg']}")
    return "-".join(parts)


def degrade_document(
    doc: dict,
    *,
    scale: float | None = None,
    to_origin: bool = False,
    method: str = "bicubic",
    kernel: str | None = None,
    noise: float = 0.0,
    jpeg: int | None = None,
    seed: int = 0,
    out_dir: str | Path | None = None,
    workers: int | None = None,
    quiet: bool = False,
    keep_going: bool = False,
) -> dict:
    """Degrade every image of `doc`, write PNGs, return the new document (`doc` is untouched).

    Raises LrpError on the first failing image, or with `keep_going` a PartialFailure after all
    images, carrying the document without the failed ones.
    """
    check_arguments(scale, to_origin, method, noise, jpeg)
    blur, kernel_sha = parse_blur(kernel)
    args = {
        "scale": scale,
        "to_origin": to_origin,
        "method": method,
        "kernel": kernel,
        "noise": noise,
        "jpeg": jpeg,
        "seed": seed,
    }
    hash_args = dict(args, kernel_sha256=kernel_sha)
    frames = plan_frames(doc, scale=scale, method=method, to_origin=to_origin)  # refuses before writing
    root = resolve_out_dir("degrade", doc, hash_args, out_dir, label=run_label(args))
    targets = output_targets(doc, root)
    resuming = claim_out_dir(root, "degrade", doc, hash_args)

    failures = ImageFailures(keep_going)

    def degrade_one(img: dict, target: Path, frame: Frame) -> bool:
        arr = load_rgb(image_path(doc, img), img["id"], (img["width"], img["height"]))
        out = degrade_pixels(arr, frame, method=method, blur=blur, noise=noise, jpeg=jpeg, rng=noise_rng(seed, img["id"]))
        save_png(out, target)
        return True

    def work(img: dict):
        target, frame = targets[img["id"]], frames[img["id"]]
        if resuming and finished_png(target, frame.size):
            return "reused"
        return "written" if failures.guard(img["id"], degrade_one, img, target, frame, writing=target) else "failed"

    with single_threaded_blas():  # one image per thread; BLAS threads on top only contend
        outcomes = list(parallel_map(work, doc["images"], workers=workers, desc="degrade", quiet=quiet))
    if not failures:
        finish_run(root, doc)
    new_doc = reframed(doc, frames, root)
    record = {"method": method, "scale": scale, "kernel": kernel, "noise": noise, "jpeg": jpeg, "seed": seed}
    if to_origin:
        record["to_origin"] = True
    new_doc["lrp"]["degradation"] = record
    add_history(new_doc, "degrade", args)
    if not quiet:
        reused = outcomes.count("reused")
        print(
            f"lrp degrade: {len(outcomes) - len(failures)} images in {root}" + (f" ({reused} reused from an earlier run)" if reused else ""),
            file=sys.stderr,
        )
    if failures:
        failures.finish(doc["images"], drop_images(new_doc, failures.ids))
    return new_doc


# --------------------------------------------------------------------------------------------
# CLI


def command(
    input: Input = None,
    images: Images = None,
    scale: Optional[float] = typer.Option(
        None, "--scale", "-s", help="Resize factor, e.g. 0.25 (output size ceil(size*scale), as MATLAB).", show_default=False
    ),
    to_origin: bool = typer.Option(
        False, "--to-origin", metavar="", help="Resize every image back to its lrp.origin size (exact inverse of earlier resizes)."
    ),
    method: str = typer.Option(
        "bicubic", "--method", "-m", metavar="[bicubic|bilinear|area|nearest|strided]", help="bicubic (MATLAB imresize, antialiased), bilinear, area, nearest, or strided (x[::k])."
    ),
    kernel: Optional[str] = typer.Option(
        None,
        "--kernel",
        help="Blur before resizing: gaussian:SIGMA, or a 2-D kernel file (.npy, text, or MATLAB .mat; FILE.mat:N picks cell N) that sums to 1.",
        show_default=False,
    ),
    noise: float = typer.Option(0.0, "--noise", help="Additive Gaussian noise after resizing, sigma in grey levels (0-255)."),
    jpeg: Optional[int] = typer.Option(None, "--jpeg", help="JPEG quality 1-100 to compress with (files stay PNG).", show_default=False),
    seed: int = typer.Option(0, "--seed", min=0, help="Noise seed; each image draws from (seed, image id)."),
    output: Output = None,
    out_dir: OutDir = None,
    shard: Shard = None,
    workers: Workers = None,
    keep_going: KeepGoing = False,
    quiet: Quiet = False,
):
    """Degrade images: blur, resize, add noise, compress; write PNGs and the reframed document.

    The default resize is MATLAB's antialiased bicubic imresize, the degradation SR models are
    trained against. Ground truth and any detections or poses move into the new frame (boxes,
    areas, polygons, crowd masks, keypoints), and lrp.degradation records what was done.

    Example:

        lrp degrade --scale 0.25 --images coco/val2017 person_keypoints_val2017.json -o lr4.json

        lrp degrade --scale 0.5 --kernel gaussian:1.2 --noise 5 --jpeg 75 < hr.json > lr2.json
    """
    doc = load_document(input, images=images, allow_sample=True, quiet=quiet)
    doc = apply_shard(doc, shard, "degrade")
    write_result(
        "degrade",
        output,
        lambda: degrade_document(
            doc,
            scale=scale,
            to_origin=to_origin,
            method=method,
            kernel=kernel,
            noise=noise,
            jpeg=jpeg,
            seed=seed,
            out_dir=out_dir,
            workers=workers,
            quiet=quiet,
            keep_going=keep_going,
        ),
    )


# `lrp.degrade(...)` calls degrade_document (lrp/__init__.py: the Python API).
from lrp import callable_step  # noqa: E402

callable_step(__name__)
