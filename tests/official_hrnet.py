"""An independent rendering of the official HRNet test pipeline, calling the installed `cv2`.

Written for the tests after leoxiaobin/deep-high-resolution-net.pytorch (`lib/utils/transforms.py`
`get_affine_transform` + `cv2.warpAffine`, `lib/core/inference.py` `get_final_preds`, the flip
test of `lib/core/function.py`), with the dtypes of the official code (float32 points, float64
matrices; centre and scale float32 as COCO's `_xywh2cs` makes them, or `dtype=np.float64` as
MPII's `_get_db` holds them). Nothing here imports lrp.

Run as a script (`python official_hrnet.py IN.npz OUT.npz`) it cuts the crops with whatever
`cv2` that interpreter finds, so a test can get the crops of another OpenCV generation from a
second install (see `LRP_OPENCV4_SITE` in test_warp.py).
"""

from __future__ import annotations

import sys

import numpy as np


def affine(center, scale, size, inverse=False, dtype=np.float32):
    """`get_affine_transform(center, scale, 0, size, inv)`: three float32 point pairs, computed
    from a centre and scale of `dtype` (the sums happen in it before the points are stored)."""
    import cv2

    center = np.asarray(center, dtype=dtype)
    scale = np.asarray(scale, dtype=dtype)
    src_w = (scale * 200.0)[0]
    w, h = size
    src = np.zeros((3, 2), dtype=np.float32)
    dst = np.zeros((3, 2), dtype=np.float32)
    src[0] = center
    src[1] = center + np.array([0.0, src_w * -0.5])
    dst[0] = [w * 0.5, h * 0.5]
    dst[1] = np.array([w * 0.5, h * 0.5]) + np.array([0, w * -0.5], np.float32)
    for pts in (src, dst):  # the third point: the second plus the first-to-second turned 90 degrees
        d = pts[0] - pts[1]
        pts[2] = pts[1] + np.array([-d[1], d[0]], dtype=np.float32)
    return cv2.getAffineTransform(dst, src) if inverse else cv2.getAffineTransform(src, dst)


def crop(image_rgb, center, scale, size, dtype=np.float32):
    import cv2

    return cv2.warpAffine(image_rgb, affine(center, scale, size, dtype=dtype), (int(size[0]), int(size[1])), flags=cv2.INTER_LINEAR)


def flip_test(heatmaps, flipped, pairs):
    """Flip the mirrored heatmaps back, swap the pairs, shift one column right, average."""
    back = flipped[:, :, :, ::-1].copy()
    for a, b in pairs:
        back[:, [a, b]] = back[:, [b, a]]
    back[:, :, :, 1:] = back.copy()[:, :, :, :-1]
    return (heatmaps + back) * 0.5


def final_preds(heatmaps, centers, scales, dtype=np.float32):
    """`get_final_preds` with POST_PROCESS: argmax, a quarter pixel toward the higher neighbour,
    then `transform_preds` back to the image. Loops as the official code, float32 coordinates."""
    n, k, h, w = heatmaps.shape
    flat = heatmaps.reshape(n, k, -1)
    idx = np.argmax(flat, 2)
    maxvals = np.amax(flat, 2)
    coords = np.zeros((n, k, 2), dtype=np.float32)
    coords[..., 0] = idx % w
    coords[..., 1] = np.floor(idx / w)
    coords *= (maxvals > 0.0)[..., None].astype(np.float32)
    for i in range(n):
        for j in range(k):
            hm = heatmaps[i, j]
            px, py = int(np.floor(coords[i, j, 0] + 0.5)), int(np.floor(coords[i, j, 1] + 0.5))
            if 1 < px < w - 1 and 1 < py < h - 1:
                diff = np.array([hm[py][px + 1] - hm[py][px - 1], hm[py + 1][px] - hm[py - 1][px]])
                coords[i, j] += np.sign(diff) * 0.25
    preds = coords.copy()
    for i in range(n):
        t = affine(centers[i], scales[i], (w, h), inverse=True, dtype=dtype)
        for j in range(k):
            preds[i, j] = t @ np.array([coords[i, j, 0], coords[i, j, 1], 1.0])
    return preds, maxvals


def _crops_of_npz(src: str, out: str) -> None:
    import cv2

    data = np.load(src)
    crops = [crop(data[f"image{int(i)}"], c, s, tuple(data["size"])) for i, c, s in zip(data["which"], data["centers"], data["scales"])]
    np.savez(out, crops=np.stack(crops), version=np.array(cv2.__version__))


if __name__ == "__main__":
    _crops_of_npz(sys.argv[1], sys.argv[2])
