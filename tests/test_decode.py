"""Heatmap decoders on synthetic heatmaps whose true peak is known to a fraction of a pixel."""

from __future__ import annotations

import numpy as np
import pytest

from lrp.topdown import decode, decode_dark, decode_offset, decode_standard, decode_udp, gaussian_blur


def gaussian_maps(peaks, size=(48, 64), sigma=2.0):
    """(1, K, H, W) unnormalised Gaussians (peak 1 at the sub-pixel centre), as training targets."""
    w, h = size
    ys, xs = np.mgrid[0:h, 0:w]
    maps = [np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2)) for x, y in peaks]
    return np.stack(maps)[None].astype(np.float32)


PEAKS = [(20.3, 30.7), (11.62, 40.1), (30.49, 12.51), (25.0, 33.0), (7.85, 50.2), (40.1, 8.9)]


def errors(method):
    hm = gaussian_maps(PEAKS)
    coords, scores = decode(hm, method)
    return np.linalg.norm(coords[0] - np.array(PEAKS), axis=1), scores


def test_standard_is_argmax_plus_a_quarter_pixel():
    err, scores = errors("standard")
    assert err.max() <= np.hypot(0.25, 0.25) + 1e-9  # within the quarter-pixel grid
    np.testing.assert_allclose(scores[0], gaussian_maps(PEAKS).reshape(len(PEAKS), -1).max(1))
    coords, _ = decode_standard(gaussian_maps([(20.3, 30.7)]))
    np.testing.assert_allclose(coords[0, 0], [20.25, 30.75])  # 20 + 1/4, 31 - 1/4


@pytest.mark.parametrize("method", ["dark", "udp"])
def test_taylor_decoders_beat_standard_on_a_known_subpixel_peak(method):
    standard, _ = errors("standard")
    refined, _ = errors(method)
    assert refined.mean() < standard.mean() / 3
    assert refined.max() < 0.05


def test_dark_recovers_the_peak_almost_exactly():
    err, _ = errors("dark")
    assert err.max() < 0.01


def test_decoders_leave_flat_or_negative_maps_at_the_origin():
    hm = np.full((1, 2, 16, 12), -1.0, dtype=np.float32)
    for method in ("standard", "dark"):
        coords, scores = decode(hm, method)
        assert np.all(coords == 0) and np.all(scores == -1)


def test_standard_does_not_step_at_the_border():
    hm = gaussian_maps([(0.2, 5.3), (47.0, 63.0)])
    coords, _ = decode_standard(hm)
    np.testing.assert_allclose(coords[0], [[0, 5], [47, 63]])


def test_dark_skips_peaks_too_close_to_the_border():
    hm = gaussian_maps([(1.3, 30.2)])
    np.testing.assert_allclose(decode_dark(hm)[0][0, 0], [1, 30])


def test_udp_refines_even_at_the_border():
    # Edge padding lets UDP take its step where DARK's 5x5 window does not fit; along the border
    # the blur (zero padded, as MMPose) biases x, while y is still recovered.
    coords, _ = decode_udp(gaussian_maps([(1.3, 30.2)]))
    assert coords[0, 0, 0] != 1.0
    assert abs(coords[0, 0, 1] - 30.2) < 1e-3


def test_gaussian_blur_keeps_each_maximum():
    hm = np.random.default_rng(0).random((2, 3, 20, 16)).astype(np.float32)
    blurred = gaussian_blur(hm, 11)
    np.testing.assert_allclose(blurred.reshape(6, -1).max(1), hm.reshape(6, -1).max(1), rtol=1e-6)
    assert blurred.std() < hm.std()


def test_offset_decoding_adds_the_field_at_the_peak():
    hm = gaussian_maps([(20.0, 30.0), (10.0, 12.0)])
    offsets = np.zeros((1, 2, 2, 64, 48), dtype=np.float32)
    offsets[0, 0, :, 30, 20] = [0.3, -0.4]
    offsets[0, 1, :, 12, 10] = [-0.25, 0.1]
    offsets[0, 0, :, 0, 0] = 9  # elsewhere: ignored
    coords, _ = decode_offset(hm, offsets)
    np.testing.assert_allclose(coords[0], [[20.3, 29.6], [9.75, 12.1]], atol=1e-6)
    coords, _ = decode_offset(hm, offsets, radius=2.0)
    np.testing.assert_allclose(coords[0, 0], [20.6, 29.2], atol=1e-6)


def test_unknown_or_incomplete_decoders_are_refused():
    hm = gaussian_maps([(20.0, 30.0)])
    with pytest.raises(ValueError, match="offset field"):
        decode(hm, "offset")
    with pytest.raises(ValueError, match="unknown decoder"):
        decode(hm, "soft-argmax")


def test_blur_size_follows_mmpose_configs():
    from lrp.topdown import blur_kernel_for

    assert blur_kernel_for(48) == 11 and blur_kernel_for(72) == 17  # 256x192 and 384x288 inputs
    assert blur_kernel_for(12) == 3  # 64x48 input: a blur that fits the map
