"""The top-down plumbing: boxes, affine maps, crops (OpenCV semantics), flip test, NMS."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lrp.topdown import (
    FLIP_INDEX,
    TopDown,
    box_to_center_scale,
    clean_gt_box,
    crop_to_image,
    flip_average,
    heatmap_to_image,
    invert_affine,
    oks_iou,
    oks_nms,
    pose_area,
    rescore,
    warp_crops,
)

# Recorded with OpenCV 4.10 (`cv2.warpAffine(IMG, FORWARD, (8, 6), flags=cv2.INTER_LINEAR)`), the
# fixed-point warp the official HRNet results were made with. OpenCV 5 samples at unrounded
# coordinates and gives different grey levels on this input, so the test pins the 4.x path.
IMG = [[[139, 74, 229], [241, 169, 65], [6, 160, 149], [106, 38, 175], [188, 205, 175], [229, 98, 249], [10, 148, 95], [86, 147, 198], [66, 39, 106], [213, 171, 45], [167, 57, 69]], [[81, 55, 14], [153, 178, 215], [76, 52, 39], [250, 72, 215], [50, 161, 223], [112, 172, 161], [233, 38, 17], [89, 1, 221], [6, 242, 127], [143, 6, 60], [210, 94, 25]], [[166, 33, 249], [189, 12, 204], [33, 57, 124], [30, 199, 149], [202, 119, 72], [220, 3, 209], [122, 136, 147], [77, 133, 82], [115, 87, 162], [230, 70, 71], [240, 62, 47]], [[184, 31, 34], [63, 65, 146], [197, 142, 253], [81, 133, 240], [113, 30, 247], [103, 122, 31], [19, 42, 129], [141, 136, 33], [149, 161, 0], [178, 141, 107], [35, 107, 130]], [[72, 27, 217], [254, 99, 13], [195, 206, 59], [228, 235, 202], [183, 47, 69], [179, 82, 35], [71, 159, 110], [121, 77, 87], [3, 126, 44], [253, 233, 225], [90, 119, 137]], [[120, 30, 55], [33, 165, 87], [216, 229, 167], [3, 41, 109], [203, 129, 219], [63, 101, 207], [156, 27, 220], [93, 29, 143], [200, 63, 11], [11, 180, 219], [113, 190, 87]], [[34, 9, 133], [29, 61, 36], [244, 192, 207], [131, 254, 67], [99, 248, 47], [71, 89, 119], [137, 85, 246], [206, 214, 129], [203, 234, 113], [121, 206, 210], [200, 248, 20]], [[161, 52, 114], [255, 112, 206], [54, 157, 131], [133, 69, 42], [68, 243, 24], [51, 127, 8], [205, 30, 97], [79, 35, 93], [63, 131, 188], [69, 254, 233], [238, 4, 3]], [[167, 155, 225], [24, 84, 68], [65, 49, 124], [147, 17, 248], [94, 4, 41], [177, 159, 126], [192, 225, 86], [246, 90, 51], [34, 231, 145], [184, 128, 238], [153, 94, 63]]]
FORWARD = [[0.83, 0.0, 1.37], [0.0, 0.83, -0.61]]
OPENCV4_OUT = [[[0, 0, 0], [54, 34, 38], [155, 147, 150], [62, 82, 70], [194, 80, 206], [106, 165, 201], [163, 101, 96], [108, 44, 176]], [[0, 0, 0], [90, 19, 132], [180, 25, 212], [40, 56, 121], [67, 180, 142], [200, 81, 128], [163, 83, 166], [89, 126, 101]], [[0, 0, 0], [94, 17, 35], [111, 60, 110], [193, 149, 220], [107, 131, 232], [121, 64, 149], [63, 83, 88], [114, 112, 60]], [[0, 0, 0], [50, 16, 91], [156, 98, 69], [201, 211, 94], [157, 154, 162], [171, 80, 111], [116, 103, 126], [109, 72, 115]], [[0, 0, 0], [40, 10, 56], [41, 84, 68], [225, 205, 185], [86, 166, 91], [116, 158, 135], [114, 74, 203], [154, 117, 157]], [[0, 0, 0], [73, 23, 67], [181, 85, 152], [105, 164, 150], [124, 135, 45], [68, 197, 32], [134, 74, 94], [128, 72, 109]]]


def test_clean_gt_box_follows_the_official_rules():
    assert clean_gt_box([10, 20, 30, 40], 100, 100, area=5) == [10, 20, 29, 39]  # inclusive ends
    assert clean_gt_box([-5, -5, 30, 40], 100, 100, area=5) == [0, 0, 29, 39]
    assert clean_gt_box([90, 90, 30, 40], 100, 100, area=5) == [90, 90, 9, 9]  # clipped to W-1
    assert clean_gt_box([150, 10, 30, 40], 100, 100, area=5) is None  # right of the image
    assert clean_gt_box([10, 20, 30, 40], 100, 100, area=0) is None  # no area
    assert clean_gt_box([10, 20, 0.5, 0.5], 100, 100, area=1) == [10, 20, 0, 0]  # a point is kept


def test_box_to_center_scale_fixes_the_aspect_and_pads():
    c, s = box_to_center_scale([[0, 0, 30, 40], [0, 0, 90, 40]], aspect_ratio=0.75)
    np.testing.assert_allclose(c, [[15, 20], [45, 20]])
    np.testing.assert_allclose(s, [[30 / 200 * 1.25, 40 / 200 * 1.25], [90 / 200 * 1.25, 120 / 200 * 1.25]])
    c, s = box_to_center_scale([[0, 0, 10, 40]], aspect_ratio=0.75)  # too thin: width grows
    np.testing.assert_allclose(s, [[30 / 200 * 1.25, 40 / 200 * 1.25]])


def test_crop_map_is_the_official_similarity():
    c, s = np.array([[100.0, 80.0]]), np.array([[0.9, 1.2]])
    m = crop_to_image(c, s, (192, 256))[0]
    np.testing.assert_allclose(m[:, :2], np.eye(2) * 180 / 192, rtol=1e-6)
    np.testing.assert_allclose(m @ [96, 128, 1], [100, 80], atol=1e-4)  # centre to centre
    fwd_inv = crop_to_image(c, s, (192, 256), inverse_of_forward=True)[0]
    np.testing.assert_allclose(fwd_inv, m, atol=1e-9)
    # Heatmap coordinates (stride 4) land on the same image points as crop coordinates.
    hm = heatmap_to_image(np.array([[[24.0, 32.0]]]), c, s, (48, 64))
    np.testing.assert_allclose(hm[0, 0], [100, 80], atol=1e-4)


def test_udp_map_aligns_corners():
    c, s = np.array([[100.0, 80.0]]), np.array([[0.96, 1.28]])
    m = crop_to_image(c, s, (48, 64), udp=True)[0]
    np.testing.assert_allclose(m @ [0, 0, 1], [100 - 96, 80 - 128])
    np.testing.assert_allclose(m @ [47, 63, 1], [100 + 96, 80 + 128])


def test_invert_affine_inverts():
    m = np.array([[[0.7, 0.1, 3.0], [-0.2, 1.3, -4.0]]])
    both = np.vstack([invert_affine(m)[0], [0, 0, 1]]) @ np.vstack([m[0], [0, 0, 1]])
    np.testing.assert_allclose(both, np.eye(3), atol=1e-12)


def test_warp_crops_reproduces_opencv4_bit_for_bit():
    img = torch.tensor(IMG, dtype=torch.uint8)
    crop_to_img = invert_affine(np.array([FORWARD]))
    out = warp_crops(img, crop_to_img, (8, 6))[0].permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(out, np.array(OPENCV4_OUT))


def test_warp_crops_copies_pixels_and_blacks_out_the_outside():
    img = torch.arange(5 * 7 * 3, dtype=torch.int64).remainder(256).to(torch.uint8).reshape(5, 7, 3)
    shift = np.array([[[1.0, 0.0, 2.0], [0.0, 1.0, 1.0]], [[1.0, 0.0, 100.0], [0.0, 1.0, 0.0]]])
    out = warp_crops(img, shift, (4, 3))
    np.testing.assert_array_equal(out[0].permute(1, 2, 0).numpy(), img[1:4, 2:6].numpy())
    assert out[1].abs().sum() == 0  # entirely outside: black
    half = np.array([[[1.0, 0.0, 0.5], [0.0, 1.0, 0.0]]])  # halfway between two columns
    got = warp_crops(img, half, (2, 1))[0, :, 0, 0]
    want = np.floor((img[0, 0].double() + img[0, 1].double()).numpy() / 2 + 0.5)
    np.testing.assert_array_equal(got.numpy(), want)


def test_warp_crops_of_no_people():
    img = torch.zeros((4, 4, 3), dtype=torch.uint8)
    assert warp_crops(img, np.zeros((0, 2, 3)), (8, 6)).shape == (0, 3, 6, 8)


def test_flip_average_shifts_like_the_official_code():
    hm = torch.zeros((1, 17, 2, 4))
    flipped = torch.zeros((1, 17, 2, 4))
    flipped[0, 1, 0, 0] = 1.0  # left eye seen at column 0 of the mirrored crop
    out = flip_average(hm, flipped)
    # back to the crop: column 3, right eye (2); shifted one column right -> out of the map.
    assert out.sum() == 0
    flipped[0, 1, 0, 0], flipped[0, 1, 0, 2] = 0.0, 1.0  # column 2 -> 1 -> shifted to 2
    out = flip_average(hm, flipped)
    assert out[0, 2, 0, 2] == 0.5 and out.sum() == 0.5
    no_shift = flip_average(hm, flipped, shift=False)
    assert no_shift[0, 2, 0, 1] == 0.5
    assert sorted(FLIP_INDEX) == list(range(17)) and all(FLIP_INDEX[FLIP_INDEX[i]] == i for i in range(17))


def test_flip_keeps_column_zero():
    hm = torch.zeros((1, 17, 1, 3))
    flipped = torch.zeros((1, 17, 1, 3))
    flipped[0, 0, 0, 2] = 1.0  # nose at the last column -> column 0 after flipping back
    out = flip_average(hm, flipped)
    assert out[0, 0, 0, 0] == 0.5 and out[0, 0, 0, 1] == 0.5  # column 0 stays, copy shifted to 1


def test_rescore_averages_confident_joints():
    scores = np.array([[0.1] * 15 + [0.5, 0.9], [0.1] * 17])
    np.testing.assert_allclose(rescore(np.array([0.8, 0.6]), scores), [0.8 * 0.7, 0.0])


def test_oks_nms_drops_duplicates_and_keeps_distinct_people():
    base = np.zeros((17, 3))
    base[:, 0] = np.linspace(10, 60, 17)
    base[:, 1] = np.linspace(20, 90, 17)
    near = base.copy()
    near[:, :2] += 0.5
    far = base.copy()
    far[:, 0] += 300
    kps = np.stack([base, near, far])
    areas = np.full(3, 5000.0)
    assert oks_iou(base, kps[1:], 5000.0, areas[1:])[0] > 0.9
    assert oks_nms(kps, np.array([0.5, 0.9, 0.7]), areas, 0.9) == [1, 2]  # best first
    assert sorted(oks_nms(kps, np.array([0.5, 0.9, 0.7]), areas, 1.0)) == [0, 1, 2]
    assert oks_nms(kps[:0], np.zeros(0), areas[:0]) == []


def test_pose_area_is_the_padded_box():
    np.testing.assert_allclose(pose_area(np.array([[0.5, 0.25]])), [100 * 50])


def _tiny_hrnet():
    from lrp.models.hrnet import PoseHighResolutionNet

    torch.manual_seed(0)
    return PoseHighResolutionNet(width=8, stage_modules=(1, 1, 1), stage_blocks=1, layer1_blocks=1).eval()


def test_topdown_batched_equals_one_crop_at_a_time():
    img = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (90, 70, 3), dtype=np.uint8))
    boxes = [[5, 5, 30, 60], [20, 10, 40, 70], [-10, 40, 30, 30]]
    batched = TopDown(_tiny_hrnet(), (48, 64), batch_size=8)
    single = TopDown(_tiny_hrnet(), (48, 64), batch_size=1)
    c, s = batched.centers_scales(boxes)
    a = batched.predict(batched.crops(img, c, s), c, s)
    b = single.predict(single.crops(img, c, s), c, s)
    assert a.shape == (3, 17, 3)
    np.testing.assert_allclose(a, b, atol=1e-4)
    no_flip = TopDown(_tiny_hrnet(), (48, 64), flip=False).predict(batched.crops(img, c, s), c, s)
    assert not np.allclose(no_flip, a)


@pytest.mark.parametrize("decoder", ["standard", "dark", "udp"])
def test_topdown_keypoints_stay_near_their_box(decoder):
    img = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (120, 100, 3), dtype=np.uint8))
    run = TopDown(_tiny_hrnet(), (48, 64), decoder=decoder)
    boxes = [[30, 20, 40, 60]]
    c, s = run.centers_scales(boxes)
    kps = run.predict(run.crops(img, c, s), c, s)[0]
    assert np.isfinite(kps).all()
    if decoder != "udp":  # UDP's Newton step is not bounded (as in MMPose); random maps can push it out
        half = s[0] * 200 / 2
        assert np.all(np.abs(kps[:, :2] - c[0]) <= half + 1e-6)
