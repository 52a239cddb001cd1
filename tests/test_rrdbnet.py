"""RRDBNet: official key layouts convert and strict-load; the forward pass is the official one.

All weights here are random (plumbing and equivalence, not usefulness).
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from lrp.errors import LrpError
from lrp.models.rrdbnet import convert_esrgan, detect_naming, rename_to_basicsr, rrdbnet_x4

MANIFESTS = {
    "esrgan-old": "esrgan_old_arch.json",
    "esrgan-new": "esrgan_new_arch.json",
    "basicsr": "basicsr_rrdbnet.json",
}


def manifest(reference_dir, naming):
    return json.loads((reference_dir / "checkpoint-keys" / MANIFESTS[naming]).read_text())["keys"]


def random_checkpoint(keys: dict, seed: int = 0) -> dict:
    """A state dict laid out exactly like the manifest (names, order and shapes), random values."""
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(shape, generator=g) * 0.02 for k, shape in keys.items()}


def numbered_checkpoint(keys: dict) -> dict:
    """Like the manifest, each tensor filled with its position: cheap, and shows where it lands."""
    return {k: torch.full(shape, float(i)) for i, (k, shape) in enumerate(keys.items())}


@pytest.fixture(scope="module")
def full_model():
    return rrdbnet_x4().eval()


def test_full_architecture_matches_the_official_manifest(reference_dir, full_model):
    own = {k: list(v.shape) for k, v in full_model.state_dict().items()}
    assert own == manifest(reference_dir, "basicsr")  # same names, order and shapes
    assert sum(v.numel() for v in full_model.state_dict().values()) == 16_697_987


@pytest.mark.parametrize("naming", list(MANIFESTS))
def test_each_official_naming_converts_and_strict_loads(reference_dir, full_model, tmp_path, naming):
    keys = manifest(reference_dir, naming)
    ckpt = numbered_checkpoint(keys)
    assert detect_naming(ckpt) == naming
    # BasicSR releases wrap the dict; ESRGAN files are bare.
    saved = {"params_ema": ckpt} if naming == "basicsr" else ckpt
    src = tmp_path / "official.pth"
    torch.save(saved, src)
    state = convert_esrgan(src)
    full_model.load_state_dict(state, strict=True)
    # A rename only, in the same order: tensor i of the official file is tensor i of lrp's.
    assert [v.flatten()[0].item() for v in state.values()] == list(range(len(keys)))


def test_the_three_namings_give_identical_tensors(reference_dir):
    """The same tensors under the three namings (mapped position by position, as the official
    transer_RRDB_models.py / BasicSR convert_models.py do) convert to the same state dict."""
    layouts = {n: manifest(reference_dir, n) for n in MANIFESTS}
    values = list(numbered_checkpoint(layouts["basicsr"]).values())
    converted = [rename_to_basicsr(dict(zip(keys, values))) for keys in layouts.values()]
    for other in converted[1:]:
        assert other.keys() == converted[0].keys()
        assert all(torch.equal(other[k], converted[0][k]) for k in other)


def test_full_model_forward_shape(full_model):
    with torch.inference_mode():
        y = full_model(torch.rand(1, 3, 8, 8))
    assert y.shape == (1, 3, 32, 32)


def _official_forward(sd: dict, x: torch.Tensor, num_block: int) -> torch.Tensor:
    """xinntao/ESRGAN RRDBNet_arch.py's forward written out functionally over the NEW-naming
    tensors (independent of lrp's modules: conv by conv, cat, *0.2 residuals)."""

    def conv(name, t):
        return F.conv2d(t, sd[f"{name}.weight"], sd[f"{name}.bias"], padding=1)

    def lrelu(t):
        return F.leaky_relu(t, 0.2)

    fea = conv("conv_first", x)
    trunk = fea
    for i in range(num_block):
        block_in = trunk
        for j in (1, 2, 3):
            p = f"RRDB_trunk.{i}.RDB{j}"
            x0 = trunk
            x1 = lrelu(conv(f"{p}.conv1", x0))
            x2 = lrelu(conv(f"{p}.conv2", torch.cat((x0, x1), 1)))
            x3 = lrelu(conv(f"{p}.conv3", torch.cat((x0, x1, x2), 1)))
            x4 = lrelu(conv(f"{p}.conv4", torch.cat((x0, x1, x2, x3), 1)))
            x5 = conv(f"{p}.conv5", torch.cat((x0, x1, x2, x3, x4), 1))
            trunk = x5 * 0.2 + x0
        trunk = trunk * 0.2 + block_in
    fea = fea + conv("trunk_conv", trunk)
    fea = lrelu(conv("upconv1", F.interpolate(fea, scale_factor=2, mode="nearest")))
    fea = lrelu(conv("upconv2", F.interpolate(fea, scale_factor=2, mode="nearest")))
    return conv("conv_last", lrelu(conv("HRconv", fea)))


def test_forward_equals_the_official_forward_on_converted_weights(reference_dir):
    """Two blocks (the per-block code is the same for 23): an ESRGAN-new-named checkpoint through
    lrp's converter and model gives the official forward's output to float rounding."""
    keys = {
        k: v
        for k, v in manifest(reference_dir, "esrgan-new").items()
        if not k.startswith("RRDB_trunk.") or int(k.split(".")[1]) < 2
    }
    ckpt = random_checkpoint(keys, seed=1)
    ckpt = {k: v * 5 for k, v in ckpt.items()}  # larger weights: differences would show
    model = rrdbnet_x4(num_block=2).eval()
    model.load_state_dict(rename_to_basicsr(ckpt), strict=True)
    x = torch.rand(2, 3, 12, 10, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        ours = model(x)
        ref = _official_forward(ckpt, x, 2)
    assert ours.shape == (2, 3, 48, 40)
    assert ref.abs().max() > 0.1
    # Float rounding only (lrp fuses `x5 * 0.2 + x` into one add): 1e-5 of the output's range.
    assert (ours - ref).abs().max() <= 1e-5 * ref.abs().max()
    # As images: identical to the grey level (the bar is 1).
    to_u8 = lambda t: (t.clamp(0, 1) * 255).round()  # noqa: E731
    assert (to_u8(ours) - to_u8(ref)).abs().max() <= 1


def test_channels_last_and_batching_do_not_change_the_output():
    torch.manual_seed(0)
    model = rrdbnet_x4(num_block=1).eval()
    x = torch.rand(3, 3, 9, 11)
    with torch.inference_mode():
        single = torch.cat([model(x[i : i + 1]) for i in range(3)])
        batched_cl = model.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(single, batched_cl, atol=1e-5)


def test_not_an_rrdbnet_checkpoint_is_refused(tmp_path):
    src = tmp_path / "other.pth"
    torch.save({"backbone.conv1.weight": torch.zeros(1)}, src)
    with pytest.raises(LrpError, match="not an RRDBNet checkpoint"):
        convert_esrgan(src)


def test_corrupt_checkpoint_is_refused(tmp_path):
    src = tmp_path / "broken.pth"
    src.write_bytes(b"PK\x03\x04 definitely not a zip")
    with pytest.raises(LrpError, match="not a readable PyTorch checkpoint"):
        convert_esrgan(src)
