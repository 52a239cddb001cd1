"""`lrp quality`: PSNR and SSIM of an SR stage against its origin images, as BasicSR computes them.

The formulas are BasicSR's `calculate_psnr` / `calculate_ssim` (basicsr/metrics/psnr_ssim.py):
float64 pixels in [0, 255], `crop_border` pixels removed from every edge (BasicSR's tables use
crop_border = scale), PSNR = 10 log10(255^2 / MSE) over all channels, SSIM the mean of the
per-channel SSIM maps of Wang et al. with an 11x11 Gaussian window (sigma 1.5, cv2's
getGaussianKernel normalisation), constants (0.01*255)^2 and (0.03*255)^2, valid region only.
The Y channel is BasicSR's `to_y_channel`: ITU-R BT.601 luma of pixels/255 in float32 (the
MATLAB `rgb2ycbcr` coefficients, offset 16), kept float32 and scaled back by 255, unrounded.

Frames. An SR stage lives in the frame of its input times the SR factor, which is the origin
frame up to the ceil rounding of the earlier downscale (640x425 -> 160x107 -> 640x428). Images
are compared on their common top-left area (the 0..3 extra rows or columns of the SR image are
cut off); a size difference of the SR factor or more is refused: that is not the same frame.

Per size bucket (people grouped by segmentation area in the LR frame, as `lrp bucket` does):
per non-crowd person, PSNR from the MSE over the pixels of their box (rounded outwards, inside
the border crop) and SSIM the mean of the whole image's SSIM map over those pixels, so that the
11x11 windows reach past small boxes; a bucket's figure is the mean over its people. No torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer

from lrp.errors import LrpError, UsageError
from lrp.evaluate import Format, Labels, TableOutput
from lrp.options import Quiet

SSIM_SIZE = 11
SSIM_SIGMA = 1.5
C1 = (0.01 * 255) ** 2
C2 = (0.03 * 255) ** 2
# BT.601 luma of RGB in [0, 1], as MATLAB's rgb2ycbcr and BasicSR's bgr2ycbcr write it.
Y_WEIGHTS = {"r": 65.481, "g": 128.553, "b": 24.966}
CHANNELS = ("rgb", "y")
METRICS = ("psnr", "ssim")


# --------------------------------------------------------------------------------------------
# The formulas


def y_channel(rgb: np.ndarray) -> np.ndarray:
    """HxW float64 luma of an HxWx3 uint8 RGB image, with BasicSR's float32 round trip."""
    x = rgb.astype(np.float32) / np.float32(255.0)
    # BasicSR reads BGR and sums in the order b, g, r (float64 weights promote the product).
    y = np.dot(x[..., ::-1], [Y_WEIGHTS["b"], Y_WEIGHTS["g"], Y_WEIGHTS["r"]]) + 16.0
    y = (y / 255.0).astype(np.float32)
    return (y * np.float32(255.0)).astype(np.float64)


def gaussian_kernel(size: int = SSIM_SIZE, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """cv2.getGaussianKernel(size, sigma): exp(-(i - c)^2 / (2 sigma^2)), normalised to sum 1."""
    i = np.arange(size, dtype=np.float64) - (size - 1) / 2
    k = np.exp(-(i * i) / (2.0 * sigma * sigma))
    return k / k.sum()


def _valid_filter(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Separable valid-mode correlation of a 2-D array with k (x) k (the window is symmetric)."""
    n = len(k)
    rows = sum(k[i] * x[i : x.shape[0] - n + 1 + i] for i in range(n))
    return sum(k[j] * rows[:, j : rows.shape[1] - n + 1 + j] for j in range(n))


def ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """SSIM of two float64 HxW channels at every position where the 11x11 window fits."""
    k = gaussian_kernel()
    mu1, mu2 = _valid_filter(a, k), _valid_filter(b, k)
    mu1_sq, mu2_sq, mu12 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    s1 = _valid_filter(a * a, k) - mu1_sq
    s2 = _valid_filter(b * b, k) - mu2_sq
    s12 = _valid_filter(a * b, k) - mu12
    return ((2 * mu12 + C1) * (2 * s12 + C2)) / ((mu1_sq + mu2_sq + C1) * (s1 + s2 + C2))


def crop(img: np.ndarray, border: int) -> np.ndarray:
    return img[border:-border, border:-border] if border else img


def as_channels(img: np.ndarray, channel: str) -> np.ndarray:
    """HxWxC float64 planes for a metric: the RGB planes, or the Y plane alone."""
    if channel == "y":
        return y_channel(img)[..., None]
    return img.astype(np.float64)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR of two float64 arrays in [0, 255]; inf when they are equal (as BasicSR)."""
    mse = float(np.mean((a - b) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0 * 255.0 / mse)


def psnr_from_mse(mse: float) -> float:
    return math.inf if mse == 0 else 10.0 * math.log10(255.0 * 255.0 / mse)


def calculate_psnr(sr: np.ndarray, ref: np.ndarray, crop_border: int, channel: str = "rgb") -> float:
    """BasicSR's calculate_psnr(img, img2, crop_border, test_y_channel=channel == 'y') on RGB uint8."""
    _same_shape(sr, ref)
    return psnr(as_channels(crop(sr, crop_border), channel), as_channels(crop(ref, crop_border), channel))


def calculate_ssim(sr: np.ndarray, ref: np.ndarray, crop_border: int, channel: str = "rgb") -> float:
    """BasicSR's calculate_ssim: the per-channel SSIM maps' means, averaged over channels."""
    _same_shape(sr, ref)
    a, b = as_channels(crop(sr, crop_border), channel), as_channels(crop(ref, crop_border), channel)
    return float(np.mean([ssim_map(a[..., c], b[..., c]).mean() for c in range(a.shape[2])]))


def _same_shape(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"image shapes differ: {a.shape} and {b.shape}")


# --------------------------------------------------------------------------------------------
# One image: whole-image figures and per-person figures from the same maps


@dataclass
class ImageQuality:
    image_id: int
    size: tuple[int, int]  # (w, h) of the compared common area
    values: dict  # "psnr_rgb", "ssim_rgb", "psnr_y", "ssim_y" -> float
    people: dict = field(default_factory=dict)  # annotation id -> same keys


def common_area(sr: np.ndarray, ref: np.ndarray, tolerance: int, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Both images cut to their common top-left area; refuse differences of `tolerance` or more."""
    (h1, w1), (h2, w2) = sr.shape[:2], ref.shape[:2]
    if abs(w1 - w2) >= tolerance or abs(h1 - h2) >= tolerance:
        raise LrpError(
            f"{where}: the SR image is {w1}x{h1} but its origin is {w2}x{h2}: not the origin frame up to "
            f"rounding (a difference below the SR factor {tolerance}); compare an SR stage of the origin"
        )
    h, w = min(h1, h2), min(w1, w2)
    return sr[:h, :w], ref[:h, :w]


def box_pixels(bbox, xform_size: tuple[int, int], border: int) -> tuple[int, int, int, int] | None:
    """Pixel rows/columns [y0, y1) x [x0, x1) a box covers, rounded outwards, inside the crop."""
    w, h = xform_size
    x, y, bw, bh = bbox
    x0, y0 = max(border, math.floor(x)), max(border, math.floor(y))
    x1, y1 = min(w - border, math.ceil(x + bw)), min(h - border, math.ceil(y + bh))
    if x1 <= x0 or y1 <= y0:
        return None
    return y0, y1, x0, x1


def image_quality(sr: np.ndarray, ref: np.ndarray, crop_border: int, image_id: int, people: dict | None = None) -> ImageQuality:
    """Whole-image PSNR/SSIM (RGB and Y) and, per person box {ann id: bbox}, the box figures."""
    h, w = sr.shape[:2]
    if h - 2 * crop_border < SSIM_SIZE or w - 2 * crop_border < SSIM_SIZE:
        raise LrpError(f"image {image_id}: {w}x{h} is too small for SSIM after a border crop of {crop_border}")
    out = ImageQuality(image_id, (w, h), {})
    boxes = {aid: box_pixels(b, (w, h), crop_border) for aid, b in (people or {}).items()}
    for aid, box in boxes.items():
        if box is not None:
            out.people[aid] = {}
    half = SSIM_SIZE // 2
    for channel in CHANNELS:
        a, b = as_channels(crop(sr, crop_border), channel), as_channels(crop(ref, crop_border), channel)
        sq = ((a - b) ** 2).mean(axis=2)  # per-pixel MSE over channels
        maps = np.stack([ssim_map(a[..., c], b[..., c]) for c in range(a.shape[2])]).mean(axis=0)
        out.values[f"psnr_{channel}"] = psnr_from_mse(float(sq.mean()))
        out.values[f"ssim_{channel}"] = float(maps.mean())
        for aid, box in boxes.items():
            if box is None:
                continue
            y0, y1, x0, x1 = (v - crop_border for v in box)
            out.people[aid][f"psnr_{channel}"] = psnr_from_mse(float(sq[y0:y1, x0:x1].mean()))
            # The SSIM map starts `half` pixels into the cropped image; clip the box to it.
            my0, my1 = max(0, y0 - half), min(maps.shape[0], y1 - half)
            mx0, mx1 = max(0, x0 - half), min(maps.shape[1], x1 - half)
            out.people[aid][f"ssim_{channel}"] = (
                float(maps[my0:my1, mx0:mx1].mean()) if my1 > my0 and mx1 > mx0 else None
            )
    return out


# --------------------------------------------------------------------------------------------
# A document


def sr_factor(doc: dict, name: str) -> int:
    """The factor of the document's last superres step (its history says it)."""
    for step in reversed(doc["lrp"].get("history", [])):
        if step.get("command") == "superres":
            scale = (step.get("args") or {}).get("scale")
            if isinstance(scale, int) and scale >= 1:
                return scale
            raise LrpError(f"{name}: the superres step in lrp.history has no integer 'scale'")
    raise LrpError(f"{name}: no superres step in lrp.history: quality compares an SR stage with its origin images")


def origin_paths(doc: dict, origin_images: Path | None, origin_doc: dict | None, origin_name: str) -> dict[int, Path]:
    """Where each image's origin is: DIR/origin.file_name, or the image of the original document."""
    paths = {}
    if origin_doc is not None:
        from lrp.document import image_path

        by_id = {img["id"]: img for img in origin_doc["images"]}
        for img in doc["images"]:
            o = by_id.get(img["id"])
            if o is None:
                raise LrpError(f"{origin_name}: has no image {img['id']}")
            want = img["lrp"]["origin"]
            if (o["width"], o["height"]) != (want["width"], want["height"]):
                raise LrpError(
                    f"{origin_name}: image {img['id']} is {o['width']}x{o['height']}, its origin is "
                    f"{want['width']}x{want['height']}: not the original document"
                )
            paths[img["id"]] = image_path(origin_doc, o)
        return paths
    root = Path(origin_images).resolve()
    for img in doc["images"]:
        target = (root / img["lrp"]["origin"]["file_name"]).resolve()
        if root not in target.parents:
            raise LrpError(f"image {img['id']}: origin file_name {img['lrp']['origin']['file_name']!r} points outside --origin-images")
        paths[img["id"]] = target
    return paths


@dataclass
class QualityReport:
    name: str
    label: str
    crop_border: int
    factor: int
    images: list[ImageQuality]
    edges: list[float]
    frame: str
    # bucket index -> people (annotation ids) in it
    buckets: list[list[int]]
    skipped_people: int = 0

    def document_values(self) -> dict:
        """Means over images (BasicSR averages per-image figures)."""
        return {f"{m}_{c}": mean_of([i.values[f"{m}_{c}"] for i in self.images]) for m in METRICS for c in CHANNELS}

    def bucket_values(self) -> list[dict]:
        per_person = {aid: v for i in self.images for aid, v in i.people.items()}
        out = []
        for ids in self.buckets:
            rows = [per_person[a] for a in ids if a in per_person]
            values = {k: mean_of([r[k] for r in rows]) for k in (f"{m}_{c}" for m in METRICS for c in CHANNELS)}
            out.append({"people": len(rows), **values})
        return out


def mean_of(values) -> float | None:
    """The mean of the defined values (None when there are none); inf stays inf."""
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def lr_areas(doc: dict, factor: int, frame_doc: dict | None, frame_name: str) -> dict[int, float]:
    """Area per annotation id in the LR frame: the given frame, else the SR frame / factor^2."""
    if frame_doc is not None:
        areas = {a["id"]: a.get("area") for a in frame_doc["annotations"]}
        for a in doc["annotations"]:
            if areas.get(a["id"]) is None:
                raise LrpError(f"{frame_name}: has no area for annotation {a['id']}; it must be the same dataset in the LR frame")
        return areas
    # superres multiplies both axes by exactly the factor, so areas shrink by factor^2.
    return {a["id"]: a["area"] / (factor * factor) for a in doc["annotations"] if "area" in a}


def measure_document(
    doc: dict,
    origins: dict[int, Path],
    *,
    name: str = "document",
    label: str | None = None,
    crop_border: int | None = None,
    edges: list[float] | None = None,
    frame_doc: dict | None = None,
    frame_name: str = "frame",
    workers: int | None = None,
    quiet: bool = True,
) -> QualityReport:
    from lrp import bucket
    from lrp.document import image_path, person_category_id
    from lrp.images import load_rgb, parallel_map
    from lrp.labels import history_label

    factor = sr_factor(doc, name)
    border = factor if crop_border is None else crop_border
    if border < 0:
        raise UsageError(f"--crop-border {border}: must be >= 0")
    cat = person_category_id(doc)
    areas = lr_areas(doc, factor, frame_doc, frame_name)
    if edges is None:
        lr_scale = bucket.paper_scale(frame_doc) if frame_doc is not None else bucket.paper_scale(doc) / factor
        edges = bucket.default_edges(lr_scale)
    people_by_image: dict[int, dict] = {}
    buckets: list[list[int]] = [[] for _ in edges[1:]]
    for a in doc["annotations"]:
        if a.get("category_id") != cat or a.get("iscrowd") or not a.get("bbox"):
            continue
        people_by_image.setdefault(a["image_id"], {})[a["id"]] = a["bbox"]
        area = areas.get(a["id"])
        for i, (lo, hi) in enumerate(zip(edges, edges[1:])):
            if area is not None and lo < area <= hi:
                buckets[i].append(a["id"])
                break

    def one(img):
        where = f"image {img['id']}"
        sr = load_rgb(image_path(doc, img), img["id"], (img["width"], img["height"]))
        origin = img["lrp"]["origin"]
        ref = load_rgb(origins[img["id"]], img["id"], (origin["width"], origin["height"]))
        sr, ref = common_area(sr, ref, max(factor, 1), where)
        return image_quality(sr, ref, border, img["id"], people_by_image.get(img["id"]))

    results = list(parallel_map(one, doc["images"], workers=workers, desc="quality", quiet=quiet))
    measured = {aid for r in results for aid in r.people}
    skipped = sum(1 for ids in people_by_image.values() for aid in ids if aid not in measured)
    return QualityReport(
        name=name,
        label=label or history_label(doc["lrp"].get("history", [])),
        crop_border=border,
        factor=factor,
        images=results,
        edges=list(edges),
        frame=frame_name if frame_doc is not None else "LR frame (SR areas / factor^2)",
        buckets=buckets,
        skipped_people=skipped,
    )


# --------------------------------------------------------------------------------------------
# Output

COLUMNS = [f"{m}_{c}" for c in CHANNELS for m in METRICS]
HEADERS = {"psnr_rgb": "PSNR RGB", "ssim_rgb": "SSIM RGB", "psnr_y": "PSNR Y", "ssim_y": "SSIM Y"}


def _cell(key: str, value):
    if value is None:
        return None
    if math.isinf(value):
        return "inf"
    # PSNR in dB with 2 decimals as SR papers print it; SSIM with 4.
    return f"{value:.2f}" if key.startswith("psnr") else f"{value:.4f}"


def _json_number(value):
    """JSON has no inf: an identical image's PSNR is written as the string "inf"."""
    return "inf" if value is not None and math.isinf(value) else value


def build_tables(reports: list[QualityReport]):
    from lrp.bucket import range_text
    from lrp.tables import Table

    docs = Table("SR image quality against the origin images", ["document", "images", "crop", *[HEADERS[k] for k in COLUMNS]])
    for r in reports:
        v = r.document_values()
        docs.rows.append([r.label, str(len(r.images)), str(r.crop_border), *[_cell(k, v[k]) for k in COLUMNS]])
    tables = [docs]
    for r in reports:
        t = Table(f"{r.label}: person boxes by area in the {r.frame}", ["#", "area", "people", *[HEADERS[k] for k in COLUMNS]], text_columns=2)
        for i, (b, (lo, hi)) in enumerate(zip(r.bucket_values(), zip(r.edges, r.edges[1:]))):
            t.rows.append([str(i + 1), range_text(lo, hi), str(b["people"]), *[_cell(k, b[k]) if b["people"] else "no people" for k in COLUMNS]])
        tables.append(t)
    return tables


def json_data(reports: list[QualityReport]) -> dict:
    return {
        "protocol": {
            "formulas": "BasicSR calculate_psnr / calculate_ssim (float64, 11x11 Gaussian sigma 1.5, valid region)",
            "y_channel": "BT.601 luma (BasicSR to_y_channel)",
            "sizes": "common top-left area of SR and origin image",
            "people": "PSNR over the box's pixels, SSIM the mean of the image's SSIM map over them; bucket = mean over people",
        },
        "documents": [
            {
                "label": r.label,
                "file": r.name,
                "crop_border": r.crop_border,
                "sr_factor": r.factor,
                "frame": r.frame,
                "mean": {k: _json_number(v) for k, v in r.document_values().items()},
                "images": [
                    {"image_id": i.image_id, "size": list(i.size), **{k: _json_number(v) for k, v in i.values.items()}}
                    for i in r.images
                ],
                "buckets": [
                    {"index": n + 1, "area": [lo, hi], **{k: _json_number(v) for k, v in b.items()}}
                    for n, (b, (lo, hi)) in enumerate(zip(r.bucket_values(), zip(r.edges, r.edges[1:])))
                ],
                "people_outside_crop": r.skipped_people,
            }
            for r in reports
        ],
    }


def csv_records(reports: list[QualityReport]) -> tuple[list[str], list[dict]]:
    """One row per (document, scope): scope 'all' is the document mean, 'bucket N' a size group."""
    columns = ["label", "file", "scope", "area_lo", "area_hi", "count", *COLUMNS]
    records = []
    for r in reports:
        records.append({"label": r.label, "file": r.name, "scope": "all", "count": len(r.images),
                        **{k: _json_number(v) for k, v in r.document_values().items()}})
        for n, (b, (lo, hi)) in enumerate(zip(r.bucket_values(), zip(r.edges, r.edges[1:]))):
            records.append({"label": r.label, "file": r.name, "scope": f"bucket {n + 1}", "area_lo": lo, "area_hi": hi,
                            "count": b["people"], **{k: _json_number(b[k]) for k in COLUMNS}})
    return columns, records


# --------------------------------------------------------------------------------------------
# The command


def command(
    documents: Annotated[
        Optional[list[str]],
        typer.Argument(help="SR stage documents; '-' or nothing reads stdin.", show_default=False),
    ] = None,
    origin_images: Annotated[
        Optional[Path],
        typer.Option("--origin-images", help="Folder of the origin images (the images[].lrp.origin.file_name are relative to it).", show_default=False),
    ] = None,
    origin: Annotated[
        Optional[str],
        typer.Option("--origin", help="The original document (same image ids, origin sizes) whose images are the reference.", show_default=False),
    ] = None,
    crop_border: Annotated[
        Optional[int],
        typer.Option("--crop-border", help="Pixels cut from every edge before measuring (default: the SR factor, as BasicSR).", show_default=False),
    ] = None,
    frame: Annotated[
        Optional[str],
        typer.Option("--frame", help="Bucket people by area in this document (the LR stage; default: SR area / factor^2).", show_default=False),
    ] = None,
    edges: Annotated[
        Optional[str], typer.Option("--edges", help="Bucket edges in px^2, e.g. 0,125,250 (default: lrp bucket's 24 groups).", show_default=False)
    ] = None,
    label: Labels = None,
    fmt: Format = "table",
    output: TableOutput = None,
    quiet: Quiet = False,
):
    """PSNR and SSIM (RGB and Y) of SR stages against their origin images, as BasicSR computes them.

    Per document (mean over images) and per size bucket of people (area in the LR frame, as
    `lrp bucket`): per person, PSNR over the pixels of their box and SSIM the mean of the image's
    SSIM map over them. Put it beside `lrp bucket` to see where PSNR and keypoint AP disagree.
    Borders: --crop-border pixels (default the SR factor) cut from every edge. An SR image larger
    than its origin by the ceil rounding of the downscale is compared on the common area.

        lrp quality --origin-images val2017 sr4-bicubic.json sr4-usrnet.json --format markdown
    """
    import sys

    from lrp.bucket import parse_edges
    from lrp.evaluate import document_labels, load_documents
    from lrp.tables import check_format, emit

    check_format(fmt)
    if (origin_images is None) == (origin is None):
        raise UsageError("give the reference images: --origin-images DIR or --origin DOC (one of them)")
    if origin_images is not None and not origin_images.is_dir():
        raise UsageError(f"--origin-images {origin_images}: not a folder")
    bucket_edges = parse_edges(edges) if edges is not None else None
    named = load_documents(documents or None)
    labels = document_labels(named, label)
    origin_doc = load_documents([origin])[0][1] if origin is not None else None
    frame_doc = load_documents([frame])[0][1] if frame is not None else None
    reports = []
    for (name, doc), lbl in zip(named, labels):
        origins = origin_paths(doc, origin_images, origin_doc, origin or "--origin")
        reports.append(
            measure_document(
                doc, origins, name=name, label=lbl, crop_border=crop_border, edges=bucket_edges,
                frame_doc=frame_doc, frame_name=frame or "frame", quiet=quiet,
            )
        )
    if not quiet:
        for r in reports:
            print(
                f"quality: {r.label}: {len(r.images)} images, crop border {r.crop_border}, SR x{r.factor}; "
                f"buckets by area in the {r.frame}" + (f"; {r.skipped_people} people inside the border crop only" if r.skipped_people else ""),
                file=sys.stderr,
            )
    columns, records = csv_records(reports)
    emit(build_tables(reports), fmt, output, csv_columns=columns, records=records, json_data=json_data(reports))
