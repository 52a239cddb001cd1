"""lrp.resize against independent references written here as plain loops.

The reference below follows MATLAB's imresize.m line by line (contributions(), cubic(),
symmetric padding by index arithmetic), one output pixel at a time: a different code path from
the vectorised matrices in lrp.resize. (The comparison with USRNet's MATLAB port on real COCO
images is done outside the repository, in scratch space, and reported in the project notes.)
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from lrp import geometry
from lrp.resize import (
    Blur,
    axis_matrices,
    convolution_matrix,
    gaussian_taps,
    resample,
    resize_image,
    resize_matrix,
    separable_terms,
    strided_step,
)

# --------------------------------------------------------------------------------------------
# Loop references


def ref_kernel(name, x):
    ax = abs(x)
    if name == "bicubic":
        if ax <= 1:
            return 1.5 * ax**3 - 2.5 * ax**2 + 1
        if ax <= 2:
            return -0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2
        return 0.0
    if name == "bilinear":
        return max(0.0, 1 - ax)
    if name == "nearest":
        return 1.0 if -0.5 <= x < 0.5 else 0.0
    raise ValueError(name)


def ref_contributions(in_len, out_len, scale, name):
    """MATLAB imresize.m `contributions`, one output pixel at a time (1-based as in MATLAB)."""
    width = {"bicubic": 4.0, "bilinear": 2.0, "nearest": 1.0}[name]
    antialias = name != "nearest" and scale < 1
    if antialias:
        width = width / scale
    rows = []
    for x in range(1, out_len + 1):
        u = x / scale + 0.5 * (1 - 1 / scale)
        left = math.floor(u - width / 2)
        taps = []
        for p in range(math.ceil(width) + 2):
            idx = left + p
            d = u - idx
            w = scale * ref_kernel(name, scale * d) if antialias else ref_kernel(name, d)
            taps.append((idx, w))
        total = sum(w for _, w in taps)
        aux = list(range(1, in_len + 1)) + list(range(in_len, 0, -1))
        rows.append([(aux[(idx - 1) % len(aux)] - 1, w / total) for idx, w in taps])
    return rows


def ref_resize_axis0(img, contributions):
    out = np.zeros((len(contributions),) + img.shape[1:], dtype=np.float64)
    for o, taps in enumerate(contributions):
        for src, w in taps:
            out[o] += w * img[src]
    return out


def ref_imresize(img, scale, name="bicubic"):
    h, w = img.shape[:2]
    oh, ow = math.ceil(h * scale), math.ceil(w * scale)
    tmp = ref_resize_axis0(img.astype(np.float64), ref_contributions(h, oh, scale, name))
    tmp = np.swapaxes(tmp, 0, 1)
    out = ref_resize_axis0(tmp, ref_contributions(w, ow, scale, name))
    return np.swapaxes(out, 0, 1)


def ref_convolve2d_symmetric(img, kernel):
    """out[i, j] = sum_ab K[a, b] * img[i - a + ca, j - b + cb], MATLAB 'symmetric' borders."""
    kh, kw = kernel.shape
    ch, cw = kh // 2, kw // 2
    pad = max(kh, kw)
    padded = np.pad(img.astype(np.float64), [(pad, pad), (pad, pad)] + [(0, 0)] * (img.ndim - 2), mode="symmetric")
    out = np.zeros(img.shape, dtype=np.float64)
    h, w = img.shape[:2]
    for a in range(kh):
        for b in range(kw):
            di, dj = ch - a + pad, cw - b + pad
            out += kernel[a, b] * padded[di : di + h, dj : dj + w]
    return out


# --------------------------------------------------------------------------------------------
# MATLAB bicubic (and bilinear, nearest) against the loop reference

SCALES = [1 / 2, 1 / 4, 1 / 3, 0.3, 2, 4]


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("shape", [(13, 17, 3), (31, 8), (7, 29, 2)])
def test_bicubic_matches_matlab_loop_reference(scale, shape):
    rng = np.random.default_rng(hash((shape, scale)) % 2**32)
    img = rng.uniform(0, 255, size=shape)
    ours = resize_image(img, scale)
    ref = ref_imresize(img, scale)
    assert ours.shape == ref.shape
    assert ours.shape[:2] == (math.ceil(shape[0] * scale - 1e-9), math.ceil(shape[1] * scale - 1e-9))
    np.testing.assert_allclose(ours, ref, atol=2e-3)  # float32 arithmetic on 0..255 values


@pytest.mark.parametrize("method", ["bilinear", "nearest"])
@pytest.mark.parametrize("scale", [0.5, 0.3, 3])
def test_other_kernels_match_loop_reference(method, scale):
    img = np.random.default_rng(1).uniform(0, 255, size=(19, 23, 3))
    np.testing.assert_allclose(resize_image(img, scale, method), ref_imresize(img, scale, method), atol=2e-3)


def test_uint8_in_uint8_out_rounded():
    img = np.random.default_rng(2).integers(0, 256, size=(21, 26, 3), dtype=np.uint8)
    out = resize_image(img, 0.25)
    assert out.dtype == np.uint8 and out.shape == (6, 7, 3)
    ref = np.clip(np.round(ref_imresize(img, 0.25)), 0, 255)
    assert np.abs(out.astype(int) - ref).max() <= 1
    assert (out == ref).mean() > 0.95


def test_output_size_is_ceil_without_float_noise():
    # 0.1 * 30 = 3.0000000000000004 in floats; MATLAB (and we) give 3, not 4.
    assert resize_image(np.zeros((30, 30), np.float32), 0.1).shape == (3, 3)
    assert resize_image(np.zeros((427, 640, 3), np.uint8), 0.25).shape == (107, 160, 3)


def test_rows_sum_to_one_and_constant_images_stay_constant():
    for method in ("bicubic", "bilinear", "area", "nearest"):
        for scale in (0.25, 0.7, 3.0):
            m = resize_matrix(37, geometry.output_size(37, scale), scale, method=method)
            np.testing.assert_allclose(m.sum(axis=1), 1.0, atol=1e-12)
    flat = np.full((40, 50, 3), 77.0)
    np.testing.assert_allclose(resize_image(flat, 0.3), 77.0, atol=1e-3)


def test_bicubic_upscale_reproduces_linear_ramps_in_the_interior():
    """Keys' cubic (a=-0.5) reproduces polynomials up to degree 2: a ramp stays a ramp."""
    h, w = 12, 15
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = 3.0 * xx + 5.0 * yy + 7.0
    out = resize_image(img, 4)
    oy, ox = np.mgrid[0 : 4 * h, 0 : 4 * w]
    # Output centre o + 0.5 samples input centre coordinate (o + 0.5) / 4 - 0.5.
    expect = 3.0 * ((ox + 0.5) / 4 - 0.5) + 5.0 * ((oy + 0.5) / 4 - 0.5) + 7.0
    interior = (slice(8, -8), slice(8, -8))
    np.testing.assert_allclose(out[interior], expect[interior], atol=1e-3)


def test_unknown_method_and_bad_scale_raise():
    with pytest.raises(ValueError, match="unknown method"):
        resize_image(np.zeros((4, 4)), 0.5, "lanczos")
    with pytest.raises(ValueError, match="scale must be > 0"):
        resize_image(np.zeros((4, 4)), 0)


# --------------------------------------------------------------------------------------------
# Area, nearest, strided


def test_area_integer_factor_is_block_mean():
    img = np.random.default_rng(3).uniform(0, 255, size=(24, 36, 3))
    expect = img.reshape(6, 4, 9, 4, 3).mean(axis=(1, 3))
    np.testing.assert_allclose(resize_image(img, 0.25, "area"), expect, atol=1e-3)


def test_area_fractional_factor_integrates_footprints():
    # 5 pixels -> 2 (scale 0.4): pixel footprints [0, 2.5) and [2.5, 5).
    x = np.array([[10.0], [20.0], [30.0], [40.0], [50.0]])
    out = resample(x, (1, 2), [1.0, 0.4, 0.0, 0.0], "area")
    np.testing.assert_allclose(out[:, 0], [(10 + 20 + 0.5 * 30) / 2.5, (0.5 * 30 + 40 + 50) / 2.5], atol=1e-4)


def test_nearest_agrees_with_geometry_mask_resampling():
    """Two implementations of 'the pixel under the centre' (images here, masks in geometry).

    With the real-size xform (what documents record) every centre lies inside the image. With the
    requested scale, a ceil-rounded last row can sample past the edge: images mirror there
    (MATLAB), masks clamp, so that row may differ and is compared separately.
    """
    mask = (np.random.default_rng(4).uniform(size=(33, 47)) > 0.5).astype(np.uint8)
    for scale in (0.25, 0.3, 2.5):
        size = (geometry.output_size(47, scale), geometry.output_size(33, scale))
        xf = geometry.resize_xform((47, 33), size)
        np.testing.assert_array_equal(resample(mask, size, xf, "nearest"), geometry.resample_mask_nearest(mask, xf, size))
    xf = [0.25, 0.25, 0.0, 0.0]  # 33 rows -> 9: the centre of row 8 samples row 34 (outside)
    ours = resample(mask, (12, 9), xf, "nearest")
    np.testing.assert_array_equal(ours[:8], geometry.resample_mask_nearest(mask, xf, (12, 9))[:8])
    np.testing.assert_array_equal(ours[8], mask[31, 2::4])  # row 34 mirrors to 31; columns 4o+2


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_strided_is_slicing_with_the_recorded_offset(k):
    img = np.random.default_rng(k).integers(0, 256, size=(23, 30, 3), dtype=np.uint8)
    out = resize_image(img, 1 / k, "strided")
    np.testing.assert_array_equal(out, img[::k, ::k])
    # The same through the matrices (the path a blur takes): identical.
    xf = geometry.strided_xform(k)
    size = (out.shape[1], out.shape[0])
    rows, cols = axis_matrices((30, 23), size, xf, "strided")[0]
    np.testing.assert_allclose(rows @ img[:, :, 0] @ cols.T, img[::k, ::k, 0])


def test_strided_rejects_non_integer_factors():
    assert strided_step(0.25) == 4
    with pytest.raises(ValueError, match="integer"):
        strided_step(0.3)


# --------------------------------------------------------------------------------------------
# Blur folded into the matrices


def test_gaussian_blur_then_resize_equals_convolution_then_resize():
    img = np.random.default_rng(5).uniform(0, 255, size=(26, 31, 3))
    blur = Blur.gaussian(1.3)
    g = gaussian_taps(1.3)
    assert len(g) == 2 * math.ceil(4 * 1.3) + 1 and abs(g.sum() - 1) < 1e-12
    blurred = ref_convolve2d_symmetric(img, np.outer(g, g))
    ours = resample(img, (13, 11), [0.42, 0.42, 0.0, 0.0], "bicubic", blur)
    ref = resample(blurred, (13, 11), [0.42, 0.42, 0.0, 0.0], "bicubic")
    np.testing.assert_allclose(ours, ref, atol=2e-3)


def test_non_separable_kernel_is_exact_through_svd_terms():
    rng = np.random.default_rng(6)
    kernel = rng.uniform(size=(5, 7))
    kernel /= kernel.sum()
    assert len(separable_terms(kernel)) == 5  # full rank: nothing is dropped
    img = rng.uniform(0, 255, size=(17, 19, 3))
    ours = resample(img, (19, 17), [1.0, 1.0, 0.0, 0.0], "bicubic", Blur.kernel(kernel))
    np.testing.assert_allclose(ours, ref_convolve2d_symmetric(img, kernel), atol=2e-3)


def test_convolution_matrix_mirrors_at_borders():
    m = convolution_matrix(4, [0.25, 0.5, 0.25])
    # Row 0 reads x[-1] = x[0] (symmetric), x[0], x[1].
    np.testing.assert_allclose(m[0], [0.75, 0.25, 0.0, 0.0])
    np.testing.assert_allclose(m[3], [0.0, 0.0, 0.25, 0.75])


@pytest.mark.parametrize(
    "kernel, message",
    [
        (np.ones(5) / 5, "2-D"),
        (np.ones((3, 3)), "sum to 1"),
        (np.full((3, 3), np.nan), "NaN"),
    ],
)
def test_bad_kernels_are_refused(kernel, message):
    with pytest.raises(ValueError, match=message):
        Blur.kernel(kernel)


# --------------------------------------------------------------------------------------------
# The band-limited product equals the dense one


@pytest.mark.parametrize("scale", [0.25, 4.0])
def test_banded_application_equals_dense_matrix_product(scale):
    img = np.random.default_rng(7).uniform(0, 255, size=(150, 90, 3)).astype(np.float32)
    size = (geometry.output_size(90, scale), geometry.output_size(150, scale))
    xf = [scale, scale, 0.0, 0.0]
    rows, cols = axis_matrices((90, 150), size, xf, "bicubic")[0]
    dense = np.stack([rows @ img[:, :, c].astype(np.float64) @ cols.T for c in range(3)], axis=-1)
    np.testing.assert_allclose(resample(img, size, xf, "bicubic"), dense, atol=2e-3)


def test_resample_to_an_affine_inverse_samples_where_the_xform_says():
    """--to-origin samples at invert(xform): a strided image goes back onto its source grid."""
    img = np.random.default_rng(8).uniform(0, 255, size=(20, 24))
    small = img[::4, ::4]
    back = geometry.invert(geometry.strided_xform(4))
    up = resample(small, (24, 20), back, "nearest")
    # Source pixel 4i lies under small pixel i again.
    np.testing.assert_allclose(up[::4, ::4], small, atol=1e-4)
