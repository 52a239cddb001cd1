"""Crop semantics (`--warp`): our device warp against the real `cv2.warpAffine` installed here.

The official HRNet inference cuts crops with `get_affine_transform` + `cv2.warpAffine(INTER_LINEAR)`
of whatever OpenCV is installed. The test extra pins opencv-python-headless 5.0.0.93, so the
installed generation is checked here, exactly, on real COCO crops; the other generation (the
fixed-point OpenCV 3.4/4.x warp) is proven by the fixture recorded under OpenCV 4.10 in
test_topdown.py (`test_warp_crops_reproduces_opencv4_bit_for_bit`) and, where a second install
is named by `LRP_OPENCV4_SITE` (a folder holding a 4.x `cv2`, e.g. from `pip install --target`),
end to end against the official pipeline run under that OpenCV in a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

import official_hrnet as official
from test_pose import tiny_model, val4_doc  # noqa: F401  (fixtures)
from lrp.topdown import FLIP_INDEX, TopDown, box_to_center_scale, clean_gt_box, crop_to_image, fma32, resolve_warp, warp_crops

cv2 = pytest.importorskip("cv2")
INSTALLED = resolve_warp("auto")
OTHER = "opencv4" if INSTALLED == "opencv5" else "opencv5"


def val4_people(coco_val4):
    """(RGB image, GT box) of every person with keypoints in coco-val-4, as the official loader."""
    data = json.loads((coco_val4 / "person_keypoints.json").read_text())
    images = {i["id"]: i for i in data["images"]}
    cache = {}
    for ann in data["annotations"]:
        if max(ann.get("keypoints") or [0]) == 0:
            continue
        img = images[ann["image_id"]]
        if img["id"] not in cache:
            bgr = cv2.imread(str(coco_val4 / "images" / img["file_name"]), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
            cache[img["id"]] = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        yield img["id"], cache[img["id"]], clean_gt_box(ann["bbox"], img["width"], img["height"], ann["area"])


def test_auto_follows_the_installed_opencv(monkeypatch):
    import lrp.topdown as topdown

    assert INSTALLED == ("opencv4" if int(cv2.__version__.split(".")[0]) < 5 else "opencv5")
    for major, want in ((None, "opencv5"), (3, "opencv4"), (4, "opencv4"), (5, "opencv5"), (6, "opencv5")):
        monkeypatch.setattr(topdown, "installed_opencv_major", lambda major=major: major)
        assert resolve_warp("auto") == want
    assert resolve_warp("opencv4") == "opencv4"
    with pytest.raises(ValueError, match="unknown warp"):
        resolve_warp("opencv3")


def test_fma32_rounds_once():
    rng = np.random.default_rng(0)
    a = rng.uniform(-1, 1, 4000).astype(np.float32)
    b = (rng.uniform(-300, 300, 4000)).astype(np.float32)
    c = rng.uniform(-300, 300, 4000).astype(np.float32)
    # Hard cases: products that nearly cancel c, where a double rounding would show.
    c[:1000] = -(a[:1000].astype(np.float64) * b[:1000]).astype(np.float32)
    got = fma32(*(torch.from_numpy(v) for v in (a, b, c))).numpy()
    exact = np.array([np.float32(float(Fraction(float(x)) * Fraction(float(y)) + Fraction(float(z)))) for x, y, z in zip(a, b, c)])
    # float(Fraction) rounds to nearest double first; tie-free here, so that is the float32 fma.
    np.testing.assert_array_equal(got, exact)
    plain = (a * b + c).astype(np.float32)
    assert (plain != got).any()  # the separate rounding really is different somewhere


@pytest.mark.parametrize("size", [(192, 256), (288, 384), (48, 64), (96, 128), (37, 50)])
def test_crops_equal_the_installed_cv2_warpaffine(coco_val4, size):
    """Every crop value of every coco-val-4 person, at the official sizes, the CAL sizes and an
    odd width (37: the columns after the last SIMD block of OpenCV 5 take its scalar path)."""
    equal = total = 0
    other_equal = 0
    for _, rgb, box in val4_people(coco_val4):
        c, s = box_to_center_scale([box], size[0] / size[1])
        want = official.crop(rgb, c[0], s[0], size)
        image = torch.from_numpy(rgb)
        for warp in (INSTALLED, OTHER):
            m = crop_to_image(c, s, size, inverse_of_forward=True, warp=warp)
            got = warp_crops(image, m, size, warp)[0].permute(1, 2, 0).numpy().astype(np.uint8)
            if warp == INSTALLED:
                np.testing.assert_array_equal(got, want)
                equal += int((got == want).sum())
                total += want.size
            else:
                other_equal += int((got == want).sum())
    assert equal == total > 0
    # The other generation really differs (the reason for --warp): about 12.5% of the values.
    assert other_equal < 0.95 * total


def tiny_hrnet_with_stats(seed=0, num_joints=17):
    """A small HRNet whose BN running statistics, affine parameters and head bias are random."""
    from lrp.models.hrnet import BatchNorm2d, PoseHighResolutionNet

    torch.manual_seed(seed)
    net = PoseHighResolutionNet(width=8, stage_modules=(1, 1, 1), stage_blocks=1, layer1_blocks=1, num_joints=num_joints).eval()
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, BatchNorm2d):
                n = module.running_mean.numel()
                module.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
                module.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
                module.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                module.bias.copy_(torch.randn(n, generator=gen) * 0.1)
        net.final_layer.bias.copy_(torch.randn(net.final_layer.bias.numel(), generator=gen) * 0.1)
    return net


def official_keypoints(net, crops, centers, scales):
    """The official test on official crops: ToTensor + Normalize, flip test, get_final_preds."""
    x = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    x = (x - mean) / std
    with torch.no_grad():
        plain = net(x).numpy()
        flipped = net(torch.flip(x, [3])).numpy()
    pairs = [(i, FLIP_INDEX[i]) for i in range(17) if FLIP_INDEX[i] > i]
    heatmaps = official.flip_test(plain, flipped, pairs)
    return official.final_preds(heatmaps, centers, scales)


def ours(net, coco_val4, warp, size):
    run = TopDown(net, size, warp=warp, batch_size=64)
    people = list(val4_people(coco_val4))
    kps, centers, scales = [], [], []
    for _, rgb, box in people:
        c, s = run.centers_scales([box])
        kps.append(run.predict(run.crops(torch.from_numpy(rgb), c, s), c, s)[0])
        centers.append(c[0])
        scales.append(s[0])
    return people, np.stack(kps), np.array(centers), np.array(scales)


def assert_same_keypoints(got, want_xy, want_scores):
    dist = np.linalg.norm(got[..., :2] - want_xy, axis=-1)
    print(f"max keypoint distance {dist.max():.2e} px, score {np.abs(got[..., 2] - want_scores).max():.2e}")
    assert dist.max() <= 0.05, f"max {dist.max():.4f} px"
    np.testing.assert_allclose(got[..., 2], want_scores, rtol=0, atol=1e-5)
    return dist.max()


def test_hrnet_matches_the_official_pipeline_under_the_installed_opencv(coco_val4):
    size = (192, 256)
    net = tiny_hrnet_with_stats()
    people, kps, centers, scales = ours(net, coco_val4, INSTALLED, size)
    crops = [official.crop(rgb, c, s, size) for (_, rgb, _), c, s in zip(people, centers, scales)]
    want_xy, want_scores = official_keypoints(net, crops, centers, scales)
    assert len(people) == 12
    assert_same_keypoints(kps, want_xy, want_scores)
    # The other generation's crops move keypoints of this random model: --warp matters.
    other = ours(net, coco_val4, OTHER, size)[1]
    assert (np.linalg.norm(other[..., :2] - want_xy, axis=-1) > 0.05).sum() >= 1


def test_hrnet_matches_the_official_pipeline_under_opencv4(coco_val4, tmp_path):
    """The official pipeline's crops cut by a second, 4.x OpenCV in a subprocess."""
    site = os.environ.get("LRP_OPENCV4_SITE")
    if INSTALLED == "opencv4":
        pytest.skip("the installed OpenCV is 4.x: the test above covers it")
    if not site or not Path(site, "cv2").is_dir():
        pytest.skip("set LRP_OPENCV4_SITE to a folder with a 4.x cv2 (pip install --target DIR opencv-python-headless==4.10.0.84)")
    size = (192, 256)
    net = tiny_hrnet_with_stats()
    people, kps, centers, scales = ours(net, coco_val4, "opencv4", size)
    ids = sorted({iid for iid, _, _ in people})
    images = {f"image{iid}": rgb for iid, rgb, _ in people}
    src, out = tmp_path / "in.npz", tmp_path / "out.npz"
    np.savez(src, which=np.array([iid for iid, _, _ in people]), centers=centers, scales=scales, size=np.array(size), **images)
    env = {**os.environ, "PYTHONPATH": site}
    subprocess.run([sys.executable, official.__file__, str(src), str(out)], check=True, env=env)
    res = np.load(out)
    assert str(res["version"]).startswith("4.") and ids
    want_xy, want_scores = official_keypoints(net, list(res["crops"]), centers, scales)
    assert_same_keypoints(kps, want_xy, want_scores)


def test_lrp_pose_records_the_resolved_warp(runner, tiny_model, val4_doc):
    from tests.conftest import run_lrp

    path, _ = val4_doc
    got = {}
    for warp in ("auto", "opencv4", "opencv5"):
        res = run_lrp(runner, ["pose", str(path), "-q", "--device", "cpu", "--model", tiny_model, "--warp", warp])
        assert res.exit_code == 0, res.stderr
        out = json.loads(res.stdout)
        got[warp] = out["lrp"]["history"][-1]["args"]["warp"], [p["keypoints"] for p in out["lrp"]["poses"]]
    assert got["auto"][0] == INSTALLED and got["opencv4"][0] == "opencv4" and got["opencv5"][0] == "opencv5"
    assert got["auto"][1] == got[INSTALLED][1]
    res = run_lrp(runner, ["pose", str(path), "-q", "--device", "cpu", "--model", tiny_model, "--warp", "opencv3"])
    assert res.exit_code == 2 and res.stderr.strip().splitlines()[-1] == "lrp pose: error: --warp 'opencv3': expected auto or one of opencv4, opencv5"
