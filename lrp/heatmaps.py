"""Torch-free numerics of top-down pose estimation: the affine maps between crops and images,
and the heatmap decoders (the official HRNet test, DARK and UDP after MMPose).

lrp.topdown (the pipeline) and lrp.codecs (the decoders as objects) both use them; keeping them
here means neither imports the other in a circle. Coordinates: pixel-index (pixel i has its
centre at i), as the official code uses for crops and heatmaps.
"""

from __future__ import annotations

import numpy as np

PIXEL_STD = 200.0  # the official code expresses box sizes in units of 200 pixels
DECODERS = ("standard", "dark", "udp", "offset")


# --------------------------------------------------------------------------------------------
# Crop <-> image maps


def crop_to_image(
    center, scale, size, udp: bool = False, inverse_of_forward: bool = False, warp: str = "opencv4", points64=None
) -> np.ndarray:
    """(N, 2, 3) affine maps from crop pixels (of a crop or heatmap `size` = (w, h)) to image pixels.

    Standard: `get_affine_transform(center, scale, 0, size, inv=1)`, a similarity mapping the
    crop width onto the box width `scale[0]*200` and the centres onto each other. We rebuild it
    as the official code does, from three float32 point pairs solved in float64, because OpenCV
    rounds source coordinates to 1/32 pixel and a last-bit difference can flip that rounding.
    UDP (MMPose `get_warp_matrix`): per-axis factors `(scale*200)/(size-1)`, corners aligned.
    `warp` "opencv5" solves the points as OpenCV 5's `getAffineTransform` does, to the last bit
    (its float32 map turns a last-bit difference of the matrix into a grey level here and there).

    The official arithmetic before the points are stored as float32 follows the dtype of its
    centre and scale: float32 for COCO (`_xywh2cs`), float64 for MPII (`_get_db`'s np.float).
    `points64` (N booleans, or None for none) marks the people whose centre and scale are float64
    values (an annotation's `lrp_crop`): their second point is `centre - scale*200/2` in float64,
    rounded to float32 once, instead of being computed from the float32-rounded values.
    """
    w, h = size
    if udp:
        center = np.asarray(center, dtype=np.float64).reshape(-1, 2)
        box = np.asarray(scale, dtype=np.float64).reshape(-1, 2) * PIXEL_STD
        m = np.zeros((len(center), 2, 3))
        m[:, 0, 0], m[:, 1, 1] = box[:, 0] / (w - 1.0), box[:, 1] / (h - 1.0)
        m[:, :, 2] = center - 0.5 * box
        return m
    f32 = np.float32
    center_given = center
    center = np.asarray(center, dtype=f32).reshape(-1, 2)
    src_w = np.asarray(scale, dtype=f32).reshape(-1, 2)[:, 0] * f32(PIXEL_STD)
    n = len(center)

    def three_points(first, half, second=None):  # first point, one `half` above it, one turned 90 degrees
        if second is None:
            second = first - np.stack([np.zeros(n, f32), half], axis=1)
        direct = first - second
        third = second + np.stack([-direct[:, 1], direct[:, 0]], axis=1)
        return np.stack([first, second, third], axis=1).astype(np.float64)

    second = None
    if points64 is not None and np.any(points64):
        wide = np.asarray(points64, dtype=bool).reshape(-1, 1)
        c64 = np.asarray(center_given, dtype=np.float64).reshape(-1, 2)
        half64 = np.asarray(scale, dtype=np.float64).reshape(-1, 2)[:, 0] * PIXEL_STD * 0.5
        above = (c64 - np.stack([np.zeros(n), half64], axis=1)).astype(f32)
        second = np.where(wide, above, center - np.stack([np.zeros(n, f32), src_w * f32(0.5)], axis=1))
    solve = _solve_affine_opencv5 if warp == "opencv5" else _solve_affine
    src = three_points(center, src_w * f32(0.5), second)
    dst = three_points(np.tile(np.array([w * 0.5, h * 0.5], f32), (n, 1)), np.full(n, w * 0.5, f32))
    if inverse_of_forward:
        # What warpAffine samples with: the forward map, inverted as `invertAffineTransform` does.
        return invert_affine(solve(src, dst))
    return solve(dst, src)


def _solve_affine(frm: np.ndarray, to: np.ndarray) -> np.ndarray:
    """`cv2.getAffineTransform` for N triples of points: solve [x y 1] @ M.T = x'."""
    a = np.concatenate([frm, np.ones(frm.shape[:2] + (1,))], axis=2)
    return np.linalg.solve(a, to).transpose(0, 2, 1)


def _solve_affine_opencv5(frm: np.ndarray, to: np.ndarray) -> np.ndarray:
    """OpenCV 5's `getAffineTransform` operation for operation, for N triples of points: the
    interleaved 6x6 system [x y 1 0 0 0; 0 0 0 x y 1] m = x', Gaussian elimination with partial
    pivoting (first largest pivot), multipliers times -1/pivot, back substitution by division
    (`hal::LU64f`; no FMA: the core module is built for the baseline SSE3)."""
    n = len(frm)
    a = np.zeros((n, 6, 6))
    b = np.zeros((n, 6))
    a[:, 0::2, 0:2], a[:, 0::2, 2] = frm, 1.0
    a[:, 1::2, 3:5], a[:, 1::2, 5] = frm, 1.0
    b[:, 0::2], b[:, 1::2] = to[..., 0], to[..., 1]
    rows = np.arange(n)
    for i in range(6):
        k = i + np.argmax(np.abs(a[:, i:, i]), axis=1)
        a[rows, i], a[rows, k] = a[rows, k].copy(), a[rows, i].copy()
        b[rows, i], b[rows, k] = b[rows, k].copy(), b[rows, i].copy()
        d = -1.0 / a[:, i, i]
        for j in range(i + 1, 6):
            alpha = a[:, j, i] * d
            a[:, j, i + 1 :] += alpha[:, None] * a[:, i, i + 1 :]
            b[:, j] += alpha * b[:, i]
    for i in range(5, -1, -1):
        s = b[:, i].copy()
        for k in range(i + 1, 6):
            s = s - a[:, i, k] * b[:, k]
        b[:, i] = s / a[:, i, i]
    return b.reshape(n, 2, 3)


def invert_affine(m: np.ndarray) -> np.ndarray:
    """`cv2.invertAffineTransform`, term by term, for (N, 2, 3) maps."""
    det = m[:, 0, 0] * m[:, 1, 1] - m[:, 0, 1] * m[:, 1, 0]
    d = np.where(det != 0, 1.0 / np.where(det != 0, det, 1.0), 0.0)
    out = np.empty_like(m)
    out[:, 0, 0], out[:, 1, 1] = m[:, 1, 1] * d, m[:, 0, 0] * d
    out[:, 0, 1], out[:, 1, 0] = -m[:, 0, 1] * d, -m[:, 1, 0] * d
    out[:, 0, 2] = -out[:, 0, 0] * m[:, 0, 2] - out[:, 0, 1] * m[:, 1, 2]
    out[:, 1, 2] = -out[:, 1, 0] * m[:, 0, 2] - out[:, 1, 1] * m[:, 1, 2]
    return out


def apply_affine(points: np.ndarray, m: np.ndarray) -> np.ndarray:
    """points (N, K, 2) through per-instance maps m (N, 2, 3)."""
    return np.einsum("nij,nkj->nki", m[:, :, :2], points) + m[:, None, :, 2]


# --------------------------------------------------------------------------------------------
# Decoding: heatmaps (N, K, H, W) float numpy -> heatmap coordinates (N, K, 2) and scores


def argmax_heatmaps(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`get_max_preds`: the peak of each heatmap, (0, 0) where the peak is not positive."""
    n, k, _, w = heatmaps.shape
    flat = heatmaps.reshape(n, k, -1)
    idx = np.argmax(flat, axis=2)
    maxvals = np.take_along_axis(flat, idx[..., None], axis=2)[..., 0]
    coords = np.stack([idx % w, idx // w], axis=-1).astype(np.float64)
    coords *= (maxvals > 0)[..., None]
    return coords, maxvals


def decode_standard(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Argmax, then a quarter pixel toward the higher neighbour (`get_final_preds`, POST_PROCESS)."""
    coords, maxvals = argmax_heatmaps(heatmaps)
    n, k, h, w = heatmaps.shape
    px = np.floor(coords[..., 0] + 0.5).astype(np.int64)
    py = np.floor(coords[..., 1] + 0.5).astype(np.int64)
    ok = (px > 1) & (px < w - 1) & (py > 1) & (py < h - 1)
    ni, ki = np.nonzero(ok)
    x, y = px[ok], py[ok]
    dx = heatmaps[ni, ki, y, x + 1] - heatmaps[ni, ki, y, x - 1]
    dy = heatmaps[ni, ki, y + 1, x] - heatmaps[ni, ki, y - 1, x]
    coords[ni, ki, 0] += np.sign(dx) * 0.25
    coords[ni, ki, 1] += np.sign(dy) * 0.25
    return coords, maxvals


def gaussian_blur(heatmaps: np.ndarray, kernel: int = 11) -> np.ndarray:
    """MMPose `gaussian_blur`: zero-padded Gaussian (OpenCV's sigma for the size), then rescaled
    so each map keeps its maximum. The float64 convolution runs in torch (imported here only, so
    the module stays importable without it), as it always has: tests pin its results."""
    import torch
    import torch.nn.functional as F

    sigma = 0.3 * ((kernel - 1) * 0.5 - 1) + 0.8
    r = kernel // 2
    g = np.exp(-((np.arange(kernel) - r) ** 2) / (2 * sigma * sigma))
    g = torch.tensor(g / g.sum(), dtype=torch.float64)
    n, k, h, w = heatmaps.shape
    x = torch.from_numpy(np.ascontiguousarray(heatmaps, dtype=np.float64)).reshape(n * k, 1, h, w)
    x = F.conv2d(F.pad(x, (r, r, r, r)), g.view(1, 1, 1, -1))
    x = F.conv2d(x, g.view(1, 1, -1, 1)).reshape(n, k, h, w).numpy()
    origin = heatmaps.reshape(n, k, -1).max(axis=2)
    now = x.reshape(n, k, -1).max(axis=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(now != 0, origin / now, 0.0)
    return x * factor[..., None, None]


def decode_dark(heatmaps: np.ndarray, kernel: int = 11) -> tuple[np.ndarray, np.ndarray]:
    """DARK (Zhang et al. 2020; MMPose `refine_keypoints_dark`): argmax, then one Newton step
    `-H^-1 grad` on the log of the blurred heatmap, where the 5x5 neighbourhood fits."""
    coords, maxvals = argmax_heatmaps(heatmaps)
    n, k, h, w = heatmaps.shape
    hm = np.log(np.maximum(gaussian_blur(heatmaps, kernel), 1e-10))
    px, py = coords[..., 0].astype(np.int64), coords[..., 1].astype(np.int64)
    ok = (px > 1) & (px < w - 2) & (py > 1) & (py < h - 2)
    ni, ki = np.nonzero(ok)
    x, y = px[ok], py[ok]

    def at(dy, dx):
        return hm[ni, ki, y + dy, x + dx]

    gx = 0.5 * (at(0, 1) - at(0, -1))
    gy = 0.5 * (at(1, 0) - at(-1, 0))
    dxx = 0.25 * (at(0, 2) - 2 * at(0, 0) + at(0, -2))
    dxy = 0.25 * (at(1, 1) - at(-1, 1) - at(1, -1) + at(-1, -1))
    dyy = 0.25 * (at(2, 0) - 2 * at(0, 0) + at(-2, 0))
    det = dxx * dyy - dxy**2
    good = det != 0
    with np.errstate(divide="ignore", invalid="ignore"):
        ox = -(dyy * gx - dxy * gy) / det
        oy = -(-dxy * gx + dxx * gy) / det
    coords[ni[good], ki[good], 0] += ox[good]
    coords[ni[good], ki[good], 1] += oy[good]
    return coords, maxvals


def decode_udp(heatmaps: np.ndarray, kernel: int = 11) -> tuple[np.ndarray, np.ndarray]:
    """UDP (Huang et al. 2020; MMPose `refine_keypoints_dark_udp`): argmax, then a Newton step on
    the clipped log of the blurred heatmap, edge-padded so every peak gets refined. Pair with
    `crop_to_image(..., udp=True)` of the heatmap size."""
    coords, maxvals = argmax_heatmaps(heatmaps)
    n, k, h, w = heatmaps.shape
    hm = np.log(np.clip(gaussian_blur(heatmaps, kernel), 1e-3, 50.0))
    hm = np.pad(hm, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="edge")
    x = coords[..., 0].astype(np.int64) + 1
    y = coords[..., 1].astype(np.int64) + 1
    ni, ki = np.meshgrid(np.arange(n), np.arange(k), indexing="ij")

    def at(dy, dx):
        return hm[ni, ki, y + dy, x + dx]

    i_ = at(0, 0)
    gx = 0.5 * (at(0, 1) - at(0, -1))
    gy = 0.5 * (at(1, 0) - at(-1, 0))
    dxx = at(0, 1) - 2 * i_ + at(0, -1)
    dyy = at(1, 0) - 2 * i_ + at(-1, 0)
    dxy = 0.5 * (at(1, 1) - at(0, 1) - at(1, 0) + i_ + i_ - at(0, -1) - at(-1, 0) + at(-1, -1))
    eps = np.finfo(np.float32).eps
    a, b, d = dxx + eps, dxy, dyy + eps
    det = a * d - b * b
    with np.errstate(divide="ignore", invalid="ignore"):
        ox = (d * gx - b * gy) / det
        oy = (-b * gx + a * gy) / det
    good = np.isfinite(ox) & np.isfinite(oy)
    coords[..., 0] -= np.where(good, ox, 0.0)
    coords[..., 1] -= np.where(good, oy, 0.0)
    return coords, maxvals


def decode_offset(heatmaps: np.ndarray, offsets: np.ndarray, radius: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Offset heads (UDP's combined target, CAL): argmax plus the offset field at the peak.

    `offsets` (N, K, 2, H, W) holds (dx, dy) in heatmap pixels divided by `radius` (MMPose's
    `valid_radius_factor * H` for the combined target; 1 for offsets in pixels).
    """
    coords, maxvals = argmax_heatmaps(heatmaps)
    n, k, h, w = heatmaps.shape
    x = coords[..., 0].astype(np.int64)
    y = coords[..., 1].astype(np.int64)
    ni, ki = np.meshgrid(np.arange(n), np.arange(k), indexing="ij")
    coords[..., 0] += offsets[ni, ki, 0, y, x] * radius
    coords[..., 1] += offsets[ni, ki, 1, y, x] * radius
    return coords, maxvals


def blur_kernel_for(heatmap_width: int) -> int:
    """The DARK/UDP blur size: MMPose uses 11 for 48-wide heatmaps (256x192 input) and 17 for
    72-wide ones (384x288); other sizes scale the same way, to the nearest odd size >= 3."""
    return max(3, 2 * int(heatmap_width * 11 / 48 / 2) + 1)


def decode(heatmaps: np.ndarray, method: str = "standard", offsets: np.ndarray | None = None, kernel: int | None = None):
    kernel = kernel or blur_kernel_for(heatmaps.shape[-1])
    if method == "standard":
        return decode_standard(heatmaps)
    if method == "dark":
        return decode_dark(heatmaps, kernel)
    if method == "udp":
        return decode_udp(heatmaps, kernel)
    if method == "offset":
        if offsets is None:
            raise ValueError("offset decoding needs the offset field of an offset-head model")
        return decode_offset(heatmaps, offsets)
    raise ValueError(f"unknown decoder {method!r}; expected one of {', '.join(DECODERS)}")


def heatmap_to_image(coords: np.ndarray, center, scale, heatmap_size, udp: bool = False, points64=None) -> np.ndarray:
    """`transform_preds`: heatmap coordinates back to the image (UDP: MMPose's unbiased map)."""
    return apply_affine(coords, crop_to_image(center, scale, heatmap_size, udp=udp, points64=points64))
