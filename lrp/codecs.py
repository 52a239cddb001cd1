"""Keypoint codecs: one class per way of reading a pose head's output, as MMPose's `codecs/`.

A codec turns the network output for N crops into keypoints (N, K, 3) = (x, y, score) in the
image, and owns the conventions that go with it: which head output it reads (`reads`), whether
crops and heatmaps are corner-aligned (`udp`: UDP's unbiased transform, no flip shift).

    codec = CODECS["dark"]()
    keypoints = codec.decode(heatmaps, center, scale, input_size)

Heads (what a model outputs, `PoseSpec.head`): "heatmap" (N, K, H, W) at any stride, including
the input resolution of SRPose's SR head; "heatmap+offset" a pair (heatmaps, offsets (N, K, 2,
H, W)); "simcc" a pair (x (N, K, Wx), y (N, K, Hy)) of 1-D classifications; "regression" (N,
K, 3) normalised (y, x, score) of the crop (MoveNet); "posenet" PoseNet's stride-16 heatmaps and
short-range offsets in one tensor. The numerics are in lrp.topdown (the
official HRNet decoding, DARK and UDP after MMPose); this module only binds them to conventions.
"""

from __future__ import annotations

import numpy as np

from lrp.heatmaps import (
    apply_affine,
    argmax_heatmaps,
    blur_kernel_for,
    crop_to_image,
    decode_dark,
    decode_offset,
    decode_standard,
    decode_udp,
    heatmap_to_image,
)


class Codec:
    name = ""
    reads = "heatmap"  # the head output it decodes
    udp = False  # corner-aligned crop and back-mapping (UDP); also: no one-column flip shift
    summary = ""

    def decode(self, output, center, scale, input_size, points64=None) -> np.ndarray:
        """`points64`: the people whose centre and scale are float64 values (lrp.heatmaps.crop_to_image)."""
        raise NotImplementedError

    def argmax(self, output, center, scale, input_size, points64=None) -> np.ndarray | None:
        """(N, K, 3) = the peak cell of each keypoint's map in the image (x, y) and the image
        pixels per cell, before any sub-pixel step (`lrp pose --record-argmax`, CAL Fig. 5);
        None for heads without a map (regression)."""
        return None


def _with_cell(xy: np.ndarray, cell: np.ndarray) -> np.ndarray:
    return np.concatenate([xy, np.broadcast_to(cell[:, None, None], xy.shape[:2] + (1,))], axis=-1)


class HeatmapCodec(Codec):
    """Heatmap coordinates by `_locate`, then the crop's map back to the image (any stride)."""

    def _locate(self, heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def decode(self, output, center, scale, input_size, points64=None) -> np.ndarray:
        heatmaps = np.asarray(output[0] if isinstance(output, tuple) else output, dtype=np.float32)
        coords, scores = self._locate(heatmaps)
        xy = heatmap_to_image(coords, center, scale, (heatmaps.shape[3], heatmaps.shape[2]), udp=self.udp, points64=points64)
        return np.concatenate([xy, scores[..., None]], axis=-1)

    def argmax(self, output, center, scale, input_size, points64=None) -> np.ndarray:
        heatmaps = np.asarray(output[0] if isinstance(output, tuple) else output, dtype=np.float32)
        coords, _ = argmax_heatmaps(heatmaps)
        width = heatmaps.shape[3]
        xy = heatmap_to_image(coords, center, scale, (width, heatmaps.shape[2]), udp=self.udp, points64=points64)
        box_width = np.asarray(scale, dtype=np.float64)[:, 0] * 200.0
        return _with_cell(xy, box_width / ((width - 1) if self.udp else width))


class StandardCodec(HeatmapCodec):
    name = "standard"
    summary = "argmax + a quarter pixel toward the higher neighbour (the official HRNet test)"

    def _locate(self, heatmaps):
        return decode_standard(heatmaps)


class DarkCodec(HeatmapCodec):
    name = "dark"
    summary = "DARK: a Newton step on the log of the blurred heatmap"

    def _locate(self, heatmaps):
        return decode_dark(heatmaps, blur_kernel_for(heatmaps.shape[-1]))


class UDPCodec(HeatmapCodec):
    name = "udp"
    udp = True
    summary = "UDP: corner-aligned crops and maps, DARK-UDP refinement (for UDP-trained weights)"

    def _locate(self, heatmaps):
        return decode_udp(heatmaps, blur_kernel_for(heatmaps.shape[-1]))


class PlainCodec(HeatmapCodec):
    name = "plain"
    summary = "the argmax pixel, no post-processing (SRPose's 'w/o post')"

    def _locate(self, heatmaps):
        return argmax_heatmaps(heatmaps)


class MaxPoolCodec(HeatmapCodec):
    """SRPose's fast decoding: max-pool each map by `kernel` (stride `kernel`), find the best
    patch, then the best pixel inside it. The same peak as the plain argmax, found with far
    fewer comparisons on large (input-resolution) heatmaps; ties between patches may resolve
    to another pixel of equal value. No sub-pixel post-processing, as in SRPose."""

    name = "maxpool"
    summary = "SRPose's max-pool fast argmax (kernel 4), no post-processing"

    def __init__(self, kernel: int = 4):
        self.kernel = kernel

    def _locate(self, heatmaps):
        n, k, h, w = heatmaps.shape
        s = self.kernel
        ph, pw = -(-h // s), -(-w // s)
        padded = heatmaps
        if (ph * s, pw * s) != (h, w):
            padded = np.full((n, k, ph * s, pw * s), -np.inf, dtype=heatmaps.dtype)
            padded[:, :, :h, :w] = heatmaps
        # The pooling as s*s elementwise maxima of strided views (numpy reduces short axes slowly).
        pooled = padded[:, :, ::s, ::s].copy()
        for dy in range(s):
            for dx in range(s):
                np.maximum(pooled, padded[:, :, dy::s, dx::s], out=pooled)
        pooled = pooled.reshape(n, k, -1)
        best_patch = pooled.argmax(axis=2)  # (N, K): the patch holding the peak
        py, px = best_patch // pw, best_patch % pw
        rows = py[..., None] * s + np.arange(s)  # (N, K, s)
        cols = px[..., None] * s + np.arange(s)
        ni, ki = np.meshgrid(np.arange(n), np.arange(k), indexing="ij")
        inside = padded[ni[..., None, None], ki[..., None, None], rows[..., :, None], cols[..., None, :]].reshape(n, k, s * s)
        offset = inside.argmax(axis=2)
        maxvals = np.take_along_axis(inside, offset[..., None], axis=2)[..., 0]
        x = px * s + offset % s
        y = py * s + offset // s
        coords = np.stack([x, y], axis=-1).astype(np.float64) * (maxvals > 0)[..., None]
        return coords, maxvals


class OffsetCodec(HeatmapCodec):
    """Offset heads (CAL, UDP's combined target, PoseNet): argmax plus the offset at the peak."""

    name = "offset"
    reads = "heatmap+offset"
    summary = "argmax + the offset field at the peak (offset heads: CAL, PoseNet)"

    def decode(self, output, center, scale, input_size, points64=None) -> np.ndarray:
        heatmaps, offsets = (np.asarray(v, dtype=np.float32) for v in output)
        coords, scores = decode_offset(heatmaps, offsets)
        xy = heatmap_to_image(coords, center, scale, (heatmaps.shape[3], heatmaps.shape[2]), udp=self.udp, points64=points64)
        return np.concatenate([xy, scores[..., None]], axis=-1)


class PoseNetCodec(Codec):
    """PoseNet's own decode (one tensor (N, 3K, H, W) on a stride-16 grid: K sigmoid heatmaps, K
    dy and K dx short-range offsets in input pixels): heatmap cell (y, x) sits at input pixel
    stride * (y, x), plus the offset at the argmax cell. Inputs are 16 n + 1 pixels, so the
    stride is (input - 1) / (cells - 1). With `offsets=False` (`--decode plain`) the argmax cell
    alone: CAL's offset-vs-heatmap comparison on real weights."""

    name = "offset"
    reads = "posenet"
    summary = "PoseNet: argmax cell x 16 + the short-range offset there"

    def __init__(self, offsets: bool = True):
        self.offsets = offsets

    def decode(self, output, center, scale, input_size, points64=None) -> np.ndarray:
        out = np.asarray(output, dtype=np.float32)
        k, width = out.shape[1] // 3, out.shape[3]
        stride = (input_size[0] - 1) / (width - 1)
        offsets = np.stack([out[:, 2 * k :], out[:, k : 2 * k]], axis=2) / stride  # (dx, dy) in cells
        coords, scores = decode_offset(out[:, :k], offsets if self.offsets else np.zeros_like(offsets))
        xy = apply_affine(coords * stride, crop_to_image(center, scale, input_size, points64=points64))
        return np.concatenate([xy, scores[..., None]], axis=-1)

    def argmax(self, output, center, scale, input_size, points64=None) -> np.ndarray:
        out = np.asarray(output, dtype=np.float32)
        k, width = out.shape[1] // 3, out.shape[3]
        stride = (input_size[0] - 1) / (width - 1)
        coords, _ = argmax_heatmaps(out[:, :k])
        xy = apply_affine(coords * stride, crop_to_image(center, scale, input_size, points64=points64))
        return _with_cell(xy, np.asarray(scale, dtype=np.float64)[:, 0] * 200.0 * stride / input_size[0])


class SimCCCodec(Codec):
    """SimCC (Li et al. 2022; MMPose `SimCCLabel` decode): the argmax bin of each 1-D
    classification divided by the split ratio is the crop coordinate; the score is the smaller
    of the two maxima. Crop to image as MMPose maps input-space keypoints back."""

    name = "simcc"
    reads = "simcc"
    summary = "SimCC: argmax of the x and y classifications / split ratio (SimCC heads)"

    def __init__(self, split_ratio: float = 2.0):
        self.split_ratio = split_ratio

    def decode(self, output, center, scale, input_size, points64=None) -> np.ndarray:
        x, y = (np.asarray(v, dtype=np.float32) for v in output)
        coords = np.stack([x.argmax(axis=2), y.argmax(axis=2)], axis=-1).astype(np.float64) / self.split_ratio
        scores = np.minimum(x.max(axis=2), y.max(axis=2))
        xy = apply_affine(coords, crop_to_image(center, scale, input_size, points64=points64))
        return np.concatenate([xy, scores[..., None]], axis=-1)

    def argmax(self, output, center, scale, input_size, points64=None) -> np.ndarray:
        # SimCC's decode is its argmax: the peak bin, a bin being 1 / split_ratio input pixels.
        xy = self.decode(output, center, scale, input_size, points64)[..., :2]
        return _with_cell(xy, np.asarray(scale, dtype=np.float64)[:, 0] * 200.0 / (input_size[0] * self.split_ratio))


class RegressionCodec(Codec):
    """Regressed keypoints (MoveNet): normalised (y, x) of the crop, continuous coordinates, so
    pixel-index = v * size - 0.5, then the crop's map back to the image."""

    name = "standard"  # what `--decode` calls a regression model's own reading
    reads = "regression"
    summary = "the model's own regressed coordinates"

    def decode(self, output, center, scale, input_size, points64=None) -> np.ndarray:
        out = np.asarray(output)
        w, h = input_size
        crop_xy = np.stack([out[..., 1] * w - 0.5, out[..., 0] * h - 0.5], axis=-1)
        xy = apply_affine(crop_xy, crop_to_image(center, scale, input_size, points64=points64))
        return np.concatenate([xy, out[..., 2:3]], axis=-1)


# `--decode NAME` -> codec class (for heads with heatmaps, offsets or 1-D classifications).
CODECS: dict[str, type[Codec]] = {
    c.name: c for c in (StandardCodec, DarkCodec, UDPCodec, OffsetCodec, PlainCodec, MaxPoolCodec, SimCCCodec)
}


def codec_for(head: str, name: str) -> Codec:
    """The codec object that reads `head` for `--decode name` (regression heads read themselves)."""
    if head == "regression":
        return RegressionCodec()
    if head == "posenet":
        return PoseNetCodec(offsets=name != "plain")
    return CODECS[name]()
