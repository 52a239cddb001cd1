"""Top-down pose estimation around any heatmap model: boxes to crops, heatmaps to keypoints.

Everything follows the official HRNet test pipeline (leoxiaobin/deep-high-resolution-net.pytorch,
`lib/dataset/coco.py`, `lib/utils/transforms.py`, `lib/core/inference.py`, `lib/nms/nms.py`)
unless a function says otherwise; DARK and UDP follow MMPose.

Coordinates: as in the official code, crops and heatmaps use pixel-index coordinates (pixel i
has its centre at i), which is also how the COCO keypoints come out of the official pipeline.

Crops are cut on the device, all crops of one image in one gather, reproducing
`cv2.warpAffine(img, M, size, flags=INTER_LINEAR)` (BORDER_CONSTANT 0) on uint8 images bit for
bit, as the official inference calls it. Two OpenCV generations compute it differently, so the
semantics are a choice (`WARPS`, `lrp pose --warp`):

- "opencv4": the fixed-point warp of OpenCV 3.4 and 4.x (what the official HRNet results were
  made with): source coordinates rounded to 1/32 pixel (INTER_BITS = 5), 15-bit integer weights.
- "opencv5": the float warp of OpenCV 5.x: a float32 source map (the column term by FMA),
  float32 bilinear blending with FMA and round half to even. On real COCO crops 8-24% of the
  values differ from "opencv4", by up to 5 grey levels.

`resolve_warp("auto")` picks the generation of the `cv2` that is installed (5.x when none is).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from lrp.keypoints import COCO_17, flip_index

# Torch-free numerics (crop maps, heatmap decoders) live in lrp.heatmaps, which lrp.codecs reads too;
# re-exported here, where the pipeline uses them.
from lrp.heatmaps import (  # noqa: F401
    DECODERS,
    PIXEL_STD,
    crop_to_image,
    invert_affine,
    apply_affine,
    argmax_heatmaps,
    decode_standard,
    gaussian_blur,
    decode_dark,
    decode_udp,
    decode_offset,
    blur_kernel_for,
    decode,
    heatmap_to_image,
)

PADDING = 1.25
# Heads whose networks take raw 0..255 crops (their graphs normalise inside) and run without
# the flip test by default: MoveNet's regression, PoseNet's stride-16 heatmaps + offsets.
RAW_INPUT_HEADS = ("regression", "posenet")
# COCO-17's; a model of another keypoint set gets its own (lrp.keypoints) through TopDown / oks_nms.
FLIP_INDEX = flip_index(COCO_17)
OKS_SIGMAS = np.array(COCO_17.sigmas)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# --------------------------------------------------------------------------------------------
# Boxes


def clean_gt_box(bbox, width: int, height: int, area: float) -> list[float] | None:
    """The official GT-box cleaning (`_load_coco_keypoint_annotation_kernal`): clip to the image
    with inclusive pixel ends; None for a box that is empty after clipping or has no area."""
    x, y, w, h = bbox
    x1, y1 = max(0.0, x), max(0.0, y)
    x2 = min(width - 1.0, x1 + max(0.0, w - 1.0))
    y2 = min(height - 1.0, y1 + max(0.0, h - 1.0))
    if area > 0 and x2 >= x1 and y2 >= y1:
        return [x1, y1, x2 - x1, y2 - y1]
    return None


def box_to_center_scale(boxes, aspect_ratio: float, padding: float = PADDING) -> tuple[np.ndarray, np.ndarray]:
    """`_xywh2cs`: centre of each [x, y, w, h] box, and its size grown to `aspect_ratio` (w/h of
    the model input) in units of 200 px, times `padding`."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    x, y, w, h = boxes.T
    center = np.stack([x + w * 0.5, y + h * 0.5], axis=1)
    w, h = w.copy(), h.copy()
    wider = w > aspect_ratio * h
    taller = w < aspect_ratio * h
    h[wider] = w[wider] / aspect_ratio
    w[taller] = h[taller] * aspect_ratio
    # The official arrays are float32 and the padding is applied in float32: round the same way.
    f32 = np.float32
    scale = (np.stack([w, h], axis=1) / PIXEL_STD).astype(f32) * f32(padding)
    return center.astype(f32).astype(np.float64), scale.astype(np.float64)


# --------------------------------------------------------------------------------------------
# Crops


WARPS = ("opencv4", "opencv5")
# OpenCV 5 maps and blends a row in SIMD blocks of 2 x (float32 lanes) columns and the last
# columns that do not fill a block in scalar code, whose map rounds differently. 16 is the block
# of the AVX2 kernels that the x86-64 wheels dispatch to (checked against 5.0.0 in the tests).
OPENCV5_BLOCK = 16


def installed_opencv_major() -> int | None:
    """The major version of the `cv2` that is installed, None when there is none."""
    try:
        import cv2
    except ImportError:  # not installed, or a broken install the official code could not use either
        return None
    return int(str(cv2.__version__).split(".")[0])


def resolve_warp(choice: str) -> str:
    """`auto` -> the warp of the installed OpenCV ("opencv4" for 3.x/4.x, else "opencv5")."""
    if choice in WARPS:
        return choice
    if choice != "auto":
        raise ValueError(f"unknown warp {choice!r}; expected auto or one of {', '.join(WARPS)}")
    major = installed_opencv_major()
    return "opencv4" if major is not None and major < 5 else "opencv5"


def warp_crops(image: torch.Tensor, crop_to_img: np.ndarray, size: tuple[int, int], warp: str = "opencv4") -> torch.Tensor:
    """Cut N crops of `size` = (w, h) from one image (H, W, 3) uint8 tensor on any device.

    Returns (N, 3, h, w) float32 holding integer grey levels 0..255, exactly what
    `cv2.warpAffine(img, forward, size, flags=INTER_LINEAR)` of OpenCV generation `warp` gives
    (black outside the image); `crop_to_img` is the inverse of `forward`, as OpenCV samples.
    """
    w, h = size
    if len(crop_to_img) == 0:
        return torch.zeros((0, 3, h, w), dtype=torch.float32, device=image.device)
    if warp == "opencv4":
        return _warp_fixed(image, crop_to_img, size)
    if warp == "opencv5":
        return _warp_float(image, crop_to_img, size)
    raise ValueError(f"unknown warp {warp!r}; expected one of {', '.join(WARPS)}")


def _bilinear_taps(image: torch.Tensor, x0: torch.Tensor, y0: torch.Tensor):
    """The four neighbours (p00, p01, p10, p11) of each (x0, y0), (N, h, w, 3) int64, 0 outside."""
    height, width = image.shape[:2]
    flat = image.reshape(-1, 3).to(torch.int64)
    taps = []
    for dy in (0, 1):
        for dx in (0, 1):
            xi, yi = x0 + dx, y0 + dy
            inside = (xi >= 0) & (xi < width) & (yi >= 0) & (yi < height)
            index = (yi.clamp(0, height - 1) * width + xi.clamp(0, width - 1)).reshape(-1)
            taps.append(flat[index].reshape(*x0.shape, 3) * inside[..., None])
    return taps


def _warp_fixed(image: torch.Tensor, crop_to_img: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """OpenCV 3.4/4.x: source coordinates in 1/32 pixels, 15-bit integer blending weights."""
    device = image.device
    w, h = size
    m = torch.as_tensor(crop_to_img, dtype=torch.float64, device=device)
    # OpenCV: X = (round((M01*y + M02)*1024) + 16 + round(M00*x*1024)) >> 5, in 1/32 pixels.
    xs = torch.arange(w, dtype=torch.float64, device=device)
    ys = torch.arange(h, dtype=torch.float64, device=device)

    def fixed(a, b, c):  # (N, h, w) source coordinate in 1/32 pixels
        row = torch.round((a[:, None] * ys[None, :] + c[:, None]) * 1024).to(torch.int64) + 16
        col = torch.round(b[:, None] * xs[None, :] * 1024).to(torch.int64)
        return torch.div(row[:, :, None] + col[:, None, :], 32, rounding_mode="floor")

    sx = fixed(m[:, 0, 1], m[:, 0, 0], m[:, 0, 2])
    sy = fixed(m[:, 1, 1], m[:, 1, 0], m[:, 1, 2])
    x0, fx = torch.div(sx, 32, rounding_mode="floor"), sx % 32
    y0, fy = torch.div(sy, 32, rounding_mode="floor"), sy % 32
    p00, p01, p10, p11 = _bilinear_taps(image, x0, y0)
    total = torch.full(p00.shape, 1 << 14, dtype=torch.int64, device=device)  # rounding bias
    for p, wy, wx in ((p00, 32 - fy, 32 - fx), (p01, 32 - fy, fx), (p10, fy, 32 - fx), (p11, fy, fx)):
        total += p * (wx * wy * 32)[..., None]  # (1/32 * 1/32) * 2^15 = 32 per unit
    crops = torch.div(total, 1 << 15, rounding_mode="floor")
    return crops.permute(0, 3, 1, 2).to(torch.float32)


def fma32(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """float32 fused multiply-add a*b + c, rounded once, on any device (torch has no fma).

    The product of two float32 is exact in float64; the sum is rounded to float64 "to odd"
    (TwoSum gives its error; an inexact even result steps one ulp toward the exact value), after
    which rounding to float32 is the correctly rounded fma (53 >= 24 + 2 bits).
    """
    p = a.double() * b.double()
    c = c.double()
    s = p + c
    bb = s - p
    err = (p - (s - bb)) + (c - bb)
    even = (s.view(torch.int64) & 1) == 0
    toward = torch.where(err > 0, torch.full_like(s, math.inf), torch.full_like(s, -math.inf))
    s = torch.where((err != 0) & even, torch.nextafter(s, toward), s)
    return s.float()


def _warp_float(image: torch.Tensor, crop_to_img: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """OpenCV 5.x `warpAffineLinearInvoker_8UC3`: float32 map and blending, round half to even.

    Map, in float32 with M = float32(crop_to_img): each row's term t = y*M01 + M02 (two
    roundings), then X = fma(M00, x, t) in the SIMD blocks and X = fma(x, M00, y*M01) + M02 in
    the scalar columns after the last full block; Y alike. Blend: a = X - floor(X),
    v0 = fma(a, p01 - p00, p00), v1 = fma(a, p11 - p10, p10), v = fma(b, v1 - v0, v0).
    """
    device = image.device
    w, h = size
    n = len(crop_to_img)
    m = torch.as_tensor(np.asarray(crop_to_img, dtype=np.float32), device=device)
    xs = torch.arange(w, dtype=torch.float32, device=device).view(1, 1, w).expand(n, h, w)
    ys = torch.arange(h, dtype=torch.float32, device=device).view(1, h, 1).expand(n, h, w)
    scalar = xs >= (w // OPENCV5_BLOCK) * OPENCV5_BLOCK

    def coordinate(row):  # row 0: X from M00 M01 M02; row 1: Y from M10 M11 M12
        a, b, c = (m[:, row, i].view(n, 1, 1).expand(n, h, w) for i in range(3))
        rowterm = ys * b
        block = fma32(a, xs, rowterm + c)
        tail = fma32(xs, a, rowterm) + c
        return torch.where(scalar, tail, block)

    sx, sy = coordinate(0), coordinate(1)
    x0, y0 = torch.floor(sx), torch.floor(sy)
    ax, ay = (sx - x0)[..., None], (sy - y0)[..., None]  # exact in float32
    p00, p01, p10, p11 = (p.to(torch.float32) for p in _bilinear_taps(image, x0.to(torch.int64), y0.to(torch.int64)))
    v0 = fma32(ax, p01 - p00, p00)
    v1 = fma32(ax, p11 - p10, p10)
    v = fma32(ay, v1 - v0, v0)
    return torch.round(v).clamp(0, 255).permute(0, 3, 1, 2).contiguous()


def normalize_imagenet(crops: torch.Tensor) -> torch.Tensor:
    """`ToTensor()` then `Normalize(ImageNet mean, std)` on grey levels 0..255 (RGB); a window of
    frames stacked on channels (N, 3T, h, w) is normalised one RGB group at a time."""
    groups = crops.shape[1] // 3
    mean = torch.tensor(IMAGENET_MEAN, device=crops.device).repeat(groups).view(1, 3 * groups, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=crops.device).repeat(groups).view(1, 3 * groups, 1, 1)
    return (crops / 255.0 - mean) / std


# --------------------------------------------------------------------------------------------
# Flip test


def flip_back(heatmaps: torch.Tensor, flip_index=FLIP_INDEX) -> torch.Tensor:
    """Heatmaps of a mirrored crop back to the crop: mirror, then swap left and right joints."""
    return heatmaps.flip(-1)[:, flip_index]


def flip_average(heatmaps: torch.Tensor, flipped: torch.Tensor, shift: bool = True, flip_index=FLIP_INDEX) -> torch.Tensor:
    """The official flip test: flip back, shift one column right (column 0 keeps its own value,
    as `out[..., 1:] = out[..., :-1]` does), average. UDP models skip the shift."""
    back = flip_back(flipped, flip_index)
    if shift:
        back = torch.cat([back[..., :1], back[..., :-1]], dim=-1)
    return (heatmaps + back) * 0.5


# --------------------------------------------------------------------------------------------
# Rescoring and OKS-NMS (the official COCO evaluation, `coco.py evaluate` and `nms.py`)


def rescore(box_scores: np.ndarray, keypoint_scores: np.ndarray, in_vis_thre: float = 0.2) -> np.ndarray:
    """Instance score = box score x mean of the joint scores above `in_vis_thre` (x 0 if none)."""
    above = keypoint_scores > in_vis_thre
    count = above.sum(axis=1)
    total = np.where(above, keypoint_scores, 0.0).sum(axis=1)
    mean = np.where(count > 0, total / np.maximum(count, 1), 0.0)
    return mean * np.asarray(box_scores, dtype=np.float64)


def oks_iou(g: np.ndarray, d: np.ndarray, area_g: float, area_d: np.ndarray, sigmas=OKS_SIGMAS) -> np.ndarray:
    """OKS of keypoints g (K, 3) against each of d (M, K, 3), over all joints (`nms.oks_iou`)."""
    variances = (sigmas * 2) ** 2
    dx = d[:, :, 0] - g[None, :, 0]
    dy = d[:, :, 1] - g[None, :, 1]
    e = (dx**2 + dy**2) / variances / ((area_g + area_d[:, None]) / 2 + np.spacing(1)) / 2
    return np.exp(-e).mean(axis=1)


def oks_nms(keypoints: np.ndarray, scores: np.ndarray, areas: np.ndarray, threshold: float = 0.9, sigmas=OKS_SIGMAS) -> list[int]:
    """Greedy OKS-NMS (`nms.oks_nms`): keep the best, drop those with OKS > threshold to it."""
    order = np.argsort(scores)[::-1]  # as the official code (ties in its order)
    keep: list[int] = []
    while order.size > 0:
        i = int(order[0])
        keep.append(i)
        ovr = oks_iou(keypoints[i], keypoints[order[1:]], areas[i], areas[order[1:]], sigmas)
        order = order[1:][ovr <= threshold]
    return keep


def pose_area(scale: np.ndarray) -> np.ndarray:
    """The area the official NMS uses: the padded box, `prod(scale * 200)`."""
    return np.prod(np.asarray(scale, dtype=np.float64).reshape(-1, 2) * PIXEL_STD, axis=1)


def heatmap_size_of(input_size: tuple[int, int], stride: int = 4) -> tuple[int, int]:
    w, h = input_size
    return (math.ceil(w / stride), math.ceil(h / stride))


# --------------------------------------------------------------------------------------------
# Running a model on the people of one image


class TopDown:
    """Crops -> model -> keypoints in the image, for one model and one set of options.

    `kind` is the model's head (`lrp.codecs`): "heatmap", "heatmap+offset" and "simcc" models
    map ImageNet-normalised crops to their outputs (HRNet and its heads); "regression" maps raw
    0..255 crops to (N, K, 3) normalised (y, x, score) (MoveNet); "posenet" maps raw 0..255 crops
    to (N, 3K, H, W) heatmaps and offsets (PoseNet; no flip test). `decoder` names the codec
    (`lrp.codecs.CODECS`) that reads the output and owns its crop conventions (UDP).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        input_size: tuple[int, int],
        *,
        kind: str = "heatmap",
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        flip: bool = True,
        decoder: str = "standard",
        batch_size: int = 32,
        padding: float = PADDING,
        warp: str = "opencv4",
        crop_sr=None,
        flip_index=FLIP_INDEX,
    ):
        """`crop_sr`: (upscale, crop size, scale) to cut each person at the low `crop size`
        (w, h) and super-resolve it `scale` times to the input size with `upscale` (a list of
        HxWx3 uint8 arrays -> their SR arrays, lrp.superres.Upscaler.upscale). `flip_index`:
        the model's keypoint set's (lrp.keypoints.flip_index), joint i <-> its mirror twin."""
        from lrp.codecs import CODECS, codec_for

        if decoder not in CODECS:
            raise ValueError(f"unknown decoder {decoder!r}")
        if kind == "offset" and (decoder != "offset" or flip):
            raise ValueError("an offset-head model decodes with 'offset' and no flip test")
        if kind == "posenet" and (decoder not in ("offset", "plain") or flip):
            raise ValueError("PoseNet's head decodes with 'offset' or 'plain' and no flip test (its offsets are not mirrored)")
        self.model = model.eval()
        self.input_size = tuple(int(v) for v in input_size)
        self.kind = kind
        self.device = torch.device(device)
        self.dtype = dtype
        self.flip = flip
        self.decoder = decoder
        self.codec = codec_for(kind, decoder)
        self.udp = self.codec.udp
        self.batch_size = batch_size
        self.padding = padding
        self.warp = resolve_warp(warp)
        self.aspect_ratio = self.input_size[0] / self.input_size[1]
        self.crop_sr = crop_sr
        self.record_argmax = False  # lrp pose --record-argmax: predict() adds the peak cells
        self.flip_index = list(flip_index)
        if crop_sr is not None and self.udp:
            raise ValueError("crop-level SR maps crops centre-aligned; UDP's corner-aligned maps do not compose with it")

    def centers_scales(self, boxes) -> tuple[np.ndarray, np.ndarray]:
        return box_to_center_scale(boxes, self.aspect_ratio, self.padding)

    def crops(self, image: torch.Tensor, center: np.ndarray, scale: np.ndarray, points64=None) -> torch.Tensor:
        """(N, 3, h, w) crops of grey levels for the people (center, scale) of one image.

        A window of frames stacked on channels (H, W, 3T, lrp.frames.StackedFrames) gives the
        SAME crop of every frame, stacked the same way (N, 3T, h, w): a temporal model sees the
        box's region through time, the person moving inside it (PoseWarper, DCPose).
        `points64` marks the people whose centre and scale are float64 values (an official
        crop, `lrp_crop`; lrp.heatmaps.crop_to_image); predict() takes the same marks."""
        if image.shape[-1] > 3:
            return torch.cat([self.crops(image[..., c : c + 3], center, scale, points64) for c in range(0, image.shape[-1], 3)], dim=1)
        if self.crop_sr is not None:
            return self._sr_crops(image, center, scale, points64)
        return self._cut(image, center, scale, self.input_size, points64)

    def _cut(self, image, center, scale, size, points64=None) -> torch.Tensor:
        m = crop_to_image(center, scale, size, udp=self.udp, inverse_of_forward=True, warp=self.warp, points64=points64)
        # In chunks: the integer warp holds a few int64 copies of the crops at once.
        chunks = [warp_crops(image, m[i : i + 64], size, self.warp) for i in range(0, len(m), 64)]
        return torch.cat(chunks) if chunks else warp_crops(image, m, size, self.warp)

    def _sr_crops(self, image, center, scale, points64=None) -> torch.Tensor:
        """The same box cut at the low crop size, then super-resolved to the input size."""
        upscale, size, _ = self.crop_sr
        w, h = self.input_size
        low = self._cut(image, center, scale, size, points64)
        if len(low) == 0:
            return torch.zeros((0, 3, h, w), dtype=torch.float32, device=self.device)
        arrays = list(low.permute(0, 2, 3, 1).to(torch.uint8).cpu().numpy())
        high = np.stack(upscale(arrays))
        if high.shape[1:3] != (h, w):
            raise ValueError(f"the SR model gave {high.shape[2]}x{high.shape[1]} crops, not {w}x{h}")
        return torch.from_numpy(high).permute(0, 3, 1, 2).to(device=self.device, dtype=torch.float32)

    def sr_shift(self, center: np.ndarray, scale: np.ndarray, points64=None) -> np.ndarray:
        """(N, 2) to add to keypoints decoded as if the SR crop were cut at the input size.

        SR crop pixel i is low crop pixel (i + 0.5)/s - 0.5 (SR grids are centre-aligned); the
        low crop's map is the input-size map's similarity times s, so the two maps into the
        image differ by a constant: low((0.5/s - 0.5, ...)) - high(0)."""
        _, size, s = self.crop_sr
        high = crop_to_image(center, scale, self.input_size, points64=points64)
        low = crop_to_image(center, scale, size, points64=points64)
        origin = np.full((len(center), 1, 2), 0.5 / s - 0.5)
        return apply_affine(origin, low)[:, 0] - high[:, :, 2]

    @torch.inference_mode()
    def _forward(self, batch: torch.Tensor):
        if self.kind not in RAW_INPUT_HEADS:
            batch = normalize_imagenet(batch)
        out = self.model(batch.to(self.dtype))
        return tuple(o.float() for o in out) if isinstance(out, (tuple, list)) else out.float()

    def predict(self, crops: torch.Tensor, center: np.ndarray, scale: np.ndarray, points64=None) -> np.ndarray:
        """Keypoints (N, K, 3) = (x, y, score) in the image for crops cut by `crops()`."""
        outputs = []
        for start in range(0, len(crops), self.batch_size):
            batch = crops[start : start + self.batch_size]
            if self.flip:
                both = self._forward(torch.cat([batch, batch.flip(-1)]))
                n = len(batch)
                if isinstance(both, tuple):
                    outputs.append(self._merge_flip(tuple(b[:n] for b in both), tuple(b[n:] for b in both)))
                else:
                    outputs.append(self._merge_flip(both[:n], both[n:]))
            else:
                outputs.append(self._forward(batch))
        if not outputs:
            return np.zeros((0, len(self.flip_index), 6 if self.record_argmax else 3))
        if isinstance(outputs[0], tuple):
            out = tuple(torch.cat(part).cpu().numpy() for part in zip(*outputs))
        else:
            out = torch.cat(outputs).cpu().numpy()
        keypoints = self.codec.decode(out, center, scale, self.input_size, points64)
        if self.record_argmax:  # three more columns: the peak cell (x, y) and the cell's size
            keypoints = np.concatenate([keypoints, self.codec.argmax(out, center, scale, self.input_size, points64)], axis=-1)
        if self.crop_sr is not None:
            shift = self.sr_shift(center, scale, points64)[:, None, :]
            keypoints[..., :2] += shift
            if self.record_argmax:
                keypoints[..., 3:5] += shift
        return keypoints

    def _merge_flip(self, plain, mirrored):
        if self.kind == "heatmap":
            return flip_average(plain, mirrored, shift=not self.udp, flip_index=self.flip_index)
        if self.kind == "simcc":  # MMPose `flip_vectors`: swap the joints, mirror x; no shift
            x, y = plain
            fx, fy = mirrored
            return (x + fx[:, self.flip_index].flip(-1)) * 0.5, (y + fy[:, self.flip_index]) * 0.5
        if self.kind == "heatmap+offset":
            # Offsets index the same pixels as their heatmap, so neither gets the one-column shift;
            # mirrored x offsets change sign.
            (h, o), (fh, fo) = plain, mirrored
            back = fo.flip(-1)[:, self.flip_index].clone()
            back[:, :, 0] = -back[:, :, 0]
            return flip_average(h, fh, shift=False, flip_index=self.flip_index), (o + back) * 0.5
        # Regression output (y, x, score) normalised: mirror x, swap left and right.
        back = mirrored[:, self.flip_index].clone()
        back[..., 1] = 1.0 - back[..., 1]
        return (plain + back) * 0.5
