"""`lrp pose --crop-sr MODEL`: people cut at a low crop size, super-resolved to the model input,
keypoints mapped back through both maps (CAL's crop-level SR)."""

from __future__ import annotations

import json

import numpy as np
import torch

from lrp.resize import resize_image
from lrp.topdown import TopDown, apply_affine, crop_to_image, warp_crops
from tests.conftest import run_lrp
from test_pose import tiny_model, val4_doc  # noqa: F401  (fixtures)
from test_topdown import _tiny_hrnet


def bicubic(s):
    return lambda arrays: [resize_image(a, float(s), "bicubic") for a in arrays]


def test_sr_crops_are_the_upscaled_low_crops_and_keypoints_go_through_both_maps():
    img = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (120, 100, 3), dtype=np.uint8))
    s, low = 4, (12, 16)
    run = TopDown(_tiny_hrnet(), (48, 64), crop_sr=(bicubic(s), low, s))
    c, sc = run.centers_scales([[30, 20, 40, 60], [5, 50, 20, 30]])
    crops = run.crops(img, c, sc)
    lows = warp_crops(img, crop_to_image(c, sc, low, inverse_of_forward=True), low)
    want = np.stack(bicubic(s)(list(lows.permute(0, 2, 3, 1).to(torch.uint8).numpy())))
    np.testing.assert_array_equal(crops.permute(0, 2, 3, 1).numpy(), want)
    # A point of the SR crop: low-crop pixel (i + 0.5)/s - 0.5, then the low crop's map.
    points = np.array([[[0.0, 0.0], [47.0, 63.0], [13.25, 40.5]]] * 2)
    through_low = apply_affine((points + 0.5) / s - 0.5, crop_to_image(c, sc, low))
    as_if_high = apply_affine(points, crop_to_image(c, sc, (48, 64))) + run.sr_shift(c, sc)[:, None]
    np.testing.assert_allclose(as_if_high, through_low, atol=1e-9)
    assert np.abs(run.sr_shift(c, sc)).min() > 0.1  # the shift is real: 1.5 input pixels at x4
    kps = run.predict(crops, c, sc)
    plain = TopDown(_tiny_hrnet(), (48, 64)).predict(crops, c, sc)
    np.testing.assert_allclose(kps[..., :2] - plain[..., :2], np.repeat(run.sr_shift(c, sc)[:, None], 17, axis=1), atol=1e-9)


def test_lrp_pose_crop_sr_end_to_end_and_bad_input(runner, tiny_model, val4_doc):
    path, _ = val4_doc
    base = ["pose", str(path), "-q", "--device", "cpu", "--model", tiny_model]
    res = run_lrp(runner, [*base, "--crop-sr", "bicubic"])
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    args = out["lrp"]["history"][-1]["args"]
    assert len(out["lrp"]["poses"]) == 12 and args["crop_sr"] == "bicubic" and args["crop_size"] == [12, 16]
    plain = json.loads(run_lrp(runner, base).stdout)["lrp"]["poses"]
    assert [p["keypoints"] for p in out["lrp"]["poses"]] != [p["keypoints"] for p in plain]
    bad = [
        (["--crop-sr", "srmdnf-x2", "--crop-size", "12x16"], "--crop-sr srmdnf-x2: x2 from 12x16 gives 24x32, not the model input 48x64"),
        (["--crop-sr", "bicubic", "--crop-size", "10x16"], "--crop-sr bicubic: no integer factor takes 10x16, not the model input 48x64"),
        (["--crop-sr", "bicubic", "--input-size", "37x50"], "--crop-sr bicubic: x4 from 9x12 gives 36x48, not the model input 37x50"),
        (["--crop-size", "12x16"], "--crop-size needs --crop-sr MODEL"),
        (["--crop-sr", "bicubic", "--decode", "udp"], "do not compose"),
        (["--crop-sr", "hrnet-w32-256x192"], "unknown model 'hrnet-w32-256x192'"),
    ]
    for extra, message in bad:
        res = run_lrp(runner, [*base, *extra])
        lines = res.stderr.strip().splitlines()
        assert res.exit_code == 2 and len(lines) == 1 and lines[0].startswith("lrp pose: error: ") and message in lines[0], (extra, lines)
