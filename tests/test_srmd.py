"""SRMD: the ncnn layout maps onto lrp's model; the forward is conv/ReLU x11 + pixel shuffle.
Random weights (plumbing); the real weights were checked against the ncnn runtime (see the
closing note of the issue) and are scored by bench/bench_superres.py."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lrp.errors import LrpError
from lrp.sources import ncnn
from lrp.models.srmd import srmd, state_from_ncnn


def _as_ncnn(model) -> tuple[str, bytes]:
    layers = [ncnn.Layer("Input", "input", [], ["input"], {})]
    prev = "input"
    for i, conv in enumerate(model.convs):
        o, c, kh, kw = conv.weight.shape
        params = {0: o, 1: kw, 4: 1, 5: 1, 6: o * c * kh * kw}
        if i < len(model.convs) - 1:
            params[9] = 1  # fused ReLU, as in the package's .param files
        layers.append(ncnn.Layer("Convolution", f"Conv_{2 * i}", [prev], [f"b{i}"], params,
                                 weight=conv.weight.detach().numpy(), bias=conv.bias.detach().numpy()))
        prev = f"b{i}"
    layers.append(ncnn.Layer("PixelShuffle", "output", [prev], ["output"], {0: model.scale}))
    return ncnn.write_ncnn(layers)


@pytest.mark.parametrize("scale,noise_input", [(2, True), (3, False), (4, True)])
def test_ncnn_layout_maps_onto_the_model(scale, noise_input):
    torch.manual_seed(scale)
    model = srmd(scale, noise_input)
    text, blob = _as_ncnn(model)
    layers = ncnn.read_bin(ncnn.parse_param(text), blob)
    assert layers[1].weight.shape == (128, 19 if noise_input else 18, 3, 3)
    fresh = srmd(scale, noise_input)
    fresh.load_state_dict(state_from_ncnn(layers), strict=True)
    for k, v in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[k], v.half().float() if k.endswith("weight") else v)


def test_forward_is_convs_relus_and_pixel_shuffle():
    torch.manual_seed(0)
    model = srmd(2, True).eval()
    x = torch.rand(1, 19, 5, 6)
    ref = x
    for i, conv in enumerate(model.convs):
        ref = F.conv2d(ref, conv.weight, conv.bias, padding=1)
        if i < 11:
            ref = ref.clamp(min=0)
    # PyTorch pixel shuffle: channel c*4 + dy*2 + dx -> pixel (2y+dy, 2x+dx) of colour c
    ref = ref.view(1, 3, 2, 2, 5, 6).permute(0, 1, 4, 2, 5, 3).reshape(1, 3, 10, 12)
    with torch.inference_mode():
        assert torch.allclose(model(x), ref, atol=1e-6)


def test_wrong_number_of_convolutions_is_refused():
    text, blob = _as_ncnn(srmd(2, True))
    layers = ncnn.read_bin(ncnn.parse_param(text), blob)
    with pytest.raises(LrpError, match="expected 12 convolutions"):
        state_from_ncnn(layers[:-3])
