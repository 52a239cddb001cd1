"""Codec objects (`lrp.codecs`), the heads they read (SimCC, SR head) and the model checks of
`lrp pose` (a codec the head cannot feed, an input size the weights do not take)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lrp.codecs import CODECS, MaxPoolCodec, OffsetCodec, PlainCodec, SimCCCodec, StandardCodec, codec_for
from lrp.models import REGISTRY
from lrp.models.hrnet import HRNetWithHead, PoseHighResolutionNet
from lrp.models.pose_zoo import PoseSpec, convert_hrnet_with_head, pose_traits
from lrp.topdown import TopDown, argmax_heatmaps, blur_kernel_for, crop_to_image, decode_dark, decode_standard, decode_udp, flip_average, heatmap_to_image
from lrp.models import WeightsInfo
from tests.conftest import run_lrp
from test_pose import tiny_model, val4_doc  # noqa: F401  (fixtures)

TINY = dict(width=8, stage_modules=(1, 1, 1), stage_blocks=1, layer1_blocks=1)


def tiny_hrnet(seed=0):
    torch.manual_seed(seed)
    return PoseHighResolutionNet(**TINY).eval()


@pytest.mark.parametrize("name, refine, udp", [("standard", decode_standard, False), ("dark", decode_dark, False), ("udp", decode_udp, True)])
def test_topdown_codecs_give_the_pinned_decoders_results(name, refine, udp):
    """The codec objects are the same numerics as before: flip test + decoder + back-mapping."""
    img = torch.from_numpy(np.random.default_rng(3).integers(0, 256, (120, 100, 3), dtype=np.uint8))
    net = tiny_hrnet()
    run = TopDown(net, (48, 64), decoder=name)
    c, s = run.centers_scales([[30, 20, 40, 60], [0, 0, 50, 90]])
    crops = run.crops(img, c, s)
    got = run.predict(crops, c, s)
    with torch.no_grad():
        x = (crops / 255.0 - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        hm = flip_average(net(x), net(x.flip(-1)), shift=not udp).numpy()
    coords, scores = refine(hm, blur_kernel_for(12)) if name != "standard" else refine(hm)
    want = np.concatenate([heatmap_to_image(coords, c, s, (12, 16), udp=udp), scores[..., None]], axis=-1)
    np.testing.assert_array_equal(got, want)


def test_plain_is_the_argmax_and_maxpool_finds_the_same_peak():
    rng = np.random.default_rng(0)
    for shape in ((3, 17, 64, 48), (2, 5, 256, 192), (2, 4, 13, 11)):  # heatmaps at stride 4, at input size, odd
        hm = rng.standard_normal(shape).astype(np.float32)  # continuous: no ties
        plain_xy, plain_s = PlainCodec()._locate(hm)
        want_xy, want_s = argmax_heatmaps(hm)
        np.testing.assert_array_equal(plain_xy, want_xy)
        np.testing.assert_array_equal(plain_s, want_s)
        for kernel in (1, 2, 4, 8):
            xy, s = MaxPoolCodec(kernel)._locate(hm)
            np.testing.assert_array_equal(xy, plain_xy)
            np.testing.assert_array_equal(s, plain_s)
    coords, _ = PlainCodec()._locate(np.full((1, 1, 8, 8), -1.0, np.float32))
    assert np.all(coords == 0)  # no positive peak: the origin, as get_max_preds


def test_standard_codec_maps_back_to_the_image():
    hm = np.zeros((1, 17, 64, 48), np.float32)
    hm[0, :, 32, 24] = 1.0
    c, s = np.array([[100.0, 80.0]]), np.array([[0.96, 1.28]])
    kp = StandardCodec().decode(hm, c, s, (192, 256))
    np.testing.assert_allclose(kp[0, :, :2], np.tile([100.0, 80.0], (17, 1)), atol=1e-4)
    np.testing.assert_array_equal(kp[0, :, 2], 1.0)


def test_offset_codec_adds_the_offset_at_the_peak():
    hm = np.zeros((1, 2, 16, 12), np.float32)
    hm[0, 0, 5, 7] = hm[0, 1, 10, 2] = 1.0
    off = np.zeros((1, 2, 2, 16, 12), np.float32)
    off[0, 0, :, 5, 7] = [0.3, -0.4]
    off[0, 1, :, 10, 2] = [-0.2, 0.45]
    c, s = np.array([[6.0 * 16, 8.0 * 16]]), np.array([[12 * 16 / 200, 16 * 16 / 200]])  # heatmap pixel = 16 px
    kp = OffsetCodec().decode((hm, off), c, s, (48, 64))
    want_hm = np.array([[7.3, 4.6], [1.8, 10.45]])
    np.testing.assert_allclose(kp[0, :, :2], heatmap_to_image(want_hm[None], c, s, (12, 16))[0], atol=1e-5)


def test_simcc_codec_reads_the_bins_and_takes_the_smaller_maximum():
    x = np.full((1, 2, 96), -1.0, np.float32)
    y = np.full((1, 2, 128), -1.0, np.float32)
    x[0, 0, 31], y[0, 0, 100], x[0, 1, 4], y[0, 1, 7] = 0.9, 0.6, 0.2, 0.8
    c, s = np.array([[24.0, 32.0]]), np.array([[48 / 200, 64 / 200]])  # the crop is the image
    kp = SimCCCodec(split_ratio=2.0).decode((x, y), c, s, (48, 64))
    want = np.array([[15.5, 50.0], [2.0, 3.5]])
    np.testing.assert_allclose(kp[0, :, :2], apply(want, c, s), atol=1e-5)
    np.testing.assert_allclose(kp[0, :, 2], [0.6, 0.2])


def apply(xy, c, s):
    m = crop_to_image(c, s, (48, 64))[0]
    return xy @ m[:, :2].T + m[:, 2]


def test_simcc_head_has_mmposes_keys_on_the_official_backbone(reference_dir):
    official = json.loads((reference_dir / "checkpoint-keys" / "hrnet_w32.json").read_text())["keys"]
    model = HRNetWithHead("simcc", width=32, input_size=(192, 256))
    own = {k: list(v.shape) for k, v in model.state_dict().items()}
    backbone = {k[len("backbone."):]: v for k, v in own.items() if k.startswith("backbone.")}
    want = {k: v for k, v in official.items() if not k.endswith("num_batches_tracked") and not k.startswith("final_layer.")}
    assert backbone == want
    head = {k: v for k, v in own.items() if k.startswith("head.")}
    assert head == {
        "head.final_layer.weight": [17, 32, 1, 1], "head.final_layer.bias": [17],
        "head.mlp_head_x.weight": [384, 48 * 64], "head.mlp_head_x.bias": [384],
        "head.mlp_head_y.weight": [512, 48 * 64], "head.mlp_head_y.bias": [512],
    }


def test_mmpose_simcc_checkpoint_converts_and_loads(tmp_path):
    from lrp.device import load_strict

    model = HRNetWithHead("simcc", input_size=(32, 32), **TINY)
    state = {("keypoint_head." + k[5:] if k.startswith("head.") else k): v for k, v in model.state_dict().items()}
    state["backbone.bn1.num_batches_tracked"] = torch.tensor(7)
    torch.save({"state_dict": state}, tmp_path / "simcc.pth")
    fresh = HRNetWithHead("simcc", input_size=(32, 32), **TINY)
    load_strict(fresh, convert_hrnet_with_head(tmp_path / "simcc.pth"), "simcc.pth")
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), model.state_dict().values()))


@pytest.mark.parametrize("head, codec", [("simcc", "simcc"), ("sr", "standard"), ("sr", "maxpool")])
def test_other_heads_run_top_down(head, codec):
    torch.manual_seed(0)
    net = HRNetWithHead(head, input_size=(48, 64), **TINY).eval()
    with torch.no_grad():
        out = net(torch.zeros(2, 3, 64, 48))
    if head == "sr":
        assert out.shape == (2, 17, 64, 48)  # heatmaps at the input resolution
    else:
        assert out[0].shape == (2, 17, 96) and out[1].shape == (2, 17, 128)
    run = TopDown(net, (48, 64), kind="simcc" if head == "simcc" else "heatmap", decoder=codec)
    img = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (120, 100, 3), dtype=np.uint8))
    c, s = run.centers_scales([[30, 20, 40, 60]])
    kps = run.predict(run.crops(img, c, s), c, s)
    half = s[0] * 200 / 2
    assert kps.shape == (1, 17, 3) and np.all(np.abs(kps[0, :, :2] - c[0]) <= half + 1e-6)


def test_every_pose_entry_names_codecs_that_read_its_head():
    for spec in REGISTRY.values():
        if spec.task != "pose":
            continue
        traits = pose_traits(spec)
        assert traits.codecs, spec.name
        for name in traits.codecs:
            if traits.head in ("regression", "posenet"):  # heads that read themselves
                assert codec_for(traits.head, name).reads == traits.head, (spec.name, name)
            else:
                assert CODECS[name].reads in (traits.head, "heatmap") and (CODECS[name].reads != "heatmap" or "heatmap" in traits.head), (spec.name, name)
    sizes = {s.name: pose_traits(s).input_sizes for s in REGISTRY.values() if s.task == "pose"}
    assert sizes["hrnet-w32-64x48"] == ((48, 64),) and sizes["hrnet-w32-128x96"] == ((96, 128),)
    assert all(sizes[f"hrnet-w32-{n}x{n}"] == ((n, n),) for n in (32, 64, 128))


TINY_SIMCC = PoseSpec(
    name="simcc-tiny-test",
    task="pose",
    arch="simcc-tiny-test",
    builder="lrp.models.hrnet:HRNetWithHead",
    kwargs={"head": "simcc", "input_size": [48, 64], **{k: list(v) if isinstance(v, tuple) else v for k, v in TINY.items()}},
    weights=WeightsInfo(file="simcc-tiny-test.safetensors", source="made by the test", licence="-", trained_on="nothing"),
    head="simcc",
    codecs=("simcc",),
    input_sizes=((48, 64),),
)


def test_simcc_model_end_to_end_and_bad_codecs(runner, monkeypatch, tmp_path, val4_doc, tiny_model):
    from safetensors.torch import save_file

    monkeypatch.setitem(REGISTRY, TINY_SIMCC.name, TINY_SIMCC)
    torch.manual_seed(0)
    save_file({k: v.contiguous() for k, v in TINY_SIMCC.build().state_dict().items()}, str(tmp_path / "weights" / TINY_SIMCC.weights.file))
    path, _ = val4_doc
    base = ["pose", str(path), "-q", "--device", "cpu"]
    res = run_lrp(runner, [*base, "--model", TINY_SIMCC.name, "--decode", "simcc"])
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert len(out["lrp"]["poses"]) == 12 and out["lrp"]["history"][-1]["args"]["decode"] == "simcc"
    bad = [
        (["--model", tiny_model, "--decode", "simcc"], "--decode simcc: hrnet-tiny-test has a heatmap head (--decode simcc reads a simcc head)"),
        (["--model", TINY_SIMCC.name, "--decode", "dark"], "--decode dark: simcc-tiny-test has a simcc head"),
        (["--model", TINY_SIMCC.name, "--decode", "simcc", "--input-size", "64x64"], "--input-size 64x64: simcc-tiny-test runs at 48x64 only"),
        (["--model", "hrnet-w32-64x48", "--input-size", "192x256"], "--input-size 192x256: hrnet-w32-64x48 runs at 48x64 only"),
        (["--model", "hrnet-w32-32x32", "--input-size", "48x64"], "runs at 32x32 only"),
    ]
    for args, message in bad:
        res = run_lrp(runner, [*base, *args])
        assert res.exit_code == 2, (args, res.stderr)
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("lrp pose: error: ") and message in lines[0], lines
