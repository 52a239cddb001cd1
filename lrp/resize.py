"""Resizing and blurring images as per-axis weight matrices (MATLAB `imresize` semantics). No torch.

Every method here is linear and separable, so one axis of an image is resized by one dense
(out x in) matrix `W`: `rows' = W_h @ rows`, then the same along the columns with `W_w`. The
matrices follow MATLAB's `imresize` exactly:

- a resize is described by an xform `[sx, sy, tx, ty]` (see lrp.geometry): input continuous
  coordinate x maps to `sx*x + tx`, so the centre of output pixel o samples the input at
  `c = (o + 0.5 - t) / s` (0-based, continuous). With `t = 0` this is MATLAB's
  `u = x/scale + 0.5*(1 - 1/scale)` in its 1-based indexing;
- bicubic uses Keys' cubic with a = -0.5 (width 4), bilinear the triangle (width 2); when
  shrinking (s < 1) they antialias: width `w/s` and weights `s*k(s*d)`; rows are normalised to
  sum 1 (before folding, as MATLAB does);
- nearest takes the pixel under the centre (MATLAB's box kernel without antialiasing);
- area averages the input exactly over the output pixel's footprint (like PIL BOX or OpenCV
  INTER_AREA; for an integer factor k it is the k x k block mean);
- taps that fall outside the image are mirrored (MATLAB 'symmetric': ... b a | a b c ...) and
  folded into the matrix, so borders cost nothing at run time.

A blur applied before the resize is folded into the same matrices: a Gaussian is separable (one
1-D convolution matrix per axis), and an arbitrary 2-D kernel is split by SVD into a short sum of
separable terms (exactly, up to float rounding), each giving one pair of matrices.

The matrices are built in float64 and applied in float32 as band-limited blocks of matrix
products: numpy's BLAS releases the GIL, so threads resize several images at once.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
from typing import Sequence

import numpy as np

from lrp.geometry import Xform, output_size

#: Methods the matrices implement; "strided" (x[::k]) is nearest sampling with the strided xform.
METHODS = ("bicubic", "bilinear", "area", "nearest", "strided")

# Output rows per block of the band-limited product: small enough to skip most zeros, large
# enough for BLAS to run at speed.
_BLOCK_ROWS = 16


# --------------------------------------------------------------------------------------------
# Kernels


def cubic(d: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's `cubic`)."""
    a = np.abs(d)
    a2, a3 = a * a, a * a * a
    return (1.5 * a3 - 2.5 * a2 + 1.0) * (a <= 1) + (-0.5 * a3 + 2.5 * a2 - 4.0 * a + 2.0) * ((a > 1) & (a <= 2))


def triangle(d: np.ndarray) -> np.ndarray:
    a = np.abs(d)
    return (1.0 - a) * (a <= 1)


def box(d: np.ndarray) -> np.ndarray:
    """MATLAB's box: [-0.5, 0.5), so a centre exactly between two pixels takes the right one."""
    return ((d >= -0.5) & (d < 0.5)).astype(np.float64)


# name -> (kernel, width, antialias when shrinking)
_KERNELS = {
    "bicubic": (cubic, 4.0, True),
    "bilinear": (triangle, 2.0, True),
    "nearest": (box, 1.0, False),
    "strided": (box, 1.0, False),
}


def mirror_index(idx: np.ndarray, n: int) -> np.ndarray:
    """MATLAB 'symmetric' padding for any overhang: -1 -> 0, -2 -> 1, n -> n-1, n+1 -> n-2."""
    m = np.mod(idx, 2 * n)
    return np.where(m < n, m, 2 * n - 1 - m)


# --------------------------------------------------------------------------------------------
# One axis


def resize_matrix(in_len: int, out_len: int, scale: float, offset: float = 0.0, method: str = "bicubic") -> np.ndarray:
    """The (out_len x in_len) float64 matrix that resizes one axis.

    `scale` and `offset` map input coordinates to output ones (`x' = scale*x + offset`); for
    MATLAB's `imresize(img, scale)` pass the requested scale and offset 0.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    return _resize_matrix(int(in_len), int(out_len), float(scale), float(offset), method).copy()


@functools.lru_cache(maxsize=8)  # dense and possibly large (x4 upscales); the bands are cached below
def _resize_matrix(in_len: int, out_len: int, scale: float, offset: float, method: str) -> np.ndarray:
    centres = (np.arange(out_len, dtype=np.float64) + 0.5 - offset) / scale  # 0-based continuous
    if method == "area":
        return _area_matrix(in_len, centres, 0.5 / scale)
    kernel, width, antialias = _KERNELS[method]
    k_scale = scale if (antialias and scale < 1) else 1.0
    width = width / k_scale
    u = centres + 0.5  # MATLAB's 1-based coordinate
    left = np.floor(u - width / 2.0)
    taps = int(math.ceil(width)) + 2
    idx1 = left[:, None] + np.arange(taps)[None, :]  # 1-based candidate pixels
    weights = k_scale * kernel(k_scale * (u[:, None] - idx1))
    weights /= weights.sum(axis=1, keepdims=True)
    return _fold(weights, mirror_index(idx1.astype(np.int64) - 1, in_len), in_len)


def _area_matrix(in_len: int, centres: np.ndarray, half: float) -> np.ndarray:
    """Exact footprint averaging: weight = overlap of [i, i+1) with the output pixel's span."""
    lo, hi = centres - half, centres + half
    first = np.floor(lo).astype(np.int64)
    taps = int(math.ceil(2 * half)) + 2
    idx = first[:, None] + np.arange(taps)[None, :]
    overlap = np.minimum(hi[:, None], idx + 1) - np.maximum(lo[:, None], idx)
    weights = np.clip(overlap, 0.0, None)
    weights /= weights.sum(axis=1, keepdims=True)
    return _fold(weights, mirror_index(idx, in_len), in_len)


def _fold(weights: np.ndarray, cols: np.ndarray, in_len: int) -> np.ndarray:
    out = np.zeros((weights.shape[0], in_len), dtype=np.float64)
    rows = np.broadcast_to(np.arange(weights.shape[0])[:, None], cols.shape)
    np.add.at(out, (rows, cols), weights)
    return out


def convolution_matrix(n: int, taps: Sequence[float]) -> np.ndarray:
    """(n x n) matrix of the 1-D convolution `y[i] = sum_a taps[a] * x[i - a + c]`, c = len//2,
    mirror padded (same convention as scipy.ndimage.convolve with mode='reflect' for odd sizes)."""
    taps = np.asarray(taps, dtype=np.float64)
    centre = len(taps) // 2
    i = np.arange(n)[:, None]
    src = mirror_index(i - np.arange(len(taps))[None, :] + centre, n)
    return _fold(np.broadcast_to(taps, src.shape), src, n)


def gaussian_taps(sigma: float) -> np.ndarray:
    """Sampled, normalised 1-D Gaussian with radius ceil(4*sigma) (scipy's default truncation)."""
    if not sigma > 0:
        raise ValueError("a Gaussian blur needs sigma > 0")
    radius = max(1, int(math.ceil(4.0 * sigma)))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    g = np.exp(-0.5 * (x / sigma) ** 2)
    return g / g.sum()


def separable_terms(kernel2d: np.ndarray, rtol: float = 1e-9) -> list[tuple[np.ndarray, np.ndarray]]:
    """Split a 2-D kernel into (vertical taps, horizontal taps) pairs whose outer products sum
    to it, by SVD; singular values below rtol * the largest are dropped (they are float noise)."""
    k = np.asarray(kernel2d, dtype=np.float64)
    u, s, vt = np.linalg.svd(k)
    keep = s > rtol * s[0] if s[0] > 0 else s > 0
    return [(u[:, r] * s[r], vt[r]) for r in np.flatnonzero(keep)]


# --------------------------------------------------------------------------------------------
# Blur specifications


# Float32 kernels that were normalised in float32 (USRNet's x4 sums to 0.99990) pass; a kernel
# that was never normalised does not.
SUM_TOLERANCE = 1e-3


def check_kernel(kernel) -> np.ndarray:
    """A float64 copy of `kernel`, or a ValueError saying what is wrong with it."""
    k = np.array(kernel, dtype=np.float64)
    if k.ndim != 2 or k.size == 0:
        raise ValueError(f"a blur kernel must be a 2-D array, got shape {tuple(k.shape)}")
    if not np.all(np.isfinite(k)):
        raise ValueError("the blur kernel has NaN or infinite entries")
    if abs(k.sum() - 1.0) > SUM_TOLERANCE:
        raise ValueError(
            f"a blur kernel must sum to about 1 (within {SUM_TOLERANCE:g}; it sums to {k.sum():.6g}): "
            "scale it so that its taps sum to 1"
        )
    return k


class Blur:
    """A blur applied before the resize: `Blur.gaussian(sigma)` or `Blur.kernel(array2d)`.

    Kept as separable (vertical taps, horizontal taps) terms; hashable, so matrices are cached.
    """

    def __init__(self, terms: list[tuple[np.ndarray, np.ndarray]], label: str):
        self.terms = [(np.asarray(v, dtype=np.float64), np.asarray(h, dtype=np.float64)) for v, h in terms]
        self.label = label
        self._key = tuple((v.tobytes(), h.tobytes()) for v, h in self.terms)

    @classmethod
    def gaussian(cls, sigma: float) -> "Blur":
        g = gaussian_taps(sigma)
        return cls([(g, g)], f"gaussian:{sigma:g}")

    @classmethod
    def kernel(cls, kernel2d: np.ndarray, label: str = "kernel") -> "Blur":
        """A 2-D kernel that sums to 1 (check_kernel; ValueError otherwise)."""
        k = check_kernel(kernel2d)
        return cls(separable_terms(k), label)

    def __hash__(self):
        return hash(self._key)

    def __eq__(self, other):
        return isinstance(other, Blur) and self._key == other._key

    def __repr__(self):
        return f"Blur({self.label!r}, {len(self.terms)} separable term(s))"


# --------------------------------------------------------------------------------------------
# Whole images


class _Band:
    """A matrix cut into blocks of rows, each with the column range where it is non-zero."""

    def __init__(self, matrix: np.ndarray):
        self.shape = matrix.shape
        m32 = matrix.astype(np.float32)
        self.blocks = []
        for r0 in range(0, matrix.shape[0], _BLOCK_ROWS):
            block = m32[r0 : r0 + _BLOCK_ROWS]
            nz = np.flatnonzero(np.any(block != 0, axis=0))
            c0, c1 = (int(nz[0]), int(nz[-1]) + 1) if nz.size else (0, 0)
            self.blocks.append((r0, r0 + block.shape[0], c0, c1, np.ascontiguousarray(block[:, c0:c1])))

    def apply(self, x: np.ndarray) -> np.ndarray:
        """`matrix @ x` for a 2-D float32 `x` of shape (in, m)."""
        out = np.empty((self.shape[0], x.shape[1]), dtype=np.float32)
        for r0, r1, c0, c1, block in self.blocks:
            if c1 > c0:
                np.matmul(block, x[c0:c1], out=out[r0:r1])
            else:
                out[r0:r1] = 0
        return out


@functools.lru_cache(maxsize=128)
def _axis_terms(in_len: int, out_len: int, scale: float, offset: float, method: str, blur: Blur | None, axis: int):
    """Per blur term, the band matrix of this axis (blur, then resize)."""
    resize = _resize_matrix(in_len, out_len, scale, offset, method)
    if blur is None:
        return (_Band(resize),)
    return tuple(_Band(resize @ convolution_matrix(in_len, term[axis])) for term in blur.terms)


def axis_matrices(in_size: tuple[int, int], out_size: tuple[int, int], xform: Xform, method: str = "bicubic", blur: Blur | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """(rows matrix, columns matrix) pairs, one per blur term, as float64; for tests and tools."""
    (w, h), (ow, oh) = in_size, out_size
    sx, sy, tx, ty = (float(v) for v in xform)
    rows_m = _resize_matrix(h, oh, sy, ty, method)
    cols_m = _resize_matrix(w, ow, sx, tx, method)
    if blur is None:
        return [(rows_m.copy(), cols_m.copy())]
    return [(rows_m @ convolution_matrix(h, v), cols_m @ convolution_matrix(w, hz)) for v, hz in blur.terms]


def resample(arr: np.ndarray, out_size: tuple[int, int], xform: Xform, method: str = "bicubic", blur: Blur | None = None) -> np.ndarray:
    """Blur then resize an HxW or HxWxC image to `out_size` = (w, h); returns float32.

    `xform` = [sx, sy, tx, ty] says where input coordinates land in the output (the sampling
    positions). No rounding: callers add noise or round as they need.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    squeeze = arr.ndim == 2
    x = arr[:, :, None] if squeeze else arr
    h, w, c = x.shape
    ow, oh = int(out_size[0]), int(out_size[1])
    sx, sy, tx, ty = (float(v) for v in xform)
    if method == "strided" and blur is None:
        out = _strided(x, (ow, oh), (sx, sy, tx, ty)).astype(np.float32)
        return out[:, :, 0] if squeeze else out
    rows = _axis_terms(h, oh, sy, ty, method, blur, 0)
    cols = _axis_terms(w, ow, sx, tx, method, blur, 1)
    x32 = np.ascontiguousarray(x, dtype=np.float32).reshape(h, w * c)
    out = None
    for rows_band, cols_band in zip(rows, cols):
        y = rows_band.apply(x32)  # (oh, w*c)
        y = np.ascontiguousarray(y.reshape(oh, w, c).transpose(1, 0, 2)).reshape(w, oh * c)
        z = cols_band.apply(y).reshape(ow, oh, c)  # (ow, oh, c)
        out = z if out is None else out + z
    out = np.ascontiguousarray(out.transpose(1, 0, 2))
    return out[:, :, 0] if squeeze else out


def _strided(x: np.ndarray, out_size: tuple[int, int], xform: Xform) -> np.ndarray:
    """Nearest sampling by indexing (what `x[off::k]` is), without building matrices."""
    sx, sy, tx, ty = xform
    ow, oh = out_size
    h, w = x.shape[:2]
    rows = mirror_index(np.floor((np.arange(oh) + 0.5 - ty) / sy).astype(np.int64), h)
    cols = mirror_index(np.floor((np.arange(ow) + 0.5 - tx) / sx).astype(np.int64), w)
    return x[rows[:, None], cols[None, :]]


@contextlib.contextmanager
def single_threaded_blas():
    """Run numpy's OpenBLAS on one thread inside the block, for image-parallel work.

    We already resize one image per thread; OpenBLAS's own threads on top of that fight over the
    cores and spin while waiting (on a busy 2-core machine a 5 ms resize took 100 ms). Where
    numpy's BLAS is not a bundled OpenBLAS we cannot tell, and leave it alone.
    """
    controls = _openblas_thread_controls()
    if controls is None:
        yield
        return
    set_threads, get_threads = controls
    before = get_threads()
    set_threads(1)
    try:
        yield
    finally:
        set_threads(before)


@functools.lru_cache(maxsize=1)
def _openblas_thread_controls():
    """(set, get) of the OpenBLAS that numpy's wheels bundle (numpy.libs/ or numpy/.dylibs/)."""
    import ctypes
    import glob

    base = os.path.dirname(np.__file__)
    for path in glob.glob(base + ".libs/*openblas*") + glob.glob(os.path.join(base, ".dylibs", "*openblas*")):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix, suffix in (("scipy_openblas", "64_"), ("scipy_openblas", ""), ("openblas", "64_"), ("openblas", "")):
            set_fn = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
            get_fn = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
            if set_fn is not None and get_fn is not None:
                set_fn.argtypes, set_fn.restype = [ctypes.c_int], None
                get_fn.argtypes, get_fn.restype = [], ctypes.c_int
                return set_fn, get_fn
    return None


def to_uint8(arr: np.ndarray) -> np.ndarray:
    """Round half to even and clip, as MATLAB's uint8() and numpy's round do."""
    return np.clip(np.rint(arr), 0, 255).astype(np.uint8)


def resize_image(arr: np.ndarray, scale: float, method: str = "bicubic", blur: Blur | None = None) -> np.ndarray:
    """MATLAB `imresize(arr, scale)`: output size ceil(size*scale) per axis, up or down.

    The kernel uses the requested `scale` on both axes (as MATLAB does), so pixels agree with
    MATLAB and its ports; the xform a document records for this step comes from the real sizes
    (lrp.geometry.resize_xform), which differs from `scale` by less than one output pixel at the
    far edge (e.g. 427 rows at 1/4 give 107 rows: 107/427 instead of 0.25).

    uint8 in -> uint8 out (rounded, clipped); float in -> float32 out (not rounded).
    """
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    h, w = arr.shape[:2]
    out_size = (output_size(w, scale), output_size(h, scale))
    if method == "strided":
        k = strided_step(scale)
        xform = [1.0 / k, 1.0 / k, 0.5 * (1 - 1.0 / k), 0.5 * (1 - 1.0 / k)]
    else:
        xform = [scale, scale, 0.0, 0.0]
    out = resample(arr, out_size, xform, method, blur)
    return to_uint8(out) if arr.dtype == np.uint8 else out


def strided_step(scale: float) -> int:
    """The integer k of `x[::k]` for scale 1/k; ValueError when 1/scale is not an integer."""
    k = 1.0 / scale if scale > 0 else 0.0
    step = int(round(k))
    if step < 1 or abs(k - step) > 1e-9 * max(1.0, k):
        raise ValueError(f"strided decimation needs scale 1/k for an integer k, got {scale:g}")
    return step
