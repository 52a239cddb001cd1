"""HRNet: the official key layout, checkpoint conversion (official and MMPose), any input size."""

from __future__ import annotations

import json

import pytest
import torch

from lrp.errors import LrpError
from lrp.models.hrnet import PoseHighResolutionNet, hrnet_w32, hrnet_w48
from lrp.models.pose_zoo import MODELS, convert_hrnet


def manifest(reference_dir, name):
    return json.loads((reference_dir / "checkpoint-keys" / f"{name}.json").read_text())["keys"]


@pytest.mark.parametrize("name, build", [("hrnet_w32", hrnet_w32), ("hrnet_w48", hrnet_w48)])
def test_state_dict_is_the_official_manifest_without_bn_counters(reference_dir, name, build):
    official = {k: v for k, v in manifest(reference_dir, name).items() if not k.endswith("num_batches_tracked")}
    own = {k: list(v.shape) for k, v in build().state_dict().items()}
    assert list(own) == list(official)  # same names, same order
    assert own == official
    assert len(official) == 1754 - 292


def test_parameter_counts_match_the_paper():
    assert sum(p.numel() for p in hrnet_w32().parameters()) == 28_536_113
    assert sum(p.numel() for p in hrnet_w48().parameters()) == 63_595_745


@pytest.fixture(scope="module")
def official_w32_checkpoint(tmp_path_factory, reference_dir):
    """A random checkpoint laid out exactly like the official `pose_hrnet_w32_256x192.pth`."""
    gen = torch.Generator().manual_seed(0)
    state = {}
    for key, shape in manifest(reference_dir, "hrnet_w32").items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(1000, dtype=torch.long)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=gen) + 0.5
        else:
            state[key] = torch.randn(shape, generator=gen) * 0.01
    path = tmp_path_factory.mktemp("ckpt") / "pose_hrnet_w32_256x192.pth"
    torch.save(state, path)
    return path, state


def test_official_checkpoint_converts_and_strict_loads(official_w32_checkpoint):
    from lrp.device import load_strict

    path, state = official_w32_checkpoint
    converted = convert_hrnet(path)
    assert not any(k.endswith("num_batches_tracked") for k in converted)
    model = load_strict(hrnet_w32(), converted, str(path))
    own = model.state_dict()
    assert all(torch.equal(own[k], state[k].float()) for k in own)


def test_mmpose_checkpoint_converts_to_the_same_tensors(official_w32_checkpoint, tmp_path):
    path, state = official_w32_checkpoint
    renamed = {("head." if k.startswith("final_layer.") else "backbone.") + k: v for k, v in state.items()}
    mm = tmp_path / "hrnet_w32_coco_256x192-c78dce93_20200708.pth"
    torch.save({"meta": {"epoch": 210}, "state_dict": renamed}, mm)
    a, b = convert_hrnet(path), convert_hrnet(mm)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # MMPose 0.x names the head `keypoint_head`.
    old = {k.replace("head.", "keypoint_head.", 1) if k.startswith("head.") else k: v for k, v in renamed.items()}
    torch.save({"state_dict": old}, mm)
    assert convert_hrnet(mm).keys() == a.keys()


def test_w32_weights_do_not_load_into_w48(official_w32_checkpoint):
    from lrp.device import load_strict

    path, _ = official_w32_checkpoint
    with pytest.raises(LrpError, match="wrong shape"):
        load_strict(hrnet_w48(), convert_hrnet(path), str(path))


def test_convert_refuses_what_is_not_a_checkpoint(tmp_path):
    bad = tmp_path / "notes.pth"
    bad.write_text("not a checkpoint")
    with pytest.raises(LrpError, match="not a readable PyTorch checkpoint"):
        convert_hrnet(bad)
    lst = tmp_path / "list.pth"
    torch.save([1, 2, 3], lst)
    with pytest.raises(LrpError, match="no state dict of tensors"):
        convert_hrnet(lst)


def tiny():
    torch.manual_seed(0)
    return PoseHighResolutionNet(width=8, stage_modules=(1, 1, 1), stage_blocks=1, layer1_blocks=1).eval()


@pytest.mark.parametrize("w, h", [(192, 256), (96, 128), (48, 64), (36, 52)])
def test_any_input_size_gives_quarter_size_heatmaps(w, h):
    with torch.no_grad():
        out = tiny()(torch.randn(2, 3, h, w))
    assert out.shape == (2, 17, -(-h // 4), -(-w // 4))


def test_cropping_upsampled_maps_changes_nothing_for_multiples_of_32():
    """The fuse crop is a no-op where the official code works: compare with a plain sum."""
    model = tiny()
    x = torch.randn(1, 3, 64, 64)
    module = model.stage3[0]
    xs = [torch.randn(1, 8, 16, 16), torch.randn(1, 16, 8, 8), torch.randn(1, 32, 4, 4)]
    with torch.no_grad():
        ours = module([t.clone() for t in xs])
        branches = [b(t) for b, t in zip(module.branches, xs)]
        plain0 = torch.relu(branches[0] + module.fuse_layers[0][1](branches[1]) + module.fuse_layers[0][2](branches[2]))
    torch.testing.assert_close(ours[0], plain0)
    assert model(x).shape == (1, 17, 16, 16)


def test_registry_entries_build_their_architecture():
    specs = {s.name: s for s in MODELS}
    assert {"hrnet-w32-256x192", "hrnet-w32-384x288", "hrnet-w48-256x192", "hrnet-w48-384x288", "movenet-thunder"} <= set(specs)
    assert specs["hrnet-w48-384x288"].kwargs["input_size"] == [288, 384]
    assert specs["hrnet-w32-256x192"].arch == "hrnet-w32"
